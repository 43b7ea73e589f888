"""Directories: getdents, chdir/fchdir/getcwd and seeking in a virtual directory."""

from __future__ import annotations

import errno
import os

from vfs import Kind, VfsError

from .. import paths, structs
from .. import permissions as perm
from .registry import always_syscall, fd_syscall, on_demand_syscall, path_syscall


def _entries(sup, desc) -> list:
    if desc.entries is None:
        parent = desc.meta
        try:
            up = paths.parent(desc.path)
            if sup.mounts.is_virtual(up):
                parent = sup.vfs.lookup(up)
        except VfsError:
            pass
        desc.entries = [(".", desc.meta), ("..", parent)] + list(sup.vfs.listdir(desc.path))
    return desc.entries


def _getdents(sup, stop, pack) -> None:
    desc = sup.desc(stop, stop.sarg(0))
    if desc is None:
        return
    if not desc.is_dir:
        stop.fail(errno.ENOTDIR)
        return
    if desc.removed:
        stop.fail(errno.ENOENT)   # the kernel's answer for a removed directory (IS_DEADDIR)
        return
    entries = _entries(sup, desc)
    if not desc.noatime:
        sup.vfs.accessed(desc.path, desc.meta)  # a listing is a read of the directory: atime
    room = stop.arg(2)
    out = bytearray()
    pos = desc.dir_pos
    while pos < len(entries):
        name, meta = entries[pos]
        rec = pack(meta.ino or 1, pos + 1, structs.d_type(meta.mode), os.fsencode(name))
        if len(out) + len(rec) > room:
            break
        out += rec
        pos += 1
    if not out and pos < len(entries):
        stop.fail(errno.EINVAL)  # buffer too small for one entry
        return
    desc.dir_pos = pos
    if out:
        stop.write_out(stop.arg(1), bytes(out))
    stop.skip(len(out))


@fd_syscall(getdents64=(0,))
def on_getdents64(sup, stop) -> None:
    _getdents(sup, stop, structs.pack_dirent64)


@fd_syscall(getdents=(0,))
def on_getdents(sup, stop) -> None:
    _getdents(sup, stop, structs.pack_dirent)


@fd_syscall(lseek=(0,))
def on_lseek(sup, stop) -> None:
    desc = sup.desc(stop, stop.sarg(0))
    if desc is None or not desc.is_dir:
        return  # regular files: the kernel keeps the offset of the cache file
    offset, whence = stop.arg(1), stop.arg(2)
    if whence == os.SEEK_SET and offset >= 0:
        desc.dir_pos = offset
        if offset == 0:
            desc.entries = None  # rewinddir sees a fresh listing
        stop.skip(offset)
    elif whence == os.SEEK_CUR and offset == 0:
        stop.skip(desc.dir_pos)
    else:
        stop.fail(errno.EINVAL)


@path_syscall("chdir")
def on_chdir(sup, stop) -> None:
    fs = sup.proc(stop).fs
    target = sup.virtual_arg(stop)
    if target is None:
        if fs.vcwd is None:
            fs.kcwd = None  # re-read from /proc when next needed
            return
        if stop.run() == 0:
            fs.vcwd = None
            fs.kcwd = None
        return
    meta = sup.vfs.lookup(target.path)
    if meta.kind is not Kind.DIR:
        raise VfsError(errno.ENOTDIR, f"{target.path}: not a directory")
    creds = sup.creds(stop)
    sup.allow(perm.permission(meta, perm.X_OK, creds), target.path)
    result = None
    if not creds.root and creds.fsuid != os.geteuid():
        # the stand-in lies in the private cache: by a descriptor (handover.py)
        result = sup.handover.chdir_by_fd(sup, stop, sup.vfs.placeholder_dir)
    if result is None:
        sup.set_path(stop, sup.vfs.placeholder_dir)
        result = stop.run()
    if result == 0:
        fs.vcwd = target.path
        fs.kcwd = sup.vfs.placeholder_dir
        fs.removed = False
        sup.watch_syscalls(stop, "getcwd")


@always_syscall("fchdir", fds=(0,))
def on_fchdir(sup, stop) -> None:
    fs = sup.proc(stop).fs
    desc = sup.desc(stop, stop.sarg(0))
    if desc is None:
        fs.vcwd = None
        fs.kcwd = None
        return
    if not desc.is_dir:
        stop.fail(errno.ENOTDIR)
        return
    sup.allow(perm.permission(desc.meta, perm.X_OK, sup.creds(stop)), desc.path)
    if stop.run() == 0:
        fs.vcwd = desc.path
        fs.kcwd = sup.vfs.placeholder_dir
        fs.removed = desc.removed
        sup.watch_syscalls(stop, "getcwd")


@on_demand_syscall("getcwd")
def on_getcwd(sup, stop) -> None:
    fs = sup.proc(stop).fs
    vcwd = fs.vcwd
    if vcwd is None:
        return
    if fs.removed:
        stop.fail(errno.ENOENT)   # as the kernel's for a removed working directory
        return
    data = os.fsencode(vcwd) + b"\0"
    if len(data) > stop.arg(1):
        stop.fail(errno.ERANGE)
        return
    stop.write_out(stop.arg(0), data)
    stop.skip(len(data))
