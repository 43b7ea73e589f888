"""Which handler answers which syscall, and from that, which syscalls must stop.

A handler registers as a path syscall (always stops: BPF cannot read strings) or as a
descriptor syscall with the indexes of its descriptor arguments (stops only when one of
them is at or above the descriptor base, or a number the process's extra filters watch:
a virtual descriptor's). The seccomp filters are derived from this table, so a handler
and its trap cannot drift apart.
"""

from __future__ import annotations

from typing import Callable

from tracer import NR, SyscallFilter

HandlerFn = Callable[..., None]

HANDLERS: dict[int, HandlerFn] = {}
ALWAYS: set[int] = set()
FD_ARGS: dict[int, tuple[int, ...]] = {}
LOCAL_FD_FLAG: dict[int, tuple[int, int, int]] = {}


def path_syscall(*names: str):
    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            HANDLERS[NR[name]] = fn
            ALWAYS.add(NR[name])
        return fn
    return register


# Syscalls without a path that must stop every time (fchdir, close_range).
always_syscall = path_syscall


def on_demand_syscall(*names: str):
    """Handled, but not in the main filter: a process that needs it gets an extra filter
    (Supervisor.watch_syscalls)."""
    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            HANDLERS[NR[name]] = fn
        return fn
    return register


def fd_syscall(**fd_arg_indexes: tuple[int, ...]):
    def register(fn: HandlerFn) -> HandlerFn:
        for name, indexes in fd_arg_indexes.items():
            HANDLERS[NR[name]] = fn
            FD_ARGS[NR[name]] = indexes
        return fn
    return register


def no_stop_on_local_fd(name: str, dirfd: int, flags: int, flag: int) -> None:
    """`name` with `flag` set acts on its dirfd when that is a local descriptor: such
    calls need not stop (see SyscallFilter.local_fd_flag)."""
    LOCAL_FD_FLAG[NR[name]] = (dirfd, flags, flag)


def syscall_filter(fd_base: int) -> SyscallFilter:
    return SyscallFilter(always=set(ALWAYS), fd_args=dict(FD_ARGS), fd_base=fd_base,
                         local_fd_flag=dict(LOCAL_FD_FLAG))
