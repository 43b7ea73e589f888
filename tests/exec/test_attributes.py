"""Attributes tell the truth: a directory's come from its `dir/` marker (and the root of a
prefix mount's from `prefix/`), a listed object stats with its stored mode, owner and
times, a listed symlink lstats as a symlink — compared with a local directory."""

from __future__ import annotations

import shutil
import subprocess

import pytest

MOUNTS = ["bucket", "prefix", "file"]


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory's attributes last for the run only")
@pytest.mark.parametrize("mount", MOUNTS)
def test_directories_keep_mode_owner_and_mtime(differential, mount):
    differential(
        [["umask", 0], ["mkdir", "open", 0o777], ["mkdir", "shut", 0o700], ["mkdir", "p", 0o755],
         ["chmod", "p", 0o750], ["chown", "p", 1234, 5678], ["utime", "p", 1600000000 * 10**9, 1600000000 * 10**9],
         ["stat", "open"], ["stat", "shut"], ["stat", "p", False], ["mtime", "p"]],
        # a fresh run: the attributes come from the bucket, looked up alone and via a listing
        [["stat", "open"], ["stat", "shut"], ["stat", "p", False], ["mtime", "p"]],
        [["listdir", "."], ["stat", "open"], ["stat", "shut"], ["stat", "p", False], ["mtime", "p"],
         ["access", "shut", 7]],
        mount=mount)


@pytest.mark.not_rclone("no dir/ markers there: a directory's attributes last for the run only")
def test_the_root_of_a_prefix_mount_keeps_its_attributes(differential):
    differential(
        [["chmod", ".", 0o750], ["utime", ".", 1500000000 * 10**9, 1500000000 * 10**9],
         ["stat", ".", False], ["mtime", "."]],
        [["stat", ".", False], ["mtime", "."], ["listdir", "."]],
        mount="prefix")


@pytest.mark.parametrize("mount", MOUNTS)
def test_listed_files_and_symlinks_stat_with_their_stored_attributes(differential, mount):
    differential(
        [["umask", 0o027], ["put", "run.sh", "#!/bin/sh\n", 0o755], ["put", "secret", "s", 0o600],
         ["utime", "secret", 1400000000 * 10**9, 1400000000 * 10**9], ["symlink", "run.sh", "link"],
         ["chown", "run.sh", 42, 43]],
        # a fresh run lists first, then stats: the listing carries no attributes
        [["listdir", "."], ["lstat", "run.sh"], ["lstat", "secret", False], ["mtime", "secret"],
         ["lstat", "link", False], ["readlink", "link"], ["stat", "link", False], ["access", "secret", 2]],
        mount=mount)


def test_ls_l_after_a_listing_shows_stored_modes_and_links(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="d/x", Body=b"#!/bin/sh\n", Metadata={"mode": str(0o100750), "uid": "1234"})
    s3.put_object(Bucket=bucket, Key="d/l", Body=b"x", Metadata={"mode": str(0o120777)})
    s3.put_object(Bucket=bucket, Key="d/sub/", Body=b"", Metadata={"mode": str(0o40700), "mtime": "1600000000"})
    run = objmount(f"ls /objmount/s3/{bucket}/d >/dev/null; ls -ln --time-style=+%s /objmount/s3/{bucket}/d")
    assert run.returncode == 0, run.stderr
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line.split() for line in run.text.splitlines()[1:]}
    assert lines["x"][0] == "-rwxr-x---" and lines["x"][2] == "1234"
    assert lines["l"][0] == "lrwxrwxrwx" and run.text.rstrip().count("l -> x") == 1
    assert lines["sub"][0] == "drwx------" and lines["sub"][5] == "1600000000"


def test_implicit_directories_have_a_real_mtime(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="imp/f", Body=b"x")
    run = objmount(["stat", "-c", "%a %Y", f"/objmount/s3/{bucket}/imp", f"/objmount/s3/{bucket}"])
    assert run.returncode == 0, run.stderr
    for line in run.text.splitlines():
        mode, mtime = line.split()
        assert mode == "755" and int(mtime) > 1_700_000_000


def test_ls_lR_costs_its_listings_and_one_head_per_entry(objmount, s3, bucket):
    """A listing has no attributes: each entry's are asked for (in parallel, once the
    program stats a second entry of the listing) — 30 files and 3 directory markers."""
    for d in range(3):
        for f in range(10):
            s3.put_object(Bucket=bucket, Key=f"d{d}/f{f}.txt", Body=b"x", Metadata={"mode": str(0o100600)})
    run = objmount(["ls", "-lR", f"/objmount/s3/{bucket}"])
    assert run.returncode == 0, run.stderr
    assert run.text.count("f9.txt") == 3 and run.text.count("-rw-------") == 30
    assert run.requests("HeadObject") == 33 and run.requests("ListObjectsV2") <= 8


def test_git_status_after_a_clone_into_the_bucket_is_clean(objmount, bucket, tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "run.sh").chmod(0o755)
    (src / "plain.txt").write_text("text\n")
    git = ["git", "-c", "user.email=t@e", "-c", "user.name=T"]
    subprocess.run(["sh", "-c", "git init -q && git add . && " + " ".join(git[1:]).join(["git ", " commit -qm one"])],
                   cwd=src, check=True, capture_output=True)
    d = f"/objmount/s3/{bucket}/clone"
    run = objmount(f"git clone -q {src} {d} && cd {d} && git status --porcelain && git diff --stat", timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.text == ""
    again = objmount(f"cd {d} && ls -R >/dev/null && git status --porcelain && git diff --stat && stat -c %a run.sh", timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.text == "755\n"


def test_open_finds_an_object_another_client_created_within_the_ttl(objmount, s3, bucket):
    script = f"""
import boto3, os
p = '/objmount/s3/{bucket}/d/new.txt'
print(sorted(os.listdir('/objmount/s3/{bucket}/d')))
try:
    open(p)
except OSError as e:
    print('missing', e.errno)
boto3.client('s3').put_object(Bucket='{bucket}', Key='d/new.txt', Body=b'made elsewhere')
print(open(p).read())
"""
    s3.put_object(Bucket=bucket, Key="d/old.txt", Body=b"old")
    run = objmount(["python3", "-c", script], "--metadata-ttl", "600")
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == ["['old.txt']", "missing 2", "made elsewhere"]
