"""Signals arriving while objmount runs, injects or resumes a syscall: the program must
get exactly what the kernel would give (no EINTR on files, no stray results, descriptors
open on the right file), with 100 Hz interval timers and with Go's preemption signals."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from exec_support import compile_c

HERE = Path(__file__).parent
COUNT = 240


def body(i: int) -> bytes:
    n = 1000 + (i * 37) % 5000
    return bytes(ord("a") + (i * 7 + k) % 26 for k in range(n))


@pytest.fixture(scope="session")
def c_probes(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("signal_probe")
    built = {"dynamic": compile_c(out / "probe-dynamic", HERE / "signal_probe.c", "-O2", "-pthread")}
    static = compile_c(out / "probe-static", HERE / "signal_probe.c", "-O2", "-pthread", "-static", optional=True)
    if static is not None:
        built["static"] = static
    return built


@pytest.fixture(scope="session")
def go_probe(tmp_path_factory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("go not installed")
    tmp = tmp_path_factory.mktemp("go")
    exe = tmp / "probe-go"
    env = dict(os.environ, GOCACHE=str(tmp / "cache"), GOPATH=str(tmp / "path"), GOFLAGS="-mod=mod",
               CGO_ENABLED="0")
    done = subprocess.run(["go", "build", "-o", str(exe), "."], cwd=HERE / "signal_probe_go", env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(done.stderr)
    return exe


def check_objects(s3, bucket: str, prefix: str, count: int) -> None:
    for i in range(count):
        got = s3.get_object(Bucket=bucket, Key=f"{prefix}/f{i}")["Body"].read()
        assert got == body(i), f"{prefix}/f{i}: {len(got)} bytes"


@pytest.mark.parametrize("timer, restart, threads, link", [
    ("real", "norestart", 1, "dynamic"),
    ("real", "restart", 4, "dynamic"),
    ("prof", "restart", 1, "dynamic"),
    ("prof", "norestart", 4, "static"),
    ("real", "restart", 1, "static"),
    ("real", "norestart", 4, "static"),
])
@pytest.mark.not_rclone("a dir/ marker becomes a file there (this test makes one)")
def test_c_program_with_interval_timer(objmount, s3, bucket, tmp_path, c_probes, timer, restart, threads, link):
    if link not in c_probes:
        pytest.skip("static linking unavailable")
    probe = str(c_probes[link])
    native_v, local = tmp_path / "native", tmp_path / "local"
    native_v.mkdir()
    local.mkdir()
    native = subprocess.run([probe, timer, restart, str(threads), str(COUNT), str(native_v), str(local)],
                            capture_output=True, text=True, timeout=120)
    assert native.returncode == 0 and native.stdout.startswith("ok"), native.stdout
    s3.put_object(Bucket=bucket, Key="sig/", Body=b"")
    run = objmount([probe, timer, restart, str(threads), str(COUNT), f"/objmount/s3/{bucket}/sig", str(local)],
                   timeout=600)
    assert run.returncode == 0, run.text + run.stderr
    assert run.text.startswith(f"ok {COUNT} ")
    check_objects(s3, bucket, "sig", COUNT)
    for i in range(0, COUNT, 4):
        assert (local / f"f{i}").read_bytes() == body(i)


@pytest.mark.not_rclone("a dir/ marker becomes a file there (this test makes one)")
def test_go_program_with_many_goroutines(objmount, s3, bucket, tmp_path, go_probe):
    local = tmp_path / "local"
    local.mkdir()
    s3.put_object(Bucket=bucket, Key="go/", Body=b"")
    run = objmount([str(go_probe), "16", str(COUNT), f"/objmount/s3/{bucket}/go", str(local)], timeout=600)
    assert run.returncode == 0, run.text + run.stderr
    assert run.text.startswith(f"ok {COUNT} ")
    check_objects(s3, bucket, "go", COUNT)
    for i in range(0, COUNT, 4):
        assert (local / f"f{i}").read_bytes() == body(i)
