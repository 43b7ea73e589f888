"""x86_64 syscall numbers by name (from python-ptrace's table)."""

from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES

# Newer than python-ptrace 0.9.9's table.
_NEWER = {"fchmodat2": 452, "cachestat": 451, "futex_waitv": 449, "landlock_create_ruleset": 444,
          "mount_setattr": 442, "epoll_pwait2": 441, "process_madvise": 440}

# The table also lists x32 entries (512+) under the same names: keep the x86_64 number.
NR: dict[str, int] = {name: nr for nr, name in sorted(SYSCALL_NAMES.items(), reverse=True)} | _NEWER
_NAMES = {nr: name for name, nr in NR.items()}


def name_of(nr: int) -> str:
    return _NAMES.get(nr, f"syscall_{nr}")
