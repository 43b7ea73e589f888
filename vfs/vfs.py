"""The vfs facade: what the syscall handlers call. Namespace changes live here; open
files and their pending writes in files.py."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import posixpath
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cache import Cache, Item
from .files import Files, OpenFile  # noqa: F401 (OpenFile: part of the package API)
from .errors import VfsError
from .fetch import Fetcher
from . import meta as metas
from . import xattrs
from .meta import Kind, Meta
from .upload import MIN_PART
from .mounts import MountTable
from .namespace import Namespace
from .predict import Predictor
from .times import own_ctime
from .stats import Stats
from .stores.base import Below
from .stores.local import LocalStore
from .stores.s3 import Network, S3Service, S3Store

log = logging.getLogger("vfs")


@dataclass
class VfsConfig:
    cache_dir: Path
    cache_size: int = 10 * 2**30
    metadata_ttl: float = 5.0
    close_to_open: bool = True          # False: a reading open may take an answer < metadata_ttl old
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    fetch_workers: int = 16
    random_block: int = 32 * 1024       # alignment of fetches for random reads
    readahead_max: int = 256 * 2**20
    first_window: int = 2**20           # an open's GET asks for this much: a smaller object is whole after it
    predict: bool = True                # fetch the next files of a directory read in listing order
    predict_min_size: int = 64 * 1024   # smaller files come whole with the open's GET: not fetched ahead
    dir_markers: bool = True            # mkdir writes a 'dir/' marker object
    write_behind: bool = True           # upload the parts of a new file while it is written
    write_behind_part: int = MIN_PART   # its part size (S3: 5 MiB at least)
    write_behind_workers: int = 8       # parts uploading at once (memory: workers x part)
    network: Network = field(default_factory=Network)   # S3 timeouts and retries



def _key_size(key: str) -> int:
    return len(key.encode("utf-8", "surrogateescape"))


class Vfs:
    def __init__(self, mounts: MountTable, config: VfsConfig):
        self.mounts = mounts
        self.config = config
        self._stats = Stats()
        self.cache = Cache(Path(config.cache_dir), config.cache_size)
        self.placeholder_dir = str(self.cache.placeholder)
        self.fetcher = Fetcher(workers=config.fetch_workers, block=config.random_block)
        self._s3 = S3Service(config.endpoint_url, config.profile, config.region, self._stats, config.network)
        self._stores: dict[str, object] = {}
        # Stores whose server refused a directory marker, or kept one as no marker: mkdir
        # there makes a directory for this run only (Namespace.local_dirs). Stores where a
        # marker was seen kept: put_marker.
        self._marker_refused: set[str] = set()
        self._marker_kept: set[str] = set()
        self._lock = threading.Lock()
        self.ns = Namespace(mounts, self.store, config.metadata_ttl, config.close_to_open)
        self.ns.pending = self._pending
        self.files = Files(config, self.cache, self.fetcher, self.ns, self._stats)
        self.links = self.files.links  # hard-link groups (links.py)
        self.ns.first = self.files.first_window
        self.predictor = Predictor(self.ns, self.files, min_size=config.predict_min_size) if config.predict else None
        self.times = self.ns.times  # directory mtimes and atimes changed in this run (times.py)

    def store(self, url: str):
        if url == "s3://":
            return self._s3
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                if url.startswith("s3://"):
                    store = S3Store(self._s3, url[5:])
                else:
                    store = LocalStore(url[len("file://"):], self._stats)
                self._stores[url] = store
            return store

    # --- namespace -------------------------------------------------------------------
    def resolve(self, path: str, follow_last: bool = True, sure: bool = True, **how) -> str:
        """how: attrs, recheck_missing, data (Namespace.lookup)."""
        if self._pending(path) is not None:  # created here, not in the bucket yet
            return path
        return self.ns.resolve(path, follow_last, sure=sure, **how)

    def lookup(self, path: str, exact: bool = False, attrs: bool = False, data: bool = False) -> Meta:
        """exact: the kind must be known for sure (readlink), not guessed from a listing.
        attrs: mode, owner and times must be the stored ones (stat, access, chmod).
        data: the caller is an open that reads (exact asks with the first bytes' GET)."""
        meta = self._pending(path) or self.ns.lookup(path, attrs=attrs)
        if exact:
            meta = self.ns.exact(path, meta, data=data)
        return self.times.apply(path, self.links.seen(path, meta))

    def end_operation(self) -> None:
        """One program call is answered: bucket answers obtained for it are not reused
        (close-to-open revalidation must ask again at the next open)."""
        self.ns.end_operation()
        self.files.end_operation()

    def listdir(self, path: str) -> list[tuple[str, Meta]]:
        entries = dict(self.ns.listdir(path))
        entries.update(self.files.in_dir(path))
        return sorted((name, self.times.apply(f"{path}/{name}", meta)) for name, meta in entries.items())

    def accessed(self, path: str, meta: Meta | OpenFile) -> bool:
        """`path` was read (a file's bytes, a directory's entries, a link): its atime, as
        relatime updates it, for this run (times.py). True: another read now would leave
        it as it is."""
        return self.times.accessed(path, meta.times())

    def readlink(self, path: str) -> str:
        meta = self.ns.exact(path, self.ns.lookup(path))
        if meta.kind is not Kind.SYMLINK or meta.target is None:
            raise VfsError(errno.EINVAL, f"{path}: not a symbolic link")
        return meta.target

    def _located(self, path: str):
        try:
            loc = self.mounts.locate(path)
        except KeyError:
            return None, None
        if loc is None or loc.rel == "":
            return None, None
        return self.store(loc.store_url), loc

    def _pending(self, path: str) -> Meta | None:
        """Meta of a file with changes not yet in the bucket (this run is ahead of it)."""
        _, loc = self._located(path)
        if loc is None:
            return None
        return self.files.pending_meta(loc.store_url, loc.key)

    # --- data ------------------------------------------------------------------------
    def open(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644, uid: int | None = None,
             gid: int | None = None) -> OpenFile:
        """Open a regular file. Opens revalidate against the bucket (close-to-open; with
        config.close_to_open off, one that does not write may take an answer less than
        metadata_ttl old, Namespace.recent); O_CREAT, O_EXCL and O_TRUNC act as on a local
        file. `mode` is already masked by the caller's umask."""
        store, loc = self._located(path)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if store is None:
            if writable or flags & os.O_CREAT:
                raise VfsError(errno.EROFS, f"{path}: objects can only be created inside a bucket")
            raise VfsError(errno.EISDIR, f"{path}: is a directory")
        handle = self.files.open_pending(store, loc, path, flags)
        if handle is not None:
            return handle
        # A reading open asks with the GET of the first bytes; one that truncates or only
        # writes needs no bytes.
        reads = (flags & os.O_ACCMODE) != os.O_WRONLY and not flags & os.O_TRUNC
        try:
            # close-to-open: always revalidate (without it, a recent answer may do for a reader)
            meta = self.ns.revalidate(path, data=reads, writes=writable or bool(flags & os.O_TRUNC))
        except VfsError as exc:
            if exc.errno != errno.ENOENT or not flags & os.O_CREAT:
                raise
            parent = self.lookup(posixpath.dirname(path))
            if parent.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{posixpath.dirname(path)}: not a directory")
            self.key_fits(store, loc.key, path)
            handle = self.files.create(store, loc, path, mode, uid, gid, flags)
            self.entries_changed(path)
            return handle
        if flags & os.O_CREAT and flags & os.O_EXCL:
            raise VfsError(errno.EEXIST, f"{path}: file exists")
        if meta.kind is Kind.DIR:
            raise VfsError(errno.EISDIR, f"{path}: is a directory")
        handle = self.files.open(store, loc, path, meta, flags)
        if self.predictor is not None:
            self.predictor.opened(path, store, loc.key, reading=not writable)
        return handle

    # --- namespace changes -------------------------------------------------------------
    def _must_not_exist(self, path: str) -> None:
        try:
            self.lookup(path)
        except VfsError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        raise VfsError(errno.EEXIST, f"{path}: file exists")

    def entries_changed(self, path: str) -> None:
        """`path` was created or removed: its directory's mtime and ctime are now (for the
        run: see times.py)."""
        self.times.forget(path)
        self.times.entries_changed(posixpath.dirname(path))

    def _parent_dir(self, path: str) -> None:
        parent = posixpath.dirname(path)
        if self.mounts.is_virtual(parent) and self.lookup(parent).kind is not Kind.DIR:
            raise VfsError(errno.ENOTDIR, f"{parent}: not a directory")

    def _writable_store(self, path: str):
        try:
            store, loc = self._located(path)
        except KeyError:
            store = None
        if store is None:
            raise VfsError(errno.EROFS, f"{path}: only objects inside a bucket can be changed")
        return store, loc

    @staticmethod
    def key_fits(store, key: str, path: str) -> None:
        """A name is refused when it is made if its key is longer than the store takes
        (S3: 1,024 bytes; moto takes more): else the file would fail only at its close,
        when a program no longer looks (ENAMETOOLONG, as a shorter PATH_MAX would say)."""
        limit = getattr(store, "max_key", None)
        size = _key_size(key)
        if limit is not None and size > limit:
            raise VfsError(errno.ENAMETOOLONG, f"{path}: its key would be {size} bytes; {store.url} takes {limit}")

    def new_name(self, store, key: str, path: str) -> None:
        """`path` (key `key`) may be made: no such name yet (EEXIST), its parent is a
        directory (ENOTDIR), its key fits the store (ENAMETOOLONG)."""
        self._must_not_exist(path)
        self._parent_dir(path)
        self.key_fits(store, key, path)

    def mkdir(self, path: str, mode: int, uid: int | None = None, gid: int | None = None) -> None:
        store, loc = self._writable_store(path)
        self.new_name(store, loc.dir_key, path)
        now = time.time_ns()
        md = metas.to_metadata(stat.S_IFDIR | (mode & 0o7777), os.getuid() if uid is None else uid,
                               os.getgid() if gid is None else gid, now)
        made = metas.from_marker(store.id, loc.dir_key, None, now / 1e9, md)
        self.entries_changed(path)
        # numbered by its key, as a marked one (a name made again after a rename is new)
        local = dataclasses.replace(metas.directory(store.id, loc.dir_key), mode=made.mode, uid=made.uid,
                                    gid=made.gid)
        if not self.config.dir_markers or not self.put_marker(store, loc.dir_key, md):
            self.ns.local_dirs[path] = local
        self.ns.update(path, made, empty_dir=True)

    def put_marker(self, store, dir_key: str, md: dict[str, str]) -> bool:
        """Write the marker `dir_key` ('dir/'). False when this store keeps no markers: the
        caller keeps the directory, or its attributes, for this run (Namespace.local_dirs)."""
        if store.url in self._marker_refused:
            return False
        try:
            store.put(dir_key, b"", md, metas.DIR_CONTENT_TYPE)
        except VfsError as exc:
            if exc.errno != errno.EIO:
                raise
            self._no_markers(store, f"it refused one: {exc.message}")
            return False
        if store.url not in self._marker_kept:
            # Some servers take 'dir/' for a file named 'dir' (rclone serve s3 over a local
            # directory): nothing could be written below it then. The first marker is looked
            # for where a listing shows it, and removed if it is not there.
            if store.look_below(dir_key) is not Below.MARKED:
                store.delete(dir_key)
                self._no_markers(store, f"it did not keep {dir_key} as a directory marker (a listing "
                                        "below it shows nothing)")
                return False
            self._marker_kept.add(store.url)
        return True

    def _no_markers(self, store, why: str) -> None:
        if store.url not in self._marker_refused:
            self._marker_refused.add(store.url)
            log.warning("%s: no directory markers on this server (%s); directories made and "
                        "directory attributes changed now last for this run only", store.url, why)

    def rmdir(self, path: str) -> None:
        store, loc = self._writable_store(path)
        if self.lookup(path).kind is not Kind.DIR:
            raise VfsError(errno.ENOTDIR, f"{path}: not a directory")
        if self.listdir(path):
            raise VfsError(errno.ENOTEMPTY, f"{path}: directory not empty")
        if path in self.ns.local_dirs:
            del self.ns.local_dirs[path]
        else:
            store.delete(loc.key + "/")
        self.ns.forget(path)
        self.ns.update(path, None)
        self.entries_changed(path)

    def unlink(self, path: str) -> None:
        store, loc = self._writable_store(path)
        meta = self.lookup(path)
        if meta.kind is Kind.DIR:
            raise VfsError(errno.EISDIR, f"{path}: is a directory")
        if self.files.removing(store, loc.key, path, meta):
            store.delete(loc.key)
        metas.inode_released(store.id, loc.key)
        self.ns.update(path, None)
        self.entries_changed(path)

    def symlink(self, target: str, path: str, uid: int | None = None, gid: int | None = None) -> None:
        store, loc = self._writable_store(path)
        self.new_name(store, loc.key, path)
        md = metas.to_metadata(metas.SYMLINK_MODE, os.getuid() if uid is None else uid,
                               os.getgid() if gid is None else gid, time.time_ns())
        data = os.fsencode(target)
        etag = store.put(loc.key, data, md)
        # Known now, as mknod's nodes are: a listing alone could not tell it is a link.
        meta = metas.from_object(store.id, loc.key, len(data), etag, time.time(), md)
        self.ns.update(path, dataclasses.replace(meta, target=target))
        self.entries_changed(path)

    def _flush_path(self, path: str) -> None:
        _, loc = self._located(path)
        if loc is not None:
            self.files.flush_key(loc.store_url, loc.key)

    def link(self, old: str, new: str) -> None:
        """Hard link: a server-side copy, and every name of the group lists the group in its
        metadata (see Files); EMLINK when the list outgrows the metadata limit."""
        store, loc = self._writable_store(new)
        old_store, old_loc = self._writable_store(old)
        if old_store is not store:
            raise VfsError(errno.EXDEV, f"{old} -> {new}: different buckets")
        if self.lookup(old, exact=True).kind is Kind.DIR:  # exact: its group, if any, is learned
            raise VfsError(errno.EPERM, f"{old}: hard links to directories are not allowed")
        self.new_name(store, loc.key, new)
        self._flush_path(old)
        self.files.linked(store, old, old_loc.key, loc.key)
        metas.inode_linked(store.id, old_loc.key, loc.key)
        self.ns.forget(new)
        self.ns.forget(old)  # its ctime and st_nlink changed
        self.times.changed(old)
        self.entries_changed(new)

    def rename(self, old: str, new: str, noreplace: bool = False) -> None:
        """Server-side copy then delete; a directory moves key by key (not atomic)."""
        store, loc = self._writable_store(old)
        new_store, new_loc = self._writable_store(new)
        if new_store is not store:
            raise VfsError(errno.EXDEV, f"{old} -> {new}: different buckets")
        meta = self.lookup(old)
        if old == new:
            return
        if new.startswith(old + "/"):
            raise VfsError(errno.EINVAL, f"{new}: inside {old}")
        try:
            target = self.lookup(new)
        except VfsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            target = None
            self._parent_dir(new)
        if target is not None:
            if noreplace:
                raise VfsError(errno.EEXIST, f"{new}: file exists")
            if meta.kind is Kind.DIR and target.kind is not Kind.DIR:
                raise VfsError(errno.ENOTDIR, f"{new}: not a directory")
            if meta.kind is not Kind.DIR and target.kind is Kind.DIR:
                raise VfsError(errno.EISDIR, f"{new}: is a directory")
            if target.kind is Kind.DIR and self.listdir(new):
                raise VfsError(errno.ENOTEMPTY, f"{new}: directory not empty")
        if meta.kind is Kind.DIR:
            self._rename_dir(store, old, new, loc.key, new_loc.key, replacing=target is not None)
            self._move_run_dirs(old, new)
        else:
            self.key_fits(store, new_loc.key, new)
            # A listing says nothing of hard links: ask the bucket about a listed name, so
            # a name moving out of (or replacing a name of) a group updates the group.
            if not meta.exact:
                meta = self.lookup(old, exact=True)
            if target is not None and not target.exact:
                target = self.lookup(new, exact=True)
            if self.links.same_file(store.url, loc.key, new_loc.key):
                return  # two names of one file: nothing to do (POSIX)
            keys = self.links.group(store.url, loc.key)
            if len(keys) > 1:
                self.links.check_size((keys - {loc.key}) | {new_loc.key}, new)
            self._flush_path(old)
            if target is not None:  # the replaced file: as if unlinked
                self.files.removing(store, new_loc.key, new, target)
            self.files.keep_readable(store, loc.key, meta)
            etag = store.copy(loc.key, new_loc.key, self._changed_metadata(old, meta), content_type=meta.content_type)
            store.delete(loc.key)
            metas.inode_moved(store.id, loc.key, new_loc.key)
            self.files.renamed(store, loc.key, new_loc.key, new)
        self.ns.forget(old)
        self.ns.forget(new)
        self.ns.remember(old, None)
        if meta.kind is not Kind.DIR and not stat.S_ISREG(meta.mode):
            # A link or special file keeps its type under the new name: a listing alone
            # would show it as a file.
            self.ns.update(new, dataclasses.replace(meta, etag=etag, ino=metas.inode(store.id, new_loc.key)))
        self.times.moved(old, new, below=meta.kind is Kind.DIR)
        self.times.changed(new)   # a rename changes the moved file's ctime (kept for the run if not stored)
        self.entries_changed(old)
        self.times.entries_changed(posixpath.dirname(new))

    def _move_run_dirs(self, old: str, new: str) -> None:
        """Directories of this run only (no marker: Namespace.local_dirs) at or below `old`
        are at `new` now; an empty one replaced at `new` is gone. (What was known of their
        old names _rename_dir forgot.)"""
        dirs = self.ns.local_dirs
        dirs.pop(new, None)
        for path in [p for p in dirs if p == old or p.startswith(old + "/")]:
            dirs[new + path[len(old):]] = dirs.pop(path)

    def _changed_metadata(self, path: str, meta: Meta) -> dict[str, str] | None:
        """The metadata of an object whose ctime changes now (a rename copies it anyway),
        or None (keep what is stored) when its metadata was not read."""
        if not meta.exact:
            return None
        meta = self.times.apply(path, meta)
        md = metas.to_metadata(meta.mode, meta.uid, meta.gid, meta.mtime_ns, meta.links,
                               atime_ns=meta.atime_ns, ctime_ns=time.time_ns())
        md.update(metas.special_metadata(meta))
        return md

    def _rename_dir(self, store, old: str, new: str, old_key: str, new_key: str, replacing: bool) -> None:
        moving = self.files.flush_below(store, old, old_key, new, new_key)
        keys = store.list_all(old_key + "/")
        longest = max(keys, key=_key_size, default=old_key + "/")
        self.key_fits(store, new_key + longest[len(old_key):], new)   # before anything moves
        if replacing:   # the empty directory replaced: its marker goes first, so the one
            store.delete(new_key + "/")   # moved onto its key stays
        moved = {}
        markers = []
        for key in keys:
            dest = moved[key] = new_key + key[len(old_key):]
            store.copy(key, dest, None)
            if key.endswith("/"):
                markers.append(key)   # deleted once what they hold is gone (below)
            else:
                store.delete(key)
            if key != old_key + "/":   # the directory's own number moves below, marker or not
                metas.inode_moved(store.id, key.rstrip("/"), dest.rstrip("/"))
        # Deepest first: a store whose directories are real ones (file://) removes one only
        # when it is empty; deleted before its contents, the old directory stayed behind.
        for key in sorted(markers, key=len, reverse=True):
            store.delete(key)
        store.moved_away(old_key + "/")
        self.ns.forget_below(old)   # every name below, keyed or not (a directory holding files has no key)
        metas.inode_moved(store.id, old_key, new_key)
        if not keys and old not in self.ns.local_dirs:   # nothing was below it: a marker at the new name
            md = metas.to_metadata(metas.DEFAULT_DIR_MODE, os.getuid(), os.getgid(), time.time_ns())
            if not self.put_marker(store, new_key + "/", md):
                self.ns.local_dirs[old] = metas.directory(store.id, new_key + "/")   # moved to new after
        for key, moved_key, moved_path in moving:
            self.files.moved(store, key, moved_key, moved_path)
        self.links.keys_moved(store, moved, new)

    def setattr(self, path: str, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                mtime_ns: int | None = None, atime_ns: int | None = None) -> None:
        """chmod, chown, utimes: stored in the object's metadata (CopyObject onto itself
        with MetadataDirective=REPLACE; for a directory, its marker object; for the root
        of a prefix mount, the prefix's marker `prefix/`). Each is a change: ctime is now."""
        root = self._mount_root(path)
        store, loc = root if root is not None else self._writable_store(path)
        meta = self.lookup(path, attrs=True)
        new = _changed_attrs(meta, mode, uid, gid, mtime_ns, atime_ns)
        self.times.forget(path)  # what this run knew of its times is stored now (or pending)
        if self.files.set_pending_attrs(loc.store_url, loc.key, new):
            return  # being written: the attributes go up with the data
        if path in self.ns.local_dirs:   # a directory of this run only: nowhere to keep attributes
            # its times too (this run's times only move forward: a time set into the past
            # would not show)
            self.ns.local_dirs[path] = dataclasses.replace(self.ns.local_dirs[path], **new)
            return
        md = metas.to_metadata(new["mode"], new["uid"], new["gid"], new["mtime_ns"],
                               atime_ns=new["atime_ns"], ctime_ns=new["ctime_ns"])
        # Keep what else the metadata says (extended attributes, a device number).
        if meta.kind is not Kind.DIR:
            meta = self.ns.exact(path, meta)
            md.update(metas.special_metadata(meta))
        elif loc.dir_key:
            md.update(xattrs.kept(store, loc.dir_key))
        if meta.kind is Kind.DIR:
            changed = dataclasses.replace(meta, **new, exact=True)
            if loc.dir_key:
                if not self.put_marker(store, loc.dir_key, md):
                    self.ns.local_dirs[path] = changed   # no markers here: kept for the run
            else:  # a bucket root has no key to keep attributes in: they last for the run
                if store.url not in self.ns.root_attrs:
                    log.warning("%s: the attributes of a bucket root cannot be stored; they last for this run",
                                store.url)
                self.ns.root_attrs[store.url] = changed
            self.ns.update(path, changed)
        else:
            etag = self.links.copy_to_group(store, path, loc.key, md, meta.etag, new, meta.content_type)
            self.ns.update(path, own_ctime(store, loc.key, dataclasses.replace(meta, **new, etag=etag)))

    def nameless(self, file) -> bool:
        """Whether an open file has lost its name (unlinked, or replaced by a rename)."""
        return file is not None and self.files.nameless(file.item)

    def reopen(self, file, flags: int):
        """Another open of a file that has no name any more (/proc/PID/fd/N): a new
        handle on the same cache item."""
        return self.files.reopen(file, flags)

    def setattr_open(self, file, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                     mtime_ns: int | None = None, atime_ns: int | None = None) -> None:
        """fchmod, fchown, futimens of a file that has no name any more: the change is the
        open file's alone (what its descriptors' fstat shows), as on a local filesystem,
        not that of whatever bears its old name now. Nothing is stored: no object is it."""
        new = _changed_attrs(file.current_meta(), mode, uid, gid, mtime_ns, atime_ns)
        file.item.attrs = dict(file.item.attrs or {}, **new)

    def _mount_root(self, path: str):
        """(store, location) when `path` is the root of a bucket or of a -m mount."""
        try:
            loc = self.mounts.locate(path)
        except KeyError:
            return None
        if loc is None or loc.rel != "" or loc.store_url == "s3://":
            return None
        return self.store(loc.store_url), loc

    @staticmethod
    def check_size(cache_path: str, size: int) -> None:
        """EFBIG, as the kernel's truncate, for a size past the largest file the cache's
        filesystem holds, before anything is recorded: lseek refuses (EINVAL) exactly the
        offsets over that limit, and changes nothing."""
        fd = os.open(cache_path, os.O_RDONLY)
        try:
            os.lseek(fd, size, os.SEEK_SET)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise VfsError(errno.EFBIG, f"{size}: past the largest file size") from None
            raise
        finally:
            os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        handle = self.open(path, os.O_WRONLY)
        try:
            self.check_size(handle.cache_path, size)
            handle.set_size(size)
            os.truncate(handle.cache_path, size)
        finally:
            handle.close()

    def _flush(self, item: Item, store, key: str, path: str) -> None:
        """Publish an item's pending changes (recovery.py and xattrs.py call in here)."""
        self.files.flush(item, store, key, path)

    def stats(self) -> dict:
        return self._stats.as_dict()

    def close(self) -> None:
        if self.predictor is not None:
            self.predictor.close()
        self.files.close()
        self.fetcher.close()
        self.ns.close()
        self.cache.close()


def _changed_attrs(meta: Meta, mode: int | None, uid: int | None, gid: int | None,
                   mtime_ns: int | None, atime_ns: int | None) -> dict[str, int]:
    """`meta`'s attributes with a chmod, chown or utimes applied (None: unchanged); each
    such change is one: ctime is now."""
    return {"mode": meta.mode if mode is None else (stat.S_IFMT(meta.mode) | (mode & 0o7777)),
            "uid": meta.uid if uid is None else uid, "gid": meta.gid if gid is None else gid,
            "mtime_ns": meta.mtime_ns if mtime_ns is None else mtime_ns,
            "atime_ns": meta.atime_ns if atime_ns is None else atime_ns, "ctime_ns": time.time_ns()}
