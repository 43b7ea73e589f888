"""A ptrace + seccomp supervisor library: follows a process tree and lets a handler act
on filtered syscalls. Knows processes and syscalls, nothing of storage."""

from . import prefilter
from .seccomp import SyscallFilter
from .spawn import TraceError, spawn
from .stop import SyscallInterrupted, SyscallStop, TraceeGone
from .tracer import Handler, SignalForwarder, Tracer
from .syscalls import NR, name_of

__all__ = ["Handler", "prefilter", "NR", "SignalForwarder", "SyscallFilter", "SyscallInterrupted", "SyscallStop", "TraceError", "TraceeGone", "Tracer", "name_of", "spawn"]
