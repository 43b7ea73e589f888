"""The Linux (x86_64) numbers handlers test, by the names the man pages use: syscall
numbers (`stop.nr == SYS.openat`, from tracer's table) and the flag bits of the calls."""

from __future__ import annotations

from types import SimpleNamespace

from tracer import NR

# Every syscall number by name: SYS.open, SYS.renameat2, ... (a misspelt name is an
# AttributeError, not a silently wrong number).
SYS = SimpleNamespace(**NR)

# *at() calls
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200          # unlinkat
AT_EACCESS = 0x200            # faccessat (same bit, another call)
AT_SYMLINK_FOLLOW = 0x400     # linkat
AT_EMPTY_PATH = 0x1000

RENAME_NOREPLACE = 1          # renameat2
RWF_APPEND = 0x10             # pwritev2
POSIX_FADV_WILLNEED = 3       # fadvise64
