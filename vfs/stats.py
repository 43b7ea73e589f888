"""Counts of storage requests and bytes, for --stats-file, -v and the benchmarks."""

from __future__ import annotations

import threading
from collections import Counter


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.bytes_received = 0
        self.bytes_sent = 0
        self.counters: Counter[str] = Counter()   # write-behind parts sent, re-sent, aborted

    def request(self, op: str, received: int = 0, sent: int = 0) -> None:
        with self._lock:
            self.requests[op] += 1
            self.bytes_received += received
            self.bytes_sent += sent

    def add_received(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def as_dict(self) -> dict:
        with self._lock:
            return {"requests": dict(self.requests), "bytes_received": self.bytes_received,
                    "bytes_sent": self.bytes_sent, "counters": dict(self.counters)}
