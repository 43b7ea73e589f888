"""Directory markers on a server that does not keep them: `rclone serve s3` over a local
directory stores a PUT of 'd/' as a file named 'd', and then refuses every key below it.
objmount looks for its first marker in a listing and, not finding it there, removes it and
keeps directories for the run (as --no-dir-markers does), so the files go up.

On moto the proxy plays that server (a key 'd/' is stored, asked and removed as 'd');
with OBJMOUNT_TEST_SERVER=rclone the real one answers."""

from __future__ import annotations

import os
import stat

import pytest

from vfs import Kind, MountTable, Vfs, VfsConfig


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture
def marker_as_file(proxy, s3_server_name):
    """The proxy in front, storing 'dir/' keys as 'dir' on moto (rclone does it itself)."""
    if s3_server_name == "moto":
        def route(method: str, path: str) -> str:
            key, _, query = path.partition("?")
            if method in ("PUT", "HEAD", "DELETE", "GET") and key.endswith("/") and key.count("/") > 2:
                key = key.rstrip("/")
            return key + ("?" + query if query else "")
        proxy.route = route
    return proxy


def write(v: Vfs, path: str, data: bytes) -> None:
    f = v.open(path, os.O_WRONLY | os.O_CREAT)
    f.will_write(0, len(data), writer=1)
    with open(f.cache_path, "r+b") as fh:
        fh.write(data)
    f.close()


def test_a_server_that_keeps_a_marker_as_a_file_gets_the_files_below_it(marker_as_file, cache_dir, s3, bucket,
                                                                         caplog):
    root = f"/objmount/s3/{bucket}"
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, metadata_ttl=30))
    try:
        v.mkdir(f"{root}/a", 0o755)
        v.mkdir(f"{root}/a/b", 0o700)
        write(v, f"{root}/a/b/f", b"data")
        v.mkdir(f"{root}/e", 0o750)
        v.setattr(f"{root}/a", mode=0o711)
        assert v.lookup(f"{root}/a/b", attrs=True).mode == stat.S_IFDIR | 0o700
        assert v.lookup(f"{root}/a", attrs=True).mode == stat.S_IFDIR | 0o711
        assert v.lookup(f"{root}/e", attrs=True).kind is Kind.DIR
        assert sorted(n for n, _ in v.listdir(root)) == ["a", "e"]
    finally:
        v.close()
    # the file went up; no key 'a' (a file where the directory is) was left behind
    assert keys(s3, bucket) == ["a/b/f"]
    assert s3.get_object(Bucket=bucket, Key="a/b/f")["Body"].read() == b"data"
    assert sum("no directory markers on this server" in r.getMessage() for r in caplog.records) == 1


def test_a_server_that_keeps_markers_is_asked_once(proxy, cache_dir, s3, bucket, s3_server_name):
    if s3_server_name == "rclone":
        pytest.skip("rclone serve s3 keeps no markers")
    root = f"/objmount/s3/{bucket}"
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, metadata_ttl=30))
    try:
        for name in ("a", "b", "c"):
            v.mkdir(f"{root}/{name}", 0o700)
    finally:
        v.close()
    assert keys(s3, bucket) == ["a/", "b/", "c/"]
    # the first marker is looked for (one listing below it more than mkdir's own look at
    # the name), then trusted
    def listings(prefix: str) -> int:
        return len([s for s in proxy.requests("GET") if "list-type=2" in s.path and f"prefix={prefix}%2F" in s.path])
    assert listings("a") == listings("b") + 1 == listings("c") + 1
