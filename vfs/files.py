"""Open files and the changes not yet in the bucket: the owner of per-object write state.

`OpenFile` is one open of a regular file (its sparse cache file, readahead, and what the
program writes through it). `Files` holds what outlives a single open: the objects with
changes not yet uploaded (keyed by store and key), which cache item holds which version,
items left without a name, the write-behind uploads, and the flush that publishes a file
(to every name of its hard-link group, links.py). `Vfs` (namespace changes)
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
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor

from . import meta as metas
from .cache import Cache, Item
from .blocking import acquired, waiting
from .errors import VfsError
from .fetch import Readahead
from .links import LinkGroups
from .meta import Kind, Meta
from .ranges import RangeSet
from .stores.base import ObjectInfo
from .times import own_ctime
from .upload import MULTIPART_THRESHOLD, Previous, upload
from .writebehind import WriteBehind


def _times(attrs: dict, base: Meta | None) -> dict[str, int]:
    """atime_ns, mtime_ns, ctime_ns of a file being written: what was set or written
    (item.attrs, journaled: a journal of an older version has a float "mtime"), else the
    version it was opened on, else now."""
    now = None
    out = {}
    for field in ("mtime_ns", "atime_ns", "ctime_ns"):
        t = attrs.get(field)
        if t is None and "mtime" in attrs:
            t = metas.seconds_to_ns(attrs["mtime"])
        if t is None and base is not None:
            t = getattr(base, field)
        if t is None:
            now = now or time.time_ns()
            t = now
        out[field] = t
    return out


class OpenFile:
    """An open regular file: its sparse cache file and the ranges it needs."""

    def __init__(self, files: "Files", store, key: str, meta: Meta, item: Item, path: str, writable: bool = False):
        self._files = files
        self._store = store
        self._key = key
        self.path = path
        self.meta = meta
        self.item = item
        self.writable = writable
        self._readahead = Readahead(maximum=files.config.readahead_max)
        self._closed = False
        self._complete = False
        item.handles.add(self)

    @property
    def cache_path(self) -> str:
        """The cache file now: an upload re-files it under the version it made."""
        return str(self.item.path)

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
        with waiting(), item.cond:
            while any(s < end and offset < e for s, e in item.inflight):
                item.cond.wait(timeout=1.0)
            item.present.add(offset, end)
            item.dirty.add(offset, end)
            if writer is not None:
                item.unlanded[writer] = (offset, end)   # its previous write has landed
        self._files.dirtied(self, offset, end)
        self._files.write_behind(self, offset, end, writer)
        return length

    def set_size(self, size: int, writer=None) -> None:
        """truncate/ftruncate to `size`: bytes past it are gone, an extension is zeros.
        `writer` as for will_write."""
        item = self.item
        item.unlanded.pop(writer, None)
        current = os.stat(item.path).st_size
        if size < item.size:
            item.truncated = True  # the previous version's bytes past `size` are gone
        item.cut(size)  # nothing past here comes from the bucket again, fetches in flight included
        with item.cond:
            if size < current:
                item.dirty.remove(size, 1 << 62)
                item.present.remove(size, 1 << 62)
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
        return bool(item.dirty) or item.created or item.untracked or item.failed is not None

    def current_meta(self) -> Meta:
        """What fstat says: the file's current size and attributes, whichever descriptor
        or name changed them."""
        return self._files.current_meta(self)

    def touch(self) -> None:
        """The file changed without new bytes (fallocate inside it): mtime and ctime now."""
        self._files.dirtied(self, 0, 0)

    def times(self) -> dict[str, int]:
        """atime_ns, mtime_ns, ctime_ns now (current_meta's, without its stat of the cache file)."""
        return _times(self.item.attrs or {}, self.meta)

    def set_attrs(self, **attrs) -> None:
        self.item.attrs = dict(self.item.attrs or {}, **attrs)
        self._files.dirtied(self, 0, 0, meta_only=True)

    def flush(self, landed=None) -> None:
        """Upload pending changes; returns once the bucket has them (close, fsync).
        `landed`: the writer (thread) asking, whose writes have all landed."""
        self._files.flush_handle(self, landed)

    @property
    def complete(self) -> bool:
        """Every byte is local: reads need no further checks."""
        if self._complete:
            return True
        item = self.item
        self._complete = item.present.contains(0, item.size)
        return self._complete

    # Fetches read the version the cache item holds (item.previous_etag, up to item.size:
    # what is still to come from the bucket), not the one this handle was opened on: an
    # upload made through any handle of the item re-keys it to the version it made.
    def ensure(self, offset: int, length: int) -> None:
        item = self.item
        end = min(offset + max(length, 0), item.size)
        if offset >= end:
            return
        fetcher = self._files.fetcher
        prefetch = self._readahead.advise(offset, end, fetcher.link(self._store))
        if prefetch is None and item.present.contains(offset, end):
            return
        fetcher.ensure(self._store, self._files.version_key(self), item.previous_etag, item, offset, end,
                       prefetch=prefetch, part=self._readahead.part)

    def ensure_all(self) -> None:
        item = self.item
        if item.size and not item.present.contains(0, item.size):
            self._files.fetcher.ensure(self._store, self._files.version_key(self), item.previous_etag, item, 0, item.size,
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
            elif self.item.created and self.item.writers == 0:
                self.flush()  # open(O_CREAT) without write access: the new file appears now
        finally:
            self.item.handles.discard(self)
            self._files.released(self)



class _Writers(dict):
    """(store url, key) -> (item, store, path), with the names of each item indexed: a
    close looked for its item's names through every entry (20,000 files left open at exit,
    as LTP's creat05 leaves them, took minutes: a scan per close)."""

    def __init__(self):
        super().__init__()
        self._names: dict[int, set[tuple[str, str]]] = {}

    def __setitem__(self, k, v) -> None:
        old = dict.get(self, k)
        if old is not None and old[0] is not v[0]:
            self._unindex(k, old[0])
        dict.__setitem__(self, k, v)
        self._names.setdefault(id(v[0]), set()).add(k)

    def __delitem__(self, k) -> None:
        self._unindex(k, dict.__getitem__(self, k)[0])
        dict.__delitem__(self, k)

    def pop(self, k, *default):
        if k in self:
            v = dict.__getitem__(self, k)
            del self[k]
            return v
        return dict.pop(self, k, *default)

    def _unindex(self, k, item) -> None:
        names = self._names.get(id(item))
        if names is not None:
            names.discard(k)
            if not names:
                del self._names[id(item)]

    def names_of(self, item) -> list[tuple[str, str]]:
        """The keys `item` is pending under (sorted, so that a choice among them is stable)."""
        return sorted(self._names.get(id(item), ()))

class Files:
    """Per-object write state: what is open for writing or not uploaded yet, and how it
    gets to the bucket. Names of one hard-link group (links.py) being written share one
    cache item; a flush through any name uploads it once and copies the result to the
    other names."""

    def __init__(self, config, cache: Cache, fetcher, ns, stats):
        self.config = config
        self.cache = cache
        self.fetcher = fetcher
        self.ns = ns
        self._stats = stats
        # (store url, key) -> (item, store, path) of files with changes not yet uploaded;
        # the names of one hard-link group map to the same item
        self._writers: _Writers = _Writers()
        self.links = LinkGroups(ns, self._reversioned)
        # items open but without a name any more (unlinked or renamed over while open):
        # what is written through them goes nowhere, as on a local filesystem
        self._unlinked: weakref.WeakSet = weakref.WeakSet()
        # item -> the key of the version it holds (item.previous_etag is that version's
        # ETag): a name sharing another's item, or renamed, fetches from there
        self._version_keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._wb_pool = None  # the write-behind workers, started with the first part
        # item id -> cache items holding an open's first bytes until the open takes them
        # (held: eviction keeps them); what no open took goes at the operation's end
        self._held: dict[str, list[Item]] = {}

    def version_key(self, handle: OpenFile) -> str:
        return self._version_keys.get(handle.item, handle._key)

    def _filed(self, item: Item, store, key: str, etag: str | None) -> None:
        """The item holds version `etag` of `key` now."""
        item.previous_etag = etag
        self.cache.rekey(item, store.id, key, etag)
        self._version_keys[item] = key

    def _replaced(self, store, key: str, old: str | None, new: str | None, source: Item) -> None:
        """Name `key` of a hard-link group got `source`'s bytes as version `new`: a cache
        item still open on its `old` version (read-only descriptors) is that version now,
        with nothing of it local, so its readers see the change as through a shared inode."""
        if old is None or new is None:
            return
        item = self.cache.items.get(self.cache.item_id(store.id, key, old))
        if item is None or item is source or item.opens <= 0 or item.previous_etag != old:
            return
        size = os.stat(source.path).st_size
        with waiting(), item.cond:
            while item.inflight:  # fetches of the old version land first, then are forgotten
                item.cond.wait(timeout=1.0)
            item.present = RangeSet()
            item.size = size
        # Its bytes change: other runs must not find them as `old`. The file leaves the
        # shared cache under a private name of this run's (filed as the new version below),
        # where fetches still find it; if another run reads it, it goes on as this run's
        # alone, nameless, fetched into through a descriptor kept open.
        moved = self.cache.take_over(item)
        if not moved:
            item.open_fd()
        os.truncate(item.path, size)
        if not moved:
            self.cache.detach(item, drop=True)
        self._filed(item, store, key, new)
        meta = self.item_meta(source, store, key, None)
        for handle in list(item.handles):
            handle.meta = dataclasses.replace(meta, etag=new)
            handle._complete = False

    def _reversioned(self, store, key: str, old: str | None, make, attrs: dict | None = None) -> str | None:
        """We make a version of `key` with the bytes of `old` (a metadata copy: `make()`
        makes it and returns its ETag): a cache item open on `old` is filed under the new
        one, so its later fetches ask for the version that exists now (file:// ETags
        include the mtime), and its descriptors' fstat shows the new `attrs`. A fetch of
        the item that meets the new version before it is filed waits for the filing and
        asks again (Item.refiling, Fetcher._fetch), instead of failing with ESTALE."""
        item = self.cache.items.get(self.cache.item_id(store.id, key, old)) if old is not None else None
        if item is None or item.previous_etag != old or item.opens <= 0:
            return make()
        with item.cond:
            item.refiling += 1
        try:
            new = make()
            if new is not None:
                if old != new:
                    self._filed(item, store, key, new)
                if attrs:
                    if item.attrs is not None:
                        item.attrs = dict(item.attrs, **attrs)
                    for handle in list(item.handles):
                        handle.meta = dataclasses.replace(handle.meta, etag=new, **attrs)
        finally:
            with item.cond:
                item.refiling -= 1
                item.cond.notify_all()
        return new

    # --- what this run is ahead of the bucket with ----------------------------------------
    def entry(self, store_url: str, key: str):
        """(item, store, path) of a file with changes not yet uploaded, or None; a name of
        a hard-link group whose other name is being written shares its item."""
        entry = self._writers.get((store_url, key))
        if entry is not None:
            return entry
        for other in self.links.group(store_url, key) - {key}:
            found = self._writers.get((store_url, other))
            if found is not None:
                item, store, path = found
                return item, store, self.links.path_of(path, other, key) or path
        return None

    def pending_meta(self, store_url: str, key: str) -> Meta | None:
        entry = self.entry(store_url, key)
        if entry is None:
            return None
        item, store, _ = entry
        return self.item_meta(item, store, key, None)

    def in_dir(self, path: str) -> dict[str, Meta]:
        """Files with pending changes directly in directory `path`, by name."""
        return {posixpath.basename(p): self.item_meta(item, store, key, None)
                for (url, key), (item, store, p) in list(self._writers.items()) if posixpath.dirname(p) == path}

    def item_meta(self, item: Item, store, key: str, base: Meta | None) -> Meta:
        try:
            size = os.stat(item.path).st_size
        except OSError:
            size = base.size if base else 0
        attrs = item.attrs or {}
        mode = attrs.get("mode", base.mode if base else metas.DEFAULT_FILE_MODE)
        keys = self.links.group(store.url, key)
        times = _times(attrs, base)
        # the number the file had at open: a rename moves it along (meta.inode_moved)
        ino = base.ino if base and base.ino else metas.inode(store.id, key)
        return Meta(Kind.FILE, size, mode, attrs.get("uid", base.uid if base else os.getuid()),
                    attrs.get("gid", base.gid if base else os.getgid()),
                    times["mtime_ns"], item.previous_etag, None, ino,
                    xattr=attrs.get("xattr"), nlink=0 if item in self._unlinked else len(keys),
                    links=tuple(sorted(keys)) if len(keys) > 1 else (),
                    atime_ns=times["atime_ns"], ctime_ns=times["ctime_ns"])

    def current_meta(self, handle: OpenFile) -> Meta:
        # the cache file is the file: its size is current whichever descriptor changed it;
        # attributes a writer set are in item.attrs, those set by path in handle.meta
        return self.item_meta(handle.item, handle._store, handle._key, handle.meta)

    # --- the open's first GET (Namespace.first) -------------------------------------------
    def first_window(self, store, key: str, known: Meta | None):
        """Ask the bucket for `key`'s first bytes (config.first_window of them); they go
        into the cache item of the version that answers. `known`: the version last seen
        (else the one an earlier run recorded); if the cache holds its first bytes, the
        GET is conditional. A 304's info has the known size, and its metadata if the
        answer or the record had it (None otherwise)."""
        # All of it with the caller's lock let go (vfs.blocking): the GET, and the keeping
        # of its bytes, thread-safe as a prefetch does the same on its own threads; the
        # lock is taken back once, not between the answer and its cache item.
        with waiting():
            return self._first_window(store, key, known)

    def _first_window(self, store, key: str, known: Meta | None):
        window = self.config.first_window
        if known is not None and (known.kind is Kind.DIR or not known.etag):
            known = None
        seen = None
        if known is None or not known.exact:  # what a 304 without metadata would need
            seen = self.cache.seen_version(store.id, key)
            if seen is not None and known is not None and seen.get("etag") != known.etag:
                seen = None
        etag, size = (known.etag, known.size) if known is not None else \
            (seen.get("etag"), seen.get("size", 0)) if seen else (None, 0)
        conditional = etag is not None and self.cache.holds(store.id, key, etag, 0, min(window, size))
        began = time.monotonic()
        got = store.get_first(key, window, etag if conditional else None, ranged=not (conditional and size == 0))
        if got is None:
            return None
        # a round trip of this store: the first readahead window is sized on it
        self.fetcher.link(store).answered(time.monotonic() - began, len(got.data))
        info = got.info
        if got.not_modified:
            metadata = info.metadata
            if metadata is None and seen is not None:
                metadata = seen.get("metadata")
            return dataclasses.replace(got, info=ObjectInfo(key, size, info.etag or etag, info.mtime or (
                seen or {}).get("mtime", 0.0), metadata, info.content_type or (seen or {}).get("content_type")))
        item = self.keep_first(store, key, got)
        if item is not None:
            with self._lock:
                self._held.setdefault(item.id, []).append(item)
        return got

    def keep_first(self, store, key: str, got) -> Item | None:
        """A GET of `key`'s first bytes answered with a version (not a 304): record it,
        and put a regular file's bytes in that version's cache item, which is returned
        open: the caller holds it until an open takes it, or releases it."""
        info = got.info
        self.cache.note_version(store.id, key, {"etag": info.etag, "size": info.size, "mtime": info.mtime,
                                                "metadata": info.metadata, "content_type": info.content_type})
        if not got.data:
            return None
        mode = metas.from_object(store.id, key, info.size, info.etag, info.mtime, info.metadata).mode
        if not stat.S_ISREG(mode):
            return None
        item = self.cache.open_item(store.id, key, info.etag, info.size)
        self.fetcher.deliver(item, 0, got.data)   # bytes past the item's size are left out there
        return item

    def _take_held(self, item: Item) -> None:
        """An open has `item` now: the holds of its first bytes are released."""
        with self._lock:
            held = self._held.pop(item.id, [])
        for h in held:
            self.cache.release(h)

    def end_operation(self) -> None:
        with self._lock:
            held = [h for hs in self._held.values() for h in hs]
            self._held.clear()
        for h in held:
            self.cache.release(h)

    # --- opening -----------------------------------------------------------------------
    def open_pending(self, store, loc, path: str, flags: int) -> OpenFile | None:
        """An open of a file this run has changes of (the bucket is behind), or None."""
        pending = self.entry(loc.store_url, loc.key)
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
        self.links.seen(path, meta)
        item = self.cache.open_item(store.id, loc.key, meta.etag, meta.size)
        self._take_held(item)
        item.previous_etag = meta.etag
        self._version_keys[item] = loc.key
        handle = self._opened(store, loc, path, meta, item, flags)
        window = self.config.first_window
        if handle.item is item and item.size > window and item.present.contains(0, window):
            handle._readahead.primed(window)  # the first read asks for what follows at once
        return handle

    def _opened(self, store, loc, path, meta, item, flags) -> OpenFile:
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if writable and not self.cache.take_over(item):  # a writer works on a file of its own (cache.py)
            shared = item
            item = self.cache.private_item(shared, copy=not flags & os.O_TRUNC)
            item.previous_etag = shared.previous_etag
            self._version_keys[item] = self._version_keys.get(shared, loc.key)
        handle = OpenFile(self, store, loc.key, meta, item, path, writable)
        if writable:
            item.writers += 1
            self._writers[(loc.store_url, loc.key)] = (item, store, path)
            if item.attrs is None:
                item.attrs = {"mode": meta.mode, "uid": meta.uid, "gid": meta.gid, **meta.times(),
                              "xattr": meta.xattr}
            if flags & os.O_TRUNC:
                handle.set_size(0)
        return handle

    def create(self, store, loc, path, mode, uid, gid, flags) -> OpenFile:
        item = self.cache.new_item()
        item.created = True
        now = time.time_ns()
        item.attrs = {"mode": stat.S_IFREG | (mode & 0o7777), "uid": os.getuid() if uid is None else uid,
                      "gid": os.getgid() if gid is None else gid, "mtime_ns": now, "atime_ns": now, "ctime_ns": now}
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        handle = OpenFile(self, store, loc.key, self.item_meta(item, store, loc.key, None), item, path, writable)
        if writable:
            item.writers += 1
        self._writers[(loc.store_url, loc.key)] = (item, store, path)
        self.dirtied(handle, 0, 0)
        return handle

    def _name_of(self, handle: OpenFile) -> tuple[str, str] | None:
        """(key, path) the handle's item is to be uploaded as: the handle's own name while
        it has it, else another name of its item; None if the item has no name left."""
        item, url = handle.item, handle._store.url
        if item in self._unlinked:
            return None
        entry = self._writers.get((url, handle._key))
        if entry is not None and entry[0] is item:
            return handle._key, handle.path
        for u, key in self._writers.names_of(item):
            if u == url:  # its own name is gone; another name of its group is not
                return key, self._writers[(u, key)][2]
        return handle._key, handle.path

    # --- writes ---------------------------------------------------------------------
    def dirtied(self, handle: OpenFile, start: int, end: int, meta_only: bool = False) -> None:
        item = handle.item
        name = self._name_of(handle)
        if name is None:
            return  # unlinked while open: nothing to upload, nothing to journal
        key, path = name
        if not meta_only:  # a write or truncate: the data changed, and so did the inode
            now = time.time_ns()
            item.attrs = dict(item.attrs or {}, mtime_ns=now, ctime_ns=now)
        self._writers[(handle._store.url, key)] = (item, handle._store, path)
        if not item.journaled:
            item.journaled = True
            self.cache.journal(item, {"store_url": handle._store.url, "key": key,
                                      "previous_etag": item.previous_etag, "fetchable": item.size,
                                      "created": item.created, "attrs": item.attrs})
        if end > start:
            self.cache.log_dirty(item.id, start, end)

    # --- write-behind (see writebehind.py) -----------------------------------------------
    def write_behind_possible(self, item: Item, store) -> bool:
        """A file written from scratch: nothing of it is to be copied or fetched from a
        previous version, so its parts can go up as they are completed."""
        return (self.config.write_behind and item.size == 0 and not item.untracked
                and item not in self._unlinked
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
                return self.metadata(item, self.links.group(store.url, key))

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
    def metadata(item: Item, links=()) -> dict[str, str]:
        attrs = item.attrs or {}
        md = metas.to_metadata(attrs.get("mode", metas.DEFAULT_FILE_MODE), attrs.get("uid", os.getuid()),
                               attrs.get("gid", os.getgid()), links=links, **_times(attrs, None))
        return dict(md, xattr=attrs["xattr"]) if attrs.get("xattr") else md

    def flush_handle(self, handle: OpenFile, landed=None) -> None:
        name = self._name_of(handle)
        if name is not None:
            self.flush(handle.item, handle._store, *name, landed=landed)

    def flush(self, item: Item, store, key: str, path: str, landed=None) -> None:
        # Held across the upload, whose requests let go of the embedding program's lock
        # (blocking.py): so is the wait for it, or the two would wait for each other.
        item.unlanded.pop(landed, None)
        if item.writers == 0:
            item.unlanded.clear()   # no writable descriptor left: no write on its way
        with acquired(item.upload_lock):
            if item in self._unlinked:
                return
            if not (item.dirty or item.created or item.untracked or item.journaled or item.meta_dirty
                    or item.truncated or item.failed):
                if item.private and item.writers == 0 and item.previous_etag is not None:
                    # Opened for writing and left as it was (sqlite3 opens its database
                    # read-write to read it): its bytes are still the version it was opened
                    # on, and what was fetched stays in the cache as that version's.
                    self.cache.published(item, store.id, key, item.previous_etag)
                return
            if item.failed is not None:  # a write failed: the bucket keeps the previous version
                if item.writers > 0:
                    raise item.failed  # fsync, and the close handler (before the count drops)
                # The last writer is gone and the program has had the error: drop the data.
                self._discard(item)
                self._drop_names(store.url, item)
                return
            size = os.stat(item.path).st_size
            dirty = RangeSet([(0, size)]) if item.untracked else item.dirty.copy()
            previous = None
            if item.previous_etag is not None and item.size > 0:
                previous = Previous(item.previous_etag, item.size)
            if not path.startswith("/") and item.previous_etag is not None and not self.links.known(store.url, key):
                # recovery (a fresh run): the object's own metadata says whether it is linked
                info = store.head(key)
                if info is not None and info.metadata:
                    links = metas.from_object(store.id, key, info.size, info.etag, info.mtime, info.metadata).links
                    self.links.set(store.url, links)
            group = self.links.group(store.url, key)
            others = {}  # the other names that still exist: they get the result
            for other in sorted(group - {key}):
                if (info := store.head(other)) is not None:
                    others[other] = info
            if len(others) + 1 < len(group):  # a name deleted unseen (another tool, rm -r)
                group = frozenset(others) | {key}
                self.links.set(store.url, group)
            metadata = self.metadata(item, group)

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
            elif (not dirty and not item.created and not item.truncated and previous is not None
                    and size == previous.size and getattr(store, "supports_multipart", True)):
                etag = store.copy(key, key, metadata, etag=item.previous_etag)  # attributes only
            else:
                etag = upload(store, key, str(item.path), size, dirty, previous, metadata, fetch_previous)
            item.meta_dirty = False
            with waiting(), item.cond:
                # A fetch of the previous version past a truncation writes nothing while the
                # size is below it (Item.write): it must end before the size goes back up.
                while any(e > item.size for _, e in item.inflight):
                    item.cond.wait(timeout=1.0)
            self.cache.note_version(store.id, key, {"etag": etag, "size": size, "mtime": time.time(),
                                                    "metadata": metadata, "content_type": None})
            with item.cond:
                # Writes of other writers announced but maybe not landed when the file was
                # read (another process writing while this one closes) stay dirty: their
                # bytes go up at a later flush, never forgotten.
                item.dirty = RangeSet(sorted(item.unlanded.values()))
                item.present.add(0, 0)
            item.created = item.untracked = item.truncated = False
            item.size = size
            old_id = item.id
            self._filed(item, store, key, etag)
            self.cache.unjournal(old_id)
            item.journaled = False
            if path.startswith("/"):
                self.ns.update(path, own_ctime(store, key, self.item_meta(item, store, key, None)))
            for other, info in others.items():  # the other names of a hard-link group
                self._replaced(store, other, info.etag, store.copy(key, other, None), item)
                if (p := self.links.path_of(path, key, other)) is not None:
                    self.ns.forget(p)
            if item.writers == 0:
                self._drop_names(store.url, item)

    def _discard(self, item: Item) -> None:
        """Forget `item`'s pending changes: nothing of them is to reach the bucket."""
        self.drop_write_behind(item, wait=True)
        with item.cond:
            item.dirty = RangeSet()
        item.created = item.untracked = item.truncated = item.meta_dirty = False
        self.cache.unjournal(item.id)
        item.journaled = False

    def _drop_names(self, store_url: str, item: Item) -> None:
        for k in [k for k in self._writers.names_of(item) if k[0] == store_url]:
            del self._writers[k]

    def released(self, handle: OpenFile) -> None:
        item = handle.item
        if item.writers == 0 and not handle.dirty and not item.journaled:
            self._drop_names(handle._store.url, item)
        self.cache.release(item)

    # --- namespace changes of files with pending changes ---------------------------------
    def flush_key(self, store_url: str, key: str) -> None:
        entry = self._writers.get((store_url, key))
        if entry is not None:
            item, store, p = entry
            self.flush(item, store, key, p)

    def removing(self, store, key: str, path: str, meta: Meta | None) -> bool:
        """The name `key` is about to be deleted or replaced (by a rename). Descriptors
        open on it keep reading its bytes, as on a local filesystem: whatever of it is not
        local yet is fetched now. Returns whether the object needs a DELETE."""
        item = self.keep_readable(store, key, meta)
        if item is not None and len(self.links.group(store.url, key)) < 2 and (store.url, key) not in self._writers:
            self._orphan(item)  # open for reading only: st_nlink 0 from now on
        return self.unlinked(store, key, path)

    def nameless(self, item: Item) -> bool:
        return item in self._unlinked

    def reopen(self, handle: OpenFile, flags: int) -> OpenFile:
        """A new handle on the item of `handle`, which has no name any more."""
        item = handle.item
        with self.cache._lock:
            item.opens += 1
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        new = OpenFile(self, handle._store, handle._key, handle.current_meta(), item, handle.path, writable)
        if writable:
            item.writers += 1
            if flags & os.O_TRUNC:
                new.set_size(0)
        return new

    def _orphan(self, item: Item) -> None:
        """`item` has no name any more. It is filed under a name of its own: a later
        object with these very bytes (the same ETag) must not share its cache file."""
        self._unlinked.add(item)
        self.cache.rekey(item, "unlinked", uuid.uuid4().hex, None)

    def keep_readable(self, store, key: str, meta: Meta | None) -> Item | None:
        """`key` is going away: the cache item open on it, made whole first."""
        if meta is None or meta.kind is not Kind.FILE:
            return None
        item = self.cache.items.get(self.cache.item_id(store.id, key, meta.etag))
        if item is None or item.opens <= 0 or item.previous_etag != meta.etag:
            return None
        if item.size and not item.present.contains(0, item.size):
            self.fetcher.ensure(store, key, item.previous_etag, item, 0, item.size, align=self.fetcher.part)
        return item

    def unlinked(self, store, key: str, path: str) -> bool:
        """The name `key` is going away (unlink, or replaced by a rename): its pending
        changes go nowhere now, unless another name of its hard-link group still holds
        them. The group's other names are told. Returns whether the object exists in the
        bucket (needs a DELETE)."""
        url = store.url
        keys = self.links.group(url, key)
        if len(keys) > 1:
            self.links.leave(url, key)
            rest = keys - {key}
            self.links.relink(store, path, key, rest, min(rest))
        pending = self._writers.pop((url, key), None)
        if pending is not None:
            item = pending[0]
            if not self._writers.names_of(item):
                # no name left: its data goes nowhere now; the descriptors keep the bytes
                self._discard(item)
                self._orphan(item)
            else:
                remaining = min(self._writers.names_of(item))
                self.cache.journal_update(item.id, key=remaining[1])
        return pending is None or pending[0].previous_etag is not None

    def renamed(self, store, old_key: str, new_key: str, new_path: str) -> None:
        """A file has been copied to its new name and the old one deleted: its pending
        state and its hard-link group follow it."""
        url = store.url
        keys = self.links.group(url, old_key)
        self.moved(store, old_key, new_key, new_path)
        if len(keys) > 1:
            self.links.leave(url, old_key)
            self.links.relink(store, new_path, new_key, (keys - {old_key}) | {new_key}, new_key)

    def linked(self, store, old_path: str, old_key: str, new_key: str) -> None:
        """link(): `new_key` joins `old_key`'s group (the copy is made by relink)."""
        keys = self.links.group(store.url, old_key) | {new_key}
        self.links.check_size(keys, old_path)
        store.copy(old_key, new_key, None)
        self.links.relink(store, old_path, old_key, keys, old_key)

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
            if handle._key == old_key:
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
        """chmod/chown/utimes of a file being written: the attributes go up with the data
        (and to the other names of its group). Returns False when nothing is pending."""
        entry = self.entry(store_url, key)
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
