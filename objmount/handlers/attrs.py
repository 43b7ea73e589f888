"""stat family, access family, readlink, statfs, xattr reads: answered from vfs metadata."""

from __future__ import annotations

import errno
import os
import stat

from vfs import Kind, VfsError

from .. import permissions as perm
from .. import structs
from .registry import fd_syscall, no_stop_on_local_fd, path_syscall

AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200
AT_EMPTY_PATH = 0x1000


def _lookup(sup, stop, follow: bool, empty_ok: bool = False, exact: bool = False, sure: bool = True,
            attrs: bool = True, found=None):
    """The Meta of the call's virtual path argument; None when the kernel should handle it
    (after the argument was rewritten if it resolved to a local path). attrs: the caller
    shows mode, owner or times, so they must be the stored ones, not a listing's defaults.
    found: a list the resolved virtual path is appended to."""
    if empty_ok and (dirfd := sup.path_dirfd(stop)) is not None:
        if sup.path_addr(stop) == 0 or sup.path_empty(stop):
            desc = sup.desc(stop, dirfd)
            return desc_meta(desc, sup) if desc is not None else None
    if follow and (desc := sup.nameless_link(stop)) is not None:   # lstat: the link itself, the kernel's
        return desc_meta(desc, sup)
    target = sup.virtual_arg(stop, follow=follow, sure=sure, attrs=attrs)
    if target is None:
        return None
    meta = sup.vfs.lookup(target.path, exact=exact, attrs=attrs)
    if found is not None:
        found.append(target.path)
    if target.wants_dir and meta.kind is not Kind.DIR:
        raise VfsError(errno.ENOTDIR, f"{target.path}: not a directory")
    return meta


def _emit(stop, buf_index: int, data: bytes) -> None:
    stop.write_out(stop.arg(buf_index), data)
    stop.skip(0)


@path_syscall("stat")
def on_stat(sup, stop) -> None:
    meta = _lookup(sup, stop, follow=True)
    if meta is not None:
        _emit(stop, 1, structs.pack_stat(meta))


@path_syscall("lstat")
def on_lstat(sup, stop) -> None:
    meta = _lookup(sup, stop, follow=False)
    if meta is not None:
        _emit(stop, 1, structs.pack_stat(meta))


@path_syscall("newfstatat")
def on_newfstatat(sup, stop) -> None:
    flags = stop.arg(3)
    meta = _lookup(sup, stop, follow=not flags & AT_SYMLINK_NOFOLLOW, empty_ok=bool(flags & AT_EMPTY_PATH))
    if meta is not None:
        _emit(stop, 2, structs.pack_stat(meta))


@path_syscall("statx")
def on_statx(sup, stop) -> None:
    flags = stop.arg(2)
    meta = _lookup(sup, stop, follow=not flags & AT_SYMLINK_NOFOLLOW, empty_ok=bool(flags & AT_EMPTY_PATH))
    if meta is not None:
        _emit(stop, 4, structs.pack_statx(meta))


# glibc's fstat(fd) is newfstatat(fd, "", AT_EMPTY_PATH) (statx likewise): with a local
# fd it cannot concern us. (A program passing AT_EMPTY_PATH with a non-empty path and a
# local dirfd is not intercepted: the flag only has meaning for empty paths.)
no_stop_on_local_fd("newfstatat", dirfd=0, flags=3, flag=AT_EMPTY_PATH)
no_stop_on_local_fd("statx", dirfd=0, flags=2, flag=AT_EMPTY_PATH)


@fd_syscall(fstat=(0,))
def on_fstat(sup, stop) -> None:
    desc = sup.desc(stop, stop.sarg(0))
    if desc is not None:
        _emit(stop, 1, structs.pack_stat(desc_meta(desc, sup)))


def desc_meta(desc, sup=None):
    """What fstat says: for an open file, its current size and attributes (changes made
    through any name); for a directory opened from a listing, its marker's attributes."""
    if desc.file is not None:
        meta = desc.file.current_meta()
    else:
        # (a directory's or an O_PATH descriptor's) attributes changed since the open, by
        # this descriptor or by a path, are known without asking: fstat shows them
        known = sup.vfs.ns.peek(desc.path) if sup is not None else None
        if known is not None and known.exact and known.kind is desc.meta.kind:
            desc.meta = known
        elif sup is not None and desc.is_dir and not desc.meta.exact:
            try:
                desc.meta = sup.vfs.lookup(desc.path, attrs=True)
            except VfsError:
                pass  # gone meanwhile: fstat still describes what was opened
        meta = desc.meta
    # times this run changed without storing them (a read's atime, a directory's entries)
    return sup.vfs.times.apply(desc.path, meta) if sup is not None else meta


def _access(sup, stop, mode: int, flags: int) -> None:
    # do_faccessat refuses these before it looks at the path (for root too)
    if mode & 0xFFFFFFFF & ~7 or flags & 0xFFFFFFFF & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise VfsError(errno.EINVAL, f"access: invalid mode {mode:#o} or flags {flags:#x}")
    meta = _lookup(sup, stop, follow=not flags & AT_SYMLINK_NOFOLLOW,
                   empty_ok=bool(flags & AT_EMPTY_PATH))
    if meta is None:
        return
    creds = sup.creds(stop)
    err = perm.permission(meta, mode, creds if flags & AT_EACCESS else creds.for_access())
    stop.skip(-err if err else 0)


@path_syscall("access")
def on_access(sup, stop) -> None:
    _access(sup, stop, stop.arg(1), 0)


@path_syscall("faccessat")
def on_faccessat(sup, stop) -> None:
    _access(sup, stop, stop.arg(2), 0)


@path_syscall("faccessat2")
def on_faccessat2(sup, stop) -> None:
    _access(sup, stop, stop.arg(2), stop.arg(3))


def _readlink(sup, stop, buf_index: int) -> None:
    size = stop.arg(buf_index + 1) & 0xFFFFFFFF
    if size == 0 or size & 0x80000000:   # an int: do_readlinkat refuses <= 0 first
        stop.fail(errno.EINVAL)
        return
    addr = sup.path_addr(stop)
    if addr:
        raw = sup.read_path(stop, addr)
        named = None
        if raw.startswith(("/proc/", "/dev/fd/")):
            desc = sup.fd_link(stop, raw)   # /dev/stdin itself is a link to /proc/self/fd/0: not followed
            link = sup.proc_link(stop, raw) if desc is None else None
            named = desc.path if desc is not None else link[0] if link is not None and not link[1] else None
        if named is not None:  # /proc/self/fd/N of a virtual descriptor, /proc/self/cwd: the virtual path
            data = os.fsencode(named)[: stop.arg(buf_index + 1)]
            stop.write_out(stop.arg(buf_index), data)
            stop.skip(len(data))
            return
        dirfd = sup.path_dirfd(stop) if not raw else None
        desc = sup.desc(stop, dirfd) if dirfd is not None else None
        if desc is not None:  # readlinkat(fd, ""): the link fd was opened on (O_PATH|O_NOFOLLOW)
            meta = desc.meta
            if meta.kind is not Kind.SYMLINK:
                stop.fail(errno.ENOENT)  # the kernel's answer when the empty name is no link
                return
            if meta.target is None:  # opened from a listing: the target is in the object
                meta = sup.vfs.lookup(desc.path, exact=True, attrs=False)
            _give_link(sup, stop, desc.path, meta, buf_index)
            return
    found = []
    meta = _lookup(sup, stop, follow=False, exact=True, attrs=False, found=found)
    if meta is not None:
        _give_link(sup, stop, found[0], meta, buf_index)


def _give_link(sup, stop, path: str, meta, buf_index: int) -> None:
    if meta.kind is not Kind.SYMLINK or meta.target is None:
        stop.fail(errno.EINVAL)
        return
    sup.vfs.accessed(path, meta)  # reading a link is an access: its atime
    data = os.fsencode(meta.target)[: stop.arg(buf_index + 1)]
    stop.write_out(stop.arg(buf_index), data)
    stop.skip(len(data))


@path_syscall("readlink")
def on_readlink(sup, stop) -> None:
    _readlink(sup, stop, 1)


@path_syscall("readlinkat")
def on_readlinkat(sup, stop) -> None:
    _readlink(sup, stop, 2)


@path_syscall("statfs")
def on_statfs(sup, stop) -> None:
    if _lookup(sup, stop, follow=True, attrs=False) is not None:
        _emit(stop, 1, structs.pack_statfs())


@fd_syscall(fstatfs=(0,))
def on_fstatfs(sup, stop) -> None:
    if sup.desc(stop, stop.sarg(0)) is not None:
        _emit(stop, 1, structs.pack_statfs())


def is_executable(meta) -> bool:
    return meta.kind is Kind.FILE and bool(meta.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
