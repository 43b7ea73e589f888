"""Metadata records and the s3fs-fuse compatible x-amz-meta-* convention."""

from __future__ import annotations

import enum
import hashlib
import os
import stat
from dataclasses import dataclass

DEFAULT_FILE_MODE = stat.S_IFREG | 0o644
DEFAULT_DIR_MODE = stat.S_IFDIR | 0o755
SYMLINK_MODE = stat.S_IFLNK | 0o777
DIR_CONTENT_TYPE = "application/x-directory"


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class Meta:
    kind: Kind
    size: int            # directories: 0
    mode: int            # full st_mode, type bits included
    uid: int
    gid: int
    mtime: float
    etag: str | None
    target: str | None = None   # symlink target
    ino: int = 0
    exact: bool = True          # False: derived from a listing, user metadata not seen
    nlink: int = 1              # names of this file linked within this run (hard links)
    xattr: str | None = None    # the `xattr` metadata value as stored (vfs/xattrs.py)
    rdev: int = 0               # device number of a device node (`rdev` metadata)


def inode(store_id: str, key: str) -> int:
    digest = hashlib.blake2b(f"{store_id}\0{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & (2**63 - 1)) or 1


def _num(metadata: dict[str, str], name: str, parse=int):
    value = metadata.get(name)
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        return None


def from_object(store_id: str, key: str, size: int, etag: str | None, last_modified: float,
                metadata: dict[str, str] | None, content_type: str | None = None) -> Meta:
    """Meta of an object from its HEAD (metadata known) or its listing entry (None)."""
    md = {k.lower(): v for k, v in (metadata or {}).items()}
    mode = _num(md, "mode")
    mtime = _num(md, "mtime", float)
    if mode is None:
        is_dir = content_type == DIR_CONTENT_TYPE or key.endswith("/")
        mode = DEFAULT_DIR_MODE if is_dir else DEFAULT_FILE_MODE
    elif stat.S_IFMT(mode) == 0:
        mode |= stat.S_IFREG
    kind = Kind.DIR if stat.S_ISDIR(mode) else Kind.SYMLINK if stat.S_ISLNK(mode) else Kind.FILE
    uid = _num(md, "uid")
    gid = _num(md, "gid")
    return Meta(
        kind=kind,
        size=0 if kind is Kind.DIR else size,
        mode=mode,
        uid=os.getuid() if uid is None else uid,
        gid=os.getgid() if gid is None else gid,
        mtime=last_modified if mtime is None else mtime,
        etag=etag,
        ino=inode(store_id, key.rstrip("/")),
        exact=metadata is not None,
        xattr=md.get("xattr"),
        rdev=_num(md, "rdev") or 0,
    )


def directory(store_id: str, key: str, mtime: float = 0.0) -> Meta:
    return Meta(Kind.DIR, 0, DEFAULT_DIR_MODE, os.getuid(), os.getgid(), mtime, None,
                ino=inode(store_id, key.rstrip("/")))


def to_metadata(mode: int, uid: int, gid: int, mtime: float) -> dict[str, str]:
    """User metadata for an object, as s3fs-fuse writes it."""
    mt = int(mtime) if float(mtime).is_integer() else mtime
    return {"mode": str(mode), "uid": str(uid), "gid": str(gid), "mtime": str(mt)}


def special_metadata(meta: Meta) -> dict[str, str]:
    """The metadata beyond to_metadata's that a rewrite of the metadata keeps."""
    md = {"xattr": meta.xattr} if meta.xattr else {}
    if meta.rdev:
        md["rdev"] = str(meta.rdev)
    return md
