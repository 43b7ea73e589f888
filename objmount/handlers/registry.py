"""Which handler answers which syscall, and from that, which syscalls must stop.

A handler registers as a path syscall (always stops: BPF cannot read strings) or as a
descriptor syscall with the indexes of its descriptor arguments (stops only when one of
them is at or above the descriptor base, or a number the process's extra filters watch:
a virtual descriptor's). The seccomp filters are derived from this table, so a handler
and its trap cannot drift apart.
"""

from __future__ import annotations

from typing import Callable

from tracer import NR, SyscallFilter

HandlerFn = Callable[..., None]

# Where a path syscall's paths are: (path argument, its dirfd argument or None) for each
# path it names. The supervisor classifies them before the handler runs, to know whether
# the call touches anything virtual (and which objects) without a thread hand-off.
PATH_LAYOUTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "open": ((0, None),), "creat": ((0, None),), "openat": ((1, 0),), "openat2": ((1, 0),),
    "stat": ((0, None),), "lstat": ((0, None),), "newfstatat": ((1, 0),), "statx": ((1, 0),),
    "access": ((0, None),), "faccessat": ((1, 0),), "faccessat2": ((1, 0),),
    "readlink": ((0, None),), "readlinkat": ((1, 0),), "statfs": ((0, None),),
    "mkdir": ((0, None),), "mkdirat": ((1, 0),), "rmdir": ((0, None),),
    "unlink": ((0, None),), "unlinkat": ((1, 0),),
    "symlink": ((1, None),), "symlinkat": ((2, 1),),   # the target is only a string
    "rename": ((0, None), (1, None)), "renameat": ((1, 0), (3, 2)), "renameat2": ((1, 0), (3, 2)),
    "link": ((0, None), (1, None)), "linkat": ((1, 0), (3, 2)),
    "chmod": ((0, None),), "fchmodat": ((1, 0),), "fchmodat2": ((1, 0),),
    "chown": ((0, None),), "lchown": ((0, None),), "fchownat": ((1, 0),),
    "utimensat": ((1, 0),), "utimes": ((0, None),), "futimesat": ((1, 0),), "utime": ((0, None),),
    "truncate": ((0, None),), "chdir": ((0, None),), "execve": ((0, None),), "execveat": ((1, 0),),
    "mknod": ((0, None),), "mknodat": ((1, 0),),
    "getxattr": ((0, None),), "lgetxattr": ((0, None),), "listxattr": ((0, None),),
    "llistxattr": ((0, None),), "setxattr": ((0, None),), "lsetxattr": ((0, None),),
    "removexattr": ((0, None),), "lremovexattr": ((0, None),),
}
# Calls that change names (not only an object): handled one at a time, alone, since a
# listing or lookup in flight elsewhere would otherwise see half of the change.
NAME_CHANGES = {"mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "symlink", "symlinkat",
                "rename", "renameat", "renameat2", "link", "linkat", "mknod", "mknodat", "creat"}
# Descriptor calls on virtual descriptors that are answered from what the supervisor holds
# (never the network): handled on the tracing thread when no other operation on the same
# object is under way. fstat of a directory may look it up: not one of them.
FROM_STATE = {"fstat", "fstatfs", "lseek", "fcntl"}
# Reads and read hints on a virtual descriptor: from what is held too when every byte of
# the file is local (nothing to fetch); and close, when it cannot upload (a read-only
# description of an object that exists). Supervisor._from_state.
READS = {"read", "pread64", "readv", "preadv", "preadv2", "readahead", "fadvise64"}
# Path calls that only look (stat family, access, readlink, xattrs): answered from what
# the namespace knows when it knows every name on the way fresh (Supervisor._known).
LOOKS = {"stat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2", "readlink",
         "readlinkat", "getxattr", "lgetxattr", "listxattr", "llistxattr", "statfs"}
# Path calls whose handler does nothing for a local path: with the quick loop
# (tracer/quickloop.py) their stops on an absolute, lexically local path never reach
# the handler. (The loader's opens, libc-internal opens, static programs' calls.)
LOCAL_PASS = ("open", "openat", "creat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat",
              "faccessat2", "readlink", "readlinkat", "statfs")
# Opens that change names with O_CREAT: where their flags are.
OPEN_FLAGS = {"open": 1, "openat": 2}

# The flags argument of *at calls and the bits each knows: the kernel refuses any other
# with EINVAL before it looks at a path (an unlinkat with a stray bit must not unlink).
_AT = {"nofollow": 0x100, "follow": 0x400, "removedir": 0x200, "eaccess": 0x200, "noauto": 0x800,
       "empty": 0x1000, "sync_type": 0x6000}
FLAG_MASKS: dict[str, tuple[int, int]] = {
    "faccessat2": (3, _AT["eaccess"] | _AT["nofollow"] | _AT["empty"]),
    "fchmodat2": (3, _AT["nofollow"] | _AT["empty"]),
    "fchownat": (4, _AT["nofollow"] | _AT["empty"]),
    "utimensat": (3, _AT["nofollow"] | _AT["empty"]),
    "newfstatat": (3, _AT["nofollow"] | _AT["noauto"] | _AT["empty"] | _AT["sync_type"]),
    "statx": (2, _AT["nofollow"] | _AT["noauto"] | _AT["empty"] | _AT["sync_type"]),
    "linkat": (4, _AT["follow"] | _AT["empty"]),
    "unlinkat": (2, _AT["removedir"]),
    "renameat2": (4, 0x1 | 0x2 | 0x4),   # RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT
    "execveat": (4, _AT["nofollow"] | _AT["empty"]),
}
FLAG_CHECKS: dict[int, tuple[int, int]] = {}


def bad_flags(stop) -> bool:
    """Whether the kernel would refuse this call's flags (or statx's mask) with EINVAL."""
    check = FLAG_CHECKS.get(stop.nr)
    if check is None:
        return False
    flags = stop.arg(check[0]) & 0xFFFFFFFF
    if flags & ~check[1]:
        return True
    if stop.nr == NR["statx"]:   # both sync types at once; a reserved mask bit
        return flags & _AT["sync_type"] == _AT["sync_type"] or bool(stop.arg(3) & 0x80000000)
    return False


HANDLERS: dict[int, HandlerFn] = {}
PATH_ARGS: dict[int, tuple[tuple[int, int | None], ...]] = {}
ALWAYS: set[int] = set()
FD_ARGS: dict[int, tuple[int, ...]] = {}
ALWAYS_FD_ARGS: dict[int, tuple[int, ...]] = {}   # always-stopping calls' descriptor arguments
LOCAL_FD_FLAG: dict[int, tuple[int, int, int]] = {}
ARG_VALUES: dict[int, tuple[int, frozenset[int]]] = {}


def path_syscall(*names: str):
    """Handlers of calls that name paths (each name has its PATH_LAYOUTS entry)."""
    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            HANDLERS[NR[name]] = fn
            ALWAYS.add(NR[name])
            PATH_ARGS[NR[name]] = PATH_LAYOUTS[name]
            if name in FLAG_MASKS:
                FLAG_CHECKS[NR[name]] = FLAG_MASKS[name]
        return fn
    return register


def always_syscall(*names: str, fds: tuple[int, ...] = ()):
    """Syscalls without a path that must stop every time (fchdir, close_range, bind);
    `fds`: their descriptor arguments, if any (the supervisor knows the others)."""
    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            HANDLERS[NR[name]] = fn
            ALWAYS.add(NR[name])
            if fds:
                ALWAYS_FD_ARGS[NR[name]] = fds
        return fn
    return register


def on_demand_syscall(*names: str):
    """Handled, but not in the main filter: a process that needs it gets an extra filter
    (Supervisor.watch_syscalls)."""
    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            HANDLERS[NR[name]] = fn
        return fn
    return register


def fd_syscall(**fd_arg_indexes: tuple[int, ...]):
    def register(fn: HandlerFn) -> HandlerFn:
        for name, indexes in fd_arg_indexes.items():
            HANDLERS[NR[name]] = fn
            FD_ARGS[NR[name]] = indexes
        return fn
    return register


def value_syscall(name: str, index: int, values: set[int]):
    """Handlers of a call that stops whenever argument `index` is one of `values`, whatever
    its descriptors (see SyscallFilter.arg_values)."""
    def register(fn: HandlerFn) -> HandlerFn:
        HANDLERS[NR[name]] = fn
        ARG_VALUES[NR[name]] = (index, frozenset(values))
        return fn
    return register


def no_stop_on_local_fd(name: str, dirfd: int, flags: int, flag: int) -> None:
    """`name` with `flag` set acts on its dirfd when that is a local descriptor: such
    calls need not stop (see SyscallFilter.local_fd_flag)."""
    LOCAL_FD_FLAG[NR[name]] = (dirfd, flags, flag)


def syscall_filter(fd_base: int) -> SyscallFilter:
    return SyscallFilter(always=set(ALWAYS), fd_args=dict(FD_ARGS), fd_base=fd_base,
                         local_fd_flag=dict(LOCAL_FD_FLAG), arg_values=dict(ARG_VALUES))


def local_pass() -> dict[int, int]:
    """LOCAL_PASS as the tracer takes it: syscall number -> index of its path argument."""
    return {NR[name]: PATH_LAYOUTS[name][0][0] for name in LOCAL_PASS}
