"""Path strings, read the way the kernel reads them (minus symlinks, which the vfs resolves
for virtual components). Pure functions of the string and the virtual roots: no process
state. Supervisor.classify adds what depends on the calling process (its cwd, its
descriptors, /proc/self/fd links); the fast path (tracer/prefilter/prefilter.c) answers
`lexical_class` and `join` + `under_roots` in C, and tests/test_paths.py holds the two to
the same answers on one table."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from vfs.mounts import OBJMOUNT_ROOT, S3_ROOT
from vfs.mounts import normalize as normalize   # the mount table's: mount points read alike

NAME_MAX = 255      # the longest name a path component may have (ENAMETOOLONG past it)
FD_LINK_PREFIXES = ("/proc/", "/dev/fd/")
# Links to /proc/self/fd/0-2: a descriptor's name too (`cmd /dev/stdin < file`).
STD_LINKS = {"/dev/stdin": "/dev/fd/0", "/dev/stdout": "/dev/fd/1", "/dev/stderr": "/dev/fd/2"}


def fd_link_name(path: str) -> bool:
    """A name that may lead to a descriptor (lexical.h's fd_link_name)."""
    return path.startswith(FD_LINK_PREFIXES) or path in STD_LINKS


def fd_link_form(raw: str) -> str:
    """An absolute fd-link name as Supervisor.fd_link reads it: normalized, /dev/std*
    as /dev/fd/N."""
    path = normalize(raw) if needs_normalizing(raw) else raw
    return STD_LINKS.get(path, path)


@dataclass
class Target:
    """A path argument after classification."""
    virtual: bool
    path: str          # absolute, normalized
    wants_dir: bool = False
    dots: str = ""     # "." or "..": the path's last component as written (rmdir, rename refuse them)
    exact: bool = False  # a descriptor's /proc/self/fd link: names that very file (a symlink too), never followed
    # The absolute path as written when it goes through '..' after a name (a/../b): the
    # kernel steps back from what a/ resolves to (a symlink's target), and a/ must be a
    # directory; Supervisor.walk_dots does it before `path` (lexically normalized) is used.
    walk: str = ""
    # A descriptor's link: the open description it names (Supervisor.nameless_link)
    desc: object = None


class Lexical(enum.IntEnum):
    """What a path string says by itself (the numbers are the C fast path's too)."""
    LOCAL = 0      # absolute, outside every root: the kernel's
    VIRTUAL = 1    # absolute inside a root, or an s3:// URL
    FD_LINK = 2    # under /proc/ or /dev/fd/: may be a link to a virtual descriptor
    RELATIVE = 3   # relative and staying below its base: virtual when the base is
    CLIMBS = 4     # relative with '..', or starting with a root's component: join it to the real base


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


def join(base: str, path: str) -> str:
    """`path` from directory `base` (absolute), normalized."""
    return normalize(path if path.startswith("/") else base + "/" + path)


def dotdot_walk(base: str, raw: str) -> str:
    """`raw` from `base` as an absolute path with '.' and empty components dropped and
    every '..' kept, when a '..' follows a name; else ''."""
    parts = [p for p in (raw if raw.startswith("/") else base + "/" + raw).split("/") if p not in ("", ".")]
    if not any(p == ".." and i > 0 and parts[i - 1] != ".." for i, p in enumerate(parts)):
        return ""
    return "/" + "/".join(parts)


def wants_dir(path: str) -> bool:
    """A trailing '/' (or '/.') asks for a directory: ENOTDIR on anything else."""
    return path.endswith("/") or path.endswith("/.") or path == "."


def needs_normalizing(path: str) -> bool:
    """Could lexical normalization change this absolute path ('//', '.', '..', a trailing '/')?"""
    return "//" in path or "/." in path or path.endswith("/")


def parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def is_under(path: str, root: str) -> bool:
    """`path` is `root` or below it (both absolute, normalized)."""
    return path == root or path.startswith(root + "/") or root == "/"


def roots_of(mount_targets: list[str]) -> tuple[str, ...]:
    """The virtual roots: the built-in namespace and every mount target."""
    return (OBJMOUNT_ROOT, *mount_targets)


def under_roots(path: str, roots) -> bool:
    """Is the absolute, normalized `path` inside one of the virtual `roots`?"""
    return any(is_under(path, root) for root in roots)


def pops_below_root(raw: str, roots) -> bool:
    """Does a '..' of the absolute `raw` step back from a name strictly below a root
    (`/v/l/../../f`)? Where it then leads depends on what that name is (a symlink, a file,
    missing), not on its letters: the supervisor walks it (Supervisor.walk_dots). A '..'
    from a root itself leads to its parent, as from a mount point. The fast path and the
    quick loop ask the same (prefilter/lexical.h, pops_below_root)."""
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
            continue
        if parts:
            prefix = "/" + "/".join(parts)
            if any(prefix.startswith(root + "/") for root in roots):
                return True
            parts.pop()
    return False


def joined_virtual(base: str, raw: str, roots) -> bool:
    """Must the relative `raw`, from the local directory `base`, go to the supervisor? When
    it joins into a root, or a '..' of it steps back from a name below one
    (prefilter.c's joined_local answers the opposite)."""
    return under_roots(join(base, raw), roots) or pops_below_root(f"{base}/{raw}", roots)


def root_components(roots) -> frozenset[str]:
    """The names a relative path could start with to walk into a root from a local
    directory above it ("objmount" from "/", "in" from "/data" for a root /data/in)."""
    return frozenset(part for root in roots for part in root.split("/") if part)


def first_name(raw: str) -> str:
    """The first component of a relative path that is a name ('' and '.' are not)."""
    for part in raw.split("/"):
        if part not in ("", "."):
            return part
    return ""


def lexical_class(raw: str, roots, components: frozenset[str] | None = None) -> Lexical:
    """What `raw` says by itself about being virtual (see Lexical). `components`:
    root_components(roots), when the caller keeps it."""
    if raw.startswith("/"):
        if fd_link_name(raw):
            return Lexical.FD_LINK
        path = normalize(raw) if needs_normalizing(raw) else raw
        if fd_link_name(path):
            return Lexical.FD_LINK
        if under_roots(path, roots) or ("/.." in raw and pops_below_root(raw, roots)):
            return Lexical.VIRTUAL
        return Lexical.LOCAL
    if from_url(raw) is not None:
        return Lexical.VIRTUAL
    if components is None:
        components = root_components(roots)
    if ".." in raw.split("/") or first_name(raw) in components:
        return Lexical.CLIMBS
    return Lexical.RELATIVE


def last_dots(raw: str) -> str:
    """'.' or '..' when that is the path's last component as written, else ''."""
    last = raw.rstrip("/").rpartition("/")[2]
    return last if last in (".", "..") else ""


def too_long_name(raw: str) -> bool:
    """A component longer than NAME_MAX bytes (the kernel's ENAMETOOLONG)."""
    return any(len(encode(part)) > NAME_MAX for part in raw.split("/"))
