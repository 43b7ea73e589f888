"""clone(CLONE_FILES) and clone(CLONE_FS) without CLONE_THREAD, with SIGCHLD as the exit
signal (clone and clone3): the kernel reports them as fork events, and the child shares
its parent's descriptor table or working directory all the same. What the parent then
sees of the child's open, close and chdir must be what it sees on a local directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from exec_support import compile_c

HERE = Path(__file__).parent
BIG = os.urandom(5 * 1024 * 1024 + 123)   # several MiB: read while it is still being fetched


@pytest.fixture(scope="session")
def clone_probe(tmp_path_factory) -> Path:
    return compile_c(tmp_path_factory.mktemp("clone") / "clone_probe", HERE / "clone_probe.c", "-O2", "-Wall")


@pytest.mark.parametrize("loop", ["quick-loop", "python-loop"])
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "no-fast-path"])
def test_a_fork_that_shares_files_or_fs_matches_a_local_directory(objmount, s3, bucket, clone_probe, tmp_path,
                                                                   fast_path, loop):
    local = tmp_path / "local"
    (local / "dir").mkdir(parents=True)
    (local / "big.bin").write_bytes(BIG)
    (local / "dir" / "f").write_text("hello from dir\n")
    s3.put_object(Bucket=bucket, Key="big.bin", Body=BIG)
    s3.put_object(Bucket=bucket, Key="dir/f", Body=b"hello from dir\n")
    expected = subprocess.run([str(clone_probe), str(local)], capture_output=True, check=True).stdout
    assert expected.count(b"5243003 bytes") == 2 and expected.count(b"hello from dir") == 2
    options = ["-m", f"/data=s3://{bucket}"] + ([] if fast_path else ["--no-fast-path"])
    run = objmount([str(clone_probe), "/data"], *options,
                   env={"OBJMOUNT_QUICK_LOOP": "1" if loop == "quick-loop" else "0"})
    assert run.returncode == 0, run.stderr
    assert run.text == expected.decode(), run.stderr
