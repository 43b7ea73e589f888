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


@path_syscall("openat2")
def on_openat2(sup, stop) -> None:
    how = stop.read(stop.arg(2), 8)  # struct open_how starts with u64 flags
    flags = struct.unpack("<Q", how)[0] if len(how) == 8 else 0
    _open(sup, stop, flags=flags)


@path_syscall("creat")
def on_creat(sup, stop) -> None:
    _open(sup, stop, flags=os.O_WRONLY | O_CREAT | O_TRUNC)


def _open(sup, stop, flags: int) -> None:
    meta = None
    # an open that reads asks the bucket with the GET of the first bytes (vfs/namespace.py)
    reads = (flags & O_ACCMODE) != os.O_WRONLY and not flags & (O_TRUNC | O_PATH | O_DIRECTORY)

    def resolve(target):
        try:
            # close-to-open for names too: one last seen missing may exist now
            return sup.resolve(target, follow=not flags & O_NOFOLLOW, recheck_missing=True, data=reads)
        except VfsError as exc:
            if exc.errno != errno.ENOENT or not flags & O_CREAT:
                raise
            return _resolve_parent(sup, target)  # a new name below a symlinked directory
    target = sup.virtual_arg(stop, resolve=resolve)
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
        owner = perm.new_owner(parent, stop_mode(stop, flags) & ~umask_of(stop.tid), False, sup.creds(stop))
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
        if writes:
            raise VfsError(errno.EISDIR, f"{target.path}: is a directory")
        if not flags & O_PATH:
            sup.allow(perm.permission(meta, perm.R_OK, sup.creds(stop)), target.path)
            _noatime(sup, stop, flags, meta, target.path)
        desc = OpenDescription(target.path, is_dir=True, meta=meta, path_only=bool(flags & O_PATH))
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
    desc = OpenDescription(path, is_dir=False, file=file, meta=file.meta, append=bool(flags & os.O_APPEND))
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
