"""Lazy ranged fetch into sparse files, readahead, and the cache across runs."""

from __future__ import annotations

import hashlib
import os

import pytest

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big():
    # 200 MiB: a repeated 1 MiB random block, so each MiB is checkable by position.
    block = os.urandom(MiB)
    return block, 200


@pytest.fixture
def big_object(s3, bucket, big):
    block, count = big
    s3.upload_fileobj(_Repeat(block, count), bucket, "big.bin")
    return f"/objmount/s3/{bucket}/big.bin"


class _Repeat:
    def __init__(self, block: bytes, count: int):
        self.block, self.left = block, count * len(block)
        self.pos = 0

    def read(self, n=-1):
        if self.left == 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        out = bytearray()
        while len(out) < n:
            off = self.pos % len(self.block)
            take = min(n - len(out), len(self.block) - off)
            out += self.block[off:off + take]
            self.pos += take
        self.left -= n
        return bytes(out)


def test_reading_4k_at_100mib_transfers_less_than_8mib(objmount, big_object, big):
    block, _ = big
    run = objmount(["dd", f"if={big_object}", "bs=4096", f"skip={100 * MiB // 4096}", "count=1", "status=none"])
    assert run.returncode == 0, run.stderr
    assert run.stdout == block[:4096]
    assert 0 < run.bytes_received < 8 * MiB


def test_sequential_read_uses_parallel_ranged_gets_and_is_exact(objmount, big_object, big):
    block, count = big
    run = objmount(["sha256sum", big_object])
    assert run.text.split()[0] == hashlib.sha256(block * count).hexdigest()
    assert run.requests("GetObject") >= 8          # ranged, not one big GET
    assert run.bytes_received <= count * MiB + 16 * MiB


def test_cached_ranges_are_reused_by_a_later_run(objmount, s3, bucket):
    data = os.urandom(5 * MiB)
    s3.put_object(Bucket=bucket, Key="obj", Body=data)
    first = objmount(["cat", f"s3://{bucket}/obj"])
    assert first.stdout == data
    second = objmount(["cat", f"s3://{bucket}/obj"])
    assert second.stdout == data
    assert second.requests("GetObject") == 1   # the open's revalidation: a conditional GET (304)
    assert second.requests("HeadObject") == 0
    assert second.bytes_received == 0


def test_a_changed_object_is_refetched(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"version one\n")
    assert objmount(["cat", f"s3://{bucket}/obj"]).stdout == b"version one\n"
    s3.put_object(Bucket=bucket, Key="obj", Body=b"version two, longer\n")
    run = objmount(["cat", f"s3://{bucket}/obj"])
    assert run.stdout == b"version two, longer\n"
    assert run.requests("GetObject") >= 1


def test_change_between_two_opens_in_one_run_is_seen(objmount, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"before\n")
    script = f"""
import boto3, os, time
p = 's3://{bucket}/obj'
print(open(p).read(), end='')
boto3.client('s3').put_object(Bucket='{bucket}', Key='obj', Body=b'after!!\\n')
print(open(p).read(), end='')
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    assert run.text == "before\nafter!!\n"


def test_cache_size_limit_evicts_old_data(objmount, s3, bucket, cache_dir):
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"o{i}", Body=os.urandom(3 * MiB))
    for i in range(4):
        assert objmount(["cat", f"s3://{bucket}/o{i}"], "--cache-size", "5M").returncode == 0
    used = sum(os.stat(os.path.join(d, f)).st_blocks * 512 for d, _, fs in os.walk(cache_dir / "items") for f in fs)
    assert used <= 7 * MiB
    again = objmount(["cat", f"s3://{bucket}/o0"], "--cache-size", "5M")
    assert again.requests("GetObject") >= 1   # evicted, fetched again
