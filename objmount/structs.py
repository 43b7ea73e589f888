"""Kernel structures the supervisor fills in for emulated syscalls (x86_64 layouts)."""

from __future__ import annotations

import os
import stat
import struct

from .paths import NAME_MAX

# A device number of our own so that st_dev tells virtual files from local ones
# (find -xdev, cp's same-file checks, tar's hard-link detection).
VIRTUAL_DEV_MAJOR = 0
VIRTUAL_DEV_MINOR = 0x4F4D  # "OM"
VIRTUAL_DEV = (VIRTUAL_DEV_MAJOR << 8) | VIRTUAL_DEV_MINOR
BLKSIZE = 1 << 20  # large, so cp and friends use large reads

STATX_BASIC_STATS = 0x7FF
STATX_SIZE = 256


def _split_time(ns: int) -> tuple[int, int]:
    """(tv_sec, tv_nsec) of a time in integer nanoseconds: exact, tv_nsec in [0, 1e9)."""
    return divmod(int(ns), 1_000_000_000)


def _nlink(meta) -> int:
    return 2 if stat.S_ISDIR(meta.mode) else meta.nlink


def pack_stat(meta) -> bytes:
    size = meta.size
    return struct.pack(
        "<QQQIIIiQqqqqqqqqq3q",
        VIRTUAL_DEV, meta.ino, _nlink(meta), meta.mode, meta.uid, meta.gid, 0, meta.rdev,
        size, BLKSIZE, (size + 511) // 512,
        *_split_time(meta.atime_ns), *_split_time(meta.mtime_ns), *_split_time(meta.ctime_ns),
        0, 0, 0,
    )


def _statx_time(ns: int) -> bytes:
    return struct.pack("<qIi", *_split_time(ns), 0)


def pack_statx(meta) -> bytes:
    head = struct.pack(
        "<IIQIIIHHQQQQ",
        STATX_BASIC_STATS, BLKSIZE, 0, _nlink(meta), meta.uid, meta.gid, meta.mode & 0xFFFF, 0,
        meta.ino, meta.size, (meta.size + 511) // 512, 0,
    )
    tail = struct.pack("<IIII", os.major(meta.rdev), os.minor(meta.rdev), VIRTUAL_DEV_MAJOR, VIRTUAL_DEV_MINOR)
    # atime, btime (not in the mask: objects have no birth time), ctime, mtime
    out = head + _statx_time(meta.atime_ns) + _statx_time(0) + _statx_time(meta.ctime_ns) + _statx_time(meta.mtime_ns) + tail
    return out + b"\0" * (STATX_SIZE - len(out))


DT_DIR, DT_REG, DT_LNK = 4, 8, 10


def d_type(mode: int) -> int:
    return stat.S_IFMT(mode) >> 12 or DT_REG  # DT_* is the file type's bits: DT_FIFO, DT_SOCK...


def pack_dirent64(ino: int, next_pos: int, dtype: int, name: bytes) -> bytes:
    reclen = (19 + len(name) + 1 + 7) & ~7
    rec = struct.pack("<QqHB", ino, next_pos, reclen, dtype) + name + b"\0"
    return rec + b"\0" * (reclen - len(rec))


def pack_dirent(ino: int, next_pos: int, dtype: int, name: bytes) -> bytes:
    """The old getdents(2) record: d_type is the record's last byte."""
    reclen = (18 + len(name) + 2 + 7) & ~7
    rec = struct.pack("<QqH", ino, next_pos, reclen) + name + b"\0"
    rec += b"\0" * (reclen - len(rec) - 1)
    return rec + bytes([dtype])


def pack_statfs() -> bytes:
    # struct statfs: f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree,
    # f_fsid[2], f_namelen, f_frsize, f_flags, f_spare[4]. f_namelen is the NAME_MAX that
    # lookups enforce (paths.py), as ext4's: pathconf(_PC_NAME_MAX) reads it, and a program
    # sizing names by it must not make names refused with ENAMETOOLONG.
    big = 1 << 40
    return struct.pack("<qqQQQQQiiqqq4q", 0x4F4D5346, 4096, big // 4096, big // 4096, big // 4096,
                       1 << 30, 1 << 30, 0, 0, NAME_MAX, 4096, 0, 0, 0, 0, 0)
