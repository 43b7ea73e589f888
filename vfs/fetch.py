"""Ranged fetches into cache items, in parallel, with sequential readahead.

`ensure` blocks until a range is present; readahead beyond it is fetched in the
background. Random access fetches small aligned blocks; a sequential reader grows a
window (mountpoint-s3 style) that is split into parts fetched as parallel ranged GETs.
"""

from __future__ import annotations

import errno
import logging
from concurrent.futures import ThreadPoolExecutor

from .cache import Item
from .blocking import waiting
from .errors import VfsError

log = logging.getLogger("vfs.fetch")

KiB, MiB = 1024, 1024 * 1024


class Fetcher:
    def __init__(self, workers: int = 16, block: int = 32 * KiB, part: int = 8 * MiB):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
        self.block = block
        self.part = part

    def ensure(self, store, key: str, etag: str | None, item: Item, start: int, end: int,
               prefetch: tuple[int, int] | None = None, align: int | None = None) -> None:
        """Make [start, end) present (aligned outwards to `align`), and start fetching
        the `prefetch` range in the background."""
        end = min(end, item.size)
        align = align or self.block
        a_start = start - start % align
        a_end = min(item.size, -(-end // align) * align)
        if prefetch is not None:
            self._schedule(store, key, etag, item, max(prefetch[0], a_end), min(item.size, prefetch[1]),
                           first=(a_start, a_end))
        for _ in range(3):
            self._schedule(store, key, etag, item, a_start, a_end)
            if start >= end or self._wait(item, start, end):
                return
        raise VfsError(errno.EIO, f"{key}: range {start}-{end} could not be fetched")

    def _schedule(self, store, key, etag, item: Item, start: int, end: int,
                  first: tuple[int, int] | None = None) -> None:
        """Queue fetches for the gaps of [start, end) not present or on their way.
        `first`, if given, is queued before it (the range a reader waits for)."""
        if first is not None:
            self._schedule(store, key, etag, item, *first)
        if start >= end:
            return
        with item.cond:
            gaps = item.present.missing(start, end)
            for busy in item.inflight:
                gaps = [piece for gap in gaps for piece in _subtract(gap, busy)]
            parts = []
            for gap_start, gap_end in gaps:
                for s in range(gap_start, gap_end, self.part):
                    parts.append((s, min(s + self.part, gap_end)))
            local = _local_parts(item, parts)  # a writer's copy: what its base holds is copied
            item.inflight.extend(parts)
        for s, e in parts:
            self.pool.submit(self._fetch, store, key, etag, item, s, e, (s, e) in local)

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
                item.present.add(s, e)
            item.cond.notify_all()
        if error is not None:
            log.debug("first bytes of %s not kept: %s", item.path, error)

    def _fetch(self, store, key, etag, item: Item, start: int, end: int, local: bool = False) -> None:
        written = [start]

        def sink(offset: int, chunk: bytes) -> None:
            item.write(offset, chunk)
            written[0] = offset + len(chunk)

        error: Exception | None = None
        try:
            if local:
                item.copy_from_base(start, end)
                written[0] = end
            else:
                store.read(key, start, end, etag, sink)
        except Exception as exc:  # reported to whoever waits on this range
            error = exc
        with item.cond:
            item.inflight.remove((start, end))
            item.present.add(start, written[0])
            if error is not None:
                item.errors.append((start, end, error))
            item.cond.notify_all()

    def _wait(self, item: Item, start: int, end: int) -> bool:
        """True once [start, end) is present; False if nothing in flight will fill it.
        Raises the error of a failed fetch overlapping it."""
        with waiting(), item.cond:
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

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


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

    A sequential reader's window doubles from `initial` to `maximum`; a new window is
    requested only once the reader has consumed half of what was requested before, so
    prefetches go out as a few large parallel GETs, not one small GET per read."""

    def __init__(self, initial: int = 1 * MiB, maximum: int = 256 * MiB):
        self.initial = initial
        self.maximum = maximum
        self.window = 0
        self.next = 0          # where a sequential reader reads next
        self.requested = 0     # prefetched (or requested) up to here

    def primed(self, upto: int) -> None:
        """[0, upto) came with the open (its first GET): a reader starting at 0 asks for
        the next window at its first read, so it never waits on more than that one
        round trip (the window after is requested while this one is read)."""
        self.requested = upto
        self.window = max(upto, self.initial // 2)
        self._eager = True

    _eager = False

    def advise(self, start: int, end: int) -> tuple[int, int] | None:
        """Record a read of [start, end); return a range to prefetch, if any."""
        sequential = start == self.next
        self.next = end
        eager, self._eager = self._eager, False
        if not sequential:
            self.window = 0
            self.requested = end
            return None
        if self.requested - end > self.window // 2 and not eager:
            return None
        self.window = min(max(self.window * 2, self.initial), self.maximum)
        begin = max(self.requested, end)
        self.requested = begin + self.window
        return begin, self.requested
