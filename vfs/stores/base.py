"""What every object store offers the vfs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    mtime: float                       # LastModified, epoch seconds
    metadata: dict[str, str] | None    # user metadata; None when unknown (listing entries)
    content_type: str | None = None


@dataclass(frozen=True)
class First:
    """A GET of an object's first bytes: what it says of the object, and the bytes.
    not_modified: the object still has the ETag asked about (304): no bytes came, and
    `info` holds what the answer said (its size and metadata may be unknown: -1, None)."""
    info: ObjectInfo
    data: bytes = b""
    not_modified: bool = False


@dataclass
class Listing:
    objects: list[ObjectInfo]   # keys directly below the prefix
    prefixes: list[str]         # common prefixes ('prefix/sub/')


class Below(enum.Enum):
    """What a one-key listing of a prefix ('dir/') says about it."""
    NOTHING = 0     # no key below it: no directory
    UNMARKED = 1    # keys below it, and the prefix itself is no key: an implicit directory
    MARKED = 2      # keys below it, its marker ('dir/') among them or perhaps (a listing
                    # not in key order cannot say): the marker holds the attributes


class Store(Protocol):
    url: str        # 's3://bucket' or 'file:///dir'
    id: str         # stable identity for cache keys
    endpoint: str   # for error messages

    def check_root(self) -> None:
        """Raise VfsError(ENOENT) if the bucket or directory does not exist."""

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> Listing:
        """One level below `prefix` (which is '' or ends in '/'), all pages."""

    def moved_away(self, prefix: str) -> None:
        """Everything below `prefix` was moved elsewhere: a store whose directories are
        real ones removes those left empty (S3 has nothing to do)."""

    def look_below(self, prefix: str) -> Below:
        """One cheap look at the keys below `prefix` (which ends in '/')."""

    def get_first(self, key: str, length: int, etag: str | None = None, ranged: bool = True) -> First | None:
        """One GET of bytes [0, length) with the object's ETag, size and metadata; None
        if there is no such object. With `etag`: conditional (If-None-Match), so an
        object still at that version answers not_modified without a body. ranged=False:
        the object is believed empty (a range would be refused)."""

    def read(self, key: str, start: int, end: int, etag: str | None, sink) -> None:
        """Fetch bytes [start, end) and call sink(offset, chunk) as they arrive. With
        `etag`, fail with ESTALE if the object changed."""
