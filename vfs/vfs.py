"""The vfs facade: what the syscall handlers call."""

from __future__ import annotations

import errno
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache, Item
from .errors import VfsError
from .fetch import Fetcher, Readahead
from .meta import Kind, Meta
from .mounts import MountTable
from .namespace import Namespace
from .stats import Stats
from .stores.local import LocalStore
from .stores.s3 import S3Service, S3Store

log = logging.getLogger("vfs")


@dataclass
class VfsConfig:
    cache_dir: Path
    cache_size: int = 10 * 2**30
    metadata_ttl: float = 5.0
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    fetch_workers: int = 16
    random_block: int = 32 * 1024       # alignment of fetches for random reads
    readahead_max: int = 256 * 2**20


class OpenFile:
    """An open regular file: its sparse cache file and the ranges it needs."""

    def __init__(self, vfs: "Vfs", store, key: str, meta: Meta, item: Item):
        self._vfs = vfs
        self._store = store
        self._key = key
        self.meta = meta
        self.item = item
        self.cache_path = str(item.path)
        self._readahead = Readahead(maximum=vfs.config.readahead_max)
        self._closed = False

    def ensure(self, offset: int, length: int) -> None:
        end = min(offset + max(length, 0), self.meta.size)
        if offset >= end:
            return
        ahead = self._readahead.advise(offset, end)
        if ahead == 0 and self.item.present.contains(offset, end):
            return
        self._vfs.fetcher.ensure(self._store, self._key, self.meta.etag, self.item, offset, end, ahead=ahead)

    def ensure_all(self) -> None:
        if self.meta.size:
            self._vfs.fetcher.ensure(self._store, self._key, self.meta.etag, self.item, 0, self.meta.size,
                                     align=self._vfs.fetcher.part)

    def materialize(self) -> None:
        """The whole object present and no writer open on it, ready for execve."""
        self.ensure_all()
        self.item.close_fd()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._vfs.cache.release(self.item)


class Vfs:
    def __init__(self, mounts: MountTable, config: VfsConfig):
        self.mounts = mounts
        self.config = config
        self._stats = Stats()
        self.cache = Cache(Path(config.cache_dir), config.cache_size)
        self.placeholder_dir = str(self.cache.placeholder)
        self.fetcher = Fetcher(workers=config.fetch_workers, block=config.random_block)
        self._s3 = S3Service(config.endpoint_url, config.profile, config.region, self._stats)
        self._stores: dict[str, object] = {}
        self._lock = threading.Lock()
        self.ns = Namespace(mounts, self.store, config.metadata_ttl)

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
    def resolve(self, path: str, follow_last: bool = True) -> str:
        return self.ns.resolve(path, follow_last)

    def lookup(self, path: str) -> Meta:
        return self.ns.lookup(path)

    def listdir(self, path: str) -> list[tuple[str, Meta]]:
        return self.ns.listdir(path)

    def readlink(self, path: str) -> str:
        meta = self.ns.lookup(path)
        if meta.kind is not Kind.SYMLINK or meta.target is None:
            raise VfsError(errno.EINVAL, f"{path}: not a symbolic link")
        return meta.target

    # --- data ------------------------------------------------------------------------
    def open(self, path: str) -> OpenFile:
        meta = self.ns.head(path)  # close-to-open: always revalidate
        if meta.kind is Kind.DIR:
            raise VfsError(errno.EISDIR, f"{path}: is a directory")
        loc = self.mounts.locate(path)
        store = self.store(loc.store_url)
        item = self.cache.open_item(store.id, loc.key, meta.etag, meta.size)
        return OpenFile(self, store, loc.key, meta, item)

    def stats(self) -> dict:
        return self._stats.as_dict()

    def close(self) -> None:
        self.fetcher.close()
        self.ns.close()
        self.cache.close()
