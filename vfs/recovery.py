"""Files a run left in the cache without publishing them: written but never closed (the
supervisor or the machine died), or closed while the bucket could not take them.

They are kept, never lost, and never uploaded on our own: the bytes of a file whose writer
never reached close may be half of what it meant to write, and publishing them would
replace an intact object. The next start says in one line what is held
(`summary_line`); `objmount flush --list` lists it (`held`) and `objmount flush` publishes
it (`publish`) when the user asks. A file that another live run is still writing is
neither listed nor touched (its lock is held: see cache.py)."""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache
from .errors import VfsError

log = logging.getLogger("vfs.recovery")


@dataclass
class HeldFile:
    item_id: str
    url: str          # where it goes: s3://bucket/key (or file:///dir/key)
    size: int         # bytes in the local file
    mtime: float      # last written
    record: dict

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.mtime))
        kind = "new file" if self.record.get("created") else "changed file"
        return f"{self.url}\t{human(self.size)}\t{kind}, last written {stamp}"


def human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def held(cache: Cache) -> list[HeldFile]:
    """What dead runs left, oldest first. Journal entries whose file is gone are dropped;
    private files with no journal entry and no live run (never written) are removed."""
    out = []
    journaled = set()
    for item_id, record in cache.journal_records():
        path = record.get("path") if record else None
        if path:
            journaled.add(os.path.basename(path))
        if not path or not os.path.exists(path):  # published, or discarded: a stale entry
            fd = cache.claim(path) if path else None
            if not path or fd is not None:
                cache.unjournal(item_id)
            if fd is not None:
                cache.remove_private(path)
                os.close(fd)
            continue
        if cache.in_use(path):
            continue  # a live run is writing it
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append(HeldFile(item_id, f"{record['store_url']}/{record['key']}", st.st_size, st.st_mtime, record))
    _sweep(cache, journaled)
    return sorted(out, key=lambda h: (h.mtime, h.url))


def _sweep(cache: Cache, journaled: set[str]) -> None:
    new = cache.root / "items" / "new"
    try:
        names = os.listdir(new)
    except OSError:
        return
    for name in names:
        if name.endswith(".lock") or name.endswith(".tmp") or name in journaled:
            continue
        path = new / name
        fd = cache.claim(path)
        if fd is None:
            continue  # a live run's file, not written yet
        try:
            cache.remove_private(path)
        finally:
            os.close(fd)


def summary_line(cache: Cache) -> str | None:
    """One line for the start of a run, or None if nothing is held."""
    try:
        files = held(cache)
    except OSError as exc:
        return f"cannot look for files left in the cache {cache.root}: {exc.strerror or exc}"
    if not files:
        return None
    total = sum(f.size for f in files)
    what = "1 file" if len(files) == 1 else f"{len(files)} files"
    return (f"the cache {cache.root} holds {what} ({human(total)}) that a run left unpublished (killed before "
            f"close, or the upload failed); the bucket does not have them: `objmount flush --list` shows "
            f"them, `objmount flush` uploads them")


def publish(vfs, names: list[str] | None = None, force: bool = False) -> tuple[list[str], bool]:
    """Upload held files (all, or those whose URL is in `names`). A file whose object
    changed in the bucket since the dead run opened it is not uploaded over the newer
    version unless `force`. Returns the lines to print and whether everything asked for
    was uploaded."""
    return _each(vfs, names, lambda h: _publish_one(vfs, vfs.cache, h, force), "uploaded", "could not upload")


def discard(vfs, names: list[str] | None = None) -> tuple[list[str], bool]:
    """Delete held files from the cache (all, or those named); the bucket is untouched."""
    return _each(vfs, names, lambda h: _discard_one(vfs, vfs.cache, h), "discarded", "could not discard")


def _each(vfs, names, action, done: str, failed: str) -> tuple[list[str], bool]:
    lines, ok = [], True
    wanted = set(names or ())
    for h in held(vfs.cache):
        if wanted and h.url not in wanted:
            continue
        wanted.discard(h.url)
        try:
            action(h)
            lines.append(f"{done} {h.url} ({human(h.size)})")
        except VfsError as exc:
            ok = False
            lines.append(f"{failed} {h.url}: {exc.message}")
    for url in sorted(wanted):
        ok = False
        lines.append(f"not held in the cache: {url}")
    return lines, ok


def _abort_write_behind(store, record: dict) -> None:
    behind = record.get("write_behind")
    if behind and hasattr(store, "abort_multipart"):  # parts the dead run had sent
        try:
            store.abort_multipart(behind["key"], behind["upload_id"])
        except VfsError as exc:
            log.debug("%s", exc.message)


def _discard_one(vfs, cache: Cache, h: HeldFile) -> None:
    path = Path(h.record["path"])
    lock_fd = cache.claim(path)
    if lock_fd is None:
        raise VfsError(errno.EBUSY, f"{h.url}: another objmount is writing or publishing it")
    try:
        _abort_write_behind(vfs.store(h.record["store_url"]), h.record)
        cache.unjournal(h.item_id)
        cache.remove_private(path)
    finally:
        os.close(lock_fd)


def _publish_one(vfs, cache: Cache, h: HeldFile, force: bool) -> None:
    record, path = h.record, Path(h.record["path"])
    lock_fd = cache.claim(path)
    if lock_fd is None:
        raise VfsError(errno.EBUSY, f"{h.url}: another objmount is writing or publishing it")
    store = vfs.store(record["store_url"])
    try:
        if not force:
            now = store.head(record["key"])
            if (now.etag if now else None) != record.get("previous_etag"):
                raise VfsError(errno.ESTALE, f"{h.url}: the bucket's object changed since this file was opened; "
                                             "not uploaded over it (--force does)")
        _abort_write_behind(store, record)
    except BaseException:
        os.close(lock_fd)
        raise
    item = cache.adopt(h.item_id, record, lock_fd)
    try:
        vfs._flush(item, store, record["key"], h.url)
    finally:
        cache.release(item)
        if item.journaled:  # not uploaded: free it for a later flush
            cache.let_go(item)
