"""A set of byte ranges: sorted, disjoint, half-open [start, end) intervals."""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator


class RangeSet:
    __slots__ = ("_starts", "_ends")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()):
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends))

    def __len__(self) -> int:
        return len(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"

    @property
    def total(self) -> int:
        return sum(e - s for s, e in self)

    def add(self, start: int, end: int) -> None:
        """Add [start, end), merging with overlapping or touching ranges."""
        if start >= end:
            return
        i = bisect.bisect_left(self._ends, start)       # first range ending at/after start
        j = bisect.bisect_right(self._starts, end)      # ranges starting after end are untouched
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def remove(self, start: int, end: int) -> None:
        if start >= end:
            return
        i = bisect.bisect_right(self._ends, start)
        j = bisect.bisect_left(self._starts, end)
        if i >= j:
            return
        keep: list[tuple[int, int]] = []
        if self._starts[i] < start:
            keep.append((self._starts[i], start))
        if self._ends[j - 1] > end:
            keep.append((end, self._ends[j - 1]))
        self._starts[i:j] = [s for s, _ in keep]
        self._ends[i:j] = [e for _, e in keep]

    def contains(self, start: int, end: int) -> bool:
        if start >= end:
            return True
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) not in the set, in order."""
        gaps: list[tuple[int, int]] = []
        pos = start
        i = max(bisect.bisect_right(self._ends, start), 0)
        while pos < end and i < len(self._starts):
            s, e = self._starts[i], self._ends[i]
            if s >= end:
                break
            if s > pos:
                gaps.append((pos, s))
            pos = max(pos, e)
            i += 1
        if pos < end:
            gaps.append((pos, end))
        return gaps

    def union(self, other: "RangeSet") -> "RangeSet":
        out = self.copy()
        for s, e in other:
            out.add(s, e)
        return out

    def copy(self) -> "RangeSet":
        out = RangeSet()
        out._starts, out._ends = list(self._starts), list(self._ends)
        return out

    def to_list(self) -> list[list[int]]:
        return [[s, e] for s, e in self]

    @classmethod
    def from_list(cls, data: Iterable[Iterable[int]]) -> "RangeSet":
        return cls((int(s), int(e)) for s, e in data)
