"""Write-behind: upload the parts of a new file while the program is still writing it.

A file written from scratch (a new object, or one truncated to nothing) is cut into a grid
of fixed-size parts. Once a part is completely written and every write announced on it has
landed, and the writing has moved past it, it goes up in the background as a part of a
multipart upload, read from the cache file by a bounded pool of workers (so memory stays
at workers x part size, and no data passes through the supervisor per write). At close or
fsync, `finish` sends only the parts not sent yet — or touched again since they were sent
— and completes the upload.

When has a write landed? The write family is announced (`note`) before the kernel runs it.
Each announcement names its writer (a thread): the next announcement by that writer proves
the previous one ran. A part with an announced write that may not have landed is pending
and is never read. A part touched after it was scheduled is sent again at `finish`, so the
object always equals the final file bytes. Writes whose landing cannot be known (a shared
writable mapping), truncation below what was sent, a failure, or a final size that does
not suit the grid abandon the write-behind: the multipart upload is aborted and the
normal upload runs at close.
"""

from __future__ import annotations

import errno
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from .blocking import waiting
from .errors import VfsError
from .upload import read_range

log = logging.getLogger("vfs.writebehind")

MAX_RW = 0x7FFFF000          # the kernel's limit on one read/write: caps an announcement
MAX_PARTS = 10000            # S3's limit on the parts of one upload
MAX_COPY = 5 * 1024 ** 3     # CopyObject's limit (fixing metadata after completion)
# Times every write changes: metadata differing only in these needs no fix-up copy.
WRITE_TIMES = ("mtime", "ctime")


class WriteBehind:
    """The background multipart upload of one cache item being written."""

    def __init__(self, pool: ThreadPoolExecutor, store, key: str, item, part: int, threshold: int,
                 metadata_fn, on_created, stats):
        self.pool = pool
        self.store = store
        self.key = key
        self.item = item
        self.part = part
        self.threshold = threshold          # no upload starts before the file reaches it
        self._metadata_fn = metadata_fn     # the metadata to create the upload with
        self._on_created = on_created       # upload id -> None (journals it)
        self._stats = stats
        self.lock = threading.Lock()
        self._create_lock = threading.Lock()
        self.upload_id: str | None = None
        self.metadata: dict[str, str] | None = None
        self.attrs_version = 0
        self.frontier = 0                   # the furthest offset a write was announced at
        self.gen: dict[int, int] = {}       # part -> announcements touching it so far
        self.pending: dict[int, set] = {}   # part -> writers whose write may not have landed
        self.by_writer: dict[object, range] = {}
        self.waiting: set[int] = set()      # parts touched since last scheduled
        self.sent: dict[int, tuple[int, str]] = {}      # part -> (gen when scheduled, ETag)
        self.inflight: dict[int, tuple[int, Future]] = {}
        self.failed: BaseException | None = None
        self.dead = False                   # abandoned: no more parts; abort once idle
        self.closing = False                # finish() started: no more background parts
        self.finished = threading.Event()   # aborted or completed: nothing of it left running

    # --- announcements (the supervisor thread) -----------------------------------------
    def note(self, start: int, end: int, writer) -> None:
        """[start, end) is about to be written by `writer`; its earlier writes have landed."""
        end = min(end, start + MAX_RW)
        with self.lock:
            if self.dead or self.closing:
                return
            released = self.by_writer.pop(writer, range(0))
            for p in released:
                who = self.pending.get(p)
                if who is not None:
                    who.discard(writer)
                    if not who:
                        del self.pending[p]
            first, last = start // self.part, (end - 1) // self.part
            touched = range(first, last + 1)
            for p in touched:
                self.gen[p] = self.gen.get(p, 0) + 1
                self.pending.setdefault(p, set()).add(writer)
                self.waiting.add(p)
            self.by_writer[writer] = touched
            old = self.frontier
            if start > old:
                self.frontier = start
            if self.frontier < self.threshold:
                return
            if old < self.threshold:
                check = sorted(self.waiting)
            else:
                check = [p for p in released if p in self.waiting]
                check += [p for p in range(old // self.part, self.frontier // self.part) if p in self.waiting]
            for p in check:
                self._maybe_schedule(p)

    def sent_beyond(self, size: int) -> bool:
        """Was a part reaching past `size` sent or scheduled?"""
        with self.lock:
            return any((p + 1) * self.part > size for p in list(self.sent) + list(self.inflight))

    def _maybe_schedule(self, p: int) -> None:
        """Under self.lock: send part p if it is complete, settled and behind the writing."""
        if (self.dead or self.closing or self.failed is not None or p in self.inflight or p in self.pending
                or p not in self.waiting):
            return
        start, end = p * self.part, (p + 1) * self.part
        if end > self.frontier:
            return
        item = self.item
        with item.cond:
            if not item.dirty.contains(start, end):
                return  # a hole: leave it for the upload at close
        self.waiting.discard(p)
        gen = self.gen.get(p, 0)
        future = self.pool.submit(self._send, p, gen, str(item.path))
        self.inflight[p] = (gen, future)

    # --- the workers -------------------------------------------------------------------
    def _ensure_upload(self) -> str:
        with self._create_lock:
            if self.upload_id is None:
                self.attrs_version = self.item.attrs_version
                self.metadata = self._metadata_fn()
                self.upload_id = self.store.create_multipart(self.key, self.metadata)
                self._on_created(self.upload_id)
            return self.upload_id

    def _upload(self, p: int, path: str, end: int | None = None) -> str:
        start = p * self.part
        stop = (p + 1) * self.part if end is None else end
        upload_id = self._ensure_upload()
        return self.store.upload_part(self.key, upload_id, p + 1, read_range(path, start, stop))

    def _send(self, p: int, gen: int, path: str) -> None:
        etag = error = None
        with self.lock:
            skip = self.dead
        if not skip:
            try:
                etag = self._upload(p, path)
            except BaseException as exc:  # recorded: the upload at close decides
                error = exc
        with self.lock:
            del self.inflight[p]
            if etag is not None:
                self.sent[p] = (gen, etag)
                self._stats.count("write_behind_parts")
            elif error is not None and self.failed is None:
                self.failed = error
                log.info("s3://%s: background part %d failed (%s): the upload at close takes over",
                         self.key, p + 1, getattr(error, "message", error))
            if self.gen.get(p, 0) != gen:
                self._maybe_schedule(p)  # written again meanwhile
            abort = self.dead and not self.inflight
        if abort:
            self._abort()

    def _abort(self) -> None:
        if self.upload_id is not None:
            self.store.abort_multipart(self.key, self.upload_id)
            self._stats.count("write_behind_aborted")
        self.finished.set()

    # --- the end ---------------------------------------------------------------------
    def abandon(self, wait: bool = False) -> None:
        """Give up: no more parts; the upload is aborted once no part is in flight."""
        with self.lock:
            first = not self.dead
            self.dead = True
            idle = first and not self.inflight
        if idle:
            self._abort()
        if wait:
            with waiting():
                self.finished.wait()

    def finish(self, size: int, metadata: dict[str, str], attrs_version: int) -> str | None:
        """Complete the upload as the first `size` bytes of the cache file, sending what is
        not up yet; returns the new ETag. None: write-behind is of no use here (nothing was
        sent, a part failed, the final size does not fit the grid, completing it failed):
        it is aborted and the caller uploads as usual, which reports a server that still
        fails."""
        with self.lock:
            self.closing = True
            futures = [f for _, f in self.inflight.values()]
        with waiting():
            for f in futures:
                f.exception()  # wait; _send records the outcome
        with self.lock:
            count = -(-size // self.part)
            usable = (not self.dead and self.failed is None and self.sent and size >= self.threshold
                      and count <= MAX_PARTS and not any((p + 1) * self.part > size for p in self.sent))
            if usable:
                reuse = {p: etag for p, (g, etag) in self.sent.items() if self.gen.get(p, 0) == g}
        if not usable:
            self.abandon(wait=True)
            return None
        changed_attrs = (attrs_version != self.attrs_version
                         or {k: v for k, v in metadata.items() if k not in WRITE_TIMES}
                         != {k: v for k, v in (self.metadata or {}).items() if k not in WRITE_TIMES})
        if changed_attrs and size > MAX_COPY:
            self.abandon(wait=True)  # metadata could not be fixed afterwards
            return None
        path = str(self.item.path)
        todo = [p for p in range(count) if p not in reuse]
        resent = sum(1 for p in todo if p in self.sent)
        if resent:
            self._stats.count("write_behind_resent", resent)
        jobs = {p: self.pool.submit(self._upload, p, path, min((p + 1) * self.part, size)) for p in todo}
        try:
            etags = dict(reuse)
            with waiting():
                for p, job in jobs.items():
                    etags[p] = job.result()
            sizes = self.store.part_sizes(self.key, self.upload_id)
            for p in range(count):
                if sizes.get(p + 1) != min((p + 1) * self.part, size) - p * self.part:
                    raise VfsError(errno.EIO, f"{self.key}: part {p + 1} has size {sizes.get(p + 1)} on the server")
            etag = self.store.complete_multipart(self.key, self.upload_id, [etags[p] for p in range(count)])
        except BaseException as exc:
            for job in jobs.values():
                job.cancel()
            for job in jobs.values():
                if not job.cancelled():
                    job.exception()  # no part may land after the abort
            with self.lock:
                self.dead = True
            self._abort()
            if not isinstance(exc, VfsError):
                raise
            log.warning("s3://%s: completing the upload begun while writing failed (%s): uploading it again",
                        self.key, exc.message)
            return None
        self.finished.set()
        # No HEAD to check the result: every part went up from local bytes and ListParts
        # confirmed each size (on servers that compute ETags lazily, such as rclone serve
        # s3, a HEAD of a fresh object reads all of it: 1.5 s per GiB).
        if changed_attrs:  # chmod/chown/utimes while the upload was under way
            etag = self.store.copy(self.key, self.key, metadata, etag=etag)
        return etag
