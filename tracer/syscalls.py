"""x86_64 syscall numbers by name (from python-ptrace's table)."""

from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES

NR: dict[str, int] = {name: nr for nr, name in SYSCALL_NAMES.items()}


def name_of(nr: int) -> str:
    return SYSCALL_NAMES.get(nr, f"syscall_{nr}")
