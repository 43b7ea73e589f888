"""Handing the program a descriptor the supervisor opened, instead of a path to open.

The cache is private to the supervisor (0700), and whether the program may open a
virtual file is decided by objmount (objmount/permissions.py), not by the cache file's
mode. So a virtual open is not rewritten to the cache file's path: the supervisor opens
the file itself and passes the descriptor over a unix socket (SCM_RIGHTS) into the
program, with the number, flags and errors the kernel's open would have given:

- each process (descriptor table) holds one end of a stream socket connected to the
  supervisor's listening socket (abstract name, peers checked by SO_PEERCRED), at number
  1023 (or the highest its RLIMIT_NOFILE allows), close-on-exec; made on first need by injected
  socket + connect + fcntl(F_DUPFD_CLOEXEC) + close, made again if the program closed it;
- the supervisor sendmsg()s the descriptor and the open itself becomes
  recvmsg(MSG_DONTWAIT, MSG_CMSG_CLOEXEC as the open's O_CLOEXEC asks), its argument
  registers given back at its exit: the kernel installs it at the lowest free number, as
  open would. When the channel is still to be made (or was lost), the open becomes
  getpid() (a call that cannot block), and at its exit the channel is made and recvmsg
  injected;
- file status flags (access mode, O_APPEND, O_NONBLOCK, O_DIRECT...) are the supervisor's
  open's, on the open file description the program gets;
- no free number: the received descriptor is dropped (MSG_CTRUNC) and the program gets
  EMFILE. The socket's own number counts against RLIMIT_NOFILE, so when it holds the last
  free number the open falls back to the path (`None` from hand_over).
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracer import NR

if TYPE_CHECKING:
    import socket

log = logging.getLogger("objmount")

_SYS = NR   # syscall numbers by name
_F_DUPFD_CLOEXEC = 1030
_SOCK_CLOEXEC = 0o2000000
_MSG_DONTWAIT, _MSG_CTRUNC, _MSG_CMSG_CLOEXEC = 0x40, 0x8, 0x40000000
_SCM_RIGHTS = 1
_SOL_SOCKET = 1
# (the socket module is imported only once a descriptor is handed over)
_AF_UNIX, _SOCK_STREAM, _SO_PEERCRED, _MSG_NOSIGNAL = 1, 1, 17, 0x4000
# Flags that belong to the lookup or the descriptor, not to the open file description.
_NOT_DESCRIPTION = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


@dataclass(eq=False)
class Channel:
    fd: int                 # its number in the program
    conn: socket.socket     # the supervisor's end


class Handover:
    def __init__(self):
        self._listener: socket.socket | None = None
        self._address = b""
        self.broken = False    # no listener could be made: paths it is

    def _listen(self) -> bool:
        if self._listener is None and not self.broken:
            import secrets   # here, not at start: a run that opens no virtual file never needs them
            import socket
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                self._address = b"\0objmount-%d-%s" % (os.getpid(), secrets.token_hex(8).encode())
                sock.bind(self._address)
                sock.listen(16)
                sock.setblocking(False)
                self._listener = sock
            except OSError as exc:
                log.warning("cannot make the descriptor socket (%s): virtual files are opened by path", exc)
                self.broken = True
        return self._listener is not None

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def hand_over(self, sup, stop, local: str, flags: int) -> int | None:
        """At the entry of an open: open `local` here and give the program the
        descriptor. Returns what the program got (a number or -errno), or None when no
        channel can be made at all: the caller lets the program open the path."""
        if not self._listen():
            return None
        try:
            fd = os.open(local, flags & ~_NOT_DESCRIPTION)
        except OSError as exc:
            stop.fail(exc.errno)
            return -exc.errno
        try:
            return self._give(sup, stop, fd, flags, os.fsencode(local))
        finally:
            os.close(fd)

    def exec_by_fd(self, sup, stop, path_index: int, local: str, script: bool) -> bool:
        """At the entry of an execve: hand the program a descriptor of `local` and make it
        exec /proc/self/fd/N, which the kernel opens without walking the private cache's
        path. A script keeps N open (its interpreter opens that path, as after fexecve);
        a binary's N closes at the exec. False: no channel, the caller rewrites the path."""
        if not self._listen():
            return False
        at = stop.push(bytes(32))
        by_path = stop.push(os.fsencode(local) + b"\0")
        try:
            fd = os.open(local, os.O_RDONLY)
        except OSError:
            return False
        try:
            got = self._give(sup, stop, fd, 0 if script else os.O_CLOEXEC, os.fsencode(local), by_path=False)
        finally:
            os.close(fd)
        reg = ("rdi", "rsi")[path_index]
        if got is None or got < 0:   # the kernel's answer to the cache file's path, then
            stop.enter_again(**{reg: by_path})
            return True
        stop.write(at, b"/proc/self/fd/%d\0" % got)
        stop.enter_again(**{reg: at})
        return True

    def chdir_by_fd(self, sup, stop, local: str) -> int | None:
        """At the entry of a chdir: fchdir to a handed-over descriptor of the directory
        `local` (then closed), which a program running as another user could not reach
        by its path. Returns chdir's result; None: no channel (nothing was done)."""
        if not self._listen():
            return None
        try:
            fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            stop.fail(exc.errno)
            return -exc.errno
        try:
            got = self._give(sup, stop, fd, os.O_CLOEXEC, os.fsencode(local), by_path=False)
        finally:
            os.close(fd)
        if got is None:
            got = -errno.EACCES   # what the private directory's path answers
        elif got >= 0:
            new = got
            got = stop.inject(_SYS["fchdir"], new)
            stop.inject(_SYS["close"], new)
        stop.set_result(got)
        return got

    def _give(self, sup, stop, fd: int, flags: int, local: bytes, by_path: bool = True) -> int | None:
        addr_len = 2 + len(self._address)
        blob_len = 56 + 16 + 24 + 8 + ((addr_len + 7) & ~7) + len(local) + 1
        base = stop.push(bytes(blob_len))
        msghdr, iov, control, data, sockaddr = base, base + 56, base + 72, base + 96, base + 104
        path = sockaddr + ((addr_len + 7) & ~7)
        stop.write(base, struct.pack("<QI4xQQQQi4x", 0, 0, iov, 1, control, 24, 0)
                   + struct.pack("<QQ", data, 1) + bytes(24) + bytes(8)
                   + struct.pack("<H", _AF_UNIX) + self._address
                   + bytes(((addr_len + 7) & ~7) - addr_len) + local + b"\0")
        table = sup.proc(stop).fds
        # One descriptor in flight per channel: two threads of the process handled at
        # once must not receive each other's.
        with sup.turns.turn(("channel", id(table))):
            if table.channel is not None and self._as_the_call(stop, table, fd, flags, msghdr) == 1:
                return self._installed(stop, table, table.channel, msghdr, control, path, flags, by_path)
            if not stop.at_exit:
                stop.become(_SYS["getpid"])   # a call that cannot block nor be interrupted
                stop.run()
            return self._through(sup, stop, table, fd, flags, msghdr, control, sockaddr, addr_len, path, by_path)

    def _as_the_call(self, stop, table, fd: int, flags: int, msghdr: int) -> int | None:
        """Send `fd` on the process's channel and make the stopped call the recvmsg that
        takes it (one request): its result, at the call's exit, with the program's
        argument registers back. None: nothing sent. A channel that did not deliver is
        dropped (with any message left in it), to be made again."""
        chan = table.channel
        try:
            _send(chan, fd)
        except OSError:   # every holder of the program's end closed it
            chan.conn.close()
            table.channel = None
            return None
        stop.become(_SYS["recvmsg"], chan.fd, msghdr, _recv_flags(flags))
        got = None
        try:
            got = stop.run()
        finally:
            if got != 1:   # not our socket any more (closed, or its number reused)
                chan.conn.close()
                table.channel = None
        stop.give_back_args()
        return got

    def _through(self, sup, stop, table, fd: int, flags: int, msghdr: int, control: int, sockaddr: int,
                 addr_len: int, path: int, by_path: bool) -> int | None:
        for attempt in range(2):
            chan = table.channel
            if chan is None:
                with sup.turns.turn(("listener",)):   # the connection accepted is this one's
                    chan = table.channel = self._connect(stop, sockaddr, addr_len)
                if chan is None:
                    return self._by_path(stop, path, flags) if by_path else None
            try:
                _send(chan, fd)
                got = stop.inject(_SYS["recvmsg"], chan.fd, msghdr, _recv_flags(flags))
            except OSError:   # every holder of the program's end closed it
                got = -errno.EPIPE
            if got == 1:
                break
            # Not our socket any more (closed by the program, or its number reused): the
            # message stays unread on a connection nobody will read; drop it and reconnect.
            chan.conn.close()
            table.channel = None
        else:
            return self._by_path(stop, path, flags) if by_path else None
        return self._installed(stop, table, chan, msghdr, control, path, flags, by_path)

    def _installed(self, stop, table, chan: Channel, msghdr: int, control: int, path: int, flags: int,
                   by_path: bool) -> int | None:
        """After a recvmsg that read our byte: the number the program got (its result
        set), or -EMFILE when its table had none free (None, or the path's open, when
        only the channel's own number was free: see _through)."""
        head = stop.read(msghdr, 56)
        _, _, _, _, _, controllen, msg_flags = struct.unpack("<QI4xQQQQi4x", head)
        if controllen >= 20:
            _, level, kind, new = struct.unpack("<QiiI", stop.read(control, 20))
            if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
                stop.set_result(new)
                return new
        if msg_flags & _MSG_CTRUNC and self._free_below(stop, chan.fd) is False:
            # Only the channel's own number was free: native open would have taken it.
            log.debug("[%d] descriptor %d: the channel's number was the last free one", stop.tid, chan.fd)
            stop.inject(_SYS["close"], chan.fd)
            chan.conn.close()
            table.channel = None
            return self._by_path(stop, path, flags) if by_path else None
        err = errno.EMFILE if msg_flags & _MSG_CTRUNC else errno.EIO
        stop.set_result(-err)
        return -err

    def _by_path(self, stop, path: int, flags: int) -> int:
        """No channel: the program opens the cache file by its path after all (works for
        programs running as the supervisor's user)."""
        out = stop.inject(_SYS["openat"], -100, path, flags & ~(os.O_CREAT | os.O_EXCL), 0)
        stop.set_result(out)
        return out

    def _free_below(self, stop, chan_fd: int) -> bool | None:
        """Whether the program has a free number other than the channel's below its
        limit (None: cannot tell)."""
        limit = _nofile(stop.tid)
        if limit is None:
            return None
        try:
            used = {int(n) for n in os.listdir(f"/proc/{stop.tid}/fd")}
        except OSError:
            return None
        return any(n not in used for n in range(min(limit, 1 << 20)) if n != chan_fd)

    def _connect(self, stop, sockaddr: int, addr_len: int) -> Channel | None:
        """Inject the making of the program's end of the channel."""
        tmp = stop.inject(_SYS["socket"], _AF_UNIX, _SOCK_STREAM | _SOCK_CLOEXEC, 0)
        if tmp < 0:
            return None
        try:
            if stop.inject(_SYS["connect"], tmp, sockaddr, addr_len) != 0:
                return None
            conn = self._accept(stop.tgid)
            if conn is None:
                return None
            limit = _nofile(stop.tid) or 1024
            high = -1
            # Near the top of the usual limit (1024): high enough that programs' own numbers
            # rarely meet it, low enough that the kernel's descriptor table (copied at each
            # fork) stays small where the limit is a million.
            for start in (min(limit, 1024) - 1, min(limit, 1024) // 2):
                high = stop.inject(_SYS["fcntl"], tmp, _F_DUPFD_CLOEXEC, start)
                if high >= 0:
                    break
            if high < 0:
                conn.close()
                return None
            return Channel(high, conn)
        finally:
            stop.inject(_SYS["close"], tmp)

    def _accept(self, tgid: int) -> socket.socket | None:
        """The connection the program just made (others, from anyone else, are closed)."""
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return None
            pid, _, _ = struct.unpack("3i", conn.getsockopt(_SOL_SOCKET, _SO_PEERCRED, 12))
            if pid == tgid:
                conn.setblocking(True)
                return conn
            conn.close()


def _nofile(tid: int) -> int | None:
    try:
        with open(f"/proc/{tid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _send(chan: Channel, fd: int) -> None:
    """Put `fd` on the channel (one byte with it) for the program's recvmsg to take."""
    chan.conn.sendmsg([b"\0"], [(_SOL_SOCKET, _SCM_RIGHTS, struct.pack("i", fd))], _MSG_NOSIGNAL)


def _recv_flags(open_flags: int) -> int:
    """The program's recvmsg flags: never blocking; close-on-exec as its open asked."""
    return _MSG_DONTWAIT | (_MSG_CMSG_CLOEXEC if open_flags & os.O_CLOEXEC else 0)
