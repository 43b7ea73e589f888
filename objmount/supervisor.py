"""The seam between the tracer and the vfs: turns stopped syscalls into vfs calls.

Handlers (objmount/handlers/) get the Supervisor and the stop; the helpers here are what
they share: which process asked, whether a path argument is virtual, how a vfs error
becomes an errno, how a new virtual descriptor gets watched.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from tracer import NR, SyscallFilter, SyscallStop, name_of
from vfs import Kind, VfsError, blocking

from . import paths, permissions
from .paths import Target
from .direct_reads import READ_ONLY, DirectReads
from .handover import Handover
from .handlers import registry
from .parking import BigLock, Turns
from .process import FdTable, FsState, OpenDescription, Process, ProcessTable, close_together

if TYPE_CHECKING:
    from vfs import Vfs   # made at the first virtual call of some runs (run.py): not imported at start

log = logging.getLogger("objmount")

AT_FDCWD = -100
NAME_MAX = paths.NAME_MAX   # the longest name a path component may have (ENAMETOOLONG past it)

# Errors a program meets in normal operation: not worth a log line.
_QUIET_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ELOOP, errno.EEXIST,
                 errno.ENOTEMPTY, errno.EROFS, errno.ENODATA, errno.EXDEV}


class Supervisor:
    def __init__(self, vfs: Vfs, mounts, syscall_filter: SyscallFilter, root_pid: int, cwd: str,
                 direct_reads: DirectReads | None = None):
        self.vfs = vfs
        self.direct_reads = direct_reads   # files read without stops (the fast path's read mark)
        self.mounts = mounts
        self.filter = syscall_filter
        self.fd_base = syscall_filter.fd_base
        self.procs = ProcessTable(root_pid, cwd)
        self.counts: dict[str, int] = {}
        self._logged: set[str] = set()
        self._current = threading.local()      # .stop: the stop this thread handles
        # Handlers of stops that touch something virtual run on a pool (parked stops, see
        # README "Architecture"), one at a time but for their waits (the lock), and in
        # order on each object (turns).
        self.lock = BigLock()
        self.turns = Turns(self.lock)
        self.pool = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="handler")
        blocking.set_hook(self.lock.unlocked)
        self.handover = Handover()
        # Descriptions sent to another process (sendmsg, SCM_RIGHTS): id -> [description,
        # its cache file's (st_dev, st_ino), whether a process was seen holding it unknown
        # to us]. Each holds a reference (see `sent`).
        self._sent: dict[int, list] = {}
        self._sent_look = 0.0   # when the next look for their holders may be
        self.roots = paths.roots_of(mounts.targets)   # normalized, as the fast path gets them
        self._root_components = paths.root_components(self.roots)

    @property
    def _stop(self) -> SyscallStop | None:
        """The stop the calling thread handles."""
        return getattr(self._current, "stop", None)

    # --- tracer.Handler ---------------------------------------------------------------
    def on_syscall(self, stop: SyscallStop) -> None:
        """On the tracing thread. A call that touches nothing virtual (most of them) is
        handled here and now; one that does is parked: handled on the pool, its thread
        left stopped, while this thread serves every other stop."""
        handler = registry.HANDLERS.get(stop.nr)
        if handler is None:
            return
        name = name_of(stop.nr)
        self.counts[name] = self.counts.get(name, 0) + 1
        if not stop.at_exit and registry.bad_flags(stop):
            stop.fail(errno.EINVAL)   # refused before any path is read, as the kernel does
            return
        if not self.lock.acquire(blocking=False):
            # A worker is busy with the shared state: it is decided there, not waited for.
            self._park(stop, handler, None)
            return
        try:
            work = self._virtual_work(stop)
            if work is None or (self._from_state(stop, work[0]) and self.turns.idle(work[0])):
                self._handle(handler, stop)
                return
            seq = self.turns.number()
            ticket = self.turns.take(work[0], seq, exclusive=work[1])
        finally:
            self.lock.release()
        self._park(stop, handler, ticket)

    def _park(self, stop: SyscallStop, handler, ticket) -> None:
        seq = ticket.seq if ticket is not None else self.turns.number()
        stop.tracer.unlocked = self.lock.unlocked
        stop.tracer.park(stop, partial(self._handle_parked, handler, ticket, seq), self.pool.submit)

    def _handle_parked(self, handler, ticket, seq: int, stop: SyscallStop) -> None:
        """On a worker: wait for the stop's turn on what it touches, then handle it."""
        with self.lock:
            if ticket is None:
                work = self._virtual_work(stop)
                if work is None:
                    self._handle(handler, stop)
                    return
                ticket = self.turns.take(work[0], seq, exclusive=work[1])
            with self.turns.granted(ticket):
                self._handle(handler, stop)

    def _handle(self, handler, stop: SyscallStop) -> None:
        if self.direct_reads is not None and stop.nr not in READ_ONLY:
            self.direct_reads.revoke()   # before the call may change what marked reads see
        self._current.stop = stop
        try:
            handler(self, stop)
        except VfsError as exc:
            self.report(exc)
            if not stop.at_exit:
                stop.fail(exc.errno)
            else:
                stop.set_result(-exc.errno)
        finally:
            self._current.stop = None
            self.vfs.end_operation()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[%d] %s%s -> %s", stop.tid, name_of(stop.nr), stop.args[:3],
                      stop.result if (stop.at_exit or stop.skipped) else "kernel")

    def _virtual_work(self, stop: SyscallStop) -> tuple[set, bool] | None:
        """What a stop touches that is virtual, cheaply, with the lock held: (the paths
        of the objects, whether it changes names), or None when nothing is virtual.
        Path arguments are classified once (Supervisor.target keeps the answer)."""
        nr = stop.nr
        proc = self.proc(stop)
        fds = proc.fds
        keys: set[str] = set()
        indexes = registry.FD_ARGS.get(nr) or registry.ALWAYS_FD_ARGS.get(nr)
        if indexes is not None:
            for i in indexes:
                desc = fds.get(stop.sarg(i))
                if desc is not None:
                    keys.add(desc.path)
            return (keys, False) if keys else None
        layout = registry.PATH_ARGS.get(nr)
        if layout is not None:
            for path_index, dirfd_index in layout:
                if dirfd_index is not None and (desc := fds.get(stop.sarg(dirfd_index))) is not None:
                    keys.add(desc.path)   # an empty path (AT_EMPTY_PATH), or relative to it
                try:
                    target = self.target(stop, path_index, dirfd_index)
                except (OSError, VfsError):
                    continue   # the handler meets the same error, and says it
                if target is not None and target.virtual:
                    keys.add(target.path)
            if not keys:
                return None
            name = name_of(nr)
            return keys, name in registry.NAME_CHANGES or self._creates(stop, name)
        special = _SPECIAL_WORK.get(name_of(nr))
        if special is not None:
            return special(self, stop, proc)
        return (keys, True) if proc.fds.fds or proc.mapped or proc.fs.vcwd else None

    def _from_state(self, stop: SyscallStop, keys: set[str]) -> bool:
        """A call answered from what is held, no request: a descriptor call of
        registry.FROM_STATE, a read of a file whose bytes are all local or the close of
        one that cannot upload (registry.READS, close), or a look at paths the namespace
        knows (registry.LOOKS). A wrong guess costs only time: a request made on this
        thread."""
        name = name_of(stop.nr)
        if name in registry.LOOKS:
            return self._known(keys)
        if name in registry.READS:
            desc = self.desc(stop, stop.sarg(0))
            return desc is not None and (desc.file is None or desc.file.complete)
        if name == "close":   # (not when its release would walk the cache index to evict)
            desc = self.desc(stop, stop.sarg(0))
            return desc is not None and (desc.file is None or not (desc.file.writable or desc.file.item.created)
                                         and not self.vfs.cache.over_limit())
        if name not in registry.FROM_STATE:
            return False
        return name != "fstat" or not getattr(self.desc(stop, stop.sarg(0)), "is_dir", True)

    def _known(self, keys: set[str]) -> bool:
        """Every path, and every virtual directory above it, known fresh without a
        request: exact attributes, no symlink to follow."""
        peek = self.vfs.ns.peek
        for path in keys:
            meta = peek(path)
            if meta is None or not meta.exact or meta.kind is Kind.SYMLINK:
                return False
            head = path.rpartition("/")[0]
            while head:
                try:
                    loc = self.mounts.locate(head)
                except KeyError:   # a local directory above a mount
                    break
                if loc is None or not loc.rel:   # a store's root, or /objmount, /objmount/s3
                    break
                meta = peek(head)
                if meta is None or meta.kind is not Kind.DIR:
                    return False
                head = head.rpartition("/")[0]
        return True

    def _creates(self, stop: SyscallStop, name: str) -> bool:
        if name == "openat2":
            try:
                flags = int.from_bytes(stop.read(stop.arg(2), 8), "little")
            except OSError:
                return False
        elif name in registry.OPEN_FLAGS:
            flags = stop.arg(registry.OPEN_FLAGS[name])
        else:
            return False
        return bool(flags & os.O_CREAT)

    def _close_range_work(self, stop: SyscallStop, proc: Process):
        first, last = stop.arg(0), stop.arg(1)
        keys = {d.path for fd, e in proc.fds.fds.items() if first <= fd <= last for d in (e.desc,)}
        return (keys, False) if keys else None

    def _mapping_work(self, stop: SyscallStop, proc: Process):
        keys = {desc.path for _, _, desc in proc.mapped}
        return (keys, False) if keys else None

    def _sending_work(self, stop: SyscallStop, proc: Process):
        from .handlers.fds import passed_fds
        keys = {d.path for fd in passed_fds(stop) if (d := proc.fds.get(fd)) is not None}
        return (keys, False) if keys else None

    def _socket_work(self, stop: SyscallStop, proc: Process):
        from .handlers.special import _unix_path
        try:
            raw = _unix_path(stop)
            target = self.classify(stop, paths.decode(raw)) if raw is not None else None
        except (OSError, VfsError):
            return None
        if target is None or not target.virtual:
            return None
        return {target.path}, True   # a socket node in a virtual directory

    def on_spawn(self, parent_tgid: int, child_tgid: int, flags: int) -> None:
        from tracer.tracer import CLONE_FILES, CLONE_FS
        with self._state():   # workers may be changing the parent's tables
            self.procs.spawn(parent_tgid, child_tgid, bool(flags & CLONE_FILES), bool(flags & CLONE_FS))

    def on_exec(self, tgid: int) -> None:
        with self._state():
            proc = self.procs.get(tgid)
            if proc.fds.users > 1:  # execve unshares a shared descriptor table
                proc.fds.users -= 1
                proc.fds = proc.fds.copy()
                proc.fds.users = 1
            self._close_later(proc.fds.drop_cloexec(), proc.detach_mappings())

    def on_exit(self, tgid: int) -> None:
        with self._state():
            proc = self.procs.procs.pop(tgid, None)
            if proc is not None:
                mappings = proc.detach_mappings()
                self._close_later(self.procs.release(proc), mappings)
            if self._sent and time.monotonic() >= self._sent_look:
                # a look at every process's descriptors: at most ten a second (a late one
                # only holds the file longer)
                self._sent_look = time.monotonic() + 0.1
                self._close_later(self._sent_done(), Process(0, FdTable(), FsState()))

    def _close_later(self, descs: list[OpenDescription], mappings: Process) -> None:
        """Close descriptions and let go of mappings a process left (at its exit, at an
        execve): on the pool, since closing may upload (close-to-open), each in turn on
        its file, so whoever then opens it (say, after waiting for the process) finds it
        uploaded. The tables are up to date already."""
        keys = {d.path for d in descs if d.file is not None} | {d.path for _, _, d in mappings.mapped}
        if keys and self.direct_reads is not None:
            self.direct_reads.revoke()   # a last close may upload
        if not keys:
            close_together(descs)   # directories, files gone: nothing that waits
            return
        ticket = self.turns.take(keys, self.turns.number())
        self.pool.submit(self._in_turn, ticket, self._closes, descs, mappings)

    @staticmethod
    def _closes(descs: list[OpenDescription], mappings: Process) -> None:
        mappings.unmap_all()
        close_together(descs)

    def _state(self):
        """The lock, for the tracing thread's bookkeeping (which may come while this thread
        holds it already: an exit met by a handler run here)."""
        return contextlib.nullcontext() if self.lock.held() else self.lock

    def _in_turn(self, ticket, fn, *args) -> None:
        with self.lock, self.turns.granted(ticket):
            try:
                fn(*args)
            except Exception as exc:
                log.error("internal error in %s: %s: %s", fn.__name__, type(exc).__name__, exc)
                log.debug("traceback", exc_info=True)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
        if self.direct_reads is not None:
            with self.lock:
                self.direct_reads.revoke()
        blocking.set_hook(None)
        for desc, _, _ in self._sent.values():
            desc.release()
        self._sent.clear()
        self.procs.close_all()
        self.handover.close()

    # --- shared helpers -----------------------------------------------------------------
    def proc(self, stop: SyscallStop) -> Process:
        return self.procs.get(stop.tgid)

    def report(self, exc: VfsError) -> None:
        if exc.errno in _QUIET_ERRNOS or getattr(exc, "quiet", False):
            log.debug("%s", exc.message)
            return
        # `once`: a limit every file meets alike (cp -a copying ACLs): said at its first file
        key = getattr(exc, "once", None) or exc.message
        if key not in self._logged:
            self._logged.add(key)
            log.error("%s%s", exc.message, " (not said again for other files)" if key != exc.message else "")
        else:
            log.debug("%s", exc.message)

    def desc(self, stop: SyscallStop, fd: int) -> OpenDescription | None:
        return self.proc(stop).fds.get(fd)

    def target(self, stop: SyscallStop, path_index: int, dirfd_index: int | None = None) -> Target | None:
        """Classify a path argument. None: a local path the kernel resolves by itself.
        A local Target (virtual=False): a local path we had to resolve (a relative path in
        a virtual cwd); the caller rewrites the argument to it with `rewrite`."""
        memo = (path_index, dirfd_index)
        if memo in stop.memo:   # classified already (Supervisor._virtual_work)
            return stop.memo[memo]
        target = stop.memo[memo] = self._target(stop, path_index, dirfd_index)
        return target

    # --- the handlers' preamble: paths where registry.PATH_LAYOUTS declares them ----------
    def path_arg(self, stop: SyscallStop, n: int = 0) -> Target | None:
        """The n-th declared path of the call being handled, classified (see `target`)."""
        return self.target(stop, *registry.PATH_ARGS[stop.nr][n])

    def nameless_link(self, stop: SyscallStop, n: int = 0) -> OpenDescription | None:
        """The description behind the n-th path when it is a descriptor's link
        (/proc/PID/fd/N) to a file that has lost its name (unlinked, or replaced by a
        rename): the kernel's link still reaches that file, whatever bears its old name now."""
        target = self.path_arg(stop, n)
        desc = target.desc if target is not None else None
        if desc is not None and desc.file is not None and self.vfs.nameless(desc.file):
            return desc
        return None

    def virtual_arg(self, stop: SyscallStop, n: int = 0, resolve=None, follow_last: bool | None = None,
                    **how) -> Target | None:
        """The one preamble of path handlers: the n-th declared path, classified and
        resolved (`self.resolve(target, **how)`, or `resolve(target)`). None: the kernel
        answers, a local path (the argument rewritten when we had to resolve it).
        follow_last: whether the call follows a symlink in the last component (default:
        how's `follow`, else True); one that does not acts on a /proc/self/fd/N link
        itself, which the kernel answers (lstat, unlink, rename, O_NOFOLLOW)."""
        target = self.path_arg(stop, n)
        if target is None:
            return None
        if target.exact and not target.wants_dir and not (how.get("follow", True) if follow_last is None
                                                          else follow_last):
            return None   # (a trailing '/' follows the link, as the kernel's walk does)
        if target.virtual and target.walk:
            target = self.walk_dots(target)
        if target.virtual:
            target = resolve(target) if resolve is not None else self.resolve(target, **how)
        if not target.virtual:
            self.set_path(stop, target.path, n)
            return None
        return target

    def set_path(self, stop: SyscallStop, path: str, n: int = 0) -> None:
        """Point the n-th declared path argument at `path` (a local path, a stand-in)."""
        self.rewrite(stop, self.path_index(stop, n), path)

    def path_index(self, stop: SyscallStop, n: int = 0) -> int:
        """Which argument holds the n-th declared path."""
        return registry.PATH_ARGS[stop.nr][n][0]

    def path_addr(self, stop: SyscallStop, n: int = 0) -> int:
        return stop.arg(self.path_index(stop, n))

    def path_empty(self, stop: SyscallStop, n: int = 0) -> bool:
        """Whether the n-th declared path is the empty string (OSError: unreadable)."""
        return stop.read(self.path_addr(stop, n), 1) in (b"", b"\0")

    def path_dirfd(self, stop: SyscallStop, n: int = 0) -> int | None:
        """The directory descriptor the n-th declared path is relative to; None: the call
        has no dirfd argument for it."""
        dirfd_index = registry.PATH_ARGS[stop.nr][n][1]
        return stop.sarg(dirfd_index) if dirfd_index is not None else None

    def _target(self, stop: SyscallStop, path_index: int, dirfd_index: int | None) -> Target | None:
        addr = stop.arg(path_index)
        if addr == 0:
            return None
        raw = self.read_path(stop, addr)
        if not raw:
            return None
        dirfd = stop.sarg(dirfd_index) if dirfd_index is not None else AT_FDCWD
        target = self.classify(stop, raw, dirfd)
        if target is not None and target.virtual:
            if paths.too_long_name(raw):
                raise VfsError(errno.ENAMETOOLONG, f"{target.path}: a name longer than {paths.NAME_MAX} bytes")
            target.dots = paths.last_dots(raw)
        return target

    def read_path(self, stop: SyscallStop, addr: int) -> str:
        """The path string at `addr` in the tracee; the kernel's errors when it cannot be
        read (EFAULT) or has no NUL within PATH_MAX (ENAMETOOLONG)."""
        try:
            return paths.decode(stop.read_cstring(addr))
        except OSError as exc:
            if exc.errno in (errno.ENAMETOOLONG, errno.EFAULT):
                err = VfsError(exc.errno, f"path argument at {addr:#x}: {os.strerror(exc.errno).lower()}")
                # a path over PATH_MAX is an ordinary answer (programs probe the limit): no line
                err.quiet = exc.errno == errno.ENAMETOOLONG
                raise err from None
            raise

    def classify(self, stop: SyscallStop, raw: str, dirfd: int = AT_FDCWD) -> Target | None:
        """The pure part is paths.lexical_class; this adds the process's own: descriptors
        behind /proc/self/fd links, the directory a relative path starts from."""
        kind = paths.lexical_class(raw, self.roots, self._root_components)
        if kind is paths.Lexical.FD_LINK:
            form = paths.fd_link_form(raw)
            desc = self.fd_link(stop, form)
            if desc is not None:
                return Target(True, desc.path, paths.wants_dir(raw), exact=True, desc=desc)
            link = self.proc_link(stop, form)
            if link is not None:
                base, rest = link
                if not rest:   # /proc/P/cwd itself: the directory, or the link for calls that do not follow
                    return Target(True, base, paths.wants_dir(raw), exact=True)
                path = paths.join(base, rest)
                return Target(paths.under_roots(path, self.roots), path, paths.wants_dir(raw))
            kind = paths.Lexical.VIRTUAL if paths.under_roots(paths.normalize(raw), self.roots) else paths.Lexical.LOCAL
        if kind is paths.Lexical.LOCAL:
            return None
        if kind is paths.Lexical.VIRTUAL:
            url = paths.from_url(raw)
            walk = paths.dotdot_walk("/", raw) if url is None and ".." in raw else ""
            return Target(True, paths.normalize(url if url is not None else raw), paths.wants_dir(raw), walk=walk)
        proc = self.proc(stop)
        if dirfd == AT_FDCWD:
            base, removed = proc.fs.vcwd, proc.fs.removed
        else:
            desc = proc.fds.get(dirfd)
            base, removed = (desc.path, desc.removed) if desc is not None else (None, False)
        if base is not None:  # relative to a virtual directory
            path = paths.join(base, raw)
            if removed and next((c for c in raw.split("/") if c not in ("", ".")), "") != "..":
                # a removed directory holds nothing, whatever is made at its name since;
                # only '..' leads out of it (to its parent, then on as usual)
                err = VfsError(errno.ENOENT, f"{path}: its directory was removed")
                err.quiet = True
                raise err
            walk = paths.dotdot_walk(base, raw) if ".." in raw else ""
            return Target(paths.under_roots(path, self.roots) or bool(walk), path, paths.wants_dir(raw), walk=walk)
        if kind is paths.Lexical.RELATIVE:   # below a local directory: stays local
            return None
        local_base = self._local_base(stop, proc, dirfd)
        if local_base is None:
            return None
        if not paths.joined_virtual(local_base, raw, self.roots):
            return None
        path = paths.join(local_base, raw)
        return Target(True, path, paths.wants_dir(raw), walk=paths.dotdot_walk(local_base, raw) if ".." in raw else "")

    def fd_link(self, stop: SyscallStop, raw: str) -> OpenDescription | None:
        """The virtual description behind /proc/self/fd/N, /proc/PID/fd/N or /dev/fd/N:
        opening those must reopen the object, not the bare cache file."""
        parts = raw.split("/")
        if len(parts) == 4 and parts[1] == "dev" and parts[2] == "fd":
            pid, fd = stop.tgid, parts[3]
        elif len(parts) == 5 and parts[1] == "proc" and parts[3] == "fd":
            pid = stop.tgid if parts[2] in ("self", "thread-self") else parts[2]
            fd = parts[4]
        else:
            return None
        try:
            proc = self.procs.procs.get(int(pid))
            return proc.fds.get(int(fd)) if proc is not None else None
        except ValueError:
            return None

    def proc_link(self, stop: SyscallStop, raw: str) -> tuple[str, str] | None:
        """A virtual directory behind a /proc link, and the path below it: /proc/P/cwd of a
        process whose working directory is virtual (its kernel cwd is a stand-in), and
        /proc/P/fd/N/... or /dev/fd/N/... below a virtual directory's descriptor. (base,
        rest) or None. `raw` as fd_link_form gives it."""
        parts = raw.split("/")
        base = None
        if len(parts) >= 4 and parts[1] == "proc" and parts[3] == "cwd":
            pid = stop.tgid if parts[2] in ("self", "thread-self") else parts[2]
            try:
                proc = self.procs.procs.get(int(pid))
            except ValueError:
                return None
            base, rest = (proc.fs.vcwd if proc is not None else None), parts[4:]
        elif len(parts) >= 6 and parts[1] == "proc" and parts[3] == "fd":
            desc = self.fd_link(stop, "/".join(parts[:5]))
            base, rest = (desc.path if desc is not None and desc.is_dir else None), parts[5:]
        elif len(parts) >= 5 and parts[1] == "dev" and parts[2] == "fd":
            desc = self.fd_link(stop, "/".join(parts[:4]))
            base, rest = (desc.path if desc is not None and desc.is_dir else None), parts[4:]
        if base is None:
            return None
        return base, "/".join(p for p in rest if p)

    def _local_base(self, stop: SyscallStop, proc: Process, dirfd: int) -> str | None:
        try:
            if dirfd == AT_FDCWD:
                if proc.fs.kcwd is None:
                    proc.fs.kcwd = os.readlink(f"/proc/{stop.tid}/cwd")
                return proc.fs.kcwd
            return os.readlink(f"/proc/{stop.tid}/fd/{dirfd}")
        except OSError:
            return None

    def rewrite(self, stop: SyscallStop, path_index: int, path: str) -> None:
        stop.set_arg(path_index, stop.push(paths.encode(path) + b"\0"))

    def walk_dots(self, target: Target) -> Target:
        """The path of a Target written with '..' after a name, as the kernel walks it:
        each directory a '..' steps back from is resolved first (its symlinks followed;
        ENOENT, ENOTDIR, ELOOP as it says) and the step goes to the parent of what it
        resolved to, not of the name as written. May end local (a link pointing out)."""
        cur = "/"
        for part in target.walk.strip("/").split("/"):
            if part != "..":
                cur = cur.rstrip("/") + "/" + part
                continue
            if cur != "/" and self.mounts.is_virtual(cur):
                real = self.vfs.resolve(cur, follow_last=True)
                if self.mounts.is_virtual(real) and self.vfs.lookup(real).kind is not Kind.DIR:
                    raise VfsError(errno.ENOTDIR, f"{cur}: not a directory")
                cur = real
            cur = paths.parent(cur)
        return Target(self.mounts.is_virtual(cur), cur, target.wants_dir, target.dots, target.exact)

    def resolve(self, target: Target, follow: bool = True, sure: bool = True, **how) -> Target:
        """Follow virtual symlinks; the result may be local (a link pointing out). See
        Namespace.resolve for `sure` and `how` (attrs, recheck_missing). The caller must
        be allowed to search every virtual directory above the result (EACCES). A
        descriptor's link (/proc/self/fd/N) is not followed further: the kernel's magic link
        ends at the file the descriptor names, an O_PATH|O_NOFOLLOW symlink included."""
        path = self.vfs.resolve(target.path, follow_last=follow and not target.exact, sure=sure, **how)
        virtual = self.mounts.is_virtual(path)
        if virtual:
            self.search(path)
        return Target(virtual, path, target.wants_dir)

    # --- permissions (objmount/permissions.py holds the rules) ------------------------------
    def creds(self, stop: SyscallStop | None = None) -> permissions.Creds:
        """The calling thread's credentials, read once per stop when a check needs them."""
        stop = stop or self._stop
        creds = getattr(stop, "creds", None)
        if creds is None:
            try:
                creds = permissions.read_creds(stop.tid)
            except (OSError, ValueError):   # the thread is gone: nothing it does matters
                creds = permissions.Creds(os.geteuid(), os.getegid())
            stop.creds = creds
        return creds

    def allow(self, err: int, what: str) -> None:
        """Raise the errno a permission check gave, if any."""
        if err:
            exc = VfsError(err, f"{what}: {os.strerror(err).lower()}")
            exc.quiet = True   # the program's answer to a normal question: no log line
            raise exc

    def search(self, path: str) -> None:
        """Search permission on every virtual directory above `path` (root may always).
        Only what is known already is checked, no request made: a directory nothing is
        known of has the default attributes (0755, objmount's user), which let anyone
        search (and the lookup of the path itself says whether it exists)."""
        if self._stop is None or self.creds().root:
            return
        head = path.rpartition("/")[0]
        dirs = []
        while head and self.mounts.is_virtual(head):
            dirs.append(head)
            head = head.rpartition("/")[0]
        for d in reversed(dirs):
            meta = self.vfs.ns.peek(d)
            if meta is not None:
                self.allow(permissions.permission(meta, permissions.X_OK, self.creds()), path)

    def parent_meta(self, path: str):
        """The directory holding `path`, as the permission checks need it; None when it is
        not a directory (the vfs call then says ENOTDIR)."""
        meta = self.vfs.lookup(path.rstrip("/").rpartition("/")[0] or "/")
        return meta if meta.kind is Kind.DIR else None

    def may_create(self, path: str):
        """Check that the caller may create `path` (search above, w+x on its directory);
        returns the directory's meta for new_owner (None: no directory there)."""
        self.search(path)
        parent = self.parent_meta(path)
        if parent is not None:
            self.allow(permissions.may_create(parent, self.creds()), path)
        return parent

    def may_delete(self, path: str, meta=None) -> None:
        """Check that the caller may remove the name `path` (w+x on its directory, the
        sticky rule)."""
        self.search(path)
        parent = self.parent_meta(path)
        if parent is None or self.creds().root:
            return
        meta = meta or self.vfs.lookup(path)
        self.allow(permissions.may_delete(parent, meta, self.creds()), path)

    def watch_syscalls(self, stop: SyscallStop, *names: str) -> None:
        """From now on this process (and its children) stops on these syscalls too. At a
        syscall exit."""
        proc = self.proc(stop)
        nrs = {NR[n] for n in names} - proc.watched_calls
        if not nrs:
            return
        result = stop.install_filter(self.filter.program_for_syscalls(nrs))
        if result == 0:
            proc.watched_calls |= nrs
        else:
            log.warning("cannot watch %s in pid %d: %s", ", ".join(names), stop.tgid, os.strerror(-result))

    def install(self, stop: SyscallStop, fd: int, desc: OpenDescription, cloexec: bool) -> None:
        """Record a new virtual descriptor (at the exit of the syscall that made it, whose
        number the kernel chose) and make sure its number stops in this process."""
        proc = self.proc(stop)
        proc.fds.install(fd, desc, cloexec)
        if fd >= self.fd_base:
            if SENDS - proc.watched_calls:
                self.watch_syscalls(stop, "sendmsg", "sendmmsg")
            return  # the main filter stops it, in every process
        if fd not in proc.watched:   # else an extra filter already does
            lo, hi = watch_block(fd, proc.fd_filters, self.fd_base)
            also = SENDS - proc.watched_calls   # a descriptor may be sent away (Supervisor.sent)
            result = stop.install_filter(self.filter.program_for_fds(lo, hi, index=proc.fd_filters, also=also))
            if result != 0:
                log.warning("cannot watch fd %d in pid %d (%s): fetching %s whole", fd, stop.tgid,
                            os.strerror(-result) if result < 0 else f"thread {result}", desc.path)
                self._unwatched(desc)
                return
            proc.fd_filters += 1
            proc.watched.update(range(lo, hi))
            proc.watched_calls |= also
        if proc.fds.users > 1:
            # The table is shared with another process (clone(CLONE_FILES) without
            # CLONE_THREAD): seccomp filters are per process, and one that does not stop
            # on this number cannot be given a filter now (it is running).
            other = next((p.tgid for p in self.procs.procs.values()
                          if p.fds is proc.fds and p is not proc and fd not in p.watched), None)
            if other is not None:
                log.debug("fd %d of pid %d is not watched in pid %d, which shares its table: fetching %s whole",
                          fd, stop.tgid, other, desc.path)
                self._unwatched(desc)

    def sent(self, descs: list[OpenDescription]) -> None:
        """Virtual descriptions about to be passed to another process (SCM_RIGHTS): the
        receiver's table does not list them, so its reads, writes and close never stop.
        Each is made whole now and uploaded whole at its release (as `_unwatched`), and
        held until a process was seen holding it that we do not know of (the receiver)
        and no process holds it any more (checked at each process exit), or the run ends:
        the sender's close must not upload it (and let the item go) under the receiver."""
        for desc in descs:
            if desc.file is None or id(desc) in self._sent:
                continue
            self._unwatched(desc)
            try:
                st = os.stat(desc.file.cache_path)
            except OSError:
                continue
            self._sent[id(desc)] = [desc.retain(), (st.st_dev, st.st_ino), False]

    def _sent_done(self) -> list[OpenDescription]:
        """Let go of the sent descriptions no process holds any more (a look at every
        traced process's descriptors); returns those now to be closed."""
        wanted = {entry[1]: entry for entry in self._sent.values()}
        unknown = set()
        for tgid, proc in self.procs.procs.items():
            try:
                names = os.listdir(f"/proc/{tgid}/fd")
            except OSError:
                continue
            for name in names:
                try:
                    st = os.stat(f"/proc/{tgid}/fd/{name}")
                except OSError:
                    continue
                entry = wanted.get((st.st_dev, st.st_ino))
                if entry is not None and proc.fds.get(int(name)) is not entry[0]:
                    unknown.add(id(entry[0]))
        closing = []
        for key, entry in list(self._sent.items()):
            if key in unknown:
                entry[2] = True
            elif entry[2]:   # received, and closed since: our reference goes
                del self._sent[key]
                desc = entry[0]
                desc.refs -= 1
                if desc.refs == 0:
                    closing.append(desc)
        return closing

    @staticmethod
    def _unwatched(desc: OpenDescription) -> None:
        """A virtual description some process reaches without stopping: its reads,
        writes and close go straight to the cache file, so the whole object must be in
        place, and the whole file goes up when the description is released (the number
        reused by another virtual open, exec for close-on-exec, or the last process
        sharing the table ending)."""
        if desc.file is not None:
            if desc.file.writable:
                desc.file.mark_untracked()
            else:
                desc.file.ensure_all()


HANDLER_THREADS = 16   # parked stops handled at once

# Calls that may pass a descriptor to another process: watched in every process that
# holds a virtual one (with its first descriptor filter).
SENDS = frozenset({NR["sendmsg"], NR["sendmmsg"]})

_SPECIAL_WORK = {
    "sendmsg": Supervisor._sending_work,
    "sendmmsg": Supervisor._sending_work,
    "close_range": Supervisor._close_range_work,
    "munmap": Supervisor._mapping_work,
    "msync": Supervisor._mapping_work,
    "getcwd": lambda sup, stop, proc: None,   # answered from what is known
    "pidfd_getfd": lambda sup, stop, proc: None,   # another process's descriptor: bookkeeping only
    "ioctl": lambda sup, stop, proc: None,    # reflinks refused, close-on-exec noted: nothing to wait for
    "bind": Supervisor._socket_work,
    "connect": Supervisor._socket_work,
}


# Each extra filter runs on every syscall of its process (about 40 ns each, measured on
# a getppid loop), so a process gets a filter per number for its first few numbers only;
# after that a filter covers the power-of-two block holding the number ([8, 16), [16, 32),
# ...), which bounds the filters to a dozen whatever it opens, at the price of stops on
# the local descriptors that share a watched block.
SINGLE_FD_FILTERS = 4


def watch_block(fd: int, filters: int, fd_base: int) -> tuple[int, int]:
    """The numbers [lo, hi) the next extra filter of a process should watch for `fd`."""
    if filters < SINGLE_FD_FILTERS or fd < 4:
        return fd, fd + 1
    lo = 1 << (fd.bit_length() - 1)
    return lo, min(lo * 2, fd_base)
