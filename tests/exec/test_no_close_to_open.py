"""--no-close-to-open (issue 11): an open for reading may take an answer about the object
less than --metadata-ttl old (a prefetch's above all) instead of asking the bucket again.
The default still asks at every open. A program under objmount opens the files of a
directory in listing order (so they are fetched ahead); between two of its opens, the
test changes a later file in the bucket, once the proxy has answered that file's
prefetch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from exec_support import REPO, objmount_cmd

KiB = 1024
SIZE = 100 * KiB   # above the size files are fetched ahead from with close-to-open (64 KiB)
CHANGED = "f05"

# Reads the first three files of a directory in listing order, says so (`ready`), waits
# for `go`, reads the rest, prints the first byte and the size of the changed file.
SCRIPT = """
import os, sys, time
d, ready, go, changed = sys.argv[1:]
names = sorted(os.listdir(d))
def read(name):
    with open(os.path.join(d, name), 'rb') as f:
        return f.read()
for name in names[:3]:
    read(name)
open(ready, 'w').close()
while not os.path.exists(go):
    time.sleep(0.02)
data = {name: read(name) for name in names[3:]}
print(data[changed][:1].decode(), len(data[changed]))
"""


@pytest.fixture
def watched(s3_server):
    """The fault proxy (no faults) that also records which requests it has answered: a
    GET listed there has its bytes read from the server already."""
    from faultproxy import FaultProxy

    class Watched(FaultProxy):
        def __init__(self, upstream):
            super().__init__(upstream)
            self.answered: list[tuple[str, str]] = []
            self.delay = 0.0          # seconds each object GET waits, as if far away
            self.in_flight = self.most_in_flight = 0   # object GETs at once

        def _forward(self, h, body):
            get = h.command == "GET" and "list-type" not in h.path
            with self._lock:
                if get:
                    self.in_flight += 1
                    self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                if get:
                    time.sleep(self.delay)
                out = super()._forward(h, body)
            finally:
                with self._lock:
                    self.in_flight -= get
            with self._lock:
                self.answered.append((h.command, h.path))
            return out

        def was_answered(self, method: str, path: str) -> bool:
            with self._lock:
                return any(m == method and path in p for m, p in self.answered)

    p = Watched(s3_server)
    yield p
    p.close()


def _wait(condition, what: str, proc, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the program ended before {what}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"no {what} in {seconds} s"
        time.sleep(0.02)


def _change_between_opens(watched, s3, bucket, tmp_path, *options, prefetched: bool = True):
    """Run SCRIPT over d/f00..f09 ('A' * SIZE each) and change d/f05 to 'B' * SIZE after
    its prefetch was answered (prefetched) or at once. Returns (output, stats)."""
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"d/f{i:02d}", Body=b"A" * SIZE)
    ready, go, stats = tmp_path / "ready", tmp_path / "go", tmp_path / "stats.json"
    cmd = objmount_cmd("--endpoint-url", watched.url, "--cache-dir", str(tmp_path / "cache"),
                       "--stats-file", str(stats), *options, "--",
                       sys.executable, "-c", SCRIPT, f"/objmount/s3/{bucket}/d", str(ready), str(go), CHANGED)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(ready.exists, "first opens", proc)
        if prefetched:
            _wait(lambda: watched.was_answered("GET", f"d/{CHANGED}"), f"prefetch of d/{CHANGED}", proc)
        s3.put_object(Bucket=bucket, Key=f"d/{CHANGED}", Body=b"B" * SIZE)   # the same size
        go.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode(), json.loads(stats.read_text())["vfs"]["requests"]


def _gets(watched, key: str) -> list:
    return [s for s in watched.requests("GET", key) if "list-type" not in s.path]


def test_default_an_open_rereads_a_file_changed_after_its_prefetch(watched, s3, bucket, tmp_path):
    out, _ = _change_between_opens(watched, s3, bucket, tmp_path)
    assert out == f"B {SIZE}\n"
    # fetched ahead, then the open's own question: conditional on the prefetched version
    gets = _gets(watched, f"d/{CHANGED}")
    assert len(gets) == 2 and "If-None-Match" in gets[1].headers


def test_no_close_to_open_takes_the_prefetch_answer_within_the_ttl(watched, s3, bucket, tmp_path):
    out, requests = _change_between_opens(watched, s3, bucket, tmp_path, "--no-close-to-open", "--metadata-ttl", "60")
    assert out == f"A {SIZE}\n"                  # the documented staleness: the prefetched version
    assert len(_gets(watched, f"d/{CHANGED}")) == 1   # its prefetch; the open asked nothing
    assert requests.get("GetObject") == 10       # one per file: two opens, eight prefetches
    assert not [s for s in watched.requests("GET") if "If-None-Match" in s.headers]


def test_no_close_to_open_with_ttl_0_asks_at_every_open(watched, s3, bucket, tmp_path):
    # nothing is fresh with a TTL of 0 (not even the listing a prefetch follows)
    out, _ = _change_between_opens(watched, s3, bucket, tmp_path, "--no-close-to-open", "--metadata-ttl", "0",
                                   prefetched=False)
    assert out == f"B {SIZE}\n"


@pytest.mark.parametrize("size", [3000, SIZE])
def test_no_close_to_open_reads_a_directory_with_one_get_per_file(objmount, watched, s3, bucket, size):
    """20 files opened in order: one GET each (small ones are fetched ahead too, the open
    takes the prefetch's answer) and no conditional GET; the bytes are right. The GETs
    are not one after another: several are on their way at once (with close-to-open, an
    open of a small file asks alone, and the next waits for it)."""
    bodies = [os.urandom(size) for _ in range(20)]
    for i, body in enumerate(bodies):
        s3.put_object(Bucket=bucket, Key=f"d/f{i:02d}", Body=body)
    watched.delay = 0.05
    run = objmount(f"cat /objmount/s3/{bucket}/d/*", "--endpoint-url", watched.url, "--no-close-to-open")
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"".join(bodies)
    assert run.requests("GetObject") == 20
    assert not [s for s in watched.requests("GET") if "If-None-Match" in s.headers]
    assert all(len(_gets(watched, f"d/f{i:02d}")) == 1 for i in range(20))
    assert watched.most_in_flight > 1


def test_no_close_to_open_still_asks_about_a_name_last_seen_missing(objmount, s3, bucket):
    script = f"""
import boto3, os
p = '/objmount/s3/{bucket}/late'
print(os.path.exists(p))
boto3.client('s3').put_object(Bucket='{bucket}', Key='late', Body=b'here')
print(open(p).read())
"""
    run = objmount(["python3", "-c", script], "--no-close-to-open", "--metadata-ttl", "60")
    assert run.returncode == 0, run.stderr
    assert run.text == "False\nhere\n"


def test_no_close_to_open_reads_what_this_run_wrote(objmount, s3, bucket):
    b = f"/objmount/s3/{bucket}"
    s3.put_object(Bucket=bucket, Key="f", Body=b"old\n")
    run = objmount(f"cat {b}/f; echo new > {b}/f; cat {b}/f", "--no-close-to-open", "--metadata-ttl", "60")
    assert run.returncode == 0, run.stderr
    assert run.text == "old\nnew\n"
    assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"new\n"   # published at close


def test_no_close_to_open_with_the_files_cached_asks_each_once_without_bodies(objmount, watched, s3, bucket):
    """A second run over the same cache: each file is asked about ahead once, with a
    conditional GET (304, no body), and the open takes that answer."""
    bodies = [os.urandom(3000) for _ in range(20)]
    for i, body in enumerate(bodies):
        s3.put_object(Bucket=bucket, Key=f"d/f{i:02d}", Body=body)
    cmd = f"cat /objmount/s3/{bucket}/d/*"
    first = objmount(cmd, "--endpoint-url", watched.url, "--no-close-to-open")
    assert first.returncode == 0 and first.stdout == b"".join(bodies), first.stderr
    watched.clear()
    watched.delay, watched.most_in_flight = 0.05, 0
    again = objmount(cmd, "--endpoint-url", watched.url, "--no-close-to-open")
    assert again.returncode == 0, again.stderr
    assert again.stdout == b"".join(bodies)
    assert again.requests("GetObject") == 20
    assert all(len(_gets(watched, f"d/f{i:02d}")) == 1 for i in range(20))
    assert again.bytes_received == 0                  # 304s
    assert watched.most_in_flight > 1                 # asked ahead, not at each open in turn
