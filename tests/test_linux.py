"""objmount/linux.py: the syscall names handlers use exist, with x86_64's numbers."""

from __future__ import annotations

import re
from pathlib import Path

from objmount.linux import SYS

OBJMOUNT = Path(__file__).resolve().parents[1] / "objmount"


def test_every_syscall_name_the_handlers_use_exists():
    used = {name for f in OBJMOUNT.rglob("*.py") for name in re.findall(r"\bSYS\.(\w+)", f.read_text())}
    assert len(used) > 30
    assert [name for name in sorted(used) if not hasattr(SYS, name)] == []


def test_numbers_are_x86_64s():
    assert (SYS.open, SYS.openat, SYS.creat, SYS.openat2, SYS.rename, SYS.renameat2, SYS.linkat) == \
        (2, 257, 85, 437, 82, 316, 265)
    assert (SYS.fchmodat2, SYS.setxattr, SYS.fremovexattr, SYS.mknod, SYS.utime, SYS.pwritev2) == \
        (452, 188, 199, 133, 132, 328)
