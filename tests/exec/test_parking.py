"""The tracing thread never waits on the network: a syscall whose handling needs the
bucket is parked (its thread stays stopped, a worker handles it) while every other
traced process and thread goes on. Behaviour, not timing: a GET held by the test proxy
until the test lets it go, and other programs finishing meanwhile."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from faultproxy import Fault

BIG = os.urandom(2 * 2**20 + 777)
SMALL = {f"s{i}.txt": os.urandom(1000 + 37 * i) for i in range(4)}


@pytest.fixture
def objects(s3, bucket):
    s3.put_object(Bucket=bucket, Key="big.bin", Body=BIG)
    for name, body in SMALL.items():
        s3.put_object(Bucket=bucket, Key=f"small/{name}", Body=body)
    return bucket


def _held_get(objmount, proxy, bucket, cmd, tmp_path):
    """Run `cmd` (which starts reading big.bin, waits for the file `go`, then does the
    small work and creates the file `done`) with big.bin's GETs held by the proxy. Returns
    (whether `done` appeared while the GET was held, the run)."""
    release = threading.Event()
    proxy.add(Fault("stall", "GET", f"/{bucket}/big.bin", times=100, release=release))
    result = {}
    runner = threading.Thread(target=lambda: result.update(run=objmount(
        cmd, "--endpoint-url", proxy.url, "--read-timeout", "60", cwd=tmp_path, timeout=180)))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not proxy.requests("GET", f"/{bucket}/big.bin") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.requests("GET", f"/{bucket}/big.bin"), "big.bin was never asked for"
        (tmp_path / "go").touch()
        deadline = time.monotonic() + 30
        while not (tmp_path / "done").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        finished_meanwhile = (tmp_path / "done").exists()
        still_held = not (tmp_path / "big.out").exists() or (tmp_path / "big.out").stat().st_size < len(BIG)
    finally:
        release.set()
        proxy.clear()
        runner.join()
    return finished_meanwhile and still_held, result["run"]


def test_a_process_goes_on_while_another_waits_for_a_get(objmount, proxy, objects, tmp_path):
    d = f"/objmount/s3/{objects}"
    small = " ".join(f"{d}/small/{n}" for n in SMALL)
    cmd = (f"cat {d}/big.bin > big.out & "
           f"while [ ! -e go ]; do sleep 0.05; done; "
           f"stat -c %s {small} > sizes.out && cat {small} > small.out && touch done; wait")
    meanwhile, run = _held_get(objmount, proxy, objects, cmd, tmp_path)
    assert run.returncode == 0, run.stderr
    assert meanwhile, "the second process waited for the first one's GET"
    assert (tmp_path / "big.out").read_bytes() == BIG
    assert (tmp_path / "small.out").read_bytes() == b"".join(SMALL.values())
    assert (tmp_path / "sizes.out").read_text().split() == [str(len(b)) for b in SMALL.values()]


THREADS = r'''
import os, sys, threading
d = sys.argv[1]
def big():
    with open(os.path.join(d, "big.bin"), "rb") as f, open("big.out", "wb") as out:
        out.write(f.read())
t = threading.Thread(target=big)
t.start()
while not os.path.exists("go"):
    threading.Event().wait(0.05)
got = {}
def small(name):
    with open(os.path.join(d, "small", name), "rb") as f:
        got[name] = f.read()
readers = [threading.Thread(target=small, args=(n,)) for n in sorted(os.listdir(os.path.join(d, "small")))]
for r in readers: r.start()
for r in readers: r.join()
with open("small.out", "wb") as out:
    out.write(b"".join(got[n] for n in sorted(got)))
open("done", "w").close()
t.join()
'''


def test_threads_of_one_process_read_other_files_while_one_waits(objmount, proxy, objects, tmp_path):
    (tmp_path / "threads.py").write_text(THREADS)
    meanwhile, run = _held_get(objmount, proxy, objects,
                               [sys.executable, "threads.py", f"/objmount/s3/{objects}"], tmp_path)
    assert run.returncode == 0, run.stderr
    assert meanwhile, "the other threads waited for the first one's GET"
    assert (tmp_path / "big.out").read_bytes() == BIG
    assert (tmp_path / "small.out").read_bytes() == b"".join(SMALL[n] for n in sorted(SMALL))


def test_processes_on_the_same_objects_at_once_get_exact_bytes(objmount, s3, objects, tmp_path):
    """Eight readers of one object and eight writers of their own at once, then each
    writer's object read back by another process; a writer that exits without closing
    is uploaded before its parent reads it (close-to-open across exit)."""
    d = f"/objmount/s3/{objects}"
    for i in range(8):
        (tmp_path / f"in{i}").write_bytes(os.urandom(200_000 + i * 4099))
    cmd = ("mkdir " + d + "/w && for i in 0 1 2 3 4 5 6 7; do cat " + d + "/big.bin > r$i.out & cp in$i " + d + "/w/$i & done; wait; "
           "for i in 0 1 2 3 4 5 6 7; do cat " + d + "/w/$i > w$i.out & done; wait; "
           "python3 -c 'import os,sys; f=open(sys.argv[1],\"wb\"); f.write(open(\"in0\",\"rb\").read()); f.flush(); os._exit(0)' "
           + d + "/exit.bin; cat " + d + "/exit.bin > exit.out")
    run = objmount(cmd, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # (a server that keeps no directory markers, rclone, gets the one line saying so)
    assert [line for line in run.stderr.splitlines() if "no directory markers" not in line] == []
    for i in range(8):
        assert (tmp_path / f"r{i}.out").read_bytes() == BIG
        data = (tmp_path / f"in{i}").read_bytes()
        assert (tmp_path / f"w{i}.out").read_bytes() == data
        assert s3.get_object(Bucket=objects, Key=f"w/{i}")["Body"].read() == data
    assert (tmp_path / "exit.out").read_bytes() == (tmp_path / "in0").read_bytes()
    assert s3.get_object(Bucket=objects, Key="exit.bin")["Body"].read() == (tmp_path / "in0").read_bytes()


def test_a_process_killed_while_parked_is_let_go(objmount, proxy, objects, tmp_path):
    d = f"/objmount/s3/{objects}"
    small = " ".join(f"{d}/small/{n}" for n in SMALL)
    cmd = (f"cat {d}/big.bin > big.out & pid=$!; "
           f"while [ ! -e go ]; do sleep 0.05; done; kill -9 $pid; wait $pid; "
           f"cat {small} > small.out && touch done; cat {d}/big.bin > big2.out")
    meanwhile, run = _held_get(objmount, proxy, objects, cmd, tmp_path)
    assert run.returncode == 0, run.stderr
    assert meanwhile
    assert (tmp_path / "small.out").read_bytes() == b"".join(SMALL.values())
    assert (tmp_path / "big2.out").read_bytes() == BIG
    assert "internal error" not in run.stderr, run.stderr


MIXED = r'''
import os, sys
d = sys.argv[1]
out = {}
# A small file (whole after the open: its reads and its close are answered on the tracing
# thread) and a big one (reads past the first window fetch: handled on the pool), read in
# small steps, interleaved, through dup'ed descriptors too.
s = os.open(os.path.join(d, "small", "s1.txt"), os.O_RDONLY)
b = os.open(os.path.join(d, "big.bin"), os.O_RDONLY)
s2 = os.dup(s)
parts = {s: [], b: []}
while True:
    got = [os.read(fd, 777) for fd in (s, b)]
    for fd, chunk in zip((s, b), got):
        parts[fd].append(chunk)
    if not any(got):
        break
os.close(s)
out["s1"] = b"".join(parts[s])
out["via dup"] = os.pread(s2, 100, 10)
os.close(s2)
out["big"] = b"".join(parts[b])
os.posix_fadvise(b, 0, 0, os.POSIX_FADV_WILLNEED)
os.close(b)
# A file open for reading and for writing at once: the reader's close (read-only: on the
# tracing thread) must leave the upload to the writer's.
p = os.path.join(d, "both.txt")
w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(w, b"first ")
r = os.open(p, os.O_RDONLY)
os.write(w, b"second")
os.close(r)
os.close(w)
with open(p, "rb") as f:
    out["both"] = f.read()
for k in sorted(out):
    sys.stdout.buffer.write(k.encode() + b"=" + out[k].hex().encode() + b"\n")
'''


def test_reads_and_read_only_closes_answered_on_the_tracing_thread_give_the_same_bytes(objmount, s3, objects, tmp_path):
    (tmp_path / "mixed.py").write_text(MIXED)
    run = objmount([sys.executable, "mixed.py", f"/objmount/s3/{objects}"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    got = dict(line.split("=", 1) for line in run.text.splitlines())
    assert bytes.fromhex(got["s1"]) == SMALL["s1.txt"]
    assert bytes.fromhex(got["via dup"]) == SMALL["s1.txt"][10:110]
    assert bytes.fromhex(got["big"]) == BIG
    assert bytes.fromhex(got["both"]) == b"first second"
    assert s3.get_object(Bucket=objects, Key="both.txt")["Body"].read() == b"first second"
