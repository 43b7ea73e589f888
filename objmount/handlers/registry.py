"""Which handler answers which syscall, and from that, which syscalls must stop.

A handler registers as a path syscall (always stops: BPF cannot read strings) or as a
descriptor syscall with the indexes of its descriptor arguments (stops only when one of
them is a virtual descriptor, kept at or above the supervisor's descriptor base). The
seccomp filter is derived from this table, so a handler and its trap cannot drift apart.
"""

from __future__ import annotations

from typing import Callable

from tracer import NR, SyscallFilter

HandlerFn = Callable[..., None]

HANDLERS: dict[int, HandlerFn] = {}
ALWAYS: set[int] = set()
FD_ARGS: dict[int, tuple[int, ...]] = {}


def path_syscall(*names: str):
    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            HANDLERS[NR[name]] = fn
            ALWAYS.add(NR[name])
        return fn
    return register


# Syscalls without a path that must stop every time (fchdir, getcwd, close_range).
always_syscall = path_syscall


def fd_syscall(**fd_arg_indexes: tuple[int, ...]):
    def register(fn: HandlerFn) -> HandlerFn:
        for name, indexes in fd_arg_indexes.items():
            HANDLERS[NR[name]] = fn
            FD_ARGS[NR[name]] = indexes
        return fn
    return register


def syscall_filter(fd_base: int) -> SyscallFilter:
    return SyscallFilter(always=set(ALWAYS), fd_args=dict(FD_ARGS), fd_base=fd_base)
