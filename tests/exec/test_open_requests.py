"""How many requests an open costs (issue 11): a reading open asks the bucket with one
ranged GET that also brings the first bytes; a second open of cached bytes asks
conditionally (304, no body); creating files in a directory made in this run asks nothing.
Counts are compared between two runs that differ only in the number of files, so what
the directories themselves cost does not enter."""

from __future__ import annotations

import os
import stat

import pytest


def _delta(a, b) -> dict:
    ops = set(a.stats["vfs"]["requests"]) | set(b.stats["vfs"]["requests"])
    out = {op: b.requests(op) - a.requests(op) for op in ops}
    return {op: n for op, n in out.items() if n}


@pytest.mark.parametrize("program", ["cat {d}/*", "grep -r . {d}"])   # grep opens with O_NOFOLLOW
def test_each_file_read_in_a_listed_directory_is_one_get(objmount, s3, bucket, program):
    b = f"/objmount/s3/{bucket}"
    for d, n in (("few", 3), ("many", 8)):
        for i in range(n):
            s3.put_object(Bucket=bucket, Key=f"{d}/f{i}", Body=f"{d}{i}\n".encode() * 100)
    few = objmount(program.format(d=f"{b}/few"))
    many = objmount(program.format(d=f"{b}/many"))
    assert few.returncode == 0 and many.returncode == 0, few.stderr + many.stderr
    assert len(many.text.splitlines()) == 800
    assert _delta(few, many) == {"GetObject": 5}   # no HEAD, no LIST per file
    assert many.requests("HeadObject") <= 2         # the directory (its name and its marker)


def test_a_first_open_by_path_asks_one_get_and_no_head(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="x", Body=b"hello\n", Metadata={"mode": str(stat.S_IFREG | 0o600)})
    run = objmount(f"cat /objmount/s3/{bucket}/x && stat -c %a /objmount/s3/{bucket}/x")
    assert run.returncode == 0, run.stderr
    assert run.text == "hello\n600\n"     # the metadata came with the GET
    assert run.requests("GetObject") == 1
    assert run.requests("HeadObject") == 0
    assert run.requests("ListObjectsV2") <= 2   # the run's start-up probe; beside the GET: is x a prefix?


def test_a_second_open_asks_conditionally_and_gets_no_body(objmount, s3, bucket):
    body = os.urandom(3000)
    s3.put_object(Bucket=bucket, Key="d/f", Body=body)
    path = f"/objmount/s3/{bucket}/d/f"
    once = objmount(f"cat {path} > /dev/null")
    twice = objmount(f"cat {path} > /dev/null; cat {path}")
    assert once.returncode == 0 and twice.returncode == 0, twice.stderr
    assert twice.stdout == body
    assert _delta(once, twice) == {"GetObject": 1}   # close-to-open: still asked
    assert twice.bytes_received == 0                 # the cache had it (from `once`): 304s only
    assert once.bytes_received == len(body)


def test_an_object_changed_since_it_was_cached_is_read_anew(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="f", Body=b"old version\n")
    path = f"/objmount/s3/{bucket}/f"
    assert objmount(f"cat {path}").text == "old version\n"
    s3.put_object(Bucket=bucket, Key="f", Body=b"new version\n")   # same size
    run = objmount(f"cat {path}")
    assert run.returncode == 0, run.stderr
    assert run.text == "new version\n"


@pytest.mark.not_rclone("a dir/ marker above keys is refused (InternalError)")
def test_empty_objects_directories_and_symlinks_open_as_before(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    s3.put_object(Bucket=bucket, Key="dir/inner", Body=b"inner\n")
    s3.put_object(Bucket=bucket, Key="both", Body=b"object\n")       # also a prefix:
    s3.put_object(Bucket=bucket, Key="both/x", Body=b"x\n")          # the directory wins
    s3.put_object(Bucket=bucket, Key="link", Body=b"dir/inner", Metadata={"mode": str(stat.S_IFLNK | 0o777)})
    b = f"/objmount/s3/{bucket}"
    for cmd in (f"cat {b}/empty; wc -c < {b}/empty; cat {b}/empty",   # 0 bytes: a range is refused
                f"cat {b}/link"):
        first = objmount(cmd)
        again = objmount(cmd)   # with the cache of the first run: conditional GETs
        assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
        assert first.text == again.text
    assert objmount(f"wc -c < {b}/empty").text == "0\n"
    assert objmount(f"cat {b}/link").text == "inner\n"
    for name in ("dir", "both"):
        run = objmount(f"cat {b}/{name}")
        assert run.returncode == 1
        assert "Is a directory" in run.stderr


def test_a_file_mount_reads_the_same(objmount, tmp_path):
    store = tmp_path / "store"
    (store / "d").mkdir(parents=True)
    (store / "d" / "a").write_bytes(b"a" * 5000)
    (store / "d" / "e").write_bytes(b"")
    os.symlink("a", store / "d" / "l")
    cmd = "cat /t/d/a /t/d/e /t/d/l | wc -c; cat /t/d/a /t/d/l | wc -c"
    run = objmount(cmd, "-m", f"/t=file://{store}")
    assert run.returncode == 0, run.stderr
    assert run.text == "10000\n10000\n"


def _tree(root, dirs: int, files: int) -> None:
    for d in range(dirs):
        (root / f"d{d}").mkdir(parents=True)
        for f in range(files):
            (root / f"d{d}" / f"f{f}").write_bytes(os.urandom(500))


def test_cp_r_into_a_new_directory_sends_one_put_per_file(objmount, s3, bucket, tmp_path):
    """A directory made in this run is known to be empty: creating a file in it asks the
    bucket nothing (no HEAD, no LIST), with directory markers and without."""
    small, large = tmp_path / "small", tmp_path / "large"
    _tree(small, 2, 3)
    _tree(large, 2, 8)
    b = f"/objmount/s3/{bucket}"
    for options in ((), ("--no-dir-markers",)):
        tag = "nomarkers" if options else "markers"
        few = objmount(f"cp -r {small} {b}/{tag}-few", *options)
        many = objmount(f"cp -r {large} {b}/{tag}-many", *options)
        assert few.returncode == 0 and many.returncode == 0, few.stderr + many.stderr
        assert _delta(few, many) == {"PutObject": 10}
        got = s3.get_object(Bucket=bucket, Key=f"{tag}-many/d1/f7")["Body"].read()
        assert got == (large / "d1" / "f7").read_bytes()
