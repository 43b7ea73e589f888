"""Lexical path handling, the way the kernel resolves a path string (minus symlinks,
which the vfs resolves for virtual components)."""

from __future__ import annotations

import os
from dataclasses import dataclass

S3_ROOT = "/objmount/s3"


@dataclass
class Target:
    """A path argument after classification."""
    virtual: bool
    path: str          # absolute, normalized
    wants_dir: bool = False
    dots: str = ""     # "." or "..": the path's last component as written (rmdir, rename refuse them)


def decode(raw: bytes) -> str:
    # Paths are bytes; S3 keys are UTF-8. Undecodable bytes survive round trips.
    return os.fsdecode(raw)


def encode(path: str) -> bytes:
    return os.fsencode(path)


def from_url(path: str) -> str | None:
    """'s3://bucket/key' (or 's3:/bucket/key', as some programs collapse '//') as a
    path in the built-in namespace; None if `path` is not such a URL."""
    if path.startswith("s3://"):
        rest = path[5:]
    elif path.startswith("s3:/"):
        rest = path[4:]
    else:
        return None
    return S3_ROOT + "/" + rest if rest else S3_ROOT


def normalize(path: str) -> str:
    """Collapse '//', '.', '..' lexically; `path` must be absolute. '/..' is '/'."""
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


def join(base: str, path: str) -> str:
    return normalize(path if path.startswith("/") else base + "/" + path)


def wants_dir(path: str) -> bool:
    """A trailing '/' (or '/.') asks for a directory: ENOTDIR on anything else."""
    return path.endswith("/") or path.endswith("/.") or path == "."


def needs_normalizing(path: str) -> bool:
    return "//" in path or "/." in path or path.endswith("/")


def parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/") or root == "/"
