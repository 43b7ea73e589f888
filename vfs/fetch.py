"""Ranged fetches into cache items, in parallel, with sequential readahead.

`ensure` blocks until a range is present; readahead beyond it is fetched in the
background. Random access fetches small aligned blocks; a sequential reader keeps a
window of parts ahead of it, fetched as parallel ranged GETs. A fetch's bytes count as
present as they stream in, so a reader waits for the bytes it reads, not for the end of
the GET that brings them.

Each store's link is measured (`Link`: round trip and throughput), so that a reader's
first window covers at least what arrives in a round trip: it then never waits on more
than one round trip, however far the store is.
"""

from __future__ import annotations

import errno
import logging
import threading
import time

from .cache import Item
from .blocking import waiting
from .errors import VfsError

log = logging.getLogger("vfs.fetch")

KiB, MiB = 1024, 1024 * 1024
_PUBLISH = 256 * KiB    # a fetch adds what it received to the item's present ranges every this much


class Link:
    """What the fetches from one store measured: the round trip (time to the first byte
    of an answer) and the throughput of all its fetches together (bytes/s while any is
    running). Until they are measured, `rate` is a guess."""

    GUESS = 256 * MiB          # bytes/s before any measurement
    SAMPLE = 0.05              # seconds of transfer per throughput sample

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rtt: float | None = None
        self.measured: float | None = None
        self._active = 0
        self._since = 0.0
        self._bytes = 0

    @property
    def rate(self) -> float:
        return self.measured or self.GUESS

    def answered(self, seconds: float, nbytes: int) -> None:
        """A request took `seconds` to bring `nbytes` (an open's GET): a round trip and
        the body's transfer."""
        self.round_trip(max(seconds / 2, seconds - nbytes / self.rate))

    def round_trip(self, seconds: float) -> None:
        with self._lock:
            self.rtt = seconds if self.rtt is None else 0.7 * self.rtt + 0.3 * seconds

    def started(self) -> None:
        with self._lock:
            if self._active == 0:
                self._since, self._bytes = time.monotonic(), 0
            self._active += 1

    def received(self, n: int) -> None:
        with self._lock:
            self._bytes += n
            now = time.monotonic()
            if now - self._since >= self.SAMPLE:
                self._sample(now)

    def ended(self) -> None:
        with self._lock:
            self._active -= 1
            now = time.monotonic()
            if self._active == 0 and now - self._since >= self.SAMPLE / 2:
                self._sample(now)

    def _sample(self, now: float) -> None:
        rate = self._bytes / (now - self._since)
        # the fastest recent rate, forgotten slowly: a window too small to fill the link
        # measures less than it carries
        old = self.measured
        self.measured = rate if old is None else max(rate, 0.8 * old + 0.2 * rate)
        self._since, self._bytes = now, 0

    def in_flight(self) -> int:
        """Bytes that arrive in one round trip (bandwidth x latency); 0 until a round
        trip was measured."""
        return int(self.rate * (self.rtt or 0.0))


class _Task:
    __slots__ = ("fn", "args", "urgent", "item", "start", "end")

    def __init__(self, fn, args, urgent, item, start, end):
        self.fn, self.args, self.urgent = fn, args, urgent
        self.item, self.start, self.end = item, start, end


class _Pool:
    """Worker threads running fetches in the order queued, those a reader waits for
    first (a prefetch a reader comes to wait for is moved up)."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._cond = threading.Condition()
        self._queue: list[_Task] = []
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, task: _Task) -> None:
        with self._cond:
            if self._closed:
                return
            self._queue.append(task)
            self._cond.notify()
            if len(self._queue) > self._idle and len(self._threads) < self._workers:
                t = threading.Thread(target=self._run, name=f"{self._name}_{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()

    def promote(self, item, start: int, end: int) -> None:
        with self._cond:
            for task in self._queue:
                if task.item is item and task.start < end and start < task.end:
                    task.urgent = True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if self._closed:
                    return
                i = next((i for i, t in enumerate(self._queue) if t.urgent), 0)
                task = self._queue.pop(i)
            try:
                task.fn(*task.args)
            except Exception:  # noqa: BLE001 - a fetch reports its own errors
                log.exception("fetch task failed")

    def close(self) -> list[_Task]:
        """Stop: the queued tasks are returned, not run; running ones end first."""
        with self._cond:
            self._closed = True
            dropped, self._queue = self._queue, []
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        return dropped


class Fetcher:
    def __init__(self, workers: int = 16, block: int = 32 * KiB, part: int = 8 * MiB):
        self.pool = _Pool(workers, "fetch")
        self.block = block
        self.part = part
        self._links: dict[str, Link] = {}
        self._links_lock = threading.Lock()
        # id(item) -> ranges readers wait for (under item.cond): a fetch wakes them when
        # it brings bytes of one, not at every chunk of every fetch
        self._waiting: dict[int, list[tuple[int, int]]] = {}

    def link(self, store) -> Link:
        """The measurements of `store`'s link (shared by all its fetches)."""
        key = getattr(store, "id", None) or id(store)
        with self._links_lock:
            link = self._links.get(key)
            if link is None:
                link = self._links[key] = Link()
            return link

    def ensure(self, store, key: str, etag: str | None, item: Item, start: int, end: int,
               prefetch: tuple[int, int] | None = None, align: int | None = None,
               part: int | None = None) -> None:
        """Make [start, end) present (aligned outwards to `align`), and start fetching
        the `prefetch` range in the background (in GETs of `part` bytes)."""
        end = min(end, item.size)
        align = align or self.block
        a_start = start - start % align
        a_end = min(item.size, -(-end // align) * align)
        if prefetch is not None:
            self._schedule(store, key, etag, item, max(prefetch[0], a_end), min(item.size, prefetch[1]),
                           first=(a_start, a_end), part=part)
        for _ in range(3):
            self._schedule(store, key, etag, item, a_start, a_end, urgent=True)
            if start >= end or self._wait(item, start, end):
                return
        raise VfsError(errno.EIO, f"{key}: range {start}-{end} could not be fetched")

    def _schedule(self, store, key, etag, item: Item, start: int, end: int,
                  first: tuple[int, int] | None = None, part: int | None = None, urgent: bool = False) -> None:
        """Queue fetches for the gaps of [start, end) not present or on their way.
        `first`, if given, is queued before it (the range a reader waits for)."""
        if first is not None:
            self._schedule(store, key, etag, item, *first, urgent=True)
        if start >= end:
            return
        part = part or self.part
        with item.cond:
            gaps = item.present.missing(start, end)
            waits = urgent and bool(gaps)
            for busy in item.inflight:
                gaps = [piece for gap in gaps for piece in _subtract(gap, busy)]
            parts = []
            for gap_start, gap_end in gaps:
                for s in range(gap_start, gap_end, part):
                    parts.append((s, min(s + part, gap_end)))
            local = _local_parts(item, parts)  # a writer's copy: what its base holds is copied
            item.inflight.extend(parts)
        if waits:
            self.pool.promote(item, start, end)   # what a reader waits for may be queued as a prefetch
        link = self.link(store)
        for s, e in parts:
            self.pool.submit(_Task(self._fetch, (store, key, etag, item, s, e, (s, e) in local, link),
                                   urgent, item, s, e))

    def deliver(self, item: Item, start: int, data: bytes) -> None:
        """Bytes of the item's version that came another way (an open's first GET, a
        prefetch): written where nothing is present, in flight or dirty, so a fetch or a
        writer of the same range is never overwritten."""
        with item.cond:
            end = min(start + len(data), item.size)  # past it: bytes a truncation removed
            gaps = item.present.missing(start, end) if start < end else []
            for busy in [*item.inflight, *item.dirty]:
                gaps = [piece for gap in gaps for piece in _subtract(gap, busy)]
            item.inflight.extend(gaps)
        error = None
        done = []
        try:
            for s, e in gaps:
                item.write(s, data[s - start:e - start])
                done.append((s, e))
        except Exception as exc:  # a full cache: these bytes are fetched again when read
            error = exc
        with item.cond:
            for gap in gaps:
                item.inflight.remove(gap)
            for s, e in done:
                item.present.add(s, min(e, item.size))
            item.cond.notify_all()
        if error is not None:
            log.debug("first bytes of %s not kept: %s", item.path, error)

    def _fetch(self, store, key, etag, item: Item, start: int, end: int, local: bool = False,
               link: Link | None = None) -> None:
        if start >= item.size:  # cut off by a truncation while queued: nothing of it is wanted
            with item.cond:
                item.inflight.remove((start, end))
                item.cond.notify_all()
            return
        published = [start]   # present up to here
        written = [start]
        began = time.monotonic()

        def publish() -> None:
            s, e = published[0], written[0]
            with item.cond:
                item.present.add(s, min(e, item.size))  # not what a truncation cut meanwhile
                if any(ws < e and s < we for ws, we in self._waiting.get(id(item), ())):
                    item.cond.notify_all()
            published[0] = e

        def sink(offset: int, chunk: bytes) -> None:
            if link is not None:
                if offset == start:
                    link.round_trip(time.monotonic() - began)
                link.received(len(chunk))
            item.write(offset, chunk)
            written[0] = offset + len(chunk)
            if written[0] - published[0] >= _PUBLISH:
                publish()   # a reader waits for these bytes, not for the whole GET

        error: Exception | None = None
        if link is not None and not local:
            link.started()
        try:
            if local:
                item.copy_from_base(start, end)
                written[0] = end
            else:
                try:
                    store.read(key, start, end, etag, sink)
                except VfsError as exc:
                    newer = _refiled(item, etag) if exc.errno == errno.ESTALE else None
                    if newer is None:
                        raise
                    # our own metadata copy made that version, with the same bytes: ask for it
                    store.read(key, written[0], end, newer, sink)
        except Exception as exc:  # reported to whoever waits on this range
            error = exc
        finally:
            if link is not None and not local:
                link.ended()
        with item.cond:
            item.inflight.remove((start, end))
            item.present.add(published[0], min(written[0], item.size))
            if error is not None:
                item.errors.append((start, end, error))
            item.cond.notify_all()

    def _wait(self, item: Item, start: int, end: int) -> bool:
        """True once [start, end) is present; False if nothing in flight will fill it.
        Raises the error of a failed fetch overlapping it."""
        with waiting(), item.cond:
            waits = self._waiting.setdefault(id(item), [])
            waits.append((start, end))
            try:
                while not item.present.contains(start, end):
                    for failure in item.errors:
                        s, e, exc = failure
                        if s < end and start < e:
                            item.errors.remove(failure)
                            if isinstance(exc, VfsError):
                                raise exc
                            raise VfsError(errno.EIO, f"fetch failed: {exc}")
                    if not any(s < end and start < e for s, e in item.inflight):
                        return False
                    item.cond.wait(timeout=1.0)
                return True
            finally:
                waits.remove((start, end))
                if not waits:
                    del self._waiting[id(item)]

    def close(self) -> None:
        for task in self.pool.close():   # never started: nobody waits for them any more
            item = task.item
            with item.cond:
                item.inflight.remove((task.start, task.end))
                item.cond.notify_all()


def _refiled(item: Item, etag: str | None) -> str | None:
    """The version an item holds now if our own metadata copy re-filed it since a fetch
    asked for `etag` (waiting for a copy under way to be filed: Files._reversioned); None
    when it holds `etag` still (another client changed the object: ESTALE stands)."""
    with waiting(), item.cond:
        while item.refiling:
            item.cond.wait(timeout=1.0)
        newer = item.previous_etag
    return newer if newer is not None and newer != etag else None


def _local_parts(item: Item, parts: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """Split `parts` (in place) where the item's base stops or starts holding bytes;
    returns the pieces the base holds."""
    base = item.base
    if base is None:
        return set()
    with base.cond:
        present = base.present.copy()
    local, split = set(), []
    for s, e in parts:
        pos = s
        for gap_s, gap_e in present.missing(s, e) + [(e, e)]:
            if pos < gap_s:
                split.append((pos, gap_s))
                local.add((pos, gap_s))
            if gap_s < gap_e:
                split.append((gap_s, gap_e))
            pos = gap_e
    parts[:] = split
    return local


def _subtract(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    (s, e), (bs, be) = a, b
    if be <= s or bs >= e:
        return [a]
    out = []
    if s < bs:
        out.append((s, bs))
    if be < e:
        out.append((be, e))
    return out


class Readahead:
    """Per open file: detects sequential reads and decides what to prefetch.

    A sequential reader keeps `window` bytes requested ahead of where it reads, topped up
    a part at a time as it reads on, so the GETs in flight never run dry while it waits
    on the earliest of them. A reader from the start of the file gets a first window of
    what the store's link carries in two round trips (at least `initial`, at most
    `first_max`): it then waits on one round trip at most, at its first read past what
    it has; a run of sequential reads found after a seek starts at `initial`. The window
    grows by twice what is read (it doubles each time the reader reads half of it) up to
    `maximum`; it is cut in parts of a quarter of it (1 to `part` MiB), fetched in
    parallel."""

    def __init__(self, initial: int = 2 * MiB, maximum: int = 256 * MiB, first_max: int = 16 * MiB,
                 part: int = 8 * MiB):
        self.initial = initial
        self.maximum = maximum
        self.first_max = first_max
        self.max_part = part
        self.window = 0
        self.next = 0          # where a sequential reader reads next
        self.requested = 0     # prefetched (or requested) up to here
        self._eager = False

    def primed(self, upto: int) -> None:
        """[0, upto) came with the open (its first GET): a reader starting at 0 asks for
        the first window at its first read, so it never waits on more than one round
        trip (what follows is requested while that window is read)."""
        self.requested = upto
        self._eager = True

    @property
    def part(self) -> int:
        """The size of the GETs the window is fetched in."""
        return max(MiB, min(self.max_part, self.window // 4 // MiB * MiB))

    def advise(self, start: int, end: int, link: Link | None = None) -> tuple[int, int] | None:
        """Record a read of [start, end); return a range to prefetch, if any."""
        sequential = start == self.next
        self.next = end
        eager, self._eager = self._eager, False
        if not sequential:
            self.window = 0
            self.requested = end
            return None
        if self.window == 0:
            # from the start of the file: a stream (cat, cp, tar), sized on the link; a run
            # found after a seek starts small (a random reader reads two blocks in a row)
            ahead = 2 * link.in_flight() if link is not None and (eager or start == 0) else 0
            self.window = min(max(self.initial, ahead), max(self.first_max, self.initial), self.maximum)
            eager = True
        else:
            self.window = min(self.window + 2 * (end - start), self.maximum)
        begin = max(self.requested, end)
        want = end + self.window - begin
        part = self.part
        if want < part and not (eager and want > 0):
            return None
        # whole parts; the first window all at once
        self.requested = begin + (-(-want // part) if eager else want // part) * part
        return begin, self.requested
