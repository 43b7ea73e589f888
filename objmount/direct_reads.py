"""Reads that need no stop.

A virtual descriptor is a descriptor of the file's sparse cache file: the kernel serves its
reads, which stop only so that the supervisor can fetch a missing range first and keep
atime (vfs/times.py). Once every byte of a file is local, nothing of it waits to go up and
a read would leave atime as it is (relatime), a read needs nothing from us. The cache file
then gets an extended attribute whose value is this run's own (the fast-path library's
read mark, tracer/prefilter.py), and the library's read() and pread() on a descriptor of it
go to the kernel without a stop (prefilter.c, "reads of a marked file"): a stop costs
30-100 µs, the library's check one fgetxattr.

The marks come off before anything that could make a read need us again: every handled
stop of a call other than the read-only ones below (a write, a truncate, a chmod, a
rename, an open that may find a new version, a close that may upload, ...), and every exit
or exec that closes virtual descriptors. All of it happens under the supervisor's lock, as
every handler does, so a mark is never made on a state a concurrent handler is changing.
A mark left behind (a killed run) has a value no later run uses.

Kept as before (a stop per read): a cache filesystem without user extended attributes, a
file with several names (hard links share times differently), descriptors opened with
O_NOATIME while atime is due, static programs, and reads through stdio (glibc's fread
reads inside libc, where no preload sees it).
"""

from __future__ import annotations

import errno
import logging
import os

from vfs import VfsError

from .linux import SYS

log = logging.getLogger("objmount")

XATTR = "user.objmount.reads"

# Calls after which every marked file may still be read without us: they change no file's
# bytes, size, names or times (a read's atime is what the mark waits for).
READ_ONLY = frozenset(
    getattr(SYS, name) for name in (
        "read", "pread64", "readv", "preadv", "preadv2", "lseek", "fadvise64", "fcntl",
        "fstat", "newfstatat", "statx", "stat", "lstat", "statfs", "fstatfs",
        "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64",
        "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "getcwd"))


class DirectReads:
    """The cache files marked for reads without a stop, and their marks' value."""

    def __init__(self):
        self.value = os.urandom(8).hex()
        self._marked: dict[str, int] = {}   # cache item id -> our descriptor of its file
        self._unsupported = False

    @property
    def mark(self) -> tuple[str, str]:
        """(name, value) for the fast-path library."""
        return XATTR, self.value

    def offer(self, file) -> None:
        """A read of `file` (a vfs OpenFile) was just handled, and a read now would change
        its atime no more: mark it if its every byte is local and clean."""
        item = file.item
        if self._unsupported or item.id in self._marked or not file.complete or file.dirty:
            return
        try:
            fd = os.open(file.cache_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if os.fstat(fd).st_nlink != 1 or file.current_meta().nlink != 1:
                os.close(fd)
                return
            os.setxattr(fd, XATTR, self.value.encode())
        except VfsError:   # the file's attributes could not be had: reads stop, as before
            os.close(fd)
            return
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                self._unsupported = True
                log.debug("reads of virtual files stop each time: the cache's filesystem takes "
                          "no user extended attributes (%s)", exc.strerror)
            return
        self._marked[item.id] = fd

    def revoke(self) -> None:
        """Take every mark off: something may be about to change a file."""
        if not self._marked:
            return
        for item_id, fd in self._marked.items():
            try:
                os.removexattr(fd, XATTR)
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    log.error("cache item %s: its read mark could not be taken off (%s): reads of it "
                              "may miss later changes", item_id, exc.strerror)
            os.close(fd)
        self._marked.clear()
