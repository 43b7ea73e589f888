"""Path -> metadata: lookups, listings, symlink resolution, with TTL caches.

A listing answers lookups of its children for the TTL (no HEAD per listed file). A lookup
with no fresh listing asks HEAD key and LIST key/ (MaxKeys=1) together; a prefix makes a
directory, and wins over an object of the same name.
"""

from __future__ import annotations

import errno
import logging
import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import meta as metas
from .errors import VfsError
from .meta import Kind, Meta
from .mounts import OBJMOUNT_ROOT, S3_ROOT, MountTable

log = logging.getLogger("vfs.namespace")
MAX_LINKS = 40


@dataclass
class _Entry:
    value: object
    expires: float


class Namespace:
    def __init__(self, mounts: MountTable, stores, ttl: float):
        self.mounts = mounts
        self.stores = stores          # callable: store_url -> Store
        self.ttl = ttl
        self._attrs: dict[str, _Entry] = {}     # path -> Meta | None (negative)
        self._lists: dict[str, _Entry] = {}     # dir path -> dict[name, Meta]
        self._answered: dict[str, Meta] = {}    # asked of the bucket in this operation
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
        self._warned: set[str] = set()
        # Directories that exist for this run only (their marker could not be written).
        self.local_dirs: set[str] = set()

    # --- caches ------------------------------------------------------------------------
    def _fresh(self, table: dict[str, _Entry], path: str):
        entry = table.get(path)
        if entry is not None and entry.expires > time.monotonic():
            return entry
        return None

    def remember(self, path: str, meta: Meta | None) -> None:
        self._attrs[path] = _Entry(meta, time.monotonic() + self.ttl)

    def update(self, path: str, meta: Meta | None, empty_dir: bool = False) -> None:
        """We changed `path` ourselves: record its new state instead of asking again,
        in its own entry and in a fresh listing of its parent."""
        self.remember(path, meta)
        parent = self._fresh(self._lists, posixpath.dirname(path))
        if parent is not None:
            name = posixpath.basename(path)
            if meta is None:
                parent.value.pop(name, None)
            else:
                parent.value[name] = meta
        if empty_dir:
            self._lists[path] = _Entry({}, time.monotonic() + self.ttl)

    def forget(self, path: str) -> None:
        self._attrs.pop(path, None)
        self._lists.pop(path, None)
        self._lists.pop(posixpath.dirname(path), None)

    # --- lookups -----------------------------------------------------------------------
    def peek(self, path: str) -> Meta | None:
        """What is known of `path` without asking the bucket; None: nothing fresh (or it
        is known not to exist)."""
        if path in self.local_dirs:
            return metas.directory("local", path)
        entry = self._fresh(self._attrs, path)
        if entry is not None:
            return entry.value
        parent, name = posixpath.split(path)
        listing = self._fresh(self._lists, parent)
        if listing is not None and name:
            return listing.value.get(name)
        return None

    def lookup(self, path: str) -> Meta:
        if path in self.local_dirs:
            return metas.directory("local", path)
        entry = self._fresh(self._attrs, path)
        if entry is not None:
            if entry.value is None:
                raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
            return entry.value
        parent, name = posixpath.split(path)
        listing = self._fresh(self._lists, parent)
        if listing is not None and name:
            meta = listing.value.get(name)
            if meta is None:
                raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
            return meta
        meta = self._ask(path)
        self.remember(path, meta)
        if meta is None:
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        return meta

    def _ask(self, path: str) -> Meta | None:
        try:
            loc = self.mounts.locate(path)
        except KeyError:  # /objmount/<anything but s3>
            return None
        if loc is None:
            return metas.directory("objmount", path)
        store = self.stores(loc.store_url)
        if loc.rel == "":
            store.check_root()
            return metas.directory(store.id, loc.prefix)
        key = loc.key
        head = self._pool.submit(store.head, key)
        prefix = self._pool.submit(store.has_prefix, key + "/")
        info, is_dir = head.result(), prefix.result()
        if is_dir:
            if info is not None:
                self._warn_shadow(store.url, key)
            return metas.directory(store.id, key)
        if info is None:
            return None
        meta = metas.from_object(store.id, key, info.size, info.etag, info.mtime, info.metadata, info.content_type)
        return self._with_target(store, key, meta)

    def _with_target(self, store, key: str, meta: Meta) -> Meta:
        if meta.kind is not Kind.SYMLINK or meta.target is not None:
            return meta
        chunks: list[bytes] = []
        store.read(key, 0, meta.size, None, lambda off, data: chunks.append(data))
        target = b"".join(chunks).decode("utf-8", "surrogateescape")
        return Meta(meta.kind, len(target.encode("utf-8", "surrogateescape")), meta.mode, meta.uid, meta.gid,
                    meta.mtime, meta.etag, target, meta.ino, meta.exact)

    def _warn_shadow(self, url: str, key: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s/%s is both an object and a prefix: showing the directory", url, key)

    def exact(self, path: str, meta: Meta) -> Meta:
        """`meta` if it says what kind of thing `path` is; for a listed object (a listing
        carries no user metadata, so a symlink object looks like a file) ask the bucket.
        The answer also serves as the revalidation of an open in the same operation."""
        if meta.kind is Kind.FILE and not meta.exact:
            meta = self.head(path)
            self._answered[path] = meta
        return meta

    def revalidate(self, path: str) -> Meta:
        """close-to-open: the bucket's answer now — asked in this operation already, or
        asked again."""
        meta = self._answered.pop(path, None)
        return meta if meta is not None else self.head(path)

    def end_operation(self) -> None:
        """Answers from the bucket are not reused past the operation that asked."""
        self._answered.clear()

    def head(self, path: str) -> Meta:
        """Lookup that always asks the bucket (open's revalidation)."""
        meta = self._ask(path)
        self.remember(path, meta)
        if meta is None:
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        return meta

    # --- listings ----------------------------------------------------------------------
    def listdir(self, path: str) -> list[tuple[str, Meta]]:
        entry = self._fresh(self._lists, path)
        if entry is not None:
            entries = entry.value
        else:
            meta = self.lookup(path)
            if meta.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{path}: not a directory")
            entries = self._list(path)
            self._lists[path] = _Entry(entries, time.monotonic() + self.ttl)
        local = {posixpath.basename(d): metas.directory("local", d) for d in self.local_dirs
                 if posixpath.dirname(d) == path}
        return sorted({**entries, **local}.items())

    def _list(self, path: str) -> dict[str, Meta]:
        loc = self.mounts.locate(path)
        if loc is None:
            if path == OBJMOUNT_ROOT:
                return {"s3": metas.directory("objmount", S3_ROOT)}
            service = self.stores("s3://")
            return {name: metas.directory(f"s3://{name}", "") for name in service.list_buckets()}
        store = self.stores(loc.store_url)
        prefix = loc.key + "/" if loc.key else ""
        listing = store.list(prefix)
        entries: dict[str, Meta] = {}
        for info in listing.objects:
            name = info.key[len(prefix):]
            if not name or "/" in name:
                continue  # the directory's own marker
            cached = self._fresh(self._attrs, f"{path}/{name}")
            if cached is not None and cached.value is not None:
                entries[name] = cached.value
                continue
            meta = metas.from_object(store.id, info.key, info.size, info.etag, info.mtime, info.metadata)
            if meta.kind is Kind.SYMLINK:
                meta = self._with_target(store, info.key, meta)
            entries[name] = meta
        for sub in listing.prefixes:
            name = sub[len(prefix):].rstrip("/")
            if not name:
                continue
            if name in entries:
                self._warn_shadow(store.url, prefix + name)
            entries[name] = metas.directory(store.id, prefix + name)
        return entries

    # --- symlinks ----------------------------------------------------------------------
    def resolve(self, path: str, follow_last: bool = True, depth: int = 0, sure: bool = True) -> str:
        """The path after following symlinks. sure: a listed object about to be followed is
        asked about first (it may be a symlink the listing showed as a file); callers whose
        answer does not depend on it (xattr reads, asked by ls -l for every file) pass False."""
        if depth > MAX_LINKS:
            raise VfsError(errno.ELOOP, f"{path}: too many levels of symbolic links")
        try:
            meta = self.lookup(path)
            if follow_last and sure:
                meta = self.exact(path, meta)
        except VfsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return self._resolve_walk(path, follow_last, depth)
        if meta.kind is Kind.SYMLINK and follow_last:
            return self._follow(path, meta, "", follow_last, depth)
        return path

    def _follow(self, link: str, meta: Meta, rest: str, follow_last: bool, depth: int) -> str:
        target = meta.target or ""
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        if joined.startswith("//"):
            joined = joined[1:]
        if rest:
            joined = posixpath.join(joined, rest)
        if not self.mounts.is_virtual(joined):
            return joined
        return self.resolve(joined, follow_last, depth + 1)

    def _resolve_walk(self, path: str, follow_last: bool, depth: int) -> str:
        """The full path is missing: find the first component that is missing, a file or
        a symlink, walking down from the mount root."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            prefix = "/" + "/".join(parts[:i])
            if not self.mounts.is_virtual(prefix):
                continue
            meta = self.exact(prefix, self.lookup(prefix))  # ENOENT propagates: an ancestor is missing
            if meta.kind is Kind.SYMLINK:
                return self._follow(prefix, meta, "/".join(parts[i:]), follow_last, depth)
            if meta.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{prefix}: not a directory")
        raise VfsError(errno.ENOENT, f"{path}: no such file or directory")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
