"""Runs sharing one cache directory at once, files left by a killed supervisor (kept and
reported, published only by `objmount flush`), and a full cache disk."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from exec_support import REPO, objmount_cmd

MiB = 1024 * 1024


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


def get(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def flush(cache_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "objmount", "flush", "--cache-dir", str(cache_dir), *args],
                          env=env(), capture_output=True, text=True, timeout=120)


# --- two writers and a reader, separate runs, one cache -------------------------------
SIZE, PATCH = 6 * MiB, 1 * MiB
OFFSETS = {1: 1 * MiB + 4096, 2: 4 * MiB - 4096}


def pattern(writer: int, n: int) -> bytes:
    return f"w{writer}n{n:05d}".encode() * (PATCH // 8)


# Read, patch, close. A read of a version replaced since the open fails with ESTALE
# (close-to-open): the program opens again.
WRITER = """
import errno, sys
path, writer, offset, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
n = 0
while n < rounds:
    with open(path, 'r+b') as f:
        try:
            f.read()
        except OSError as e:
            assert e.errno == errno.ESTALE, e
            continue
        f.seek(offset)
        f.write(f"w{writer}n{n:05d}".encode() * (%d // 8))
    n += 1
""" % PATCH

READER = """
import errno, hashlib, sys
path, rounds = sys.argv[1], int(sys.argv[2])
n = 0
while n < rounds:
    with open(path, 'rb') as f:
        try:
            data = f.read()
        except OSError as e:
            assert e.errno == errno.ESTALE, e
            continue
    print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
    n += 1
"""


def _delete_versions(s3, bucket) -> None:
    listing = s3.list_object_versions(Bucket=bucket)
    for v in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


@pytest.mark.not_rclone("no bucket versioning (PutBucketVersioning: NotImplemented)")
def test_two_writers_and_a_reader_share_one_cache_and_every_byte_is_right(s3, bucket, cache_dir, request):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    original = os.urandom(SIZE)
    s3.put_object(Bucket=bucket, Key="obj", Body=original)
    path = f"/objmount/s3/{bucket}/obj"
    # A small limit: every release evicts, also items the other runs have open.
    common = ("--cache-dir", str(cache_dir), "--cache-size", "8M", "--")
    procs = [subprocess.Popen(objmount_cmd(*common, "python3", "-c", WRITER, path, str(w), str(OFFSETS[w]), "6"),
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for w in (1, 2)]
    procs.append(subprocess.Popen(objmount_cmd(*common, "python3", "-c", READER, path, "25"), env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = []
    request.addfinalizer(lambda: _delete_versions(s3, bucket))
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            outs.append((proc.returncode, out.decode(), err.decode()))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    for code, out, err in outs:
        other = [line for line in err.splitlines() if not line.endswith("object changed while reading")]
        assert code == 0 and other == [], err
    # Every version the bucket ever had is the original with whole patches in place.
    versions = {}
    for v in s3.list_object_versions(Bucket=bucket, Prefix="obj")["Versions"]:
        data = s3.get_object(Bucket=bucket, Key="obj", VersionId=v["VersionId"])["Body"].read()
        versions[hashlib.sha256(data).hexdigest()] = data
    assert len(versions) > 2
    for data in versions.values():
        assert len(data) == SIZE
        rest = bytearray(data)
        for writer, offset in OFFSETS.items():
            region = data[offset:offset + PATCH]
            assert region == original[offset:offset + PATCH] or any(region == pattern(writer, n) for n in range(6))
            rest[offset:offset + PATCH] = original[offset:offset + PATCH]
        assert bytes(rest) == original
    # Every read saw one whole version.
    reads = [line.split() for line in outs[2][1].splitlines()]
    assert len(reads) == 25
    for size, digest in reads:
        assert int(size) == SIZE and digest in versions
    # And the cache still serves the final version right, byte for byte.
    final = subprocess.run(objmount_cmd("--cache-dir", str(cache_dir), "--", "cat", path), env=env(),
                           capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert final.stdout == get(s3, bucket, "obj")


# --- a killed supervisor: kept, reported, published on request ------------------------
def _kill_mid_overwrite(bucket, tmp_path, cache_dir) -> None:
    """An objmount whose program has written 20 MiB over s3://bucket/big is SIGKILLed
    (parts of it have gone up by write-behind: an upload not completed)."""
    ready = tmp_path / "ready"
    script = f"""
import time
f = open('/objmount/s3/{bucket}/big', 'wb')
f.write(b'P' * {20 * MiB}); f.flush()
open('{ready}', 'w').close()
time.sleep(120)
"""
    proc = subprocess.Popen(objmount_cmd("--cache-dir", str(cache_dir), "--", "python3", "-c", script), env=env())
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.kill()  # SIGKILL to the supervisor: the program dies with it
    finally:
        proc.kill()
        proc.wait()


def test_killed_mid_overwrite_leaves_the_object_intact_until_flush(s3, bucket, tmp_path, cache_dir):
    intact = os.urandom(24 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=intact)
    _kill_mid_overwrite(bucket, tmp_path, cache_dir)
    # An unrelated run: says what is held in one line, publishes nothing.
    other = subprocess.run(objmount_cmd("--cache-dir", str(cache_dir), "--", "true"), env=env(),
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 0
    lines = other.stderr.splitlines()
    assert len(lines) == 1 and "1 file (20.0 MiB)" in lines[0] and "objmount flush --list" in lines[0], other.stderr
    assert get(s3, bucket, "big") == intact
    listed = flush(cache_dir, "--list")
    assert listed.returncode == 0 and listed.stderr == ""
    assert listed.stdout.split("\t")[:2] == [f"s3://{bucket}/big", "20.0 MiB"]
    assert get(s3, bucket, "big") == intact
    # Published when asked, by name.
    wrong = flush(cache_dir, f"s3://{bucket}/other")
    assert wrong.returncode == 1 and "not held" in wrong.stdout
    done = flush(cache_dir, f"s3://{bucket}/big")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"uploaded s3://{bucket}/big")
    assert get(s3, bucket, "big") == b"P" * 20 * MiB
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # the dead run's was aborted
    assert flush(cache_dir, "--list").stdout == ""
    quiet = subprocess.run(objmount_cmd("--cache-dir", str(cache_dir), "--", "true"), env=env(),
                           capture_output=True, text=True, timeout=120)
    assert quiet.stderr == ""


def test_flush_does_not_publish_over_a_newer_version_and_discard_drops_the_file(s3, bucket, tmp_path, cache_dir):
    s3.put_object(Bucket=bucket, Key="big", Body=b"old")
    _kill_mid_overwrite(bucket, tmp_path, cache_dir)
    s3.put_object(Bucket=bucket, Key="big", Body=b"newer, from elsewhere")
    out = flush(cache_dir)
    assert out.returncode == 1 and "changed since" in out.stdout and out.stderr == ""
    assert get(s3, bucket, "big") == b"newer, from elsewhere"
    assert flush(cache_dir, "--list").stdout.startswith(f"s3://{bucket}/big\t")
    gone = flush(cache_dir, "--discard", f"s3://{bucket}/big")
    assert gone.returncode == 0 and gone.stdout.startswith(f"discarded s3://{bucket}/big")
    assert flush(cache_dir, "--list").stdout == ""
    assert get(s3, bucket, "big") == b"newer, from elsewhere"
    assert os.listdir(cache_dir / "items" / "new") == []


def test_a_live_run_s_file_is_not_held_or_published_by_another(s3, bucket, tmp_path, cache_dir):
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = f"""
import os, time
f = open('/objmount/s3/{bucket}/live', 'wb'); f.write(b'still writing'); f.flush()
open('{ready}', 'w').close()
while not os.path.exists('{go}'): time.sleep(0.05)
f.write(b', done'); f.close()
"""
    proc = subprocess.Popen(objmount_cmd("--cache-dir", str(cache_dir), "--", "python3", "-c", script), env=env(),
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert flush(cache_dir, "--list").stdout == ""
        out = flush(cache_dir)
        assert out.returncode == 0 and out.stdout == ""
        other = subprocess.run(objmount_cmd("--cache-dir", str(cache_dir), "--", "true"), env=env(),
                               capture_output=True, text=True, timeout=120)
        assert other.stderr == ""
        go.touch()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
    assert get(s3, bucket, "live") == b"still writing, done"


# --- a full cache disk ----------------------------------------------------------------
def _small_fs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=1m none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


ENOSPC_WRITER = """
import errno, os, sys
path, size = sys.argv[1], int(sys.argv[2])
f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
written, err = 0, 0
try:
    while written < size:
        written += os.write(f, b'N' * min(1 << 20, size - written))
except OSError as e:
    err = e.errno
try:
    os.close(f); closed = 0
except OSError as e:
    closed = e.errno
print(written, err, closed)
"""


@pytest.mark.skipif(not _small_fs_available(), reason="cannot mount a small tmpfs in a user namespace here")
def test_a_full_cache_disk_evicts_then_fails_the_write_and_keeps_the_previous_version(s3, bucket, tmp_path):
    """The cache on a 32 MiB tmpfs (mounted in a user namespace). A 16 MiB clean item fills
    half of it; a 14 MiB write only fits once it is evicted; a 40 MiB overwrite does not
    fit: its write fails with ENOSPC, its close with an error, the object keeps its
    previous version, no traceback, and the cache works afterwards."""
    s3.put_object(Bucket=bucket, Key="filler", Body=os.urandom(16 * MiB))
    previous = os.urandom(2 * MiB)
    s3.put_object(Bucket=bucket, Key="prev", Body=previous)
    cache = tmp_path / "small"
    cache.mkdir()
    out = tmp_path / "out"
    cmd = lambda *argv: shlex.join(objmount_cmd("--cache-dir", str(cache), "--", *argv))
    v = f"/objmount/s3/{bucket}"
    script = "\n".join([
        f"mount -t tmpfs -o size=32m none {cache} || exit 99",
        f"{cmd('cat', v + '/filler')} > /dev/null 2> {out}/1.err; echo $? > {out}/1.rc",
        f"{cmd('python3', '-c', ENOSPC_WRITER, v + '/fits', str(14 * MiB))} > {out}/2.out 2> {out}/2.err",
        f"{cmd('python3', '-c', ENOSPC_WRITER, v + '/prev', str(40 * MiB))} > {out}/3.out 2> {out}/3.err",
        f"{cmd('cat', v + '/prev')} > {out}/4.out 2> {out}/4.err",
        f"{cmd('sh', '-c', 'printf after > ' + v + '/after')} > /dev/null 2> {out}/5.err; echo $? > {out}/5.rc",
        f"{sys.executable} -m objmount flush --list --cache-dir {cache} > {out}/6.out 2> {out}/6.err; echo $? > {out}/6.rc",
    ])
    out.mkdir()
    run = subprocess.run(["unshare", "-Urm", "sh", "-c", script], env=env(), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    errs = {n: (out / f"{n}.err").read_text() for n in range(1, 7)}
    assert all("Traceback" not in e for e in errs.values()), errs
    assert (out / "1.rc").read_text().strip() == "0", errs[1]
    # Room made by evicting the clean item
    assert (out / "2.out").read_text().split() == [str(14 * MiB), "0", "0"], errs[2]
    assert get(s3, bucket, "fits") == b"N" * 14 * MiB
    # No room at all: the write fails, the close says so, nothing is published
    written, err, closed = map(int, (out / "3.out").read_text().split())
    assert written < 40 * MiB and err == closed == 28, errs[3]  # ENOSPC
    assert "no space left" in errs[3] and len(errs[3].splitlines()) == 1, errs[3]
    assert get(s3, bucket, "prev") == previous
    # The cache is usable afterwards
    assert (out / "4.out").read_bytes() == previous, errs[4]
    assert (out / "5.rc").read_text().strip() == "0", errs[5]
    assert get(s3, bucket, "after") == b"after"
    assert (out / "6.out").read_text() == "" and errs[6] == "" and (out / "6.rc").read_text().strip() == "0"
