"""Metadata records and the s3fs-fuse compatible x-amz-meta-* convention."""

from __future__ import annotations

import enum
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

DEFAULT_FILE_MODE = stat.S_IFREG | 0o644
DEFAULT_DIR_MODE = stat.S_IFDIR | 0o755
SYMLINK_MODE = stat.S_IFLNK | 0o777
DIR_CONTENT_TYPE = "application/x-directory"
# The mtime of a directory nothing says anything about (implicit from its keys, or the
# synthetic /objmount ones): when this run started, the same for the whole run.
RUN_START = time.time()
# Hard links (see files.py): every name of a link group is a whole object whose user
# metadata lists the keys of all names of the group, itself included.
LINKS_KEY = "objmount-links"
LINKS_MAX = 1800   # bytes of that value: S3 allows 2 KiB of user metadata in all


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
    nlink: int = 1              # names of this file (hard links)
    links: tuple[str, ...] = ()  # keys of its hard-link group, itself included; () if none
    xattr: str | None = None    # the `xattr` metadata value as stored (vfs/xattrs.py)
    rdev: int = 0               # device number of a device node (`rdev` metadata)


def encode_links(keys) -> str:
    """The link-group value: keys percent-encoded (ASCII, as metadata must be), ','-joined."""
    return ",".join(quote(k, safe="/") for k in sorted(keys))


def decode_links(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(unquote(k) for k in value.split(",") if k)


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
    links = decode_links(md.get(LINKS_KEY)) if kind is Kind.FILE else ()
    if key not in links or len(links) < 2:
        links = ()  # copied by another tool under another name: not a member
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
        nlink=len(links) or 1,
        links=links,
        xattr=md.get("xattr"),
        rdev=_num(md, "rdev") or 0,
    )


def directory(store_id: str, key: str, mtime: float | None = None, exact: bool = True) -> Meta:
    """An implicit directory (no marker object): mode 0755, the running user's, the run's
    start as mtime. exact=False: seen in a listing, its marker (if any) not asked yet."""
    return Meta(Kind.DIR, 0, DEFAULT_DIR_MODE, os.getuid(), os.getgid(), RUN_START if mtime is None else mtime,
                None, ino=inode(store_id, key.rstrip("/")), exact=exact)


def from_marker(store_id: str, key: str, etag: str | None, last_modified: float, metadata: dict[str, str]) -> Meta:
    """A directory whose marker object `key` ('dir/') exists: its attributes are the
    marker's (mode, uid, gid, mtime as for a file; no mtime: the marker's LastModified)."""
    meta = from_object(store_id, key, 0, etag, last_modified, metadata or {}, DIR_CONTENT_TYPE)
    mode = stat.S_IFDIR | stat.S_IMODE(meta.mode)  # a marker is a directory whatever its mode says
    return Meta(Kind.DIR, 0, mode, meta.uid, meta.gid, meta.mtime, etag, ino=inode(store_id, key.rstrip("/")))


def to_metadata(mode: int, uid: int, gid: int, mtime: float, links=()) -> dict[str, str]:
    """User metadata for an object, as s3fs-fuse writes it (plus its link group, if any)."""
    mt = int(mtime) if float(mtime).is_integer() else mtime
    md = {"mode": str(mode), "uid": str(uid), "gid": str(gid), "mtime": str(mt)}
    if len(links) > 1:
        md[LINKS_KEY] = encode_links(links)
    return md


def special_metadata(meta: Meta) -> dict[str, str]:
    """The metadata beyond to_metadata's that a rewrite of the metadata keeps."""
    md = {"xattr": meta.xattr} if meta.xattr else {}
    if meta.rdev:
        md["rdev"] = str(meta.rdev)
    return md
