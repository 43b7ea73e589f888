"""Namespace and metadata changes on virtual paths: refused with EROFS until the write
path lands. Local paths pass untouched."""

from __future__ import annotations

import errno

from .registry import fd_syscall, path_syscall

# syscall name -> indexes of (dirfd, path) pairs it names; dirfd None for plain paths
_PATH_ARGS: dict[str, tuple[tuple[int | None, int], ...]] = {
    "truncate": ((None, 0),),
    "mkdir": ((None, 0),), "mkdirat": ((0, 1),),
    "rmdir": ((None, 0),),
    "unlink": ((None, 0),), "unlinkat": ((0, 1),),
    "rename": ((None, 0), (None, 1)), "renameat": ((0, 1), (2, 3)), "renameat2": ((0, 1), (2, 3)),
    "link": ((None, 0), (None, 1)), "linkat": ((0, 1), (2, 3)),
    "symlink": ((None, 1),), "symlinkat": ((1, 2),),
    "chmod": ((None, 0),), "fchmodat": ((0, 1),), "fchmodat2": ((0, 1),),
    "chown": ((None, 0),), "lchown": ((None, 0),), "fchownat": ((0, 1),),
    "utime": ((None, 0),), "utimes": ((None, 0),), "futimesat": ((0, 1),), "utimensat": ((0, 1),),
    "mknod": ((None, 0),), "mknodat": ((0, 1),),
    "setxattr": ((None, 0),), "lsetxattr": ((None, 0),),
    "removexattr": ((None, 0),), "lremovexattr": ((None, 0),),
}


@path_syscall(*_PATH_ARGS)
def on_modify(sup, stop) -> None:
    from tracer import name_of
    rewrites = []
    for dirfd_index, path_index in _PATH_ARGS[name_of(stop.nr)]:
        if stop.arg(path_index) == 0:
            # utimensat(fd, NULL, ...) acts on the descriptor itself
            if dirfd_index is not None and sup.desc(stop, stop.sarg(dirfd_index)) is not None:
                stop.fail(errno.EROFS)
                return
            continue
        target = sup.target(stop, path_index, dirfd_index)
        if target is None:
            continue
        if target.virtual:
            stop.fail(errno.EROFS)
            return
        rewrites.append((path_index, target.path))
    for path_index, path in rewrites:
        sup.rewrite(stop, path_index, path)


@fd_syscall(ftruncate=(0,), fallocate=(0,), fchmod=(0,), fchown=(0,), fsetxattr=(0,), fremovexattr=(0,))
def on_fmodify(sup, stop) -> None:
    if sup.desc(stop, stop.sarg(0)) is not None:
        stop.fail(errno.EROFS)
