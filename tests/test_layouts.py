"""objmount/handlers/registry.py: every path syscall declares where its paths are, the
declared indexes are the kernel's, and handlers take their paths from that table only."""

from __future__ import annotations

import re
from pathlib import Path

import objmount.handlers  # noqa: F401  (fills the registry)
from objmount.handlers import registry
from tracer import NR

HANDLERS_DIR = Path(__file__).resolve().parents[1] / "objmount" / "handlers"


def test_every_registered_path_syscall_has_a_layout():
    assert set(registry.PATH_ARGS) == {NR[name] for name in registry.PATH_LAYOUTS}
    for nr, layout in registry.PATH_ARGS.items():
        assert nr in registry.HANDLERS and nr in registry.ALWAYS
        assert layout, nr
        for path_index, dirfd_index in layout:
            assert 0 <= path_index < 6 and path_index != dirfd_index
            assert dirfd_index is None or 0 <= dirfd_index < 6


# The kernel's argument order (fs/namei.c, fs/open.c, fs/stat.c: SYSCALL_DEFINEs).
KERNEL_ORDER = {
    # openat(int dfd, const char *filename, int flags, umode_t mode)
    "openat": ((1, 0),),
    # open(const char *filename, int flags, umode_t mode)
    "open": ((0, None),),
    # renameat2(int olddfd, const char *oldname, int newdfd, const char *newname, unsigned flags)
    "renameat2": ((1, 0), (3, 2)),
    "renameat": ((1, 0), (3, 2)),
    # rename(const char *oldname, const char *newname)
    "rename": ((0, None), (1, None)),
    # linkat(int olddfd, const char *oldname, int newdfd, const char *newname, int flags)
    "linkat": ((1, 0), (3, 2)),
    # symlinkat(const char *oldname, int newdfd, const char *newname): oldname is the
    # link's contents, only a string, never classified
    "symlinkat": ((2, 1),),
    # symlink(const char *oldname, const char *newname): likewise
    "symlink": ((1, None),),
    # readlinkat(int dfd, const char *pathname, char *buf, int bufsiz)
    "readlinkat": ((1, 0),),
    # statx(int dfd, const char *filename, unsigned flags, unsigned mask, struct statx *buffer)
    "statx": ((1, 0),),
    # execveat(int fd, const char *filename, argv, envp, int flags)
    "execveat": ((1, 0),),
    # utimensat(int dfd, const char *filename, struct timespec *utimes, int flags)
    "utimensat": ((1, 0),),
    # mknodat(int dfd, const char *filename, umode_t mode, unsigned dev)
    "mknodat": ((1, 0),),
    # setxattr(const char *pathname, const char *name, const void *value, size_t size, int flags)
    "setxattr": ((0, None),),
}


def test_layouts_follow_the_kernels_argument_order():
    for name, layout in KERNEL_ORDER.items():
        assert registry.PATH_LAYOUTS[name] == layout, name


def test_handlers_take_paths_only_from_the_layout():
    """No handler names a path argument's index itself: Supervisor.path_arg, virtual_arg,
    set_path and friends read it from PATH_LAYOUTS."""
    offenders = []
    for f in sorted(HANDLERS_DIR.glob("*.py")):
        for lineno, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"\bsup\.(target|rewrite)\(|(?<![.\w])(path_index|dirfd_index)\b", line):
                offenders.append(f"{f.name}:{lineno}: {line.strip()}")
    assert offenders == []
