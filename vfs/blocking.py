"""Waits on the network or on another thread's work.

A program that runs vfs calls from several threads under a lock of its own (objmount's
supervisor: handlers on worker threads, one at a time but for their waits) sets the hook,
a context manager factory that lets go of its lock for the duration of a wait. Every
place a vfs call may wait long says so with `with waiting():`, holding no vfs lock.
"""

from __future__ import annotations

import contextlib
from typing import Callable

_hook: Callable[[], contextlib.AbstractContextManager] | None = None


def set_hook(hook: Callable[[], contextlib.AbstractContextManager] | None) -> None:
    global _hook
    _hook = hook


def waiting() -> contextlib.AbstractContextManager:
    hook = _hook
    return hook() if hook is not None else contextlib.nullcontext()


@contextlib.contextmanager
def acquired(lock):
    """Hold a vfs lock that is held across waits: waited for like them."""
    with waiting():
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
