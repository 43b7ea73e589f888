"""open, openat, openat2, creat: virtual files open as their local sparse cache file,
virtual directories as an empty placeholder directory (getdents is emulated)."""

from __future__ import annotations

import errno
import os
import struct

from vfs import Kind, VfsError

from ..process import OpenDescription
from .registry import path_syscall

O_ACCMODE = 0o3
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_CLOEXEC = 0o2000000
O_PATH = 0o10000000


@path_syscall("open")
def on_open(sup, stop) -> None:
    _open(sup, stop, path_index=0, dirfd_index=None, flags=stop.arg(1))


@path_syscall("openat")
def on_openat(sup, stop) -> None:
    _open(sup, stop, path_index=1, dirfd_index=0, flags=stop.arg(2))


@path_syscall("openat2")
def on_openat2(sup, stop) -> None:
    how = stop.read(stop.arg(2), 8)  # struct open_how starts with u64 flags
    flags = struct.unpack("<Q", how)[0] if len(how) == 8 else 0
    _open(sup, stop, path_index=1, dirfd_index=0, flags=flags)


@path_syscall("creat")
def on_creat(sup, stop) -> None:
    _open(sup, stop, path_index=0, dirfd_index=None, flags=os.O_WRONLY | O_CREAT | O_TRUNC)


def _open(sup, stop, path_index: int, dirfd_index: int | None, flags: int) -> None:
    target = sup.target(stop, path_index, dirfd_index)
    if target is None:
        return
    if target.virtual:
        try:
            target = sup.resolve(target, follow=not flags & O_NOFOLLOW)
        except VfsError as exc:
            if exc.errno == errno.ENOENT and flags & O_CREAT:
                raise VfsError(errno.EROFS, f"{target.path}: read-only") from None
            raise
    if not target.virtual:
        sup.rewrite(stop, path_index, target.path)
        return
    meta = sup.vfs.lookup(target.path)
    writes = (flags & O_ACCMODE) != os.O_RDONLY or flags & O_TRUNC
    if flags & O_CREAT and flags & O_EXCL:
        raise VfsError(errno.EEXIST, f"{target.path}: exists")
    if meta.kind is Kind.SYMLINK:  # only reached with O_NOFOLLOW
        raise VfsError(errno.ELOOP, f"{target.path}: is a symbolic link")
    if meta.kind is Kind.DIR:
        if writes:
            raise VfsError(errno.EISDIR, f"{target.path}: is a directory")
        desc = OpenDescription(target.path, is_dir=True, meta=meta)
        local = sup.vfs.placeholder_dir
    else:
        if flags & O_DIRECTORY or target.wants_dir:
            raise VfsError(errno.ENOTDIR, f"{target.path}: not a directory")
        if writes:
            raise VfsError(errno.EROFS, f"{target.path}: read-only (writes are not supported yet)")
        if flags & O_PATH:
            desc = OpenDescription(target.path, is_dir=False, meta=meta)
            local = sup.vfs.placeholder_dir
        else:
            file = sup.vfs.open(target.path)
            desc = OpenDescription(target.path, is_dir=False, file=file, meta=file.meta)
            local = file.cache_path
    sup.rewrite(stop, path_index, local)
    fd = stop.run()
    if fd < 0:
        desc.close()
        return
    cloexec = bool(flags & O_CLOEXEC)
    fd = sup.relocate(stop, fd, cloexec)
    sup.install(stop, fd, desc, cloexec)
    stop.set_result(fd)
