"""The vfs facade: what the syscall handlers call."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import posixpath
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .cache import Cache, Item
from .errors import VfsError
from .fetch import Fetcher, Readahead
from . import meta as metas
from .meta import Kind, Meta
from .ranges import RangeSet
from .upload import MIN_PART, MULTIPART_THRESHOLD, upload
from .writebehind import WriteBehind
from .mounts import MountTable
from .namespace import Namespace
from .stats import Stats
from .stores.local import LocalStore
from .stores.s3 import Network, S3Service, S3Store

log = logging.getLogger("vfs")


@dataclass
class VfsConfig:
    cache_dir: Path
    cache_size: int = 10 * 2**30
    metadata_ttl: float = 5.0
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    fetch_workers: int = 16
    random_block: int = 32 * 1024       # alignment of fetches for random reads
    readahead_max: int = 256 * 2**20
    dir_markers: bool = True            # mkdir writes a 'dir/' marker object
    write_behind: bool = True           # upload the parts of a new file while it is written
    write_behind_part: int = MIN_PART   # its part size (S3: 5 MiB at least)
    write_behind_workers: int = 8       # parts uploading at once (memory: workers x part)
    network: Network = field(default_factory=Network)   # S3 timeouts and retries


class OpenFile:
    """An open regular file: its sparse cache file and the ranges it needs."""

    def __init__(self, vfs: "Vfs", store, key: str, meta: Meta, item: Item, path: str, writable: bool = False):
        self._vfs = vfs
        self._store = store
        self._key = key
        self.path = path
        self.meta = meta
        self.item = item
        self.cache_path = str(item.path)
        self.writable = writable
        self._readahead = Readahead(maximum=vfs.config.readahead_max)
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
        if may_shorten and self._vfs._write_behind_possible(item, self._store):
            part = self._vfs.config.write_behind_part
            length = min(length, part - offset % part)
        end = offset + length
        with item.cond:
            while any(s < end and offset < e for s, e in item.inflight):
                item.cond.wait(timeout=1.0)
            item.present.add(offset, end)
            item.dirty.add(offset, end)
        self._vfs._dirtied(self, offset, end)
        self._vfs._write_behind(self, offset, end, writer)
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
        self._vfs._dirtied(self, min(size, current), max(size, current))
        wb = item.write_behind
        if wb is not None and size < current and wb.sent_beyond(size):
            self._vfs._drop_write_behind(item)  # what went up is moot now
        elif size != current:
            self._vfs._write_behind(self, min(size, current), max(size, current), writer)

    def mark_untracked(self) -> None:
        """Writes may bypass will_write (a descriptor the filter cannot see): upload all."""
        self.ensure_all()
        self.item.untracked = True
        self._vfs._drop_write_behind(self.item)
        self._vfs._dirtied(self, 0, 0)

    @property
    def dirty(self) -> bool:
        item = self.item
        return bool(item.dirty) or item.created or item.untracked or item.failed is not None

    def current_meta(self) -> Meta:
        return self._vfs._item_meta(self.item, self._store, self._key, self.meta)

    def set_attrs(self, **attrs) -> None:
        self.item.attrs = dict(self.item.attrs or {}, **attrs)
        self._vfs._dirtied(self, 0, 0, meta_only=True)

    def flush(self) -> None:
        """Upload pending changes; returns once the bucket has them (close, fsync)."""
        self._vfs._flush(self.item, self._store, self._key, self.path)

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
        self._vfs.fetcher.ensure(self._store, self._key, self.meta.etag, self.item, offset, end, prefetch=prefetch)

    def ensure_all(self) -> None:
        if self.meta.size:
            self._vfs.fetcher.ensure(self._store, self._key, self.meta.etag, self.item, 0, self.meta.size,
                                     align=self._vfs.fetcher.part)

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
            self._vfs._released(self)


class Vfs:
    def __init__(self, mounts: MountTable, config: VfsConfig):
        self.mounts = mounts
        self.config = config
        self._stats = Stats()
        self.cache = Cache(Path(config.cache_dir), config.cache_size)
        self.placeholder_dir = str(self.cache.placeholder)
        self.fetcher = Fetcher(workers=config.fetch_workers, block=config.random_block)
        self._s3 = S3Service(config.endpoint_url, config.profile, config.region, self._stats, config.network)
        self._stores: dict[str, object] = {}
        # (store url, key) -> (item, store, path) of files with changes not yet uploaded
        self._writers: dict[tuple[str, str], tuple[Item, object, str]] = {}
        # Hard links made in this run: path -> the set of names sharing its content. Each
        # name is its own object; a flush through one name copies the result to the others.
        self._links: dict[str, set[str]] = {}
        # Stores whose server refused a directory marker: mkdir there makes a directory
        # for this run only (Namespace.local_dirs).
        self._marker_refused: set[str] = set()
        self._lock = threading.Lock()
        self.ns = Namespace(mounts, self.store, config.metadata_ttl)
        self._wb_pool = None  # the write-behind workers, started with the first part

    def store(self, url: str):
        if url == "s3://":
            return self._s3
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                if url.startswith("s3://"):
                    store = S3Store(self._s3, url[5:])
                else:
                    store = LocalStore(url[len("file://"):], self._stats)
                self._stores[url] = store
            return store

    # --- namespace -------------------------------------------------------------------
    def resolve(self, path: str, follow_last: bool = True, sure: bool = True) -> str:
        if self._pending(path) is not None:  # created here, not in the bucket yet
            return path
        return self.ns.resolve(path, follow_last, sure=sure)

    def lookup(self, path: str, exact: bool = False) -> Meta:
        """exact: the kind must be known for sure (readlink), not guessed from a listing."""
        meta = self._pending(path) or self.ns.lookup(path)
        if exact:
            meta = self.ns.exact(path, meta)
        group = self._links.get(path)
        if group is not None and meta.kind is Kind.FILE:
            meta = dataclasses.replace(meta, nlink=len(group))
        return meta

    def end_operation(self) -> None:
        """One program call is answered: bucket answers obtained for it are not reused
        (close-to-open revalidation must ask again at the next open)."""
        self.ns.end_operation()

    def listdir(self, path: str) -> list[tuple[str, Meta]]:
        entries = dict(self.ns.listdir(path))
        for (url, key), (item, store, p) in list(self._writers.items()):
            if posixpath.dirname(p) == path:
                entries[posixpath.basename(p)] = self._item_meta(item, store, key, None)
        return sorted(entries.items())

    def readlink(self, path: str) -> str:
        meta = self.ns.exact(path, self.ns.lookup(path))
        if meta.kind is not Kind.SYMLINK or meta.target is None:
            raise VfsError(errno.EINVAL, f"{path}: not a symbolic link")
        return meta.target

    def _located(self, path: str):
        try:
            loc = self.mounts.locate(path)
        except KeyError:
            return None, None
        if loc is None or loc.rel == "":
            return None, None
        return self.store(loc.store_url), loc

    def _pending(self, path: str) -> Meta | None:
        """Meta of a file with changes not yet in the bucket (this run is ahead of it)."""
        _, loc = self._located(path)
        if loc is None:
            return None
        entry = self._writers.get((loc.store_url, loc.key))
        if entry is None:
            return None
        item, store, _ = entry
        return self._item_meta(item, store, loc.key, None)

    def _item_meta(self, item: Item, store, key: str, base: Meta | None) -> Meta:
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

    # --- data ------------------------------------------------------------------------
    def open(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644, uid: int | None = None,
             gid: int | None = None) -> OpenFile:
        """Open a regular file. Read-only opens revalidate against the bucket (close-to-
        open); O_CREAT, O_EXCL and O_TRUNC act as on a local file. `mode` is already
        masked by the caller's umask."""
        store, loc = self._located(path)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if store is None:
            if writable or flags & os.O_CREAT:
                raise VfsError(errno.EROFS, f"{path}: objects can only be created inside a bucket")
            raise VfsError(errno.EISDIR, f"{path}: is a directory")
        pending = self._writers.get((loc.store_url, loc.key))
        if pending is not None:
            if flags & os.O_CREAT and flags & os.O_EXCL:
                raise VfsError(errno.EEXIST, f"{path}: file exists")
            item = pending[0]
            with self.cache._lock:
                item.opens += 1
            meta = self._item_meta(item, store, loc.key, None)
        else:
            try:
                meta = self.ns.revalidate(path)  # close-to-open: always revalidate
            except VfsError as exc:
                if exc.errno != errno.ENOENT or not flags & os.O_CREAT:
                    raise
                return self._create(path, store, loc, mode, uid, gid, flags)
            if flags & os.O_CREAT and flags & os.O_EXCL:
                raise VfsError(errno.EEXIST, f"{path}: file exists")
            if meta.kind is Kind.DIR:
                raise VfsError(errno.EISDIR, f"{path}: is a directory")
            item = self.cache.open_item(store.id, loc.key, meta.etag, meta.size)
            item.previous_etag = meta.etag
        if writable and not item.private:  # a writer works on a file of its own (cache.py)
            shared = item
            item = self.cache.private_item(shared, copy=not flags & os.O_TRUNC)
            item.previous_etag = shared.previous_etag
        handle = OpenFile(self, store, loc.key, meta, item, path, writable)
        if writable:
            item.writers += 1
            self._writers[(loc.store_url, loc.key)] = (item, store, path)
            if item.attrs is None:
                item.attrs = {"mode": meta.mode, "uid": meta.uid, "gid": meta.gid, "mtime": meta.mtime}
            if flags & os.O_TRUNC:
                handle.set_size(0)
        return handle

    def _create(self, path, store, loc, mode, uid, gid, flags) -> OpenFile:
        parent = self.lookup(posixpath.dirname(path))
        if parent.kind is not Kind.DIR:
            raise VfsError(errno.ENOTDIR, f"{posixpath.dirname(path)}: not a directory")
        item = self.cache.new_item()
        item.created = True
        item.attrs = {"mode": stat.S_IFREG | (mode & 0o7777), "uid": os.getuid() if uid is None else uid,
                      "gid": os.getgid() if gid is None else gid, "mtime": time.time()}
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        handle = OpenFile(self, store, loc.key, self._item_meta(item, store, loc.key, None), item, path, writable)
        if writable:
            item.writers += 1
        self._writers[(loc.store_url, loc.key)] = (item, store, path)
        self._dirtied(handle, 0, 0)
        return handle

    def _dirtied(self, handle: OpenFile, start: int, end: int, meta_only: bool = False) -> None:
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
            self.cache.log_dirty(item.id, start, end)

    # --- write-behind (see writebehind.py) -----------------------------------------------
    def _write_behind_possible(self, item: Item, store) -> bool:
        """A file written from scratch: nothing of it is to be copied or fetched from a
        previous version, so its parts can go up as they are completed."""
        return (self.config.write_behind and item.size == 0 and not item.untracked
                and getattr(store, "supports_multipart", True) and hasattr(store, "upload_part"))

    def _write_behind(self, handle: OpenFile, start: int, end: int, writer) -> None:
        item = handle.item
        wb = item.write_behind
        if wb is None:
            if not self._write_behind_possible(item, handle._store):
                return
            if writer is None:
                return
            with self._lock:
                if self._wb_pool is None:
                    self._wb_pool = ThreadPoolExecutor(max_workers=self.config.write_behind_workers,
                                                       thread_name_prefix="write-behind")
            store, key = handle._store, handle._key

            def metadata() -> dict[str, str]:
                return self._metadata(item)

            def created(upload_id: str) -> None:
                self.cache.journal_update(item.id, write_behind={"key": key, "upload_id": upload_id})

            wb = item.write_behind = WriteBehind(self._wb_pool, store, key, item, self.config.write_behind_part,
                                                 MULTIPART_THRESHOLD, metadata, created, self._stats)
        elif wb.key != handle._key or wb.store is not handle._store:
            self._drop_write_behind(item)  # another name for the same bytes: start over
            return self._write_behind(handle, start, end, writer)
        if writer is None:
            self._drop_write_behind(item)  # bytes that may change at any time: upload at close
            return
        wb.note(start, end, writer)

    def _drop_write_behind(self, item: Item, wait: bool = False) -> None:
        wb = item.write_behind
        if wb is not None:
            item.write_behind = None
            wb.abandon(wait=wait)

    @staticmethod
    def _metadata(item: Item) -> dict[str, str]:
        attrs = item.attrs or {}
        return metas.to_metadata(attrs.get("mode", metas.DEFAULT_FILE_MODE), attrs.get("uid", os.getuid()),
                                 attrs.get("gid", os.getgid()), attrs.get("mtime", time.time()))

    def _flush(self, item: Item, store, key: str, path: str) -> None:
        with item.upload_lock:
            if not (item.dirty or item.created or item.untracked or item.journaled or item.meta_dirty
                    or item.failed):
                return
            if item.failed is not None:  # a write failed: the bucket keeps the previous version
                if item.writers > 0:
                    raise item.failed  # fsync, and the close handler (before the count drops)
                # The last writer is gone and the program has had the error: drop the data.
                self._drop_write_behind(item, wait=True)
                item.dirty, item.created, item.untracked, item.meta_dirty = RangeSet(), False, False, False
                self.cache.unjournal(item.id)
                item.journaled = False
                self._writers.pop((store.url, key), None)
                return
            size = os.stat(item.path).st_size
            dirty = RangeSet([(0, size)]) if item.untracked else item.dirty.copy()
            previous = None
            if item.previous_etag is not None and item.size > 0:
                from .upload import Previous
                previous = Previous(item.previous_etag, item.size)
            metadata = self._metadata(item)

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
            self.cache.unjournal(item.id)
            item.journaled = False
            self.cache.published(item, store.id, key, etag)
            if path.startswith("/"):
                self.ns.update(path, self._item_meta(item, store, key, None))
            for other in self._links.get(path, ()):
                if other != path:
                    _, other_loc = self._located(other)
                    store.copy(key, other_loc.key, None)
                    self.ns.forget(other)
            if item.writers == 0:
                self._writers.pop((store.url, key), None)

    def _released(self, handle: OpenFile) -> None:
        item = handle.item
        if item.writers == 0 and not handle.dirty and not item.journaled:
            self._writers.pop((handle._store.url, handle._key), None)
        self.cache.release(item)

    # --- namespace changes -------------------------------------------------------------
    def _must_not_exist(self, path: str) -> None:
        try:
            self.lookup(path)
        except VfsError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        raise VfsError(errno.EEXIST, f"{path}: file exists")

    def _parent_dir(self, path: str) -> None:
        parent = posixpath.dirname(path)
        if self.mounts.is_virtual(parent) and self.lookup(parent).kind is not Kind.DIR:
            raise VfsError(errno.ENOTDIR, f"{parent}: not a directory")

    def _writable_store(self, path: str):
        try:
            store, loc = self._located(path)
        except KeyError:
            store = None
        if store is None:
            raise VfsError(errno.EROFS, f"{path}: only objects inside a bucket can be changed")
        return store, loc

    def mkdir(self, path: str, mode: int, uid: int | None = None, gid: int | None = None) -> None:
        store, loc = self._writable_store(path)
        self._must_not_exist(path)
        self._parent_dir(path)
        md = metas.to_metadata(stat.S_IFDIR | (mode & 0o7777), os.getuid() if uid is None else uid,
                               os.getgid() if gid is None else gid, time.time())
        made = dataclasses.replace(metas.directory(store.id, loc.key), mode=int(md["mode"]), uid=int(md["uid"]),
                                   gid=int(md["gid"]))   # what the marker says, before any listing
        if store.url in self._marker_refused or not self.config.dir_markers:
            self.ns.local_dirs.add(path)
            self.ns.update(path, made, empty_dir=True)
            return
        try:
            store.put(loc.key + "/", b"", md, metas.DIR_CONTENT_TYPE)
        except VfsError as exc:
            if exc.errno != errno.EIO:
                raise
            self._marker_refused.add(store.url)
            log.warning("%s: the server refused a directory marker (%s); empty directories made "
                        "now last for this run only", store.url, exc.message)
            self.ns.local_dirs.add(path)
        self.ns.update(path, made, empty_dir=True)

    def rmdir(self, path: str) -> None:
        store, loc = self._writable_store(path)
        if self.lookup(path).kind is not Kind.DIR:
            raise VfsError(errno.ENOTDIR, f"{path}: not a directory")
        if self.listdir(path):
            raise VfsError(errno.ENOTEMPTY, f"{path}: directory not empty")
        if path in self.ns.local_dirs:
            self.ns.local_dirs.discard(path)
        else:
            store.delete(loc.key + "/")
        self.ns.forget(path)
        self.ns.update(path, None)

    def unlink(self, path: str) -> None:
        store, loc = self._writable_store(path)
        meta = self.lookup(path)
        if meta.kind is Kind.DIR:
            raise VfsError(errno.EISDIR, f"{path}: is a directory")
        pending = self._writers.pop((loc.store_url, loc.key), None)
        if pending is not None:  # an open, unflushed file: its data goes nowhere now
            item = pending[0]
            self._drop_write_behind(item, wait=True)
            item.dirty, item.created, item.untracked = RangeSet(), False, False
            self.cache.unjournal(item.id)
            item.journaled = False
        if pending is None or pending[0].previous_etag is not None:
            store.delete(loc.key)
        group = self._links.pop(path, None)
        if group is not None:
            group.discard(path)
        self.ns.update(path, None)

    def symlink(self, target: str, path: str, uid: int | None = None, gid: int | None = None) -> None:
        store, loc = self._writable_store(path)
        self._must_not_exist(path)
        self._parent_dir(path)
        md = metas.to_metadata(metas.SYMLINK_MODE, os.getuid() if uid is None else uid,
                               os.getgid() if gid is None else gid, time.time())
        store.put(loc.key, os.fsencode(target), md)
        self.ns.forget(path)

    def _flush_path(self, path: str) -> None:
        _, loc = self._located(path)
        entry = self._writers.get((loc.store_url, loc.key)) if loc else None
        if entry is not None:
            item, store, p = entry
            self._flush(item, store, loc.key, p)

    def link(self, old: str, new: str) -> None:
        """Hard link as a server-side copy: same bytes and metadata under a second key
        (objects cannot share storage); st_nlink counts the names within this run."""
        store, loc = self._writable_store(new)
        old_store, old_loc = self._writable_store(old)
        if old_store is not store:
            raise VfsError(errno.EXDEV, f"{old} -> {new}: different buckets")
        if self.lookup(old).kind is Kind.DIR:
            raise VfsError(errno.EPERM, f"{old}: hard links to directories are not allowed")
        self._must_not_exist(new)
        self._parent_dir(new)
        self._flush_path(old)
        store.copy(old_loc.key, loc.key, None)
        self.ns.forget(new)
        group = self._links.setdefault(old, {old})
        group.add(new)
        self._links[new] = group

    def rename(self, old: str, new: str, noreplace: bool = False) -> None:
        """Server-side copy then delete; a directory moves key by key (not atomic)."""
        store, loc = self._writable_store(old)
        new_store, new_loc = self._writable_store(new)
        if new_store is not store:
            raise VfsError(errno.EXDEV, f"{old} -> {new}: different buckets")
        meta = self.lookup(old)
        if old == new:
            return
        if new.startswith(old + "/"):
            raise VfsError(errno.EINVAL, f"{new}: inside {old}")
        try:
            target = self.lookup(new)
        except VfsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            target = None
            self._parent_dir(new)
        if target is not None:
            if noreplace:
                raise VfsError(errno.EEXIST, f"{new}: file exists")
            if meta.kind is Kind.DIR and target.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{new}: not a directory")
            if meta.kind is not Kind.DIR and target.kind is Kind.DIR:
                raise VfsError(errno.EISDIR, f"{new}: is a directory")
            if target.kind is Kind.DIR and self.listdir(new):
                raise VfsError(errno.ENOTEMPTY, f"{new}: directory not empty")
        if meta.kind is Kind.DIR:
            self._rename_dir(store, old, new, loc.key, new_loc.key)
        else:
            self._flush_path(old)
            store.copy(loc.key, new_loc.key, None)
            store.delete(loc.key)
            self._moved(store, loc.key, new_loc.key, new)
        if target is not None and target.kind is Kind.DIR:
            store.delete(new_loc.key + "/")
        self.ns.forget(old)
        self.ns.forget(new)
        self.ns.remember(old, None)

    def _moved(self, store, old_key: str, new_key: str, new_path: str) -> None:
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

    def _rename_dir(self, store, old: str, new: str, old_key: str, new_key: str) -> None:
        moving = []
        for (url, key), (item, st, p) in list(self._writers.items()):
            if p.startswith(old + "/"):
                self._flush(item, st, key, p)
                if st is store:
                    moving.append((key, new_key + key[len(old_key):], new + p[len(old):]))
        for key in store.list_all(old_key + "/"):
            dest = new_key + key[len(old_key):]
            store.copy(key, dest, None)
            store.delete(key)
            self.ns.forget(old + key[len(old_key):].rstrip("/"))
        if not store.list_all(new_key + "/"):
            store.put(new_key + "/", b"", metas.to_metadata(metas.DEFAULT_DIR_MODE, os.getuid(), os.getgid(),
                                                            time.time()), metas.DIR_CONTENT_TYPE)
        for key, moved_key, moved_path in moving:
            self._moved(store, key, moved_key, moved_path)

    def setattr(self, path: str, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                mtime: float | None = None) -> None:
        """chmod, chown, utimes: stored in the object's metadata (CopyObject onto itself
        with MetadataDirective=REPLACE; for a directory, its marker object)."""
        store, loc = self._writable_store(path)
        meta = self.lookup(path)
        new = {"mode": meta.mode if mode is None else (stat.S_IFMT(meta.mode) | (mode & 0o7777)),
               "uid": meta.uid if uid is None else uid, "gid": meta.gid if gid is None else gid,
               "mtime": meta.mtime if mtime is None else mtime}
        entry = self._writers.get((loc.store_url, loc.key))
        if entry is not None:  # being written: the attributes go up with the data
            item = entry[0]
            item.attrs = dict(item.attrs or {}, **new)
            item.meta_dirty = True
            item.attrs_version += 1
            if item.writers == 0:
                self._flush(item, entry[1], loc.key, entry[2])
            return
        if path in self.ns.local_dirs:
            return  # a directory of this run only: nowhere to keep attributes
        md = metas.to_metadata(new["mode"], new["uid"], new["gid"], new["mtime"])
        if meta.kind is Kind.DIR:
            store.put(loc.key + "/", b"", md, metas.DIR_CONTENT_TYPE)
            self.ns.update(path, dataclasses.replace(meta, mode=new["mode"], uid=new["uid"], gid=new["gid"],
                                                     mtime=new["mtime"]))
        else:
            etag = store.copy(loc.key, loc.key, md, content_type=None)
            self.ns.update(path, dataclasses.replace(meta, mode=new["mode"], uid=new["uid"], gid=new["gid"],
                                                     mtime=new["mtime"], etag=etag, nlink=1))

    def truncate(self, path: str, size: int) -> None:
        handle = self.open(path, os.O_WRONLY)
        try:
            handle.set_size(size)
            os.truncate(handle.cache_path, size)
        finally:
            handle.close()

    def stats(self) -> dict:
        return self._stats.as_dict()

    def close(self) -> None:
        for item in list(self.cache.items.values()):
            self._drop_write_behind(item)
        if self._wb_pool is not None:
            self._wb_pool.shutdown(wait=True)
        self.fetcher.close()
        self.ns.close()
        self.cache.close()
