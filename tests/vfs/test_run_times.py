"""vfs/times.py: the times a run changed without storing them."""

from __future__ import annotations

import time

from vfs.meta import Kind, Meta
from vfs.times import DAY_NS, RunTimes


def _meta(a: int, m: int, c: int) -> Meta:
    return Meta(Kind.FILE, 0, 0o100644, 0, 0, m, None, atime_ns=a, ctime_ns=c)


def test_a_lookup_shows_the_later_of_the_table_and_the_stored_time():
    times = RunTimes()
    times.touch("/w/d", mtime_ns=50, ctime_ns=50)
    shown = times.apply("/w/d", _meta(1, 10, 100))
    assert (shown.atime_ns, shown.mtime_ns, shown.ctime_ns) == (1, 50, 100)
    times.forget("/w/d")
    assert times.apply("/w/d", _meta(1, 10, 100)).mtime_ns == 10


def test_relatime_moves_atime_only_when_not_after_mtime_and_ctime_or_a_day_old():
    now = time.time_ns()
    times = RunTimes()
    times.accessed("/f", _meta(now - 10, now - 5, now - 20).times())        # atime before mtime
    assert times.apply("/f", _meta(now - 10, now - 5, now - 20)).atime_ns >= now
    times = RunTimes()
    times.accessed("/f", _meta(now - 1, now - 5, now - 5).times())          # after both: kept
    assert times.apply("/f", _meta(now - 1, now - 5, now - 5)).atime_ns == now - 1
    old = now - DAY_NS - 10
    times.accessed("/g", _meta(old, old - 5, old - 5).times())              # a day old
    assert times.apply("/g", _meta(old, old - 5, old - 5)).atime_ns >= now


def test_a_rename_takes_the_times_below_along():
    times = RunTimes()
    times.touch("/w/a", ctime_ns=7)
    times.touch("/w/a/x", mtime_ns=9)
    times.touch("/w/ab", mtime_ns=11)
    times.moved("/w/a", "/w/b", below=True)
    assert times.apply("/w/b/x", _meta(0, 0, 0)).mtime_ns == 9 and times.apply("/w/b", _meta(0, 0, 0)).ctime_ns == 7
    assert times.apply("/w/a/x", _meta(0, 0, 0)).mtime_ns == 0 and times.apply("/w/ab", _meta(0, 0, 0)).mtime_ns == 11
