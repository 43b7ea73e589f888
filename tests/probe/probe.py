"""A filesystem probe: runs a list of steps inside ROOT and prints one JSON result per step.

    python3 probe.py ROOT STEPS_JSON

The same steps run on a local directory and, under `objmount exec`, on a virtual one; the
test compares the two outputs (tests/differential.py). So results say what a program sees
and nothing that legitimately differs between two filesystems: errno names, byte strings,
stat fields without st_dev/st_ino/st_blocks, and timestamps within two minutes of the
probe's start reported as "now" (set times are compared exactly); how times near now
moved is compared with `snap`/`since` (against a snapshot) and `order` (with each other).

A step is [op, *args]. Paths are relative to ROOT (an absolute path is used as is).
Descriptors are named by the test ("a", "b") and held in a table; `fdnum` reports the
kernel's number. Data arguments are str (UTF-8) or {"hex": ...}; `{"rep": [str, n]}`
repeats. Every step records either its value or {"errno": NAME}; a failure never stops
the run. This file imports nothing from objmount: it must run anywhere.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import stat
import sys
import time

START = time.time()
_FLAGS = {name[2:]: getattr(os, name) for name in dir(os) if name.startswith("O_")}


def data_of(arg) -> bytes:
    if isinstance(arg, dict):
        if "hex" in arg:
            return bytes.fromhex(arg["hex"])
        if "rep" in arg:
            text, n = arg["rep"]
            return text.encode() * n
    return arg.encode()


def show(data: bytes):
    """Bytes as text when printable, else hex, and long runs summarised by a digest."""
    if len(data) > 256:
        import hashlib
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()[:16]}
    try:
        text = data.decode()
        if text.isprintable() or text == "":
            return text
    except UnicodeDecodeError:
        pass
    return {"hex": data.hex()}


def when(t_ns: int):
    return "now" if abs(t_ns / 1e9 - START) < 120 else t_ns


def stat_fields(st: os.stat_result, times: bool = True) -> dict:
    out = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)), "size": st.st_size,
           "nlink": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid}
    if not stat.S_ISREG(st.st_mode):
        out.pop("size")  # directory and symlink sizes are the filesystem's own business
    if stat.S_ISDIR(st.st_mode):
        out.pop("nlink")  # 2 + subdirectories locally; object stores cannot count cheaply
    if times:
        out.update(mtime=when(st.st_mtime_ns), atime=when(st.st_atime_ns), ctime=when(st.st_ctime_ns))
    return out


def flags_of(text: str) -> int:
    value = 0
    for name in text.split("|"):
        if name:
            value |= _FLAGS[name]
    return value


class Probe:
    def __init__(self, root: str):
        self.root = root
        self.fds: dict[str, int] = {}
        self.maps: dict[str, mmap.mmap] = {}
        self.marks: dict[str, int] = {}

    def p(self, path) -> str:
        if isinstance(path, dict):  # {"fd": NAME}: the /proc/self/fd link of descriptor NAME
            return f"/proc/self/fd/{self.fds[path['fd']]}"
        return path if path.startswith("/") else os.path.join(self.root, path)

    # --- descriptors --------------------------------------------------------------------
    def open(self, path, flags="RDONLY", mode=0o644, name="a"):
        self.fds[name] = os.open(self.p(path), flags_of(flags), mode)
        return "ok"

    def fdnum(self, name):
        return self.fds[name]

    def close(self, name):
        os.close(self.fds.pop(name))
        return "ok"

    def dup(self, name, new):
        self.fds[new] = os.dup(self.fds[name])
        return "ok"

    def write(self, name, data):
        return os.write(self.fds[name], data_of(data))

    def pwrite(self, name, data, offset):
        return os.pwrite(self.fds[name], data_of(data), offset)

    def read(self, name, n):
        return show(os.read(self.fds[name], n))

    def pread(self, name, n, offset):
        return show(os.pread(self.fds[name], n, offset))

    def lseek(self, name, offset, whence=0):
        return os.lseek(self.fds[name], offset, whence)

    def ftruncate(self, name, length):
        os.ftruncate(self.fds[name], length)
        return "ok"

    def fallocate(self, name, offset, length):
        os.posix_fallocate(self.fds[name], offset, length)
        return "ok"

    def fsync(self, name):
        os.fsync(self.fds[name])
        return "ok"

    def fstat(self, name, times=True):
        return stat_fields(os.fstat(self.fds[name]), times)

    def fchmod(self, name, mode):
        os.fchmod(self.fds[name], mode)
        return "ok"

    def mmap_write(self, name, offset, data):
        """Map the whole file shared, store `data` at `offset`, msync, unmap."""
        fd = self.fds[name]
        m = mmap.mmap(fd, os.fstat(fd).st_size)
        payload = data_of(data)
        m[offset:offset + len(payload)] = payload
        m.flush()
        m.close()
        return "ok"

    def mmap_read(self, name, length, offset=0):
        """Map [offset, offset+length) shared read-only and read it through the mapping."""
        m = mmap.mmap(self.fds[name], length + offset % mmap.ALLOCATIONGRANULARITY, mmap.MAP_SHARED,
                      mmap.PROT_READ, offset=offset - offset % mmap.ALLOCATIONGRANULARITY)
        try:
            return show(m[offset % mmap.ALLOCATIONGRANULARITY:])
        finally:
            m.close()

    # --- paths --------------------------------------------------------------------------
    def stat(self, path, times=True):
        return stat_fields(os.stat(self.p(path)), times)

    def lstat(self, path, times=True):
        return stat_fields(os.lstat(self.p(path)), times)

    def mtime(self, path, follow=True):
        """st_mtime alone (when atime or ctime legitimately differ: see `since`, `order`)."""
        return when((os.stat if follow else os.lstat)(self.p(path)).st_mtime_ns)

    # --- times: exact values are compared by `stat` when far from now; changes near now
    # by how each time moved against a snapshot taken in the same run (a coarse kernel
    # clock ticks every few ms: a test sleeps between snapshot and change).
    def snap(self, path, name, follow=True):
        st = (os.stat if follow else os.lstat)(self.p(path))
        self.marks[name] = (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
        return "ok"

    def inode(self, path, name):
        """Remember the inode number of `path` (not followed) as `name`; `inode_is` compares."""
        self.marks[name] = os.lstat(self.p(path)).st_ino
        return "ok"

    def inode_is(self, path, name):
        """Whether `path` (or descriptor `path` when it names one) has inode `name`'s."""
        st = os.fstat(self.fds[path]) if path in self.fds else os.lstat(self.p(path))
        return st.st_ino == self.marks[name]

    def since(self, path, name, follow=True):
        """For atime, mtime, ctime of `path`: "same", "later" or "earlier" than snapshot `name`."""
        st = (os.stat if follow else os.lstat)(self.p(path))
        now = (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
        word = {-1: "earlier", 0: "same", 1: "later"}
        return {f: word[(b > a) - (b < a)] for f, a, b in zip(("atime", "mtime", "ctime"), self.marks[name], now)}

    def order(self, path, follow=True):
        """How atime, mtime and ctime of `path` compare with each other."""
        st = (os.stat if follow else os.lstat)(self.p(path))
        t = {"a": st.st_atime_ns, "m": st.st_mtime_ns, "c": st.st_ctime_ns}
        sign = {-1: "<", 0: "=", 1: ">"}
        return {f"{x}{y}": sign[(t[x] > t[y]) - (t[x] < t[y])] for x, y in (("a", "m"), ("m", "c"), ("a", "c"))}

    def run(self, path, *args):
        """Execute `path` (a program or script): its exit status."""
        import subprocess
        return subprocess.run([self.p(path), *args], stdin=subprocess.DEVNULL).returncode

    def sleep(self, seconds):
        time.sleep(seconds)
        return "ok"

    def utimensat(self, path, atime, mtime, follow=True, name=None):
        """utimensat(2) (futimens with `name`: a descriptor); a time is ns, "now", "omit" or
        [tv_sec, tv_nsec] as given (out of range too)."""
        import ctypes
        special = {"now": (0, (1 << 30) - 1), "omit": (0, (1 << 30) - 2)}

        class Timespec(ctypes.Structure):
            _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]
        times = (Timespec * 2)(*[Timespec(*special[t]) if isinstance(t, str) else Timespec(*t)
                                 if isinstance(t, list) else Timespec(*divmod(t, 10**9)) for t in (atime, mtime)])
        libc = ctypes.CDLL(None, use_errno=True)
        if name is not None:
            rc = libc.futimens(self.fds[name], times)
        else:
            rc = libc.utimensat(-100, os.fsencode(self.p(path)), times, 0 if follow else 0x100)
        if rc != 0:
            return {"errno": errno.errorcode[ctypes.get_errno()]}
        return "ok"

    def exists(self, path):
        return os.path.lexists(self.p(path))

    def cat(self, path):
        with open(self.p(path), "rb") as f:
            return show(f.read())

    def put(self, path, data, mode=0o644):
        fd = os.open(self.p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data_of(data))
        finally:
            os.close(fd)
        return "ok"

    def copyfile(self, src, dst):
        """Copy like cp: copy_file_range (or sendfile) from one file into another."""
        import shutil
        shutil.copyfile(self.p(src), self.p(dst))
        return "ok"

    def truncate(self, path, length):
        os.truncate(self.p(path), length)
        return "ok"

    def unlink(self, path):
        os.unlink(self.p(path))
        return "ok"

    def rename(self, old, new):
        os.rename(self.p(old), self.p(new))
        return "ok"

    def link(self, old, new):
        os.link(self.p(old), self.p(new))
        return "ok"

    def symlink(self, target, path):
        os.symlink(target, self.p(path))
        return "ok"

    def readlink(self, path):
        return os.readlink(self.p(path))

    def freadlink(self, name):
        """readlinkat(fd, ""): the link an O_PATH|O_NOFOLLOW descriptor was opened on."""
        return os.readlink("", dir_fd=self.fds[name])

    def mkdir(self, path, mode=0o777):
        os.mkdir(self.p(path), mode)
        return "ok"

    def rmdir(self, path):
        os.rmdir(self.p(path))
        return "ok"

    def listdir(self, path="."):
        return sorted(os.listdir(self.p(path)))

    def namemax(self, path="."):
        """The longest name the filesystem says it takes: statvfs's f_namemax and
        pathconf(_PC_NAME_MAX) (which glibc reads from statfs's f_namelen)."""
        return [os.statvfs(self.p(path)).f_namemax, os.pathconf(self.p(path), "PC_NAME_MAX")]

    def dtypes(self, path="."):
        """[name, d_type] of each entry as readdir gives it (0 DT_UNKNOWN, 1 DT_FIFO,
        4 DT_DIR, 8 DT_REG, 10 DT_LNK, 12 DT_SOCK)."""
        import ctypes

        class Dirent(ctypes.Structure):   # glibc's struct dirent on x86_64
            _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                        ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.opendir.restype = ctypes.c_void_p
        libc.opendir.argtypes = [ctypes.c_char_p]
        libc.readdir.restype = ctypes.POINTER(Dirent)
        libc.readdir.argtypes = [ctypes.c_void_p]
        libc.closedir.argtypes = [ctypes.c_void_p]
        d = libc.opendir(os.fsencode(self.p(path)))
        if not d:
            raise OSError(ctypes.get_errno(), "opendir")
        out = []
        try:
            while e := libc.readdir(d):
                name = os.fsdecode(e.contents.d_name)
                if name not in (".", ".."):
                    out.append([name, e.contents.d_type])
        finally:
            libc.closedir(d)
        return sorted(out)

    def chmod(self, path, mode):
        os.chmod(self.p(path), mode)
        return "ok"

    def chown(self, path, uid, gid):
        os.chown(self.p(path), uid, gid)
        return "ok"

    def utime(self, path, atime_ns, mtime_ns, follow=True):
        os.utime(self.p(path), ns=(atime_ns, mtime_ns), follow_symlinks=follow)
        return "ok"

    def access(self, path, mode):
        return os.access(self.p(path), mode)

    def faccessat(self, path, mode, flags=0):
        """faccessat2(2) itself (os.access hides the errno): "ok" or the errno."""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(439, -100, os.fsencode(self.p(path)), mode, flags) != 0:
            return {"errno": errno.errorcode[ctypes.get_errno()]}
        return "ok"

    def syscall(self, nr, *args):
        """A raw syscall (x86_64 number): an int argument as is, a str a path (relative to
        ROOT), {"fdnum": NAME} a descriptor's number, {"buf": N} an N-byte buffer, {"readonly": 1}
        a read-only page, {"iov": [[DATA, LEN], ...]} an iovec array,
        {"bytes": HEX} a buffer holding those bytes. Returns
        the result or the errno. {"rel": PATH} is a path passed as written."""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        keep = []
        values = []
        for a in args:
            if isinstance(a, str):
                keep.append(ctypes.create_string_buffer(os.fsencode(self.p(a))))
                values.append(ctypes.cast(keep[-1], ctypes.c_void_p))
            elif isinstance(a, dict) and "rel" in a:   # a path as given (relative to a dirfd)
                keep.append(ctypes.create_string_buffer(os.fsencode(a["rel"])))
                values.append(ctypes.cast(keep[-1], ctypes.c_void_p))
            elif isinstance(a, dict) and "iov" in a:   # struct iovec[]: [[data, iov_len], ...]
                class Iovec(ctypes.Structure):
                    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
                vec = (Iovec * max(len(a["iov"]), 1))()
                for i, (data, n) in enumerate(a["iov"]):
                    keep.append(ctypes.create_string_buffer(data_of(data)))
                    vec[i] = Iovec(ctypes.cast(keep[-1], ctypes.c_void_p), n & 0xFFFFFFFFFFFFFFFF)
                keep.append(vec)
                values.append(ctypes.cast(vec, ctypes.c_void_p))
            elif isinstance(a, dict) and "readonly" in a:   # a page the program may read, not write
                libc.mmap.restype = ctypes.c_void_p
                libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_long]
                values.append(ctypes.c_void_p(libc.mmap(None, 4096, 1, 0x22, -1, 0)))  # PROT_READ, PRIVATE|ANON
            elif isinstance(a, dict) and "fdnum" in a:
                values.append(ctypes.c_long(self.fds[a["fdnum"]]))
            elif isinstance(a, dict) and "bytes" in a:   # a buffer holding these bytes (hex)
                keep.append(ctypes.create_string_buffer(bytes.fromhex(a["bytes"]), len(a["bytes"]) // 2))
                values.append(ctypes.cast(keep[-1], ctypes.c_void_p))
            elif isinstance(a, dict) and "buf" in a:
                keep.append(ctypes.create_string_buffer(a["buf"]))
                values.append(ctypes.cast(keep[-1], ctypes.c_void_p))
            else:
                values.append(ctypes.c_long(a))
        rc = libc.syscall(ctypes.c_long(nr), *values)
        if rc < 0:
            return {"errno": errno.errorcode[ctypes.get_errno()]}
        return rc

    def become(self, uid, gid, groups):
        """Take effective ids (uid, gid) and supplementary `groups` (root can, and can come back
        with become(0, 0, [0]))."""
        os.seteuid(0)
        os.setgroups(groups)
        os.setegid(gid)
        os.seteuid(uid)
        return "ok"

    def mkfifo(self, path, mode=0o644):
        os.mkfifo(self.p(path), mode)
        return "ok"

    def mknod(self, path, mode, dev=0):
        os.mknod(self.p(path), mode, dev)
        return "ok"

    def nodestat(self, path):
        """lstat with the device number (special files)."""
        st = os.lstat(self.p(path))
        return dict(stat_fields(st, times=False), rdev=[os.major(st.st_rdev), os.minor(st.st_rdev)])

    def setxattr(self, path, name, value, flags=0, follow=True):
        os.setxattr(self.p(path), name, data_of(value), flags, follow_symlinks=follow)
        return "ok"

    def getxattr(self, path, name, follow=True):
        return show(os.getxattr(self.p(path), name, follow_symlinks=follow))

    def listxattr(self, path, follow=True):
        return sorted(n for n in os.listxattr(self.p(path), follow_symlinks=follow) if n.startswith("user."))

    def removexattr(self, path, name, follow=True):
        os.removexattr(self.p(path), name, follow_symlinks=follow)
        return "ok"

    def fxattrs(self, name):
        """setxattr, getxattr, listxattr, removexattr through a descriptor."""
        fd = self.fds[name]
        os.setxattr(fd, "user.fd", b"by-fd")
        out = [show(os.getxattr(fd, "user.fd")), sorted(os.listxattr(fd))]
        os.removexattr(fd, "user.fd")
        return out + [sorted(os.listxattr(fd))]

    def rawxattr(self, path, name, size):
        """getxattr(2) with a buffer of `size` bytes (0: the size query); lgetxattr/llistxattr
        likewise when name is None: the return value, or the errno."""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(max(size, 1))
        if name is None:
            n = libc.listxattr(os.fsencode(self.p(path)), buf if size else None, size)
        else:
            n = libc.getxattr(os.fsencode(self.p(path)), name.encode(), buf if size else None, size)
        if n < 0:
            return {"errno": errno.errorcode[ctypes.get_errno()]}
        return [n, show(buf.raw[:n]) if size else None]

    def tree(self, path="."):
        """Every entry below `path`: kind, mode, size, nlink and content (or link target)."""
        top = self.p(path)
        out = {}
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, top)
                st = os.lstat(full)
                entry = stat_fields(st, times=False)
                if stat.S_ISLNK(st.st_mode):
                    entry["target"] = os.readlink(full)
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        entry["data"] = show(f.read())
                out[rel] = entry
        return out

    def umask(self, mask):
        return oct(os.umask(mask))


def run(root: str, steps: list) -> list:
    os.umask(0o022)
    probe = Probe(root)
    results = []
    for step in steps:
        op, *args = step
        try:
            value = getattr(probe, op)(*args)
        except OSError as exc:
            value = {"errno": errno.errorcode.get(exc.errno, str(exc.errno))}
        results.append(value)
    return results


if __name__ == "__main__":
    root, steps_file = sys.argv[1], sys.argv[2]
    with open(steps_file) as f:
        steps = json.load(f)
    json.dump(run(root, steps), sys.stdout)
