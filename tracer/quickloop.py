"""The quick loop (prefilter/quickloop.c): the ptrace stops that need no decision,
answered in C on the tracing thread, the GIL let go; the rest come back to tracer.py.

A fork+exec of a small program makes ~8 ptrace stops (its parent's fork event, its first
stop, its exec event, the loader's opens, the SIGCHLD its parent gets); in the Python loop
each cost 10-40 us of Python on top of the switches, and the traced program waited for
all of it. Here they cost a few microseconds, and what Python must know of them (who was
born, exec'd, is gone) is read from a log before Python handles anything else.

Built with the system C compiler like the preloaded library, into the same directory;
without a compiler the Python loop does everything, as before.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from . import kernel, prefilter

SOURCE = Path(__file__).with_name("prefilter") / "quickloop.c"
CFLAGS = ["-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror"]

# The C loop's flags per thread (quickloop.c).
KNOWN, SPECIAL, EXPECTED, EARLY = 1, 2, 4, 8
# Log entry kinds: born (fork/vfork/clone event numbers), exec'd, gone.
GONE, EXEC = 0, 4
# Its counters (quickloop.c): every status it reaped by kind, then the seccomp stops it
# let go and the statuses it gave to Python.
COUNTS = ("seccomp", "fork", "vfork", "clone", "exec", "other-event", "syscall", "signal", "exit",
          "seccomp-passed", "returned")


class Entry(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("tid", ctypes.c_int), ("other", ctypes.c_int), ("pad", ctypes.c_int),
                ("value", ctypes.c_ulong)]


class Stop(ctypes.Structure):
    _fields_ = [("tid", ctypes.c_int), ("status", ctypes.c_int), ("has_regs", ctypes.c_int), ("pad", ctypes.c_int),
                ("regs", kernel.Regs)]


_LOG = 512
FULL = object()   # wait(): the log is full (quickloop.c's om_wait returned 2)


class QuickLoop:
    """One per process (the library's state is global): the C side of a Tracer."""

    def __init__(self, library: Path):
        lib = ctypes.CDLL(str(library), use_errno=True)
        self._wait = lib.om_wait
        self._wait.argtypes = [ctypes.c_int, ctypes.POINTER(Stop)]
        self._take = lib.om_take_log
        self._take.argtypes = [ctypes.POINTER(Entry), ctypes.c_int]
        self._flags = lib.om_flags
        self._flags.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
        self._list = lib.om_list
        self._list.argtypes = [ctypes.c_uint, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._announce = lib.om_announce
        self._configure = lib.om_configure
        self._configure.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
        self._counts = lib.om_counts
        self.pending = lib.om_pending
        self.reset = lib.om_reset
        self.ending = lib.om_ending
        self._stop = Stop()
        self._stop_ref = ctypes.byref(self._stop)
        self._log = (Entry * _LOG)()

    def configure(self, roots: list[str], path_args: dict[int, int]) -> None:
        """Seccomp stops of the syscalls in `path_args` (nr -> index of its path argument)
        are resumed here when that path is absolute and plainly outside every root."""
        blob = b"".join(os.fsencode(r) + b"\0" for r in roots) + b"\0"
        table = bytearray(512)
        for nr, index in path_args.items():
            if 0 <= nr < 512:
                table[nr] = index + 1
        if not self._configure(blob, len(blob), bytes(table)):
            raise ValueError("too many roots for the quick loop")

    def wait(self, block: bool) -> tuple[int, int, kernel.Regs | None] | None:
        """The next status for Python: (tid, status, a seccomp stop's registers or None);
        None when there is none now (or the log is to be read before blocking); FULL when
        the log is full: read it and wait again at once (statuses may be waiting);
        ChildProcessError when nothing is left to wait for."""
        got = self._wait(1 if block else 0, self._stop_ref)
        if got == 1:
            s = self._stop
            return s.tid, s.status, kernel.Regs.from_buffer_copy(s.regs) if s.has_regs else None
        if got == 2:
            return FULL
        if got < 0:
            raise ChildProcessError(ctypes.get_errno(), "no child processes")
        return None

    def log(self) -> list[tuple[int, int, int, int]]:
        """What the loop answered that the books must show, in order: (kind, tid, other,
        value), emptied."""
        out = []
        while True:
            n = self._take(self._log, _LOG)
            out.extend((e.kind, e.tid, e.other, e.value) for e in self._log[:n])
            if n < _LOG:
                return out

    def set(self, tid: int, flags: int, on: bool = True) -> None:
        self._flags(tid, flags if on else 0, 0 if on else flags)

    def forget(self, tid: int) -> None:
        self._flags(tid, 0, 0xFF)

    def tids(self, mask: int) -> list[int]:
        n = self._list(mask, None, 0)
        buf = (ctypes.c_int * max(n, 1))()
        n = min(n, self._list(mask, buf, n))
        return list(buf[:n])

    def announce(self, child: int) -> None:
        """A child named by its parent's event (handled in Python): resumed now if its
        first stop came first, else let through when it comes."""
        self._announce(child)

    def counts(self) -> tuple[dict[str, int], dict[int, int]]:
        """Stops seen here by kind, and the seccomp stops passed by syscall number."""
        kinds = (ctypes.c_ulong * len(COUNTS))()
        by_nr = (ctypes.c_ulong * 512)()
        self._counts(kinds, by_nr)
        return dict(zip(COUNTS, kinds)), {nr: n for nr, n in enumerate(by_nr) if n}


_loaded: QuickLoop | None = None


def load(cache_dir: Path) -> QuickLoop:
    """The quick loop, built into `cache_dir` (prefilter.PrefilterUnavailable when it
    cannot be). One per process."""
    global _loaded
    if _loaded is None:
        _loaded = QuickLoop(prefilter.build_library(SOURCE, CFLAGS, cache_dir))
    return _loaded
