"""One small module per syscall family; importing them fills the registry."""

from . import attrs, changes, dirs, exec, fds, io, open, special, xattrs  # noqa: F401
from .registry import HANDLERS, local_pass, syscall_filter

__all__ = ["HANDLERS", "local_pass", "syscall_filter"]
