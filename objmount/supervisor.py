"""The seam between the tracer and the vfs: turns stopped syscalls into vfs calls.

Handlers (objmount/handlers/) get the Supervisor and the stop; the helpers here are what
they share: which process asked, whether a path argument is virtual, how a vfs error
becomes an errno, how a new virtual descriptor gets watched.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass

from tracer import NR, SyscallFilter, SyscallStop, name_of
from vfs import Kind, Vfs, VfsError

from . import paths, permissions
from .handover import Handover
from .handlers import registry
from .process import OpenDescription, Process, ProcessTable

log = logging.getLogger("objmount")

AT_FDCWD = -100
NAME_MAX = 255     # the longest name a path component may have (ENAMETOOLONG past it)

# Errors a program meets in normal operation: not worth a log line.
_QUIET_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ELOOP, errno.EEXIST,
                 errno.ENOTEMPTY, errno.EROFS, errno.ENODATA, errno.EXDEV}


@dataclass
class Target:
    """A path argument after classification."""
    virtual: bool
    path: str          # absolute, normalized
    wants_dir: bool = False
    dots: str = ""     # "." or "..": the path's last component as written (rmdir, rename refuse them)


class Supervisor:
    def __init__(self, vfs: Vfs, mounts, mount_targets: list[str], syscall_filter: SyscallFilter,
                 root_pid: int, cwd: str):
        self.vfs = vfs
        self.mounts = mounts
        self.filter = syscall_filter
        self.fd_base = syscall_filter.fd_base
        self.procs = ProcessTable(root_pid, cwd)
        self.counts: dict[str, int] = {}
        self._logged: set[str] = set()
        self._stop: SyscallStop | None = None   # the stop being handled
        self.handover = Handover()
        roots = ["/objmount", *mount_targets]
        # Path components that could lead a relative path into a virtual root.
        self._root_components = {part for root in roots for part in root.split("/") if part}

    # --- tracer.Handler ---------------------------------------------------------------
    def on_syscall(self, stop: SyscallStop) -> None:
        handler = registry.HANDLERS.get(stop.nr)
        if handler is None:
            return
        name = name_of(stop.nr)
        self.counts[name] = self.counts.get(name, 0) + 1
        self._stop = stop
        try:
            handler(self, stop)
        except VfsError as exc:
            self.report(exc)
            if not stop.at_exit:
                stop.fail(exc.errno)
            else:
                stop.set_result(-exc.errno)
        finally:
            self._stop = None
            self.vfs.end_operation()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[%d] %s%s -> %s", stop.tid, name, stop.args[:3],
                      stop.result if (stop.at_exit or stop.skipped) else "kernel")

    def on_spawn(self, parent_tgid: int, child_tgid: int, flags: int) -> None:
        from tracer.tracer import CLONE_FILES, CLONE_FS
        self.procs.spawn(parent_tgid, child_tgid, bool(flags & CLONE_FILES), bool(flags & CLONE_FS))

    def on_exec(self, tgid: int) -> None:
        proc = self.procs.get(tgid)
        if proc.fds.users > 1:  # execve unshares a shared descriptor table
            proc.fds.users -= 1
            proc.fds = proc.fds.copy()
            proc.fds.users = 1
        proc.fds.close_on_exec()
        proc.unmap_all()

    def on_exit(self, tgid: int) -> None:
        self.procs.exit(tgid)

    def shutdown(self) -> None:
        self.procs.close_all()
        self.handover.close()

    # --- shared helpers -----------------------------------------------------------------
    def proc(self, stop: SyscallStop) -> Process:
        return self.procs.get(stop.tgid)

    def report(self, exc: VfsError) -> None:
        if exc.errno in _QUIET_ERRNOS or getattr(exc, "quiet", False):
            log.debug("%s", exc.message)
            return
        if exc.message not in self._logged:
            self._logged.add(exc.message)
            log.error("%s", exc.message)

    def desc(self, stop: SyscallStop, fd: int) -> OpenDescription | None:
        return self.proc(stop).fds.get(fd)

    def target(self, stop: SyscallStop, path_index: int, dirfd_index: int | None = None) -> Target | None:
        """Classify a path argument. None: a local path the kernel resolves by itself.
        A local Target (virtual=False): a local path we had to resolve (a relative path in
        a virtual cwd); the caller rewrites the argument to it with `rewrite`."""
        addr = stop.arg(path_index)
        if addr == 0:
            return None
        try:
            raw = paths.decode(stop.read_cstring(addr))
        except OSError as exc:  # longer than PATH_MAX, or in unmapped memory: the kernel's errors
            if exc.errno in (errno.ENAMETOOLONG, errno.EFAULT):
                raise VfsError(exc.errno, f"path argument: {exc.strerror}") from None
            raise
        if not raw:
            return None
        dirfd = stop.sarg(dirfd_index) if dirfd_index is not None else AT_FDCWD
        target = self.classify(stop, raw, dirfd)
        if target is not None and target.virtual:
            if any(len(paths.encode(part)) > NAME_MAX for part in raw.split("/")):
                raise VfsError(errno.ENAMETOOLONG, f"{target.path}: a name longer than {NAME_MAX} bytes")
            last = raw.rstrip("/").rpartition("/")[2]
            if last in (".", ".."):
                target.dots = last
        return target

    def classify(self, stop: SyscallStop, raw: str, dirfd: int = AT_FDCWD) -> Target | None:
        if raw.startswith(("/proc/", "/dev/fd/")) and (desc := self.fd_link(stop, raw)) is not None:
            return Target(True, desc.path)
        if raw.startswith("/"):
            path = paths.normalize(raw) if paths.needs_normalizing(raw) else raw
            if self.mounts.is_virtual(path):
                return Target(True, path, paths.wants_dir(raw))
            return None
        url = paths.from_url(raw)
        if url is not None:
            return Target(True, paths.normalize(url), paths.wants_dir(raw))
        proc = self.proc(stop)
        if dirfd == AT_FDCWD:
            base = proc.fs.vcwd
        else:
            desc = proc.fds.get(dirfd)
            base = desc.path if desc is not None else None
        if base is not None:  # relative to a virtual directory
            path = paths.join(base, raw)
            return Target(self.mounts.is_virtual(path), path, paths.wants_dir(raw))
        # Relative to a local directory: it can only reach a virtual root through '..'
        # or by naming a component of one.
        first = raw.split("/", 1)[0]
        if ".." not in raw.split("/") and first not in self._root_components:
            return None
        local_base = self._local_base(stop, proc, dirfd)
        if local_base is None:
            return None
        path = paths.join(local_base, raw)
        if self.mounts.is_virtual(path):
            return Target(True, path, paths.wants_dir(raw))
        return None

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

    def resolve(self, target: Target, follow: bool = True, sure: bool = True, **how) -> Target:
        """Follow virtual symlinks; the result may be local (a link pointing out). See
        Namespace.resolve for `sure` and `how` (attrs, recheck_missing). The caller must
        be allowed to search every virtual directory above the result (EACCES)."""
        path = self.vfs.resolve(target.path, follow_last=follow, sure=sure, **how)
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
        if fd >= self.fd_base or fd in proc.watched:
            return  # the main filter stops it, or an extra filter already does
        lo, hi = watch_block(fd, proc.fd_filters, self.fd_base)
        result = stop.install_filter(self.filter.program_for_fds(lo, hi, index=proc.fd_filters))
        if result == 0:
            proc.fd_filters += 1
            proc.watched.update(range(lo, hi))
            return
        # No filter (the kernel's limit, or a seccomp policy of the program's own): its
        # reads, writes and close will not stop, so the whole object must be in place,
        # and the whole file goes up when the description is released (the number
        # reused by another virtual open, exec for close-on-exec, or the process's end).
        log.warning("cannot watch fd %d in pid %d (%s): fetching %s whole", fd, stop.tgid,
                    os.strerror(-result) if result < 0 else f"thread {result}", desc.path)
        if desc.file is not None:
            if desc.file.writable:
                desc.file.mark_untracked()
            else:
                desc.file.ensure_all()


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
