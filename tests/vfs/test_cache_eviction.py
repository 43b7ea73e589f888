"""Eviction keeps the cached bytes under the limit without reading the whole index at every
release: a run releases an item at every close, and a look reads every record."""

from __future__ import annotations

from vfs.cache import Cache


def _fill(cache: Cache, key: str, size: int):
    item = cache.open_item("store", key, '"etag"', size)
    item.write(0, b"x" * size)
    with item.cond:
        item.present.add(0, size)   # as a fetch records what it wrote
    return item


def _looks(cache: Cache, monkeypatch) -> list:
    looked = []
    scan = cache.index.iterkeys
    monkeypatch.setattr(cache.index, "iterkeys", lambda *a, **k: looked.append(1) or scan(*a, **k))
    return looked


def test_releases_under_the_limit_do_not_look_over_the_index_each_time(tmp_path, monkeypatch):
    cache = Cache(tmp_path, 1 << 30)
    try:
        looked = _looks(cache, monkeypatch)
        for i in range(50):
            cache.release(_fill(cache, f"k{i}", 100))
        assert len(looked) <= 2
    finally:
        cache.close()


def test_over_the_limit_within_one_run_evicts_the_oldest(tmp_path, monkeypatch):
    cache = Cache(tmp_path, 2500)
    try:
        looked = _looks(cache, monkeypatch)
        paths = []
        for i in range(10):
            item = _fill(cache, f"k{i}", 1000)
            paths.append(item.path)
            cache.release(item)
        assert sum(p.exists() for p in paths) <= 2   # the limit holds 2 of them
        assert paths[-1].exists()
        assert len(looked) >= 8   # over the limit, every release looks
    finally:
        cache.close()


def test_what_another_run_adds_counts_toward_the_limit(tmp_path):
    one, two = Cache(tmp_path, 2500), Cache(tmp_path, 2500)
    try:
        first = _fill(one, "mine", 1000)
        one.release(first)
        for i in range(3):   # the other run fills the cache past the limit
            two._persist(_fill(two, f"theirs{i}", 1000))   # recorded, still open there
        one.release(_fill(one, "mine2", 1000))   # this run's look counts their bytes too
        assert not first.path.exists()
    finally:
        one.close()
        two.close()
