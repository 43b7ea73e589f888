"""What a run costs before and after its program: a run that declares no virtual path
(no mount, no bucket on its command line) opens the cache only when its program first
touches a virtual path, so a build or a test suite under objmount never opens it."""

from __future__ import annotations

PY_READ = """
import os, sys
p = {path}
os.stat('/usr')                 # local work first
try:
    print(os.stat(p).st_size)
    print(open(p).read(), end='')
except OSError as e:
    print('errno', e.errno)
"""


def _hidden(bucket: str, key: str) -> str:
    """The path as a Python expression the command line does not show (so no bucket is
    named, and nothing is asked of the server at start)."""
    return f"'s3:' + '//{bucket}/{key}'"


def test_a_run_that_touches_no_virtual_path_leaves_the_cache_alone(objmount, cache_dir):
    run = objmount("ls / > /dev/null && echo done")
    assert run.returncode == 0 and run.text == "done\n", run.stderr
    assert not cache_dir.exists()
    assert run.stats["vfs"] == {"requests": {}, "bytes_received": 0, "bytes_sent": 0, "counters": {}}
    assert run.stats["stops"] > 0


def test_a_virtual_path_first_touched_mid_run_is_served(objmount, s3, bucket, cache_dir):
    s3.put_object(Bucket=bucket, Key="dir/f.txt", Body=b"hello from the bucket\n")
    code = PY_READ.format(path=_hidden(bucket, "dir/f.txt"))
    for _ in range(2):   # the second run finds the first one's cache
        run = objmount(["python3", "-c", code])
        assert run.returncode == 0, run.stderr
        assert run.text == "22\nhello from the bucket\n", run.stderr
        assert run.stderr == ""
        assert (cache_dir / "index").is_dir()


def test_a_cache_that_cannot_be_made_fails_only_the_virtual_calls(objmount, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    dangling = tmp_path / "gone"
    dangling.symlink_to(tmp_path / "nowhere" / "deeper")   # the cache directory cannot be made below it
    broken = ("--cache-dir", str(dangling / "cache"))
    run = objmount("echo local work", *broken)
    assert run.returncode == 0 and run.text == "local work\n" and run.stderr == ""
    run = objmount(["python3", "-c", PY_READ.format(path=_hidden(bucket, "f"))], *broken)
    assert run.returncode == 0 and run.text == "errno 5\n"
    assert "Traceback" not in run.stderr
    assert len(run.stderr.splitlines()) == 1 and "cache directory" in run.stderr, run.stderr
    # A run that declares a virtual path still fails before its program runs.
    store = tmp_path / "store"
    store.mkdir()
    marker = tmp_path / "ran"
    run = objmount(f"touch {marker}", "-m", f"/data=file://{store}", *broken)
    assert run.returncode == 2 and not marker.exists()
    assert "cache directory" in run.stderr and "Traceback" not in run.stderr


def test_the_fast_path_defers_the_cache_s_own_placeholder(tmp_path):
    """run.py names the placeholder directory without importing the cache."""
    from objmount.run import placeholder_dir
    from vfs.cache import Cache
    assert placeholder_dir(tmp_path) == Cache.placeholder_path(tmp_path)


def test_the_end_of_a_run_keeps_its_output_and_exit_status(objmount, s3, bucket):
    """A run ends without the interpreter's teardown (os._exit after the exit handlers):
    its summary, its log lines and the stats file are all written, to pipes, and the
    program's exit status is the run's."""
    s3.put_object(Bucket=bucket, Key="f.txt", Body=b"x" * 10)
    run = objmount(f"cat /objmount/s3/{bucket}/f.txt; cat /objmount/s3/{bucket}/missing; exit 7", "-v")
    assert run.returncode == 7
    assert run.text == "x" * 10
    assert "No such file or directory" in run.stderr
    assert "GetObject" in run.stderr          # the -v summary, printed at the very end
    assert run.stats["vfs"]["requests"].get("GetObject", 0) >= 1
