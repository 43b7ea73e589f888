"""Write-behind driven through the Vfs against the moto server: parts of a file written
from scratch go up while it is written; the object always equals the final bytes."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from vfs import MountTable, Vfs, VfsConfig, VfsError

MiB = 1024 * 1024
PART = 5 * MiB  # S3's smallest part, to keep the files small


@pytest.fixture
def vfs(cache_dir):
    v = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir, metadata_ttl=30, write_behind_part=PART))
    yield v
    v.close()


def write(f, offset: int, data: bytes, writer=1) -> None:
    """What the supervisor and the kernel do for a write(2): announce, then write."""
    f.will_write(offset, len(data), writer=writer)
    fd = os.open(f.cache_path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def write_all(f, data: bytes, chunk: int = MiB, writer=1) -> None:
    for off in range(0, len(data), chunk):
        write(f, off, data[off:off + chunk], writer)


def counter(vfs, name: str) -> int:
    return vfs.stats()["counters"].get(name, 0)


def wait_for(cond, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def written(vfs, bucket: str, name: str, flags: int = os.O_WRONLY | os.O_CREAT):
    """A new file of five parts, written until three of them have gone up: (handle, data)."""
    data = os.urandom(5 * PART)
    f = vfs.open(f"/objmount/s3/{bucket}/{name}", flags)
    write_all(f, data)
    wait_for(lambda: counter(vfs, "write_behind_parts") >= 3)
    return f, data


def uploads(s3, bucket) -> list:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def body(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_parts_go_up_while_the_file_is_written(vfs, s3, bucket):
    data = os.urandom(6 * PART + 123)
    f = vfs.open(f"/objmount/s3/{bucket}/big", os.O_WRONLY | os.O_CREAT)
    write_all(f, data)
    # Before close: an upload is in progress and holds the complete parts.
    wait_for(lambda: counter(vfs, "write_behind_parts") >= 5)
    (upload,) = uploads(s3, bucket)
    parts = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload["UploadId"])["Parts"]
    assert len(parts) >= 5 and all(p["Size"] == PART for p in parts)
    assert vfs.stats()["requests"].get("CompleteMultipartUpload", 0) == 0
    f.close()
    assert sha(body(s3, bucket, "big")) == sha(data)
    requests = vfs.stats()["requests"]
    assert requests["UploadPart"] == 7  # each part once: 6 in the background, the tail at close
    assert requests["CreateMultipartUpload"] == 1 and "PutObject" not in requests
    assert uploads(s3, bucket) == []


def test_a_rewritten_part_is_sent_again(vfs, s3, bucket):
    data = bytearray(os.urandom(5 * PART))
    f = vfs.open(f"/objmount/s3/{bucket}/rw", os.O_WRONLY | os.O_CREAT)
    write_all(f, bytes(data))
    wait_for(lambda: counter(vfs, "write_behind_parts") >= 4)
    patch = os.urandom(1000)
    write(f, 10, patch)  # seek back into part 1, already sent
    data[10:1010] = patch
    f.close()
    assert sha(body(s3, bucket, "rw")) == sha(bytes(data))
    assert counter(vfs, "write_behind_resent") >= 1
    assert uploads(s3, bucket) == []


def test_a_write_not_known_to_have_landed_holds_its_part_back(vfs, s3, bucket):
    """Writer 1 announced the end of part 1 but its write has not run yet: the part must
    not be read, however far writer 2 gets, until writer 1 announces another write."""
    data = os.urandom(6 * PART)
    f = vfs.open(f"/objmount/s3/{bucket}/threads", os.O_WRONLY | os.O_CREAT)
    write_all(f, data[:PART - MiB], writer=1)
    f.will_write(PART - MiB, MiB, writer=1)  # announced; lands later
    for off in range(PART, len(data), MiB):
        write(f, off, data[off:off + MiB], writer=2)
    wb = f.item.write_behind
    wait_for(lambda: counter(vfs, "write_behind_parts") >= 4)
    time.sleep(0.2)
    assert 0 not in wb.sent and 0 not in wb.inflight
    fd = os.open(f.cache_path, os.O_WRONLY)
    os.pwrite(fd, data[PART - MiB:PART], PART - MiB)
    os.close(fd)
    f.will_write(len(data), 0, writer=1)  # nothing: length 0 is not an announcement
    assert 0 not in wb.sent and 0 not in wb.inflight
    f.will_write(len(data), 1, writer=1)  # writer 1 comes back: its write has landed
    wait_for(lambda: 0 in wb.sent)
    f.close()
    assert sha(body(s3, bucket, "threads")) == sha(data)


def test_small_files_stay_one_put(vfs, s3, bucket):
    data = os.urandom(3 * MiB)
    f = vfs.open(f"/objmount/s3/{bucket}/small", os.O_WRONLY | os.O_CREAT)
    write_all(f, data)
    f.close()
    assert body(s3, bucket, "small") == data
    requests = vfs.stats()["requests"]
    assert requests["PutObject"] == 1 and "CreateMultipartUpload" not in requests
    assert vfs.stats()["counters"] == {}


def test_truncating_below_sent_parts_aborts_the_upload(vfs, s3, bucket):
    f, data = written(vfs, bucket, "trunc")
    f.set_size(MiB, writer=1)
    os.truncate(f.cache_path, MiB)
    wait_for(lambda: uploads(s3, bucket) == [])
    f.close()
    assert body(s3, bucket, "trunc") == data[:MiB]
    assert counter(vfs, "write_behind_aborted") == 1


def test_truncate_then_rewrite_starts_a_new_upload(vfs, s3, bucket):
    f, _ = written(vfs, bucket, "again", os.O_RDWR | os.O_CREAT)
    f.set_size(0, writer=1)
    os.truncate(f.cache_path, 0)
    data = os.urandom(4 * PART + 7)
    write_all(f, data)
    f.close()
    assert sha(body(s3, bucket, "again")) == sha(data)
    assert uploads(s3, bucket) == []


def test_unlinking_a_file_being_written_aborts_its_upload(vfs, s3, bucket):
    f, _ = written(vfs, bucket, "gone")
    vfs.unlink(f"/objmount/s3/{bucket}/gone")
    assert uploads(s3, bucket) == []
    f.close()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_shared_mapping_turns_write_behind_off(vfs, s3, bucket):
    data = bytearray(os.urandom(5 * PART))
    f = vfs.open(f"/objmount/s3/{bucket}/mapped", os.O_RDWR | os.O_CREAT)
    write_all(f, bytes(data))
    wait_for(lambda: counter(vfs, "write_behind_parts") >= 3)
    f.will_write(0, len(data))  # mmap(MAP_SHARED, PROT_WRITE): stores land at any time
    fd = os.open(f.cache_path, os.O_WRONLY)
    os.pwrite(fd, b"stored through the mapping", 0)
    os.close(fd)
    data[:26] = b"stored through the mapping"
    wait_for(lambda: uploads(s3, bucket) == [])
    f.close()
    assert sha(body(s3, bucket, "mapped")) == sha(bytes(data))


def test_attributes_changed_while_writing_reach_the_object(vfs, s3, bucket):
    path = f"/objmount/s3/{bucket}/attrs"
    data = os.urandom(4 * PART)
    f = vfs.open(path, os.O_WRONLY | os.O_CREAT, mode=0o644)
    write_all(f, data)
    wait_for(lambda: counter(vfs, "write_behind_parts") >= 3)
    vfs.setattr(path, mode=0o600, mtime_ns=1_000_000_000 * 10**9)
    f.close()
    head = s3.head_object(Bucket=bucket, Key="attrs")
    metadata = {k.lower(): v for k, v in head["Metadata"].items()}   # rclone serve s3 says 'Mode'
    assert int(metadata["mode"]) & 0o7777 == 0o600
    assert float(metadata["mtime"]) == 1_000_000_000
    assert sha(body(s3, bucket, "attrs")) == sha(data)


def test_a_failed_upload_is_eio_and_the_data_is_kept(vfs, s3, bucket, recover):
    f, data = written(vfs, bucket, "lost")
    for u in uploads(s3, bucket):
        s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(VfsError):  # the handler answers EIO
        f.close()
    s3.create_bucket(Bucket=bucket)
    assert [line.split(" (")[0] for line in recover(vfs)] == [f"uploaded s3://{bucket}/lost"]
    assert sha(body(s3, bucket, "lost")) == sha(data)


def test_a_killed_supervisor_leaves_no_upload_behind(vfs, s3, bucket, recover):
    f, data = written(vfs, bucket, "orphan")
    assert len(uploads(s3, bucket)) == 1
    # The supervisor dies here: no close. The next start uploads from the journal and
    # aborts the upload it had begun.
    assert [line.split(" (")[0] for line in recover(vfs)] == [f"uploaded s3://{bucket}/orphan"]
    assert sha(body(s3, bucket, "orphan")) == sha(data)
    assert uploads(s3, bucket) == []
    f.item.write_behind.abandon(wait=True)  # the dead supervisor's threads, for the fixture
    f.item.write_behind = None


@pytest.mark.not_rclone("no UploadPartCopy (answers 200 with an empty part)")
def test_an_existing_object_updated_in_place_keeps_part_copies(vfs, s3, bucket):
    old = os.urandom(4 * PART)
    s3.put_object(Bucket=bucket, Key="old", Body=old)
    f = vfs.open(f"/objmount/s3/{bucket}/old", os.O_WRONLY)
    write(f, len(old), b"tail")
    f.close()
    assert body(s3, bucket, "old") == old + b"tail"
    requests = vfs.stats()["requests"]
    assert requests.get("UploadPartCopy", 0) >= 1
    assert counter(vfs, "write_behind_parts") == 0
