"""Data syscalls on virtual descriptors. The kernel serves the bytes from the sparse
cache file; the supervisor only makes sure the range is present first. Nothing is copied
through the supervisor."""

from __future__ import annotations

import errno
import os
import stat
import struct

from vfs import VfsError

from .. import permissions as perm
from ..linux import POSIX_FADV_WILLNEED, RWF_APPEND, SYS
from .registry import fd_syscall, on_demand_syscall, value_syscall


def file_position(tid: int, fd: int) -> int:
    """The descriptor's offset, straight from the kernel (shared descriptions move it)."""
    fdinfo = os.open(f"/proc/{tid}/fdinfo/{fd}", os.O_RDONLY)
    try:
        text = os.read(fdinfo, 256)
    finally:
        os.close(fdinfo)
    return int(text.split(b"\n", 1)[0].split(b":", 1)[1])


UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFFF000   # the most one read or write moves (INT_MAX & PAGE_MASK)


def _iov_total(stop, addr: int, count: int) -> int:
    """The bytes an iovec array asks for, refused as the kernel refuses it (EINVAL: more
    than UIO_MAXIOV entries, a length negative as ssize_t) before anything is recorded."""
    if count > UIO_MAXIOV:
        raise VfsError(errno.EINVAL, f"iovec count {count} over {UIO_MAXIOV}")
    data = stop.read_in(addr, 16 * count)
    lengths = [struct.unpack_from("<Qq", data, 16 * i)[1] for i in range(len(data) // 16)]
    if any(n < 0 for n in lengths):
        raise VfsError(errno.EINVAL, "an iovec length over SSIZE_MAX")
    return min(sum(lengths), MAX_RW_COUNT)


def _position(offset: int, current_ok: bool = False) -> int | None:
    """A pread/pwrite-family offset argument: negative is EINVAL (-1 with preadv2 and
    pwritev2: None, the descriptor's own offset)."""
    if offset >= 1 << 63:
        if current_ok and offset == 0xFFFFFFFFFFFFFFFF:
            return None
        raise VfsError(errno.EINVAL, "negative file offset")
    return offset


def _offset_at(stop, ptr: int, fd: int) -> int:
    """An optional loff_t* argument: NULL means the descriptor's own offset."""
    if ptr == 0:
        return file_position(stop.tid, fd)
    return struct.unpack("<q", stop.read_in(ptr, 8))[0]


def _file(sup, stop, fd: int):
    """The vfs file behind a virtual descriptor, if a read on it may need fetching. A
    read is an access: atime (vfs/times.py). A file whose reads need us no more is
    offered to be read without stops (objmount/direct_reads.py)."""
    desc = sup.desc(stop, fd)
    if desc is None or desc.file is None:
        return None
    quiet = not desc.noatime and sup.vfs.accessed(desc.path, desc.file)
    if not desc.file.complete:
        return desc.file
    if quiet and sup.direct_reads is not None:
        sup.direct_reads.offer(desc.file)
    return None


@fd_syscall(read=(0,))
def on_read(sup, stop) -> None:
    fd = stop.sarg(0)
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(file_position(stop.tid, fd), stop.arg(2))


@fd_syscall(pread64=(0,))
def on_pread(sup, stop) -> None:
    if (file := _file(sup, stop, stop.sarg(0))) is not None:
        file.ensure(_position(stop.arg(3)), min(stop.arg(2), MAX_RW_COUNT))


@fd_syscall(readv=(0,))
def on_readv(sup, stop) -> None:
    fd = stop.sarg(0)
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(file_position(stop.tid, fd), _iov_total(stop, stop.arg(1), stop.arg(2)))


@fd_syscall(preadv=(0,), preadv2=(0,))
def on_preadv(sup, stop) -> None:
    fd = stop.sarg(0)
    if (file := _file(sup, stop, fd)) is not None:
        offset = _position(stop.arg(3), current_ok=stop.nr == SYS.preadv2)
        if offset is None:  # preadv2 with -1: the current offset
            offset = file_position(stop.tid, fd)
        file.ensure(offset, _iov_total(stop, stop.arg(1), stop.arg(2)))


@fd_syscall(sendfile=(0, 1))
def on_sendfile(sup, stop) -> None:
    """sendfile(out_fd, in_fd, offset*, count)"""
    fd = stop.sarg(1)
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(_offset_at(stop, stop.arg(2), fd), stop.arg(3))
    _will_write(sup, stop, stop.sarg(0), None, stop.arg(3), length_arg=3)


@fd_syscall(splice=(0, 2), copy_file_range=(0, 2))
def on_splice(sup, stop) -> None:
    """splice(fd_in, off_in*, fd_out, off_out*, len) and copy_file_range (same layout)."""
    fd = stop.sarg(0)
    if stop.nr == SYS.copy_file_range and (sup.desc(stop, fd) is not None or sup.desc(stop, stop.sarg(2)) is not None):
        # generic_copy_file_checks: a range that wraps past the largest offset is EOVERFLOW
        length = stop.arg(4)
        for ptr, desc_fd in ((stop.arg(1), fd), (stop.arg(3), stop.sarg(2))):
            pos = _offset_at(stop, ptr, desc_fd)
            if pos + length >= 1 << 64:   # loff_t + size_t: unsigned, as the kernel adds them
                raise VfsError(errno.EOVERFLOW, "copy_file_range: the range wraps")
    if (file := _file(sup, stop, fd)) is not None:
        file.ensure(_offset_at(stop, stop.arg(1), fd), stop.arg(4))
    out = stop.sarg(2)
    if sup.desc(stop, out) is not None:
        ptr = stop.arg(3)
        _will_write(sup, stop, out, _offset_at(stop, ptr, out) if ptr else None, stop.arg(4), length_arg=4)


MAP_SHARED = 0x01
PROT_WRITE = 0x2


@fd_syscall(mmap=(4,))
def on_mmap(sup, stop) -> None:
    desc = sup.desc(stop, stop.sarg(4))
    if desc is None or desc.file is None:
        return
    file = desc.file
    if not desc.noatime:
        sup.vfs.accessed(desc.path, file)
    file.ensure(stop.arg(5), stop.arg(1))
    if stop.arg(3) & MAP_SHARED and stop.arg(2) & PROT_WRITE and file.writable:
        # Stores through the mapping are invisible to us: the mapped range counts as
        # written, and goes up at msync, munmap, the last close, exec or exit.
        file.will_write(stop.arg(5), stop.arg(1))
        addr = stop.run()
        if addr < 0:
            return
        desc.maps += 1
        proc = sup.proc(stop)
        proc.mapped.append((addr, addr + stop.arg(1), desc.retain()))
        sup.watch_syscalls(stop, "munmap", "msync")


@on_demand_syscall("msync")
def on_msync(sup, stop) -> None:
    start, end = stop.arg(0), stop.arg(0) + stop.arg(1)
    for m_start, m_end, desc in sup.proc(stop).mapped:
        if m_start < end and start < m_end and desc.file is not None and desc.file.dirty:
            try:
                desc.file.flush(landed=stop.tid)
            except VfsError as exc:
                sup.report(exc)
                stop.fail(errno.EIO)
                return


@on_demand_syscall("munmap")
def on_munmap(sup, stop) -> None:
    proc = sup.proc(stop)
    if proc.mapped:
        proc.unmap(stop.arg(0), stop.arg(0) + stop.arg(1))


# --- writes: the kernel writes into the cache file; we record what it will touch -------
def _will_write(sup, stop, fd: int, offset: int | None, length: int, length_arg: int | None = None) -> None:
    """Record [offset, offset+length) of a virtual descriptor as written. offset None:
    the descriptor's own position (or the end of file, with O_APPEND). length_arg: the
    call may copy fewer bytes than asked (sendfile, splice, copy_file_range), so the vfs
    may shorten it to end at a write-behind part boundary."""
    desc = sup.desc(stop, fd)
    if desc is None or desc.file is None or not desc.file.writable:
        return
    length = min(length, MAX_RW_COUNT)   # the kernel moves no more in one call
    _kill_setid(sup, stop, desc.file)
    settle = False
    if offset is None and not desc.append:
        offset = file_position(stop.tid, fd)
        # Another process (or thread) writing at this description's position at the same
        # time (forked children) may land first and push this write elsewhere than the
        # position read here, where nothing would record it: bytes of the previous version
        # fetched over it, or copied over it at the upload. A write of a description other
        # processes hold (threads: once two have written) that may land where the previous
        # version still has bytes runs to its exit here, in its turn on the file, so that
        # the next one reads where it ended. Past those bytes (a new or truncated file:
        # `make -j > log`, every append) a write pushed elsewhere is harmless.
        if desc.last_writer not in (None, stop.tid):
            desc.contended = True
        desc.last_writer = stop.tid
        shared = desc.tables > 1 or sup.proc(stop).fds.users > 1 or desc.contended
        settle = shared and offset < desc.file.item.size
    elif offset is None:
        offset = os.stat(desc.file.cache_path).st_size
    # The kernel writes, and we never see its answer: a write the cache disk cannot take
    # is failed here (ENOSPC, the file marked failed: its close fails, nothing goes up),
    # after evicting clean data; a call that may copy less is shortened instead.
    room = sup.vfs.cache.reserve(desc.file.item, length, desc.path, may_shorten=length_arg is not None)
    try:
        allowed = desc.file.will_write(offset, room, writer=stop.tid, may_shorten=length_arg is not None)
    except VfsError as exc:  # not recorded (the journal's disk is full): the write fails, and so does the file
        desc.file.item.failed = exc
        raise
    if length_arg is not None and 0 < allowed < length:
        stop.set_arg(length_arg, allowed)
    if settle:
        stop.run()


def _kill_setid(sup, stop, file) -> None:
    """A write or truncate by a caller without CAP_FSETID clears the file's set-id bits, as
    the kernel's file_remove_privs does before the write (the open for writing clears
    nothing). One bit test when there are none, the usual case."""
    mode = (file.item.attrs or {}).get("mode", file.meta.mode)
    if mode & (stat.S_ISUID | stat.S_ISGID) and (new := perm.write_kills_setid(file.current_meta(), sup.creds(stop))) is not None:
        file.set_attrs(mode=stat.S_IFMT(mode) | new)


@fd_syscall(write=(0,))
def on_write(sup, stop) -> None:
    _will_write(sup, stop, stop.sarg(0), None, stop.arg(2))


@fd_syscall(pwrite64=(0,))
def on_pwrite(sup, stop) -> None:
    fd = stop.sarg(0)
    desc = sup.desc(stop, fd)
    if desc is None or desc.file is None:
        return
    offset = _position(stop.arg(3))
    # Linux pwrite on an O_APPEND descriptor appends anyway.
    _will_write(sup, stop, fd, None if desc.append else offset, stop.arg(2))


@fd_syscall(writev=(0,))
def on_writev(sup, stop) -> None:
    fd = stop.sarg(0)
    if sup.desc(stop, fd) is not None:
        _will_write(sup, stop, fd, None, _iov_total(stop, stop.arg(1), stop.arg(2)))


@fd_syscall(pwritev=(0,), pwritev2=(0,))
def on_pwritev(sup, stop) -> None:
    fd = stop.sarg(0)
    desc = sup.desc(stop, fd)
    if desc is None:
        return
    offset = _position(stop.arg(3), current_ok=stop.nr == SYS.pwritev2)
    append = desc.append or (stop.nr == SYS.pwritev2 and stop.arg(5) & RWF_APPEND)
    _will_write(sup, stop, fd, None if append else offset, _iov_total(stop, stop.arg(1), stop.arg(2)))


@fd_syscall(ftruncate=(0,))
def on_ftruncate(sup, stop) -> None:
    desc = sup.desc(stop, stop.sarg(0))
    if desc is None or desc.file is None or not desc.file.writable:
        return  # the kernel answers (EINVAL/EBADF) for other descriptors
    length = stop.arg(1)
    if length >= 1 << 63:
        stop.fail(errno.EINVAL)
        return
    sup.vfs.check_size(desc.file.cache_path, length)   # EFBIG before the size is recorded
    _kill_setid(sup, stop, desc.file)
    desc.file.set_size(length, writer=stop.tid)


FALLOC_FL_KEEP_SIZE = 1


@fd_syscall(fallocate=(0,))
def on_fallocate(sup, stop) -> None:
    desc = sup.desc(stop, stop.sarg(0))
    if desc is None or desc.file is None or not desc.file.writable:
        return
    mode, offset, length = stop.arg(1), stop.arg(2), stop.arg(3)
    if mode & ~FALLOC_FL_KEEP_SIZE:
        stop.fail(errno.EOPNOTSUPP)  # punching holes or collapsing ranges: not on objects
        return
    _kill_setid(sup, stop, desc.file)
    size = os.stat(desc.file.cache_path).st_size
    if not mode & FALLOC_FL_KEEP_SIZE and offset + length > size:
        desc.file.will_write(size, offset + length - size, writer=stop.tid)
    elif length > 0:
        desc.file.touch()  # no new bytes, but the file changed: mtime and ctime, as the kernel's


@fd_syscall(fsync=(0,), fdatasync=(0,))
def on_fsync(sup, stop) -> None:
    desc = sup.desc(stop, stop.sarg(0))
    if desc is not None and desc.file is not None and desc.file.writable:
        try:
            desc.file.flush(landed=stop.tid)
        except VfsError as exc:
            sup.report(exc)
            stop.fail(errno.EIO)  # the data did not reach the bucket; it stays in the cache


@fd_syscall(readahead=(0,), fadvise64=(0,))
def on_readahead(sup, stop) -> None:
    """readahead(fd, offset, count) and fadvise(fd, offset, len, WILLNEED): honour the hint."""
    if (file := _file(sup, stop, stop.sarg(0))) is not None:
        if stop.nr == SYS.readahead or stop.arg(3) == POSIX_FADV_WILLNEED:
            length = stop.arg(2) or max(file.meta.size - stop.arg(1), 0)
            file.ensure(stop.arg(1), length)


# --- reflinks: the kernel would share blocks of the cache files behind our back ----------
FICLONE = 0x40049409         # ioctl(dest, FICLONE, src)
FICLONERANGE = 0x4020940D    # ioctl(dest, FICLONERANGE, {s64 src_fd, u64 src_offset, src_length, dest_offset})
FIDEDUPERANGE = 0xC0189436   # ioctl(src, FIDEDUPERANGE, {u64 offset, length; u16 count; ...; {s64 dest_fd, ...}[count]})


FS_IOC_SETFLAGS = 0x40086602     # chattr: immutable, append-only, ...
FS_IOC_FSSETXATTR = 0x401C5820   # the same flags, xfs's way


FIONCLEX = 0x5450   # ioctl(fd, FIONCLEX): clear close-on-exec (Python's os.set_inheritable, libuv)
FIOCLEX = 0x5451    # ioctl(fd, FIOCLEX): set it


@value_syscall("ioctl", 1, {FICLONE, FICLONERANGE, FIDEDUPERANGE, FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR, FIOCLEX, FIONCLEX})
def on_clone_ioctl(sup, stop) -> None:
    """A clone or dedupe naming a virtual descriptor on either side fails with EOPNOTSUPP,
    as on a filesystem without reflinks (cp falls back to copy_file_range or read/write).
    On a cache filesystem with reflinks (XFS, btrfs) the kernel would otherwise clone the
    cache files themselves: the holes of bytes not fetched yet into the copy (zeros where
    data is), and into a virtual file bytes it never records as written (never uploaded).
    The descriptors are all read, since BPF cannot see the ones in memory."""
    request, arg = stop.arg(1) & 0xFFFFFFFF, stop.arg(2)
    if request in (FIOCLEX, FIONCLEX):
        # as F_SETFD: whether an exec closes it (else the program it runs holds a virtual
        # descriptor we would not know of: its reads and writes never stopped)
        entry = sup.proc(stop).fds.fds.get(stop.sarg(0))
        if entry is not None:
            entry.cloexec = request == FIOCLEX
        return
    if request in (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR):
        # No inode flags on objects: they would land on the cache file (an immutable one
        # objmount could no longer fill, evict or replace) and never reach the bucket. A
        # filesystem without them answers ENOTTY.
        if sup.desc(stop, stop.sarg(0)) is not None:
            stop.fail(errno.ENOTTY)
        return
    fds = [stop.arg(0)]
    try:
        if request == FICLONE:
            fds.append(arg)
        elif request == FICLONERANGE:
            fds.append(struct.unpack("<Q", stop.read(arg, 8))[0])
        else:
            count = min(struct.unpack("<H", stop.read(arg + 16, 2))[0], 127)   # the kernel's limit
            data = stop.read(arg + 24, 32 * count)
            fds += [struct.unpack_from("<Q", data, 32 * i)[0] for i in range(len(data) // 32)]
    except OSError:
        return  # unreadable argument: the kernel answers EFAULT
    # the kernel takes each descriptor's low word (an int)
    if any(sup.desc(stop, fd & 0xFFFFFFFF) is not None for fd in fds if fd & 0xFFFFFFFF < 1 << 31):
        stop.fail(errno.EOPNOTSUPP)
