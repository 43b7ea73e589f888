"""The mount table: which absolute paths are virtual, and which store and key they name."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

OBJMOUNT_ROOT = "/objmount"
S3_ROOT = "/objmount/s3"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,254}$")


def normalize(path: str) -> str:
    """Collapse '//', '.', '..' lexically; `path` must be absolute. '/..' is '/'. Unlike
    os.path.normpath, a leading '//' is '/' too: the kernel reads it so, and so do the
    path classifier (objmount/paths.py) and the C side (lexical.h)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class Location:
    """A virtual path inside a store. key '' is the store's root (bucket or prefix)."""
    store_url: str   # "s3://bucket" or "file:///dir"
    prefix: str      # key prefix of the mount ('' or 'some/prefix/')
    rel: str         # path below the mount root, no leading '/' ('' for the root)

    @property
    def key(self) -> str:
        return self.prefix + self.rel

    @property
    def dir_key(self) -> str:
        """The key prefix of this path as a directory, which is also the key of its
        marker object: 'a/b/' (or the mount's prefix for its root, '' for a bucket root)."""
        return self.prefix + self.rel + "/" if self.rel else self.prefix


@dataclass(frozen=True)
class Mount:
    target: str
    store_url: str
    prefix: str


def parse_url(url: str) -> tuple[str, str]:
    """'s3://bucket/pre/fix' -> ('s3://bucket', 'pre/fix/'); 'file:///dir' -> ('file:///dir', '')."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise ValueError(f"{url!r}: no bucket name (expected s3://BUCKET[/PREFIX])")
        if not _BUCKET.match(bucket):
            raise ValueError(f"{url!r}: {bucket!r} is not a valid bucket name")
        prefix = prefix.strip("/")
        return f"s3://{bucket}", prefix + "/" if prefix else ""
    if url.startswith("file://"):
        path = url[7:]
        if not path.startswith("/"):
            raise ValueError(f"{url!r}: a file URL needs an absolute path (file:///dir)")
        path = normalize(path)
        if not os.path.isdir(path):
            raise ValueError(f"{url!r}: {path} is not a directory")
        return f"file://{path}", ""
    raise ValueError(f"{url!r}: unsupported URL (use s3://BUCKET[/PREFIX] or file:///DIR)")


class MountTable:
    def __init__(self, mounts: list[Mount]):
        # Longest target first, so nested mounts win.
        self.mounts = sorted(mounts, key=lambda m: len(m.target), reverse=True)

    @classmethod
    def parse(cls, specs: list[str]) -> "MountTable":
        mounts = []
        for spec in specs:
            target, sep, url = spec.partition("=")
            if not sep or not target or not url:
                raise ValueError(f"--mount {spec!r}: expected TARGET=URL, e.g. /data=s3://bucket/prefix")
            if not target.startswith("/"):
                raise ValueError(f"--mount {spec!r}: TARGET must be an absolute path")
            # as every path is compared with it (and as the fast path and the quick loop
            # get it): '//data', '/data/', '/a/../data' are /data
            target = normalize(target)
            if target == "/" or target == OBJMOUNT_ROOT or target.startswith(OBJMOUNT_ROOT + "/"):
                reads = f" (it reads as {target})" if target != spec.partition("=")[0] else ""
                raise ValueError(f"--mount {spec!r}: TARGET cannot be / or inside {OBJMOUNT_ROOT}{reads}")
            try:
                store_url, prefix = parse_url(url)
            except ValueError as exc:
                raise ValueError(f"--mount {spec!r}: {exc}") from None
            mounts.append(Mount(target, store_url, prefix))
        return cls(mounts)

    @property
    def targets(self) -> list[str]:
        return [m.target for m in self.mounts]

    def is_virtual(self, path: str) -> bool:
        if path == OBJMOUNT_ROOT or path.startswith(OBJMOUNT_ROOT + "/"):
            return True
        return any(path == m.target or path.startswith(m.target + "/") for m in self.mounts)

    def locate(self, path: str) -> Location | None:
        """The store location of a virtual path; None for the synthetic directories
        /objmount and /objmount/s3. Raises KeyError for a non-virtual path."""
        for m in self.mounts:
            if path == m.target or path.startswith(m.target + "/"):
                return Location(m.store_url, m.prefix, path[len(m.target) + 1:])
        if path in (OBJMOUNT_ROOT, S3_ROOT):
            return None
        if path.startswith(S3_ROOT + "/"):
            bucket, _, rel = path[len(S3_ROOT) + 1:].partition("/")
            return Location(f"s3://{bucket}", "", rel)
        raise KeyError(path)
