"""Times this run changed without writing them to the bucket.

A change that rewrites an object stores its times (mtime, ctime, atime: meta.py, as s3fs
keys). Two kinds of change do not rewrite anything, and would cost a request each if they
did: a directory's mtime and ctime when an entry is created or removed in it (a marker
rewrite per create would double the requests of `tar x`), and atime when a file is read or
a directory listed (a metadata rewrite changes the object's ETag: every other reader's
cache would go stale). Those times live here for the run: a lookup shows the later of
this table's time and the stored one, so a stored change made afterwards (utimes, a write)
wins as soon as it is newer, and an explicit set (utimensat) clears the entry first.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from .meta import Meta, parse_time

DAY_NS = 24 * 3600 * 10**9
FIELDS = ("atime_ns", "mtime_ns", "ctime_ns")


def own_ctime(store, key: str, meta: Meta) -> Meta:
    """`meta` just stored at `key`, with the ctime the store gives it: a file:// store keeps
    no ctime of ours, its local file has its own (the time objmount changed it)."""
    if getattr(store, "keeps_metadata", True):
        return meta
    info = store.head(key)
    ctime = parse_time((info.metadata or {}).get("ctime")) if info is not None else None
    return meta if ctime is None else dataclasses.replace(meta, ctime_ns=ctime)


class RunTimes:
    def __init__(self):
        self._lock = threading.Lock()
        self._times: dict[str, dict[str, int]] = {}   # virtual path -> newer times

    def apply(self, path: str, meta: Meta) -> Meta:
        if path not in self._times:  # the common case, without the lock (a dict read is atomic)
            return meta
        with self._lock:
            newer = self._times.get(path)
            if not newer:
                return meta
            changed = {f: t for f, t in newer.items() if t > getattr(meta, f)}
        return dataclasses.replace(meta, **changed) if changed else meta

    def touch(self, path: str, **times: int) -> None:
        with self._lock:
            entry = self._times.setdefault(path, {})
            for field, t in times.items():
                if t > entry.get(field, t - 1):
                    entry[field] = t

    def entries_changed(self, directory: str) -> None:
        """An entry was created in or removed from `directory`: its mtime and ctime are now."""
        now = time.time_ns()
        self.touch(directory, mtime_ns=now, ctime_ns=now)

    def changed(self, path: str) -> None:
        """`path` itself changed without a rewrite (a rename of a directory): ctime now."""
        self.touch(path, ctime_ns=time.time_ns())

    def accessed(self, path: str, times: dict[str, int]) -> bool:
        """A read of a file or a listing of a directory (`times`: its atime_ns, mtime_ns,
        ctime_ns as known): atime as the kernel's `relatime` sets it — when it is not after
        mtime or ctime, or is a day old (what most local filesystems show). Returns whether
        another read now would leave it as it is (until mtime or ctime change)."""
        with self._lock:
            newer = self._times.get(path) or {}
            atime, mtime, ctime = (max(times[f], newer.get(f, times[f])) for f in FIELDS)
        now = time.time_ns()
        if atime <= mtime or atime <= ctime or now - atime >= DAY_NS:
            self.touch(path, atime_ns=now)
            atime = now
        return atime > mtime and atime > ctime

    def forget(self, path: str) -> None:
        """`path` is gone, or its times were just stored (they win from now on)."""
        with self._lock:
            self._times.pop(path, None)

    def moved(self, old: str, new: str, below: bool = False) -> None:
        """A rename: the times of `old` (and with `below`, a directory's, of everything
        below it) go with it."""
        with self._lock:
            self._times.pop(new, None)
            paths = [p for p in self._times if p.startswith(old + "/")] if below else []
            for path in [old, *paths]:
                if path in self._times:
                    self._times[new + path[len(old):]] = self._times.pop(path)
