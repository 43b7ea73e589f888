"""The dynamic loader's constant paths: the calls every dynamically linked program makes on
them at its start pass the filter without a stop.

ld.so begins every exec with `access("/etc/ld.so.preload")` and `openat("/etc/ld.so.cache")`:
two of the ~8 stops of a fork+exec of a small program, a third of `./configure`'s. Their
path is a string constant in ld.so's read-only data, at a fixed distance from the syscall
instruction that passes it, wherever ASLR puts ld.so. A seccomp filter can test exactly
that (`SyscallFilter.constant_paths`: the instruction's offset in its page, and the
instruction address minus the path argument, both in the same 4 GiB) and let such a call
through: its path is known without being read. Every other call of those syscalls, the
loader's opens of libraries included (their names are built in buffers), stops as before.
A false match would need another program to pass, from an instruction at the same page
offset, a pointer at exactly that distance below or above it: a constant of its own image
at ld.so's layout, not a path anyone computed.

The distances are measured once per loader, by tracing `/bin/true` under a filter that
stops those two syscalls only, and kept in a small file named by the loader's identity
(beside the fast-path library). A program with another loader matches no rule and stops
as before.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from . import kernel
from .seccomp import SyscallFilter

log = logging.getLogger(__name__)

LOADER = "/lib64/ld-linux-x86-64.so.2"   # PT_INTERP of x86_64 glibc programs
PROGRAM = "/bin/true"
NR_access, NR_openat = 21, 257
# The constant paths asked for, with the index of the path argument of each syscall.
CONSTANTS = {(NR_access, "/etc/ld.so.preload"): 0, (NR_openat, "/etc/ld.so.cache"): 1}


@dataclass(frozen=True)
class Site:
    """A syscall `nr` whose argument `index` is the constant `path`, made from an instruction
    at `page_offset` in its page, `distance` bytes above the string (negative: below)."""
    nr: int
    index: int
    distance: int
    page_offset: int
    path: str


def sites(cache_dir: Path, loader: str = LOADER, program: str = PROGRAM) -> list[Site]:
    """The loader's constant-path sites, measured once and kept in `cache_dir`; [] when they
    cannot be measured (no such loader, ptrace refused, a loader that makes no such call)."""
    try:
        st = os.stat(loader)
    except OSError:
        return []
    # named by the loader's identity: a new ld.so (an upgrade) is measured again
    kept = Path(cache_dir) / f"loader-sites-{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
    try:
        return [_parse(line) for line in kept.read_text().splitlines()]
    except (OSError, ValueError):
        pass
    try:
        found = measure(program)
    except OSError as exc:   # kept as "no rules": a probe that fails is not tried at every start
        log.debug("loader sites not measured: %s", exc)
        found = []
    try:
        tmp = kept.with_name(f"{kept.name}.{os.getpid()}")
        tmp.write_text("".join(f"{s.nr} {s.index} {s.distance} {s.page_offset} {s.path}\n" for s in found))
        os.replace(tmp, kept)
    except OSError as exc:
        log.debug("loader sites not kept in %s: %s", kept, exc)
    return found


def _parse(line: str) -> Site:
    nr, index, distance, page_offset, path = line.split(" ", 4)
    return Site(int(nr), int(index), int(distance), int(page_offset), path)


def _wait(pid: int, deadline: float) -> int:
    """waitpid with a deadline: a probe must never hold up a run's start."""
    while True:
        got, status = os.waitpid(pid, kernel.WALL | os.WNOHANG)
        if got:
            return status
        if time.monotonic() > deadline:
            raise OSError(0, "the probe took too long")
        time.sleep(0.0002)


def measure(program: str = PROGRAM, timeout: float = 2.0) -> list[Site]:
    """Trace `program` (empty environment) and note where its loader asks for CONSTANTS."""
    nrs = {nr for nr, _ in CONSTANTS}
    filt = SyscallFilter(always=nrs).program()
    pid = os.fork()
    if pid == 0:   # child: only exec or _exit from here
        try:
            kernel.traceme()
            os.kill(os.getpid(), signal.SIGSTOP)
            kernel.install_seccomp_filter(filt)
            os.execve(program, [program], {})
        finally:
            os._exit(127)
    found: dict[tuple[int, str], Site] = {}
    reaped = False
    deadline = time.monotonic() + timeout
    try:
        status = _wait(pid, deadline)
        if not os.WIFSTOPPED(status):
            raise OSError(0, f"{program} did not start traced (wait status {status:#x})")
        kernel.setoptions(pid, kernel.PTRACE_O_TRACESECCOMP | kernel.PTRACE_O_EXITKILL | kernel.PTRACE_O_TRACEEXEC)
        kernel.cont(pid)
        while True:
            status = _wait(pid, deadline)
            if not os.WIFSTOPPED(status):
                reaped = True
                break
            if status >> 16 == kernel.PTRACE_EVENT_SECCOMP:
                regs = kernel.getregs(pid)
                nr = regs.orig_rax
                for (want_nr, path), index in CONSTANTS.items():
                    if nr != want_nr:
                        continue
                    addr = (regs.rdi, regs.rsi)[index]
                    if kernel.vm_read(pid, addr, len(path) + 1) == path.encode() + b"\0":
                        found.setdefault((nr, path), Site(nr, index, _signed(regs.rip - addr),
                                                          regs.rip & 0xFFF, path))
                kernel.cont(pid)
            elif status >> 16:
                kernel.cont(pid)   # the exec event
            else:
                sig = os.WSTOPSIG(status)
                kernel.cont(pid, 0 if sig in (signal.SIGSTOP, signal.SIGTRAP) else sig)
    finally:
        if not reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, kernel.WALL)
    # Only a distance that fits the filter's one 32-bit comparison (same 4 GiB) is of use.
    return [s for s in found.values() if -(1 << 31) <= s.distance < (1 << 31)]


def _signed(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value
