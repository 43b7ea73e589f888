"""objmount.permissions against a table of the kernel's answers (the same cases are checked
on a real filesystem as an unprivileged user in tests/exec/test_permissions.py)."""

import errno
import stat
from types import SimpleNamespace

import pytest

from objmount.permissions import (Creds, R_OK, W_OK, X_OK, chmod_mode, chown_mode, killed_setid, may_chown,
                                  may_create, may_delete, may_utime, new_owner, parse_status, permission,
                                  search_path, write_kills_setid)

ROOT = Creds(0, 0)
ALICE = Creds(1000, 1000, frozenset({1000, 50}))
BOB = Creds(1001, 1001, frozenset({1001, 50}))
EVE = Creds(1002, 1002)


def f(mode, uid=1000, gid=1000):
    return SimpleNamespace(kind="FILE", mode=stat.S_IFREG | mode, uid=uid, gid=gid)


def d(mode, uid=1000, gid=1000):
    return SimpleNamespace(kind="DIR", mode=stat.S_IFDIR | mode, uid=uid, gid=gid)


@pytest.mark.parametrize("meta, want, creds, expect", [
    (f(0o644), R_OK, ALICE, 0),
    (f(0o644), W_OK, ALICE, 0),
    (f(0o644), W_OK, BOB, errno.EACCES),
    (f(0o644), R_OK, EVE, 0),
    (f(0o640), R_OK, EVE, errno.EACCES),
    (f(0o640, gid=50), R_OK, BOB, 0),           # a supplementary group
    (f(0o044), R_OK, ALICE, errno.EACCES),       # the owner class decides, not the best class
    (f(0o604, gid=50), R_OK, BOB, errno.EACCES),  # group class decides for a member
    (f(0o000), R_OK | W_OK, ROOT, 0),
    (f(0o644), X_OK, ROOT, errno.EACCES),        # root needs some x bit to execute
    (f(0o001), X_OK, ROOT, 0),
    (d(0o000), X_OK, ROOT, 0),                   # but searches any directory
    (f(0o755), X_OK, EVE, 0),
    (f(0o744), X_OK, EVE, errno.EACCES),
])
def test_permission(meta, want, creds, expect):
    assert permission(meta, want, creds) == expect


def test_search_path_needs_x_on_every_directory():
    assert search_path([d(0o755), d(0o711), d(0o755)], EVE) == 0
    assert search_path([d(0o755), d(0o700), d(0o755)], EVE) == errno.EACCES
    assert search_path([d(0o755), d(0o644)], ALICE) == errno.EACCES
    assert search_path([d(0o000)], ROOT) == 0


@pytest.mark.parametrize("parent, victim, creds, expect", [
    (d(0o755), f(0o644), ALICE, 0),
    (d(0o755), f(0o644), BOB, errno.EACCES),
    (d(0o777), f(0o000), BOB, 0),                          # the file's own mode does not matter
    (d(0o1777, uid=0), f(0o644, uid=1000), BOB, errno.EPERM),  # sticky: not the file's owner
    (d(0o1777, uid=0), f(0o644, uid=1001), BOB, 0),
    (d(0o1777, uid=1001), f(0o644, uid=1000), BOB, 0),     # owner of the sticky directory
    (d(0o1777, uid=1000), f(0o644, uid=1000), ROOT, 0),
    (d(0o733), f(0o644, uid=1001), BOB, 0),                # w+x without r
    (d(0o766), f(0o644, uid=1001), BOB, errno.EACCES),     # w without x
])
def test_may_delete(parent, victim, creds, expect):
    assert may_delete(parent, victim, creds) == expect


def test_may_create():
    assert may_create(d(0o755), ALICE) == 0
    assert may_create(d(0o755), BOB) == errno.EACCES
    assert may_create(d(0o775, gid=50), BOB) == 0
    assert may_create(d(0o555), ROOT) == 0


@pytest.mark.parametrize("meta, uid, gid, creds, expect", [
    (f(0o644), None, 50, ALICE, 0),           # owner, to one of its groups
    (f(0o644), None, 1001, ALICE, errno.EPERM),
    (f(0o644), 1001, None, ALICE, errno.EPERM),  # only root gives a file away
    (f(0o644), 1000, None, ALICE, 0),         # "changing" to oneself is allowed
    (f(0o644), 1000, None, BOB, errno.EPERM),
    (f(0o644), None, 1000, BOB, errno.EPERM),  # not the owner
    (f(0o644), None, None, BOB, 0),           # chown(-1, -1)
    (f(0o644), 5, 5, ROOT, 0),
])
def test_may_chown(meta, uid, gid, creds, expect):
    assert may_chown(meta, uid, gid, creds) == expect


def test_setid_bits():
    assert chown_mode(f(0o6755), 5, None, ROOT) == 0o755
    assert chown_mode(f(0o6745), None, None, ALICE) == 0o2745   # setgid without group x: kept
    assert chown_mode(f(0o644), 5, None, ROOT) is None
    assert chown_mode(d(0o2755), 5, None, ROOT) is None
    assert write_kills_setid(f(0o4755), ALICE) == 0o755
    assert write_kills_setid(f(0o4755), ROOT) is None
    assert killed_setid(0o2755) == 0o755
    assert chmod_mode(f(0o644, gid=5), 0o2755, ALICE) == 0o755    # not in the file's group
    assert chmod_mode(f(0o644, gid=50), 0o2755, ALICE) == 0o2755
    assert chmod_mode(f(0o644, gid=5), 0o2755, ROOT) == 0o2755
    assert chmod_mode(d(0o755, gid=5), 0o3777, ALICE) == 0o1777   # a directory too (setattr_prepare)
    assert chmod_mode(d(0o755, gid=50), 0o3777, ALICE) == 0o3777


def test_new_owner_and_setgid_directory():
    assert new_owner(d(0o755, gid=7), 0o644, False, ALICE) == (1000, 1000, 0o644)
    assert new_owner(d(0o2775, gid=7), 0o644, False, ALICE) == (1000, 7, 0o644)
    assert new_owner(d(0o2775, gid=7), 0o755, True, ALICE) == (1000, 7, 0o2755)
    assert new_owner(d(0o2775, gid=7), 0o2755, False, ALICE) == (1000, 7, 0o755)  # not in group 7
    assert new_owner(d(0o2775, gid=50), 0o2755, False, ALICE) == (1000, 50, 0o2755)
    # judged before the umask (creat09): 02777 with umask 010 is 0767, not 02767
    assert new_owner(d(0o2777, gid=7), 0o2777, False, ALICE, 0o010) == (1000, 7, 0o767)
    assert new_owner(d(0o2777, gid=50), 0o2777, False, ALICE, 0o010) == (1000, 50, 0o2767)


def test_may_utime():
    assert may_utime(f(0o644), True, ALICE) == 0
    assert may_utime(f(0o666), True, BOB) == errno.EPERM
    assert may_utime(f(0o666), False, BOB) == 0
    assert may_utime(f(0o644), False, BOB) == errno.EACCES


def test_parse_status():
    text = "Name:\tx\nUmask:\t0022\nUid:\t0\t65534\t65534\t65533\nGid:\t1\t2\t3\t4\nGroups:\t5 6 \n"
    c = parse_status(text)
    assert (c.fsuid, c.fsgid, c.euid, c.groups) == (65533, 4, 65534, frozenset({5, 6}))
    assert (c.for_access().fsuid, c.for_access().fsgid) == (0, 1) and c.for_access().root
    assert not c.root and c.in_group(4) and c.in_group(6) and not c.in_group(2)
