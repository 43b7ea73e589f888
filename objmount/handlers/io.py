"""Data syscalls on virtual descriptors. The kernel serves the bytes from the sparse
cache file; the supervisor only makes sure the range is present first. Nothing is copied
through the supervisor."""

from __future__ import annotations

import os
import struct

from .registry import fd_syscall


def file_position(tid: int, fd: int) -> int:
    """The descriptor's offset, straight from the kernel (shared descriptions move it)."""
    fdinfo = os.open(f"/proc/{tid}/fdinfo/{fd}", os.O_RDONLY)
    try:
        text = os.read(fdinfo, 256)
    finally:
        os.close(fdinfo)
    return int(text.split(b"\n", 1)[0].split(b":", 1)[1])


def _iov_total(stop, addr: int, count: int) -> int:
    count = min(count, 1024)
    data = stop.read(addr, 16 * count)
    return sum(struct.unpack_from("<QQ", data, 16 * i)[1] for i in range(len(data) // 16))


def _offset_at(stop, ptr: int, fd: int) -> int:
    """An optional loff_t* argument: NULL means the descriptor's own offset."""
    if ptr == 0:
        return file_position(stop.tid, fd)
    return struct.unpack("<q", stop.read(ptr, 8))[0]


def _file(sup, stop, fd: int):
    desc = sup.desc(stop, fd)
    return desc.file if desc is not None else None


@fd_syscall(read=(0,))
def on_read(sup, stop) -> None:
    fd = stop.sarg(0)
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(file_position(stop.tid, fd), stop.arg(2))


@fd_syscall(pread64=(0,))
def on_pread(sup, stop) -> None:
    if (file := _file(sup, stop, stop.sarg(0))) is not None:
        file.ensure(stop.arg(3), stop.arg(2))


@fd_syscall(readv=(0,))
def on_readv(sup, stop) -> None:
    fd = stop.sarg(0)
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(file_position(stop.tid, fd), _iov_total(stop, stop.arg(1), stop.arg(2)))


@fd_syscall(preadv=(0,), preadv2=(0,))
def on_preadv(sup, stop) -> None:
    fd = stop.sarg(0)
    if (file := _file(sup, stop, fd)) is not None:
        offset = stop.arg(3)
        if offset == 0xFFFFFFFFFFFFFFFF:  # preadv2 with -1: the current offset
            offset = file_position(stop.tid, fd)
        file.ensure(offset, _iov_total(stop, stop.arg(1), stop.arg(2)))


@fd_syscall(sendfile=(1,))
def on_sendfile(sup, stop) -> None:
    fd = stop.sarg(1)
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(_offset_at(stop, stop.arg(2), fd), stop.arg(3))


@fd_syscall(splice=(0,), copy_file_range=(0,))
def on_splice(sup, stop) -> None:
    """splice(fd_in, off_in*, fd_out, off_out*, len) and copy_file_range (same layout)."""
    fd = stop.sarg(0)
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(_offset_at(stop, stop.arg(1), fd), stop.arg(4))


@fd_syscall(mmap=(4,))
def on_mmap(sup, stop) -> None:
    if (file := _file(sup, stop, stop.sarg(4))) is not None:
        file.ensure(stop.arg(5), stop.arg(1))


@fd_syscall(readahead=(0,), fadvise64=(0,))
def on_readahead(sup, stop) -> None:
    """readahead(fd, offset, count) and fadvise(fd, offset, len, WILLNEED): honour the hint."""
    if (file := _file(sup, stop, stop.sarg(0))) is not None:
        if stop.nr == 187 or stop.arg(3) == 3:  # POSIX_FADV_WILLNEED
            length = stop.arg(2) or max(file.meta.size - stop.arg(1), 0)
            file.ensure(stop.arg(1), length)
