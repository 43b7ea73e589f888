"""Real programs read objects through every path form and compare with boto3's bytes."""

from __future__ import annotations

import hashlib
import os
import tarfile

import pytest

DATA = os.urandom(3 * 1024 * 1024 + 12345)  # odd size: crosses block boundaries


@pytest.fixture
def tree(s3, bucket):
    """A small tree: files at several depths, a directory marker, an executable script."""
    objects = {
        "data.bin": DATA,
        "hello.txt": b"hello world\n",
        "dir/a.txt": b"alpha\nneedle in a\n",
        "dir/b.txt": b"beta\n",
        "dir/sub/c.txt": b"gamma needle\n",
        "with space/n\u00e4me.txt": "unicode and spaces\n".encode(),
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="empty/", Body=b"", ContentType="application/x-directory")
    return objects


def body(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_cat_reads_the_object_bytes_by_every_path_form(objmount, s3, bucket, tree):
    for path in (f"/objmount/s3/{bucket}/data.bin", f"s3://{bucket}/data.bin", "/data/data.bin"):
        run = objmount(["cat", path], "-m", f"/data=s3://{bucket}")
        assert run.returncode == 0, run.stderr
        assert run.stdout == body(s3, bucket, "data.bin"), path


def test_mount_with_prefix_maps_keys_below_it(objmount, bucket, tree):
    run = objmount(["cat", "/mnt/x/a.txt"], "-m", f"/mnt/x=s3://{bucket}/dir")
    assert run.returncode == 0, run.stderr
    assert run.stdout == tree["dir/a.txt"]


def test_head_tail_dd_and_cmp_read_ranges(objmount, bucket, tree):
    p = f"/objmount/s3/{bucket}/data.bin"
    assert objmount(["head", "-c", "1000", p]).stdout == DATA[:1000]
    assert objmount(["tail", "-c", "777", p]).stdout == DATA[-777:]
    run = objmount(["dd", f"if={p}", "bs=4096", "skip=300", "count=2", "status=none"])
    assert run.stdout == DATA[300 * 4096: 302 * 4096]


def test_cmp_and_sha256sum_agree_with_boto3(objmount, bucket, tree, tmp_path):
    local = tmp_path / "data.bin"
    local.write_bytes(DATA)
    p = f"/objmount/s3/{bucket}/data.bin"
    assert objmount(["cmp", p, str(local)]).returncode == 0
    run = objmount(["sha256sum", p])
    assert run.text.split()[0] == hashlib.sha256(DATA).hexdigest()


def test_static_binary_reads_like_a_dynamic_one(objmount, bucket, tree, static_cat):
    run = objmount([str(static_cat), f"/objmount/s3/{bucket}/data.bin", f"s3://{bucket}/hello.txt"])
    assert run.returncode == 0, run.stderr + run.text[:100]
    assert run.stdout == DATA + tree["hello.txt"]
    missing = objmount([str(static_cat), f"/objmount/s3/{bucket}/nope"])
    assert missing.stdout == b"errno=2\n"


def test_ls_lists_files_dirs_and_markers(objmount, bucket, tree):
    run = objmount(["ls", "-1a", f"/objmount/s3/{bucket}"])
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == [".", "..", "data.bin", "dir", "empty", "hello.txt", "with space"]
    long = objmount(["ls", "-l", f"/objmount/s3/{bucket}/dir"]).text
    assert "-rw-r--r--" in long and "drwxr-xr-x" in long and " 18 " in long


def test_stat_reports_size_and_type(objmount, bucket, tree):
    run = objmount(["stat", "-c", "%s %F", f"/objmount/s3/{bucket}/data.bin", f"/objmount/s3/{bucket}/dir"])
    assert run.text.splitlines() == [f"{len(DATA)} regular file", "0 directory"] or \
        run.text.splitlines()[0] == f"{len(DATA)} regular file"
    assert run.text.splitlines()[1].endswith("directory")


def test_find_walks_the_tree(objmount, bucket, tree):
    run = objmount(["find", f"/objmount/s3/{bucket}", "-type", "f"])
    found = sorted(p.split(f"/objmount/s3/{bucket}/", 1)[1] for p in run.text.splitlines())
    assert found == sorted(tree)


def test_grep_recursive_finds_matches(objmount, bucket, tree):
    run = objmount(["grep", "-rl", "needle", f"/objmount/s3/{bucket}/dir"])
    assert sorted(run.text.splitlines()) == [f"/objmount/s3/{bucket}/dir/a.txt", f"/objmount/s3/{bucket}/dir/sub/c.txt"]


def test_tar_archives_a_virtual_directory(objmount, bucket, tree, tmp_path):
    archive = tmp_path / "out.tar"
    run = objmount(["tar", "cf", str(archive), "-C", f"/objmount/s3/{bucket}", "dir"])
    assert run.returncode == 0, run.stderr
    with tarfile.open(archive) as tar:
        assert tar.extractfile("dir/sub/c.txt").read() == tree["dir/sub/c.txt"]
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == ["dir/a.txt", "dir/b.txt", "dir/sub/c.txt"]


def test_relative_paths_inside_a_virtual_cwd(objmount, bucket, tree):
    run = objmount(f"cd /objmount/s3/{bucket}/dir && pwd && cat a.txt ../hello.txt sub/../b.txt && ls sub")
    assert run.returncode == 0, run.stderr
    assert run.text == f"/objmount/s3/{bucket}/dir\n" + "alpha\nneedle in a\nhello world\nbeta\nc.txt\n"


def test_python_open_seek_read_and_mmap(objmount, bucket, tree):
    script = f"""
import mmap, os
p = '/objmount/s3/{bucket}/data.bin'
with open(p, 'rb') as f:
    f.seek(2_000_000); a = f.read(100)
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); b = m[3_000_000:3_000_100]
print(a.hex(), b.hex(), os.path.getsize(p), sorted(e.name for e in os.scandir('/objmount/s3/{bucket}/dir')))
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    a, b, size, names = run.text.split(" ", 3)
    assert bytes.fromhex(a) == DATA[2_000_000:2_000_100]
    assert bytes.fromhex(b) == DATA[3_000_000:3_000_100]
    assert int(size) == len(DATA)
    assert names.strip() == "['a.txt', 'b.txt', 'sub']"


def test_spaces_and_non_ascii_names(objmount, bucket, tree):
    run = objmount(["cat", f"/objmount/s3/{bucket}/with space/n\u00e4me.txt"])
    assert run.stdout == tree["with space/n\u00e4me.txt"]


def test_shell_redirect_onto_stdin_reads_whole_object(objmount, bucket, tree):
    # dup2 onto fd 0 puts the descriptor where the filter does not look: it must be complete.
    run = objmount(f"sha256sum < /objmount/s3/{bucket}/data.bin")
    assert run.text.split()[0] == hashlib.sha256(DATA).hexdigest()


def test_script_and_binary_stored_in_the_bucket_execute(objmount, s3, bucket, static_cat):
    s3.put_object(Bucket=bucket, Key="bin/hello.sh", Body=b"#!/bin/sh\necho script says $1\n",
                  Metadata={"mode": str(0o100755)})
    s3.put_object(Bucket=bucket, Key="bin/scat", Body=static_cat.read_bytes(), Metadata={"mode": str(0o100755)})
    s3.put_object(Bucket=bucket, Key="bin/noexec.sh", Body=b"#!/bin/sh\necho no\n")
    s3.put_object(Bucket=bucket, Key="msg", Body=b"static binary from the bucket\n")
    run = objmount(f"/objmount/s3/{bucket}/bin/hello.sh hi && /objmount/s3/{bucket}/bin/scat s3://{bucket}/msg")
    assert run.returncode == 0, run.stderr
    assert run.text == "script says hi\nstatic binary from the bucket\n"
    denied = objmount([f"/objmount/s3/{bucket}/bin/noexec.sh"])
    assert denied.returncode == 126


def test_readlink_and_symlink_following(objmount, s3, bucket, tree):
    s3.put_object(Bucket=bucket, Key="link", Body=b"dir/a.txt", Metadata={"mode": str(0o120777)})
    run = objmount(f"readlink /objmount/s3/{bucket}/link; cat /objmount/s3/{bucket}/link")
    assert run.text == "dir/a.txt\n" + tree["dir/a.txt"].decode()
