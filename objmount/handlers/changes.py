"""Namespace and metadata changes on virtual paths: unlink, mkdir, rmdir, rename,
symlink, link, chmod, chown, utimes, truncate, mknod. Each is one vfs call and the syscall
is skipped with its result; a local path passes to the kernel untouched."""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import struct
import time

from tracer import kernel
from vfs import Kind, VfsError

from .. import permissions as perm
from ..linux import AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_SYMLINK_NOFOLLOW, RENAME_NOREPLACE, SYS
from ..paths import Target, fd_link_form, fd_link_name
from .registry import fd_syscall, path_syscall

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


def umask_of(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _path(sup, stop, follow: bool):
    """The call's virtual path, or None: the kernel answers (see Supervisor.virtual_arg).
    follow=False: symlinks are followed in the directories above, not in the last name."""
    def resolve(target):
        if target.dots:
            _refuse_dots(stop, target)
        return sup.resolve(target, follow=follow) if follow else _resolve_parent(sup, target)
    target = sup.virtual_arg(stop, resolve=resolve, follow_last=follow)
    return target.path if target is not None else None


def _refuse_dots(stop, target) -> None:
    """'.' or '..' as the last component of a name to create or remove: the kernel's
    answers (do_rmdir, do_unlinkat, filename_create)."""
    removing_dir = stop.nr == SYS.rmdir or (stop.nr == SYS.unlinkat and stop.arg(2) & AT_REMOVEDIR)
    if removing_dir:
        err = errno.EINVAL if target.dots == "." else errno.ENOTEMPTY
    elif stop.nr in (SYS.unlink, SYS.unlinkat):
        err = errno.EISDIR
    elif stop.nr in (SYS.mkdir, SYS.mkdirat):
        err = errno.EEXIST
    else:
        return
    raise VfsError(err, f"{target.path}: '{target.dots}' as the last component")


def _resolve_parent(sup, target):
    """Resolve symlinks in the directories of a path, not in its last component; the
    directory above must be one (ENOTDIR, as the kernel's walk says)."""
    head, _, name = target.path.rpartition("/")
    if not name or not sup.mounts.is_virtual(head or "/"):
        return target  # a mount's root: its parent is local, the kernel's business
    parent = sup.resolve(type(target)(True, head or "/"), follow=True)
    if parent.virtual and sup.vfs.lookup(parent.path).kind is not Kind.DIR:
        raise VfsError(errno.ENOTDIR, f"{parent.path}: not a directory")
    path = parent.path.rstrip("/") + "/" + name
    virtual = sup.mounts.is_virtual(path)
    if virtual:
        sup.search(path)   # looking the last name up needs search on its directory (lchown, link's old name)
    return type(target)(virtual, path, target.wants_dir)


def _done(stop, fn, *args) -> None:
    fn(*args)
    stop.skip(0)


# --- create and remove ----------------------------------------------------------------
@path_syscall("mkdir", "mkdirat")
def on_mkdir(sup, stop) -> None:
    at = stop.nr == SYS.mkdirat
    path = _path(sup, stop, follow=False)
    if path is not None:
        path = path.rstrip("/") or "/"
        parent = sup.may_create(path)
        uid, gid, mode = perm.new_owner(parent, stop.arg(2 if at else 1) & 0o1777, True, sup.creds(stop),
                                        umask_of(stop.tid))  # vfs_mkdir keeps rwx and S_ISVTX only
        _done(stop, sup.vfs.mkdir, path, mode, uid, gid)


@path_syscall("rmdir")
def on_rmdir(sup, stop) -> None:
    path = _path(sup, stop, follow=False)
    if path is not None:
        sup.may_delete(path)
        _done(stop, sup.vfs.rmdir, path)
        sup.procs.removed(path)


@path_syscall("unlink", "unlinkat")
def on_unlink(sup, stop) -> None:
    at = stop.nr == SYS.unlinkat
    path = _path(sup, stop, follow=False)
    if path is None:
        return
    sup.may_delete(path)
    if at and stop.arg(2) & AT_REMOVEDIR:
        _done(stop, sup.vfs.rmdir, path)
        sup.procs.removed(path)
    else:
        _done(stop, sup.vfs.unlink, path)


@path_syscall("symlink", "symlinkat")
def on_symlink(sup, stop) -> None:
    path = _path(sup, stop, follow=False)
    if path is not None:
        target = sup.read_path(stop, stop.arg(0))
        if not target:   # the kernel's answer to an empty link target
            raise VfsError(errno.ENOENT, f"{path}: empty symlink target")
        uid, gid, _ = perm.new_owner(sup.may_create(path), 0o777, False, sup.creds(stop))
        _done(stop, sup.vfs.symlink, target, path, uid, gid)


# --- rename and link --------------------------------------------------------------------
def _local_lookup(sup, stop, n: int, target) -> None:
    """Raise what the kernel's lookup of the n-th path (a local one) would: EBADF or
    ENOTDIR for its dirfd, ENOENT/ENOTDIR for the old name or the new name's directory."""
    if target is not None:
        full = target.path
    else:
        raw = sup.read_path(stop, sup.path_addr(stop, n))
        dirfd = sup.path_dirfd(stop, n)
        if fd_link_name(raw):   # the caller's own descriptors, not ours
            full = re.sub(r"^/(proc/(self|thread-self)|dev)/fd/", f"/proc/{stop.tid}/fd/", fd_link_form(raw))
        elif raw.startswith("/"):
            full = raw
        else:
            base = f"/proc/{stop.tid}/cwd" if dirfd is None or dirfd == -100 else f"/proc/{stop.tid}/fd/{dirfd}"
            try:
                if not stat.S_ISDIR(os.stat(base).st_mode):
                    raise _quiet(errno.ENOTDIR, f"descriptor {dirfd}: not a directory")
            except FileNotFoundError:
                raise _quiet(errno.EBADF, f"descriptor {dirfd}: not open") from None
            full = base + "/" + raw
    try:
        os.lstat(full if n == 0 else os.path.dirname(full.rstrip("/")) or "/")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
            raise _quiet(exc.errno, f"{full}: {exc.strerror}") from None


def _quiet(err: int, message: str) -> VfsError:
    exc = VfsError(err, message)
    exc.quiet = True   # the kernel's answer about a local name: no log line
    return exc


def _two_paths(sup, stop, follow_old=False, empty_old=False):
    """The virtual (old, new) paths of a rename or link; None when the kernel answers (both
    local, rewritten if they needed resolving) or the call failed. empty_old: linkat's
    AT_EMPTY_PATH, an empty old path names the file open on its dirfd."""
    old_t, new_t = (t if t is None or not t.walk else sup.walk_dots(t) for t in (sup.path_arg(stop, 0),
                                                                                 sup.path_arg(stop, 1)))
    # A /proc/self/fd/N link as a name (the new one; the old one unless followed) is /proc's
    # link itself: the kernel's (EXDEV, EPERM), never the file it leads to.
    old_t = None if old_t is not None and old_t.exact and not old_t.wants_dir and not follow_old else old_t
    new_t = None if new_t is not None and new_t.exact and not new_t.wants_dir else new_t
    # A null or empty path is the kernel's EFAULT or ENOENT, whatever the other path is;
    # target() leaves them to the kernel, which must not make them EXDEV here.
    if old_t is None and empty_old and sup.path_empty(stop, 0):
        desc = sup.desc(stop, sup.path_dirfd(stop, 0))
        if desc is not None and desc.is_dir:
            raise VfsError(errno.EPERM, f"{desc.path}: hard links to directories are not allowed")
        old_t = Target(True, desc.path) if desc is not None else None
    for n, t in enumerate((old_t, new_t)):
        if t is None and not sup.path_addr(stop, n):
            raise VfsError(errno.EFAULT, "null path argument")
        if t is None and sup.path_empty(stop, n):
            raise VfsError(errno.ENOENT, "empty path argument")
    if stop.nr in (SYS.rename, SYS.renameat, SYS.renameat2) and any(t is not None and t.virtual and t.dots for t in (old_t, new_t)):
        raise VfsError(errno.EBUSY, "rename: '.' or '..' as the last component")
    old = _resolve_parent(sup, old_t) if old_t is not None and old_t.virtual else old_t
    new = _resolve_parent(sup, new_t) if new_t is not None and new_t.virtual else new_t
    old_virtual = old is not None and old.virtual
    new_virtual = new is not None and new.virtual
    if old_virtual != new_virtual:
        # The kernel looks both names up before it compares their filesystems: the local
        # one's lookup errors (a bad or non-directory dirfd, a missing name) come first.
        _local_lookup(sup, stop, 0 if new_virtual else 1, old if new_virtual else new)
        stop.fail(errno.EXDEV)  # across filesystems: mv and friends copy instead
        return None
    if not old_virtual:
        if old is not None:
            sup.set_path(stop, old.path, 0)
        if new is not None:
            sup.set_path(stop, new.path, 1)
        return None
    if follow_old:
        old = sup.resolve(old_t, follow=True)
    return old.path, new.path


@path_syscall("rename", "renameat", "renameat2")
def on_rename(sup, stop) -> None:
    flags = stop.arg(4) if stop.nr == SYS.renameat2 else 0
    paths = _two_paths(sup, stop)
    if paths is None:
        return
    if flags & ~RENAME_NOREPLACE:
        raise VfsError(errno.EINVAL, "RENAME_EXCHANGE and RENAME_WHITEOUT are not supported on objects")
    _may_rename(sup, *paths)
    _done(stop, sup.vfs.rename, paths[0], paths[1], bool(flags & RENAME_NOREPLACE))
    if paths[0] != paths[1]:
        sup.procs.renamed(*paths)


@path_syscall("link", "linkat")
def on_link(sup, stop) -> None:
    at = stop.nr == SYS.linkat
    follow = at and bool(stop.arg(4) & AT_SYMLINK_FOLLOW)
    empty_old = at and bool(stop.arg(4) & AT_EMPTY_PATH)
    paths = _two_paths(sup, stop, follow, empty_old)
    if paths is not None:
        _may_link(sup, *paths)
        _done(stop, sup.vfs.link, paths[0], paths[1])


def _may_rename(sup, old: str, new: str) -> None:
    """As the kernel's may_delete/may_create for both names: the sticky rule on each, and
    a directory moved to another parent needs write permission on itself (its '..')."""
    old_meta = sup.vfs.lookup(old)
    sup.may_delete(old, old_meta)
    try:
        new_meta = sup.vfs.lookup(new)
    except VfsError:
        new_meta = None
    if new_meta is None:
        sup.may_create(new)
    else:
        sup.may_delete(new, new_meta)
    if old_meta.kind is Kind.DIR and old.rpartition("/")[0] != new.rpartition("/")[0]:
        sup.allow(perm.permission(old_meta, perm.W_OK, sup.creds()), old)


def _may_link(sup, old: str, new: str) -> None:
    """may_create on the new name; fs.protected_hardlinks: a non-owner links only a
    regular file it may read and write."""
    sup.may_create(new)
    meta = sup.vfs.lookup(old)
    creds = sup.creds()
    if not perm.is_owner(meta, creds) and _protected_hardlinks() and (
            meta.kind is not Kind.FILE or meta.mode & stat.S_ISUID
            or (meta.mode & (stat.S_ISGID | stat.S_IXGRP)) == (stat.S_ISGID | stat.S_IXGRP)
            or perm.permission(meta, perm.R_OK | perm.W_OK, creds)):
        sup.allow(errno.EPERM, new)


def _protected_hardlinks() -> bool:
    try:
        with open("/proc/sys/fs/protected_hardlinks") as f:
            return f.read().strip() != "0"
    except OSError:
        return True


# --- attributes -------------------------------------------------------------------------

def meta_of(sup, path: str, **how):
    """The Meta of a path (`how`: Vfs.lookup's), or of an open file without a name
    (_Nameless: what its descriptors' fstat shows)."""
    if isinstance(path, _Nameless):
        return path.file.current_meta()
    return sup.vfs.lookup(path, **how)


def _attrs_of(sup, path: str):
    """(meta, open file) of what a chmod, chown or utimes changes: a path, or an open
    file without a name (_desc_path), which is changed alone."""
    return meta_of(sup, path, attrs=True), getattr(path, "file", None)


def _setattr(sup, stop, path, file, *args) -> None:
    if file is not None:
        _done(stop, sup.vfs.setattr_open, file, *args)
    else:
        _done(stop, sup.vfs.setattr, path, *args)


def _chmod(sup, stop, path: str, mode: int) -> None:
    meta, file = _attrs_of(sup, path)
    if meta.kind is Kind.SYMLINK:  # only reached with AT_SYMLINK_NOFOLLOW
        err = VfsError(errno.EOPNOTSUPP, f"{path}: the mode of a symbolic link cannot be changed")
        err.quiet = True   # ext4's answer too (tar x asks): no log line
        raise err
    creds = sup.creds(stop)
    sup.allow(perm.may_chmod(meta, creds), path)
    _setattr(sup, stop, path, file, perm.chmod_mode(meta, mode, creds))


def _chown(sup, stop, path: str, uid: int, gid: int) -> None:
    meta, file = _attrs_of(sup, path)
    uid = None if uid in (-1, 0xFFFFFFFF) else uid
    gid = None if gid in (-1, 0xFFFFFFFF) else gid
    creds = sup.creds(stop)
    sup.allow(perm.may_chown(meta, uid, gid, creds), path)
    mode = perm.chown_mode(meta, uid, gid, creds) if meta.kind is not Kind.SYMLINK else None
    _setattr(sup, stop, path, file, mode, uid, gid)  # chown(-1, -1) too: ctime is now, as the kernel sets it


class _Nameless(str):
    """The path a descriptor was opened at, whose file has no name any more (unlinked or
    replaced while open): an attribute change through it is the open file's alone."""

    def __new__(cls, path: str, file):
        obj = super().__new__(cls, path)
        obj.file = file
        return obj


def _desc_path(sup, stop, fd: int, through_descriptor: bool = False) -> str | None:
    """The virtual path a descriptor names. through_descriptor: the call acts on the open
    file itself (fchmod, fchown, futimens), which an O_PATH descriptor cannot (EBADF);
    the *at(fd, "", AT_EMPTY_PATH) forms only name the file, and may."""
    desc = sup.desc(stop, fd)
    if desc is None:
        return None
    if through_descriptor and desc.path_only:
        raise VfsError(errno.EBADF, f"{desc.path}: an O_PATH descriptor")
    if sup.vfs.nameless(desc.file):
        return _Nameless(desc.path, desc.file)
    return desc.path


@path_syscall("chmod", "fchmodat", "fchmodat2")
def on_chmod(sup, stop) -> None:
    at = stop.nr != SYS.chmod
    flags = stop.arg(3) if stop.nr == SYS.fchmodat2 else 0
    if at and flags & AT_EMPTY_PATH and sup.path_empty(stop):
        path = _desc_path(sup, stop, sup.path_dirfd(stop))
    else:
        path = _path(sup, stop, follow=not flags & AT_SYMLINK_NOFOLLOW)
    if path is not None:
        _chmod(sup, stop, path, stop.arg(2 if at else 1))


@fd_syscall(fchmod=(0,))
def on_fchmod(sup, stop) -> None:
    path = _desc_path(sup, stop, stop.sarg(0), through_descriptor=True)
    if path is not None:
        _chmod(sup, stop, path, stop.arg(1))


def _sint(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@path_syscall("chown", "lchown", "fchownat")
def on_chown(sup, stop) -> None:
    at = stop.nr == SYS.fchownat
    flags = stop.arg(4) if at else 0
    if at and flags & AT_EMPTY_PATH and sup.path_empty(stop):
        path = _desc_path(sup, stop, sup.path_dirfd(stop))
    else:
        follow = stop.nr == SYS.chown or (at and not flags & AT_SYMLINK_NOFOLLOW)
        path = _path(sup, stop, follow=follow)
    if path is not None:
        _chown(sup, stop, path, _sint(stop.arg(2 if at else 1)), _sint(stop.arg(3 if at else 2)))


@fd_syscall(fchown=(0,))
def on_fchown(sup, stop) -> None:
    path = _desc_path(sup, stop, stop.sarg(0), through_descriptor=True)
    if path is not None:
        _chown(sup, stop, path, _sint(stop.arg(1)), _sint(stop.arg(2)))


def _times_from_timespecs(stop, addr: int) -> tuple[int | None, int | None]:
    """utimensat's times[2] as (atime_ns, mtime_ns); None: leave that time as it is."""
    if addr == 0:
        now = time.time_ns()
        return now, now
    times = struct.unpack("<qqqq", stop.read_in(addr, 32))
    now = time.time_ns()
    out = []
    for sec, nsec in (times[0:2], times[2:4]):
        if nsec == UTIME_OMIT:
            out.append(None)
        elif nsec == UTIME_NOW:
            out.append(now)
        elif not 0 <= nsec < 1_000_000_000:
            raise VfsError(errno.EINVAL, f"utimensat: tv_nsec {nsec} out of range")
        else:
            out.append(sec * 1_000_000_000 + nsec)
    return out[0], out[1]


def _times_from_timevals(stop, addr: int) -> tuple[int, int]:
    """utimes/futimesat's times[2] (struct timeval: microseconds) as (atime_ns, mtime_ns)."""
    if addr == 0:
        now = time.time_ns()
        return now, now
    times = struct.unpack("<qqqq", stop.read_in(addr, 32))
    if not all(0 <= usec < 1_000_000 for usec in (times[1], times[3])):
        raise VfsError(errno.EINVAL, "utimes: tv_usec out of range")
    return times[0] * 1_000_000_000 + times[1] * 1000, times[2] * 1_000_000_000 + times[3] * 1000


def _utime(sup, stop, path: str, atime_ns: int | None, mtime_ns: int | None, explicit: bool = True) -> None:
    """explicit: times given (not "now"), which only the owner may set. A symbolic link
    (reached with AT_SYMLINK_NOFOLLOW) gets times of its own, as on a local filesystem."""
    meta, file = _attrs_of(sup, path)
    sup.allow(perm.may_utime(meta, explicit, sup.creds(stop)), path)
    _setattr(sup, stop, path, file, None, None, None, mtime_ns, atime_ns)


@path_syscall("utimensat")
def on_utimensat(sup, stop) -> None:
    if sup.path_addr(stop) == 0:  # futimens(fd, times)
        path = _desc_path(sup, stop, sup.path_dirfd(stop), through_descriptor=True)
    else:
        path = _path(sup, stop, follow=not stop.arg(3) & AT_SYMLINK_NOFOLLOW)
    if path is not None:
        addr = stop.arg(2)
        nsecs = struct.unpack("<8xq8xq", stop.read_in(addr, 32)) if addr else (UTIME_NOW, UTIME_NOW)
        if nsecs == (UTIME_OMIT, UTIME_OMIT):
            stop.skip(0)   # nothing to change, nothing checked
            return
        explicit = any(n not in (UTIME_NOW, UTIME_OMIT) for n in nsecs)
        _utime(sup, stop, path, *_times_from_timespecs(stop, addr), explicit)


@path_syscall("utimes", "futimesat", "utime")
def on_utimes(sup, stop) -> None:
    at = stop.nr == SYS.futimesat
    path = _path(sup, stop, follow=True)
    if path is None:
        return
    times = stop.arg(2 if at else 1)
    if stop.nr == SYS.utime and times:  # utime(path, struct utimbuf {actime, modtime}): seconds
        atime, mtime = struct.unpack("<qq", stop.read_in(times, 16))
        atime_ns, mtime_ns = atime * 1_000_000_000, mtime * 1_000_000_000
    else:
        atime_ns, mtime_ns = _times_from_timevals(stop, times)
    _utime(sup, stop, path, atime_ns, mtime_ns, explicit=times != 0)


def _fsize_limit(tgid: int) -> int | None:
    """The process's soft RLIMIT_FSIZE (None: unlimited), from /proc/PID/limits: prlimit()
    refuses a process whose effective uid is not ours (a program that dropped it)."""
    try:
        with open(f"/proc/{tgid}/limits", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Max file size"):
                    soft = line[len("Max file size"):].split()[0]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError):
        pass
    return None


def _file_size_limit(stop, path: str, size: int, length: int) -> None:
    """Growing a file past the caller's RLIMIT_FSIZE: SIGXFSZ and EFBIG, as the kernel's
    inode_newsize_ok (objmount truncates the cache file with its own limits)."""
    if length <= size:
        return
    limit = _fsize_limit(stop.tgid)
    if limit is not None and length > limit:
        kernel.tgkill(stop.tgid, stop.tid, signal.SIGXFSZ)
        exc = VfsError(errno.EFBIG, f"{path}: {length} past the file size limit {limit}")
        exc.quiet = True   # the program's own limit: no log line
        raise exc


@path_syscall("truncate")
def on_truncate(sup, stop) -> None:
    path = _path(sup, stop, follow=True)
    if path is not None:
        length = stop.arg(1)
        if length >= 1 << 63:
            raise VfsError(errno.EINVAL, f"{path}: negative length")
        meta = sup.vfs.lookup(path)
        creds = sup.creds(stop)
        sup.allow(perm.permission(meta, perm.W_OK, creds) if meta.kind is Kind.FILE else errno.EISDIR, path)
        _file_size_limit(stop, path, meta.size, length)
        _done(stop, sup.vfs.truncate, path, length)
        if (mode := perm.write_kills_setid(meta, creds)) is not None:
            sup.vfs.setattr(path, mode)
