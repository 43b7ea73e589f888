"""A number once given to a virtual descriptor stays watched by a seccomp filter (filters
cannot be removed). A local file the kernel later gives that number must read and write
as natively, without stopping on every call where the fast path is loaded; a virtual one
given it again must still reach the supervisor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

BIG = 3 * 2**20

# Every step prints what it saw; the same script runs on a local copy natively.
PROBE = r'''
import json, os, sys
D, L = sys.argv[1], sys.argv[2]
out = []
def note(*v): out.append(list(v))
fd = os.open(D + "/a", os.O_RDONLY); note("virtual a", fd, os.read(fd, 5).decode()); os.close(fd)
for i in range(40):   # local files at the watched number: read, fstat, lseek, pread, close
    fd = os.open(L + "/l", os.O_RDONLY)
    data = os.read(fd, 100); size = os.fstat(fd).st_size
    os.lseek(fd, 2, 0); rest = os.read(fd, 3); at = os.pread(fd, 4, 1)
    os.close(fd)
note("local", fd, data.decode(), size, rest.decode(), at.decode())
fd = os.open(L + "/w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"written locally"); os.pwrite(fd, b"W", 0); os.close(fd)
note("local write", fd, open(L + "/w").read())
fd = os.open(D + "/big", os.O_RDONLY)   # virtual again, at the same number: reads stop
note("virtual big", fd, os.fstat(fd).st_size, os.pread(fd, 16, 2_000_000).hex(),
     os.lseek(fd, -8, 2), os.read(fd, 8).hex())
os.close(fd)
fd = os.open(D + "/new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"virtual write at a watched number"); os.close(fd)
note("virtual write", fd)
try:
    os.fstat(-1)
except OSError as e:
    note("fstat(-1)", e.errno)
try:
    os.read(fd, 1)
except OSError as e:
    note("read closed", e.errno)
print(json.dumps(out))
'''


def _write_tree(root, big):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "a"), "wb") as f:
        f.write(b"alpha")
    with open(os.path.join(root, "big"), "wb") as f:
        f.write(big)


def test_a_local_file_at_a_watched_number_reads_as_natively(objmount, s3, bucket, tmp_path):
    big = os.urandom(BIG)
    s3.put_object(Bucket=bucket, Key="a", Body=b"alpha")
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    local = tmp_path / "local"
    local.mkdir()
    (local / "l").write_text("local file contents")
    here = tmp_path / "here"
    _write_tree(here, big)
    native = subprocess.run([sys.executable, "-c", PROBE, str(here), str(local)], capture_output=True, text=True,
                            timeout=60)
    assert native.returncode == 0, native.stderr
    runs = {}
    for options in ((), ("--no-fast-path",)):
        run = objmount([sys.executable, "-c", PROBE, f"/objmount/s3/{bucket}", str(local)], *options)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.text) == json.loads(native.stdout), options
        assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == b"virtual write at a watched number"
        runs[options] = run.stats["syscalls"]
    # The 40 local files at the watched number: with the fast path their calls run in
    # the process (what still stops: the virtual files' own calls, and the loader's and
    # libc's internal ones); without it, every call stops.
    fast, slow = runs[()], runs[("--no-fast-path",)]
    assert slow.get("read", 0) >= 80 and slow.get("close", 0) >= 40
    for call in ("read", "pread64", "lseek", "close"):
        assert fast.get(call, 0) < 15, (call, fast)
