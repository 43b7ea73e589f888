"""Per-process state the kernel cannot keep for us: which descriptors are virtual, and
the current directory when it is a virtual one.

The sharing follows the kernel's: threads (CLONE_FILES / CLONE_FS) share one table and one
cwd; fork copies them; dup'ed descriptors share one open file description.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("objmount.process")


@dataclass(eq=False)
class OpenDescription:
    """A virtual open file description: shared by dup'ed descriptors and across fork."""

    path: str                   # virtual path it was opened at
    is_dir: bool
    removed: bool = False       # a directory removed since (rmdir): nothing below it, no listing
    file: Any = None            # vfs.OpenFile for regular files
    meta: Any = None            # vfs.Meta
    entries: list | None = None  # directory snapshot: [(name, Meta)] including '.' and '..'
    dir_pos: int = 0            # index into entries for getdents
    append: bool = False        # O_APPEND: writes land at the end of the file
    path_only: bool = False     # O_PATH: names the file; fchmod, fchown, futimens say EBADF
    noatime: bool = False       # O_NOATIME (open or F_SETFL): reads leave atime alone
    refs: int = 0               # descriptors and mappings that hold it
    maps: int = 0               # of which mappings
    tables: int = 0             # descriptor tables that hold it (processes sharing its position)
    last_writer: int | None = None   # the thread that last wrote at its position
    contended: bool = False     # two threads have written at its position (handlers/io.py)

    def retain(self) -> "OpenDescription":
        self.refs += 1
        return self

    def release(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            self.close()

    def close(self) -> None:
        """The last descriptor is gone: upload what was written (see handlers/fds.py for
        the close() that reports a failure to the program)."""
        if self.file is not None:
            file, self.file = self.file, None
            try:
                file.close()
            except Exception as exc:  # the data stays in the cache, journaled
                log.error("%s", getattr(exc, "message", None) or f"{self.path}: {exc}")


@dataclass
class FdEntry:
    desc: OpenDescription
    cloexec: bool


@dataclass(eq=False)
class FdTable:
    fds: dict[int, FdEntry] = field(default_factory=dict)
    users: int = 0
    # The socket the supervisor hands descriptors over (objmount/handover.py): its
    # number in this table and the supervisor's end. Inherited by fork, gone at exec
    # (close-on-exec).
    channel: Any = None
    held: dict[int, int] = field(default_factory=dict)   # id(description) -> its numbers here

    def get(self, fd: int) -> OpenDescription | None:
        entry = self.fds.get(fd)
        return entry.desc if entry else None

    def _hold(self, desc: OpenDescription) -> None:
        n = self.held.get(id(desc), 0)
        if n == 0:
            desc.tables += 1
        self.held[id(desc)] = n + 1

    def _unhold(self, desc: OpenDescription) -> None:
        n = self.held.pop(id(desc), 1) - 1
        if n > 0:
            self.held[id(desc)] = n
        else:
            desc.tables -= 1

    def install(self, fd: int, desc: OpenDescription, cloexec: bool) -> None:
        self.remove(fd)
        self.fds[fd] = FdEntry(desc.retain(), cloexec)
        self._hold(desc)

    def remove(self, fd: int) -> None:
        entry = self.fds.pop(fd, None)
        if entry:
            self._unhold(entry.desc)
            entry.desc.release()

    def copy(self) -> "FdTable":
        table = FdTable({fd: FdEntry(e.desc.retain(), e.cloexec) for fd, e in self.fds.items()},
                        channel=self.channel)
        for e in table.fds.values():
            table._hold(e.desc)
        return table

    def close_on_exec(self) -> None:
        close_together(self.drop_cloexec())

    def drop_cloexec(self) -> list[OpenDescription]:
        """Forget the close-on-exec descriptors; returns the descriptions now to be closed."""
        self.channel = None
        closing = []
        for fd in [fd for fd, e in self.fds.items() if e.cloexec]:
            desc = self.fds.pop(fd).desc
            self._unhold(desc)
            desc.refs -= 1
            if desc.refs == 0:
                closing.append(desc)
        return closing

    def clear(self) -> None:
        """Every descriptor closed at once (exit): the files they were the last holders of
        are closed together, so their uploads run in parallel."""
        close_together(self.drop_all())

    def drop_all(self) -> list[OpenDescription]:
        """Forget every descriptor; returns the descriptions now to be closed."""
        closing = []
        for entry in self.fds.values():
            self._unhold(entry.desc)
            entry.desc.refs -= 1
            if entry.desc.refs == 0:
                closing.append(entry.desc)
        self.fds.clear()
        return closing


_CLOSE_WORKERS = 16


def close_together(descs: list[OpenDescription]) -> None:
    """Close descriptions, uploading written files concurrently (a program leaving
    thousands of small files open at exit must not wait for them one by one)."""
    if sum(1 for d in descs if d.file is not None and getattr(d.file, "writable", False)) < 2:
        for desc in descs:
            desc.close()
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=_CLOSE_WORKERS, thread_name_prefix="close") as pool:
        list(pool.map(OpenDescription.close, descs))


@dataclass(eq=False)
class FsState:
    vcwd: str | None = None   # virtual cwd; None when the cwd is local
    kcwd: str | None = None   # the kernel's cwd when known (None: ask /proc)
    users: int = 0
    removed: bool = False     # the virtual cwd's directory was removed (rmdir): only '..' leads on

    def copy(self) -> "FsState":
        return FsState(self.vcwd, self.kcwd, removed=self.removed)


@dataclass(eq=False)
class Process:
    tgid: int
    fds: FdTable
    fs: FsState
    # Descriptors below the base that an extra seccomp filter of this process watches,
    # and how many such filters it has; filters are inherited by children and survive
    # execve, so these are too.
    watched: set[int] = field(default_factory=set)
    fd_filters: int = 0
    watched_calls: set[int] = field(default_factory=set)   # syscall numbers, likewise
    # Shared writable mappings of virtual files: (start, end, description). Each holds
    # its description until munmap, exec or exit, which flush it.
    mapped: list[tuple[int, int, OpenDescription]] = field(default_factory=list)

    def unmap(self, start: int, end: int) -> None:
        """Drop the mappings overlapping [start, end)."""
        keep = []
        for m_start, m_end, desc in self.mapped:
            if m_start < end and start < m_end:
                desc.maps -= 1
                if desc.file is not None and desc.refs > 1 and desc.file.dirty:
                    desc.file.flush()  # still open elsewhere: flush now, as munmap asks
                desc.release()         # the last holder: close() flushes
            else:
                keep.append((m_start, m_end, desc))
        self.mapped = keep

    def unmap_all(self) -> None:
        self.unmap(0, 1 << 64)

    def detach_mappings(self) -> "Process":
        """Move the mappings to a holder of their own (to be unmapped later, elsewhere)."""
        holder = Process(self.tgid, FdTable(), FsState(), mapped=self.mapped)
        self.mapped = []
        return holder


class ProcessTable:
    def __init__(self, root_pid: int, cwd: str):
        self.procs: dict[int, Process] = {}
        self._new(root_pid, FdTable(), FsState(kcwd=cwd))

    def _new(self, tgid: int, fds: FdTable, fs: FsState, parent: "Process | None" = None) -> Process:
        fds.users += 1
        fs.users += 1
        proc = self.procs[tgid] = Process(tgid, fds, fs)
        if parent is not None:
            proc.watched = set(parent.watched)
            proc.fd_filters = parent.fd_filters
            proc.watched_calls = set(parent.watched_calls)
        return proc

    def get(self, tgid: int) -> Process:
        proc = self.procs.get(tgid)
        if proc is None:  # not announced (should not happen): start it empty
            log.debug("unknown process %d", tgid)
            proc = self._new(tgid, FdTable(), FsState())
        return proc

    def spawn(self, parent_tgid: int, child_tgid: int, share_files: bool, share_fs: bool) -> None:
        if child_tgid == parent_tgid:
            return  # a thread: same table, same cwd
        parent = self.get(parent_tgid)
        self._new(child_tgid,
                  parent.fds if share_files else parent.fds.copy(),
                  parent.fs if share_fs else parent.fs.copy(), parent)

    def exit(self, tgid: int) -> None:
        close_together(self._drop(tgid))

    def _drop(self, tgid: int) -> list[OpenDescription]:
        proc = self.procs.pop(tgid, None)
        if proc is None:
            return []
        proc.unmap_all()
        return self.release(proc)

    @staticmethod
    def release(proc: Process) -> list[OpenDescription]:
        """A process gone from the table (its mappings let go of) leaves its tables;
        returns the descriptions it was the last holder of, to be closed."""
        proc.fs.users -= 1
        proc.fds.users -= 1
        return proc.fds.drop_all() if proc.fds.users == 0 else []

    def _each_state(self):
        """Every working-directory state and open description of the run, once each
        (threads and CLONE_FS/CLONE_FILES children share them; dup'ed descriptors and
        mappings share descriptions)."""
        seen: set[int] = set()
        for proc in self.procs.values():
            for state in [proc.fs, *(e.desc for e in proc.fds.fds.values()), *(d for _, _, d in proc.mapped)]:
                if id(state) not in seen:
                    seen.add(id(state))
                    yield state

    def renamed(self, old: str, new: str) -> None:
        """`old`, and what lies below it, is `new` now: working directories and open
        descriptions follow it (the kernel's hold the inode, not the name), so that a
        process in a renamed directory, or with a descriptor of it, goes on using it."""
        for state in self._each_state():
            path = state.vcwd if isinstance(state, FsState) else state.path
            if path is None or not (path == old or path.startswith(old + "/")):
                continue
            if isinstance(state, FsState):
                state.vcwd = new + path[len(old):]
            else:
                state.path = new + path[len(old):]

    def removed(self, path: str) -> None:
        """The directory `path` was removed: a process working in it, or a descriptor of
        it, keeps a directory with nothing in it (the kernel's dead directory: names below
        it and its listing are ENOENT, getcwd too, '..' still leads to its parent), not
        whatever is made at that name later."""
        for state in self._each_state():
            if isinstance(state, FsState):
                if state.vcwd == path:
                    state.removed = True
            elif state.is_dir and state.path == path:
                state.removed = True

    def close_all(self) -> None:
        """The end of the run: every process's files are closed together."""
        close_together([desc for tgid in list(self.procs) for desc in self._drop(tgid)])
