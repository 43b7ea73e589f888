"""The local cache: one sparse file per (store, key, ETag) plus the ranges it holds.

diskcache is the index: a record per item {path, size, present ranges, last use}, so a
later run reuses what an earlier one fetched, and least recently used items are evicted
when the cached bytes exceed the limit. A range is recorded present only after its bytes
are written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import diskcache

from .ranges import RangeSet

log = logging.getLogger("vfs.cache")


class Item:
    """One object version's sparse file. Thread-safe: fetch threads add ranges.

    `size` is how much can still be fetched from the bucket (the previous version's size,
    cut down by truncation); the local file may be longer once the program writes."""

    def __init__(self, item_id: str, path: Path, size: int, present: RangeSet):
        self.id = item_id
        self.path = path
        self.size = size
        self.present = present
        # write state
        self.dirty = RangeSet()
        self.created = False        # a new object: upload even if never written
        self.untracked = False      # writes may have bypassed will_write: upload it all
        self.truncated = False      # cut below the previous version since the last upload
        self.meta_dirty = False     # attributes changed since the last upload
        self.previous_etag: str | None = None
        self.attrs: dict | None = None   # mode, uid, gid, mtime to store with the upload
        self.writers = 0
        self.handles: set = set()   # open vfs handles on it (a rename moves them all)
        self.journaled = False
        self.attrs_version = 0      # explicit attribute changes (chmod, chown, utimes)
        self.write_behind = None    # a WriteBehind while parts go up as they are written
        self.upload_lock = threading.Lock()
        self.cond = threading.Condition()
        self.inflight: list[tuple[int, int]] = []   # ranges being fetched
        self.errors: list[tuple[int, int, Exception]] = []
        self.opens = 0
        self.fd = -1
        self._fd_lock = threading.Lock()

    def write(self, offset: int, data: bytes) -> None:
        with self._fd_lock:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_RDWR)
            os.pwrite(self.fd, data, offset)

    def close_fd(self) -> None:
        """Drop our writable descriptor: exec of a file open for writing fails (ETXTBSY)."""
        with self._fd_lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class Cache:
    def __init__(self, root: Path, limit: int):
        self.root = Path(root)
        self.limit = limit
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.placeholder = self.placeholder_path(self.root)
        self.placeholder.mkdir(exist_ok=True)
        os.chmod(self.placeholder, 0o555)  # nothing should ever be created in it
        self.index = diskcache.Cache(str(self.root / "index"))
        self.items: dict[str, Item] = {}
        self._lock = threading.Lock()

    @staticmethod
    def placeholder_path(root: Path) -> Path:
        """The empty directory that stands in for virtual directories (open, chdir)."""
        return Path(root) / "empty-dir"

    @staticmethod
    def item_id(store_id: str, key: str, etag: str | None) -> str:
        return hashlib.sha256(f"{store_id}\0{key}\0{etag}".encode()).hexdigest()

    def open_item(self, store_id: str, key: str, etag: str | None, size: int) -> Item:
        item_id = self.item_id(store_id, key, etag)
        with self._lock:
            item = self.items.get(item_id)
            if item is None:
                item = self._load(item_id, size)
                self.items[item_id] = item
            item.opens += 1
            return item

    def _load(self, item_id: str, size: int) -> Item:
        path = self.root / "data" / item_id[:2] / item_id[2:]
        record = self.index.get(item_id)
        present = RangeSet()
        if record and record.get("size") == size and path.exists() and path.stat().st_size == size:
            present = RangeSet.from_list(record.get("present", []))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.truncate(size)  # sparse: no blocks until fetched
        return Item(item_id, path, size, present)

    def new_item(self) -> Item:
        """An empty item for an object that does not exist yet."""
        import uuid
        item_id = "new-" + uuid.uuid4().hex
        path = self.root / "data" / "new" / item_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        with self._lock:
            item = self.items[item_id] = Item(item_id, path, 0, RangeSet())
            item.opens += 1
        return item

    def rekey(self, item: Item, store_id: str, key: str, etag: str | None) -> None:
        """After an upload the local bytes are that new version: file them under it."""
        new_id = self.item_id(store_id, key, etag)
        if new_id == item.id:
            return
        new_path = self.root / "data" / new_id[:2] / new_id[2:]
        new_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            os.replace(item.path, new_path)
            self.index.delete(item.id)
            self.items.pop(item.id, None)
            old = self.items.pop(new_id, None)
            if old is not None and old is not item:
                old.close_fd()
            item.id, item.path = new_id, new_path
            self.items[new_id] = item
            self._persist(item)

    # --- journal of dirty items: what a killed supervisor leaves for the next run -------
    def journal(self, item: Item, record: dict) -> None:
        self.index.set("journal:" + item.id, dict(record, path=str(item.path)))

    def journal_update(self, item_id: str, **fields) -> None:
        record = self.index.get("journal:" + item_id)
        if record is not None:
            self.index.set("journal:" + item_id, dict(record, **fields))

    def unjournal(self, item_id: str) -> None:
        self.index.delete("journal:" + item_id)
        try:
            os.unlink(str(self.root / "data" / "dirty" / item_id))
        except OSError:
            pass

    def journal_records(self) -> list[tuple[str, dict]]:
        return [(k[len("journal:"):], self.index.get(k)) for k in list(self.index.iterkeys())
                if isinstance(k, str) and k.startswith("journal:")]

    def dirty_log(self, item_id: str) -> Path:
        path = self.root / "data" / "dirty" / item_id
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def release(self, item: Item) -> None:
        with self._lock:
            item.opens -= 1
            self._persist(item)
        self.evict()

    def _persist(self, item: Item) -> None:
        with item.cond:
            ranges = item.present.to_list()
            held = item.present.total
        self.index.set(item.id, {"size": item.size, "present": ranges, "held": held,
                                 "path": str(item.path), "used": time.time()})

    def persist_all(self) -> None:
        with self._lock:
            for item in self.items.values():
                self._persist(item)

    def evict(self) -> None:
        """Drop least recently used items (not open here) until under the limit."""
        with self._lock:
            records = []
            total = 0
            journaled = {k[len("journal:"):] for k in self.index.iterkeys()
                         if isinstance(k, str) and k.startswith("journal:")}
            for item_id in list(self.index.iterkeys()):
                if not isinstance(item_id, str) or item_id.startswith("journal:") or item_id in journaled:
                    continue
                rec = self.index.get(item_id)
                if not rec:
                    continue
                total += rec.get("held", 0)
                records.append((rec.get("used", 0), item_id, rec))
            if total <= self.limit:
                return
            for _, item_id, rec in sorted(records):
                if total <= self.limit:
                    break
                item = self.items.get(item_id)
                if item is not None and (item.opens > 0 or item.dirty or item.created or item.untracked):
                    continue
                if item is not None:
                    item.close_fd()
                    del self.items[item_id]
                try:
                    os.unlink(rec["path"])
                except OSError:
                    pass
                self.index.delete(item_id)
                total -= rec.get("held", 0)
                log.debug("evicted %s (%d bytes)", rec["path"], rec.get("held", 0))

    def close(self) -> None:
        self.persist_all()
        self.evict()
        with self._lock:
            for item in self.items.values():
                item.close_fd()
            self.items.clear()
        self.index.close()
