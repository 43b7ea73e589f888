"""Which S3 client a run uses: with static credentials the lean one (vfs/stores/http.py) makes
every request of a run that reads, lists and writes small files, and botocore is never
imported; OBJMOUNT_S3_CLIENT=botocore makes botocore do them, with the same results."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exec_support import REPO

# objmount's own entry point, with an exit handler (objmount runs them before it leaves)
# that writes down the botocore modules loaded by then.
WRAPPER = """
import atexit, runpy, sys
marker = sys.argv.pop(1)
def seen():
    with open(marker, 'a') as f:
        f.write(repr(sorted(m for m in sys.modules if m.split('.')[0] == 'botocore')) + '\\n')
atexit.register(seen)
sys.argv[0] = 'objmount'
runpy.run_module('objmount', run_name='__main__', alter_sys=True)
"""

JOB = ("cd {w} && cat a.txt d/b.txt; ls . d; stat -c '%s %n' d/b.txt; "
       "echo written > new.txt && mv new.txt d/moved.txt && cat d/moved.txt; "
       "mkdir e && rm d/b.txt; ls . d e")


def _run(cache_dir, bucket, tmp_path, env: dict, options=()) -> tuple[subprocess.CompletedProcess, list[str]]:
    marker = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}"
    cmd = [sys.executable, "-c", WRAPPER, str(marker), "exec", *options,
           "--cache-dir", str(cache_dir), "-m", f"/w=s3://{bucket}", "--", "sh", "-c", JOB.format(w="/w")]
    environ = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    proc = subprocess.run(cmd, capture_output=True, timeout=120, env=environ)
    lines = marker.read_text().splitlines() if marker.exists() else []
    return proc, lines


def _fill(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"first\n")
    s3.put_object(Bucket=bucket, Key="d/b.txt", Body=b"second file\n")


def _local(tmp_path) -> bytes:
    """The job's output on a local directory holding the same files."""
    root = tmp_path / "local"
    (root / "d").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"first\n")
    (root / "d" / "b.txt").write_bytes(b"second file\n")
    return subprocess.run(["sh", "-c", JOB.format(w=root)], capture_output=True, check=True).stdout


def _keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory keeps no object of its own")
def test_a_run_with_static_credentials_never_imports_botocore(cache_dir, s3, bucket, tmp_path):
    _fill(s3, bucket)
    proc, modules = _run(cache_dir, bucket, tmp_path, {"OBJMOUNT_S3_CLIENT": ""})
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == _local(tmp_path)
    assert _keys(s3, bucket) == ["a.txt", "d/moved.txt", "e/"]
    assert s3.get_object(Bucket=bucket, Key="d/moved.txt")["Body"].read() == b"written\n"
    assert modules and all(m == "[]" for m in modules), modules


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory keeps no object of its own")
@pytest.mark.parametrize("env", [{"OBJMOUNT_S3_CLIENT": "botocore"}, {"AWS_USE_DUALSTACK_ENDPOINT": "false"}])
def test_botocore_still_makes_the_requests_when_asked_or_needed(cache_dir, s3, bucket, tmp_path, env):
    """OBJMOUNT_S3_CLIENT=botocore, or a setting the lean client leaves to botocore."""
    _fill(s3, bucket)
    proc, modules = _run(cache_dir, bucket, tmp_path, env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == _local(tmp_path)
    assert _keys(s3, bucket) == ["a.txt", "d/moved.txt", "e/"]
    assert modules and all("botocore.client" in m for m in modules), modules


def test_a_named_profile_with_static_keys_is_checked_and_used_without_botocore(cache_dir, s3, bucket, tmp_path):
    """--profile is checked before the program runs (a missing one is a usage error, in
    botocore's words: tests/vfs/test_lean_s3.py) without importing botocore."""
    _fill(s3, bucket)
    creds = tmp_path / "credentials"
    creds.write_text("[bench]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {"OBJMOUNT_S3_CLIENT": "", "AWS_SHARED_CREDENTIALS_FILE": str(creds)}
    proc, modules = _run(cache_dir, bucket, tmp_path, env, ("--profile", "bench"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == _local(tmp_path)
    assert modules and all(m == "[]" for m in modules), modules
    proc, modules = _run(cache_dir, bucket, tmp_path, env, ("--profile", "nosuch"))
    assert proc.returncode == 2
    assert "--profile 'nosuch': The config profile (nosuch) could not be found" in proc.stderr.decode()
    assert modules and all(m == "[]" for m in modules), modules


def test_aws_default_profile_comes_first_as_in_botocore(cache_dir, s3, bucket, tmp_path):
    _fill(s3, bucket)
    creds = tmp_path / "credentials"
    creds.write_text("[bench]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_DEFAULT_PROFILE": "bench", "AWS_PROFILE": "nosuch"}
    proc, _ = _run(cache_dir, bucket, tmp_path, env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == _local(tmp_path)
