"""The xattr family on virtual paths: user.* attributes kept in the object's `xattr`
metadata as s3fs-fuse keeps them (vfs/xattrs.py). Errors as ext4 gives them: ENODATA for a
missing attribute, ERANGE for a short buffer or a name over 255 bytes, E2BIG for a value
over 64 KiB, EPERM for user.* on a symlink or special file; other namespaces are not kept
(EOPNOTSUPP to set; ENODATA to read, without asking the bucket: ls -l asks for
security.selinux and system.posix_acl_access of every file)."""

from __future__ import annotations

import errno
import os
import stat

from vfs import VfsError
from vfs import xattrs as vx

from .. import permissions as perm
from ..linux import SYS
from .changes import _Nameless, _resolve_parent, meta_of
from .registry import fd_syscall, path_syscall

USER = "user."
SETXATTR, LSETXATTR, FSETXATTR = SYS.setxattr, SYS.lsetxattr, SYS.fsetxattr
GETXATTR, LGETXATTR, FGETXATTR = SYS.getxattr, SYS.lgetxattr, SYS.fgetxattr
LISTXATTR, LLISTXATTR, FLISTXATTR = SYS.listxattr, SYS.llistxattr, SYS.flistxattr
REMOVEXATTR, LREMOVEXATTR, FREMOVEXATTR = SYS.removexattr, SYS.lremovexattr, SYS.fremovexattr
KNOWN_PREFIXES = ("user.", "trusted.", "security.", "system.")
UNSTORABLE = '",\\'


def _xattrs(sup) -> vx.Xattrs:
    x = getattr(sup, "_xattrs", None)
    if x is None:
        x = sup._xattrs = vx.Xattrs(sup.vfs)
    return x


def _target(sup, stop, follow: bool, sure: bool = True) -> str | None:
    """The virtual path (or the virtual descriptor's path) the call is about; None: local.
    sure=False: a listed object is not asked about before it is followed (see
    Namespace.resolve), for reads of attributes that are never kept."""
    if stop.nr in (FSETXATTR, FGETXATTR, FLISTXATTR, FREMOVEXATTR):
        desc = sup.desc(stop, stop.sarg(0))
        if desc is not None and desc.path_only:
            raise VfsError(errno.EBADF, f"{desc.path}: an O_PATH descriptor")
        if desc is not None and sup.vfs.nameless(desc.file):
            return _Nameless(desc.path, desc.file)   # its own attributes, not its old name's
        return desc.path if desc is not None else None
    target = sup.virtual_arg(stop, resolve=lambda t: sup.resolve(t, follow=follow, sure=sure) if follow
                             else _resolve_parent(sup, t), follow_last=follow)
    if target is None:
        return None
    sup.vfs.lookup(target.path)  # ENOENT before anything else
    return target.path


def _name(stop, index: int) -> str:
    try:
        raw = stop.read_cstring(stop.arg(index), limit=vx.NAME_MAX + 2)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise VfsError(errno.ERANGE, "attribute name longer than 255 bytes") from None
        raise VfsError(errno.EFAULT, "attribute name in unmapped memory") from None
    if len(raw) > vx.NAME_MAX:
        raise VfsError(errno.ERANGE, "attribute name longer than 255 bytes")
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        raise VfsError(errno.EINVAL, f"{raw!r}: attribute names on objects are UTF-8") from None
    if not name.startswith(KNOWN_PREFIXES):
        raise VfsError(errno.EOPNOTSUPP, f"{name}: no such attribute namespace")
    if name in KNOWN_PREFIXES or not name:
        raise VfsError(errno.EINVAL, f"{name}: attribute name without a name")
    if any(c in UNSTORABLE or c < " " for c in name):
        # s3fs's format writes names into its JSON unescaped and splits it at ','
        raise VfsError(errno.EINVAL, f"{name!r}: quotes, commas, backslashes and control characters "
                       "cannot be kept in an attribute name on an object (s3fs's format)")
    return name


def _allowed(sup, meta, want: int, path: str, what: str) -> None:
    """EACCES unless the caller may read (4) or write (2) `meta`'s attributes."""
    if perm.permission(meta, want, sup.creds()):
        raise VfsError(errno.EACCES, f"{path}: no {what} permission for its attributes")


def _holds_user_attrs(meta) -> bool:
    """Linux keeps user.* only on regular files and directories."""
    return stat.S_ISREG(meta.mode) or stat.S_ISDIR(meta.mode)


@path_syscall("setxattr", "lsetxattr", "removexattr", "lremovexattr")
@fd_syscall(fsetxattr=(0,), fremovexattr=(0,))
def on_setxattr(sup, stop) -> None:
    path = _target(sup, stop, follow=stop.nr in (SETXATTR, REMOVEXATTR))
    if path is None:
        return
    name = _name(stop, 1)
    removing = stop.nr in (REMOVEXATTR, LREMOVEXATTR, FREMOVEXATTR)
    value = None
    flags = 0
    if not removing:
        size, flags = stop.arg(3), stop.arg(4)
        if flags & ~(vx.XATTR_CREATE | vx.XATTR_REPLACE):
            raise VfsError(errno.EINVAL, f"setxattr: unknown flags {flags:#x}")
        if size > vx.SIZE_MAX:
            raise VfsError(errno.E2BIG, f"{name}: value larger than 64 KiB")
        try:
            value = stop.read_in(stop.arg(2), size) if size else b""
        except OSError:
            raise VfsError(errno.EFAULT, f"{name}: value in unmapped memory") from None
        if len(value) != size:
            raise VfsError(errno.EFAULT, f"{name}: value in unmapped memory")
    if not name.startswith(USER):
        if not sup.creds().root and not name.startswith("system."):
            raise VfsError(errno.EPERM, f"{path}: {name}: only root may set this namespace")
        err = VfsError(errno.EOPNOTSUPP, f"{path}: {name}: only user.* attributes are kept on objects")
        err.once = "only user.* attributes"
        raise err
    file = getattr(path, "file", None)
    meta = meta_of(sup, path, exact=True)  # exact: a listed symlink or fifo looks like a file
    if not _holds_user_attrs(meta):
        raise VfsError(errno.EPERM, f"{path}: user.* attributes only on regular files and directories")
    _allowed(sup, meta, perm.W_OK, path, "write")
    if file is not None:
        _xattrs(sup).change_open(file, path, name, value, flags)
    else:
        _xattrs(sup).change(path, name, value, flags)
    stop.skip(0)


def _answer(stop, buf_index: int, data: bytes) -> None:
    size = stop.arg(buf_index + 1)
    if size == 0:  # a size query
        stop.skip(len(data))
        return
    if len(data) > size:
        stop.fail(errno.ERANGE)
        return
    if data:
        try:
            stop.write_out(stop.arg(buf_index), data)
        except OSError:
            stop.fail(errno.EFAULT)
            return
    stop.skip(len(data))


def _all(sup, path: str) -> dict[str, bytes]:
    file = getattr(path, "file", None)
    return _xattrs(sup).get_open(file) if file is not None else _xattrs(sup).get_all(path)


def _readable_attrs(sup, path: str) -> dict[str, bytes]:
    meta = meta_of(sup, path)
    if not _holds_user_attrs(meta):
        return {}
    _allowed(sup, meta, perm.R_OK, path, "read")
    return _all(sup, path)


@path_syscall("getxattr", "lgetxattr")
@fd_syscall(fgetxattr=(0,))
def on_getxattr(sup, stop) -> None:
    try:
        raw = stop.read_cstring(stop.arg(1), limit=vx.NAME_MAX + 2)
    except OSError:
        raw = b""  # _name says what is wrong with it
    path = _target(sup, stop, follow=stop.nr == GETXATTR, sure=raw.startswith(USER.encode()))
    if path is None:
        return
    name = _name(stop, 1)
    if not name.startswith(USER):
        stop.fail(errno.ENODATA)  # not kept: no request for it
        return
    value = _readable_attrs(sup, path).get(name)
    if value is None:
        stop.fail(errno.ENODATA)
        return
    _answer(stop, 2, value)


@path_syscall("listxattr", "llistxattr")
@fd_syscall(flistxattr=(0,))
def on_listxattr(sup, stop) -> None:
    path = _target(sup, stop, follow=stop.nr == LISTXATTR)
    if path is None:
        return
    meta = meta_of(sup, path)
    names = _all(sup, path) if _holds_user_attrs(meta) else {}
    _answer(stop, 1, b"".join(os.fsencode(n) + b"\0" for n in sorted(names)))
