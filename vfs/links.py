"""Hard-link groups: which names (keys) are one file.

Object stores have no inodes, so every name of a hard-linked file is a whole ordinary
object (a server-side copy), and each carries the keys of all names of its group in its
user metadata (`objmount-links`, see meta.py). This run's view of the groups lives here:
learned from a HEAD of any name, changed by link, unlink, rename and chmod and friends,
which rewrite the list on every name. The bytes of a group being written are files.py's.
"""

from __future__ import annotations

import dataclasses
import errno
import time

from . import meta as metas
from .errors import VfsError
from .meta import Kind, Meta


class LinkGroups:
    def __init__(self, ns, refile):
        self.ns = ns
        # refile(store, key, old etag, make, attrs=None) -> new etag: `make()` makes a
        # version of `key` with the bytes of `old`; open cache items of `old` are re-filed
        # (files.py)
        self._refile = refile
        # (store url, key) -> the keys of its hard-link group (one set shared by its names)
        self._groups: dict[tuple[str, str], frozenset[str]] = {}

    def group(self, store_url: str, key: str) -> frozenset[str]:
        """The keys of the group `key` belongs to (just itself when it is not linked)."""
        return self._groups.get((store_url, key)) or frozenset((key,))

    def known(self, store_url: str, key: str) -> bool:
        """Does this run know a hard-link group of `key`?"""
        return (store_url, key) in self._groups

    def leave(self, store_url: str, key: str) -> None:
        """`key` is no name of its group any more (the others' lists are rewritten by the caller)."""
        self._groups.pop((store_url, key), None)

    def set(self, store_url: str, keys) -> None:
        keys = frozenset(keys)
        for k in keys:
            self._groups.pop((store_url, k), None)
        if len(keys) > 1:
            for k in keys:
                self._groups[(store_url, k)] = keys

    def seen(self, path: str, meta: Meta) -> Meta:
        """A Meta from the namespace: learn its link group (from a HEAD) or, when this run
        knows the group, say so in st_nlink."""
        if meta.kind is not Kind.FILE:
            return meta
        loc = self.locate(path)
        if loc is None:
            return meta
        known = self._groups.get((loc.store_url, loc.key))
        if known is None and meta.links:
            self.set(loc.store_url, meta.links)
            known = frozenset(meta.links)
        if known is None:
            return meta
        return dataclasses.replace(meta, nlink=len(known), links=tuple(sorted(known)))

    def locate(self, path: str):
        try:
            loc = self.ns.mounts.locate(path)
        except KeyError:
            return None
        return loc if loc is not None and loc.rel else None

    def path_of(self, path: str, key: str, other: str) -> str | None:
        """The path of key `other`, seen from the mount `path` (whose key is `key`) is in."""
        loc = self.locate(path) if path.startswith("/") else None
        if loc is None or not other.startswith(loc.prefix):
            return None
        return path[:len(path) - len(loc.rel)] + other[len(loc.prefix):]

    def check_size(self, keys, name: str) -> None:
        if len(metas.encode_links(keys)) > metas.LINKS_MAX:
            raise VfsError(errno.EMLINK, f"{name}: too many links (the names must fit in "
                                         f"{metas.LINKS_MAX} bytes of object metadata)")

    def relink(self, store, path: str, key: str, keys, source: str) -> None:
        """Make the names `keys` (those that exist) one group in the bucket: each gets
        `source`'s bytes and attributes and the list of the group."""
        infos = {k: store.head(k) for k in keys}
        live = {k for k, info in infos.items() if info is not None}
        src = infos.get(source)
        if src is None:
            return
        md = {k: v for k, v in (src.metadata or {}).items() if k.lower() not in (metas.LINKS_KEY, "ctime")}
        md["ctime"] = metas.format_time(time.time_ns())  # a name added or removed: the file changed
        if len(live) > 1:
            md[metas.LINKS_KEY] = metas.encode_links(live)
        for k in sorted(live, key=lambda k: k != source):  # the source first: it is read by the others
            self._refile(store, k, infos[k].etag, lambda: store.copy(source, k, md))  # same bytes
            if (p := self.path_of(path, key, k)) is not None:
                self.ns.forget(p)
        self.set(store.url, live)

    def copy_to_group(self, store, path: str, key: str, md: dict[str, str], etag: str | None,
                      attrs: dict, content_type: str | None = None) -> str:
        """chmod and friends (`attrs`: mode, uid, gid, times) on a file not being written
        (version `etag`): new attributes on every name (with `content_type` kept). Returns
        the new ETag."""
        keys = self.group(store.url, key)
        if len(keys) > 1:
            md = dict(md, **{metas.LINKS_KEY: metas.encode_links(keys)})
        new_etag = self._refile(store, key, etag, lambda: store.copy(key, key, md, content_type=content_type), attrs)
        for other in keys - {key}:
            if (info := store.head(other)) is not None:
                self._refile(store, other, info.etag, lambda: store.copy(key, other, md, content_type=content_type),
                             attrs)
            if (p := self.path_of(path, key, other)) is not None:
                self.ns.forget(p)
        return new_etag

    def keys_moved(self, store, moves: dict[str, str], path: str) -> None:
        """A directory rename moved these keys (old -> new; `path` is a path in the same
        mount): groups this run knows with names among them get their lists rewritten.
        (A group not seen in this run is not known without a HEAD per key.)"""
        url, done = store.url, set()
        for old, new in moves.items():
            keys = self._groups.get((url, old))
            if keys is None or keys in done:
                continue
            done.add(keys)
            for k in keys:
                self._groups.pop((url, k), None)
            loc = self.locate(path)
            self.relink(store, path, loc.key if loc else new, {moves.get(k, k) for k in keys}, new)

    def same_file(self, store_url: str, key: str, other: str) -> bool:
        return other in self.group(store_url, key) and other != key
