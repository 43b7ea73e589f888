"""Upload of a dirty cache item: one PUT for small objects; for large ones a multipart
upload in which parts without dirty bytes are copied server-side (UploadPartCopy) from
the previous version, so appending 1 byte to 1 GiB sends 1 part, not 1 GiB.

A server whose UploadPartCopy fails or gives parts of the wrong size is detected before
the upload is completed, and answered with parts uploaded from local bytes instead: the
object is never completed from wrong parts.
"""

from __future__ import annotations

import errno
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import VfsError
from .ranges import RangeSet

log = logging.getLogger("vfs.upload")

MiB = 1024 * 1024
MULTIPART_THRESHOLD = 16 * MiB
MIN_PART = 8 * MiB
MAX_PARTS = 9000


@dataclass
class Previous:
    """The object version the cache item started from."""
    etag: str
    size: int


def part_size(size: int) -> int:
    return max(MIN_PART, -(-size // MAX_PARTS))


def upload(store, key: str, path: str, size: int, dirty: RangeSet, previous: Previous | None,
           metadata: dict[str, str], fetch_previous, workers: int = 8) -> str:
    """Upload the first `size` bytes of the file at `path` as `key`; returns the new ETag.
    `fetch_previous(start, end)` makes a range of the previous version present locally
    (never over dirty bytes)."""
    multipart = getattr(store, "supports_multipart", True)
    if size < MULTIPART_THRESHOLD or not multipart:
        if previous is not None:
            _fetch_clean(fetch_previous, dirty, 0, min(size, previous.size))
        return store.put(key, read_range(path, 0, size), metadata)
    return _multipart(store, key, path, size, dirty, previous or Previous("", 0), metadata, fetch_previous,
                      workers)


def _clean(dirty: RangeSet, start: int, end: int) -> list[tuple[int, int]]:
    """Parts of [start, end) the program did not write."""
    return dirty.missing(start, end) if start < end else []


def _fetch_clean(fetch_previous, dirty: RangeSet, start: int, end: int) -> None:
    for s, e in _clean(dirty, start, end):
        fetch_previous(s, e)


def read_range(path: str, start: int, end: int) -> bytes:
    """[start, end) of a cache file; EIO if it is shorter (it never should be)."""
    fd = os.open(path, os.O_RDONLY)
    chunks, at = [], start
    try:
        while at < end:   # one read moves at most MAX_RW_COUNT (~2 GiB)
            chunk = os.pread(fd, end - at, at)
            if not chunk:
                raise VfsError(errno.EIO, f"{path}: cache file shorter than expected")
            chunks.append(chunk)
            at += len(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


MAX_COPY_PART = 5 * 1024 * MiB


def plan_parts(size: int, dirty: RangeSet, previous_size: int, copy: bool) -> list[tuple[int, int, bool]]:
    """(start, end, copied) parts: a grid of part_size() parts, where runs of grid parts
    holding no written byte (and lying inside the previous version) merge into one
    server-side copy of up to 5 GiB. Every part but the last stays >= 5 MiB."""
    psize = part_size(size)
    parts: list[tuple[int, int, bool]] = []
    for s in range(0, size, psize):
        e = min(s + psize, size)
        clean = copy and e <= previous_size and not _overlaps(dirty, s, e)
        last = parts[-1] if parts else None
        if clean and last is not None and last[2] and e - last[0] <= MAX_COPY_PART:
            parts[-1] = (last[0], e, True)
        else:
            parts.append((s, e, clean))
    return parts


class _CopyRefused(Exception):
    pass


def _multipart(store, key, path, size, dirty, previous: Previous, metadata, fetch_previous, workers) -> str:
    try:
        etag = _multipart_once(store, key, path, size, dirty, previous, metadata, fetch_previous, workers, copy=True)
    except _CopyRefused as exc:
        log.warning("s3://%s: server-side part copy unusable (%s): uploading every part", key, exc)
        etag = _multipart_once(store, key, path, size, dirty, previous, metadata, fetch_previous, workers, copy=False)
    head = store.head(key)
    if head is None or head.size != size:
        raise VfsError(errno.EIO, f"{key}: uploaded object has size {head.size if head else None}, expected {size}")
    return version_written(etag, head.etag, path, size)


def version_written(completed: str, headed: str | None, path: str, size: int) -> str:
    """The ETag of the version a multipart upload wrote: its completion's, unless the
    server names it otherwise in the HEAD after it (rclone serve s3 answers 'md5-N', then
    names the object by its plain MD5): that name is ours only if it is our bytes' MD5.
    Else another client wrote the key since, or our bytes are not all here to tell: its
    version is not taken for ours (the next open reads what is there)."""
    if not headed or headed == completed:
        return completed
    if headed.strip('"') == _md5_of(path, size):
        return headed
    return completed


def _md5_of(path: str, size: int) -> str:
    import hashlib
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        left = size
        while left > 0 and (chunk := f.read(min(left, 8 << 20))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _multipart_once(store, key, path, size, dirty, previous, metadata, fetch_previous, workers, copy: bool) -> str:
    parts = plan_parts(size, dirty, previous.size, copy and previous.size > 0)
    upload_id = store.create_multipart(key, metadata)

    def one(index: int) -> str:
        s, e, copied = parts[index]
        if copied:
            try:
                return store.upload_part_copy(key, upload_id, index + 1, s, e, previous.etag)
            except VfsError as exc:
                if exc.errno == errno.ESTALE:  # the previous version is gone: cannot be rebuilt
                    raise
                raise _CopyRefused(exc.message) from None
        if previous.size:
            _fetch_clean(fetch_previous, dirty, s, min(e, previous.size))
        return store.upload_part(key, upload_id, index + 1, read_range(path, s, e))

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
            etags = list(pool.map(one, range(len(parts))))
        # Check before completing: a server that botches part copies must not get to
        # assemble a wrong object.
        sizes = store.part_sizes(key, upload_id)
        if any(sizes.get(i + 1) != e - s for i, (s, e, _) in enumerate(parts)):
            raise _CopyRefused("a part has the wrong size")
        return store.complete_multipart(key, upload_id, etags)
    except BaseException:
        store.abort_multipart(key, upload_id)
        raise


def _overlaps(ranges: RangeSet, start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in ranges)
