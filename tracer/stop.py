"""A stopped syscall and the actions a handler may take on it.

Life of a stop: the tracee enters a filtered syscall and stops (seccomp event). A handler
may read arguments and memory, rewrite arguments, `skip()` the syscall with a result of
its own, or `run()` it to completion and then look at or change the result and `inject()`
further syscalls in the tracee before it returns to user code.

Signals: while the supervisor drives the tracee (run, inject), a signal the kernel is
about to deliver is held back and queued again once the handler is done, so the program
meets it after the call, as the kernel would have delivered it, and never on registers
the supervisor set up for an injected call. A call the kernel means to restart
(-ERESTARTSYS and friends at its exit) is left to the kernel with the program's own
arguments: `run()` raises SyscallInterrupted and the handler must not act on it.
"""

from __future__ import annotations

import os
import signal
import struct
from typing import TYPE_CHECKING

from . import kernel

if TYPE_CHECKING:
    from .tracer import Tracer

_SYS_seccomp = 317
_SYS_mmap = 9
_SYS_munmap = 11
_PROT_READ, _PROT_WRITE = 1, 2
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
SCRATCH_SIZE = 16384   # two paths of PATH_MAX and then some
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
_REDZONE = 128
_PAGE = 4096
PATH_MAX = 4096
# Results a syscall exit shows when a signal interrupted it: the kernel turns them into
# EINTR or a restart when it delivers the signal. Never a result the program sees.
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
RESTARTS = {-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK}
_EXECS = {59, 322}   # execve, execveat: a successful one has no registers to go back to


class TraceeGone(Exception):
    """The tracee died (SIGKILL, exit of its thread group) while we were acting on it."""

    def __init__(self, tid: int, status: int):
        super().__init__(f"tracee {tid} is gone")
        self.tid = tid
        self.status = status


class SyscallInterrupted(Exception):
    """A signal interrupted the syscall being run: the kernel restarts it (or fails it
    with EINTR) when it delivers the signal. Its arguments are the program's again."""


def _signed(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


class SyscallStop:
    def __init__(self, tracer: "Tracer", tid: int, tgid: int, regs: kernel.Regs):
        self.tracer = tracer
        self.tid = tid
        self.tgid = tgid
        self.regs = regs
        self.entry_regs = kernel.Regs.from_buffer_copy(regs)
        self.nr: int = regs.orig_rax
        self.at_exit = False
        self.interrupted = False
        self._dirty = False
        self._rewrote = False
        self._skipped = False
        # Signals held back while we drove the tracee: (signo, siginfo), queued again
        # when the handler is done.
        self.held_signals: list[tuple[int, bytes]] = []
        self._pushed: tuple[int, int] | None = None   # the scratch range this stop's pushes use
        self._stack = 0          # where the next push below the stack ends (0: none yet)
        self.parked = False      # handled on a worker thread (Tracer.park)
        self.park = None         # then, the tracer's record of it
        self.memo: dict = {}     # the handler's notes on this stop's arguments (forgotten when they change)

    def _ptrace(self, fn, *args):
        """A ptrace request about this stop: made by the tracing thread (the kernel takes
        them from it alone), whichever thread handles the stop."""
        return self.tracer.on_tracer_for(self, fn, *args)

    # --- arguments -----------------------------------------------------------------
    @property
    def args(self) -> tuple[int, ...]:
        r = self.regs
        return (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9)

    def arg(self, i: int) -> int:
        return getattr(self.regs, _ARG_REGS[i])

    def sarg(self, i: int) -> int:
        """Argument i as a signed 32-bit int (descriptors, AT_FDCWD)."""
        v = getattr(self.regs, _ARG_REGS[i]) & 0xFFFFFFFF
        return v - (1 << 32) if v & 0x80000000 else v

    def set_arg(self, i: int, value: int) -> None:
        setattr(self.regs, _ARG_REGS[i], value & 0xFFFFFFFFFFFFFFFF)
        self._dirty = True
        self._rewrote = True
        self.memo.clear()

    def become(self, nr: int, *args: int) -> None:
        """At the entry: make the tracee run syscall `nr` (with these first arguments)
        instead of the one it asked for; run() then stops at its exit, where further
        calls can be injected and the result the program sees set."""
        assert not self.at_exit and not self._skipped
        self.regs.orig_rax = nr
        for i, value in enumerate(args):
            setattr(self.regs, _ARG_REGS[i], value & 0xFFFFFFFFFFFFFFFF)
        self._dirty = True
        self._rewrote = True
        self.memo.clear()

    def give_back_args(self) -> None:
        """At the exit of a call made with become(): the argument registers the program
        entered with, as the kernel leaves them after a syscall (only the result differs)."""
        assert self.at_exit
        for name in _ARG_REGS:
            setattr(self.regs, name, getattr(self.entry_regs, name))
        self._dirty = True

    def enter_again(self, **args: int) -> None:
        """At the exit: make the tracee enter the syscall it asked for once more, from its
        entry registers with these arguments ("rdi"...) changed, as a new call (which
        stops again). For calls that must be made by the program after work done at the
        exit of a stand-in call (see become)."""
        assert self.at_exit and not self.interrupted
        regs = kernel.Regs.from_buffer_copy(self.entry_regs)
        regs.rip -= 2   # back onto the `syscall` instruction
        regs.rax = regs.orig_rax
        for name, value in args.items():
            setattr(regs, name, value & 0xFFFFFFFFFFFFFFFF)
        self.regs = regs
        self._dirty = True

    # --- memory --------------------------------------------------------------------
    def read(self, addr: int, size: int) -> bytes:
        return kernel.vm_read(self.tid, addr, size)

    def read_in(self, addr: int, size: int) -> bytes:
        """Read the call's input structure (times, iovecs, an open_how, a value): memory
        the program cannot read makes the call fail with EFAULT (kernel.BadAddress)."""
        try:
            data = kernel.vm_read(self.tid, addr, size) if size else b""
        except OSError as exc:
            raise kernel.BadAddress(14, f"cannot read {size} bytes at {addr:#x}: {exc.strerror}") from None
        if len(data) < size:
            raise kernel.BadAddress(14, f"cannot read {size} bytes at {addr:#x}")
        return data

    def read_cstring(self, addr: int, limit: int = PATH_MAX) -> bytes:
        """Read a NUL-terminated string, one page at a time so an unmapped page after it
        cannot fail the read."""
        out = bytearray()
        while len(out) < limit:
            chunk = min(_PAGE - (addr % _PAGE), limit - len(out))
            data = kernel.vm_read(self.tid, addr, chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                out += data[:nul]
                return bytes(out)
            out += data
            if len(data) < chunk:
                raise OSError(14, "string runs into unmapped memory")
            addr += chunk
        raise OSError(36, "string longer than PATH_MAX")

    def write(self, addr: int, data: bytes) -> None:
        kernel.vm_write(self.tid, addr, data)

    def write_out(self, addr: int, data: bytes) -> None:
        """Fill the call's output buffer (a stat, a listing, a value): memory the program
        cannot write makes the call fail with EFAULT (kernel.BadAddress)."""
        kernel.vm_write(self.tid, addr, data, force=False)

    def push(self, data: bytes) -> int:
        """Copy data into the tracee for this syscall and return its address; valid
        until the syscall returns. It goes into a scratch area the tracer maps once per
        address space (see _scratch_area), not below the stack pointer: a Go goroutine's
        stack may be a few KiB with another goroutine's right below it. Where no area
        can be mapped, below the stack pointer past the red zone."""
        need = (len(data) + 15) & ~15
        area = None if self.at_exit else self._scratch_area()
        at = area.alloc(self.tid, need) if area is not None else None
        if at is None:
            if not self._stack:
                self._stack = self.regs.rsp - _REDZONE - 256
            self._stack = (self._stack - len(data)) & ~15
            at = self._stack
        else:
            lo, hi = self._pushed or (at, at + need)
            self._pushed = (min(lo, at), max(hi, at + need))
            # Reserved until the call returns: another thread of the process may be
            # handled at the same time (parked stops) and push too.
            area.inflight[self.tid] = self._pushed
        kernel.vm_write(self.tid, at, data)
        return at

    def _scratch_area(self) -> "ScratchArea | None":
        """The tracee's scratch area, mapped on first need: this syscall is turned into
        an mmap and then made to enter again from the same registers, which brings it
        back to a seccomp stop exactly like this one. None if that cannot be done."""
        area = self.tracer.scratch.get(self.tgid)
        if area is not None:
            return area
        mm = kernel.Regs.from_buffer_copy(self.regs)
        mm.orig_rax = _SYS_mmap
        mm.rdi, mm.rsi, mm.rdx, mm.r10, mm.r8, mm.r9 = (
            0, SCRATCH_SIZE, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, 0xFFFFFFFFFFFFFFFF, 0)
        self._ptrace(_step, self.tid, mm)
        self.tracer.wait_syscall_stop(self.tid, self.held_signals)   # the mmap's exit
        addr = _signed(self._ptrace(kernel.getregs, self.tid).rax)
        again = kernel.Regs.from_buffer_copy(self.regs)
        again.rip -= 2   # back onto the `syscall` instruction
        again.rax = again.orig_rax
        self._ptrace(_step, self.tid, again)
        self.tracer.wait_syscall_stop(self.tid, self.held_signals)   # its entry
        self._ptrace(kernel.syscall, self.tid)
        if not self.tracer.wait_syscall_stop(self.tid, self.held_signals, seccomp=True):
            raise RuntimeError(f"syscall {self.nr} in {self.tid} did not stop again after mapping a scratch area")
        self.regs = self._ptrace(kernel.getregs, self.tid)
        self._dirty = False
        if addr < 0:
            return None
        area = self.tracer.scratch[self.tgid] = ScratchArea(addr)
        return area

    # --- actions -------------------------------------------------------------------
    def skip(self, result: int) -> None:
        """Do not run the syscall; the tracee sees `result` (a -errno for errors)."""
        self.regs.orig_rax = 0xFFFFFFFFFFFFFFFF
        self.regs.rax = result & 0xFFFFFFFFFFFFFFFF
        self._dirty = True
        self._skipped = True

    @property
    def skipped(self) -> bool:
        return self._skipped

    def fail(self, err: int) -> None:
        self.skip(-err)

    def run(self) -> int:
        """Run the syscall (with any rewritten arguments) and stop at its exit; return its
        result as a signed value. Raises SyscallInterrupted when a signal interrupted it."""
        assert not self.at_exit and not self._skipped
        self._ptrace(_step, self.tid, self.regs if self._dirty else None)
        self._dirty = False
        self.tracer.wait_syscall_stop(self.tid, self.held_signals)
        self.regs = self.tracer.regs_at_stop(self)
        self.at_exit = True
        if self.result in RESTARTS:
            # The kernel restarts it from the registers it has now, after the signal
            # handler, which may overwrite what we pushed below the stack: give the
            # program's own arguments back. The restarted call stops here again.
            self.regs = restore_args(self.regs, self.entry_regs)
            self._dirty = True
            self.interrupted = True
            raise SyscallInterrupted(f"syscall {self.nr} in {self.tid} interrupted")
        return self.result

    @property
    def result(self) -> int:
        return _signed(self.regs.rax)

    def set_result(self, value: int) -> None:
        assert self.at_exit and not self.interrupted
        self.regs.rax = value & 0xFFFFFFFFFFFFFFFF
        self._dirty = True

    def inject(self, nr: int, *args: int) -> int:
        """At a syscall exit: make the tracee run syscall `nr` now, then put the original
        return state back. Returns the injected syscall's signed result."""
        assert self.at_exit and not self.interrupted
        saved = kernel.Regs.from_buffer_copy(self.regs)
        regs = kernel.Regs.from_buffer_copy(self.regs)
        regs.rip -= 2  # back onto the `syscall` instruction
        regs.rax = regs.orig_rax = nr
        for i, value in enumerate(args):
            setattr(regs, _ARG_REGS[i], value & 0xFFFFFFFFFFFFFFFF)
        while True:
            self.tracer.inject_step(self, regs)   # through its entry (one request)
            self.tracer.wait_syscall_stop(self.tid, self.held_signals)  # exit
            out = _signed(self.tracer.regs_at_stop(self).rax)
            if out not in RESTARTS:
                break
            # Interrupted by a signal that is now held back: our call, so run it again.
        self.regs = saved
        self._dirty = True   # written back with the next request (each is one round trip for a parked stop)
        return out

    def install_filter(self, program: bytes) -> int:
        """At a syscall exit: add a seccomp filter to the tracee's whole thread group
        (SECCOMP_FILTER_FLAG_TSYNC). Returns 0 or a negative errno (or the id of a thread
        that could not be synchronized). The program goes into a page mapped for the
        occasion, not below the stack: a Go goroutine's stack may be 4 KiB with
        something else right below it."""
        fprog_at = (len(program) + 15) & ~15
        size = fprog_at + 16
        addr = self.inject(_SYS_mmap, 0, size, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS,
                           0xFFFFFFFFFFFFFFFF, 0)
        if addr < 0:
            return addr
        try:
            self.write(addr, program)
            self.write(addr + fprog_at, struct.pack("<HxxxxxxQ", len(program) // 8, addr))
            return self.inject(_SYS_seccomp, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC, addr + fprog_at)
        finally:
            self.inject(_SYS_munmap, addr, size)

    def _resume(self) -> None:
        if self._dirty:
            self._ptrace(kernel.setregs, self.tid, self.regs)
        for sig, info in self.held_signals:
            self.tracer.requeue_signal(self.tgid, self.tid, sig, info)
        self.held_signals = []
        if self._rewrote and not self.at_exit and not self._skipped and self.nr not in _EXECS:
            # Rewritten arguments: if a signal interrupts the call, the kernel restarts it
            # from these registers after the handler, which may have written over a push
            # below the stack. The tracer takes the exit stop when it comes (the call may
            # block: the supervisor does not wait for it) and gives the program's own
            # arguments back before a restart; the scratch range stays reserved till then.
            self.tracer.await_exit(self, self._pushed)
            self._ptrace(kernel.syscall, self.tid)
            return
        if self._pushed is not None and (area := self.tracer.scratch.get(self.tgid)) is not None:
            area.inflight.pop(self.tid, None)
        self._ptrace(kernel.cont, self.tid)

    def __repr__(self) -> str:
        return f"<SyscallStop tid={self.tid} nr={self.nr} exit={self.at_exit}>"


class ScratchArea:
    """A tracee's scratch area: pushes are carved from it downwards, wrapping around,
    and never over the range of a call still in flight in another thread."""

    def __init__(self, addr: int):
        self.addr = addr
        self.cursor = addr + SCRATCH_SIZE
        self.inflight: dict[int, tuple[int, int]] = {}   # tid -> [lo, hi)

    def alloc(self, tid: int, need: int) -> int | None:
        if need > SCRATCH_SIZE // 4:
            return None
        for _ in range(len(self.inflight) + 2):
            at = self.cursor - need
            if at < self.addr:
                at = self.addr + SCRATCH_SIZE - need
            # (a copy: the tracing thread may drop a range while a worker allocates)
            clash = [lo for t, (lo, hi) in list(self.inflight.items()) if t != tid and lo < at + need and at < hi]
            if not clash:
                self.cursor = at
                return at
            self.cursor = min(clash)
        return None


def _step(tid: int, regs: kernel.Regs | None) -> None:
    """Set the registers (if any) and run to the next syscall stop: one request."""
    if regs is not None:
        kernel.setregs(tid, regs)
    kernel.syscall(tid)


def restore_args(regs: kernel.Regs, entry: kernel.Regs) -> kernel.Regs:
    """`regs` at an exit the kernel will restart, with the arguments of `entry`."""
    out = kernel.Regs.from_buffer_copy(entry)
    out.rax, out.rip = regs.rax, regs.rip
    return out


def describe_status(status: int) -> str:
    if os.WIFEXITED(status):
        return f"exited {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {status:#x}"
