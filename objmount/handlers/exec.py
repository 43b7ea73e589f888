"""execve/execveat of a program or #! script stored in the bucket: the kernel execs the
fully materialized cache file, with exec permission only if the object has an x bit."""

from __future__ import annotations

import errno
import os

from vfs import Kind, VfsError

from .. import permissions as perm
from .attrs import is_executable
from .registry import path_syscall


def _exec(sup, stop, path_index: int, dirfd_index: int | None) -> None:
    target = sup.target(stop, path_index, dirfd_index)
    if target is None:
        return
    if target.virtual:
        target = sup.resolve(target)
    if not target.virtual:
        sup.rewrite(stop, path_index, target.path)
        return
    meta = sup.vfs.lookup(target.path)
    if meta.kind is not Kind.FILE:
        raise VfsError(errno.EACCES, f"{target.path}: not a regular file")
    sup.allow(perm.permission(meta, perm.X_OK, sup.creds(stop)), target.path)
    file = sup.vfs.open(target.path)
    try:
        file.materialize()
        os.chmod(file.cache_path, 0o755 if is_executable(file.meta) else 0o644)
        creds = sup.creds(stop)
        if creds.root or creds.fsuid == os.geteuid() or not sup.handover.exec_by_fd(
                sup, stop, path_index, file.cache_path, _is_script(file.cache_path)):
            sup.rewrite(stop, path_index, file.cache_path)
    finally:
        file.close()


@path_syscall("execve")
def on_execve(sup, stop) -> None:
    _exec(sup, stop, 0, None)


@path_syscall("execveat")
def on_execveat(sup, stop) -> None:
    _exec(sup, stop, 1, 0)


def _is_script(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"#!"
