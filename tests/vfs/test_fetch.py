"""Fetches and readahead (vfs/fetch.py): what a reader waits for, what is fetched, and
bytes exact through a slow link."""

from __future__ import annotations

import os
import threading

import pytest

from vfs import MountTable, Vfs, VfsConfig
from vfs.cache import Item
from vfs.fetch import Fetcher, Link, Readahead
from vfs.ranges import RangeSet

KiB, MiB = 1024, 1024 * 1024


class _Store:
    """A store over bytes in memory whose GETs can be held: a held GET hands over its
    first `early` bytes, then waits until the test lets it go."""

    id = "test://store"

    def __init__(self, data: bytes, early: int | None = None):
        self.data = data
        self.early = early
        self.go = threading.Event()
        self.started = threading.Event()
        self.reads: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def read(self, key, start, end, etag, sink) -> None:
        with self._lock:
            self.reads.append((key, start, end))
        if self.early is not None:
            sink(start, self.data[start:start + self.early])
            self.started.set()
            assert self.go.wait(60)
            start += self.early
        for pos in range(start, end, 64 * KiB):
            sink(pos, self.data[pos:min(end, pos + 64 * KiB)])


def _item(tmp_path, name: str, size: int) -> Item:
    path = tmp_path / name
    path.write_bytes(b"")
    os.truncate(path, size)
    return Item(name, path, size, RangeSet())


def _ensure_in_thread(fetcher, store, key, item, start, end, **kw) -> threading.Thread:
    t = threading.Thread(target=fetcher.ensure, args=(store, key, None, item, start, end), kwargs=kw, daemon=True)
    t.start()
    return t


def test_a_reader_gets_the_bytes_of_a_get_that_has_not_ended(tmp_path):
    data = os.urandom(4 * MiB)
    store = _Store(data, early=2 * MiB)
    item = _item(tmp_path, "a", len(data))
    fetcher = Fetcher(workers=2)
    try:
        # one GET of [0, 4 MiB) is held after its first 2 MiB: a read inside them returns
        reader = _ensure_in_thread(fetcher, store, "k", item, 0, 64 * KiB, align=4 * MiB)
        reader.join(30)
        waited_for_the_whole_get = reader.is_alive()
        store.go.set()
        reader.join(30)
        assert not waited_for_the_whole_get
        assert store.reads == [("k", 0, 4 * MiB)]
        fetcher.ensure(store, "k", None, item, 0, len(data))
        assert item.path.read_bytes() == data
    finally:
        store.go.set()
        fetcher.close()


def test_a_read_is_not_queued_behind_the_readahead_of_another_file(tmp_path):
    data = os.urandom(16 * MiB)
    store = _Store(data, early=0)
    a, b = _item(tmp_path, "a", len(data)), _item(tmp_path, "b", len(data))
    fetcher = Fetcher(workers=1, part=MiB)
    try:
        # file a's readahead: 8 GETs of 1 MiB, the first one held, the others queued
        fetcher.ensure(store, "a", None, a, 0, 0, prefetch=(0, 8 * MiB))
        assert store.started.wait(30)
        reader = _ensure_in_thread(fetcher, store, "b", b, 10 * MiB, 10 * MiB + 4 * KiB)
        while not b.inflight:
            threading.Event().wait(0.01)
        store.go.set()
        reader.join(60)
        assert not reader.is_alive()
        keys = [key for key, _, _ in store.reads]
        assert keys.index("b") == 1, keys   # right after the GET that was running
    finally:
        store.go.set()
        fetcher.close()


def test_the_first_window_covers_what_the_link_carries_in_a_round_trip():
    link = Link()
    link.round_trip(0.05)
    link.measured = 200 * MiB   # bytes/s
    ra = Readahead(maximum=256 * MiB)
    ra.primed(MiB)
    start, end = ra.advise(0, 128 * KiB, link)
    assert start == MiB
    assert end - start >= link.rate * 0.05     # a round trip's bytes: 10 MiB
    # a run found after a seek starts small, whatever the link
    ra = Readahead(maximum=256 * MiB)
    assert ra.advise(100 * MiB, 100 * MiB + 4 * KiB, link) is None
    start, end = ra.advise(100 * MiB + 4 * KiB, 100 * MiB + 8 * KiB, link)
    assert end - start <= 2 * MiB
    # a near store keeps the small first window
    near = Link()
    near.round_trip(0.0005)
    ra = Readahead(maximum=256 * MiB)
    ra.primed(MiB)
    start, end = ra.advise(0, 128 * KiB, near)
    assert end - start <= 4 * MiB


def test_a_sequential_reader_keeps_its_window_ahead_as_it_reads():
    """The window is topped up as the reader moves, not once half of it is read: what is
    requested ahead of the reader never falls below the window less a part."""
    ra = Readahead(initial=2 * MiB, maximum=64 * MiB)
    requested = 0
    for pos in range(0, 200 * MiB, 128 * KiB):
        got = ra.advise(pos, pos + 128 * KiB)
        if got is not None:
            assert got[0] == max(requested, pos + 128 * KiB)
            requested = got[1]
        assert requested - (pos + 128 * KiB) >= ra.window - ra.part
    assert ra.window == 64 * MiB


@pytest.fixture
def far(s3_server):
    """The moto server behind a proxy that delays each request by 20 ms."""
    from benchmarks.latency import delayed
    with delayed(s3_server, 20) as url:
        yield url


def test_a_sequential_read_over_a_slow_link_is_exact_and_fetches_each_byte_once(far, s3, bucket, cache_dir):
    data = os.urandom(24 * MiB + 5)
    s3.put_object(Bucket=bucket, Key="seq", Body=data)
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, endpoint_url=far))
    try:
        f = v.open(f"/objmount/s3/{bucket}/seq")
        with open(f.cache_path, "rb") as fh:
            for pos in range(0, len(data), 128 * KiB):
                f.ensure(pos, 128 * KiB)
                fh.seek(pos)
                assert fh.read(128 * KiB) == data[pos:pos + 128 * KiB]
        f.close()
        stats = v.stats()
    finally:
        v.close()
    assert stats["bytes_received"] == len(data)
    assert stats["requests"]["GetObject"] >= 4   # ranged parts, in parallel


def test_a_short_read_over_a_slow_link_fetches_a_bounded_window(far, s3, bucket, cache_dir):
    s3.upload_fileobj(_Zeros(48 * MiB), bucket, "big")
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, endpoint_url=far))
    try:
        f = v.open(f"/objmount/s3/{bucket}/big")
        f.ensure(0, 64 * KiB)
        f.ensure(64 * KiB, 64 * KiB)
        f.close()
    finally:
        v.close()   # waits for the fetches under way
    assert v.stats()["bytes_received"] <= v.config.first_window + 16 * MiB


class _Zeros:
    def __init__(self, n: int):
        self.left = n

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def test_a_fetch_that_meets_our_own_metadata_copy_asks_for_the_new_version(cache_dir, tmp_path):
    """chmod/utimes make a new version with the same bytes (a file:// ETag holds the
    mtime): a fetch of an open file that asks for the old version after that (queued
    before it, or under way) gets the bytes of the new one, not ESTALE (a reader then
    failed at a later read, now and then, in test_differential_data)."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    data = os.urandom(4 * MiB)
    (store_dir / "f").write_bytes(data)
    v = Vfs(MountTable.parse([f"/w=file://{store_dir}"]), VfsConfig(cache_dir=cache_dir, metadata_ttl=30))
    try:
        f = v.open("/w/f")
        store = v.store(f"file://{store_dir}")
        real_read, held, entered = store.read, threading.Event(), threading.Event()

        def read(key, start, end, etag, sink):
            if start >= 3 * MiB and not held.is_set():
                entered.set()
                assert held.wait(30)
            return real_read(key, start, end, etag, sink)
        store.read = read
        got: list = []
        reader = threading.Thread(target=lambda: got.append(_try(f.ensure, 3 * MiB, 4096)))
        reader.start()
        assert entered.wait(30)                      # the fetch asks for the version of the open...
        v.setattr("/w/f", mtime_ns=10**18, atime_ns=10**18)   # ...which our utimes just replaced
        held.set()
        reader.join(30)
        assert got == [None]
        with open(f.cache_path, "rb") as fh:
            fh.seek(3 * MiB)
            assert fh.read(4096) == data[3 * MiB:3 * MiB + 4096]
        f.close()
    finally:
        v.close()


def _try(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the test compares it
        return exc
    return None
