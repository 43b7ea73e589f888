"""A local directory served as an object store (the embedded default): key = path below it."""

from __future__ import annotations

import errno
import os
import stat

from ..errors import VfsError
from ..meta import format_time, parse_time
from ..stats import Stats
from .base import Below, First, Listing, ObjectInfo


class LocalStore:
    def __init__(self, root: str, stats: Stats):
        self.root = root
        self.url = f"file://{root}"
        self.id = self.url
        self.endpoint = self.url
        self.stats = stats
        self._real_root = os.path.realpath(root)

    def _path(self, key: str, whole: bool = False) -> str:
        """The local path of `key`. A key names what it says, as in S3: a symlink in the
        directories above it (or in the directory itself, `whole`, for a prefix) is not
        gone through (FileNotFoundError): the namespace follows virtual symlinks itself,
        counting them (ELOOP), and none leads out of the store unseen."""
        path = os.path.join(self.root, key) if key else self.root
        above = (key if whole else key.rpartition("/")[0]).rstrip("/")
        if above and not self._no_symlinks(above):
            raise FileNotFoundError(errno.ENOENT, "a symbolic link above the key", path)
        return path

    def _no_symlinks(self, rel: str) -> bool:
        """Whether the directory `rel` below the root is reached without a symlink (a
        missing one: True, the operation itself finds it missing)."""
        try:
            fd = os.open(os.path.join(self.root, rel), os.O_PATH)
        except OSError:
            return True
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return real == os.path.join(self._real_root, rel)

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        metadata = {"mode": str(st.st_mode), "uid": str(st.st_uid), "gid": str(st.st_gid),
                    "mtime": format_time(st.st_mtime_ns), "atime": format_time(st.st_atime_ns),
                    "ctime": format_time(st.st_ctime_ns)}  # the local file's: when objmount last changed it
        size = st.st_size
        if stat.S_ISLNK(st.st_mode):
            size = len(os.fsencode(os.readlink(self._path(key))))
        return ObjectInfo(key, size, f'"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"',
                          st.st_mtime, metadata)

    def _fail(self, exc: OSError, key: str) -> VfsError:
        return VfsError(exc.errno or errno.EIO, f"{self.url}/{key}: {exc.strerror}")

    def check_root(self) -> None:
        if not os.path.isdir(self.root):
            raise VfsError(errno.ENOENT, f"{self.url}: no such directory")

    def head(self, key: str) -> ObjectInfo | None:
        self.stats.request("HeadObject")
        try:
            st = os.lstat(self._path(key))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise self._fail(exc, key) from None
        if stat.S_ISDIR(st.st_mode) and not key.endswith("/"):
            return None  # directories are prefixes, as in S3; 'dir/' is their marker
        return self._info(key, st)

    def list(self, prefix: str) -> Listing:
        self.stats.request("ListObjectsV2")
        objects, prefixes = [], []
        try:
            with os.scandir(self._path(prefix.rstrip("/"), whole=True)) as it:
                for entry in it:
                    key = prefix + entry.name
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        prefixes.append(key + "/")
                    else:
                        info = self._info(key, st)
                        objects.append(ObjectInfo(key, info.size, info.etag, info.mtime, info.metadata))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise self._fail(exc, prefix) from None
        return Listing(objects, prefixes)

    def moved_away(self, prefix: str) -> None:
        """The directories below and at `prefix` that a directory's rename emptied (its
        keys moved one by one; a directory holding files has no key of its own)."""
        try:
            base = self._path(prefix.rstrip("/"), whole=True)
        except FileNotFoundError:
            return
        for dirpath, _, _ in sorted(os.walk(base), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass   # not empty: something arrived meanwhile, or it was never moved

    def look_below(self, prefix: str) -> Below:
        self.stats.request("ListObjectsV2")
        # a directory's attributes are its own: its "marker" is always there
        try:
            path = self._path(prefix.rstrip("/"), whole=True)
        except FileNotFoundError:
            return Below.NOTHING
        return Below.MARKED if os.path.isdir(path) else Below.NOTHING

    # --- writes: the directory is the store, so each is one local operation ------------
    supports_multipart = False
    keeps_metadata = False  # a local file has no room for xattrs or a special file's type

    def _apply_metadata(self, path: str, metadata: dict[str, str]) -> None:
        mode = int(metadata.get("mode", 0)) & 0o7777
        if mode and not os.path.islink(path):
            os.chmod(path, mode)
        try:
            os.lchown(path, int(metadata.get("uid", -1)), int(metadata.get("gid", -1)))
        except (PermissionError, ValueError):
            pass
        mtime = parse_time(metadata.get("mtime"))
        if mtime is not None:  # ctime: the local file's own, which the kernel keeps
            atime = parse_time(metadata.get("atime"))
            os.utime(path, ns=(mtime if atime is None else atime, mtime), follow_symlinks=False)

    def put(self, key: str, body: bytes, metadata: dict[str, str], content_type: str | None = None) -> str:
        self.stats.request("PutObject", sent=len(body))
        try:
            path = self._path(key.rstrip("/"))
            mode = int(metadata.get("mode", 0))
            if key.endswith("/") or stat.S_ISDIR(mode):
                os.makedirs(path, exist_ok=True)
                self._apply_metadata(path, metadata)
                return '"dir"'
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if stat.S_ISLNK(mode):
                if os.path.lexists(path):
                    os.unlink(path)
                os.symlink(os.fsdecode(body), path)
            else:
                tmp = f"{path}.objmount-tmp"
                with open(tmp, "wb") as f:
                    f.write(body)
                os.replace(tmp, path)
                self._apply_metadata(path, metadata)
            return self._info(key, os.lstat(path)).etag
        except OSError as exc:
            raise self._fail(exc, key) from None

    def delete(self, key: str) -> None:
        self.stats.request("DeleteObject")
        try:
            path = self._path(key.rstrip("/"))
            if key.endswith("/"):
                if os.path.isdir(path) and not os.listdir(path):
                    os.rmdir(path)
            elif os.path.lexists(path):
                os.unlink(path)
        except OSError as exc:
            raise self._fail(exc, key) from None

    def copy(self, src: str, dst: str, metadata: dict[str, str] | None, etag: str | None = None,
             content_type: str | None = None) -> str:
        self.stats.request("CopyObject")
        import shutil
        try:
            s, d = self._path(src.rstrip("/")), self._path(dst.rstrip("/"))
            if s != d:
                os.makedirs(os.path.dirname(d), exist_ok=True)
                if os.path.islink(s):
                    if os.path.lexists(d):
                        os.unlink(d)
                    os.symlink(os.readlink(s), d)
                elif os.path.isdir(s):
                    os.makedirs(d, exist_ok=True)
                else:
                    shutil.copy2(s, d)
            if metadata is not None:
                self._apply_metadata(d, metadata)
            return self._info(dst, os.lstat(d)).etag
        except OSError as exc:
            raise self._fail(exc, dst) from None

    def list_all(self, prefix: str) -> list[str]:
        try:
            base = self._path(prefix.rstrip("/"), whole=True)
        except FileNotFoundError:
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                keys.append(os.path.join(rel, name))
            if not filenames and not dirnames:
                keys.append(rel + "/")
        return keys

    def get_first(self, key: str, length: int, etag: str | None = None, ranged: bool = True) -> First | None:
        """As S3Store.get_first: one 'request' for the attributes and the first bytes."""
        self.stats.request("GetObject")
        try:
            path = self._path(key)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                return None  # directories are prefixes, as in S3
            info = self._info(key, st)
            if etag is not None and info.etag == etag:
                return First(info, not_modified=True)
            if stat.S_ISLNK(st.st_mode):
                data = os.fsencode(os.readlink(path))[:length]
            else:
                with _open_quietly(path) as f:
                    data = f.read(length)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._fail(exc, key) from None
        self.stats.add_received(len(data))
        return First(info, data)

    def read(self, key: str, start: int, end: int, etag: str | None, sink) -> None:
        self.stats.request("GetObject")
        try:
            path = self._path(key)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                data = os.fsencode(os.readlink(path))[start:end]
                sink(start, data)
                self.stats.add_received(len(data))
                return
            if etag is not None and self._info(key, st).etag != etag:
                raise VfsError(errno.ESTALE, f"{self.url}/{key}: object changed while reading")
            with _open_quietly(path) as f:
                f.seek(start)
                pos = start
                while pos < end:
                    chunk = f.read(min(1 << 20, end - pos))
                    if not chunk:
                        break
                    sink(pos, chunk)
                    self.stats.add_received(len(chunk))
                    pos += len(chunk)
        except OSError as exc:
            raise self._fail(exc, key) from None


def _open_quietly(path: str):
    """Open a stored file for reading without moving its atime: fetching is not the
    program's read (the vfs moves atime by the program's reads, see times.py). O_NOATIME
    is for the file's owner only; anyone else reads it plainly."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    return open(fd, "rb")
