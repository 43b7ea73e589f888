"""Open files and the changes not yet in the bucket: the owner of per-object write state.

`OpenFile` is one open of a regular file (its sparse cache file, readahead, and what the
program writes through it). `Files` holds what outlives a single open: the objects with
changes not yet uploaded (keyed by store and key), the hard-link groups of this run, the
write-behind uploads, and the flush that publishes a file. `Vfs` (namespace changes)
calls in here; nothing else drives a cache item's write fields.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import meta as metas
from .cache import Cache, Item
from .errors import VfsError
from .fetch import Readahead
from .meta import Kind, Meta
from .ranges import RangeSet
from .upload import MULTIPART_THRESHOLD, Previous, upload
from .writebehind import WriteBehind


class OpenFile:
    """An open regular file: its sparse cache file and the ranges it needs."""

    def __init__(self, files: "Files", store, key: str, meta: Meta, item: Item, path: str, writable: bool = False):
        self._files = files
        self._store = store
        self._key = key
        self.path = path
        self.meta = meta
        self.item = item
        self.cache_path = str(item.path)
        self.writable = writable
        self._readahead = Readahead(maximum=files.config.readahead_max)
        self._closed = False
        self._complete = False
        item.handles.add(self)

    # --- writes ------------------------------------------------------------------------
    def will_write(self, offset: int, length: int, writer=None, may_shorten: bool = False) -> int:
        """The program is about to write [offset, offset+length) into the cache file:
        wait out fetches that would land on it, and record it dirty.

        `writer` names who writes (a thread id): its earlier writes have landed by the time
        it announces another, so write-behind may read what they wrote. None: the bytes may
        change at any moment until the next flush (a shared writable mapping).
        `may_shorten`: the call may write fewer bytes (copy_file_range, sendfile, splice);
        the return value is then how many it should be let write (up to the next part
        boundary while write-behind is possible). Otherwise it is `length`."""
        if length <= 0:
            return length
        item = self.item
        if may_shorten and self._files.write_behind_possible(item, self._store):
            part = self._files.config.write_behind_part
            length = min(length, part - offset % part)
        end = offset + length
        with item.cond:
            while any(s < end and offset < e for s, e in item.inflight):
                item.cond.wait(timeout=1.0)
            item.present.add(offset, end)
            item.dirty.add(offset, end)
        self._files.dirtied(self, offset, end)
        self._files.write_behind(self, offset, end, writer)
        return length

    def set_size(self, size: int, writer=None) -> None:
        """truncate/ftruncate to `size`: bytes past it are gone, an extension is zeros.
        `writer` as for will_write."""
        item = self.item
        current = os.stat(item.path).st_size
        with item.cond:
            if size < current:
                item.dirty.remove(size, 1 << 62)
                item.present.remove(size, 1 << 62)
            item.size = min(item.size, size)  # nothing past here comes from the bucket again
            if size > current:
                item.present.add(current, size)
                item.dirty.add(current, size)
        self._files.dirtied(self, min(size, current), max(size, current))
        wb = item.write_behind
        if wb is not None and size < current and wb.sent_beyond(size):
            self._files.drop_write_behind(item)  # what went up is moot now
        elif size != current:
            self._files.write_behind(self, min(size, current), max(size, current), writer)

    def mark_untracked(self) -> None:
        """Writes may bypass will_write (a descriptor the filter cannot see): upload all."""
        self.ensure_all()
        self.item.untracked = True
        self._files.drop_write_behind(self.item)
        self._files.dirtied(self, 0, 0)

    @property
    def dirty(self) -> bool:
        item = self.item
        return bool(item.dirty) or item.created or item.untracked

    def current_meta(self) -> Meta:
        return self._files.item_meta(self.item, self._store, self._key, self.meta)

    def set_attrs(self, **attrs) -> None:
        self.item.attrs = dict(self.item.attrs or {}, **attrs)
        self._files.dirtied(self, 0, 0, meta_only=True)

    def flush(self) -> None:
        """Upload pending changes; returns once the bucket has them (close, fsync)."""
        self._files.flush(self.item, self._store, self._key, self.path)

    @property
    def complete(self) -> bool:
        """Every byte is local: reads need no further checks."""
        if self._complete:
            return True
        item = self.item
        self._complete = item.present.contains(0, item.size)
        return self._complete

    def ensure(self, offset: int, length: int) -> None:
        end = min(offset + max(length, 0), self.meta.size)
        if offset >= end:
            return
        prefetch = self._readahead.advise(offset, end)
        if prefetch is None and self.item.present.contains(offset, end):
            return
        self._files.fetcher.ensure(self._store, self._key, self.meta.etag, self.item, offset, end, prefetch=prefetch)

    def ensure_all(self) -> None:
        if self.meta.size:
            self._files.fetcher.ensure(self._store, self._key, self.meta.etag, self.item, 0, self.meta.size,
                                     align=self._files.fetcher.part)

    def materialize(self) -> None:
        """The whole object present and no writer open on it, ready for execve."""
        self.ensure_all()
        self.item.close_fd()

    def close(self) -> None:
        """Flush (for a writable handle) and release; a flush error is raised after the
        handle is released, with the data kept in the cache for a later flush."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.writable:
                self.item.writers -= 1
                self.flush()
        finally:
            self.item.handles.discard(self)
            self._files.released(self)


class Files:
    """Per-object write state: what is open for writing or not uploaded yet, and how it
    gets to the bucket."""

    def __init__(self, config, cache: Cache, fetcher, ns, stats):
        self.config = config
        self.cache = cache
        self.fetcher = fetcher
        self.ns = ns
        self._stats = stats
        # (store url, key) -> (item, store, path) of files with changes not yet uploaded
        self._writers: dict[tuple[str, str], tuple[Item, object, str]] = {}
        # Hard links made in this run: path -> the set of names sharing its content. Each
        # name is its own object; a flush through one name copies the result to the others.
        self._links: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._wb_pool = None  # the write-behind workers, started with the first part

    # --- what this run is ahead of the bucket with ----------------------------------------
    def entry(self, store_url: str, key: str):
        """(item, store, path) of a file with changes not yet uploaded, or None."""
        return self._writers.get((store_url, key))

    def pending_meta(self, store_url: str, key: str) -> Meta | None:
        entry = self._writers.get((store_url, key))
        if entry is None:
            return None
        item, store, _ = entry
        return self.item_meta(item, store, key, None)

    def in_dir(self, path: str) -> dict[str, Meta]:
        """Files with pending changes directly in directory `path`, by name."""
        return {posixpath.basename(p): self.item_meta(item, store, key, None)
                for (url, key), (item, store, p) in list(self._writers.items()) if posixpath.dirname(p) == path}

    def nlink(self, path: str, meta: Meta) -> Meta:
        group = self._links.get(path)
        if group is not None and meta.kind is Kind.FILE:
            meta = dataclasses.replace(meta, nlink=len(group))
        return meta

    def item_meta(self, item: Item, store, key: str, base: Meta | None) -> Meta:
        try:
            size = os.stat(item.path).st_size
        except OSError:
            size = base.size if base else 0
        attrs = item.attrs or {}
        mode = attrs.get("mode", base.mode if base else metas.DEFAULT_FILE_MODE)
        return Meta(Kind.FILE, size, mode, attrs.get("uid", base.uid if base else os.getuid()),
                    attrs.get("gid", base.gid if base else os.getgid()),
                    attrs.get("mtime", base.mtime if base else time.time()),
                    item.previous_etag, None, metas.inode(store.id, key))

    # --- opening -----------------------------------------------------------------------
    def open_pending(self, store, loc, path: str, flags: int) -> OpenFile | None:
        """An open of a file this run has changes of (the bucket is behind), or None."""
        pending = self._writers.get((loc.store_url, loc.key))
        if pending is None:
            return None
        if flags & os.O_CREAT and flags & os.O_EXCL:
            raise VfsError(errno.EEXIST, f"{path}: file exists")
        item = pending[0]
        with self.cache._lock:
            item.opens += 1
        return self._opened(store, loc, path, self.item_meta(item, store, loc.key, None), item, flags)

    def open(self, store, loc, path: str, meta: Meta, flags: int) -> OpenFile:
        """An open of the object version `meta` (just revalidated)."""
        item = self.cache.open_item(store.id, loc.key, meta.etag, meta.size)
        item.previous_etag = meta.etag
        return self._opened(store, loc, path, meta, item, flags)

    def _opened(self, store, loc, path, meta, item, flags) -> OpenFile:
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        handle = OpenFile(self, store, loc.key, meta, item, path, writable)
        if writable:
            item.writers += 1
            self._writers[(loc.store_url, loc.key)] = (item, store, path)
            if item.attrs is None:
                item.attrs = {"mode": meta.mode, "uid": meta.uid, "gid": meta.gid, "mtime": meta.mtime}
            if flags & os.O_TRUNC:
                handle.set_size(0)
        return handle

    def create(self, store, loc, path, mode, uid, gid, flags) -> OpenFile:
        item = self.cache.new_item()
        item.created = True
        item.attrs = {"mode": stat.S_IFREG | (mode & 0o7777), "uid": os.getuid() if uid is None else uid,
                      "gid": os.getgid() if gid is None else gid, "mtime": time.time()}
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        handle = OpenFile(self, store, loc.key, self.item_meta(item, store, loc.key, None), item, path, writable)
        if writable:
            item.writers += 1
        self._writers[(loc.store_url, loc.key)] = (item, store, path)
        self.dirtied(handle, 0, 0)
        return handle

    # --- writes ---------------------------------------------------------------------
    def dirtied(self, handle: OpenFile, start: int, end: int, meta_only: bool = False) -> None:
        item = handle.item
        if not meta_only:
            item.attrs = dict(item.attrs or {}, mtime=time.time())
        self._writers[(handle._store.url, handle._key)] = (item, handle._store, handle.path)
        if not item.journaled:
            item.journaled = True
            self.cache.journal(item, {"store_url": handle._store.url, "key": handle._key,
                                      "previous_etag": item.previous_etag, "fetchable": item.size,
                                      "created": item.created, "attrs": item.attrs})
        if end > start:
            with open(self.cache.dirty_log(item.id), "ab") as log_file:
                log_file.write(start.to_bytes(8, "little") + end.to_bytes(8, "little"))

    # --- write-behind (see writebehind.py) -----------------------------------------------
    def write_behind_possible(self, item: Item, store) -> bool:
        """A file written from scratch: nothing of it is to be copied or fetched from a
        previous version, so its parts can go up as they are completed."""
        return (self.config.write_behind and item.size == 0 and not item.untracked
                and getattr(store, "supports_multipart", True) and hasattr(store, "upload_part"))

    def write_behind(self, handle: OpenFile, start: int, end: int, writer) -> None:
        item = handle.item
        wb = item.write_behind
        if wb is None:
            if not self.write_behind_possible(item, handle._store):
                return
            if writer is None:
                return
            with self._lock:
                if self._wb_pool is None:
                    self._wb_pool = ThreadPoolExecutor(max_workers=self.config.write_behind_workers,
                                                       thread_name_prefix="write-behind")
            store, key = handle._store, handle._key

            def metadata() -> dict[str, str]:
                return self.metadata(item)

            def created(upload_id: str) -> None:
                self.cache.journal_update(item.id, write_behind={"key": key, "upload_id": upload_id})

            wb = item.write_behind = WriteBehind(self._wb_pool, store, key, item, self.config.write_behind_part,
                                                 MULTIPART_THRESHOLD, metadata, created, self._stats)
        elif wb.key != handle._key or wb.store is not handle._store:
            self.drop_write_behind(item)  # another name for the same bytes: start over
            return self.write_behind(handle, start, end, writer)
        if writer is None:
            self.drop_write_behind(item)  # bytes that may change at any time: upload at close
            return
        wb.note(start, end, writer)

    def drop_write_behind(self, item: Item, wait: bool = False) -> None:
        wb = item.write_behind
        if wb is not None:
            item.write_behind = None
            wb.abandon(wait=wait)

    @staticmethod
    def metadata(item: Item) -> dict[str, str]:
        attrs = item.attrs or {}
        return metas.to_metadata(attrs.get("mode", metas.DEFAULT_FILE_MODE), attrs.get("uid", os.getuid()),
                                 attrs.get("gid", os.getgid()), attrs.get("mtime", time.time()))

    def flush(self, item: Item, store, key: str, path: str) -> None:
        with item.upload_lock:
            if not (item.dirty or item.created or item.untracked or item.journaled or item.meta_dirty):
                return
            size = os.stat(item.path).st_size
            dirty = RangeSet([(0, size)]) if item.untracked else item.dirty.copy()
            previous = None
            if item.previous_etag is not None and item.size > 0:
                previous = Previous(item.previous_etag, item.size)
            metadata = self.metadata(item)

            def fetch_previous(start: int, end: int) -> None:
                self.fetcher.ensure(store, key, item.previous_etag, item, start, end)

            etag = None
            wb = item.write_behind
            if wb is not None:
                item.write_behind = None  # later writes start afresh
                if wb.key == key and wb.store is store and not item.untracked:
                    etag = wb.finish(size, metadata, item.attrs_version)  # None: not of use
                else:
                    wb.abandon(wait=True)
            if etag is not None:
                pass
            elif (not dirty and not item.created and previous is not None and size == previous.size
                    and getattr(store, "supports_multipart", True)):
                etag = store.copy(key, key, metadata, etag=item.previous_etag)  # attributes only
            else:
                etag = upload(store, key, str(item.path), size, dirty, previous, metadata, fetch_previous)
            item.meta_dirty = False
            with item.cond:
                item.dirty = RangeSet()
                item.present.add(0, 0)
            item.created = item.untracked = False
            item.previous_etag = etag
            item.size = size
            old_id = item.id
            self.cache.rekey(item, store.id, key, etag)
            self.cache.unjournal(old_id)
            item.journaled = False
            if path.startswith("/"):
                self.ns.update(path, self.item_meta(item, store, key, None))
            for other in self._links.get(path, ()):
                if other != path:
                    other_loc = self.ns.mounts.locate(other)
                    store.copy(key, other_loc.key, None)
                    self.ns.forget(other)
            if item.writers == 0:
                self._writers.pop((store.url, key), None)

    def released(self, handle: OpenFile) -> None:
        item = handle.item
        if item.writers == 0 and not handle.dirty and not item.journaled:
            self._writers.pop((handle._store.url, handle._key), None)
        self.cache.release(item)

    # --- namespace changes of files with pending changes ---------------------------------
    def flush_key(self, store_url: str, key: str) -> None:
        entry = self._writers.get((store_url, key))
        if entry is not None:
            item, store, p = entry
            self.flush(item, store, key, p)

    def unlinked(self, store_url: str, key: str, path: str) -> bool:
        """`path` is being deleted: its pending changes go nowhere now. Returns whether the
        object exists in the bucket (needs a DELETE)."""
        pending = self._writers.pop((store_url, key), None)
        if pending is not None:  # an open, unflushed file: its data goes nowhere now
            item = pending[0]
            self.drop_write_behind(item, wait=True)
            item.dirty, item.created, item.untracked = RangeSet(), False, False
            self.cache.unjournal(item.id)
            item.journaled = False
        group = self._links.pop(path, None)
        if group is not None:
            group.discard(path)
        return pending is None or pending[0].previous_etag is not None

    def linked(self, old: str, new: str) -> None:
        group = self._links.setdefault(old, {old})
        group.add(new)
        self._links[new] = group

    def moved(self, store, old_key: str, new_key: str, new_path: str) -> None:
        """A file still being written was renamed (after a flush, so nothing of it is
        journaled): its later writes, their journal entry and its close belong to the new
        name."""
        entry = self._writers.pop((store.url, old_key), None)
        if entry is None:
            return
        item = entry[0]
        self._writers[(store.url, new_key)] = (item, entry[1], new_path)
        for handle in list(item.handles):
            handle._key, handle.path = new_key, new_path

    def flush_below(self, store, old: str, old_key: str, new: str, new_key: str) -> list:
        """A directory is being renamed: flush what is pending below it; returns the
        (key, new key, new path) moves to apply with `moved` once the keys are copied."""
        moving = []
        for (url, key), (item, st, p) in list(self._writers.items()):
            if p.startswith(old + "/"):
                self.flush(item, st, key, p)
                if st is store:
                    moving.append((key, new_key + key[len(old_key):], new + p[len(old):]))
        return moving

    def set_pending_attrs(self, store_url: str, key: str, new: dict) -> bool:
        """chmod/chown/utimes of a file being written: the attributes go up with the data.
        Returns False when nothing of it is pending."""
        entry = self._writers.get((store_url, key))
        if entry is None:
            return False
        item = entry[0]
        item.attrs = dict(item.attrs or {}, **new)
        item.meta_dirty = True
        item.attrs_version += 1
        if item.writers == 0:
            self.flush(item, entry[1], key, entry[2])
        return True

    def close(self) -> None:
        for item in list(self.cache.items.values()):
            self.drop_write_behind(item)
        if self._wb_pool is not None:
            self._wb_pool.shutdown(wait=True)
