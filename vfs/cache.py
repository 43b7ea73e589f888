"""The local cache, shared at once by every objmount run (and `objmount flush`) that uses
the same directory.

    items/XX/ID, ID.lock   clean items: one object version's sparse file, ID a hash of
                           (store, key, ETag). It only ever holds that version's bytes, so
                           any run may fetch into it: the bytes are the same whoever writes.
    items/new/ID, ID.lock  private items: a file one run is writing (a new object, or a
                           copy of the present ranges of the version it opened). Only its
                           run writes it; after the upload at the last close it is linked
                           into place as the new version's clean item.
    dirty/ID               the dirty ranges of a private item, appended as they are written
    index/                 diskcache: per clean item {size, present, held, used, path}
                           (present ranges merged in a transaction, never overwritten);
                           "journal:ID" per private item with data not yet in the bucket;
                           "version:K" per key, what the bucket last said of it (dropped
                           once no record of that version's item is left: `trim_versions`);
                           "version:totals" {held, items}: the sum of the clean records'
                           held bytes and their count, changed in the same transaction as
                           any clean record, so no run walks the index to know them.

Locks are flock(2) on ID.lock, never on the data file (a program may flock that): a run
holds a shared lock on each clean item it has open and an exclusive one on each private
item it writes. Eviction takes an exclusive lock without waiting and skips what another
run holds; a journaled private item whose lock is free was left by a run that ended
before its close (recovery.py). A range is recorded present only after its bytes are
written.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import diskcache

from .errors import VfsError
from .ranges import RangeSet

log = logging.getLogger("vfs.cache")

# Writes into the cache stop this far short of a full filesystem: the index (sqlite) and
# the dirty-range logs need room too.
FREE_MARGIN = 4 * 2**20

_INDEX_ERRORS = (sqlite3.Error, diskcache.Timeout, OSError)
# The index evicts nothing by itself: eviction is ours (totals, the walk by last use).
# diskcache's default culls on every store once its file passes 1 GiB, dropping records
# behind the totals' back, and costs two queries per store (~20 us) to find out.
_INDEX_SETTINGS = {"eviction_policy": "none", "cull_limit": 0}

# The index's running totals of the clean records (see the module). Its name starts with
# "version:" because every walk of the index, also an older objmount's sharing the
# directory, skips those keys; no key's version record is named so (theirs are hashes).
TOTALS_KEY = "version:totals"

# Over the limit, eviction goes this fraction of the limit further down, so that a full
# cache walks its index once per that many bytes fetched, not at every close.
EVICT_SLACK = 0.1

# Version records of uncached versions are dropped by every eviction, and at a run's end
# once they outnumber the clean items by this many (besides twice their number).
VERSIONS_SLACK = 1000

# A version record whose item is not recorded (yet) is kept this long: the run that
# noted it may still be fetching into the item, which is recorded at its release.
VERSION_GRACE = 600.0


def lock_file(path: Path, exclusive: bool, wait: bool = True) -> int | None:
    """flock `path` (made if missing); returns the descriptor that holds the lock, or None
    if another holder has it and `wait` is False. A lock file unlinked and made again
    meanwhile (an item evicted) is locked afresh."""
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def private(path, flags: int) -> int:
    """open()'s opener for cache files: 0600 whatever the umask."""
    return os.open(path, flags, 0o600)


def lock_path(path: Path | str) -> Path:
    return Path(str(path) + ".lock")


def _held(record) -> int:
    return record.get("held", 0) if isinstance(record, dict) else 0


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Item:
    """One object version's sparse file, or a run's private file. Thread-safe: fetch
    threads add ranges.

    `size` is how much can still be fetched from the bucket (the previous version's size,
    cut down by truncation); the local file may be longer once the program writes."""

    def __init__(self, item_id: str, path: Path, size: int, present: RangeSet):
        self.id = item_id
        self.path = path
        self.size = size
        self.present = present
        self.private = False        # a run's own file: only it writes here (see the module)
        self.detached = False       # this run's alone: no open finds it, nothing records it
        self.lock_fd = -1           # holds this run's flock on the item's lock file
        self.failed: VfsError | None = None   # a write failed: nothing is uploaded, close says so
        self.base: Item | None = None   # a private item's clean version: missing ranges it holds are copied
        self.make_room = None       # callable(nbytes) -> bool, when the cache disk is full
        # write state
        self.dirty = RangeSet()
        self.created = False        # a new object: upload even if never written
        self.untracked = False      # writes may have bypassed will_write: upload it all
        self.truncated = False      # cut below the previous version since the last upload
        self.meta_dirty = False     # attributes changed since the last upload
        self.previous_etag: str | None = None
        self.attrs: dict | None = None   # mode, uid, gid, mtime to store with the upload
        self.writers = 0
        # writer (a thread id) -> the range of its last announced write, which may not have
        # landed yet: the kernel runs it after the announcement (files.py, Files.flush)
        self.unlanded: dict = {}
        self.handles: set = set()   # open vfs handles on it (a rename moves them all)
        self.journaled = False
        self.attrs_version = 0      # explicit attribute changes (chmod, chown, utimes)
        self.write_behind = None    # a WriteBehind while parts go up as they are written
        self.upload_lock = threading.Lock()
        self.cond = threading.Condition()
        self.inflight: list[tuple[int, int]] = []   # ranges being fetched
        self.errors: list[tuple[int, int, Exception]] = []
        self.refiling = 0           # our own metadata copies making a new version of it (files.py)
        self.opens = 0
        self.fd = -1
        self._fd_lock = threading.Lock()

    def _with_room(self, nbytes: int, fn, *args) -> None:
        """fn(*args); on a full cache filesystem, evict clean items and try once more."""
        try:
            fn(*args)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or self.make_room is None:
                raise
            if not self.make_room(nbytes):
                raise
            fn(*args)

    def write(self, offset: int, data: bytes) -> None:
        """Write fetched bytes (making room in a full cache once). Bytes at or past `size`
        are dropped: a truncation removed them while they were on their way."""
        self._with_room(len(data), self._write, offset, data)

    def _write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        with self._fd_lock:
            view = view[:max(0, self.size - offset)]   # checked under the lock cut() takes
            if not view:
                return
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            while view:
                n = os.pwrite(self.fd, view, offset)
                view, offset = view[n:], offset + n

    def copy_from_base(self, start: int, end: int) -> None:
        """Copy [start, end) of the base item's bytes (present there) into this file."""
        self._with_room(end - start, self._copy, start, end)

    def _copy(self, start: int, end: int) -> None:
        src = os.open(self.base.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with self._fd_lock:
                end = min(end, self.size)   # as _write: nothing past a truncation
                if self.fd < 0:
                    self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
                while start < end:
                    n = os.copy_file_range(src, self.fd, end - start, start, start)
                    if n == 0:
                        raise OSError(errno.EIO, f"{self.base.path}: shorter than its recorded ranges")
                    start += n
        finally:
            os.close(src)

    def cut(self, size: int) -> None:
        """Nothing past `size` comes from the bucket any more (a truncation). Under the lock
        fetched bytes are written with: a fetch still running when the program truncates
        would otherwise write the old bytes past the new end, after the kernel cut the file
        (its size back up, and those bytes inside a later extension that must be zeros)."""
        with self._fd_lock, self.cond:
            self.size = min(self.size, size)

    def open_fd(self) -> None:
        """Keep a writable descriptor of the file (fetches write through it), so that they
        still reach it once its name is gone."""
        with self._fd_lock:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)

    def close_fd(self) -> None:
        """Drop our writable descriptor: exec of a file open for writing fails (ETXTBSY)."""
        with self._fd_lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    def unlock(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


class Cache:
    def __init__(self, root: Path, limit: int):
        self.root = Path(root)
        self.limit = limit
        # Cached object data is private: the top directory is 0700 (also an existing one,
        # which older versions made 0755), so nothing below it is reachable by other users.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        (self.root / "items" / "new").mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.root / "dirty").mkdir(mode=0o700, parents=True, exist_ok=True)
        self.placeholder = self.placeholder_path(self.root)
        self.placeholder.mkdir(exist_ok=True)
        os.chmod(self.placeholder, 0o555)  # nothing should ever be created in it
        try:
            self.index = self._open_index()
        except _INDEX_ERRORS as exc:
            raise self._index_error("open", exc) from None
        for db in (self.root / "index").glob("cache.db*"):   # SQLite gives its -wal/-shm the db's mode
            os.chmod(db, 0o600)
        self.items: dict[str, Item] = {}   # items open in this run, and its private items
        self._lock = threading.Lock()
        self._index_warned = False
        # The totals as this run last read or wrote them (every release reads them afresh
        # in the transaction that records its item): {"held": bytes, "items": count}.
        self.totals = self._load_totals()
        self._walk_above = 0   # an eviction left this much, all held by runs: walk again only past it

    def _open_index(self) -> diskcache.Cache:
        try:
            return diskcache.Cache(str(self.root / "index"), **_INDEX_SETTINGS)
        except _INDEX_ERRORS as exc:
            if "full" not in str(exc) and getattr(exc, "errno", None) != errno.ENOSPC:
                raise
        # The disk is full: without the index, drop clean items no run holds, and retry.
        for sub in (self.root / "items").iterdir():
            if sub.name == "new" or not sub.is_dir():
                continue
            for path in sub.iterdir():
                if path.suffix in (".lock", ".tmp"):
                    continue
                fd = lock_file(lock_path(path), exclusive=True, wait=False)
                if fd is not None:
                    _unlink(path)  # its record goes when the item is made again (_load)
                    _unlink(lock_path(path))
                    os.close(fd)
        return diskcache.Cache(str(self.root / "index"), **_INDEX_SETTINGS)

    @staticmethod
    def placeholder_path(root: Path) -> Path:
        """The empty directory that stands in for virtual directories (open, chdir)."""
        return Path(root) / "empty-dir"

    @staticmethod
    def item_id(store_id: str, key: str, etag: str | None) -> str:
        return hashlib.sha256(f"{store_id}\0{key}\0{etag}".encode()).hexdigest()

    def item_path(self, item_id: str) -> Path:
        return self.root / "items" / item_id[:2] / item_id[2:]

    # --- the index: sqlite errors (disk full, locked) become VfsErrors ------------------
    def _index_error(self, what: str, exc: Exception) -> VfsError:
        text = str(exc) or type(exc).__name__
        full = "full" in text or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        return VfsError(errno.ENOSPC if full else errno.EIO, f"cache index {self.root}/index: {what}: {text}")

    def _index_failed(self, what: str, exc: Exception) -> None:
        """For records whose loss costs work, not data (present ranges, last use, a stale
        journal entry): say it once, go on."""
        if not self._index_warned:
            self._index_warned = True
            log.warning("%s", self._index_error(what, exc).message)

    def _get(self, key: str):
        try:
            return self.index.get(key)
        except _INDEX_ERRORS as exc:
            self._index_failed("read", exc)
            return None

    # --- clean items: shared by every run ---------------------------------------------
    def open_item(self, store_id: str, key: str, etag: str | None, size: int) -> Item:
        item_id = self.item_id(store_id, key, etag)
        with self._lock:
            item = self.items.get(item_id)
            if item is None:
                item = self._load(item_id, size)
                self.items[item_id] = item
            item.opens += 1
            return item

    def holds(self, store_id: str, key: str, etag: str | None, start: int, end: int) -> bool:
        """Whether the cache has bytes [start, end) of that version (open here, or
        recorded by any run): an open may then ask the bucket only whether it changed."""
        item_id = self.item_id(store_id, key, etag)
        item = self.items.get(item_id)
        if item is not None:
            with item.cond:
                return item.present.contains(start, end)
        record = self._get(item_id)
        if not record or record.get("path") != str(self.item_path(item_id)):
            return False
        return RangeSet.from_list(record.get("present", [])).contains(start, end)

    # --- the version of a key last seen, for a later run's conditional GET ---------------
    def note_version(self, store_id: str, key: str, info: dict) -> None:
        """Record what the bucket last said of `key` (etag, size, mtime, metadata). It is
        of use while the cache holds that version's item (a conditional GET), and goes
        with it (`trim_versions`)."""
        info = dict(info, item=self.item_id(store_id, key, info.get("etag")), noted=time.time())
        try:
            self.index.set("version:" + self.item_id(store_id, key, None), info)
        except _INDEX_ERRORS as exc:
            self._index_failed("record", exc)

    def seen_version(self, store_id: str, key: str) -> dict | None:
        record = self._get("version:" + self.item_id(store_id, key, None))
        return record if isinstance(record, dict) else None

    def _load(self, item_id: str, size: int) -> Item:
        path = self.item_path(item_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = lock_file(lock_path(path), exclusive=False)
        except OSError as exc:
            raise VfsError(exc.errno or errno.EIO, f"cache {self.root}: {exc.strerror or exc}") from None
        try:
            present = RangeSet()
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and st.st_size == size:
                record = self._get(item_id)
                if record and record.get("size") == size and record.get("path") == str(path):
                    present = RangeSet.from_list(record.get("present", []))
            else:
                # Made once, atomically: a run that made it first may be fetching into it.
                tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                with open(tmp, "wb", opener=private) as f:
                    f.truncate(size)  # sparse: no blocks until fetched
                try:
                    try:  # a record left of an earlier file under this name says nothing of this one
                        self._drop_record(item_id)
                    except _INDEX_ERRORS:
                        pass
                    if st is None:
                        try:
                            os.link(tmp, path)
                        except FileExistsError:
                            pass
                    else:  # not this version's size: unusable, whoever made it
                        os.replace(tmp, path)
                        tmp = None
                finally:
                    if tmp is not None:
                        _unlink(tmp)
        except OSError as exc:
            os.close(lock_fd)
            raise VfsError(exc.errno or errno.EIO, f"cache {self.root}: {exc.strerror or exc}") from None
        except BaseException:
            os.close(lock_fd)
            raise
        item = Item(item_id, path, size, present)
        item.lock_fd = lock_fd
        item.make_room = self.make_room
        return item

    def _persist(self, item: Item) -> None:
        """Record a clean item's present ranges, merged with what other runs recorded for
        the same file."""
        if item.private or item.detached:
            return
        with item.cond:
            present = item.present.copy()
        try:
            with self.index.transact():
                record = self.index.get(item.id)
                if record and record.get("size") == item.size and record.get("path") == str(item.path):
                    present = present.union(RangeSet.from_list(record.get("present", [])))
                self.index.set(item.id, {"size": item.size, "present": present.to_list(), "held": present.total,
                                         "path": str(item.path), "used": time.time()})
                self._count(present.total - _held(record), 0 if record else 1)
        except _INDEX_ERRORS as exc:
            self._index_failed("record", exc)

    # --- the totals of the clean records ---------------------------------------------
    def _load_totals(self) -> dict:
        """The index's totals; made by one walk if it has none (a cache of an older
        objmount, or a new one)."""
        try:
            totals = self.index.get(TOTALS_KEY)
            if isinstance(totals, dict):
                return totals
            return self._recount()
        except _INDEX_ERRORS as exc:
            self._index_failed("read", exc)
            return {"held": 0, "items": 0}

    def _recount(self, records: list | None = None, versions: list | None = None) -> dict:
        """Walk the index once, in a transaction, and set its totals to what it holds.
        records: filled with (used, id, record) of every clean record; versions: with the
        keys of the version records."""
        held = items = 0
        with self.index.transact():
            for key in list(self.index.iterkeys()):
                if not isinstance(key, str) or key.startswith("journal:"):
                    continue
                if key.startswith("version:"):
                    if versions is not None and key != TOTALS_KEY:
                        versions.append(key)
                    continue
                rec = self.index.get(key)
                if not isinstance(rec, dict):
                    continue
                held += _held(rec)
                items += 1
                if records is not None:
                    records.append((rec.get("used", 0), key, rec))
            self.totals = {"held": held, "items": items}
            self.index.set(TOTALS_KEY, self.totals)
        return self.totals

    def _count(self, held: int, items: int) -> None:
        """Add to the totals; called in the transaction that changes a clean record."""
        totals = self.index.get(TOTALS_KEY)
        if not isinstance(totals, dict):
            self._recount()   # ours is the transaction: nothing changes under the walk
            return
        totals = {"held": max(0, totals.get("held", 0) + held), "items": max(0, totals.get("items", 0) + items)}
        self.index.set(TOTALS_KEY, totals)
        self.totals = totals

    def _drop_record(self, item_id: str) -> dict | None:
        """Delete a clean item's record (and its bytes from the totals); returns it."""
        with self.index.transact():
            record = self.index.get(item_id)
            if record is None:
                return None
            self.index.delete(item_id)
            self._count(-_held(record), -1)
            return record

    def held_bytes(self) -> int:
        """The bytes the clean records hold, as last read (no walk)."""
        return self.totals.get("held", 0)

    def persist_all(self) -> None:
        with self._lock:
            for item in self.items.values():
                self._persist(item)

    # --- private items: what one run writes -------------------------------------------
    def new_item(self) -> Item:
        """An empty private item for an object that does not exist yet."""
        return self.private_item(None)

    def private_item(self, source: Item | None, copy: bool = True) -> Item:
        """A file of this run's own to write: empty, or with the size of `source` (the
        version the writer opened; the caller's open of it passes to the new item). With
        `copy`, source stays open as the new item's base: a range needed later (a read,
        the upload) is copied from it if present there, fetched otherwise. Nobody else
        ever reads or writes the private file until it is published."""
        item_id = "w-" + uuid.uuid4().hex
        path = self.root / "items" / "new" / item_id
        size = source.size if source is not None else 0
        lock_fd = -1
        try:
            lock_fd = lock_file(lock_path(path), exclusive=True)
            with open(path, "wb", opener=private) as f:
                f.truncate(size)  # sparse
        except OSError as exc:
            _unlink(path)
            _unlink(lock_path(path))
            if lock_fd >= 0:
                os.close(lock_fd)
            if source is not None:
                self.release(source)
            raise VfsError(exc.errno or errno.EIO, f"cache {self.root}: {exc.strerror or exc}") from None
        item = Item(item_id, path, size, RangeSet())
        item.private = True
        item.lock_fd = lock_fd
        item.make_room = self.make_room
        item.opens = 1
        with self._lock:
            self.items[item_id] = item
        if source is not None:
            if copy:
                item.base = source
            else:
                self.release(source)
        return item

    def take_over(self, item: Item) -> bool:
        """Make a clean item this run's private file in place, if no other run holds it:
        a writer of this run then writes into the very file this run's readers have
        open, as on a local filesystem (one inode), while other runs never see those
        bytes as the clean version. False when another run holds it (the writer then
        gets a private copy: `private_item`)."""
        if item.private:
            return True
        if item.lock_fd < 0:
            return False
        try:
            fcntl.flock(item.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # ours is the only hold?
        except OSError:
            # A failed conversion has dropped our shared lock (flock(2)): take it again.
            fcntl.flock(item.lock_fd, fcntl.LOCK_SH)
            return False
        item_id = "w-" + uuid.uuid4().hex
        path = self.root / "items" / "new" / item_id
        try:
            lock_fd = lock_file(lock_path(path), exclusive=True)
            try:
                os.rename(item.path, path)
            except OSError:
                os.close(lock_fd)
                _unlink(lock_path(path))
                raise
        except OSError as exc:
            fcntl.flock(item.lock_fd, fcntl.LOCK_SH)
            log.debug("%s not taken over: %s", item.path, exc)
            return False
        try:
            self._drop_record(item.id)   # its ranges describe a file that is ours now
        except _INDEX_ERRORS as exc:
            self._index_failed("record", exc)
        old_lock = lock_path(item.path)
        with self._lock:
            if self.items.get(item.id) is item:
                del self.items[item.id]
            item.unlock()
            _unlink(old_lock)
            item.id, item.path, item.private, item.lock_fd = item_id, path, True, lock_fd
            self.items[item_id] = item
        return True

    def _drop_base(self, item: Item) -> None:
        base, item.base = item.base, None
        if base is not None:
            self.release(base)

    def published(self, item: Item, store_id: str, key: str, etag: str | None) -> None:
        """The bucket holds the item's bytes as version `etag`. A private item nobody
        writes any more becomes that version's clean item: linked into place, so that this
        run's readers keep their descriptors. One still open for writing stays private."""
        if not item.private or item.writers > 0 or etag is None:
            return
        new_id = self.item_id(store_id, key, etag)
        new_path = self.item_path(new_id)
        lock_fd = self._link_in(item.path, new_id)
        if lock_fd is None:  # another run has this version open (or no room): ours goes at release
            return
        old_path = item.path
        with self._lock:
            self.items.pop(item.id, None)
            item.unlock()
            item.id, item.path, item.private, item.lock_fd = new_id, new_path, False, lock_fd
            self.items[new_id] = item
        _unlink(old_path)
        _unlink(lock_path(old_path))
        self._persist(item)
        self._drop_base(item)

    def _link_in(self, path: Path, new_id: str) -> int | None:
        """Make `path` the cache file of version `new_id` (a hard link); returns the shared
        lock held on it, or None. A file already there (an earlier run cached that version:
        the same bytes come back) is replaced when no run holds it, with its record: else
        this run's later opens of the version would get that other file, and the writers
        among them would write where this run's open descriptors never look."""
        new_path = self.item_path(new_id)
        try:
            new_path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = lock_file(lock_path(new_path), exclusive=False)
        except OSError as exc:
            log.debug("%s not filed as %s: %s", path, new_id, exc)
            return None
        try:
            os.link(path, new_path)
            return lock_fd
        except FileExistsError:
            pass
        except OSError as exc:
            log.debug("%s not filed as %s: %s", path, new_id, exc)
            os.close(lock_fd)
            return None
        tmp = new_path.with_name(f"{new_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # nobody else holds that file?
            os.link(path, tmp)
            os.rename(tmp, new_path)
            tmp = None
            try:
                self._drop_record(new_id)   # it described the file replaced
            except _INDEX_ERRORS as exc:
                self._index_failed("record", exc)
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
            return lock_fd
        except OSError as exc:
            log.debug("%s not filed as %s: %s", path, new_id, exc)
            os.close(lock_fd)
            return None
        finally:
            if tmp is not None:
                _unlink(tmp)

    def rekey(self, item: Item, store_id: str, key: str, etag: str | None) -> None:
        """This run's `item` now stands for version `etag` of `key`: the version our own
        upload made (a private item: published once nobody writes it), or a copy of the
        same bytes with new metadata. With etag None it stands for nothing any more (a
        file unlinked while open): no later open of this run finds it. A clean item is
        filed under the new version with a hard link of its file, so other runs keep the
        old version's file and record untouched; if that cannot be done (another run has
        the new version cached already), the item goes on as this run's alone."""
        if etag is None:
            self.detach(item)
            return
        if item.private:
            self.published(item, store_id, key, etag)
            return
        new_id = self.item_id(store_id, key, etag)
        if new_id == item.id:
            return
        new_path = self.item_path(new_id)
        lock_fd = self._link_in(item.path, new_id)
        if lock_fd is None:
            self.detach(item)
            return
        with self._lock:
            if self.items.get(item.id) is item:
                del self.items[item.id]
            item.unlock()
            item.id, item.path, item.lock_fd = new_id, new_path, lock_fd
            self.items[new_id] = item
        self._persist(item)

    def detach(self, item: Item, drop: bool = False) -> None:
        """`item` is this run's alone from now on: no later open finds it, and its ranges
        are recorded nowhere. drop: its bytes are about to change in place (a hard-link
        name replaced while open for reading), so its file and record are taken out of
        the shared cache too (other runs with it open keep the inode)."""
        with self._lock:
            if self.items.get(item.id) is item:
                del self.items[item.id]
            item.detached = True
        if drop and not item.private:
            try:
                self._drop_record(item.id)
            except _INDEX_ERRORS as exc:
                self._index_failed("record", exc)
            _unlink(item.path)

    # --- journal of private items with data not in the bucket -------------------------
    def journal(self, item: Item, record: dict) -> None:
        try:
            with item.cond:
                present = item.present.to_list()  # what the copy held: no need to fetch it again
            self.index.set("journal:" + item.id, dict(record, path=str(item.path), present=present))
        except _INDEX_ERRORS as exc:
            raise self._index_error("journal", exc) from None

    def journal_update(self, item_id: str, **fields) -> None:
        try:
            with self.index.transact():
                record = self.index.get("journal:" + item_id)
                if record is not None:
                    self.index.set("journal:" + item_id, dict(record, **fields))
        except _INDEX_ERRORS as exc:
            self._index_failed("journal", exc)

    def unjournal(self, item_id: str) -> None:
        """The item's data is in the bucket (or gone). If the record cannot be removed
        (disk full) it stays, pointing at a file that is removed: recovery drops it."""
        try:
            self.index.delete("journal:" + item_id)
        except _INDEX_ERRORS as exc:
            self._index_failed("journal", exc)
        _unlink(self.dirty_log(item_id))

    def journal_records(self) -> list[tuple[str, dict]]:
        try:
            return [(k[len("journal:"):], self.index.get(k)) for k in list(self.index.iterkeys())
                    if isinstance(k, str) and k.startswith("journal:")]
        except _INDEX_ERRORS as exc:
            raise self._index_error("read", exc) from None

    def dirty_log(self, item_id: str) -> Path:
        return self.root / "dirty" / item_id

    def log_dirty(self, item_id: str, start: int, end: int) -> None:
        """Append [start, end) to the item's dirty-range log (read back by recovery)."""
        try:
            with open(self.dirty_log(item_id), "ab", opener=private) as f:
                f.write(start.to_bytes(8, "little") + end.to_bytes(8, "little"))
        except OSError as exc:
            raise VfsError(exc.errno or errno.EIO,
                           f"cache {self.root}: cannot record a write: {exc.strerror or exc}") from None

    def read_dirty_log(self, item_id: str) -> RangeSet:
        dirty = RangeSet()
        try:
            raw = self.dirty_log(item_id).read_bytes()
        except OSError:
            return dirty
        for i in range(0, len(raw) - 15, 16):
            dirty.add(int.from_bytes(raw[i:i + 8], "little"), int.from_bytes(raw[i + 8:i + 16], "little"))
        return dirty

    def adopt(self, item_id: str, record: dict, lock_fd: int) -> Item:
        """The private item of a journal record whose run is gone (`lock_fd`: our claim on
        it), ready to be flushed like one of this run's, then released."""
        dirty = self.read_dirty_log(item_id)
        item = Item(item_id, Path(record["path"]), record.get("fetchable", 0), RangeSet())
        present = RangeSet.from_list(record.get("present", []))
        old = self._get(item_id)  # a clean record under the same id: an older cache layout
        if old and old.get("path") == record["path"]:
            present = present.union(RangeSet.from_list(old.get("present", [])))
        item.present = present.union(dirty)
        item.private = True
        item.lock_fd = lock_fd
        item.make_room = self.make_room
        item.previous_etag = record.get("previous_etag")
        item.dirty = dirty
        item.created = record.get("created", False) or not dirty
        item.attrs = record.get("attrs")
        item.journaled = True
        item.opens = 1
        with self._lock:
            self.items[item_id] = item
        return item

    def let_go(self, item: Item) -> None:
        """Forget a private item this run keeps no more (its data stays on disk, journaled)."""
        with self._lock:
            if self.items.get(item.id) is item:
                del self.items[item.id]
        item.close_fd()
        item.unlock()

    def in_use(self, path: Path | str) -> bool:
        """Another run (or this one) holds the item at `path`."""
        fd = lock_file(lock_path(path), exclusive=True, wait=False)
        if fd is None:
            return True
        os.close(fd)
        return False

    def claim(self, path: Path | str) -> int | None:
        """An exclusive lock on a private item no live run holds (to publish it), or None."""
        return lock_file(lock_path(path), exclusive=True, wait=False)

    def remove_private(self, path: Path | str) -> None:
        _unlink(path)
        _unlink(lock_path(path))

    # --- release, eviction, free space ------------------------------------------------
    def release(self, item: Item) -> None:
        with self._lock:
            item.opens -= 1
            if item.opens > 0:
                return
            if item.private:
                if item.journaled or item.writers > 0:
                    return  # data not in the bucket: kept (and locked) until this run ends
                self.items.pop(item.id, None)
                item.close_fd()
                self.remove_private(item.path)  # written nothing, or not needed any more
                item.unlock()
                base, item.base = item.base, None
            else:
                self._persist(item)
                if self.items.get(item.id) is item:
                    del self.items[item.id]
                item.close_fd()
                item.unlock()
                base = None
        if base is not None:
            self.release(base)
        if self.over_limit():
            self.evict()

    def over_limit(self) -> bool:
        """The clean records hold more than the limit, by the totals as last read: every
        release of a clean item reads them afresh, other runs' changes included. If the
        last eviction could not get under it (the rest open in some run), not until
        EVICT_SLACK more of the limit is held (those runs evict at their releases)."""
        held = self.held_bytes()
        if held <= self.limit:
            self._walk_above = 0
            return False
        return held > self._walk_above

    def free_bytes(self) -> int:
        st = os.statvfs(self.root / "items")
        return st.f_bavail * st.f_frsize

    def make_room(self, nbytes: int) -> bool:
        """Evict clean items until `nbytes` (and the margin) fit on the cache filesystem."""
        if self.free_bytes() >= nbytes + FREE_MARGIN:
            return True
        return self.evict(need_free=nbytes + FREE_MARGIN)

    def reserve(self, item: Item, length: int, what: str, may_shorten: bool = False) -> int:
        """A program is about to write `length` bytes into `item`: how many the cache
        filesystem can take (clean items evicted first if it is short). With nothing to
        give (or less than asked for a call that cannot be shortened) the item is marked
        failed and VfsError(ENOSPC) raised: that write and the file's close fail, nothing
        is uploaded and the object keeps its previous version."""
        if length <= 0 or self.make_room(length):
            return length
        room = self.free_bytes() - FREE_MARGIN
        if may_shorten and room > 0:
            return min(length, room)
        item.failed = VfsError(errno.ENOSPC, f"{what}: no space left in the cache at {self.root}; the write "
                                             "failed and the object keeps its previous version")
        raise item.failed

    def evict(self, need_free: int = 0) -> bool:
        """Drop least recently used clean items no run has open, until the cached bytes are
        under the limit and (with need_free) the filesystem has that many bytes free.
        Over the limit, eviction goes on down to EVICT_SLACK below it. One walk of the
        index, which also sets its totals right and trims the version records. Returns
        whether need_free is met."""
        with self._lock:
            records: list = []
            versions: list = []
            try:
                total = self._recount(records, versions)["held"]
            except _INDEX_ERRORS as exc:
                self._index_failed("read", exc)
                total = self.held_bytes()
            target = self.limit - int(self.limit * EVICT_SLACK) if total > self.limit else self.limit
            kept = {item_id for _, item_id, _ in records}
            for _, item_id, rec in sorted(records, key=lambda r: (r[0], r[1])):
                if total <= target and (not need_free or self.free_bytes() >= need_free):
                    break
                if item_id in self.items:
                    continue  # open here
                path = rec.get("path")
                if not path:
                    continue
                fd = lock_file(lock_path(path), exclusive=True, wait=False)
                if fd is None:
                    continue  # another run has it open
                try:
                    _unlink(path)
                    try:
                        rec = self._drop_record(item_id) or rec
                    except _INDEX_ERRORS as exc:
                        self._index_failed("evict", exc)
                    _unlink(lock_path(path))
                finally:
                    os.close(fd)
                kept.discard(item_id)
                total -= _held(rec)
                log.debug("evicted %s (%d bytes)", path, _held(rec))
            self._walk_above = total + int(self.limit * EVICT_SLACK) if total > self.limit else 0
            self._trim_versions(versions, kept)
            return not need_free or self.free_bytes() >= need_free

    def _trim_versions(self, keys: list, kept: set) -> None:
        """Drop the version records (`keys`) of versions whose item is neither recorded
        (`kept`: the clean records' ids) nor open here: with nothing cached to revalidate,
        a record is never of use (a later open's GET is unconditional). One noted in the
        last VERSION_GRACE seconds is kept: its item may still be open in the run that
        noted it, recorded at its release."""
        now = time.time()
        try:
            for i in range(0, len(keys), 500):   # a few transactions, none held long
                with self.index.transact():
                    for key in keys[i:i + 500]:
                        rec = self.index.get(key)
                        if not isinstance(rec, dict):
                            continue
                        item_id = rec.get("item")
                        if item_id in kept or item_id in self.items or now - rec.get("noted", 0) < VERSION_GRACE:
                            continue
                        self.index.delete(key)
        except _INDEX_ERRORS as exc:
            self._index_failed("trim", exc)

    def trim_versions(self) -> None:
        """One walk of the index: totals set right, version records of uncached versions
        dropped (also run by every eviction)."""
        with self._lock:
            records: list = []
            versions: list = []
            try:
                self._recount(records, versions)
            except _INDEX_ERRORS as exc:
                self._index_failed("read", exc)
                return
            self._trim_versions(versions, {item_id for _, item_id, _ in records})

    def _versions_piled_up(self) -> bool:
        """Many more version records than clean items (of directories, empty objects,
        evicted versions in a cache never over its limit): worth a walk. A count read
        from the index, not a walk."""
        try:
            keys = len(self.index)
        except _INDEX_ERRORS:
            return False
        items = self.totals.get("items", 0)
        return keys - items > 2 * items + VERSIONS_SLACK

    def close(self) -> None:
        """End of this run: record what it fetched, release every lock. Private items with
        data not in the bucket stay for `objmount flush`."""
        self.persist_all()
        if self.over_limit():
            self.evict()
        elif self._versions_piled_up():
            self.trim_versions()
        with self._lock:
            for item in self.items.values():
                item.close_fd()
                item.unlock()
            self.items.clear()
        try:
            self.index.close()
        except _INDEX_ERRORS:
            pass
