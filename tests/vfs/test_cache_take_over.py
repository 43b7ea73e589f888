"""A writer takes a cached version over only when no other run holds it."""

from __future__ import annotations

from vfs.cache import Cache


def test_take_over_refused_keeps_this_runs_hold_on_the_shared_file(tmp_path):
    one, two = Cache(tmp_path, 1 << 30), Cache(tmp_path, 1 << 30)
    try:
        mine = one.open_item("store", "key", '"etag"', 10)
        theirs = two.open_item("store", "key", '"etag"', 10)
        assert not one.take_over(mine)      # the other run holds it too
        two.release(theirs)                 # the other run is done with it
        assert one.in_use(mine.path)        # ...and ours still holds it: no eviction under us
    finally:
        one.close()
        two.close()


def test_take_over_moves_the_file_out_of_the_shared_cache_when_alone(tmp_path):
    cache = Cache(tmp_path, 1 << 30)
    try:
        item = cache.open_item("store", "key", '"etag"', 10)
        shared_path = item.path
        assert cache.take_over(item)
        assert item.private and not shared_path.exists() and item.path.exists()
        again = cache.open_item("store", "key", '"etag"', 10)   # a later open: a fresh clean file
        assert again is not item and again.path == shared_path
        cache.release(again)
    finally:
        cache.close()
