"""Metadata records and the s3fs-fuse compatible x-amz-meta-* convention."""

from __future__ import annotations

import enum
import os
import stat
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote

try:   # CPython's own BLAKE2: importing hashlib loads OpenSSL's libcrypto first (~2 ms a start)
    from _blake2 import blake2b
except ImportError:
    from hashlib import blake2b

DEFAULT_FILE_MODE = stat.S_IFREG | 0o644
DEFAULT_DIR_MODE = stat.S_IFDIR | 0o755
SYMLINK_MODE = stat.S_IFLNK | 0o777
DIR_CONTENT_TYPE = "application/x-directory"
# The times of a directory nothing says anything about (implicit from its keys, or the
# synthetic /objmount ones): when this run started, the same for the whole run.
RUN_START_NS = time.time_ns()
RUN_START = RUN_START_NS / 1e9
# Hard links (see files.py): every name of a link group is a whole object whose user
# metadata lists the keys of all names of the group, itself included.
LINKS_KEY = "objmount-links"
LINKS_MAX = 1800   # bytes of that value: S3 allows 2 KiB of user metadata in all
# The user metadata keys objmount reads and writes (s3fs-fuse's, and the link group).
OWN_KEYS = frozenset({"mode", "uid", "gid", "mtime", "atime", "ctime", "xattr", "rdev", LINKS_KEY})


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
    mtime_ns: int        # times in integer nanoseconds since the epoch, exactly as stored
    etag: str | None
    target: str | None = None   # symlink target
    ino: int = 0
    exact: bool = True          # False: derived from a listing, user metadata not seen
    nlink: int = 1              # names of this file (hard links)
    links: tuple[str, ...] = ()  # keys of its hard-link group, itself included; () if none
    xattr: str | None = None    # the `xattr` metadata value as stored (vfs/xattrs.py)
    rdev: int = 0               # device number of a device node (`rdev` metadata)
    atime_ns: int | None = None  # None when constructed: the same as mtime_ns
    ctime_ns: int | None = None
    # What a rewrite of the metadata (chmod, utimes, a rename's copy) keeps as it is: the
    # Content-Type and the user metadata objmount does not use (other tools' keys).
    content_type: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.atime_ns is None:
            object.__setattr__(self, "atime_ns", self.mtime_ns)
        if self.ctime_ns is None:
            object.__setattr__(self, "ctime_ns", self.mtime_ns)

    @property
    def mtime(self) -> float:
        """Seconds, for display and logs; the stored value is mtime_ns."""
        return self.mtime_ns / 1e9

    def times(self) -> dict[str, int]:
        return {"atime_ns": self.atime_ns, "mtime_ns": self.mtime_ns, "ctime_ns": self.ctime_ns}


# --- times as s3fs-fuse stores them: x-amz-meta-atime/mtime/ctime, each "SEC" when the
# nanoseconds are 0, else "SEC.NNNNNNNNN" (tv_sec, then tv_nsec in 9 digits: a time before
# 1970 is "-2.500000000" for -1.5 s, as s3fs writes a timespec). Read: s3fs's form; a
# shorter or longer fraction (rclone, older objmount) as a decimal fraction.
def format_time(ns: int) -> str:
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return str(sec) if nsec == 0 else f"{sec}.{nsec:09d}"


def parse_time(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    sec, dot, frac = text.partition(".")
    try:
        if not dot:
            return int(sec) * 1_000_000_000
        if not frac.isdigit():
            raise ValueError(text)
        return int(sec or "0") * 1_000_000_000 + int(frac[:9].ljust(9, "0"))
    except ValueError:
        try:
            value = float(text)   # "1.7e9" and the like
        except ValueError:
            return None
        return round(value * 1e9) if value == value and abs(value) < 1e12 else None


def seconds_to_ns(t: float) -> int:
    """A LastModified or other float of seconds: to microseconds (what a float holds exactly)."""
    return round(t * 1_000_000) * 1000


def encode_links(keys) -> str:
    """The link-group value: keys percent-encoded (ASCII, as metadata must be), ','-joined."""
    return ",".join(quote(k, safe="/") for k in sorted(keys))


def decode_links(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(unquote(k) for k in value.split(",") if k)


def _hashed_inode(text: str) -> int:
    digest = blake2b(text.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & (2**63 - 1)) or 1


# A rename moves a name, not the file: the renamed object keeps its inode number under its
# new key, and the key it left gets a new one (a file created there later is another file);
# a hard link's new name takes the file's number, and a name unlinked gets a new one.
# For the run only (storing a number in the metadata would give every copy another tool
# makes the same inode). Module-wide, as inode() is: (store id, key) -> number.
_moved_inodes: dict[tuple[str, str], int] = {}
_carried: set[int] = set()   # the numbers other keys took (a key left with its own must change it)
_generation = iter(range(1, 1 << 62))


def inode(store_id: str, key: str) -> int:
    moved = _moved_inodes.get((store_id, key))
    return moved if moved is not None else _hashed_inode(f"{store_id}\0{key}")


def inode_moved(store_id: str, old_key: str, new_key: str) -> None:
    """The object at old_key (without a trailing '/') now is new_key's."""
    inode_linked(store_id, old_key, new_key)
    inode_released(store_id, old_key)


def inode_linked(store_id: str, key: str, new_key: str) -> None:
    """new_key is another name of key's file (link): one number for both, in this run."""
    number = _moved_inodes[(store_id, new_key)] = inode(store_id, key)
    _carried.add(number)


def inode_released(store_id: str, key: str) -> None:
    """The name key left its file (unlink, rename): a file made there later is another."""
    if (store_id, key) in _moved_inodes or _hashed_inode(f"{store_id}\0{key}") in _carried:
        _moved_inodes[(store_id, key)] = _hashed_inode(f"{store_id}\0{key}\0{next(_generation)}")


def _num(metadata: dict[str, str], name: str, parse=int):
    value = metadata.get(name)
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        return None


def _or(value, default):
    return default if value is None else value


def from_object(store_id: str, key: str, size: int, etag: str | None, last_modified: float,
                metadata: dict[str, str] | None, content_type: str | None = None) -> Meta:
    """Meta of an object from its HEAD (metadata known) or its listing entry (None)."""
    md = {k.lower(): v for k, v in (metadata or {}).items()}
    mode = _num(md, "mode")
    fallback = seconds_to_ns(last_modified)
    mtime = parse_time(md.get("mtime"))
    if mtime is None:
        mtime = parse_time(md.get("goog-reserved-file-mtime"))  # as s3fs reads it too
    mtime = fallback if mtime is None else mtime
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
        mtime_ns=mtime,
        etag=etag,
        ino=inode(store_id, key.rstrip("/")),
        exact=metadata is not None,
        nlink=len(links) or 1,
        links=links,
        xattr=md.get("xattr"),
        rdev=_num(md, "rdev") or 0,
        # none stored: LastModified, as s3fs reads it
        atime_ns=_or(parse_time(md.get("atime")), fallback),
        ctime_ns=_or(parse_time(md.get("ctime")), fallback),
        content_type=content_type,
        extra=tuple(sorted((k, v) for k, v in md.items() if k not in OWN_KEYS)),
    )


def directory(store_id: str, key: str, mtime_ns: int | None = None, exact: bool = True) -> Meta:
    """An implicit directory (no marker object): mode 0755, the running user's, the run's
    start as its times. exact=False: seen in a listing, its marker (if any) not asked yet."""
    return Meta(Kind.DIR, 0, DEFAULT_DIR_MODE, os.getuid(), os.getgid(),
                RUN_START_NS if mtime_ns is None else mtime_ns, None, ino=inode(store_id, key.rstrip("/")), exact=exact)


def from_marker(store_id: str, key: str, etag: str | None, last_modified: float, metadata: dict[str, str]) -> Meta:
    """A directory whose marker object `key` ('dir/') exists: its attributes are the
    marker's (mode, uid, gid, mtime as for a file; no mtime: the marker's LastModified)."""
    meta = from_object(store_id, key, 0, etag, last_modified, metadata or {}, DIR_CONTENT_TYPE)
    mode = stat.S_IFDIR | stat.S_IMODE(meta.mode)  # a marker is a directory whatever its mode says
    return Meta(Kind.DIR, 0, mode, meta.uid, meta.gid, meta.mtime_ns, etag, ino=inode(store_id, key.rstrip("/")),
                atime_ns=meta.atime_ns, ctime_ns=meta.ctime_ns)


def to_metadata(mode: int, uid: int, gid: int, mtime_ns: int, links=(), atime_ns: int | None = None,
                ctime_ns: int | None = None) -> dict[str, str]:
    """User metadata for an object, as s3fs-fuse writes it (plus its link group, if any);
    atime and ctime not given: the same as mtime (a new object)."""
    md = {"mode": str(mode), "uid": str(uid), "gid": str(gid), "mtime": format_time(mtime_ns),
          "atime": format_time(mtime_ns if atime_ns is None else atime_ns),
          "ctime": format_time(mtime_ns if ctime_ns is None else ctime_ns)}
    if len(links) > 1:
        md[LINKS_KEY] = encode_links(links)
    return md


def special_metadata(meta: Meta) -> dict[str, str]:
    """The metadata beyond to_metadata's that a rewrite of the metadata keeps."""
    md = dict(meta.extra)
    if meta.xattr:
        md["xattr"] = meta.xattr
    if meta.rdev:
        md["rdev"] = str(meta.rdev)
    return md
