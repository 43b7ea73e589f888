"""Paths give the kernel's errors: the same probe on a local directory and under objmount."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from exec_support import compile_c

PROBES = Path(__file__).resolve().parents[1] / "probe"

LONG_NAME = "n" * 256
MAX_NAME = "m" * 255
LONG_PATH = "/".join(["d" * 200] * 21)   # over PATH_MAX


def test_dot_as_the_last_component_of_rmdir_and_rename_is_einval(differential):
    differential(
        [["mkdir", "d"], ["rmdir", "d/."], ["exists", "d"], ["rename", "d/.", "e"], ["mkdir", "d/sub"],
         ["rename", "d/sub", "d/sub/.."], ["rmdir", "d/.."], ["listdir"]],
    )


def test_a_file_used_as_a_directory_is_enotdir(differential):
    differential(
        [["put", "f", "x"], ["stat", "f/x"], ["open", "f/x", "RDONLY"], ["mkdir", "f/d"], ["unlink", "f/x"],
         ["open", "f/new", "WRONLY|CREAT"], ["rename", "f/x", "g"], ["listdir", "f"]],
    )


def test_names_and_paths_over_the_limits_are_enametoolong(differential):
    differential(
        [["put", LONG_NAME, "x"], ["stat", LONG_NAME], ["mkdir", LONG_NAME], ["stat", LONG_PATH],
         ["open", LONG_PATH, "WRONLY|CREAT"], ["listdir"]],
    )


def test_the_name_length_statfs_announces_is_the_one_taken(differential):
    """pathconf(_PC_NAME_MAX) says 255, as ext4: programs that size names by it (pjdfstest
    does) make names that work, not 1024-byte ones refused with ENAMETOOLONG."""
    differential(
        [["namemax"], ["mkdir", "d"], ["namemax", "d"], ["put", MAX_NAME, "x"], ["stat", MAX_NAME],
         ["rename", MAX_NAME, "d/" + MAX_NAME], ["listdir", "d"]],
    )


def test_creating_through_a_symlink_to_a_directory(differential):
    differential(
        [["mkdir", "d"], ["symlink", "d", "l"], ["put", "l/new", "via link"], ["cat", "d/new"],
         ["listdir", "d"], ["mkdir", "l/sub"], ["listdir", "d"]],
    )


def test_an_o_path_descriptor_only_names_the_file(differential):
    differential(
        [["put", "f", "x"], ["open", "f", "PATH"], ["fstat", "a", False], ["fchmod", "a", 0o600],
         ["read", "a", 1], ["close", "a"], ["stat", "f", False]],
    )


def test_an_o_path_descriptor_of_a_directory_changes_nothing_through_itself(differential):
    differential(
        [["mkdir", "d"], ["open", "d", "PATH|DIRECTORY"], ["fstat", "a", False], ["fchmod", "a", 0o700],
         ["close", "a"], ["stat", "d", False]],
    )


def test_readlinkat_of_an_empty_path_reads_the_link_the_descriptor_names(differential):
    differential(
        [["put", "f", "x"], ["symlink", "f", "l"], ["symlink", "../elsewhere", "dangling"], ["mkdir", "d"],
         ["open", "l", "PATH|NOFOLLOW", 0, "a"], ["freadlink", "a"],
         ["open", "dangling", "PATH|NOFOLLOW", 0, "b"], ["freadlink", "b"],
         ["open", "f", "PATH", 0, "c"], ["freadlink", "c"],       # not a link: ENOENT
         ["open", "f", "RDONLY", 0, "e"], ["freadlink", "e"],
         ["open", "d", "PATH|DIRECTORY", 0, "g"], ["freadlink", "g"],
         ["readlink", "l"]],
        # a fresh run: the link was listed, not looked up, when opened
        [["open", "l", "PATH|NOFOLLOW", 0, "a"], ["freadlink", "a"], ["freadlink", "a"]],
    )


@pytest.fixture(scope="module")
def path_probe(tmp_path_factory):
    """tests/probe/path_probe.c built: bad pointers and empty paths, through libc and raw."""
    return compile_c(tmp_path_factory.mktemp("path_probe") / "path_probe", PROBES / "path_probe.c", "-O1", "-Wall")


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "no-fast-path"])
def test_bad_pointers_and_empty_paths_get_the_kernels_errors(objmount, s3, bucket, tmp_path, path_probe, fast_path):
    """EFAULT for a path at an unreadable address (the fast path must not read it and die
    of SIGSEGV), ENOENT for an empty path (never EXDEV beside a virtual one), and
    linkat(fd, "", AT_EMPTY_PATH) links the file open on fd."""
    local = tmp_path / "local"
    local.mkdir()
    (local / "f").write_bytes(b"")
    native = subprocess.run([str(path_probe), str(local)], capture_output=True, timeout=60)
    assert native.returncode == 0, native.stderr
    s3.put_object(Bucket=bucket, Key="f", Body=b"")
    run = objmount([str(path_probe), "/w"], "-m", f"/w=s3://{bucket}", *(() if fast_path else ("--no-fast-path",)))
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == native.stdout.decode().splitlines(), run.stderr
    assert "internal error" not in run.stderr
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == sorted(p.name for p in local.iterdir())


def test_listing_types_of_entries_this_run_knows(differential):
    """readdir's d_type of a symlink, fifo, socket, directory and file made in the run."""
    differential(
        [["mkdir", "d"], ["put", "f", "x"], ["symlink", "f", "l"], ["mkfifo", "p"], ["mknod", "s", 0o140644],
         ["symlink", "d", "ld"], ["dtypes"], ["rename", "l", "l2"], ["rename", "p", "p2"], ["rename", "s", "s2"],
         ["dtypes"], ["readlink", "l2"], ["cat", "l2"]],
    )


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "no-fast-path"])
def test_a_relative_path_into_a_root_from_above_it(objmount, s3, bucket, tmp_path, fast_path):
    """From '/', "objmount/s3/B/f", "./objmount/..." and "in/f" from the directory above a
    mount target lead into a root: the first name counts, not the first component."""
    s3.put_object(Bucket=bucket, Key="f", Body=b"in the bucket\n")
    script = (f"cd / && cat objmount/s3/{bucket}/f ./objmount/s3/{bucket}/f .//objmount/s3/{bucket}/f && "
              f"cd {tmp_path} && cat ./in/f in/f")
    # (the target written with a trailing '/': the mount table's normalized form counts)
    run = objmount(["sh", "-c", script], "-m", f"{tmp_path}/in/=s3://{bucket}", *(() if fast_path else ("--no-fast-path",)))
    assert run.returncode == 0, run.stderr
    assert run.text == "in the bucket\n" * 5


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory's mode lasts for the run only")
def test_a_directory_renamed_onto_an_empty_one_keeps_its_marker(differential, s3, bucket):
    """rename(x, y) over an empty directory y: x's marker becomes y's, and stays (the
    replaced directory's marker was deleted after the move, leaving an empty directory
    gone and a full one without its mode)."""
    steps = [["stat", "y", False], ["listdir", "y"], ["stat", "b", False], ["listdir", "b"], ["listdir"]]
    differential(
        [["mkdir", "x"], ["mkdir", "y"], ["rename", "x", "y"], ["mkdir", "a", 0o700], ["put", "a/f", "data"],
         ["mkdir", "b"], ["rename", "a", "b"], *steps],
        steps,   # a new run: what the bucket kept
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert {"y/", "b/", "b/f"} <= keys


def test_a_renamed_file_or_directory_keeps_its_inode_number(differential):
    """A rename moves the name, not the file: st_ino follows it (find, tar and rsync pair
    files by it; pjdfstest checks it after every rename), and a new file at the old name is
    another file; the names of a hard-linked file share it. Within the run (numbers are not
    stored)."""
    differential(
        [["put", "f", "x"], ["inode", "f", "f"], ["open", "f", "RDONLY"], ["rename", "f", "g"],
         ["inode_is", "g", "f"], ["inode_is", "a", "f"], ["put", "f", "new"], ["inode_is", "f", "f"],
         ["put", "h", "y"], ["rename", "g", "h"], ["inode_is", "h", "f"],
         ["mkdir", "d"], ["put", "d/in", "z"], ["symlink", "h", "d/l"], ["inode", "d", "d"], ["inode", "d/in", "in"],
         ["inode", "d/l", "l"], ["mkdir", "e"], ["rename", "d", "e"], ["inode_is", "e", "d"],
         ["inode_is", "e/in", "in"], ["inode_is", "e/l", "l"], ["mkdir", "d"], ["inode_is", "d", "d"],
         ["rename", "e", "d"], ["inode_is", "d", "d"], ["inode_is", "d/in", "in"], ["listdir", "d"],
         # hard links: one number for all names; a name unlinked, then made again, is another file
         ["put", "k", "k"], ["inode", "k", "k"], ["link", "k", "k2"], ["inode_is", "k2", "k"],
         ["rename", "k", "k3"], ["inode_is", "k3", "k"], ["unlink", "k2"], ["inode_is", "k3", "k"],
         ["put", "k2", "other"], ["inode_is", "k2", "k"], ["put", "k", "other"], ["inode_is", "k", "k"]],
    )


def test_dotdot_that_climbs_out_of_a_root_from_below_it_is_walked(differential):
    """An absolute path whose '..' steps back from a name below a root (`/v/l/../../f`)
    lexically leaves the root, but where it leads depends on that name (a symlink, a
    file, missing): the kernel walks it. It was classified local by its letters and the
    kernel answered ENOENT (no /v here)."""
    differential(
        [["mkdir", "d"], ["mkdir", "d/sub"], ["symlink", "d/sub", "l"], ["put", "f", "x"],
         ["cat", "l/../../f"], ["stat", "l/../../f"], ["open", "l/../../g", "WRONLY|CREAT"],
         ["stat", "g"], ["stat", "d/nope/../../f"], ["stat", "f/../../f"], ["listdir"]],
    )
