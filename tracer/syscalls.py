"""x86_64 syscall numbers by name (from python-ptrace's table)."""

import importlib.util
import os


def _python_ptrace_table() -> dict[int, str]:
    """python-ptrace's x86_64 table, loaded on its own: importing it the usual way runs
    the package __init__s (its whole debugger, and ldconfig through find_library), about
    20 ms of every objmount start for one dict."""
    package = importlib.util.find_spec("ptrace")
    path = os.path.join(os.path.dirname(package.origin), "syscall", "linux", "x86_64.py")
    spec = importlib.util.spec_from_file_location("_ptrace_syscalls_x86_64", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SYSCALL_NAMES


SYSCALL_NAMES = _python_ptrace_table()

# Newer than python-ptrace 0.9.9's table.
_NEWER = {"fchmodat2": 452, "cachestat": 451, "futex_waitv": 449, "landlock_create_ruleset": 444,
          "mount_setattr": 442, "epoll_pwait2": 441, "process_madvise": 440}

# The table also lists x32 entries (512+) under the same names: keep the x86_64 number.
NR: dict[str, int] = {name: nr for nr, name in sorted(SYSCALL_NAMES.items(), reverse=True)} | _NEWER
_NAMES = {nr: name for name, nr in NR.items()}


def name_of(nr: int) -> str:
    return _NAMES.get(nr, f"syscall_{nr}")
