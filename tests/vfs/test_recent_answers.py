"""Without close-to-open (VfsConfig.close_to_open False): which answers an open may take
instead of asking, and how old they are (from when their request was sent)."""

from __future__ import annotations

import errno
import os
import threading
import types

import pytest

from vfs import MountTable, Vfs, VfsConfig, VfsError
from vfs import namespace, predict

KiB = 1024
SIZE = 200 * KiB   # conftest.LISTED_SIZE
TTL = 10.0


class Clock:
    """The monotonic clock of namespace.py and predict.py, moved by the test."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    fake = types.SimpleNamespace(monotonic=c.monotonic)
    monkeypatch.setattr(namespace, "time", fake)
    monkeypatch.setattr(predict, "time", fake)
    return c


@pytest.fixture
def vfs(cache_dir):
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, metadata_ttl=TTL, close_to_open=False,
                                            first_window=64 * KiB))
    yield v
    v.close()


def gets(vfs) -> int:
    return vfs.stats()["requests"].get("GetObject", 0)


def test_a_prefetch_answer_is_as_old_as_its_request(vfs, clock, bucket, files, read):
    """Prefetches sent at t=0 answer at t=8 (TTL 10): an open at t=9 takes the answer,
    one at t=11 asks (counted from the answer's arrival it would still be fresh)."""
    d = f"/objmount/s3/{bucket}/d"
    store = vfs.store(f"s3://{bucket}")
    real = store.get_first

    sent = threading.Barrier(8, timeout=60)   # the eight prefetches, on eight workers

    def slow(*args, **kwargs):
        got = real(*args, **kwargs)
        if threading.current_thread().name.startswith("predict"):
            sent.wait()          # all sent at 1000 ...
            clock.now = 1008.0   # ... their answers arrive late
        return got

    store.get_first = slow
    vfs.listdir(d)
    assert read(vfs, f"{d}/f0") == files[0]
    assert read(vfs, f"{d}/f1") == files[1]   # a run of two: f2.. are fetched ahead, sent at 1000
    vfs.predictor.settle()
    assert clock.now == 1008.0
    before = gets(vfs)
    assert before == 2 * 2 + 8                 # f0, f1 (first window, then the rest), eight prefetches
    clock.now = 1009.0
    assert read(vfs, f"{d}/f2") == files[2]
    assert gets(vfs) == before                 # 9 s old: taken
    clock.now = 1011.0
    assert read(vfs, f"{d}/f3") == files[3]
    assert gets(vfs) == before + 1             # 11 s old: asked again (a 304)


def test_an_open_that_writes_still_asks(vfs, clock, s3, bucket, files, read):
    path = f"/objmount/s3/{bucket}/d/f0"
    assert read(vfs, path) == files[0]
    before = gets(vfs)
    assert read(vfs, path) == files[0]
    assert gets(vfs) == before                 # the first open's answer
    read(vfs, path, os.O_RDWR)
    assert gets(vfs) == before + 1             # an open for writing asks, as with close-to-open
    assert s3.get_object(Bucket=bucket, Key="d/f0")["Body"].read() == files[0]


def test_a_stat_answer_serves_the_next_open(vfs, clock, s3, bucket, files, read):
    path = f"/objmount/s3/{bucket}/d/f0"
    vfs.lookup(path, attrs=True)               # HEAD (nothing listed)
    before = gets(vfs), vfs.stats()["requests"].get("HeadObject", 0)
    s3.put_object(Bucket=bucket, Key="d/f0", Body=b"changed")   # unseen within the TTL
    f = vfs.open(path)
    try:
        assert f.meta.size == SIZE
        assert (gets(vfs), vfs.stats()["requests"].get("HeadObject", 0)) == before   # no request at open
    finally:
        f.close()
        vfs.end_operation()
    clock.now += TTL
    assert read(vfs, path) == b"changed"


def test_close_to_open_asks_whatever_is_known(cache_dir, clock, bucket, files, read):
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, metadata_ttl=TTL, first_window=64 * KiB))
    try:
        path = f"/objmount/s3/{bucket}/d/f0"
        read(v, path)
        before = gets(v)
        read(v, path)
        assert gets(v) == before + 1
    finally:
        v.close()


def test_bytes_of_a_version_gone_are_an_error_not_a_mix(vfs, clock, s3, bucket, files):
    """Taken within the TTL, an answer may name a version another client replaced or
    deleted: what of it is not in the cache cannot be read (ESTALE, as NFS says; ENOENT),
    never the new version's bytes."""
    for key, change, err in (("d/f0", lambda k: s3.put_object(Bucket=bucket, Key=k, Body=os.urandom(SIZE)),
                              errno.ESTALE),
                             ("d/f1", lambda k: s3.delete_object(Bucket=bucket, Key=k), errno.ENOENT)):
        path = f"/objmount/s3/{bucket}/{key}"
        vfs.lookup(path, attrs=True)           # HEAD: nothing of the bytes
        change(key)
        f = vfs.open(path)                     # the HEAD's answer: no request
        try:
            with pytest.raises(VfsError) as exc:
                f.ensure_all()
            assert exc.value.errno == err
        finally:
            f.close()
            vfs.end_operation()
