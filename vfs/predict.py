"""Prediction: a program that opens the files of a directory in listing order (grep -r,
tar c, cp -r, sha256sum *, cat dir/*) gets the next files of the listing fetched ahead of
it, in parallel, on a pool of its own.

Each directory keeps a few runs (several processes may walk it at once, as xargs -P
does): an open of the entry right after a run's last one extends that run; from its
second step on, the next files of the listing are fetched, within a bound (files and
bytes fetched but not opened yet). An open that is no run's next starts a new run (the
pattern broke: nothing more is fetched for the old one once it is dropped).

A prefetch is one GET of the object (up to PER_FILE bytes) into the cache item of the
version that answers; the item is held (eviction keeps it) until the file is opened or
its run is dropped. It costs bytes, never correctness: the open still asks the bucket
(a conditional GET on the version the cache holds: 304 means these bytes are good, else
the new version is read), and the bytes go where nothing is present, in flight or dirty
(Fetcher.deliver). Files smaller than `min_size` are left alone: their bytes come with
the open's own GET in the same round trip, so fetching them ahead would only add a
request.

Without close-to-open (Namespace.close_to_open False, --no-close-to-open) the open takes
the prefetch's answer instead of asking (Namespace.recent): the namespace learns it, as
of when its GET was sent, and an open of a file whose prefetch is on its way waits for
it (Namespace.coming). Small files are then fetched ahead too (the prefetch's GET is the
open's), and a file whose bytes the cache holds is asked about ahead, conditionally
(Namespace.ask_ahead: a 304 and no body while it is unchanged).
"""

from __future__ import annotations

import bisect
import logging
import posixpath
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .meta import Kind

log = logging.getLogger("vfs.predict")

KiB, MiB = 1024, 1024 * 1024
RUNS_PER_DIR = 8      # sequences followed at once in one directory
DIRS = 16             # directories followed at once
AHEAD = 8             # files fetched ahead of a run
PER_FILE = 8 * MiB    # bytes of one file fetched ahead


@dataclass
class _Run:
    pos: int          # index (in the directory's file names) of the run's last open
    steps: int = 1


@dataclass
class _Ahead:
    """A file fetched ahead: its size counts against the bound until it is opened."""
    size: int
    run: _Run
    index: int                                   # in the directory's file names
    items: list = field(default_factory=list)   # cache items held for it
    dropped: bool = False                        # released before its fetch ended


@dataclass
class _Dir:
    entries: dict                                 # the listing followed (its identity)
    names: list[str]                              # its files, in listing order
    runs: list[_Run] = field(default_factory=list)


class Predictor:
    def __init__(self, ns, files, max_files: int = 16, max_bytes: int = 64 * MiB, min_size: int = 64 * KiB,
                 workers: int = 8):
        self.ns = ns
        self.files = files
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.min_size = min_size
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict")
        self._lock = threading.Lock()
        self._dirs: dict[str, _Dir] = {}                 # dir path -> what is followed there
        self._ahead: dict[str, _Ahead] = {}              # file path -> its prefetch
        self._closed = False
        self._futures: list = []

    def opened(self, path: str, store, key: str, reading: bool = True) -> None:
        """A file of the bucket was opened (after its revalidation); only reading opens
        make runs."""
        parent, name = posixpath.split(path)
        listing = self.ns.listed(parent)
        with self._lock:
            ahead = self._ahead.get(path)
            if ahead is not None:  # the open holds its item now; what its run skipped is not wanted
                for p in [p for p, a in self._ahead.items() if a.run is ahead.run and a.index < ahead.index]:
                    self._drop_ahead(p)
            self._drop_ahead(path)
            if listing is None or self._closed or not reading:
                return
            d = self._dirs.get(parent)
            if d is None or d.entries is not listing:
                d = self._dirs[parent] = _Dir(listing, sorted(n for n, m in listing.items() if m.kind is Kind.FILE))
                while len(self._dirs) > DIRS:
                    self._forget_dir(next(iter(self._dirs)))
            else:
                self._dirs[parent] = self._dirs.pop(parent)   # most recently used last
            i = bisect.bisect_left(d.names, name)
            if i >= len(d.names) or d.names[i] != name:
                return
            run = next((r for r in d.runs if r.pos == i - 1), None)
            if run is None:  # a new sequence (or the pattern broke)
                d.runs.append(_Run(i))
                if len(d.runs) > RUNS_PER_DIR:
                    self._drop_run(parent, d.runs.pop(0))
                return
            run.pos, run.steps = i, run.steps + 1
            # without close-to-open a prefetch's GET is the open's: small files gain too
            min_size = self.min_size if self.ns.close_to_open else 0
            todo = []
            in_flight = sum(a.size for a in self._ahead.values())
            for other in d.names[i + 1:i + 1 + AHEAD]:
                p = f"{parent}/{other}"
                if p in self._ahead:
                    continue
                meta = listing.get(other)
                if meta is None or meta.kind is not Kind.FILE or meta.size < min_size:
                    continue
                size = min(meta.size, PER_FILE)
                if len(self._ahead) >= self.max_files or in_flight + size > self.max_bytes:
                    break
                if self.files.entry(store.url, _sibling(key, other)) is not None:
                    continue  # this run writes it: its bytes are the writer's
                self._ahead[p] = _Ahead(size, run, d.names.index(other))
                in_flight += size
                todo.append((p, _sibling(key, other), meta, size))
        for p, k, meta, size in todo:
            future = self._pool.submit(self._fetch, p, store, k, meta, size)
            if not self.ns.close_to_open:
                self.ns.coming(p, future)
            with self._lock:
                self._futures = [f for f in self._futures if not f.done()] + [future]

    def settle(self) -> None:
        """Wait for the prefetches started so far (tests)."""
        with self._lock:
            futures = list(self._futures)
        for f in futures:
            f.result()

    def _fetch(self, path: str, store, key: str, listed, size: int) -> None:
        with self._lock:
            ahead = self._ahead.get(path)
            if ahead is None or ahead.dropped:
                return
        cache = self.files.cache
        answers = not self.ns.close_to_open   # the open takes this prefetch's answer
        try:
            if listed.etag and cache.holds(store.id, key, listed.etag, 0, size):
                if answers:  # the open's question, asked ahead: 304 if these bytes are current
                    self.ns.ask_ahead(path)
                return  # else: the open's conditional GET will say if it is current
            asked = time.monotonic()   # an answer is as old as its question
            got = store.get_first(key, size, ranged=listed.size > 0)
            if got is not None and not got.not_modified and answers:
                self.ns.got_ahead(path, store, key, got, asked)
        except Exception as exc:  # noqa: BLE001 - a prefetch that fails costs nothing
            log.debug("prefetch of %s failed: %s", path, exc)
            return
        if got is None or got.not_modified:
            return
        item = self.files.keep_first(store, key, got)
        if item is None:
            return
        with self._lock:
            ahead = self._ahead.get(path)
            if ahead is not None and not ahead.dropped:
                ahead.items.append(item)
                return
        cache.release(item)  # opened or dropped meanwhile

    def _drop_ahead(self, path: str) -> None:
        """Under the lock: release what was fetched ahead for `path`."""
        ahead = self._ahead.pop(path, None)
        if ahead is not None:
            ahead.dropped = True
            for item in ahead.items:
                self.files.cache.release(item)

    def _drop_run(self, parent: str, run: _Run) -> None:
        for p in [p for p, a in self._ahead.items() if a.run is run]:
            self._drop_ahead(p)

    def _forget_dir(self, parent: str) -> None:
        self._dirs.pop(parent, None)
        for p in [p for p in self._ahead if posixpath.dirname(p) == parent]:
            self._drop_ahead(p)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for p in list(self._ahead):
                self._drop_ahead(p)
            self._dirs.clear()


def _sibling(key: str, name: str) -> str:
    """The key of `name` in the directory of `key`."""
    head = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    return head + name
