"""Path -> metadata: lookups, listings, symlink resolution, with TTL caches.

A listing answers which names exist and what kind they are for the TTL. It carries no user
metadata, so its entries are not `exact`: a lookup that needs attributes (the stat family,
access) asks the bucket about the entry — and once a program asks about a second entry of
one listing, about all of that listing's inexact entries, in parallel (ATTR_WORKERS at
once), so `ls -l` of N files costs a LIST and N HEADs side by side.

A lookup with no fresh listing asks HEAD key and LIST key/ (MaxKeys=1) together; a prefix
makes a directory, and wins over an object of the same name. A directory's attributes are
its marker's (`key/`, HEAD once the LIST showed a directory); without a marker it is
implicit (metas.directory).

An open that reads (close-to-open: every open asks the bucket) asks with a ranged GET of
the object's first bytes instead of a HEAD (`data=True`, `first`): the answer's headers
carry what a HEAD says, and an object no larger than the window is whole after it. If the
cache holds the bytes of the version last seen, the GET is conditional (304: unchanged, no
body). The LIST beside it is needed only when nothing fresh says the name is an object.

Without close-to-open (`close_to_open` False, --no-close-to-open, as NFS's nocto) an open
that does not write takes instead an answer about the object less than the TTL old
(`recent`): a prefetch's GET (predict.py: `coming` while on its way, then `learned`), a
stat's HEAD, an earlier open's GET, or this run's own change. A name last seen missing, a
directory, and an open with write access still ask. Every answer is as old as its request:
entries expire the TTL after it was sent, not after the answer came.

A directory made in this run starts with an empty listing; while this run keeps changing
it, that listing is trusted for missing names too (`made`), so creating files in it asks
the bucket nothing.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import posixpath
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from . import meta as metas
from .blocking import waiting
from .errors import VfsError
from .meta import Kind, Meta
from .mounts import OBJMOUNT_ROOT, S3_ROOT, MountTable, normalize
from .stores.base import Below
from .times import RunTimes

log = logging.getLogger("vfs.namespace")
MAX_LINKS = 40
ATTR_WORKERS = 32    # HEADs at once for the attributes of a listing's entries


@dataclass
class _Entry:
    value: object
    expires: float


def link_target_path(link: str, target: str) -> str:
    """Where symlink `link` (absolute) leads: `target` from the link's directory,
    normalized lexically (objmount/paths.py's join; the tests hold the two to the same
    answers)."""
    return normalize(posixpath.join(posixpath.dirname(link), target))


class Namespace:
    def __init__(self, mounts: MountTable, stores, ttl: float, close_to_open: bool = True):
        self.mounts = mounts
        self.stores = stores          # callable: store_url -> Store
        self.ttl = ttl
        # False (--no-close-to-open): a reading open may take a recent answer (see module)
        self.close_to_open = close_to_open
        # path -> Future of a prefetch's answer on its way (predict.py; close_to_open off)
        self._coming: dict[str, Future] = {}
        self._attrs: dict[str, _Entry] = {}     # path -> Meta | None (negative)
        self._lists: dict[str, _Entry] = {}     # dir path -> dict[name, Meta]
        # Asked of the bucket in this operation: per thread, since operations of several
        # programs run at once (one per thread).
        self._operation = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
        self._attr_pool = ThreadPoolExecutor(max_workers=ATTR_WORKERS, thread_name_prefix="attrs")
        self._attr_lock = threading.Lock()
        # dir path -> (the listing's entries dict, name -> Future of the entry's exact Meta)
        self._settling: dict[str, tuple[dict, dict[str, Future]]] = {}
        # Attributes of bucket-root mounts set in this run: a bucket root has no key to keep them.
        self.root_attrs: dict[str, Meta] = {}
        self._warned: set[str] = set()
        # Directories that exist for this run only (their marker could not be written):
        # path -> Meta, with the mode, owner and times mkdir, chmod/chown and utimes gave.
        self.local_dirs: dict[str, Meta] = {}
        # (store, key, known Meta | None) -> First | None: the open's GET (Files.first_window)
        self.first = None
        # path -> the last exact Meta seen (any age): a 304 without metadata is that version
        self._versions: dict[str, Meta] = {}
        # dir path -> its listing while it is one this run made and keeps changing (see module)
        self._made: dict[str, dict] = {}
        # path -> Meta of a file created in this run and not in the bucket yet, or None
        # (Vfs._pending): such a file is no directory to walk through (ENOTDIR).
        self.pending = lambda path: None
        # Times changed in this run and not stored (times.py): following a link reads it.
        self.times = RunTimes()

    # --- caches ------------------------------------------------------------------------
    def _fresh(self, table: dict[str, _Entry], path: str):
        entry = table.get(path)
        if entry is not None and entry.expires > time.monotonic():
            return entry
        return None

    def remember(self, path: str, meta: Meta | None, asked: float | None = None) -> None:
        """`meta` is what the bucket says of `path` (None: missing), in an answer to a
        request sent at `asked` (monotonic; None: now). It is trusted for the TTL from
        then: an answer is as old as its question."""
        self._attrs[path] = _Entry(meta, (time.monotonic() if asked is None else asked) + self.ttl)
        if meta is not None and meta.exact and meta.kind is not Kind.DIR:
            self._versions[path] = meta

    def learned(self, path: str, meta: Meta, asked: float) -> None:
        """An answer asked ahead of the program (a prefetch, predict.py): remembered
        unless a newer one is known already (an open or a write of this run since)."""
        with self._attr_lock:
            entry = self._attrs.get(path)
            if entry is None or entry.expires < asked + self.ttl:
                self.remember(path, meta, asked)

    def update(self, path: str, meta: Meta | None, empty_dir: bool = False, asked: float | None = None) -> None:
        """We changed `path` ourselves (or just asked about it, at `asked`): record its new
        state instead of asking again, in its own entry and in a fresh listing of its parent."""
        self.remember(path, meta, asked)
        dirname = posixpath.dirname(path)
        parent = self._fresh(self._lists, dirname)
        if parent is not None:
            name = posixpath.basename(path)
            if meta is None:
                parent.value.pop(name, None)
            else:
                parent.value[name] = meta
            if self._made.get(dirname) is parent.value:
                parent.expires = time.monotonic() + self.ttl  # still ours: still known
        if empty_dir:
            entries: dict[str, Meta] = {}
            self._lists[path] = _Entry(entries, time.monotonic() + self.ttl)
            self._made[path] = entries

    def forget(self, path: str) -> None:
        self._attrs.pop(path, None)
        self._made.pop(path, None)
        self._lists.pop(path, None)
        self._lists.pop(posixpath.dirname(path), None)

    def forget_below(self, path: str) -> None:
        """What is known of `path` and every name below it (a directory moved away: a
        directory holding files has no key of its own, so no key names it)."""
        below = path + "/"
        for table in (self._attrs, self._made, self._lists):
            for p in [p for p in table if p.startswith(below)]:
                table.pop(p, None)
        self.forget(path)

    # --- lookups -----------------------------------------------------------------------
    def peek(self, path: str) -> Meta | None:
        """What is known of `path` without asking the bucket; None: nothing fresh (or it
        is known not to exist)."""
        if path in self.local_dirs:
            return self.local_dirs[path]
        entry = self._fresh(self._attrs, path)
        if entry is not None:
            return entry.value
        parent, name = posixpath.split(path)
        listing = self._fresh(self._lists, parent)
        if listing is not None and name:
            return listing.value.get(name)
        return None

    def _known_missing(self, path: str) -> bool:
        """`path` is missing from the fresh listing of a directory this run made (and so
        knows all of): no need to ask the bucket, even for an open."""
        parent, name = posixpath.split(path)
        listing = self._fresh(self._lists, parent)
        return (listing is not None and self._made.get(parent) is listing.value and name not in listing.value
                and path not in self.local_dirs)

    def listed(self, path: str) -> dict[str, Meta] | None:
        """The fresh listing of directory `path` (name -> Meta), if any; not to be changed."""
        entry = self._fresh(self._lists, path)
        return None if entry is None else entry.value

    def lookup(self, path: str, attrs: bool = False, recheck_missing: bool = False, data: bool = False) -> Meta:
        """attrs: the caller shows mode, owner or times (stat, access), so a listed entry's
        real attributes are asked for. recheck_missing: a name remembered as missing is
        asked about again (open: another client may have created it since). data: that
        open reads the file: if the bucket is asked, it is with the GET of the first
        bytes (the open's revalidation, see the module)."""
        if path in self.local_dirs:
            return self.local_dirs[path]
        if recheck_missing and not self.close_to_open:
            self._await(path)  # an open: a prefetch's answer on its way serves it
        entry = self._fresh(self._attrs, path)
        if entry is not None and (entry.value is not None or not recheck_missing):
            if entry.value is None:
                raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
            return entry.value
        parent, name = posixpath.split(path)
        listing = self._fresh(self._lists, parent)
        if listing is not None and name and entry is None:
            meta = listing.value.get(name)
            if meta is not None:
                return self._settle(parent, name, listing.value) if attrs and not meta.exact else meta
            if not recheck_missing or self._known_missing(path):
                raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        asked = time.monotonic()
        meta = self._ask_open(path, None) if recheck_missing and data else self._ask(path)
        if recheck_missing:
            self._answered[path] = meta  # the open's revalidation, asked just now
        if recheck_missing and meta is not None:
            self.update(path, meta, asked=asked)  # found now: the cached listing learns it too
        else:
            self.remember(path, meta, asked)
        if meta is None:
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        return meta

    # --- attributes of listed entries ---------------------------------------------------
    def _settle(self, parent: str, name: str, entries: dict[str, Meta]) -> Meta:
        """The exact Meta of a listed entry. The first one asked about in a listing is
        asked alone; from the second on, every inexact entry of the listing is asked
        about in parallel, ahead of the program."""
        with self._attr_lock:
            known = self._settling.get(parent)
            if known is None or known[0] is not entries:  # a new listing: start afresh
                known = (entries, {})
                self._settling[parent] = known
            futures = known[1]
            future = futures.get(name)
            if future is None:
                future = futures[name] = self._attr_pool.submit(self._exact_entry, parent, name, entries)
                if len(futures) == 2:
                    for other, meta in list(entries.items()):
                        if not meta.exact and other not in futures:
                            futures[other] = self._attr_pool.submit(self._exact_entry, parent, other, entries)
        try:
            with waiting():
                meta = future.result()
        except VfsError:
            with self._attr_lock:
                futures.pop(name, None)  # not remembered: the next call asks again
            raise
        if meta is None:
            raise VfsError(errno.ENOENT, f"{parent}/{name}: no such file or directory")
        return meta

    def _exact_entry(self, parent: str, name: str, entries: dict[str, Meta]) -> Meta | None:
        """Ask the bucket about one listed entry (a pool thread); the listing and the
        attribute cache take the answer."""
        path = f"{parent}/{name}"
        listed = entries.get(name)
        if listed is None or listed.exact:
            return listed
        loc = self.mounts.locate(path)
        store = self.stores(loc.store_url)
        asked = time.monotonic()
        if listed.kind is Kind.DIR:
            meta = self._directory(store, loc.dir_key)
        else:
            info = store.head(loc.key)
            if info is None:  # deleted since the listing
                meta = None
            else:
                meta = self._with_target(store, loc.key, metas.from_object(
                    store.id, loc.key, info.size, info.etag, info.mtime, info.metadata, info.content_type))
        with self._attr_lock:
            if entries.get(name) is listed:
                if meta is None:
                    entries.pop(name, None)
                else:
                    entries[name] = meta
            self.remember(path, meta, asked)
        return meta

    def _directory(self, store, marker: str, below: Below = Below.MARKED) -> Meta:
        """A directory's Meta: its marker's attributes, or an implicit directory's
        (`below`: what a look below it said; UNMARKED: no marker to ask about)."""
        if not marker:  # a bucket root: no key to hold attributes (see root_attrs)
            return self.root_attrs.get(store.url) or metas.directory(store.id, "")
        if below is Below.UNMARKED:
            return metas.directory(store.id, marker)
        info = store.head(marker)
        if info is None:
            return metas.directory(store.id, marker)
        return metas.from_marker(store.id, marker, info.etag, info.mtime, info.metadata)

    def _ask(self, path: str) -> Meta | None:
        try:
            loc = self.mounts.locate(path)
        except KeyError:  # /objmount/<anything but s3>
            return None
        if loc is None:
            return metas.directory("objmount", path)
        store = self.stores(loc.store_url)
        if loc.rel == "":
            store.check_root()
            return self._directory(store, loc.dir_key)
        key = loc.key
        head = self._pool.submit(store.head, key)
        prefix = self._pool.submit(store.look_below, loc.dir_key)
        with waiting():
            info, below = head.result(), prefix.result()
        if below is not Below.NOTHING:
            if info is not None:
                self._warn_shadow(store.url, key)
            return self._directory(store, loc.dir_key, below)
        if info is None:
            return None
        meta = metas.from_object(store.id, key, info.size, info.etag, info.mtime, info.metadata, info.content_type)
        return self._with_target(store, key, meta)

    def _with_target(self, store, key: str, meta: Meta) -> Meta:
        if meta.kind is not Kind.SYMLINK or meta.target is not None:
            return meta
        chunks: list[bytes] = []
        store.read(key, 0, meta.size, None, lambda off, data: chunks.append(data))
        target = b"".join(chunks).decode("utf-8", "surrogateescape")
        return dataclasses.replace(meta, size=len(target.encode("utf-8", "surrogateescape")), target=target)

    def _warn_shadow(self, url: str, key: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s/%s is both an object and a prefix: showing the directory", url, key)

    def exact(self, path: str, meta: Meta, data: bool = False) -> Meta:
        """`meta` if it says what kind of thing `path` is; for a listed object (a listing
        carries no user metadata, so a symlink object looks like a file) ask the bucket.
        The answer also serves as the revalidation of an open in the same operation
        (data: an open that reads, asked with the first bytes' GET)."""
        if meta.kind is Kind.FILE and not meta.exact:
            if data:
                meta = self.ask_open(path)
            else:
                meta = self.head(path)
            self._answered[path] = meta
        return meta

    def revalidate(self, path: str, data: bool = False, writes: bool = False) -> Meta:
        """close-to-open: the bucket's answer now — asked in this operation already, or
        asked again (data: with the first bytes' GET, the open reads). Without
        close-to-open, an open that does not write takes a recent answer instead
        (`recent`); one that writes asks, as ever."""
        if path not in self._answered:
            if self._known_missing(path):
                raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
            if not self.close_to_open and not writes:
                meta = self.recent(path)
                if meta is not None:
                    return meta
            return self.ask_open(path) if data else self.head(path)
        meta = self._answered.pop(path)
        if meta is None:
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        return meta

    def recent(self, path: str) -> Meta | None:
        """What an open may take instead of asking, without close-to-open: an answer
        about the object `path` from the bucket (a prefetch's, a stat's HEAD, an earlier
        open's GET) or this run's own change of it, asked less than the TTL ago. None: no
        such answer (a name last seen missing is asked about again; so is a directory)."""
        self._await(path)
        entry = self._fresh(self._attrs, path)
        if entry is None:
            return None
        meta = entry.value
        if meta is None or not meta.exact or meta.kind is Kind.DIR:
            return None
        return meta

    def coming(self, path: str, future: Future) -> None:
        """A prefetch (predict.py) is asking about `path`: an open of it without
        close-to-open waits for that answer rather than asking again."""
        def done(f: Future) -> None:
            with self._attr_lock:
                if self._coming.get(path) is f:
                    del self._coming[path]
        with self._attr_lock:
            self._coming[path] = future
        future.add_done_callback(done)

    def _await(self, path: str) -> None:
        future = self._coming.get(path)
        if future is not None and not future.done():
            with waiting():
                try:
                    future.result()
                except Exception:  # noqa: BLE001 - a failed prefetch: the open asks itself
                    pass

    def ask_ahead(self, path: str) -> None:
        """Ask about `path` as an open would (a conditional GET when the cache holds its
        bytes), ahead of the program (predict.py, a pool thread): the answer is `learned`."""
        asked = time.monotonic()
        meta = self._ask_open(path, self.peek(path))
        if meta is not None and meta.kind is not Kind.DIR:
            self.learned(path, meta, asked)

    def got_ahead(self, path: str, store, key: str, got, asked: float) -> None:
        """A prefetch's GET of `key` (sent at `asked`) answered with a version: `learned`."""
        meta = self._from_get(store, key, got)
        if meta.kind is not Kind.DIR:
            self.learned(path, meta, asked)

    def ask_open(self, path: str) -> Meta:
        """The open's revalidation by GET (see the module); the caches learn the answer."""
        asked = time.monotonic()
        meta = self._ask_open(path, self.peek(path))
        if meta is None:
            self.remember(path, None, asked)
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        self.update(path, meta, asked=asked)
        return meta

    def _ask_open(self, path: str, known: Meta | None) -> Meta | None:
        """Ask the bucket about `path` with a GET of its first bytes. `known`: what fresh
        caches say of it (an object there needs no LIST beside the GET)."""
        try:
            loc = self.mounts.locate(path)
        except KeyError:
            return None
        if loc is None or loc.rel == "" or self.first is None:
            return self._ask(path)
        store = self.stores(loc.store_url)
        key = loc.key
        is_object = known is not None and known.kind is not Kind.DIR
        candidate = known if is_object else self._versions.get(path)
        prefix = None if is_object else self._pool.submit(store.look_below, loc.dir_key)
        try:
            got = self.first(store, key, candidate)
        finally:
            below = Below.NOTHING
            if prefix is not None:   # (no LIST asked: nothing to wait for, the lock kept)
                with waiting():
                    below = prefix.result()
        if below is not Below.NOTHING:
            if got is not None:
                self._warn_shadow(store.url, key)
            return self._directory(store, loc.dir_key, below)
        if got is None:  # no such object: a directory now, perhaps (the LIST not asked yet)
            if prefix is None and (below := store.look_below(loc.dir_key)) is not Below.NOTHING:
                return self._directory(store, loc.dir_key, below)
            return None
        if not got.not_modified:
            return self._from_get(store, key, got)
        info = got.info  # the version asked about: its size is known, its metadata maybe
        if info.metadata is not None:
            meta = metas.from_object(store.id, key, info.size, info.etag, info.mtime, info.metadata,
                                     info.content_type)
        elif candidate is not None and candidate.exact:
            meta = candidate
        else:  # the server's 304 leaves the metadata out, and it was never seen
            return self._ask(path)
        if candidate is not None and candidate.target is not None and candidate.etag == meta.etag:
            meta = dataclasses.replace(meta, target=candidate.target)
        return self._with_target(store, key, meta)

    def _from_get(self, store, key: str, got) -> Meta:
        """The Meta of `key` from a GET that answered with its bytes (not a 304)."""
        info = got.info
        meta = metas.from_object(store.id, key, info.size, info.etag, info.mtime, info.metadata, info.content_type)
        if meta.kind is Kind.SYMLINK and len(got.data) == meta.size:
            meta = dataclasses.replace(meta, target=got.data.decode("utf-8", "surrogateescape"))
        return self._with_target(store, key, meta)

    @property
    def _answered(self) -> dict[str, Meta | None]:
        try:
            return self._operation.answered
        except AttributeError:
            answered = self._operation.answered = {}
            return answered

    def end_operation(self) -> None:
        """Answers from the bucket are not reused past the operation that asked."""
        self._answered.clear()

    def head(self, path: str) -> Meta:
        """Lookup that always asks the bucket (open's revalidation)."""
        asked = time.monotonic()
        meta = self._ask(path)
        self.remember(path, meta, asked)
        if meta is None:
            raise VfsError(errno.ENOENT, f"{path}: no such file or directory")
        return meta

    # --- listings ----------------------------------------------------------------------
    def listdir(self, path: str) -> list[tuple[str, Meta]]:
        entry = self._fresh(self._lists, path)
        if entry is not None:
            entries = entry.value
        else:
            meta = self.lookup(path)
            if meta.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{path}: not a directory")
            asked = time.monotonic()   # a listing is as old as its (first) request
            entries = self._list(path)
            self._lists[path] = _Entry(entries, asked + self.ttl)
        local = {posixpath.basename(d): m for d, m in self.local_dirs.items() if posixpath.dirname(d) == path}
        return sorted({**entries, **local}.items())

    def _list(self, path: str) -> dict[str, Meta]:
        loc = self.mounts.locate(path)
        if loc is None:
            if path == OBJMOUNT_ROOT:
                return {"s3": metas.directory("objmount", S3_ROOT)}
            service = self.stores("s3://")
            return {name: metas.directory(f"s3://{name}", "") for name in service.list_buckets()}
        store = self.stores(loc.store_url)
        prefix = loc.dir_key
        listing = store.list(prefix)
        entries: dict[str, Meta] = {}
        for info in listing.objects:
            name = info.key[len(prefix):]
            if not name or "/" in name:
                continue  # the directory's own marker
            cached = self._fresh(self._attrs, f"{path}/{name}")
            if cached is not None and cached.value is not None:
                entries[name] = cached.value
                continue
            meta = metas.from_object(store.id, info.key, info.size, info.etag, info.mtime, info.metadata)
            if meta.kind is Kind.SYMLINK:
                meta = self._with_target(store, info.key, meta)
            entries[name] = meta
        for sub in listing.prefixes:
            name = sub[len(prefix):].rstrip("/")
            if not name:
                continue
            if name in entries:
                self._warn_shadow(store.url, prefix + name)
            cached = self._fresh(self._attrs, f"{path}/{name}")
            if cached is not None and cached.value is not None and cached.value.kind is Kind.DIR:
                entries[name] = cached.value
            else:
                entries[name] = metas.directory(store.id, prefix + name, exact=False)
        return entries

    # --- symlinks ----------------------------------------------------------------------
    def resolve(self, path: str, follow_last: bool = True, depth: int = 0, sure: bool = True,
                attrs: bool = False, recheck_missing: bool = False, data: bool = False) -> str:
        """The path after following symlinks. sure: a listed object about to be followed is
        asked about first (it may be a symlink the listing showed as a file); callers whose
        answer does not depend on it (xattr reads, asked by ls -l for every file) pass False.
        attrs, recheck_missing, data: as for lookup, for the path itself."""
        if depth > MAX_LINKS:
            raise VfsError(errno.ELOOP, f"{path}: too many levels of symbolic links")
        try:
            meta = self.lookup(path, attrs=attrs, recheck_missing=recheck_missing, data=data)
            if follow_last and sure:
                meta = self.exact(path, meta, data=recheck_missing and data)
        except VfsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return self._resolve_walk(path, follow_last, depth, attrs=attrs, recheck_missing=recheck_missing,
                                      data=data)
        if meta.kind is Kind.SYMLINK and follow_last:
            return self._follow(path, meta, "", follow_last, depth, attrs=attrs, recheck_missing=recheck_missing,
                                data=data)
        return path

    def _follow(self, link: str, meta: Meta, rest: str, follow_last: bool, depth: int, **how) -> str:
        self.times.accessed(link, meta.times())  # following a symlink reads it: its atime, as the kernel's
        joined = link_target_path(link, meta.target or "")
        if rest:
            joined = posixpath.join(joined, rest)
        if not self.mounts.is_virtual(joined):
            return joined
        return self.resolve(joined, follow_last, depth + 1, **how)

    def _resolve_walk(self, path: str, follow_last: bool, depth: int, **how) -> str:
        """The full path is missing: find the first component that is missing, a file or
        a symlink, walking down from the mount root."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            prefix = "/" + "/".join(parts[:i])
            if not self.mounts.is_virtual(prefix):
                continue
            try:
                meta = self.exact(prefix, self.lookup(prefix))  # ENOENT propagates: an ancestor is missing
            except VfsError as exc:
                if exc.errno == errno.ENOENT and self.pending(prefix) is not None:
                    raise VfsError(errno.ENOTDIR, f"{prefix}: not a directory") from None
                raise
            if meta.kind is Kind.SYMLINK:
                return self._follow(prefix, meta, "/".join(parts[i:]), follow_last, depth, **how)
            if meta.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{prefix}: not a directory")
        raise VfsError(errno.ENOENT, f"{path}: no such file or directory")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._attr_pool.shutdown(wait=False, cancel_futures=True)
