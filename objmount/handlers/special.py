"""Special files on virtual paths: mknod/mkfifo, opening a fifo, unix sockets bound at a
virtual path.

The object is what s3fs-fuse stores (vfs/special.py: an empty object whose mode carries
the type), so ls and stat show the fifo or socket, in this run and later ones. What makes
it work among the run's processes is a real kernel object per virtual one, in a private
per-run directory (short, for sockaddr_un's 108 bytes): opening a virtual fifo opens its
real fifo (made at the first open), bind() at a virtual path binds the real socket path
and creates the object, connect() to it connects to the real socket. A socket object
left by another run has no listener: connect says ECONNREFUSED, as for a stale socket
file. Device nodes (root only) are stored with their number but do not open (EACCES, as
on a nodev mount): a bucket is no place to reach this machine's devices from.

bind and connect take a sockaddr, not a path string, so BPF cannot tell an AF_UNIX path
from an inet address: both stop at every call; the handler reads the two-byte family and
returns at once for anything else.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import stat
import struct
import tempfile

from vfs import VfsError
from vfs import special as vspecial

from .. import permissions as perm
from ..linux import SYS
from .changes import _path, _resolve_parent, umask_of
from .registry import always_syscall, path_syscall

try:   # CPython's own BLAKE2: importing hashlib loads OpenSSL's libcrypto first (~2 ms a start)
    from _blake2 import blake2b
except ImportError:
    from hashlib import blake2b

AF_UNIX = 1
SUN_PATH_MAX = 108
O_ACCMODE = 0o3


class RunNodes:
    """The real fifos and sockets behind this run's virtual ones."""

    def __init__(self):
        self._dir: str | None = None
        # Names no one outside the run can guess: the directory is searchable (0711) so
        # that programs of the run can open its fifos, but must not be for other users.
        self._key = os.urandom(16)
        self.sockets: dict[str, str] = {}  # virtual path -> real socket path

    @property
    def dir(self) -> str:
        if self._dir is None:
            # /tmp rather than TMPDIR: a long TMPDIR would not fit sockaddr_un.
            base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
            self._dir = tempfile.mkdtemp(prefix="objmount-", dir=base)
            os.chmod(self._dir, 0o711)  # programs open the fifos by their exact name
            atexit.register(shutil.rmtree, self._dir, True)
        return self._dir

    def real(self, kind: str, path: str) -> str:
        return os.path.join(self.dir, kind + blake2b(os.fsencode(path), digest_size=8, key=self._key).hexdigest())

    def socket(self, path: str, creds) -> str:
        """Where the real socket of a bind at `path` goes: the kernel creates it with the
        binding process's identity, so a program running as another user than objmount
        binds in a directory of its own (0711 like the run's, made when objmount is root;
        otherwise every process of the run is objmount's user anyway)."""
        if creds.fsuid == os.geteuid() or os.geteuid() != 0:
            return self.real("s", path)
        own = os.path.join(self.dir, f"u{creds.fsuid}")
        if not os.path.isdir(own):
            os.mkdir(own, 0o711)
            os.chown(own, creds.fsuid, creds.fsgid)
        return os.path.join(own, os.path.basename(self.real("s", path)))

    def fifo(self, path: str) -> str:
        real = self.real("p", path)
        if not os.path.exists(real):
            os.mkfifo(real, 0o600)
            os.chmod(real, 0o666)  # the object's mode was checked already (check_access)
        return real


def _nodes(sup) -> RunNodes:
    nodes = getattr(sup, "_run_nodes", None)
    if nodes is None:
        nodes = sup._run_nodes = RunNodes()
    return nodes


# --- mknod ----------------------------------------------------------------------------
@path_syscall("mknod", "mknodat")
def on_mknod(sup, stop) -> None:
    at = stop.nr != SYS.mknod
    path = _path(sup, stop, follow=False)
    if path is None:
        return
    mode = stop.arg(2 if at else 1) & 0xFFFFFFFF
    dev = stop.arg(3 if at else 2)
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFDIR:
        raise VfsError(errno.EPERM, f"{path}: mknod does not make directories")
    creds = sup.creds(stop)
    if kind in (stat.S_IFCHR, stat.S_IFBLK) and not creds.root:
        raise VfsError(errno.EPERM, f"{path}: only root makes device nodes")
    uid, gid, perms = perm.new_owner(sup.may_create(path), mode & 0o7777, False, creds, umask_of(stop.tid))
    if kind in (0, stat.S_IFREG):
        handle = sup.vfs.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, perms, uid, gid)
        handle.close()
    elif kind in (stat.S_IFIFO, stat.S_IFSOCK):
        vspecial.make_node(sup.vfs, path, kind | perms, 0, uid, gid)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        vspecial.make_node(sup.vfs, path, kind | perms, _dev_t(dev), uid, gid)
    elif kind == stat.S_IFDIR:
        raise VfsError(errno.EPERM, f"{path}: mknod does not make directories")
    else:
        raise VfsError(errno.EINVAL, f"{path}: mknod cannot make a file of type {kind:#o}")
    stop.skip(0)


def _dev_t(dev: int) -> int:
    """The kernel's mknod takes a 32-bit new_encode_dev(); st_rdev is glibc's 64-bit dev_t."""
    dev &= 0xFFFFFFFF
    major, minor = (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
    return os.makedev(major, minor)


# --- opening a special file -------------------------------------------------------------
def open_node(sup, stop, path: str, meta, flags: int) -> None:
    """open() of a virtual special file (called by handlers/open.py)."""
    kind = stat.S_IFMT(meta.mode)
    if kind == stat.S_IFSOCK:
        raise VfsError(errno.ENXIO, f"{path}: a socket cannot be opened")
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        raise VfsError(errno.EACCES, f"{path}: device nodes in a bucket do not open (as on a nodev mount)")
    wanted = {os.O_RDONLY: 4, os.O_WRONLY: 2, os.O_RDWR: 6}.get(flags & O_ACCMODE, 6)
    sup.allow(perm.permission(meta, wanted, sup.creds(stop)), path)
    sup.set_path(stop, _nodes(sup).fifo(path))  # the kernel does the rest


# --- unix sockets -----------------------------------------------------------------------
def _unix_path(stop) -> bytes | None:
    """The sun_path of a bind/connect with a pathname AF_UNIX address, else None."""
    addr, length = stop.arg(1), stop.arg(2) & 0xFFFFFFFF
    if addr == 0 or length < 3 or length > 2 + SUN_PATH_MAX:
        return None
    try:
        head = stop.read(addr, length)
    except OSError:
        return None
    if len(head) < 3 or struct.unpack_from("<H", head)[0] != AF_UNIX or head[2] == 0:
        return None  # another family, or an abstract socket (no file)
    return head[2:].split(b"\0", 1)[0]


def _point_at(stop, real: str) -> None:
    sun = struct.pack("<H", AF_UNIX) + os.fsencode(real) + b"\0"
    stop.set_arg(1, stop.push(sun))
    stop.set_arg(2, len(sun))


def _virtual_target(sup, stop, follow: bool):
    """The virtual path an AF_UNIX bind/connect names, or None (not AF_UNIX, a local path).
    Not Supervisor.virtual_arg: the path lies inside a sockaddr, not in an argument of
    its own, so these calls have no PATH_LAYOUTS entry and rewrite the whole address."""
    from .. import paths
    raw = _unix_path(stop)
    if raw is None:
        return None
    target = sup.classify(stop, paths.decode(raw))
    if target is None:
        return None
    if target.virtual:
        target = sup.resolve(target, follow=True) if follow else _resolve_parent(sup, target)
    if not target.virtual:
        if target.path != paths.decode(raw) and len(os.fsencode(target.path)) < SUN_PATH_MAX:
            _point_at(stop, target.path)  # a relative path in a virtual cwd led out
        return None
    return target.path


@always_syscall("bind")
def on_bind(sup, stop) -> None:
    path = _virtual_target(sup, stop, follow=False)
    if path is None:
        return
    try:
        sup.vfs.lookup(path)
        raise VfsError(errno.EADDRINUSE, f"{path}: address in use")
    except VfsError as exc:
        if exc.errno != errno.ENOENT:
            raise
    parent = sup.may_create(path)
    creds = sup.creds(stop)
    nodes = _nodes(sup)
    real = nodes.socket(path, creds)
    try:
        os.unlink(real)  # left by an earlier bind at this path, since unlinked
    except FileNotFoundError:
        pass
    _point_at(stop, real)
    result = stop.run()
    if result < 0:
        return
    uid, gid, perms = perm.new_owner(parent, 0o777 & ~umask_of(stop.tid), False, creds)
    try:
        vspecial.make_node(sup.vfs, path, stat.S_IFSOCK | perms, 0, uid, gid)
    except VfsError:
        os.unlink(real)
        raise
    nodes.sockets[path] = real


@always_syscall("connect")
def on_connect(sup, stop) -> None:
    path = _virtual_target(sup, stop, follow=True)
    if path is None:
        return
    meta = sup.vfs.lookup(path, exact=True)
    if not stat.S_ISSOCK(meta.mode):
        raise VfsError(errno.ECONNREFUSED, f"{path}: not a socket")
    sup.allow(perm.permission(meta, perm.W_OK, sup.creds(stop)), path)   # as the kernel: write on the socket
    real = _nodes(sup).sockets.get(path)
    if real is None or not os.path.exists(real):
        raise VfsError(errno.ECONNREFUSED, f"{path}: no socket bound there in this run")
    _point_at(stop, real)
