"""The ptrace event loop: follows a process tree and hands filtered syscalls to a handler.

Everything here is about processes and syscalls; what a syscall means is the handler's
business. Resumption is always PTRACE_CONT (the seccomp filter decides what stops), except
while a handler runs a syscall to its exit or injects one. Signals met meanwhile are held
back and queued again when the handler is done (see stop.py).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import queue
import select
import signal
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from . import kernel
from .syscalls import name_of
from .quickloop import EXEC, FULL, GONE, KNOWN, SPECIAL, QuickLoop
from .stop import RESTARTS, ScratchArea, SyscallInterrupted, SyscallStop, TraceeGone, _step, restore_args

log = logging.getLogger("tracer")

SYS_clone = 56
SYS_fork = 57
SYS_vfork = 58
SYS_clone3 = 435
CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_FILES = 0x400
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000

OPTIONS = (
    kernel.PTRACE_O_TRACESYSGOOD
    | kernel.PTRACE_O_TRACEFORK
    | kernel.PTRACE_O_TRACEVFORK
    | kernel.PTRACE_O_TRACECLONE
    | kernel.PTRACE_O_TRACEEXEC
    | kernel.PTRACE_O_TRACESECCOMP
    | kernel.PTRACE_O_EXITKILL
)

_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_SIGRTMIN = 32   # the kernel's: signals from here on queue, lower ones merge
_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


class Handler(Protocol):
    def on_syscall(self, stop: SyscallStop) -> None: ...

    def on_spawn(self, parent_tgid: int, child_tgid: int, flags: int) -> None:
        """A new thread or process; `flags` are its clone flags (CLONE_FILES, CLONE_FS,
        CLONE_THREAD, ...). Called before the child runs."""

    def on_exec(self, tgid: int) -> None:
        """A successful execve: close-on-exec descriptors are gone."""

    def on_exit(self, tgid: int) -> None:
        """The last thread of a thread group is gone (its descriptors are closed)."""


@dataclass
class _Group:
    tids: set[int] = field(default_factory=set)


class _Parked:
    """A thread whose syscall stop a worker thread handles: the statuses waitpid gives
    for it go to the worker, which waits for them (wait_syscall_stop)."""

    __slots__ = ("statuses", "gone", "regs")

    def __init__(self) -> None:
        self.statuses: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.gone: int | None = None   # its exit status, once it is gone
        self.regs: kernel.Regs | None = None   # taken with its last status, a syscall stop's


class _Reply:
    """The answer to a request posted to the tracing thread, waited for by one thread (a
    lock taken at birth and let go once set: lighter than a Future)."""

    __slots__ = ("_done", "value", "error")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.value = None
        self.error: BaseException | None = None

    def set_result(self, value) -> None:
        self.value = value
        self._done.release()

    def set_exception(self, error: BaseException) -> None:
        self.error = error
        self._done.release()

    def result(self):
        self._done.acquire()
        if self.error is not None:
            raise self.error
        return self.value


class Tracer:
    def __init__(self, handler: Handler, quick: "QuickLoop | None" = None):
        self.handler = handler
        # The quick loop (quickloop.py): answers in C the stops that need no decision.
        self._quick = quick
        if quick is not None:
            quick.reset()
        self.main_pid = 0
        self.main_status: int | None = None
        self._tgid_of: dict[int, int] = {}
        self._groups: dict[int, _Group] = {}
        self._early: set[int] = set()    # children whose first stop came before the parent's event
        self._expected: set[int] = set()  # children announced by the parent, first stop not yet seen
        # Signals held back during a handler and sent again with tgkill, per thread:
        # (signo, original siginfo), restored when the kernel delivers them.
        self._requeued: dict[int, list[tuple[int, bytes]]] = {}
        self._me = os.getpid()
        # Per thread group: a scratch area mapped in its address space (SyscallStop.push);
        # a forked child has it at the same address, an exec drops it.
        self.scratch: dict[int, ScratchArea] = {}
        # Threads resumed into a call with rewritten arguments: tid -> (entry registers,
        # thread group, scratch range held), until its exit stop.
        self._awaiting: dict[int, tuple[kernel.Regs, int, tuple[int, int] | None]] = {}
        self._stops = 0   # seccomp stops handled here (see stops)
        self._ending = False   # kill_all: the tree is being killed
        # Parking (see park): threads whose stop a worker owns, and the ptrace requests
        # workers post to the tracing thread (the only thread the kernel takes them from).
        self._parked: dict[int, _Parked] = {}
        self._workers = 0                      # parked stops not finished yet
        self._worker = threading.local()       # .park: the _Parked a worker thread handles
        # (fn, args, reply or None: nobody waits for the answer)
        self._requests: collections.deque[tuple[Callable, tuple, _Reply | None]] = collections.deque()
        # Threads running through a call injected with inject_step: tid -> whether its
        # entry stop was passed (see _passed).
        self._passing: dict[int, bool] = {}
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._sigchld = -1
        self._thread: int | None = None   # the tracing thread (the one in run)
        # What a worker releases while it waits on the tracing thread (the handler's lock).
        self.unlocked: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    # --- the tree ------------------------------------------------------------------
    def traced(self) -> set[int]:
        """Every traced process (thread group), and children whose first stop has
        not been seen yet. Safe to call from another thread (copies of the books)."""
        # the quick loop's: children due, and those born whose birth is not booked yet
        tgid_of = dict(self._tgid_of)
        known = [t for t in self._quick.tids(0xFF) if t not in tgid_of] if self._quick is not None else []
        return set(list(self._groups)) | set(list(self._early)) | set(list(self._expected)) | set(known)

    def kill_all(self) -> int:
        """SIGKILL every traced process, and every child still to show up (its parent may
        die before naming it); returns how many were killed."""
        self._ending = True
        if self._quick is not None:
            self._quick.ending()
        pids = self.traced()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def pass_local_paths(self, roots: list[str], path_args: dict[int, int]) -> None:
        """Let seccomp stops of the calls in `path_args` (nr -> index of the path argument)
        whose path is absolute and lexically outside every root go on without the handler
        (with the quick loop; without it, the handler sees them all)."""
        if self._quick is not None:
            try:
                self._quick.configure(roots, path_args)
            except ValueError as exc:   # too many roots for it: the handler sees them all
                log.debug("local paths not passed by the quick loop: %s", exc)

    def _due(self) -> bool:
        """Children whose first stop is still to come (or to be resumed)."""
        if self._quick is not None:
            return self._quick.pending() > 0
        return bool(self._early or self._expected)

    def _mark(self, tid: int) -> None:
        """Tell the quick loop whether `tid`'s statuses must all come here: a stop a
        worker owns, an injected call on its way, a call awaited to its exit, a signal
        sent again."""
        if self._quick is not None:
            self._quick.set(tid, SPECIAL, tid in self._parked or tid in self._passing
                            or tid in self._awaiting or tid in self._requeued)

    def adopt_root(self, pid: int) -> None:
        """`pid` is stopped in its first SIGSTOP after PTRACE_TRACEME."""
        kernel.setoptions(pid, OPTIONS)
        self.main_pid = pid
        self._add(pid, pid)
        if self._quick is not None:
            self._quick.set(pid, KNOWN)
        kernel.cont(pid)

    def _add(self, tid: int, tgid: int) -> None:
        self._tgid_of[tid] = tgid
        self._groups.setdefault(tgid, _Group()).tids.add(tid)

    def _remove(self, tid: int) -> None:
        tgid = self._tgid_of.pop(tid, None)
        if tgid is None:
            return
        group = self._groups.get(tgid)
        if group is None:
            return
        group.tids.discard(tid)
        if not group.tids:
            del self._groups[tgid]
            self.scratch.pop(tgid, None)
            self._call(self.handler.on_exit, tgid)

    def _call(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.error("internal error in %s: %s: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)

    @property
    def stops(self) -> int:
        """Seccomp stops, the quick loop's included."""
        if self._quick is None:
            return self._stops
        return self._stops + self._quick.counts()[0]["seccomp-passed"]

    def passed(self) -> dict[str, int]:
        """Seccomp stops the quick loop let go without the handler, by syscall name."""
        if self._quick is None:
            return {}
        return {name_of(nr): n for nr, n in self._quick.counts()[1].items()}

    @property
    def alive(self) -> bool:
        return bool(self._tgid_of)

    # --- the loop ------------------------------------------------------------------
    def run(self) -> int:
        """Trace until every tracee is gone; returns the root's wait status.

        While no stop is parked this is a blocking waitpid as ever. While workers own
        stops, the loop waits on two descriptors at once: a signalfd for SIGCHLD (blocked
        here; the caller blocks it before starting other threads, which would otherwise
        take it) and an eventfd workers write when they post a request."""
        self._thread = threading.get_ident()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        self._sigchld = kernel.signalfd({signal.SIGCHLD})
        poller = select.poll()
        poller.register(self._sigchld, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        try:
            while self._tgid_of or self._due() or self._workers:
                if not self._workers:
                    try:
                        got = self._wait(block=True)
                    except ChildProcessError:
                        break
                    if got is not None:
                        self._dispatch(*got)
                    continue
                if not self._drain() and not self._serve():
                    # A SIGCHLD taken by a thread that did not block it would be lost:
                    # look again now and then all the same.
                    poller.poll(500)
            return self.main_status if self.main_status is not None else 0
        finally:
            os.close(self._sigchld)
            self._sigchld = -1
            self._thread = None
            # Left by an error: workers still waiting on this thread get TraceeGone.
            for park in list(self._parked.values()):
                park.gone = signal.SIGKILL
                park.statuses.put(signal.SIGKILL)
            while self._requests:
                _, _, reply = self._requests.popleft()
                if reply is not None:
                    reply.set_exception(TraceeGone(0, signal.SIGKILL))

    def _wait(self, block: bool) -> tuple[int, int, kernel.Regs | None] | None:
        """The next status to dispatch (tid, status, registers if read already); None:
        none now. With the quick loop, the stops it answered are booked here first."""
        if self._quick is None:
            tid, status = os.waitpid(-1, kernel.WALL | (0 if block else os.WNOHANG))
            return (tid, status, None) if tid else None
        try:
            while True:
                got = self._quick.wait(block)
                if got is not FULL:
                    return got
                # Its log full, the quick loop stopped with statuses maybe waiting whose
                # SIGCHLD _drain took already: "none now" would leave run() asleep in poll.
                self._book_quick()
        finally:
            self._book_quick()

    def _book_quick(self) -> None:
        """What the quick loop answered, into the books, in order."""
        for kind, tid, other, value in self._quick.log():
            try:
                if kind == GONE:
                    self._gone(tid, value)
                elif kind == EXEC:
                    self._execd(tid, other)
                else:
                    self._born(tid, other, value)
            except Exception as exc:   # books out of step: say so, keep tracing
                log.error("internal error booking event %d of %d: %s: %s", kind, tid, type(exc).__name__, exc)
                log.debug("traceback", exc_info=True)

    def _drain(self) -> bool:
        """Dispatch every status waiting; True if there was any."""
        try:
            while os.read(self._sigchld, 128 * 8):
                pass
        except BlockingIOError:
            pass
        got = False
        while True:
            try:
                item = self._wait(block=False)
            except ChildProcessError:
                return got
            if item is None:
                return got
            self._dispatch(*item)
            self._serve()
            got = True

    def _serve(self) -> bool:
        """Run the requests workers posted; True if there was any."""
        try:
            os.eventfd_read(self._wake)
        except BlockingIOError:
            pass
        got = False
        while self._requests:
            fn, args, reply = self._requests.popleft()
            got = True
            if reply is None:
                self._call(fn, *args)
                continue
            try:
                reply.set_result(fn(*args))
            except BaseException as exc:
                reply.set_exception(exc)
        return got

    # --- parking -------------------------------------------------------------------
    def park(self, stop: SyscallStop, fn: Callable[[SyscallStop], None],
             submit: Callable[..., object]) -> None:
        """Inside on_syscall, on the tracing thread: `stop` is handled by fn(stop) on
        another thread (`submit(callable, *args)` runs it there), and this thread goes
        on with every other stop. The tracee stays stopped till fn is done; the ptrace
        requests fn makes through `stop` are run here for it (on_tracer)."""
        stop.park = self._parked[stop.tid] = _Parked()
        self._mark(stop.tid)
        stop.parked = True
        self._workers += 1
        submit(self._run_parked, stop, fn)

    def _run_parked(self, stop: SyscallStop, fn: Callable[[SyscallStop], None]) -> None:
        resume = False
        self._worker.park = stop.park
        try:
            resume = self._handle(stop, fn)
        finally:
            self._worker.park = None
            # Nothing to wait for: the worker is free for the next stop at once.
            self.on_tracer(self._finish_parked, stop, resume, wait=False)

    def _finish_parked(self, stop: SyscallStop, resume: bool) -> None:
        """On the tracing thread: resume the tracee and take its statuses back, at once
        (its next stop must not go to the worker)."""
        parked = stop.park
        self._workers -= 1
        if self._parked.get(stop.tid) is parked:
            del self._parked[stop.tid]
            self._mark(stop.tid)
        try:
            if resume and parked.gone is None:
                self._resume(stop)
        finally:
            while not parked.statuses.empty():   # nobody waited for them
                status = parked.statuses.get()
                if parked.gone is None:
                    self._dispatch(stop.tid, status)

    def on_tracer(self, fn: Callable, *args, wait: bool = True):
        """fn(*args) on the tracing thread: directly there, posted from any other (and,
        with wait=False, not waited for: an error is logged there)."""
        if self._thread is None or threading.get_ident() == self._thread:
            return fn(*args)
        if not wait:
            self._requests.append((fn, args, None))
            os.eventfd_write(self._wake, 1)
            return None
        reply = _Reply()
        with self.unlocked():
            self._requests.append((fn, args, reply))
            os.eventfd_write(self._wake, 1)
            return reply.result()

    def on_tracer_for(self, stop: SyscallStop, fn: Callable, *args):
        """on_tracer for a request about `stop`'s thread, which raises TraceeGone once
        that thread is known gone (its id may be another thread's by then)."""
        return self._on_tracer_about(stop.park, stop.tid, fn, args)

    def inject_step(self, stop: SyscallStop, regs: kernel.Regs) -> None:
        """At a stop of `stop`'s thread: set `regs` (a syscall to inject, rip on the
        `syscall` instruction) and run the thread into that call and through it, in one
        request: its entry stop, and the seccomp stop the call may make, are passed on the
        tracing thread, and the next syscall stop a wait sees is the call's exit."""
        self.on_tracer_for(stop, self._inject_step, stop.tid, regs)

    def _inject_step(self, tid: int, regs: kernel.Regs) -> None:
        self._passing[tid] = False
        self._mark(tid)
        try:
            _step(tid, regs)
        except BaseException:
            del self._passing[tid]
            self._mark(tid)
            raise

    def _passed(self, tid: int, status: int) -> bool:
        """On the tracing thread: a stop on the way into an injected call (inject_step),
        resumed here; False for any other status, which goes where it always went."""
        entered = self._passing.get(tid)
        if entered is None:
            return False
        if not os.WIFSTOPPED(status):
            del self._passing[tid]
            self._mark(tid)
            return False
        sig = os.WSTOPSIG(status)
        if sig == _SYSCALL_TRAP:
            if entered:   # its exit
                del self._passing[tid]
                self._mark(tid)
                return False
            self._passing[tid] = True
        elif not (entered and sig == signal.SIGTRAP and status >> 16 == kernel.PTRACE_EVENT_SECCOMP):
            return False   # a signal on the way: the waiting handler holds it back
        try:
            kernel.syscall(tid)
        except kernel.PtraceError as exc:
            if exc.errno != errno.ESRCH:
                raise
            # killed meanwhile: its exit status comes next
        return True

    def regs_at_stop(self, stop: SyscallStop) -> kernel.Regs:
        """The registers of `stop`'s thread at the syscall stop just waited for."""
        park = stop.park
        if park is not None and park.regs is not None and threading.get_ident() != self._thread:
            regs, park.regs = park.regs, None
            return regs
        return self.on_tracer_for(stop, kernel.getregs, stop.tid)

    @staticmethod
    def _if_there(park: _Parked, tid: int, fn: Callable, args: tuple):
        if park.gone is not None:
            raise TraceeGone(tid, park.gone)
        return fn(*args)

    def _dispatch(self, tid: int, status: int, regs: kernel.Regs | None = None) -> None:
        parked = self._parked.get(tid)
        if parked is not None:   # its worker waits for it (an exit is booked here first)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                parked.gone = status
                del self._parked[tid]
                self._on_gone(tid, status)
                parked.statuses.put(status)
                return
            if os.WIFSTOPPED(status) and status >> 16 == kernel.PTRACE_EVENT_EXEC:
                # Another thread's execve took this id (the leader's): the parked thread
                # is gone; the event is the new program's.
                parked.gone = signal.SIGKILL
                del self._parked[tid]
                self._passing.pop(tid, None)
                self._mark(tid)
                parked.statuses.put(signal.SIGKILL)
            elif self._passed(tid, status):
                return
            else:
                parked.regs = None
                if os.WSTOPSIG(status) == _SYSCALL_TRAP:   # the worker reads them next
                    try:
                        parked.regs = kernel.getregs(tid)
                    except kernel.PtraceError:
                        pass
                parked.statuses.put(status)
                return
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self._on_gone(tid, status)
            return
        if not os.WIFSTOPPED(status):
            return
        sig = os.WSTOPSIG(status)
        event = status >> 16
        try:
            if tid not in self._tgid_of:
                self._on_first_stop(tid)
            elif sig == signal.SIGTRAP and event:
                self._on_event(tid, event, regs)
            elif sig == _SYSCALL_TRAP:
                self._on_exit_stop(tid)
            else:
                self._on_signal(tid, sig)
        except kernel.PtraceError as exc:
            if exc.errno != errno.ESRCH:
                raise
            # killed under our feet; its exit status arrives by waitpid

    def _on_first_stop(self, tid: int) -> None:
        """A new child's first stop: the SIGSTOP of its auto-attach, which it must never
        receive (its parent would be told it stopped: CLD_STOPPED, waitpid(WUNTRACED))."""
        if tid in self._expected:
            self._expected.discard(tid)
            kernel.cont(tid)
        elif self._ending:
            os.kill(tid, signal.SIGKILL)   # its parent may be gone before naming it
        else:
            self._early.add(tid)  # resumed when the parent's fork event names it

    def _on_signal(self, tid: int, sig: int) -> None:
        if tid in self._expected:
            # Announced by its parent's event, so already in the books: this is its first
            # stop all the same, not a signal to deliver.
            self._on_first_stop(tid)
            return
        if sig in _STOP_SIGNALS and not kernel.has_siginfo(tid):
            # A group-stop. Without PTRACE_SEIZE, a tracee left here would never see
            # SIGCONT, so job control stops are not honoured (documented).
            kernel.cont(tid)
            return
        requeued = self._requeued.get(tid)
        if requeued:
            self._restore_siginfo(tid, sig, requeued)
        kernel.cont(tid, sig)

    def await_exit(self, stop: SyscallStop, pushed: tuple[int, int] | None) -> None:
        """`stop` is resumed into its syscall with PTRACE_SYSCALL: handle its exit stop."""
        self._awaiting[stop.tid] = (stop.entry_regs, stop.tgid, pushed)
        self._mark(stop.tid)
        area = self.scratch.get(stop.tgid)
        if area is not None and pushed is not None:
            area.inflight[stop.tid] = pushed

    def _on_exit_stop(self, tid: int) -> None:
        awaited = self._awaiting.pop(tid, None)
        if awaited is not None:
            self._mark(tid)
            entry, tgid, pushed = awaited
            area = self.scratch.get(tgid)
            if area is not None:
                area.inflight.pop(tid, None)
            regs = kernel.getregs(tid)
            rax = regs.rax - (1 << 64) if regs.rax & (1 << 63) else regs.rax
            if rax in RESTARTS:   # restarted after the signal: with the program's arguments
                kernel.setregs(tid, restore_args(regs, entry))
        kernel.cont(tid)

    def requeue_signal(self, tgid: int, tid: int, sig: int, info: bytes) -> None:
        """Send a held-back signal to the thread again; its delivery gets `info` back."""
        self._requeued.setdefault(tid, []).append((sig, info))
        self._mark(tid)   # before it is sent: its delivery must come here
        kernel.tgkill(tgid, tid, sig)

    def _restore_siginfo(self, tid: int, sig: int, requeued: list[tuple[int, bytes]]) -> None:
        for i, (held_sig, info) in enumerate(requeued):
            if held_sig == sig:
                break
        else:
            return
        current = kernel.getsiginfo(tid)
        ours = current is not None and kernel.siginfo_sender(current) == (kernel.SI_TKILL, self._me)
        if not ours and sig >= _SIGRTMIN:
            return  # another instance of a queued signal; ours comes later
        # A standard signal already pending merges with ours: either way it is delivered once.
        del requeued[i]
        if not requeued:
            del self._requeued[tid]
            self._mark(tid)
        if ours:
            kernel.setsiginfo(tid, info)

    def _on_event(self, tid: int, event: int, regs: kernel.Regs | None = None) -> None:
        if event == kernel.PTRACE_EVENT_SECCOMP:
            self._on_seccomp(tid, regs)
            return
        self._bookkeep_event(tid, event)
        kernel.cont(tid)

    def _bookkeep_event(self, tid: int, event: int) -> None:
        if event in (kernel.PTRACE_EVENT_FORK, kernel.PTRACE_EVENT_VFORK, kernel.PTRACE_EVENT_CLONE):
            child = kernel.geteventmsg(tid)
            self._born(tid, child, self._clone_flags(tid))
            if self._quick is not None:
                self._quick.announce(child)
            elif child in self._early:
                self._early.discard(child)
                kernel.cont(child)
            else:
                self._expected.add(child)
        elif event == kernel.PTRACE_EVENT_EXEC:
            former = kernel.geteventmsg(tid)
            if former != tid and self._quick is not None:
                self._quick.forget(former)
            self._execd(tid, former)

    def _born(self, tid: int, child: int, flags: int) -> None:
        """The books of a fork, vfork or clone event (`flags`: the clone flags)."""
        parent_tgid = self._tgid_of[tid]
        child_tgid = parent_tgid if flags & CLONE_THREAD else child
        self._add(child, child_tgid)
        if child_tgid != parent_tgid and parent_tgid in self.scratch:
            self.scratch[child_tgid] = self.scratch[parent_tgid]
        self._call(self.handler.on_spawn, parent_tgid, child_tgid, flags)

    def _execd(self, tid: int, former: int) -> None:
        """The books of an exec event (`former`: the id of the thread that called it)."""
        tgid = self._tgid_of[tid]
        if former != tid:
            # a non-leader thread exec'd: it now carries the leader's id
            self._tgid_of.pop(former, None)
            self._groups[tgid].tids.discard(former)
        self.scratch.pop(tgid, None)
        self._call(self.handler.on_exec, tgid)

    def _clone_flags(self, tid: int) -> int:
        """The clone flags of the call that made the event. A fork event is not always a
        fork: clone/clone3 with SIGCHLD as exit signal and no CLONE_THREAD/CLONE_VFORK
        is reported as one, and may share the descriptor table (CLONE_FILES) or the cwd
        (CLONE_FS) all the same: the registers say which call it was."""
        regs = kernel.getregs(tid)
        nr = regs.orig_rax
        if nr == SYS_clone:
            return regs.rdi
        if nr == SYS_clone3:
            return int.from_bytes(kernel.vm_read(tid, regs.rdi, 8), "little")
        if nr == SYS_vfork:
            return CLONE_VM | CLONE_VFORK
        return 0   # fork

    def _on_gone(self, tid: int, status: int) -> None:
        if self._quick is not None:
            self._quick.forget(tid)
        self._gone(tid, status)

    def _gone(self, tid: int, status: int) -> None:
        """The books of a thread's end (the quick loop forgot it already, or is told)."""
        self._early.discard(tid)
        self._passing.pop(tid, None)
        self._requeued.pop(tid, None)
        self._awaiting.pop(tid, None)
        tgid = self._tgid_of.get(tid)
        if tgid is not None and (area := self.scratch.get(tgid)) is not None:
            area.inflight.pop(tid, None)   # an awaited call's, or a handler's that ended with it
        self._expected.discard(tid)
        if tid == self.main_pid:
            self.main_status = status
        self._remove(tid)

    def _on_seccomp(self, tid: int, regs: kernel.Regs | None = None) -> None:
        self._stops += 1
        if regs is None:
            regs = kernel.getregs(tid)
        stop = SyscallStop(self, tid, self._tgid_of[tid], regs)
        if self._handle(stop, self.handler.on_syscall) and not stop.parked:
            self._resume(stop)

    def _handle(self, stop: SyscallStop, fn: Callable[[SyscallStop], None]) -> bool:
        """fn(stop) with the errors a handler may end with; False if the tracee is gone."""
        try:
            fn(stop)
        except TraceeGone:
            return False
        except SyscallInterrupted:
            pass  # the kernel delivers the signal and restarts the call (or fails it)
        except kernel.BadAddress:
            if stop.at_exit:
                stop.set_result(-errno.EFAULT)
            else:
                stop.fail(errno.EFAULT)
        except Exception as exc:
            if stop.park is not None and stop.park.gone is not None:
                return False   # killed while a worker handled it: nothing to answer
            # One line for the user (the program's stderr is the same terminal), the
            # traceback only in the debug log; the program gets EIO.
            log.error("internal error on syscall %d in pid %d: %s: %s", stop.nr, stop.tid, type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)
            if not stop.at_exit and not stop._skipped:
                stop.fail(errno.EIO)
        return True

    def _resume(self, stop: SyscallStop) -> None:
        try:
            stop._resume()
        except TraceeGone:
            return
        except kernel.PtraceError as exc:
            if exc.errno != errno.ESRCH:
                raise

    # --- waiting inside a handler ----------------------------------------------------
    def wait_syscall_stop(self, tid: int, held: list[tuple[int, bytes]], seccomp: bool = False) -> bool:
        """Wait for `tid`'s next syscall entry/exit stop (or, with `seccomp`, its seccomp
        stop: True, or an exit stop: False), keeping the books on events met on the way.
        A signal about to be delivered is held back (appended to `held`, to be queued
        again by the caller once the handler is done): delivered now, its handler would
        run on registers set up for an injected call. Raises TraceeGone if the tracee
        dies first."""
        while True:
            status = self._next_status(tid)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                raise TraceeGone(tid, status)
            sig = os.WSTOPSIG(status)
            if sig == _SYSCALL_TRAP:
                return False
            event = status >> 16
            if sig == signal.SIGTRAP and event:
                if event == kernel.PTRACE_EVENT_SECCOMP:
                    if seccomp:
                        return True
                else:
                    self._for(tid, self._bookkeep_event, tid, event)
            else:
                info = self._for(tid, kernel.getsiginfo, tid)
                if info is not None:   # None: a group-stop, not honoured (see _on_signal)
                    if sig >= _SIGRTMIN or all(s != sig for s, _ in held):
                        held.append((sig, info))   # a standard signal pending twice is one
            self._for(tid, kernel.syscall, tid)

    def _next_status(self, tid: int) -> int:
        """`tid`'s next wait status: from waitpid on the tracing thread, from the
        statuses routed to a worker otherwise (an exit is booked already)."""
        if self._thread is None or threading.get_ident() == self._thread:
            while True:
                _, status = os.waitpid(tid, kernel.WALL)
                if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                    self._on_gone(tid, status)
                    return status
                if not self._passed(tid, status):
                    return status
        with self.unlocked():
            return self._worker.park.statuses.get()

    def _for(self, tid: int, fn: Callable, *args):
        """on_tracer_for, for the thread whose stop this worker handles (or none)."""
        return self._on_tracer_about(getattr(self._worker, "park", None), tid, fn, args)

    def _on_tracer_about(self, park: _Parked | None, tid: int, fn: Callable, args: tuple):
        if park is None:
            return self.on_tracer(fn, *args)
        return self.on_tracer(self._if_there, park, tid, fn, args)


class SignalForwarder:
    """Forwards SIGINT/SIGTERM/SIGHUP sent to the supervisor to the traced root.

    Signals stay blocked in the supervisor; a thread takes them with sigwaitinfo so it can
    tell a terminal's signal (already delivered to the whole foreground group, the tracee
    included) from one sent to the supervisor alone by kill(1)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        self.target = 0
        self._thread = threading.Thread(target=self._loop, name="signal-forwarder", daemon=True)

    def start(self, target: int) -> None:
        self.target = target
        self._thread.start()

    def _loop(self) -> None:
        while True:
            info = signal.sigwaitinfo(self.SIGNALS)
            if info.si_code == 0x80:  # SI_KERNEL: from the terminal, the tracee got it too
                continue
            try:
                os.kill(self.target, info.si_signo)
            except ProcessLookupError:
                return
