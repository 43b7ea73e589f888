"""Descriptor bookkeeping: close, dup*, fcntl(F_DUPFD*, F_SETFD), close_range, and
virtual descriptors sent to another process (sendmsg with SCM_RIGHTS)."""

from __future__ import annotations

import errno
import struct

from vfs import VfsError

from ..linux import SYS
from .registry import always_syscall, fd_syscall, on_demand_syscall

F_DUPFD = 0
F_SETFD = 2
F_DUPFD_CLOEXEC = 1030
F_SETLEASE = 1024
F_SETFL = 4
O_NOATIME = 0o1000000
O_APPEND = 0o2000
FD_CLOEXEC = 1
O_CLOEXEC = 0o2000000
CLOSE_RANGE_UNSHARE = 2
CLOSE_RANGE_CLOEXEC = 4


@fd_syscall(close=(0,))
def on_close(sup, stop) -> None:
    """The last close of a written file uploads it before close() returns; if that
    fails the descriptor is still closed and close() returns EIO."""
    fd = stop.sarg(0)
    fds = sup.proc(stop).fds
    desc = fds.get(fd)
    if desc is None:
        return
    error = None
    if desc.refs - desc.maps == 1 and desc.file is not None and desc.file.writable and desc.file.dirty:
        try:
            desc.file.flush(landed=stop.tid)
        except VfsError as exc:
            sup.report(exc)
            # the data did not reach the bucket: ENOSPC if a write failed for room, else EIO
            error = errno.ENOSPC if exc.errno == errno.ENOSPC else errno.EIO
    fds.remove(fd)
    if error is not None:
        stop.run()
        stop.set_result(-error)


@fd_syscall(dup=(0,))
def on_dup(sup, stop) -> None:
    desc = sup.desc(stop, stop.sarg(0))
    if desc is None:
        return
    fd = stop.run()
    if fd >= 0:
        sup.install(stop, fd, desc, cloexec=False)


def _dup_onto(sup, stop, cloexec: bool) -> None:
    old, new = stop.sarg(0), stop.sarg(1)
    fds = sup.proc(stop).fds
    desc = fds.get(old)
    if old == new or (desc is None and fds.get(new) is None):
        return  # nothing virtual on either side (a watched number holding a local file)
    if stop.run() < 0:
        return
    fds.remove(new)
    if desc is not None:
        sup.install(stop, new, desc, cloexec)


@fd_syscall(dup2=(0, 1))
def on_dup2(sup, stop) -> None:
    _dup_onto(sup, stop, cloexec=False)


@fd_syscall(dup3=(0, 1))
def on_dup3(sup, stop) -> None:
    _dup_onto(sup, stop, cloexec=bool(stop.arg(2) & O_CLOEXEC))


@fd_syscall(fcntl=(0,))
def on_fcntl(sup, stop) -> None:
    fd, cmd = stop.sarg(0), stop.arg(1)
    fds = sup.proc(stop).fds
    desc = fds.get(fd)
    if desc is None:
        return
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        new = stop.run()
        if new >= 0:
            sup.install(stop, new, desc, cmd == F_DUPFD_CLOEXEC)
    elif cmd == F_SETFD:
        fds.fds[fd].cloexec = bool(stop.arg(2) & FD_CLOEXEC)
    elif cmd == F_SETFL and (desc.noatime != bool(stop.arg(2) & O_NOATIME)
                             or desc.append != bool(stop.arg(2) & O_APPEND)):
        # where the next write lands (handlers/io.py) and whether reads move atime
        if stop.run() == 0:
            desc.noatime = bool(stop.arg(2) & O_NOATIME)
            desc.append = bool(stop.arg(2) & O_APPEND)
    elif cmd == F_SETLEASE:
        # A lease would be on the cache file, and objmount's own opens and truncations of
        # it would wait for the holder, which waits for objmount: no leases, as on a
        # filesystem without them (NFS, FUSE).
        stop.fail(errno.EINVAL)


@always_syscall("close_range")
def on_close_range(sup, stop) -> None:
    first, last, flags = stop.arg(0), stop.arg(1), stop.arg(2)
    proc = sup.proc(stop)
    if not any(first <= fd <= last for fd in proc.fds.fds):
        return
    if flags & CLOSE_RANGE_UNSHARE and proc.fds.users > 1:
        proc.fds.users -= 1
        proc.fds = proc.fds.copy()
        proc.fds.users = 1
    for fd in [fd for fd in proc.fds.fds if first <= fd <= last]:
        if flags & CLOSE_RANGE_CLOEXEC:
            proc.fds.fds[fd].cloexec = True
        else:
            proc.fds.remove(fd)


SOL_SOCKET = 1
SCM_RIGHTS = 1
MSGHDR = 56          # struct msghdr on x86_64; msg_control at 32, msg_controllen at 40
MMSGHDR = 64         # struct mmsghdr: a msghdr and its msg_len, padded
UIO_MAXIOV = 1024    # the most messages one sendmmsg sends
CONTROL_MAX = 1 << 16


def passed_fds(stop) -> list[int]:
    """The descriptors a sendmsg or sendmmsg passes (SCM_RIGHTS); [] when nothing readable."""
    memo = stop.memo.get("passed")
    if memo is not None:
        return memo
    fds: list[int] = []
    try:
        if stop.nr == SYS.sendmsg:
            headers = [stop.read(stop.arg(1), MSGHDR)]
        else:
            count = min(stop.arg(2), UIO_MAXIOV)
            data = stop.read(stop.arg(1), MMSGHDR * count) if count else b""
            headers = [data[MMSGHDR * i:MMSGHDR * i + MSGHDR] for i in range(count)]
        for header in headers:
            control, length = struct.unpack_from("<QQ", header, 32)
            if not control or length < 16:
                continue
            buf = stop.read(control, min(length, CONTROL_MAX))
            at = 0
            while at + 16 <= len(buf):
                size, level, kind = struct.unpack_from("<Qii", buf, at)
                if size < 16:
                    break
                if level == SOL_SOCKET and kind == SCM_RIGHTS:
                    body = buf[at + 16:at + min(size, len(buf) - at)]
                    fds += [fd for (fd,) in struct.iter_unpack("<i", body[:len(body) // 4 * 4])]
                at += (size + 7) & ~7
    except (OSError, struct.error):
        fds = []   # the kernel answers EFAULT (or sends no descriptors)
    stop.memo["passed"] = fds
    return fds


@on_demand_syscall("sendmsg", "sendmmsg")
def on_sendmsg(sup, stop) -> None:
    """A virtual descriptor sent over a unix socket lands in a process whose table does
    not list it, whose reads and writes never stop: see Supervisor.sent."""
    descs = {id(d): d for fd in passed_fds(stop) if (d := sup.desc(stop, fd)) is not None}
    if descs:
        sup.sent(list(descs.values()))


def _pidfd_target(stop, pidfd: int):
    """The pid a pidfd of the calling process refers to, or None."""
    try:
        with open(f"/proc/{stop.tid}/fdinfo/{pidfd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@always_syscall("pidfd_getfd")
def on_pidfd_getfd(sup, stop) -> None:
    """pidfd_getfd(pidfd, targetfd, flags): a copy of another process's descriptor, with
    close-on-exec. A virtual one joins this process's table, watched like any other."""
    pid = _pidfd_target(stop, stop.sarg(0))
    proc = sup.procs.procs.get(pid) if pid is not None else None
    desc = proc.fds.get(stop.sarg(1)) if proc is not None else None
    if desc is None:
        return
    fd = stop.run()
    if fd >= 0:
        sup.install(stop, fd, desc, cloexec=True)
