"""Answers other S3 servers give where moto answers like S3, played on moto by a proxy
(tests/faultproxy.py): each is what `rclone serve s3` does (OBJMOUNT_TEST_SERVER=rclone
runs the whole suite on it)."""

from __future__ import annotations

import errno
import os

import pytest

from vfs import MountTable, Vfs, VfsConfig, VfsError

KiB, MiB = 1024, 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def vfs(proxy, cache_dir):
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, metadata_ttl=30, first_window=64 * KiB,
                                            write_behind_part=PART))
    yield v
    v.close()


def test_a_server_ignoring_if_match_gives_an_error_not_a_mix_of_versions(proxy, vfs, s3, bucket, s3_server_name):
    """rclone serve s3 answers a ranged GET with If-Match of a replaced version with the
    new version's bytes: the answer's ETag says so, and the read fails (ESTALE), as
    with S3's 412."""
    if s3_server_name != "rclone":   # rclone does it itself (and checks the signature, which covers it)
        proxy.ignored = {"if-match"}
    s3.put_object(Bucket=bucket, Key="f", Body=os.urandom(256 * KiB))
    path = f"/objmount/s3/{bucket}/f"
    f = vfs.open(path)                                 # the first window, of the version
    s3.put_object(Bucket=bucket, Key="f", Body=os.urandom(256 * KiB))
    try:
        with pytest.raises(VfsError) as exc:
            f.ensure_all()
        assert exc.value.errno == errno.ESTALE
        assert proxy.requests("GET", "/f")             # it did ask, without the If-Match
    finally:
        f.close()
        vfs.end_operation()


def test_a_part_copy_answered_without_an_etag_is_not_used(proxy, vfs, s3, bucket):
    """rclone serve s3 answers UploadPartCopy 200 with no CopyPartResult (it stored an
    empty part): the upload falls back to sending every part, and the object is right."""
    proxy.rewrite = lambda method, path, body: (b"" if method == "PUT" and "partNumber=" in path else body)
    old = os.urandom(4 * PART)
    s3.put_object(Bucket=bucket, Key="old", Body=old)
    f = vfs.open(f"/objmount/s3/{bucket}/old", os.O_WRONLY)
    f.will_write(len(old), 4, writer=1)
    with open(f.cache_path, "r+b") as fh:
        fh.seek(len(old))
        fh.write(b"tail")
    f.close()
    assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == old + b"tail"
    assert vfs.stats()["requests"].get("UploadPartCopy", 0) >= 1
    assert vfs.stats()["requests"].get("UploadPart", 0) >= 4


def test_a_multipart_object_is_known_by_the_etag_its_head_gives(vfs, s3, bucket):
    """The version a multipart upload wrote is recorded under the name HEAD, GET and LIST
    give it (rclone serve s3: its plain MD5, not the completion's 'md5-N'), so opening it
    again is answered from the cache (a 304), not fetched; on moto the two are one."""
    data = os.urandom(4 * PART + 1)
    path = f"/objmount/s3/{bucket}/big"
    f = vfs.open(path, os.O_WRONLY | os.O_CREAT)
    f.will_write(0, len(data), writer=1)
    with open(f.cache_path, "r+b") as fh:
        fh.write(data)
    f.close()
    assert vfs.stats()["requests"].get("CompleteMultipartUpload", 0) == 1
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == len(data)
    before = vfs.stats()["bytes_received"]
    f = vfs.open(path)
    try:
        f.ensure_all()
        with open(f.cache_path, "rb") as fh:
            assert fh.read(len(data)) == data
    finally:
        f.close()
        vfs.end_operation()
    assert vfs.stats()["bytes_received"] == before


def test_the_name_a_server_gives_a_multipart_upload_is_taken_only_for_our_bytes(tmp_path):
    """The HEAD after a completion names the object otherwise: ours if it is our bytes'
    MD5 (rclone's naming), else another client's write since (not taken for ours)."""
    import hashlib

    from vfs.upload import version_written
    data = os.urandom(3 * MiB)
    path = tmp_path / "item"
    path.write_bytes(data)
    md5 = f'"{hashlib.md5(data).hexdigest()}"'
    completed = '"0123456789abcdef0123456789abcdef-4"'
    assert version_written(completed, completed, str(path), len(data)) == completed
    assert version_written(completed, None, str(path), len(data)) == completed
    assert version_written(completed, md5, str(path), len(data)) == md5
    assert version_written(completed, '"ffffffffffffffffffffffffffffffff"', str(path), len(data)) == completed
    path.write_bytes(data[:-1] + b"\0")     # not our bytes any more (or not all here)
    assert version_written(completed, md5, str(path), len(data)) == completed
