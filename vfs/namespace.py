"""Path -> metadata: lookups, listings, symlink resolution, with TTL caches.

A listing answers which names exist and what kind they are for the TTL. It carries no user
metadata, so its entries are not `exact`: a lookup that needs attributes (the stat family,
access) asks the bucket about the entry — and once a program asks about a second entry of
one listing, about all of that listing's inexact entries, in parallel (ATTR_WORKERS at
once), so `ls -l` of N files costs a LIST and N HEADs side by side.

A lookup with no fresh listing asks HEAD key and LIST key/ (MaxKeys=1) together; a prefix
makes a directory, and wins over an object of the same name. A directory's attributes are
its marker's (`key/`, HEAD once the LIST showed a directory); without a marker it is
implicit (metas.directory).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import posixpath
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from . import meta as metas
from .errors import VfsError
from .meta import Kind, Meta
from .mounts import OBJMOUNT_ROOT, S3_ROOT, MountTable
from .times import RunTimes

log = logging.getLogger("vfs.namespace")
MAX_LINKS = 40
ATTR_WORKERS = 32    # HEADs at once for the attributes of a listing's entries


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
        self._answered: dict[str, Meta | None] = {}    # asked of the bucket in this operation
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
        self._attr_pool = ThreadPoolExecutor(max_workers=ATTR_WORKERS, thread_name_prefix="attrs")
        self._attr_lock = threading.Lock()
        # dir path -> (the listing's entries dict, name -> Future of the entry's exact Meta)
        self._settling: dict[str, tuple[dict, dict[str, Future]]] = {}
        # Attributes of bucket-root mounts set in this run: a bucket root has no key to keep them.
        self.root_attrs: dict[str, Meta] = {}
        self._warned: set[str] = set()
        # Directories that exist for this run only (their marker could not be written).
        self.local_dirs: set[str] = set()
        # Times changed in this run and not stored (times.py): following a link reads it.
        self.times = RunTimes()

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

    def lookup(self, path: str, attrs: bool = False, recheck_missing: bool = False) -> Meta:
        """attrs: the caller shows mode, owner or times (stat, access), so a listed entry's
        real attributes are asked for. recheck_missing: a name remembered as missing is
        asked about again (open: another client may have created it since)."""
        if path in self.local_dirs:
            return metas.directory("local", path)
        entry = self._fresh(self._attrs, path)
        if entry is not None and (entry.value is not None or not recheck_missing):
            if entry.value is None:
                raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
            return entry.value
        parent, name = posixpath.split(path)
        listing = self._fresh(self._lists, parent)
        if listing is not None and name and entry is None:
            meta = listing.value.get(name)
            if meta is not None:
                return self._settle(parent, name, listing.value) if attrs and not meta.exact else meta
            if not recheck_missing:
                raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        meta = self._ask(path)
        if recheck_missing:
            self._answered[path] = meta  # the open's revalidation, asked just now
        if recheck_missing and meta is not None:
            self.update(path, meta)  # found now: the cached listing learns it too
        else:
            self.remember(path, meta)
        if meta is None:
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        return meta

    # --- attributes of listed entries ---------------------------------------------------
    def _settle(self, parent: str, name: str, entries: dict[str, Meta]) -> Meta:
        """The exact Meta of a listed entry. The first one asked about in a listing is
        asked alone; from the second on, every inexact entry of the listing is asked
        about in parallel, ahead of the program."""
        with self._attr_lock:
            known = self._settling.get(parent)
            if known is None or known[0] is not entries:  # a new listing: start afresh
                known = (entries, {})
                self._settling[parent] = known
            futures = known[1]
            future = futures.get(name)
            if future is None:
                future = futures[name] = self._attr_pool.submit(self._exact_entry, parent, name, entries)
                if len(futures) == 2:
                    for other, meta in list(entries.items()):
                        if not meta.exact and other not in futures:
                            futures[other] = self._attr_pool.submit(self._exact_entry, parent, other, entries)
        try:
            meta = future.result()
        except VfsError:
            with self._attr_lock:
                futures.pop(name, None)  # not remembered: the next call asks again
            raise
        if meta is None:
            raise VfsError(errno.ENOENT, f"{parent}/{name}: no such file or directory")
        return meta

    def _exact_entry(self, parent: str, name: str, entries: dict[str, Meta]) -> Meta | None:
        """Ask the bucket about one listed entry (a pool thread); the listing and the
        attribute cache take the answer."""
        path = f"{parent}/{name}"
        listed = entries.get(name)
        if listed is None or listed.exact:
            return listed
        loc = self.mounts.locate(path)
        store = self.stores(loc.store_url)
        if listed.kind is Kind.DIR:
            meta = self._directory(store, loc.dir_key)
        else:
            info = store.head(loc.key)
            if info is None:  # deleted since the listing
                meta = None
            else:
                meta = self._with_target(store, loc.key, metas.from_object(
                    store.id, loc.key, info.size, info.etag, info.mtime, info.metadata, info.content_type))
        with self._attr_lock:
            if entries.get(name) is listed:
                if meta is None:
                    entries.pop(name, None)
                else:
                    entries[name] = meta
            self.remember(path, meta)
        return meta

    def _directory(self, store, marker: str) -> Meta:
        """A directory's Meta: its marker's attributes, or an implicit directory's."""
        if not marker:  # a bucket root: no key to hold attributes (see root_attrs)
            return self.root_attrs.get(store.url) or metas.directory(store.id, "")
        info = store.head(marker)
        if info is None:
            return metas.directory(store.id, marker)
        return metas.from_marker(store.id, marker, info.etag, info.mtime, info.metadata)

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
            return self._directory(store, loc.dir_key)
        key = loc.key
        head = self._pool.submit(store.head, key)
        prefix = self._pool.submit(store.has_prefix, loc.dir_key)
        info, is_dir = head.result(), prefix.result()
        if is_dir:
            if info is not None:
                self._warn_shadow(store.url, key)
            return self._directory(store, loc.dir_key)
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
        return dataclasses.replace(meta, size=len(target.encode("utf-8", "surrogateescape")), target=target)

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
        if path not in self._answered:
            return self.head(path)
        meta = self._answered.pop(path)
        if meta is None:
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        return meta

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
        prefix = loc.dir_key
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
            cached = self._fresh(self._attrs, f"{path}/{name}")
            if cached is not None and cached.value is not None and cached.value.kind is Kind.DIR:
                entries[name] = cached.value
            else:
                entries[name] = metas.directory(store.id, prefix + name, exact=False)
        return entries

    # --- symlinks ----------------------------------------------------------------------
    def resolve(self, path: str, follow_last: bool = True, depth: int = 0, sure: bool = True,
                attrs: bool = False, recheck_missing: bool = False) -> str:
        """The path after following symlinks. sure: a listed object about to be followed is
        asked about first (it may be a symlink the listing showed as a file); callers whose
        answer does not depend on it (xattr reads, asked by ls -l for every file) pass False.
        attrs, recheck_missing: as for lookup, for the path itself."""
        if depth > MAX_LINKS:
            raise VfsError(errno.ELOOP, f"{path}: too many levels of symbolic links")
        try:
            meta = self.lookup(path, attrs=attrs, recheck_missing=recheck_missing)
            if follow_last and sure:
                meta = self.exact(path, meta)
        except VfsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return self._resolve_walk(path, follow_last, depth, attrs=attrs, recheck_missing=recheck_missing)
        if meta.kind is Kind.SYMLINK and follow_last:
            return self._follow(path, meta, "", follow_last, depth, attrs=attrs, recheck_missing=recheck_missing)
        return path

    def _follow(self, link: str, meta: Meta, rest: str, follow_last: bool, depth: int, **how) -> str:
        self.times.accessed(link, meta.times())  # following a symlink reads it: its atime, as the kernel's
        target = meta.target or ""
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        if joined.startswith("//"):
            joined = joined[1:]
        if rest:
            joined = posixpath.join(joined, rest)
        if not self.mounts.is_virtual(joined):
            return joined
        return self.resolve(joined, follow_last, depth + 1, **how)

    def _resolve_walk(self, path: str, follow_last: bool, depth: int, **how) -> str:
        """The full path is missing: find the first component that is missing, a file or
        a symlink, walking down from the mount root."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            prefix = "/" + "/".join(parts[:i])
            if not self.mounts.is_virtual(prefix):
                continue
            meta = self.exact(prefix, self.lookup(prefix))  # ENOENT propagates: an ancestor is missing
            if meta.kind is Kind.SYMLINK:
                return self._follow(prefix, meta, "/".join(parts[i:]), follow_last, depth, **how)
            if meta.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{prefix}: not a directory")
        raise VfsError(errno.ENOENT, f"{path}: no such file or directory")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._attr_pool.shutdown(wait=False, cancel_futures=True)
