"""RangeSet against a bytearray model, plus the edge cases by name."""

from __future__ import annotations

import random

from vfs import RangeSet


def model_of(rs: RangeSet, size: int) -> bytearray:
    out = bytearray(size)
    for s, e in rs:
        out[s:e] = b"\1" * (e - s)
    return out


def test_add_merges_overlapping_and_touching_ranges():
    rs = RangeSet([(0, 10), (20, 30)])
    rs.add(10, 20)
    assert list(rs) == [(0, 30)]
    rs.add(40, 50)
    rs.add(45, 60)
    assert list(rs) == [(0, 30), (40, 60)]


def test_missing_lists_gaps_in_order():
    rs = RangeSet([(10, 20), (30, 40)])
    assert rs.missing(0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert rs.missing(12, 18) == []
    assert rs.missing(15, 35) == [(20, 30)]


def test_contains_and_empty_ranges():
    rs = RangeSet([(10, 20)])
    assert rs.contains(10, 20) and rs.contains(15, 15) and not rs.contains(9, 11)
    rs.add(5, 5)
    assert list(rs) == [(10, 20)]


def test_remove_splits_a_range():
    rs = RangeSet([(0, 100)])
    rs.remove(40, 60)
    assert list(rs) == [(0, 40), (60, 100)]
    assert rs.total == 80


def test_serialization_round_trips():
    rs = RangeSet([(1, 5), (9, 12)])
    assert RangeSet.from_list(rs.to_list()) == rs


def test_randomized_against_a_bytearray_model():
    rng = random.Random(1234)
    size = 300
    for _ in range(200):
        rs = RangeSet()
        model = bytearray(size)
        for _ in range(rng.randint(1, 25)):
            s = rng.randrange(size)
            e = rng.randrange(s, size + 1)
            if rng.random() < 0.7:
                rs.add(s, e)
                model[s:e] = b"\1" * (e - s)
            else:
                rs.remove(s, e)
                model[s:e] = bytes(e - s)
            assert model_of(rs, size) == model
            pairs = list(rs)
            assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(pairs, pairs[1:]))  # disjoint, not touching
        s = rng.randrange(size)
        e = rng.randrange(s, size + 1)
        gaps = rs.missing(s, e)
        expect = bytearray(model)
        for gs, ge in gaps:
            assert all(b == 0 for b in model[gs:ge])
            expect[gs:ge] = b"\1" * (ge - gs)
        assert all(b == 1 for b in expect[s:e])
        assert rs.contains(s, e) == (not gaps)
