"""What lets handlers run on worker threads while the tracing thread serves other stops.

- `BigLock`: the supervisor's state and the vfs were written for one thread; a handler
  holds this lock while it runs, and lets go of it only while it waits: on the network
  (vfs.blocking), on the tracing thread (a ptrace request), or for its turn.
- `Turns`: two operations on one object (a path, an open file) never interleave. Each
  operation takes a ticket on its keys when it is dispatched, and runs once it is first
  in line on all of them, so operations on one object run in the order their syscalls
  stopped (the order they were handed to the pool in). An exclusive ticket (namespace changes, exec's close-on-exec) waits for every
  earlier one and holds back every later one. A ticket only ever waits for earlier
  tickets or running ones, and the earlier were handed to the (FIFO) pool first, so the
  oldest waiting one is running.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import Hashable, Iterable


class BigLock:
    """A lock that knows its holder (released around waits only by the thread holding it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking, timeout):
            self._owner = threading.get_ident()
            return True
        return False

    def release(self) -> None:
        self._owner = None
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    def held(self) -> bool:
        return self._owner == threading.get_ident()

    _is_owned = held   # for threading.Condition

    @contextlib.contextmanager
    def unlocked(self):
        """Let go of the lock for a wait, if this thread holds it."""
        if not self.held():
            yield
            return
        self.release()
        try:
            yield
        finally:
            self.acquire()


class Ticket:
    __slots__ = ("keys", "exclusive", "inner", "seq", "granted")

    def __init__(self, keys: frozenset, exclusive: bool, inner: bool, seq: int):
        self.keys = keys
        self.exclusive = exclusive
        self.inner = inner   # taken inside an operation: not in line behind exclusive ones
        self.seq = seq
        self.granted = False


def _enter(line: deque, ticket: Ticket) -> None:
    """Into line in the order of dispatch (seq), but never ahead of a running ticket."""
    i = len(line)
    while i > 0 and not line[i - 1].granted and line[i - 1].seq > ticket.seq:
        i -= 1
    line.insert(i, ticket)


class Turns:
    def __init__(self, lock: BigLock):
        self.cond = threading.Condition(lock)
        self._lines: dict[Hashable, deque[Ticket]] = {}
        self._all: deque[Ticket] = deque()   # every ticket, for exclusive ones
        self._seq = 0

    def number(self) -> int:
        """A place in the order of dispatch, given when an operation is handed to the
        pool; its ticket (taken then, or by the worker when the lock was busy) keeps it."""
        self._seq += 1
        return self._seq

    def take(self, keys: Iterable[Hashable], seq: int, exclusive: bool = False, inner: bool = False) -> Ticket:
        """A place in line on `keys` (with the lock held)."""
        ticket = Ticket(frozenset(keys), exclusive, inner, seq)
        for key in ticket.keys:
            _enter(self._lines.setdefault(key, deque()), ticket)
        if not inner:
            _enter(self._all, ticket)
        return ticket

    def idle(self, keys) -> bool:
        """Nothing in line on these keys (and no exclusive operation under way)."""
        return not any(key in self._lines for key in keys) and not any(t.exclusive for t in self._all)

    def _first(self, ticket: Ticket) -> bool:
        if any(self._lines[key][0] is not ticket for key in ticket.keys):
            return False
        if ticket.inner:
            return True
        if ticket.exclusive:
            return self._all[0] is ticket
        for other in self._all:
            if other is ticket:
                return True
            if other.exclusive:
                return False
        return True

    def wait(self, ticket: Ticket) -> None:
        """Until `ticket` is first in line (with the lock held; let go of meanwhile)."""
        while not self._first(ticket):
            self.cond.wait()
        ticket.granted = True

    def done(self, ticket: Ticket) -> None:
        for key in ticket.keys:
            line = self._lines[key]
            line.remove(ticket)
            if not line:
                del self._lines[key]
        if not ticket.inner:
            self._all.remove(ticket)
        self.cond.notify_all()

    @contextlib.contextmanager
    def granted(self, ticket: Ticket):
        """Wait for `ticket` (with the lock held), and give up its place when done."""
        try:
            self.wait(ticket)
            yield
        finally:
            self.done(ticket)

    def turn(self, *keys: Hashable):
        """Take a ticket and wait for it now (with the lock held): for a resource met in
        the middle of an operation, never held while waiting for another ticket."""
        return self.granted(self.take(keys, 1 << 62, inner=True))
