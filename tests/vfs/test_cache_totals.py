"""The cache's running totals of held bytes (no walk of the index at a release), eviction
at the limit, and the trimming of version records, also with two Cache instances (two
runs) on one directory."""

from __future__ import annotations

import os

import pytest

import vfs.cache as cache_mod
from vfs.cache import Cache


def walked(cache: Cache) -> tuple[int, int]:
    """(held bytes, clean records) by a walk of the index, as the old code did it."""
    held = items = 0
    for key in list(cache.index.iterkeys()):
        if not isinstance(key, str) or key.startswith(("journal:", "version:")):
            continue
        rec = cache.index.get(key)
        if isinstance(rec, dict):
            held += rec.get("held", 0)
            items += 1
    return held, items


def recorded(cache: Cache) -> tuple[int, int]:
    totals = cache.index.get(cache_mod.TOTALS_KEY)
    return totals["held"], totals["items"]


def fetch(cache: Cache, key: str, size: int, start: int = 0, end: int | None = None, etag: str = '"e"'):
    """Open `key`'s item and put bytes [start, end) in it, as a fetch does; left open."""
    item = cache.open_item("store", key, etag, size)
    end = size if end is None else end
    if end > start:
        item.write(start, os.urandom(end - start))
        with item.cond:
            item.present.add(start, end)
    return item


def count_walks(cache: Cache, monkeypatch) -> list:
    walks = []
    index = cache.index
    real = index.iterkeys

    def iterkeys(*args, **kwargs):
        walks.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(index, "iterkeys", iterkeys)
    return walks


def test_totals_match_a_walk_after_fetches_releases_take_over_drop_and_eviction(tmp_path):
    cache = Cache(tmp_path, 1 << 30)
    try:
        for i in range(6):
            cache.release(fetch(cache, f"k{i}", 1000 + i))
        assert cache.held_bytes() == walked(cache)[0] == sum(1000 + i for i in range(6))
        assert recorded(cache) == walked(cache)
        item = fetch(cache, "k0", 1000, 0, 0)            # cached: nothing fetched, released again
        cache.release(item)
        item = fetch(cache, "part", 5000, 100, 600)       # part of an object, then more of it
        cache.release(item)
        item = fetch(cache, "part", 5000, 2000, 2500)
        cache.release(item)
        assert recorded(cache) == walked(cache)
        taken = fetch(cache, "k1", 1001, 0, 0)
        assert cache.take_over(taken)                     # its record leaves the shared cache
        assert recorded(cache) == walked(cache)
        dropped = fetch(cache, "k2", 1002, 0, 0)
        cache.detach(dropped, drop=True)
        assert recorded(cache) == walked(cache)
        cache.release(taken)
        cache.release(dropped)
        reborn = fetch(cache, "k3", 2000)                 # same key and etag, another size: a fresh file
        assert recorded(cache) == walked(cache)
        cache.release(reborn)
        cache.evict(need_free=os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize * 2)  # evicts all
        assert walked(cache) == (0, 0)
        assert recorded(cache) == (0, 0) and cache.held_bytes() == 0
    finally:
        cache.close()


def test_totals_follow_another_run_on_the_same_directory(tmp_path):
    one, two = Cache(tmp_path, 1 << 30), Cache(tmp_path, 1 << 30)
    try:
        one.release(fetch(one, "a", 3000))
        two.release(fetch(two, "b", 5000))
        two.release(fetch(two, "a", 3000, 0, 0))          # the other run opens ours...
        two.release(fetch(two, "c", 7000, 0, 1000))
        one.release(fetch(one, "d", 100))                 # ...and our next release reads its changes
        assert one.held_bytes() == walked(one)[0] == 3000 + 5000 + 1000 + 100
        two.evict(need_free=1 << 62)                      # the other run evicts everything no one holds
        assert walked(one) == (0, 0)
        one.release(fetch(one, "e", 10))
        assert one.held_bytes() == 10 and recorded(one) == walked(one) == (10, 1)
    finally:
        one.close()
        two.close()
    # A later run starts from the recorded totals, without a walk.
    three = Cache(tmp_path, 1 << 30)
    try:
        assert three.held_bytes() == 10
    finally:
        three.close()


def test_a_cache_without_totals_is_walked_once_at_open(tmp_path):
    cache = Cache(tmp_path, 1 << 30)
    for i in range(3):
        cache.release(fetch(cache, f"k{i}", 100))
    cache.index.delete(cache_mod.TOTALS_KEY)              # as an older objmount left it
    cache.close()
    again = Cache(tmp_path, 1 << 30)
    try:
        assert again.held_bytes() == 300 and recorded(again) == (300, 3)
    finally:
        again.close()


def test_no_walk_of_the_index_under_the_limit(tmp_path, monkeypatch):
    cache = Cache(tmp_path, 1 << 30)
    for i in range(50):
        cache.release(fetch(cache, f"k{i}", 100))
    walks = count_walks(cache, monkeypatch)
    for i in range(50):
        cache.release(fetch(cache, f"k{i}", 100, 0, 0))
    cache.close()
    assert walks == []


def test_eviction_at_the_limit_least_recently_used_first_not_what_a_run_holds(tmp_path, monkeypatch):
    one, two = Cache(tmp_path, 1000), Cache(tmp_path, 1000)
    try:
        held_elsewhere = fetch(two, "k0", 300)
        two.persist_all()                                 # recorded, still open in the other run
        clock = [1000.0]
        monkeypatch.setattr(cache_mod.time, "time", lambda: clock[0])
        for i in range(1, 3):
            clock[0] += 1
            one.release(fetch(one, f"k{i}", 300))
        assert walked(one) == (900, 3)                    # under the limit: nothing evicted
        clock[0] += 1
        one.release(fetch(one, "k3", 300))                # 1200 > 1000: down to 900 at most
        held, items = walked(one)
        assert held <= 1000 * (1 - getattr(cache_mod, "EVICT_SLACK", 0))
        assert recorded(one) == (held, items)
        assert not one.holds("store", "k1", '"e"', 0, 300)   # the least recently used went
        assert one.holds("store", "k0", '"e"', 0, 300)       # the other run's open one stayed
        assert one.holds("store", "k3", '"e"', 0, 300)
        assert held_elsewhere.path.exists()
        two.release(held_elsewhere)
    finally:
        one.close()
        two.close()


def test_version_records_go_with_their_item(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "VERSION_GRACE", 0.0, raising=False)
    cache = Cache(tmp_path, 1000)
    try:
        for i in range(3):
            cache.note_version("store", f"k{i}", {"etag": '"e"', "size": 400})
            cache.release(fetch(cache, f"k{i}", 400))     # the third goes over: k0 (and k1) evicted
        cache.note_version("store", "dir/", {"etag": '"d"', "size": 0})   # never an item
        cache.note_version("store", "k9", {"etag": '"e"', "size": 400})   # its item still open here
        open_here = fetch(cache, "k9", 400)
        cache.evict()
        for i in range(3):
            held = cache.holds("store", f"k{i}", '"e"', 0, 400)
            seen = cache.seen_version("store", f"k{i}")
            assert (seen is not None) == held, i
            if seen is not None:
                assert seen["etag"] == '"e"' and seen["size"] == 400
        assert not cache.holds("store", "k0", '"e"', 0, 400)
        assert cache.seen_version("store", "dir/") is None
        assert cache.seen_version("store", "k9") is not None
        cache.release(open_here)
    finally:
        cache.close()


def test_version_records_piling_up_under_the_limit_are_trimmed_at_close(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "VERSION_GRACE", 0.0, raising=False)
    monkeypatch.setattr(cache_mod, "VERSIONS_SLACK", 10, raising=False)
    cache = Cache(tmp_path, 1 << 30)
    cache.release(fetch(cache, "kept", 100))
    cache.note_version("store", "kept", {"etag": '"e"', "size": 100})
    for i in range(30):                                   # directories, empty objects: no item
        cache.note_version("store", f"d{i}/", {"etag": f'"{i}"', "size": 0})
    cache.close()
    again = Cache(tmp_path, 1 << 30)
    try:
        assert len(again.index) <= 3                      # totals, one record, its version
        assert again.seen_version("store", "kept")["etag"] == '"e"'
        assert again.seen_version("store", "d0/") is None
    finally:
        again.close()


@pytest.mark.parametrize("runs", [1, 2])
def test_random_mix_keeps_totals_exact(tmp_path, runs):
    import random
    rnd = random.Random(7)
    caches = [Cache(tmp_path, 20000) for _ in range(runs)]
    open_items = []
    try:
        for step in range(300):
            cache = rnd.choice(caches)
            action = rnd.random()
            if action < 0.5 or not open_items:
                size = rnd.randrange(1, 3000)
                start = rnd.randrange(0, size)
                open_items.append((cache, fetch(cache, f"k{rnd.randrange(40)}", size, start,
                                                rnd.randrange(start, size + 1), etag=f'"{size}"')))
            elif action < 0.9:
                owner, item = open_items.pop(rnd.randrange(len(open_items)))
                owner.release(item)
            elif action < 0.95:
                owner, item = open_items.pop(rnd.randrange(len(open_items)))
                owner.detach(item, drop=True)
                owner.release(item)
            else:
                cache.evict()
        for owner, item in open_items:
            owner.release(item)
        assert recorded(caches[0]) == walked(caches[0])
        assert walked(caches[0])[0] <= 20000
    finally:
        for cache in caches:
            cache.close()


def test_an_eviction_that_cannot_get_under_the_limit_is_not_walked_again_at_every_release(tmp_path, monkeypatch):
    one, two = Cache(tmp_path, 1000), Cache(tmp_path, 1000)
    try:
        big = fetch(two, "big", 2000)
        two.persist_all()                                 # recorded, open in the other run: not evictable
        walks = count_walks(one, monkeypatch)
        for i in range(6):
            one.release(fetch(one, f"k{i}", 10))
        assert len(walks) == 1                            # the first release walked; no use in more
        assert walked(one)[0] > 1000
        two.release(big)                                  # the other run is done: its release evicts
        assert walked(two)[0] <= 1000 and not two.holds("store", "big", '"e"', 0, 2000)
        assert recorded(two) == walked(two)
    finally:
        one.close()
        two.close()


def test_the_index_never_drops_records_by_itself(tmp_path):
    """The index is ours to evict from (the totals, the LRU walk): diskcache's own culling
    on a store, once its file passes its size limit (1 GiB by default), would drop item
    and version records behind the totals' back."""
    cache = Cache(tmp_path, 1 << 30)
    try:
        for i in range(20):
            cache.release(fetch(cache, f"k{i}", 1000 + i))
        before = walked(cache)
        cache.index.reset("size_limit", 1)   # as if the index file were past the limit
        cache.release(fetch(cache, "one-more", 500))
        assert walked(cache) == (before[0] + 500, before[1] + 1)
        assert recorded(cache) == walked(cache)
    finally:
        cache.close()
