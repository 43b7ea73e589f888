"""The kernel's permission rules, applied to virtual objects with the caller's credentials.

Pure: credentials come in as a `Creds` (read from /proc/TID/status by `read_creds`, once per
stop and only when a check needs them), objects as anything with `kind`, `mode`, `uid`,
`gid` (vfs.Meta). Every check returns 0 or an errno, as the kernel's would: modelled on
fs/namei.c generic_permission/may_delete/may_create, fs/attr.c setattr_prepare and
inode_init_owner. Root here is fsuid 0 with the default capabilities (CAP_DAC_OVERRIDE,
CAP_FOWNER, CAP_CHOWN, CAP_FSETID); a capability-less root is not modelled.
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass

R_OK, W_OK, X_OK = 4, 2, 1


@dataclass(frozen=True)
class Creds:
    """What the kernel's file checks use: the filesystem uid/gid (normally the effective
    ones) and the supplementary groups; euid for the owner rules that use it."""
    fsuid: int
    fsgid: int
    groups: frozenset[int] = frozenset()
    euid: int | None = None
    ruid: int | None = None
    rgid: int | None = None

    @property
    def root(self) -> bool:
        return self.fsuid == 0

    def in_group(self, gid: int) -> bool:
        return gid == self.fsgid or gid in self.groups

    def for_access(self) -> "Creds":
        """access()/faccessat() without AT_EACCESS check with the real ids."""
        if self.ruid is None:
            return self
        return Creds(self.ruid, self.rgid, self.groups, self.euid, self.ruid, self.rgid)


def parse_status(text: str) -> Creds:
    """Creds from the text of /proc/TID/status (Uid/Gid: real, effective, saved, fs)."""
    uids = gids = None
    groups: frozenset[int] = frozenset()
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uids = [int(v) for v in line.split()[1:5]]
        elif line.startswith("Gid:"):
            gids = [int(v) for v in line.split()[1:5]]
        elif line.startswith("Groups:"):
            groups = frozenset(int(v) for v in line.split()[1:])
    if uids is None or gids is None:
        raise ValueError("no Uid/Gid lines")
    return Creds(fsuid=uids[3], fsgid=gids[3], groups=groups, euid=uids[1], ruid=uids[0], rgid=gids[0])


def read_creds(tid: int) -> Creds:
    """The credentials of thread `tid` now (a thread's credentials are its own)."""
    with open(f"/proc/{tid}/status", encoding="ascii", errors="replace") as f:
        return parse_status(f.read())


def _is_dir(meta) -> bool:
    kind = getattr(meta, "kind", None)
    return getattr(kind, "name", kind) == "DIR"


def permission(meta, want: int, creds: Creds) -> int:
    """generic_permission: may `creds` read/write/execute (R_OK|W_OK|X_OK) this object?"""
    want &= 7
    if creds.root:
        # CAP_DAC_OVERRIDE: everything, except executing a non-directory that has no x bit.
        if want & X_OK and not _is_dir(meta) and not meta.mode & 0o111:
            return errno.EACCES
        return 0
    if creds.fsuid == meta.uid:
        bits = (meta.mode >> 6) & 7
    elif creds.in_group(meta.gid):
        bits = (meta.mode >> 3) & 7
    else:
        bits = meta.mode & 7
    return 0 if want & ~bits == 0 else errno.EACCES


def search_path(ancestors, creds: Creds) -> int:
    """Search (x) permission on every directory a lookup walks through."""
    for meta in ancestors:
        err = permission(meta, X_OK, creds)
        if err:
            return err
    return 0


def may_create(parent, creds: Creds) -> int:
    """Creating a name in `parent` (open O_CREAT, mkdir, symlink, link, rename's target)."""
    return permission(parent, W_OK | X_OK, creds)


def is_owner(meta, creds: Creds) -> bool:
    """inode_owner_or_capable: the owner, or CAP_FOWNER."""
    return creds.root or creds.fsuid == meta.uid


def may_delete(parent, victim, creds: Creds) -> int:
    """Removing `victim`'s name from `parent` (unlink, rmdir, rename's source and a
    replaced target): w+x on the parent, and in a sticky directory only the owner of the
    file or of the directory (or root) may."""
    err = permission(parent, W_OK | X_OK, creds)
    if err:
        return err
    if parent.mode & stat.S_ISVTX and not creds.root and creds.fsuid not in (victim.uid, parent.uid):
        return errno.EPERM
    return 0


def may_chmod(meta, creds: Creds) -> int:
    return 0 if is_owner(meta, creds) else errno.EPERM


def chmod_mode(meta, mode: int, creds: Creds) -> int:
    """The mode chmod stores: a non-root caller outside the file's group loses S_ISGID
    (setattr_prepare), for a directory as for a file."""
    mode &= 0o7777
    if not creds.root and not creds.in_group(meta.gid):
        mode &= ~stat.S_ISGID
    return mode


def may_chown(meta, uid: int | None, gid: int | None, creds: Creds) -> int:
    """chown (None: -1, unchanged): only root gives a file away; its owner may set the
    owner to itself and the group to one of its own groups (chown_ok, chgrp_ok)."""
    if creds.root:
        return 0
    if uid is not None and not (creds.fsuid == meta.uid and uid == meta.uid):
        return errno.EPERM
    if gid is not None and not (creds.fsuid == meta.uid and (gid == meta.gid or creds.in_group(gid))):
        return errno.EPERM
    return 0


def chown_mode(meta, uid: int | None, gid: int | None, creds: Creds) -> int | None:
    """The mode after a chown of a non-directory, by anyone, root included (chown_common
    asks for ATTR_KILL_SUID/SGID, even for chown(-1, -1)): S_ISUID goes, and S_ISGID when the group may execute
    (without it the bit marks mandatory locking and stays). None: unchanged."""
    if _is_dir(meta):
        return None
    return killed_setid(meta.mode)


def killed_setid(mode: int) -> int | None:
    """The mode with its set-id bits cleared as a chown or a non-root write clears them,
    or None when there is nothing to clear."""
    kill = stat.S_ISUID
    if mode & stat.S_IXGRP:
        kill |= stat.S_ISGID
    if not mode & kill:
        return None
    return mode & ~kill & 0o7777


def write_kills_setid(meta, creds: Creds) -> int | None:
    """A write (or truncate) by someone without CAP_FSETID clears set-id bits: the mode to
    store, or None."""
    if creds.root:
        return None
    return killed_setid(meta.mode)


def may_utime(meta, explicit: bool, creds: Creds) -> int:
    """utimes: setting explicit times needs ownership (EPERM); setting them to now needs
    ownership or write permission (EACCES)."""
    if is_owner(meta, creds):
        return 0
    if explicit:
        return errno.EPERM
    return permission(meta, W_OK, creds)


def new_owner(parent, mode: int, is_dir: bool, creds: Creds, umask: int = 0) -> tuple[int, int, int]:
    """inode_init_owner: (uid, gid, mode) of a new object in `parent`: the caller's fsuid;
    the group of a setgid directory (a new directory inherits S_ISGID too), else the
    caller's fsgid; a new file in a setgid directory keeps S_ISGID only if the caller is
    in that group (or root) — when the mode asked for is group-executable, as judged
    before the umask applies (vfs_prepare_mode strips first, since 6.0: a umask of 010
    must not keep it)."""
    mode &= 0o7777
    uid, gid = creds.fsuid, creds.fsgid
    if parent is not None and parent.mode & stat.S_ISGID:
        gid = parent.gid
        if is_dir:
            mode |= stat.S_ISGID
        elif mode & stat.S_ISGID and mode & stat.S_IXGRP and not creds.root and not creds.in_group(gid):
            mode &= ~stat.S_ISGID
    return uid, gid, mode & ~(umask & 0o777)
