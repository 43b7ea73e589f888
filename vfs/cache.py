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
    """One object version's sparse file. Thread-safe: fetch threads add ranges."""

    def __init__(self, item_id: str, path: Path, size: int, present: RangeSet):
        self.id = item_id
        self.path = path
        self.size = size
        self.present = present
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
        self.placeholder = self.root / "empty-dir"
        self.placeholder.mkdir(exist_ok=True)
        os.chmod(self.placeholder, 0o555)  # nothing should ever be created in it
        self.index = diskcache.Cache(str(self.root / "index"))
        self.items: dict[str, Item] = {}
        self._lock = threading.Lock()

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
            for item_id in list(self.index.iterkeys()):
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
                if item is not None and item.opens > 0:
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
