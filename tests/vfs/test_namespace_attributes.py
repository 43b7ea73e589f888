"""The namespace driven directly: prefix mounts, attributes of listed entries (asked in
parallel), directory markers, and names another client created."""

from __future__ import annotations

import errno
import stat
import threading

import pytest

from vfs import Kind, MountTable, Vfs, VfsConfig, VfsError
from vfs.meta import RUN_START


@pytest.fixture
def make_vfs(cache_dir):
    made = []

    def make(*mounts: str, ttl: float = 60) -> Vfs:
        v = Vfs(MountTable.parse(list(mounts)), VfsConfig(cache_dir=cache_dir, metadata_ttl=ttl))
        made.append(v)
        return v
    yield make
    for v in made:
        v.close()


def test_a_prefix_mount_lists_the_keys_below_its_prefix(make_vfs, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pre/fix/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="pre/fix/d/b", Body=b"b")
    s3.put_object(Bucket=bucket, Key="pre/other", Body=b"o")
    vfs = make_vfs(f"/w=s3://{bucket}/pre/fix")
    assert [name for name, _ in vfs.listdir("/w")] == ["a", "d"]
    assert [name for name, _ in vfs.listdir("/w/d")] == ["b"]


def test_listed_entries_get_their_stored_attributes_asked_in_parallel(make_vfs, s3, bucket):
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"d/f{i}", Body=b"x", Metadata={"mode": str(0o100751), "uid": "1234"})
    vfs = make_vfs()
    d = f"/objmount/s3/{bucket}/d"
    vfs.listdir(d)
    store = vfs.store(f"s3://{bucket}")
    head, calls = store.head, []
    together = threading.Barrier(8, timeout=60)   # only reached if 8 HEADs run at once

    def counting_head(key):
        calls.append(key)
        if len(calls) > 1 and len(calls) <= 9:
            together.wait()
        return head(key)
    store.head = counting_head
    try:
        metas = [vfs.lookup(f"{d}/f{i}", attrs=True) for i in range(10)]
    finally:
        store.head = head
    assert {(stat.S_IMODE(m.mode), m.uid, m.exact) for m in metas} == {(0o751, 1234, True)}
    assert sorted(calls) == sorted(f"d/f{i}" for i in range(10))   # one HEAD each
    assert vfs.lookup(f"{d}/f3").mode == stat.S_IFREG | 0o751          # the listing learnt it


def test_a_listed_symlink_lstats_as_a_symlink(make_vfs, s3, bucket):
    s3.put_object(Bucket=bucket, Key="l", Body=b"target", Metadata={"mode": str(0o120777)})
    vfs = make_vfs()
    vfs.listdir(f"/objmount/s3/{bucket}")
    meta = vfs.lookup(f"/objmount/s3/{bucket}/l", attrs=True)
    assert meta.kind is Kind.SYMLINK and meta.target == "target"


@pytest.mark.not_rclone("stores a dir/ marker as a file: no keys below it")
def test_directories_take_their_markers_attributes(make_vfs, s3, bucket):
    s3.put_object(Bucket=bucket, Key="m/", Body=b"", Metadata={"mode": str(0o40777), "uid": "7", "mtime": "1600000000"})
    s3.put_object(Bucket=bucket, Key="m/f", Body=b"x")
    s3.put_object(Bucket=bucket, Key="implicit/f", Body=b"x")
    vfs = make_vfs()
    b = f"/objmount/s3/{bucket}"
    alone = vfs.lookup(f"{b}/m")
    assert (alone.mode, alone.uid, alone.mtime) == (stat.S_IFDIR | 0o777, 7, 1600000000)
    implicit = vfs.lookup(f"{b}/implicit")
    assert implicit.mode == stat.S_IFDIR | 0o755 and implicit.mtime == RUN_START > 1_700_000_000
    listed = make_vfs()
    listed.listdir(b)
    assert listed.lookup(f"{b}/m", attrs=True).mode == stat.S_IFDIR | 0o777


@pytest.mark.not_rclone("stores a dir/ marker as a file: no keys below it")
def test_chmod_and_utimes_of_directories_and_mount_roots_are_kept(make_vfs, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pre/d/f", Body=b"x")
    vfs = make_vfs(f"/w=s3://{bucket}/pre", f"/b=s3://{bucket}")
    vfs.setattr("/w/d", mode=0o700, mtime_ns=1500000000 * 10**9)
    vfs.setattr("/w", mode=0o750, uid=12)
    assert int(s3.head_object(Bucket=bucket, Key="pre/d/")["Metadata"]["mode"]) == stat.S_IFDIR | 0o700
    assert int(s3.head_object(Bucket=bucket, Key="pre/")["Metadata"]["uid"]) == 12
    fresh = make_vfs(f"/w=s3://{bucket}/pre")
    assert (fresh.lookup("/w/d").mode, fresh.lookup("/w/d").mtime) == (stat.S_IFDIR | 0o700, 1500000000)
    assert (fresh.lookup("/w").mode, fresh.lookup("/w").uid) == (stat.S_IFDIR | 0o750, 12)
    assert [n for n, _ in fresh.listdir("/w")] == ["d"]        # the root's marker is no entry
    vfs.setattr("/b", mode=0o711)                               # a bucket root: for this run
    assert vfs.lookup("/b").mode == stat.S_IFDIR | 0o711
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["pre/", "pre/d/", "pre/d/f"]


def test_a_name_seen_missing_is_asked_again_when_rechecked(make_vfs, s3, bucket):
    vfs = make_vfs()
    b = f"/objmount/s3/{bucket}"
    s3.put_object(Bucket=bucket, Key="d/old", Body=b"x")
    vfs.listdir(f"{b}/d")
    for path in (f"{b}/d/new", f"{b}/top"):
        with pytest.raises(VfsError) as info:
            vfs.lookup(path)
        assert info.value.errno == errno.ENOENT
    s3.put_object(Bucket=bucket, Key="d/new", Body=b"new")
    s3.put_object(Bucket=bucket, Key="top", Body=b"top")
    with pytest.raises(VfsError):
        vfs.lookup(f"{b}/d/new")                     # stat may keep the TTL
    assert vfs.resolve(f"{b}/d/new", recheck_missing=True) == f"{b}/d/new"
    assert vfs.resolve(f"{b}/top", recheck_missing=True) == f"{b}/top"
    assert vfs.lookup(f"{b}/d/new").size == 3 and "new" in dict(vfs.listdir(f"{b}/d"))


def test_a_directory_of_this_run_only_moves_with_a_rename(cache_dir, bucket):
    """With no dir/ markers, a renamed directory of this run keeps its mode under its new
    name (with what it holds), and its old name is gone; it stayed listed, and the new
    name showed 0755."""
    vfs = Vfs(MountTable.parse([f"/w=s3://{bucket}"]), VfsConfig(cache_dir=cache_dir, dir_markers=False))
    try:
        vfs.mkdir("/w/a", 0o700)
        vfs.mkdir("/w/a/in", 0o711)
        vfs.mkdir("/w/c", 0o750)
        vfs.mkdir("/w/gone", 0o755)
        vfs.rename("/w/a", "/w/b")
        vfs.rename("/w/c", "/w/gone")      # onto an empty directory of this run
        assert {n: m.mode for n, m in vfs.listdir("/w")} == {"b": stat.S_IFDIR | 0o700, "gone": stat.S_IFDIR | 0o750}
        assert {n: m.mode for n, m in vfs.listdir("/w/b")} == {"in": stat.S_IFDIR | 0o711}
        for old in ("/w/a", "/w/a/in", "/w/c"):
            with pytest.raises(VfsError) as exc:
                vfs.lookup(old)
            assert exc.value.errno == errno.ENOENT
    finally:
        vfs.close()


def test_a_directory_of_this_run_only_keeps_its_mode_and_owner_for_the_run(cache_dir, bucket):
    """With no dir/ markers (--no-dir-markers, for rclone serve s3), mkdir's mode and a
    later chmod/chown last for the run, as the times do: they were 0755 and the running
    user's at once."""
    vfs = Vfs(MountTable.parse([f"/w=s3://{bucket}"]), VfsConfig(cache_dir=cache_dir, dir_markers=False))
    try:
        vfs.mkdir("/w/shut", 0o700)
        vfs.mkdir("/w/p", 0o755)
        vfs.setattr("/w/p", mode=0o750, uid=1234, gid=5678)
        assert vfs.lookup("/w/shut").mode == stat.S_IFDIR | 0o700
        p = vfs.lookup("/w/p", attrs=True)
        assert (p.mode, p.uid, p.gid) == (stat.S_IFDIR | 0o750, 1234, 5678)
        assert {n: m.mode for n, m in vfs.listdir("/w")} == {"p": stat.S_IFDIR | 0o750, "shut": stat.S_IFDIR | 0o700}
    finally:
        vfs.close()


def test_a_directory_of_this_run_only_made_again_after_a_rename_is_a_new_one(cache_dir, bucket):
    """With no dir/ markers: the renamed directory keeps its inode number, and one made
    again at the old name has another (it had the old one: numbered by path, not key)."""
    vfs = Vfs(MountTable.parse([f"/w=s3://{bucket}"]), VfsConfig(cache_dir=cache_dir, dir_markers=False))
    try:
        vfs.mkdir("/w/d", 0o755)
        first = vfs.lookup("/w/d").ino
        vfs.rename("/w/d", "/w/e")
        assert vfs.lookup("/w/e").ino == first
        vfs.mkdir("/w/d", 0o755)
        assert vfs.lookup("/w/d").ino not in (first, 0)
    finally:
        vfs.close()
