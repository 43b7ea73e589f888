"""Prediction (vfs/predict.py): files of a directory opened in listing order get the next
ones fetched ahead; a wrong prediction costs bytes, never correctness."""

from __future__ import annotations

import os
import re

import pytest

from vfs import MountTable, Vfs, VfsConfig
from vfs.cache import Item
from vfs.fetch import Fetcher
from vfs.ranges import RangeSet

KiB = 1024
SIZE = 200 * KiB   # conftest.LISTED_SIZE


def received(vfs) -> int:
    return vfs.stats()["bytes_received"]


@pytest.fixture
def bare_etags(proxy):
    """The bucket behind a proxy whose listings give ETags without their quotes, as
    rclone serve s3 does (its HEAD and GET answers quote them)."""
    proxy.rewrite = lambda method, path, body: (
        re.sub(rb"<ETag>(?:&quot;|&#34;|\")(.*?)(?:&quot;|&#34;|\")</ETag>", rb"<ETag>\1</ETag>", body)
        if "list-type=2" in path else body)
    return proxy


@pytest.fixture(params=["quoted", "bare"])
def listed_etags(request):
    """How the server's listings spell ETags (both are seen in the wild): the proxy that
    unquotes them, or None."""
    return request.getfixturevalue("bare_etags") if request.param == "bare" else None


@pytest.fixture
def vfs(listed_etags, cache_dir):
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, metadata_ttl=30, first_window=64 * KiB))
    yield v
    v.close()


def test_files_opened_in_listing_order_are_fetched_ahead(vfs, listed_etags, bucket, files, read):
    d = f"/objmount/s3/{bucket}/d"
    vfs.listdir(d)
    if listed_etags is not None:
        assert listed_etags.requests("GET", "list-type=2")
    assert read(vfs, f"{d}/f0") == files[0]
    assert read(vfs, f"{d}/f1") == files[1]   # a run of two: f2.. are fetched ahead
    vfs.predictor.settle()
    before, gets = received(vfs), vfs.stats()["requests"]["GetObject"]
    for i in range(2, 10):
        assert read(vfs, f"{d}/f{i}") == files[i]
        vfs.predictor.settle()
    assert received(vfs) == before    # every byte was here: each open's GET was a 304
    assert vfs.stats()["requests"]["GetObject"] == gets + 8   # close-to-open: each open still asks


def test_opens_out_of_order_fetch_nothing_ahead(vfs, bucket, files, read):
    d = f"/objmount/s3/{bucket}/d"
    vfs.listdir(d)
    for i in (0, 5, 2, 8):
        assert read(vfs, f"{d}/f{i}") == files[i]
    vfs.predictor.settle()
    assert received(vfs) == 4 * SIZE


def test_a_file_changed_after_its_prefetch_is_read_anew(vfs, s3, bucket, files, read):
    d = f"/objmount/s3/{bucket}/d"
    vfs.listdir(d)
    read(vfs, f"{d}/f0")
    read(vfs, f"{d}/f1")
    vfs.predictor.settle()       # f2.. are in the cache now
    new = os.urandom(SIZE)
    s3.put_object(Bucket=bucket, Key="d/f2", Body=new)
    assert read(vfs, f"{d}/f2") == new
    assert read(vfs, f"{d}/f3") == files[3]


def test_a_prefetch_leaves_a_writers_file_alone(vfs, bucket, files, read):
    d = f"/objmount/s3/{bucket}/d"
    vfs.listdir(d)
    w = vfs.open(f"{d}/f3", os.O_RDWR)
    w.will_write(0, 5)
    with open(w.cache_path, "r+b") as fh:
        fh.write(b"XXXXX")
    read(vfs, f"{d}/f1")
    read(vfs, f"{d}/f2")          # a run: f3 (being written) and on are candidates
    vfs.predictor.settle()
    w.ensure_all()
    with open(w.cache_path, "rb") as fh:
        assert fh.read() == b"XXXXX" + files[3][5:]
    w.close()
    vfs.end_operation()
    assert read(vfs, f"{d}/f3") == b"XXXXX" + files[3][5:]


def test_delivered_bytes_never_land_on_dirty_or_present_ranges(tmp_path):
    path = tmp_path / "item"
    path.write_bytes(b"\0" * 100)
    item = Item("x", path, 100, RangeSet())
    item.present.add(10, 20)
    item.dirty.add(40, 50)
    item.present.add(40, 50)
    with open(path, "r+b") as fh:
        fh.seek(10)
        fh.write(b"p" * 10)
        fh.seek(40)
        fh.write(b"w" * 10)
    fetcher = Fetcher(workers=1)
    try:
        fetcher.deliver(item, 0, b"n" * 120)   # longer than the item: cut at its size
    finally:
        fetcher.close()
    assert path.read_bytes() == b"n" * 10 + b"p" * 10 + b"n" * 20 + b"w" * 10 + b"n" * 50
    assert item.present.contains(0, 100)
