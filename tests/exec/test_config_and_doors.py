"""Bad configuration fails before the program runs; the cache and the fast-path library
cannot be read or planted by other users; credentials never reach a log line; files left
open at exit are all uploaded."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from exec_support import REPO, objmount_cmd

NOBODY = 65534


@pytest.mark.parametrize("options", [
    ("--endpoint-url", "not-a-url"),
    ("--endpoint-url", "http://host:99999"),
    ("--region", "us east 1"),
    ("--profile", "nosuch"),
    ("-m", "/data=file:///tmp", "-m", "/data/=file:///tmp"),
    ("--read-timeout", "0"),
])
def test_bad_configuration_fails_before_the_program_runs(objmount, tmp_path, options):
    marker = tmp_path / "ran"
    run = objmount(f"touch {marker}", *options)
    assert run.returncode == 2, run.stderr
    assert not marker.exists()
    assert "Error:" in run.stderr and "Traceback" not in run.stderr


def test_an_unreachable_endpoint_fails_at_start_when_a_bucket_is_mounted(objmount, tmp_path, bucket):
    marker = tmp_path / "ran"
    for args in (["-m", f"/data=s3://{bucket}"], []):
        cmd = f"touch {marker}" + ("" if args else f" /objmount/s3/{bucket}/x")
        run = objmount(cmd, *args, "--endpoint-url", "http://127.0.0.1:9", "--retries", "1")
        assert run.returncode == 2, run.stderr
        assert not marker.exists()
        assert len(run.stderr.splitlines()) == 1 and "unreachable" in run.stderr, run.stderr


def test_a_missing_mounted_bucket_fails_at_start(objmount, tmp_path):
    run = objmount("true", "-m", "/data=s3://no-such-bucket-zz")
    assert run.returncode == 2
    assert "no-such-bucket-zz: no such bucket" in run.stderr


def test_a_run_with_only_local_mounts_needs_no_server(objmount, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "f").write_text("local\n")
    run = objmount(["cat", "/data/f"], "-m", f"/data=file://{store}", "--endpoint-url", "http://127.0.0.1:9")
    assert run.returncode == 0, run.stderr
    assert run.text == "local\n"


def test_userinfo_and_secrets_never_reach_logs_or_stats(objmount, tmp_path):
    secret = "S3cr3tV4lue"
    code = ("import os\nfor p in ('s3:/' + '/bkt-abc/k', '/objmount' + '/s3/bkt-abc/k'):\n"
            "    try: open(p)\n    except OSError as e: print(e.errno)")
    run = objmount(["python3", "-c", code], "--endpoint-url", f"http://user:{secret}@127.0.0.1:9",
                   "--retries", "0", "-vv", env={"AWS_SECRET_ACCESS_KEY": secret})
    assert run.text.split() == ["5", "5"]
    assert "127.0.0.1:9" in run.stderr
    assert secret not in run.stderr and "user:" not in run.stderr
    assert secret not in str(run.stats)
    start = objmount("true", "-m", "/d=s3://bkt-abc", "--endpoint-url", f"http://user:{secret}@127.0.0.1:9")
    assert start.returncode == 2 and secret not in start.stderr and "127.0.0.1:9" in start.stderr


def _modes(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            yield path, os.lstat(path).st_mode


def test_the_cache_is_private_whatever_the_umask(objmount, s3, bucket, cache_dir):
    s3.put_object(Bucket=bucket, Key="f", Body=b"secret data\n")
    cache_dir.mkdir(mode=0o755)
    os.chmod(cache_dir, 0o755)   # as older versions left it
    old = os.umask(0)
    try:
        run = objmount(f"cat /objmount/s3/{bucket}/f && echo new > /objmount/s3/{bucket}/g")
    finally:
        os.umask(old)
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700
    files = [(path, stat.S_IMODE(mode)) for path, mode in _modes(cache_dir) if stat.S_ISREG(mode)]
    assert len(files) >= 3   # the object's bytes, the new object's, the index
    assert [(path, oct(mode)) for path, mode in files if mode != 0o600] == []


def test_a_cache_directory_of_another_user_is_refused(objmount, cache_dir):
    cache_dir.mkdir()
    os.chown(cache_dir, NOBODY, NOBODY)
    run = objmount("true")
    assert run.returncode == 2
    assert "belongs to uid" in run.stderr and len(run.stderr.splitlines()) == 1


@pytest.fixture
def world_searchable():
    """A directory every user can search (pytest's tmp_path lies below a 0700 one)."""
    top = tempfile.mkdtemp(prefix="objmount-test-")
    os.chmod(top, 0o755)
    yield Path(top)
    shutil.rmtree(top, ignore_errors=True)


def test_the_library_is_loaded_from_where_every_user_can_reach_it(objmount, tmp_path, world_searchable):
    """Under a 0700 directory, programs running as other users could not load it (ld.so
    would say "cannot be preloaded"): the per-user directory in TMPDIR is used instead."""
    used, err = _preloaded(objmount, tmp_path / "xdg")
    assert used and not used.startswith(str(tmp_path)) and err == ""
    st = os.stat(used)
    assert st.st_uid == os.geteuid() and st.st_mode & 0o022 == 0 and st.st_mode & 0o005 == 0o005
    used, err = _preloaded(objmount, world_searchable / "xdg")
    assert used.startswith(str(world_searchable / "xdg" / "objmount-lib")) and err == ""


def _preloaded(objmount, xdg) -> tuple[str, str]:
    run = objmount("echo $LD_PRELOAD", env={"XDG_CACHE_HOME": str(xdg)})
    assert run.returncode == 0, run.stderr
    return run.text.strip(), run.stderr


@pytest.mark.parametrize("plant", ["dir-writable", "dir-of-other-user", "library-of-other-user"])
def test_the_fast_path_library_is_never_loaded_from_where_others_can_write(objmount, world_searchable, plant):
    xdg = world_searchable / "xdg"   # (below a 0700 directory the library would not be used anyway)
    built, err = _preloaded(objmount, xdg)   # a safe first run builds it there
    lib = xdg / "objmount-lib"
    assert built.startswith(str(lib)) and err == ""
    if plant == "dir-writable":
        os.chmod(lib, 0o777)
    elif plant == "dir-of-other-user":
        os.chown(lib, NOBODY, NOBODY)
    else:
        os.chown(built, NOBODY, NOBODY)
    used, err = _preloaded(objmount, xdg)
    assert used and not used.startswith(str(lib))
    assert len(err.splitlines()) == 1 and "fast-path library not loaded" in err, err
    st = os.stat(used)
    assert st.st_uid == os.geteuid() and st.st_mode & 0o022 == 0 and st.st_mode & 0o005 == 0o005


def test_files_left_open_at_exit_are_all_uploaded(objmount, s3, bucket):
    """300 files written and never closed: the exit closes them, uploading in parallel."""
    code = (f"import os\nos.mkdir('/objmount/s3/{bucket}/many')\nfds = []\nfor i in range(300):\n"
            f"    fd = os.open('/objmount/s3/{bucket}/many/f%03d' % i, os.O_WRONLY | os.O_CREAT, 0o644)\n"
            "    os.write(fd, b'content of %d\\n' % i)\n    fds.append(fd)\nos._exit(0)")
    run = objmount(["python3", "-c", code])
    assert run.returncode == 0, run.stderr
    keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/")
            for o in page.get("Contents", []) if not o["Key"].endswith("/")}
    assert keys == {f"many/f{i:03d}" for i in range(300)}
    for i in (0, 150, 299):
        assert s3.get_object(Bucket=bucket, Key=f"many/f{i:03d}")["Body"].read() == b"content of %d\n" % i


def test_files_open_in_a_killed_program_are_uploaded(objmount, s3, bucket):
    code = (f"import os, signal\nos.mkdir('/objmount/s3/{bucket}/k')\nfor i in range(50):\n"
            f"    fd = os.open('/objmount/s3/{bucket}/k/f%02d' % i, os.O_WRONLY | os.O_CREAT, 0o644)\n"
            "    os.write(fd, b'%d' % i)\nos.kill(os.getpid(), signal.SIGKILL)")
    run = objmount(["python3", "-c", code])
    assert run.returncode == 128 + 9
    for i in (0, 49):
        assert s3.get_object(Bucket=bucket, Key=f"k/f{i:02d}")["Body"].read() == b"%d" % i


def test_flush_command_takes_the_same_network_options(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([*objmount_cmd()[:-1], "flush", "--cache-dir", str(tmp_path / "c"), "--retries", "1",
                           "--read-timeout", "5", "--endpoint-url", "bad"], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "not an endpoint URL" in done.stderr
