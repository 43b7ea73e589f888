"""Extended attributes kept as s3fs-fuse keeps them: one user-metadata key, `xattr`, whose
value is a URL-encoded JSON object mapping each attribute name to its base64 value
(s3fs's build_xattrs/parse_xattrs: names sorted, `{"user.a":"dmFs"}` -> `%7B%22user.a%22%3A%22dmFs%22%7D`).

Reads and changes go to the object itself (HEAD, then CopyObject onto itself with the
other user metadata kept); a directory's attributes live on its marker object, which a
change creates if the directory had none (as s3fs does)."""

from __future__ import annotations

import base64
import dataclasses
import time
import errno
import json
import urllib.parse

from . import meta as metas
from .errors import VfsError
from .meta import Kind

KEY = "xattr"
XATTR_CREATE = 1
XATTR_REPLACE = 2
NAME_MAX = 255         # XATTR_NAME_MAX
SIZE_MAX = 65536       # XATTR_SIZE_MAX
# S3 user metadata is limited to 2 KiB in all (names and values, URL-encoded here).
METADATA_MAX = 2048


def decode(value: str | None) -> dict[str, bytes]:
    """The attributes in an `xattr` metadata value; a malformed value reads as none (s3fs
    skips what it cannot parse too)."""
    if not value:
        return {}
    try:
        obj = json.loads(urllib.parse.unquote(value))
        return {str(k): base64.b64decode(v) for k, v in obj.items()} if isinstance(obj, dict) else {}
    except ValueError:
        return {}


def encode(attrs: dict[str, bytes]) -> str:
    body = ",".join(f'"{name}":"{base64.b64encode(attrs[name]).decode()}"' for name in sorted(attrs))
    return urllib.parse.quote("{" + body + "}", safe="-_.~/")


class Xattrs:
    """The xattr family on virtual paths, over a Vfs."""

    def __init__(self, vfs):
        self.vfs = vfs

    def _object(self, path: str):
        """(store, key of the object holding the attributes, meta)."""
        store, loc = self.vfs._located(path)
        if store is None:
            raise VfsError(errno.EOPNOTSUPP, f"{path}: extended attributes are kept on objects in a bucket")
        if not getattr(store, "keeps_metadata", True):
            raise VfsError(errno.EOPNOTSUPP, f"{path}: {store.url} keeps no object metadata")
        meta = self.vfs.lookup(path)
        return store, loc, meta

    def _writer(self, loc):
        """(item, store, path) of the file if it is being written, else None."""
        return self.vfs.files.entry(loc.store_url, loc.key)

    def _stored(self, store, loc, meta) -> dict[str, str] | None:
        """The user metadata now on the object (None: a directory without marker)."""
        key = loc.dir_key if meta.kind is Kind.DIR else loc.key
        if not key:  # a bucket root: no object to hold anything
            return None
        info = store.head(key)
        if info is None:
            if meta.kind is Kind.DIR:
                return None
            raise VfsError(errno.ENOENT, f"{loc.key}: no such object")
        return {k.lower(): v for k, v in (info.metadata or {}).items()}

    def get_all(self, path: str) -> dict[str, bytes]:
        store, loc = self.vfs._located(path)
        if store is None or not getattr(store, "keeps_metadata", True):
            return {}  # nothing can be kept there, so nothing is: none to read
        store, loc, meta = self._object(path)
        entry = self._writer(loc)
        if entry is not None:  # being written: the attributes go up with the data
            return decode((entry[0].attrs or {}).get(KEY))
        if meta.exact and meta.kind is not Kind.DIR:
            return decode(meta.xattr)
        return decode((self._stored(store, loc, meta) or {}).get(KEY))

    @staticmethod
    def _open_value(file) -> str | None:
        attrs = file.item.attrs
        return attrs[KEY] if attrs is not None and KEY in attrs else file.meta.xattr

    def get_open(self, file) -> dict[str, bytes]:
        """The attributes of an open file without a name (unlinked or replaced while open)."""
        return decode(self._open_value(file))

    def change_open(self, file, path: str, name: str, value: bytes | None, flags: int = 0) -> None:
        """`change` for an open file without a name: its own, for its descriptors; no
        object is it any more, so nothing is stored."""
        encoded = _changed(path, decode(self._open_value(file)), name, value, flags)
        file.item.attrs = dict(file.item.attrs or {}, **{KEY: encoded}, ctime_ns=time.time_ns())

    def change(self, path: str, name: str, value: bytes | None, flags: int = 0) -> None:
        """Set `name` to `value`, or remove it (value None), with XATTR_CREATE/REPLACE."""
        store, loc, meta = self._object(path)
        if meta.kind is Kind.DIR and not loc.dir_key:
            raise VfsError(errno.EOPNOTSUPP, f"{path}: a bucket root has no object to keep attributes in")
        if path in self.vfs.ns.local_dirs:
            raise VfsError(errno.EOPNOTSUPP, f"{path}: a directory of this run only keeps no attributes")
        entry = self._writer(loc)
        md = None if entry is not None else self._stored(store, loc, meta)
        attrs = decode((entry[0].attrs or {}).get(KEY) if entry is not None else (md or {}).get(KEY))
        encoded = _changed(path, attrs, name, value, flags)
        now = time.time_ns()  # an extended attribute changes the inode: ctime
        self.vfs.times.forget(path)
        if entry is not None:
            item = entry[0]
            item.attrs = dict(item.attrs or {}, **{KEY: encoded}, ctime_ns=now)
            item.meta_dirty = True
            item.attrs_version += 1
            if item.writers == 0:
                self.vfs._flush(item, entry[1], loc.key, entry[2])
            return
        if md is None:  # a directory without marker: make one, as mkdir would have
            md = metas.to_metadata(meta.mode, meta.uid, meta.gid, meta.mtime_ns, atime_ns=meta.atime_ns,
                                   ctime_ns=meta.ctime_ns)
        if encoded is None:
            md.pop(KEY, None)
        else:
            md[KEY] = encoded
        md["ctime"] = metas.format_time(now)
        if meta.kind is Kind.DIR:
            if not self.vfs.put_marker(store, loc.dir_key, md):
                raise VfsError(errno.EOPNOTSUPP, f"{path}: this server keeps no directory markers, so no "
                                                 "directory attributes")
            self.vfs.ns.update(path, dataclasses.replace(meta, ctime_ns=now))
        else:  # every name of a hard-link group gets them
            etag = self.vfs.links.copy_to_group(store, path, loc.key, md, meta.etag, {"xattr": encoded, "ctime_ns": now})
            self.vfs.ns.update(path, dataclasses.replace(meta, etag=etag, xattr=encoded, ctime_ns=now, exact=True))


def _changed(path: str, attrs: dict[str, bytes], name: str, value: bytes | None, flags: int) -> str | None:
    """Set `name` to `value` in `attrs` (remove it: value None) as setxattr's flags say;
    returns the new stored form."""
    if value is None:
        if name not in attrs:
            raise VfsError(errno.ENODATA, f"{path}: no attribute {name}")
        del attrs[name]
    else:
        if flags & XATTR_CREATE and name in attrs:
            raise VfsError(errno.EEXIST, f"{path}: attribute {name} exists")
        if flags & XATTR_REPLACE and name not in attrs:
            raise VfsError(errno.ENODATA, f"{path}: no attribute {name}")
        attrs[name] = value
    encoded = encode(attrs) if attrs else None
    if value is not None and encoded is not None and len(encoded) + len(KEY) + 64 > METADATA_MAX:
        raise VfsError(errno.ENOSPC, f"{path}: extended attributes exceed the 2 KiB of object metadata")
    return encoded


def kept(store, key: str) -> dict[str, str]:
    """The `xattr` metadata of an object, for a change that rewrites its metadata."""
    info = store.head(key)
    md = {k.lower(): v for k, v in ((info.metadata if info else None) or {}).items()}
    return {KEY: md[KEY]} if KEY in md else {}
