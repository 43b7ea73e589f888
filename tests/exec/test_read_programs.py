"""Real programs read objects through every path form and compare with boto3's bytes; each
program runs on a bucket mount and on a prefix mount (`mounted`)."""

from __future__ import annotations

import hashlib
import os
import tarfile

import pytest

DATA = os.urandom(3 * 1024 * 1024 + 12345)  # odd size: crosses block boundaries


OBJECTS = {
    "data.bin": DATA,
    "hello.txt": b"hello world\n",
    "dir/a.txt": b"alpha\nneedle in a\n",
    "dir/b.txt": b"beta\n",
    "dir/sub/c.txt": b"gamma needle\n",
    "with space/n\u00e4me.txt": "unicode and spaces\n".encode(),
}


def _put_tree(put) -> dict:
    """A small tree: files at several depths, a directory marker."""
    for key, data in OBJECTS.items():
        put(key, data)
    put("empty/", b"", ContentType="application/x-directory")
    return OBJECTS


@pytest.fixture
def tree(mounted):
    """The tree below /w, a bucket mount or a prefix mount (each test runs on both)."""
    return _put_tree(mounted.put)


@pytest.fixture
def bucket_tree(s3, bucket):
    return _put_tree(lambda key, data, **kw: s3.put_object(Bucket=bucket, Key=key, Body=data, **kw))


def body(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_cat_reads_the_object_bytes_by_every_path_form(objmount, s3, bucket, bucket_tree):
    for path in (f"/objmount/s3/{bucket}/data.bin", f"s3://{bucket}/data.bin", "/data/data.bin"):
        run = objmount(["cat", path], "-m", f"/data=s3://{bucket}")
        assert run.returncode == 0, run.stderr
        assert run.stdout == body(s3, bucket, "data.bin"), path


def test_mount_with_prefix_maps_keys_below_it(objmount, bucket, bucket_tree):
    run = objmount(["cat", "/mnt/x/a.txt"], "-m", f"/mnt/x=s3://{bucket}/dir")
    assert run.returncode == 0, run.stderr
    assert run.stdout == bucket_tree["dir/a.txt"]


def test_head_tail_dd_and_cmp_read_ranges(mounted, tree):
    p = f"{mounted.root}/data.bin"
    assert mounted.run(["head", "-c", "1000", p]).stdout == DATA[:1000]
    assert mounted.run(["tail", "-c", "777", p]).stdout == DATA[-777:]
    run = mounted.run(["dd", f"if={p}", "bs=4096", "skip=300", "count=2", "status=none"])
    assert run.stdout == DATA[300 * 4096: 302 * 4096]


def test_cmp_and_sha256sum_agree_with_boto3(mounted, tree, tmp_path):
    local = tmp_path / "data.bin"
    local.write_bytes(DATA)
    p = f"{mounted.root}/data.bin"
    assert mounted.run(["cmp", p, str(local)]).returncode == 0
    run = mounted.run(["sha256sum", p])
    assert run.text.split()[0] == hashlib.sha256(DATA).hexdigest()


def test_static_binary_reads_like_a_dynamic_one(mounted, tree, static_cat):
    run = mounted.run([str(static_cat), f"{mounted.root}/data.bin", f"{mounted.root}/hello.txt"])
    assert run.returncode == 0, run.stderr + run.text[:100]
    assert run.stdout == DATA + tree["hello.txt"]
    missing = mounted.run([str(static_cat), f"{mounted.root}/nope"])
    assert missing.stdout == b"errno=2\n"


def test_ls_lists_files_dirs_and_markers(mounted, tree):
    run = mounted.run(["ls", "-1a", f"{mounted.root}"])
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == [".", "..", "data.bin", "dir", "empty", "hello.txt", "with space"]
    long = mounted.run(["ls", "-l", f"{mounted.root}/dir"]).text
    assert "-rw-r--r--" in long and "drwxr-xr-x" in long and " 18 " in long


def test_stat_reports_size_and_type(mounted, tree):
    run = mounted.run(["stat", "-c", "%s %F", f"{mounted.root}/data.bin", f"{mounted.root}/dir"])
    assert run.text.splitlines() == [f"{len(DATA)} regular file", "0 directory"] or \
        run.text.splitlines()[0] == f"{len(DATA)} regular file"
    assert run.text.splitlines()[1].endswith("directory")


@pytest.mark.not_rclone("the tree's empty/ marker is listed as a file 'empty'")
def test_find_walks_the_tree_and_cp_r_copies_it(mounted, tree, tmp_path):
    run = mounted.run(["find", f"{mounted.root}", "-type", "f"])
    found = sorted(p.split(f"{mounted.root}/", 1)[1] for p in run.text.splitlines())
    assert found == sorted(tree)
    copy = mounted.run(["cp", "-r", mounted.root, str(tmp_path / "copy")])
    assert copy.returncode == 0, copy.stderr
    assert {k: (tmp_path / "copy" / k).read_bytes() for k in tree} == tree
    assert (tmp_path / "copy" / "empty").is_dir()


@pytest.mark.not_rclone("the tree's empty/ marker is listed as a file 'empty'")
def test_grep_recursive_finds_matches(mounted, tree):
    run = mounted.run(["grep", "-rl", "needle", f"{mounted.root}/dir"])
    assert sorted(run.text.splitlines()) == [f"{mounted.root}/dir/a.txt", f"{mounted.root}/dir/sub/c.txt"]
    top = mounted.run(f"cd {mounted.root} && grep -rl needle . && du -s . | cut -f1")  # the README's example
    assert sorted(top.text.splitlines()[:2]) == ["./dir/a.txt", "./dir/sub/c.txt"]
    assert int(top.text.splitlines()[2]) > 0


def test_tar_archives_a_virtual_directory(mounted, tree, tmp_path):
    archive = tmp_path / "out.tar"
    run = mounted.run(["tar", "cf", str(archive), "-C", f"{mounted.root}", "dir"])
    assert run.returncode == 0, run.stderr
    with tarfile.open(archive) as tar:
        assert tar.extractfile("dir/sub/c.txt").read() == tree["dir/sub/c.txt"]
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == ["dir/a.txt", "dir/b.txt", "dir/sub/c.txt"]


def test_relative_paths_inside_a_virtual_cwd(mounted, tree):
    run = mounted.run(f"cd {mounted.root}/dir && pwd && cat a.txt ../hello.txt sub/../b.txt && ls sub")
    assert run.returncode == 0, run.stderr
    assert run.text == f"{mounted.root}/dir\n" + "alpha\nneedle in a\nhello world\nbeta\nc.txt\n"


def test_python_open_seek_read_and_mmap(mounted, tree):
    script = f"""
import mmap, os
p = '{mounted.root}/data.bin'
with open(p, 'rb') as f:
    f.seek(2_000_000); a = f.read(100)
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); b = m[3_000_000:3_000_100]
print(a.hex(), b.hex(), os.path.getsize(p), sorted(e.name for e in os.scandir('{mounted.root}/dir')))
"""
    run = mounted.run(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    a, b, size, names = run.text.split(" ", 3)
    assert bytes.fromhex(a) == DATA[2_000_000:2_000_100]
    assert bytes.fromhex(b) == DATA[3_000_000:3_000_100]
    assert int(size) == len(DATA)
    assert names.strip() == "['a.txt', 'b.txt', 'sub']"


def test_spaces_and_non_ascii_names(mounted, tree):
    run = mounted.run(["cat", f"{mounted.root}/with space/n\u00e4me.txt"])
    assert run.stdout == tree["with space/n\u00e4me.txt"]


def test_shell_redirect_onto_stdin_reads_whole_object(mounted, tree):
    # dup2 onto fd 0 puts the descriptor where the filter does not look: it must be complete.
    run = mounted.run(f"sha256sum < {mounted.root}/data.bin")
    assert run.text.split()[0] == hashlib.sha256(DATA).hexdigest()


def test_script_and_binary_stored_in_the_bucket_execute(mounted, static_cat):
    mounted.put("bin/hello.sh", b"#!/bin/sh\necho script says $1\n", Metadata={"mode": str(0o100755)})
    mounted.put("bin/scat", static_cat.read_bytes(), Metadata={"mode": str(0o100755)})
    mounted.put("bin/noexec.sh", b"#!/bin/sh\necho no\n")
    mounted.put("msg", b"static binary from the bucket\n")
    run = mounted.run(f"{mounted.root}/bin/hello.sh hi && {mounted.root}/bin/scat {mounted.root}/msg")
    assert run.returncode == 0, run.stderr
    assert run.text == "script says hi\nstatic binary from the bucket\n"
    denied = mounted.run([f"{mounted.root}/bin/noexec.sh"])
    assert denied.returncode == 126


def test_readlink_and_symlink_following(mounted, tree):
    mounted.put("link", b"dir/a.txt", Metadata={"mode": str(0o120777)})
    run = mounted.run(f"readlink {mounted.root}/link; cat {mounted.root}/link")
    assert run.text == "dir/a.txt\n" + tree["dir/a.txt"].decode()
