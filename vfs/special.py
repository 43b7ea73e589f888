"""Special files (fifos, sockets, device nodes) as s3fs-fuse stores them: an empty object
whose `mode` metadata carries the file type (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK). s3fs
drops a device's number; it is kept here in an extra `rdev` key, which s3fs ignores."""

from __future__ import annotations

import errno
import os
import stat
import time

from . import meta as metas
from .errors import VfsError

SPECIAL_TYPES = (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK)


def is_special(mode: int) -> bool:
    return stat.S_IFMT(mode) in SPECIAL_TYPES


def make_node(vfs, path: str, mode: int, rdev: int = 0, uid: int | None = None, gid: int | None = None):
    """Create the object of a special file; `mode` includes its type and is already masked
    by the caller's umask. Returns its Meta."""
    store, loc = vfs._writable_store(path)
    if not getattr(store, "keeps_metadata", True):
        raise VfsError(errno.EPERM, f"{path}: {store.url} cannot keep special files")
    vfs.new_name(store, loc.key, path)
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    now = time.time_ns()
    md = metas.to_metadata(mode, uid, gid, now)
    if rdev and stat.S_IFMT(mode) in (stat.S_IFCHR, stat.S_IFBLK):
        md["rdev"] = str(rdev)
    etag = store.put(loc.key, b"", md)
    meta = metas.from_object(store.id, loc.key, 0, etag, now / 1e9, md)
    vfs.ns.update(path, meta)
    vfs.entries_changed(path)
    return meta
