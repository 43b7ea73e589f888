"""Cases the Linux Test Project's syscall tests (testcases/kernel/syscalls, run by hand with
TMPDIR on a virtual directory) found answered otherwise than by the kernel: the same probe
on a local directory and under objmount."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changes its ids: needs root")


def test_access_with_an_invalid_mode_or_flag_is_einval(differential):
    """access04: the kernel refuses a mode outside R_OK|W_OK|X_OK (and unknown faccessat2
    flags) with EINVAL before it looks at the path, for root too."""
    differential(
        [["put", "f", "x"], ["faccessat", "f", -1], ["faccessat", "f", 8], ["faccessat", "f", 7],
         ["faccessat", "f", 4, 0x4], ["faccessat", "missing", -1], ["faccessat", "f", 0]],
    )


@root_only
def test_chmod_by_the_owner_outside_the_group_clears_setgid_of_a_directory_too(differential):
    """chmod05: setattr_prepare drops S_ISGID when the caller is not in the file's group and
    lacks CAP_FSETID, for a directory as for a file."""
    # (through descriptors opened before: the test's local directory is not searchable by others)
    differential(
        [["mkdir", "d", 0o777], ["put", "f", "x"], ["chown", "d", 65534, 4242], ["chown", "f", 65534, 4242],
         ["open", "d", "RDONLY|DIRECTORY", 0, "d"], ["open", "f", "RDONLY", 0, "f"],
         ["become", 65534, 65534, [65534]],
         ["fchmod", "d", 0o3777], ["fchmod", "f", 0o2755],
         ["become", 0, 0, [0]], ["stat", "d", False], ["stat", "f", False],
         ["chmod", "d", 0o2755], ["stat", "d", False]],   # root keeps it
    )


def test_chmod_through_the_proc_link_of_an_o_path_symlink_descriptor(differential):
    """chmod09: /proc/self/fd/N of an O_PATH|O_NOFOLLOW descriptor names the symlink itself;
    chmod of it is EOPNOTSUPP and leaves the file it points to alone; open of it is ELOOP."""
    differential(
        [["put", "f", "x"], ["chmod", "f", 0o644], ["symlink", "f", "l"], ["open", "l", "PATH|NOFOLLOW", 0, "s"],
         ["chmod", {"fd": "s"}, 0], ["stat", "f", False], ["lstat", "l", False],
         ["stat", {"fd": "s"}, False], ["open", {"fd": "s"}, "RDONLY", 0, "r"],
         ["open", "f", "PATH", 0, "p"], ["chmod", {"fd": "p"}, 0o600], ["stat", "f", False]],
    )


# x86_64 syscall numbers and flags (the probe's raw `syscall` step)
NR = {"unlinkat": 263, "linkat": 265, "fchownat": 260, "utimensat": 280, "newfstatat": 262, "statx": 332,
      "renameat2": 316, "fchmodat2": 452}
AT_FDCWD = -100


def test_unknown_flags_of_the_at_calls_are_einval(differential):
    """fchmodat02, fchmodat2_02 and the like: every *at call refuses flags it does not know
    with EINVAL (before it looks at the path), virtual path or not."""
    differential(
        [["put", "f", "x"], ["mkdir", "d"],
         ["syscall", NR["fchmodat2"], AT_FDCWD, "f", 0o600, -1], ["syscall", NR["fchmodat2"], AT_FDCWD, "f", 0o600, 1],
         ["syscall", NR["fchownat"], AT_FDCWD, "f", 0, 0, 0x1], ["syscall", NR["fchownat"], AT_FDCWD, "f", 0, 0, -1],
         ["syscall", NR["utimensat"], AT_FDCWD, "f", 0, 0x2], ["syscall", NR["newfstatat"], AT_FDCWD, "f", {"buf": 256}, 0x8],
         ["syscall", NR["statx"], AT_FDCWD, "f", 0x1, 0x7ff, {"buf": 256}],
         ["syscall", NR["statx"], AT_FDCWD, "f", 0x6000, 0x7ff, {"buf": 256}],
         ["syscall", NR["statx"], AT_FDCWD, "f", 0, 0x80000000, {"buf": 256}],
         ["syscall", NR["linkat"], AT_FDCWD, "f", AT_FDCWD, "g", 0x1],
         ["syscall", NR["unlinkat"], AT_FDCWD, "f", 0x1], ["syscall", NR["unlinkat"], AT_FDCWD, "d", 0x201],
         ["syscall", NR["renameat2"], AT_FDCWD, "f", AT_FDCWD, "h", 0x8],
         ["syscall", NR["renameat2"], AT_FDCWD, "f", AT_FDCWD, "d", 0x3],
         ["stat", "f", False], ["listdir"], ["stat", "d", False]],
    )


def test_fstat_of_a_directory_descriptor_shows_changes_made_since_its_open(differential):
    """fchmod04: fstat of a directory's descriptor after fchmod (or chmod, chown of its
    path) describes the directory as it is now, as does an O_PATH descriptor's."""
    differential(
        [["mkdir", "d", 0o755], ["open", "d", "RDONLY|DIRECTORY", 0, "d"], ["fstat", "d", False],
         ["fchmod", "d", 0o1777], ["fstat", "d", False], ["chmod", "d", 0o700], ["fstat", "d", False],
         ["chown", "d", 12, 34], ["fstat", "d", False],
         ["put", "f", "x"], ["open", "f", "PATH", 0, "p"], ["chmod", "f", 0o600], ["fstat", "p", False],
         ["open", "d", "PATH|DIRECTORY", 0, "q"], ["chmod", "d", 0o750], ["fstat", "q", False], ["fstat", "d", False]],
    )


LEASE_PROBE = r"""
import fcntl, os, sys, time
path = sys.argv[1]
open(path, "w").close()
fd = os.open(path, os.O_RDONLY)
try:
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    print("lease taken")
except OSError as exc:
    print("lease:", os.strerror(exc.errno))
t = time.monotonic()
if os.fork() == 0:
    os.close(os.open(path, os.O_WRONLY))   # breaks a lease: waits for its holder
    os._exit(0)
os.wait()
print("writer waited", "long" if time.monotonic() - t > 3 else "not")
"""


def test_no_lease_on_a_virtual_file(objmount, tmp_path):
    """fcntl33: a lease would sit on the cache file, and objmount's own open of it for the
    child's write would wait for the holder (lease-break-time, 45 s), which waits for
    objmount: F_SETLEASE is EINVAL, as on a filesystem without leases."""
    store = tmp_path / "store"
    store.mkdir()
    run = objmount(["python3", "-c", LEASE_PROBE, "/w/f"], "-m", f"/w=file://{store}", timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == ["lease: Invalid argument", "writer waited not"], run.stderr


def test_a_file_not_uploaded_yet_is_no_directory_either(differential):
    """futimesat01: a file this run created and still holds open (not in the bucket yet),
    used as a directory — a path through it, or its descriptor as the dirfd of an *at
    call — is ENOTDIR, as a file in the bucket is; it was ENOENT."""
    F = {"fdnum": "a"}
    differential(
        [["open", "f", "RDWR|CREAT", 0o600, "a"], ["stat", "f/x"], ["open", "f/x", "WRONLY|CREAT", 0o644, "b"],
         ["mkdir", "f/d"],
         ["syscall", NR["newfstatat"], F, {"rel": "x"}, {"buf": 256}, 0],
         ["syscall", 257, F, {"rel": "x"}, 0],                       # openat
         ["syscall", 257, F, {"rel": "x"}, 0o101, 0o644],            # openat O_CREAT|O_WRONLY
         ["syscall", NR["utimensat"], F, {"rel": "x"}, 0, 0],
         ["syscall", 261, F, {"rel": "x"}, 0],                       # futimesat
         ["syscall", 258, F, {"rel": "x"}, 0o755],                   # mkdirat
         ["syscall", NR["unlinkat"], F, {"rel": "x"}, 0],
         ["syscall", 267, F, {"rel": "x"}, {"buf": 64}, 64],         # readlinkat
         ["syscall", NR["statx"], F, {"rel": "x"}, 0, 0x7ff, {"buf": 256}],
         ["listdir"]],
    )


NOATIME_PROBE = r"""
import os, sys
top = sys.argv[1]
for name, uid in (("mine", 65534), ("roots", 0)):
    with open(os.path.join(top, name), "w") as f:
        f.write("x")
    os.chmod(os.path.join(top, name), 0o644)
    os.chown(os.path.join(top, name), uid, 65534)
os.mkdir(os.path.join(top, "d"))
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
for name in ("mine", "roots", "d"):
    try:
        os.close(os.open(os.path.join(top, name), os.O_RDONLY | os.O_NOATIME))
        print(name, "ok")
    except OSError as exc:
        print(name, os.strerror(exc.errno))
"""


def _natively_and_on_a_store(objmount, tmp_path, probe: str):
    """Run a Python `probe` (argv[1]: its directory) in a local directory and under objmount
    on a file:// store mounted at /w: (the native run, objmount's, the store's directory).
    The local directory is a fresh one under /tmp, searchable by uid 65534 on the way down."""
    local = tempfile.mkdtemp(prefix="objmount-ltp-")
    try:
        os.chmod(local, 0o755)
        native = subprocess.run([sys.executable, "-c", probe, local], capture_output=True, text=True)
    finally:
        shutil.rmtree(local)
    assert native.returncode == 0, native.stderr
    store = tmp_path / "store"
    store.mkdir()
    run = objmount([sys.executable, "-c", probe, "/w"], "-m", f"/w=file://{store}")
    assert run.returncode == 0, run.stderr
    return native, run, store


@root_only
def test_o_noatime_is_for_the_owner_only(objmount, tmp_path):
    """open02: O_NOATIME by a caller who neither owns the file nor is root is EPERM."""
    native, run, _ = _natively_and_on_a_store(objmount, tmp_path, NOATIME_PROBE)
    assert run.text == native.stdout == "mine ok\nroots Operation not permitted\nd Operation not permitted\n"


def test_an_output_buffer_the_program_cannot_write_is_efault(differential):
    """fstat03: stat, fstat, statx, readlink, getdents, statfs into a NULL or read-only
    buffer are EFAULT, as the kernel's copy_to_user answers (they were EIO, with an
    "internal error" line; a read-only page was even written, through /proc/PID/mem)."""
    differential(
        [["put", "f", "x"], ["mkdir", "d"], ["symlink", "f", "l"], ["open", "f", "RDONLY", 0, "a"],
         ["open", "d", "RDONLY|DIRECTORY", 0, "d"],
         ["syscall", 5, {"fdnum": "a"}, 0],                     # fstat(fd, NULL)
         ["syscall", 4, "f", 0],                                # stat
         ["syscall", 6, "l", 1],                                # lstat into 0x1
         ["syscall", 4, "f", {"readonly": 1}],
         ["syscall", NR["newfstatat"], AT_FDCWD, "f", 0, 0],
         ["syscall", NR["statx"], AT_FDCWD, "f", 0, 0x7ff, {"readonly": 1}],
         ["syscall", 89, "l", 0, 64],                           # readlink
         ["syscall", 217, {"fdnum": "d"}, {"readonly": 1}, 4096],   # getdents64
         ["syscall", 137, "f", 0],                              # statfs
         ["stat", "f", False]],
    )


@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_a_symlink_loop_in_the_directories_of_a_path_is_eloop(differential, mount):
    """mkdirat02: t/t -> ../t, and t/t/t/... long enough to go through more than 40 links
    is ELOOP. A file:// store answered the whole key by the local filesystem, which went
    through the store's real symlink itself (EEXIST, and 'both an object and a prefix')."""
    steps = [["mkdir", "t"], ["symlink", "../t", "t/t"], ["put", "t/t/t/new", "x"], ["listdir", "t"],
             ["listdir", "t/t/t"], ["cat", "t/t/new"]]
    for n in (41, 42, 43, 44):
        path = "/".join(["t"] * n)
        steps += [["lstat", path, False], ["mkdir", path], ["put", path + "/f", "y"]]
    differential(steps, mount=mount)


SYS_IO = {"read": 0, "write": 1, "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "preadv": 295,
          "pwritev": 296, "preadv2": 327, "pwritev2": 328}


def test_invalid_offsets_and_iovecs_are_einval_and_change_nothing(differential):
    """pwrite02, writev01, pwritev02, pwritev202: a negative offset, an iov_len that is
    negative as ssize_t, an iovcnt over 1024 or negative are EINVAL (they were ENOSPC: the
    range was reserved in the cache first, and the file's close then failed too); the file
    is untouched and still uploads."""
    A = {"fdnum": "a"}
    ok = [["abc", 3]]
    differential(
        [["open", "f", "RDWR|CREAT", 0o644, "a"], ["write", "a", "0123456789"],
         ["syscall", SYS_IO["pwrite64"], A, {"rel": "xyz"}, 3, -1],
         ["syscall", SYS_IO["pwrite64"], A, {"rel": "xyz"}, 3, -4096],
         ["syscall", SYS_IO["pread64"], A, {"buf": 8}, 3, -1],
         ["syscall", SYS_IO["writev"], A, {"iov": [["abc", -1]]}, 1],
         ["syscall", SYS_IO["writev"], A, {"iov": ok}, -1],
         ["syscall", SYS_IO["writev"], A, {"iov": ok}, 1025],
         ["syscall", SYS_IO["readv"], A, {"iov": ok}, -1],
         ["syscall", SYS_IO["pwritev"], A, {"iov": [["abc", -1]]}, 1, 0, 0],
         ["syscall", SYS_IO["pwritev"], A, {"iov": ok}, 1, -1, 0],
         ["syscall", SYS_IO["pwritev"], A, {"iov": ok}, 1, -5, 0],
         ["syscall", SYS_IO["pwritev2"], A, {"iov": ok}, 1, -5, 0, 0],
         ["syscall", SYS_IO["pwritev2"], A, {"iov": ok}, 1, -1, 0, 0],   # -1: the descriptor's offset
         ["syscall", SYS_IO["preadv"], A, {"iov": ok}, 1, -1, 0],
         ["fstat", "a", False], ["close", "a"], ["cat", "f"]],
        [["cat", "f"]],
    )


def test_readlink_with_no_room_is_einval(differential):
    """readlink03, readlinkat02: a buffer size of 0 or negative is EINVAL, before the path
    is looked at; a buffer at an address that cannot be written is EFAULT."""
    differential(
        [["put", "f", "x"], ["symlink", "f", "l"],
         ["syscall", 89, "l", {"buf": 8}, 0], ["syscall", 89, "l", {"buf": 8}, -1],
         ["syscall", 89, "missing", {"buf": 8}, 0], ["syscall", 89, "l", -1, 64],
         ["syscall", 267, AT_FDCWD, "l", {"buf": 8}, 0], ["syscall", 89, "l", {"buf": 8}, 8]],
    )


FSIZE_PROBE = r"""
import os, resource, signal, sys
got = []
signal.signal(signal.SIGXFSZ, lambda *a: got.append("SIGXFSZ"))
d = sys.argv[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
with open(d + "/f", "wb") as f:
    f.write(b"x" * 500)
if os.geteuid() == 0:   # as LTP's truncate03: a process whose effective uid is not objmount's
    os.chmod(d + "/f", 0o666)
    os.seteuid(65534)
for length in (800, 3000, 200):
    try:
        os.truncate(d + "/f", length)
        print(length, "ok", os.stat(d + "/f").st_size, got)
    except OSError as exc:
        print(length, os.strerror(exc.errno), os.stat(d + "/f").st_size, got)
"""


def test_truncate_past_the_file_size_limit_is_efbig(objmount, tmp_path):
    """truncate03: truncate(path) growing a file past the caller's RLIMIT_FSIZE is EFBIG
    with SIGXFSZ (objmount truncated the cache file under its own, unlimited, limit)."""
    native, run, store = _natively_and_on_a_store(objmount, tmp_path, FSIZE_PROBE)
    assert run.text == native.stdout
    assert "3000 File too large 800 ['SIGXFSZ']" in run.text
    assert (store / "f").stat().st_size == 200


def _how(flags: int, mode: int = 0, resolve: int = 0, extra: bytes = b"") -> dict:
    import struct
    return {"bytes": (struct.pack("<QQQ", flags, mode, resolve) + extra).hex()}


def test_openat2_checks_its_open_how_and_resolve_restrictions(differential):
    """openat202, openat203: openat2 refuses a malformed open_how (EINVAL, E2BIG) and the
    RESOLVE_* restrictions hold on virtual paths: a symlink with RESOLVE_NO_SYMLINKS is
    ELOOP, leaving the starting directory with RESOLVE_BENEATH is EXDEV ('..', a symlink
    out). They were ignored: the file opened."""
    R = {"fdnum": "r"}
    O_CREAT, O_NOFOLLOW, O_PATH = 0o100, 0o400000, 0o10000000
    NO_SYMLINKS, BENEATH, CACHED, NO_XDEV = 0x04, 0x08, 0x20, 0x01
    steps = [["mkdir", "d"], ["put", "d/f", "x"], ["put", "top", "t"], ["symlink", "f", "d/l"],
             ["symlink", "../top", "d/up"], ["open", "d", "RDONLY|DIRECTORY", 0, "r"]]
    for how, size in [(_how(0), 24), (_how(0), 16), (_how(0, extra=bytes(8)), 32), (_how(0, extra=b"\1" + bytes(7)), 32),
                      (_how(1 << 40), 24), (_how(0, 0o644), 24), (_how(O_CREAT, 0o10644), 24), (_how(0, 0, 0x40), 24),
                      (_how(0, 0, BENEATH | 0x10), 24), (_how(O_CREAT, 0o644, CACHED), 24)]:
        steps.append(["syscall", 437, R, {"rel": "f"}, how, size])
    for path, flags, resolve in [("f", 0, NO_SYMLINKS), ("l", 0, NO_SYMLINKS), ("l", O_PATH | O_NOFOLLOW, NO_SYMLINKS),
                                 ("l", 0, BENEATH), ("up", 0, BENEATH), ("../top", 0, BENEATH),
                                 ("./f", 0, BENEATH), ("f", 0, CACHED),
                                 ("f", 0, NO_XDEV), ("up", 0, NO_XDEV)]:
        steps.append(["syscall", 437, R, {"rel": path}, _how(flags, 0o644 if flags & O_CREAT else 0, resolve), 24])
    steps.append(["listdir", "d"])
    differential(steps)


def test_dotdot_steps_back_from_where_a_name_leads(differential):
    """(found beside openat202) 'l/..' where l is a symlink to d/sub is d, as the kernel
    walks it, not '.': the lexical reading read and wrote another directory's files. A
    '..' after a missing name is ENOENT, after a file ENOTDIR."""
    differential(
        [["mkdir", "d"], ["mkdir", "d/sub"], ["put", "d/f", "in d"], ["put", "f", "at root"], ["symlink", "d/sub", "l"],
         ["cat", "l/../f"], ["put", "l/../new", "y"], ["mkdir", "l/../made"], ["stat", "l/..", False],
         ["rename", "l/../new", "l/../renamed"], ["unlink", "l/../renamed"],
         ["stat", "d/x/../f", False], ["cat", "d/x/../f"], ["put", "d/x/../g", "y"], ["stat", "d/f/../f", False],
         ["open", "d", "RDONLY|DIRECTORY", 0, "d"], ["syscall", 262, {"fdnum": "d"}, {"rel": "../l/../f"}, {"buf": 256}, 0],
         ["listdir", "d"], ["listdir", "."]],
    )


def test_a_link_between_local_and_virtual_names_fails_on_the_local_lookup_first(differential, tmp_path):
    """linkat01: linkat/renameat with one name virtual and the other relative to a local
    descriptor that is no directory (ENOTDIR) or not open (EBADF), or naming nothing
    (ENOENT), answers that, as the kernel's lookups come before its EXDEV (which a local
    directory cannot show: both names are on one filesystem there)."""
    local = tmp_path / "elsewhere"
    local.mkdir()
    (local / "here").write_text("x")
    differential(
        [["put", "f", "x"], ["open", str(local), "RDONLY|DIRECTORY", 0, "l"], ["open", str(local / "here"), "RDONLY", 0, "h"],
         ["syscall", NR["linkat"], {"fdnum": "h"}, {"rel": "x"}, AT_FDCWD, "g", 0],     # ENOTDIR
         ["syscall", NR["linkat"], 999, {"rel": "x"}, AT_FDCWD, "g", 0],                 # EBADF
         ["syscall", NR["linkat"], {"fdnum": "l"}, {"rel": "missing"}, AT_FDCWD, "g", 0],  # ENOENT
         ["syscall", NR["linkat"], AT_FDCWD, "f", {"fdnum": "h"}, {"rel": "x"}, 0],      # ENOTDIR
         ["syscall", NR["linkat"], AT_FDCWD, "f", 999, {"rel": "x"}, 0],                  # EBADF
         ["syscall", NR["linkat"], AT_FDCWD, "f", {"fdnum": "l"}, {"rel": "no/x"}, 0],    # ENOENT
         ["listdir"]],
    )


CHATTR_PROBE = r"""
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.ioctl(fd, 0x40086602, struct.pack("l", 0x10))   # FS_IOC_SETFLAGS, FS_IMMUTABLE_FL
    print("set")
except OSError as exc:
    print("set:", os.strerror(exc.errno))
os.write(fd, b"still writable\n")
os.close(fd)
print(open(sys.argv[1]).read(), end="")
"""


def test_inode_flags_are_not_set_on_the_cache_file(objmount, tmp_path):
    """setxattr03: chattr +i through a virtual descriptor (FS_IOC_SETFLAGS) made the cache
    file itself immutable (objmount could no longer fill, evict or replace it, and the flag
    never reached the bucket): ENOTTY, as a filesystem without inode flags answers."""
    store = tmp_path / "store"
    store.mkdir()
    run = objmount([sys.executable, "-c", CHATTR_PROBE, "/w/f"], "-m", f"/w=file://{store}")
    assert run.returncode == 0, run.stderr
    assert run.text == "set: Inappropriate ioctl for device\nstill writable\n"
    assert (store / "f").read_text() == "still writable\n"


def test_reads_through_o_noatime_leave_atime_alone(differential):
    """open12: a read through a descriptor opened with O_NOATIME (or given it by F_SETFL)
    does not move atime; the same read through another descriptor does (relatime: the
    atime is set before the mtime first)."""
    old = 1_000_000_000 * 10**9
    differential(
        [["put", "f", "data"], ["utimensat", "f", old, old + 10**9],
         ["open", "f", "RDONLY|NOATIME", 0, "n"], ["read", "n", 4], ["pread", "n", 2, 0], ["stat", "f"],
         ["mmap_read", "n", 4], ["stat", "f"], ["close", "n"],
         ["mkdir", "d"], ["utimensat", "d", old, old + 10**9], ["open", "d", "RDONLY|DIRECTORY|NOATIME", 0, "dd"],
         ["listdir", "d"], ["stat", "d"], ["close", "dd"],
         ["open", "f", "RDONLY", 0, "r"], ["read", "r", 4], ["stat", "f"]],
    )


SGID_PROBE = r"""
import os, stat, sys
top = sys.argv[1]
d = os.path.join(top, "d")
os.mkdir(d)
os.chown(d, 65534, 4242)
os.chmod(d, 0o2777)
os.mkdir(os.path.join(top, "s"), 0o4777)          # mkdir drops S_ISUID
os.setgroups([])
os.setegid(65534)
os.seteuid(65534)
for mask in (0, 0o010):
    os.umask(mask)
    name = os.path.join(d, "f%o" % mask)
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o2777))
    print(oct(stat.S_IMODE(os.stat(name).st_mode)))
print(oct(stat.S_IMODE(os.stat(os.path.join(top, "s")).st_mode)))
"""


@root_only
def test_a_new_file_in_a_setgid_directory_loses_setgid_whatever_the_umask(objmount, tmp_path):
    """creat09 (CVE-2018-13405): a file a non-member creates with S_ISGID in a setgid
    directory loses the bit, judged on the mode asked for before the umask (with umask
    010 the bit stayed)."""
    native, run, _ = _natively_and_on_a_store(objmount, tmp_path, SGID_PROBE)
    assert run.text == native.stdout


def test_an_input_structure_the_program_cannot_read_is_efault(differential):
    """utimensat01: utimensat/utimes with times at an unreadable address, writev with its
    iovecs there, openat2 with its open_how there are EFAULT (they were EIO, an 'internal
    error': the short read was unpacked)."""
    differential(
        [["put", "f", "x"], ["open", "f", "RDWR", 0, "a"],
         ["syscall", NR["utimensat"], AT_FDCWD, "f", 1, 0], ["syscall", 235, "f", 1],      # utimes
         ["syscall", SYS_IO["writev"], {"fdnum": "a"}, 1, 1],
         ["syscall", SYS_IO["pwritev"], {"fdnum": "a"}, 8, 1, 0, 0],
         ["syscall", 437, AT_FDCWD, "f", 1, 24],                                           # openat2
         ["syscall", 188, "f", {"rel": "user.x"}, 1, 4, 0],                               # setxattr
         ["cat", "f"]],
    )


def test_open_creat_of_a_directory_and_a_wrapping_copy_range(differential):
    """open11: open(O_CREAT) of an existing directory (or a symlink to one) is EISDIR (it
    opened); copy_file_range02: a copy whose range wraps past the largest offset is
    EOVERFLOW (it was EFBIG)."""
    differential(
        [["mkdir", "d"], ["symlink", "d", "l"], ["open", "d", "RDONLY|CREAT", 0o644, "a"],
         ["open", "l", "RDONLY|CREAT", 0o644, "b"], ["open", "d", "RDONLY|CREAT|EXCL", 0o644, "c"],
         ["put", "src", "0123456789"], ["open", "src", "RDONLY", 0, "s"], ["open", "dst", "WRONLY|CREAT", 0o644, "t"],
         ["syscall", 326, {"fdnum": "s"}, 0, {"fdnum": "t"}, {"bytes": (2**63 - 2).to_bytes(8, "little").hex()}, -1, 0],
         ["syscall", 326, {"fdnum": "s"}, 0, {"fdnum": "t"}, 0, 4, 0], ["close", "t"], ["cat", "dst"]],
    )


def test_a_path_over_path_max_is_answered_without_a_log_line(objmount, tmp_path):
    """LTP's ENAMETOOLONG cases (access04, chmod06, creat06...) each printed 'objmount: path
    argument at 0x...: file name too long' on the program's stderr; the kernel prints
    nothing (a name over 255 bytes, or a bad pointer's EFAULT line, are as they were)."""
    store = tmp_path / "store"
    store.mkdir()
    probe = "import os\ntry: os.stat('/w/' + 'a/' * 2100)\nexcept OSError as e: print(e.strerror)"
    run = objmount([sys.executable, "-c", probe], "-m", f"/w=file://{store}")
    assert run.text == "File name too long\n" and "too long" not in run.stderr, run.stderr
