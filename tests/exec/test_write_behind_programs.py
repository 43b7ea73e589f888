"""Write-behind with real programs under `objmount exec`: parts of a large new file go up
while the program still writes it, and what close leaves in the bucket is exactly the
file's final bytes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from exec_support import REPO

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def uploads(s3, bucket) -> list:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def counters(run) -> dict:
    return run.stats.get("vfs", {}).get("counters", {})


def test_cp_of_a_large_file_sends_parts_while_copying(objmount, s3, bucket, tmp_path):
    src = tmp_path / "src"
    data = os.urandom(40 * MiB + 5)
    src.write_bytes(data)
    run = objmount(["cp", str(src), f"/objmount/s3/{bucket}/copy"])
    assert run.returncode == 0, run.stderr
    assert sha(get(s3, bucket, "copy")) == sha(data)
    # cp copies with one huge copy_file_range: it is cut at part boundaries, so the parts
    # are seen complete and go up while cp still copies.
    assert run.stats["syscalls"]["copy_file_range"] >= 6
    assert counters(run)["write_behind_parts"] >= 4
    assert run.requests("UploadPart") == 6  # five 8 MiB parts and the tail, each once
    assert uploads(s3, bucket) == []


# A program that writes 40 MiB in 1 MiB writes, then — file still open — looks at the
# upload in progress with boto3, rewrites its first MiB (already sent) and closes.
REWRITE = """
import boto3, os, random, sys, time
bucket = sys.argv[1]
rng = random.Random(7)
s3 = boto3.client('s3')
fd = os.open(f'/objmount/s3/{bucket}/rw', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for _ in range(40):
    os.write(fd, rng.randbytes(1 << 20))
deadline = time.time() + 30
while True:
    ups = s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])
    parts = [p['PartNumber'] for u in ups for p in
             s3.list_parts(Bucket=bucket, Key='rw', UploadId=u['UploadId']).get('Parts', [])]
    if 1 in parts and len(parts) >= 3 or time.time() > deadline:
        break
    time.sleep(0.1)
print('parts before close', len(parts))
print('object before close', 'Contents' in s3.list_objects_v2(Bucket=bucket))
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b'rewritten' * 1000)
os.close(fd)
print('closed')
"""


def expected_rewrite() -> bytes:
    import random
    rng = random.Random(7)
    data = bytearray(b"".join(rng.randbytes(MiB) for _ in range(40)))
    data[:9000] = b"rewritten" * 1000
    return bytes(data)


@pytest.mark.not_rclone("ListMultipartUploads with none in progress answers NoSuchUpload")
def test_parts_are_in_the_bucket_before_close_and_a_rewrite_is_resent(objmount, s3, bucket):
    run = objmount([sys.executable, "-c", REWRITE, bucket])
    assert run.returncode == 0, run.stderr
    lines = run.text.splitlines()
    assert int(lines[0].split()[-1]) >= 3, run.text
    assert lines[1:] == ["object before close False", "closed"], run.text
    assert sha(get(s3, bucket, "rw")) == sha(expected_rewrite())
    assert counters(run)["write_behind_resent"] == 1
    assert uploads(s3, bucket) == []


# The upload begun in the background disappears (aborted behind objmount's back): the
# upload at close takes over and the object is still right.
ABORTED = """
import boto3, os, sys, time
bucket = sys.argv[1]
s3 = boto3.client('s3')
fd = os.open(f'/objmount/s3/{bucket}/ab', os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(24):
    os.write(fd, bytes([i]) * (1 << 20))
deadline = time.time() + 30
while not s3.list_multipart_uploads(Bucket=bucket).get('Uploads') and time.time() < deadline:
    time.sleep(0.1)
for u in s3.list_multipart_uploads(Bucket=bucket).get('Uploads', []):
    s3.abort_multipart_upload(Bucket=bucket, Key=u['Key'], UploadId=u['UploadId'])
for i in range(24, 40):
    os.write(fd, bytes([i]) * (1 << 20))
os.close(fd)
print('closed')
"""


@pytest.mark.not_rclone("ListMultipartUploads with none in progress answers NoSuchUpload")
def test_a_lost_background_upload_falls_back_to_the_upload_at_close(objmount, s3, bucket):
    run = objmount([sys.executable, "-c", ABORTED, bucket])
    assert run.returncode == 0, run.stderr
    assert run.text.strip() == "closed", run.stderr
    assert get(s3, bucket, "ab") == b"".join(bytes([i]) * MiB for i in range(40))
    assert run.requests("CreateMultipartUpload") == 2  # the one lost, the one at close
    assert uploads(s3, bucket) == []


FAILS = """
import boto3, os, sys, time
bucket = sys.argv[1]
s3 = boto3.client('s3')
f = open(f'/objmount/s3/{bucket}/keep', 'wb')
for i in range(40):
    f.write(bytes([i]) * (1 << 20))
f.flush()
deadline = time.time() + 30
while not s3.list_multipart_uploads(Bucket=bucket).get('Uploads') and time.time() < deadline:
    time.sleep(0.1)
for u in s3.list_multipart_uploads(Bucket=bucket).get('Uploads', []):
    s3.abort_multipart_upload(Bucket=bucket, Key=u['Key'], UploadId=u['UploadId'])
s3.delete_bucket(Bucket=bucket)
try:
    f.close(); print('closed')
except OSError as e:
    print(e.errno)
"""


@pytest.mark.not_rclone("ListMultipartUploads with none in progress answers NoSuchUpload")
def test_an_upload_failing_at_close_is_eio_and_flush_finishes_it(objmount, s3, bucket, cache_dir):
    run = objmount([sys.executable, "-c", FAILS, bucket])
    assert run.text.strip() == "5", run.text + run.stderr
    assert bucket in run.stderr and "Traceback" not in run.stderr
    s3.create_bucket(Bucket=bucket)
    out = subprocess.run([sys.executable, "-m", "objmount", "flush", "--cache-dir", str(cache_dir)],
                         env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert get(s3, bucket, "keep") == b"".join(bytes([i]) * MiB for i in range(40))
    assert uploads(s3, bucket) == []
