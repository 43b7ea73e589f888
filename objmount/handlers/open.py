"""open, openat, openat2, creat: virtual files open as their local sparse cache file,
virtual directories as an empty placeholder directory (getdents is emulated)."""

from __future__ import annotations

import errno
import os
import struct

from tracer import SyscallInterrupted
from vfs import Kind, VfsError
from vfs.special import is_special

from .. import permissions as perm
from ..linux import SYS
from ..process import OpenDescription
from .changes import _resolve_parent, umask_of
from .registry import path_syscall
from .special import open_node

O_ACCMODE = 0o3
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_CLOEXEC = 0o2000000
O_PATH = 0o10000000
O_NOATIME = 0o1000000


@path_syscall("open")
def on_open(sup, stop) -> None:
    _open(sup, stop, flags=stop.arg(1))


@path_syscall("openat")
def on_openat(sup, stop) -> None:
    _open(sup, stop, flags=stop.arg(2))


# openat2's struct open_how and what build_open_how/build_open_flags accept
OPEN_HOW_SIZE_VER0 = 24
VALID_OPEN_FLAGS = 0o37777777     # O_ACCMODE .. __O_TMPFILE: every flag the kernel defines
O_TMPFILE_BIT = 0o20000000
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20


def _refused(err: int, message: str) -> VfsError:
    exc = VfsError(err, message)
    exc.quiet = True   # the kernel's answer to a malformed call: no log line
    return exc


@path_syscall("openat2")
def on_openat2(sup, stop) -> None:
    """RESOLVE_CACHED (io_uring's try without blocking) is honoured by resolving anyway,
    as a filesystem with everything cached would."""
    size = stop.arg(3)
    if size < OPEN_HOW_SIZE_VER0:
        raise _refused(errno.EINVAL, "openat2: open_how too small")
    if size > 4096:
        raise _refused(errno.E2BIG, "openat2: open_how over a page")
    how = stop.read_in(stop.arg(2), size)
    if any(how[OPEN_HOW_SIZE_VER0:]):   # a newer struct's fields we do not know, set
        raise _refused(errno.E2BIG, "openat2: unknown open_how fields")
    flags, mode, resolve = struct.unpack_from("<QQQ", how)
    if flags & ~VALID_OPEN_FLAGS:
        raise _refused(errno.EINVAL, f"openat2: unknown flags {flags:#o}")
    if (mode & ~0o7777) if flags & (O_CREAT | O_TMPFILE_BIT) else mode:
        raise _refused(errno.EINVAL, f"openat2: mode {mode:#o} with flags {flags:#o}")
    if resolve & ~0x3F or resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        raise _refused(errno.EINVAL, f"openat2: resolve {resolve:#x}")
    if resolve & RESOLVE_CACHED and flags & (O_TRUNC | O_CREAT | O_TMPFILE_BIT):
        raise _refused(errno.EAGAIN, "openat2: RESOLVE_CACHED cannot create or truncate")
    _open(sup, stop, flags=flags, resolve_how=resolve)


def _restricted(sup, stop, target, resolve_how: int, flags: int, resolved_by):
    """openat2's RESOLVE_* restrictions on a virtual path: the kernel refuses what crosses
    them (ELOOP, EXDEV); objmount resolves the path itself, so it checks them here, from
    the path as given, its base directory and the path symlinks led to."""
    if resolve_how & RESOLVE_NO_MAGICLINKS and target.exact:
        raise VfsError(errno.ELOOP, f"{target.path}: a /proc magic link with RESOLVE_NO_MAGICLINKS")
    raw = sup.read_path(stop, stop.arg(1))
    dirfd = stop.sarg(0)
    proc = sup.proc(stop)
    desc = proc.fds.get(dirfd) if dirfd != -100 else None
    base = desc.path if desc is not None else (proc.fs.vcwd if dirfd == -100 else None)
    if resolve_how & (RESOLVE_BENEATH | RESOLVE_IN_ROOT | RESOLVE_NO_XDEV):
        beneath = resolve_how & (RESOLVE_BENEATH | RESOLVE_IN_ROOT)
        if base is None or (beneath and raw.startswith("/")) or target.exact:
            # from a local directory into a mount, an absolute path, a magic link
            raise VfsError(errno.EXDEV, f"{target.path}: outside the starting directory")
        depth = 0
        for part in raw.split("/"):
            depth += -1 if part == ".." else (part not in ("", "."))
            if depth < 0 and beneath:
                raise VfsError(errno.EXDEV, f"{target.path}: '..' above the starting directory")
    path = resolved_by(target)
    if resolve_how & RESOLVE_NO_SYMLINKS and path.path != target.path:
        raise VfsError(errno.ELOOP, f"{target.path}: a symbolic link with RESOLVE_NO_SYMLINKS")
    if resolve_how & (RESOLVE_BENEATH | RESOLVE_IN_ROOT | RESOLVE_NO_XDEV):
        inside = base if resolve_how & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) else _mount_of(sup, base)
        if not (path.path == inside or path.path.startswith(inside.rstrip("/") + "/")):
            # IN_ROOT would resolve an escaping link inside the root: refused, not emulated
            raise VfsError(errno.EXDEV, f"{target.path}: resolves outside {inside}")
    return path


def _mount_of(sup, path: str) -> str:
    """The mount root (or bucket root) a virtual path lies in."""
    for target in sorted(sup.mounts.targets, key=len, reverse=True):
        if path == target or path.startswith(target + "/"):
            return target
    parts = path.split("/")
    return "/".join(parts[:4]) if len(parts) > 3 else path   # /objmount/s3/BUCKET


@path_syscall("creat")
def on_creat(sup, stop) -> None:
    _open(sup, stop, flags=os.O_WRONLY | O_CREAT | O_TRUNC)


def _open(sup, stop, flags: int, resolve_how: int = 0) -> None:
    meta = None
    # an open that reads asks the bucket with the GET of the first bytes (vfs/namespace.py)
    reads = (flags & O_ACCMODE) != os.O_WRONLY and not flags & (O_TRUNC | O_PATH | O_DIRECTORY)

    def resolve(target):
        if resolve_how:
            return _restricted(sup, stop, target, resolve_how, flags, resolve_plain)
        return resolve_plain(target)

    def resolve_plain(target):
        try:
            # close-to-open for names too: one last seen missing may exist now
            return sup.resolve(target, follow=not flags & O_NOFOLLOW, recheck_missing=True, data=reads)
        except VfsError as exc:
            if exc.errno != errno.ENOENT or not flags & O_CREAT:
                raise
            return _resolve_parent(sup, target)  # a new name below a symlinked directory
    # O_NOFOLLOW, and O_CREAT|O_EXCL, act on a /proc/self/fd/N link itself (ELOOP, EEXIST)
    follow_last = not flags & O_NOFOLLOW and (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL)
    if follow_last and (linked := sup.nameless_link(stop)) is not None:
        _reopen(sup, stop, flags, linked)
        return
    target = sup.virtual_arg(stop, resolve=resolve, follow_last=follow_last)
    if target is None:
        return
    try:
        meta = sup.vfs.lookup(target.path)
    except VfsError as exc:
        if exc.errno != errno.ENOENT or not flags & O_CREAT:
            raise
    writes = (flags & O_ACCMODE) != os.O_RDONLY or flags & O_TRUNC
    if meta is None:
        if target.wants_dir:
            raise VfsError(errno.EISDIR, f"{target.path}: cannot create a directory with open")
        parent = sup.may_create(target.path)
        owner = perm.new_owner(parent, stop_mode(stop, flags), False, sup.creds(stop), umask_of(stop.tid))
        _open_file(sup, stop, flags, target.path, owner)
        return
    if flags & O_CREAT and flags & O_EXCL:
        raise VfsError(errno.EEXIST, f"{target.path}: exists")
    if meta.kind is Kind.SYMLINK:  # only reached with O_NOFOLLOW
        if flags & O_PATH:  # a descriptor for the link itself, as the kernel gives
            _finish(sup, stop, flags,
                    OpenDescription(target.path, is_dir=False, meta=meta, path_only=True), sup.vfs.placeholder_dir)
            return
        raise VfsError(errno.ELOOP, f"{target.path}: is a symbolic link")
    if meta.kind is Kind.DIR:
        if writes or flags & O_CREAT:   # do_open: O_CREAT on a directory is EISDIR
            raise VfsError(errno.EISDIR, f"{target.path}: is a directory")
        if not flags & O_PATH:
            sup.allow(perm.permission(meta, perm.R_OK, sup.creds(stop)), target.path)
            _noatime(sup, stop, flags, meta, target.path)
        desc = OpenDescription(target.path, is_dir=True, meta=meta, path_only=bool(flags & O_PATH),
                               noatime=bool(flags & O_NOATIME))
        local = sup.vfs.placeholder_dir
    else:
        if flags & O_DIRECTORY or target.wants_dir:
            raise VfsError(errno.ENOTDIR, f"{target.path}: not a directory")
        meta = sup.vfs.lookup(target.path, exact=True, data=reads)  # the type: a listing does not say
        if is_special(meta.mode) and not flags & O_PATH:
            open_node(sup, stop, target.path, meta, flags)
            return
        if flags & O_PATH:
            desc = OpenDescription(target.path, is_dir=False, meta=meta, path_only=True)
            _finish(sup, stop, flags, desc, sup.vfs.placeholder_dir)
            return
        creds = sup.creds(stop)
        sup.allow(perm.permission(meta, _wanted(flags), creds), target.path)
        _noatime(sup, stop, flags, meta, target.path)
        _open_file(sup, stop, flags, target.path, None)
        if flags & O_TRUNC and (mode := perm.write_kills_setid(meta, creds)) is not None:
            # A truncating open clears set-id bits, as a truncate does; a plain open for
            # writing clears them at its first write (io.py). The file is open now: the
            # new mode goes up with its data.
            try:
                sup.vfs.setattr(target.path, mode)
            except VfsError as exc:
                sup.report(exc)
        return
    _finish(sup, stop, flags, desc, local)


def _reopen(sup, stop, flags: int, linked: OpenDescription) -> None:
    """An open of /proc/PID/fd/N whose file has no name any more: a new description of
    that very file, as the kernel's link gives (no object is it; nothing reaches the bucket)."""
    if flags & O_DIRECTORY:
        raise VfsError(errno.ENOTDIR, f"{linked.path}: not a directory")
    meta = linked.file.current_meta()
    if flags & O_PATH:
        _finish(sup, stop, flags, OpenDescription(linked.path, is_dir=False, meta=meta, path_only=True),
                sup.vfs.placeholder_dir)
        return
    sup.allow(perm.permission(meta, _wanted(flags), sup.creds(stop)), linked.path)
    file = sup.vfs.reopen(linked.file, flags & (O_ACCMODE | O_TRUNC))
    desc = OpenDescription(linked.path, is_dir=False, file=file, meta=file.meta, append=bool(flags & os.O_APPEND),
                           noatime=bool(flags & O_NOATIME))
    _finish(sup, stop, flags, desc, file.cache_path)


def _noatime(sup, stop, flags: int, meta, path: str) -> None:
    """O_NOATIME is for the file's owner (or CAP_FOWNER) only: EPERM (may_open)."""
    if flags & O_NOATIME and not perm.is_owner(meta, sup.creds(stop)):
        sup.allow(errno.EPERM, path)


def stop_mode(stop, flags: int) -> int:
    """The mode argument of the open call being handled."""
    if stop.nr == SYS.open:
        return stop.arg(2)
    if stop.nr == SYS.creat:
        return stop.arg(1)
    if stop.nr == SYS.openat2:
        how = stop.read(stop.arg(2), 16)
        return struct.unpack("<QQ", how)[1] if len(how) == 16 else 0o644
    return stop.arg(3)


def _wanted(flags: int) -> int:
    """The access an open asks for (O_TRUNC needs write permission too)."""
    acc = flags & O_ACCMODE
    want = perm.R_OK if acc in (os.O_RDONLY, os.O_RDWR) else 0
    if acc in (os.O_WRONLY, os.O_RDWR) or flags & O_TRUNC:
        want |= perm.W_OK
    return want


def _open_file(sup, stop, flags: int, path: str, owner: tuple[int, int, int] | None):
    """owner: (uid, gid, mode) of a file this open may create."""
    uid, gid, mode = owner or (None, None, 0o644)
    file = sup.vfs.open(path, flags & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC), mode, uid, gid)
    desc = OpenDescription(path, is_dir=False, file=file, meta=file.meta, append=bool(flags & os.O_APPEND),
                           noatime=bool(flags & O_NOATIME))
    if flags & O_EXCL:  # the vfs made the file; the cache file exists already
        _set_flags(sup, stop, flags & ~O_EXCL)
    _finish(sup, stop, flags, desc, file.cache_path)
    return file


def _set_flags(sup, stop, flags: int) -> None:
    if stop.nr == SYS.open:
        stop.set_arg(1, flags)
    elif stop.nr == SYS.openat:
        stop.set_arg(2, flags)
    elif stop.nr == SYS.openat2:
        how = bytearray(stop.read(stop.arg(2), 24))
        how[0:8] = struct.pack("<Q", flags)
        stop.set_arg(2, stop.push(bytes(how)))


def _finish(sup, stop, flags: int, desc: OpenDescription, local: str) -> None:
    """Hand the program the local stand-in, opened by the supervisor (handover.py), at the
    number the kernel gives; without a channel, the program opens its path."""
    fd = sup.handover.hand_over(sup, stop, local, flags)
    if fd is None:
        sup.set_path(stop, local)
        try:
            fd = stop.run()
        except SyscallInterrupted:
            desc.close()   # the kernel restarts the open, which stops here again
            raise
    if fd < 0:
        desc.close()
        return
    sup.install(stop, fd, desc, bool(flags & O_CLOEXEC))
