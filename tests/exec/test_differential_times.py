"""Times exact and complete: the same probe on a local directory and under objmount (see
the `differential` fixture and tests/probe/probe.py). Times set far from now are compared
to the nanosecond; changes near now by how each of atime, mtime and ctime moved against a
snapshot taken just before (`snap`/`since`), and by how they order (`order`)."""

from __future__ import annotations

import subprocess

import pytest

from vfs.meta import parse_time

NS = 10**9
A = 1234567890 * NS + 123456789     # atime to set
M = 1300000000 * NS + 987654321     # mtime to set
TICK = ["sleep", 0.05]              # the kernel's coarse clock moves between two times


def _times(md: dict) -> tuple:
    return tuple(parse_time(md.get(k)) for k in ("atime", "mtime", "ctime"))


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory's attributes last for the run only")
@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_times_are_set_and_kept_to_the_nanosecond(differential, mount):
    differential(
        [["put", "f", "x"], ["utime", "f", A, M], ["stat", "f"], ["order", "f"],
         ["open", "f"], ["fstat", "a"], ["close", "a"],
         ["mkdir", "d"], ["utime", "d", M, A], ["stat", "d"],
         ["put", "old", "y"], ["utime", "old", -1 * NS - 500000000, 5], ["stat", "old"]],
        [["stat", "f"], ["stat", "d"], ["stat", "old"], ["order", "f"]],
        mount=mount,
    )


def test_a_directory_of_this_run_only_takes_the_times_it_is_given(differential):
    """--no-dir-markers (or a server that keeps no markers): a directory's attributes live
    in the run; times set into the past showed the mkdir's time."""
    differential(
        [["mkdir", "d"], ["utime", "d", M, A], ["stat", "d"], ["chmod", "d", 0o700], ["stat", "d"],
         ["utime", ".", A, M], ["stat", "."]],
        mount="prefix", options=("--no-dir-markers",))


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory keeps no object of its own")
def test_set_times_are_stored_as_s3fs_stores_them(differential, s3, bucket):
    def stored():
        f = s3.head_object(Bucket=bucket, Key="f")["Metadata"]
        assert (f["atime"], f["mtime"]) == ("1234567890.123456789", "1300000000.987654321")
        assert parse_time(f["ctime"]) > M      # the time of the utimensat: now
        d = s3.head_object(Bucket=bucket, Key="d/")["Metadata"]
        assert (d["atime"], d["mtime"]) == ("1300000000.987654321", "1234567890.123456789")
        old = s3.head_object(Bucket=bucket, Key="old")["Metadata"]
        assert (old["atime"], old["mtime"]) == ("-2.500000000", "0.000000005")   # tv_sec, then tv_nsec

    differential(
        [["put", "f", "x"], ["utime", "f", A, M], ["mkdir", "d"], ["utime", "d", M, A],
         ["put", "old", "y"], ["utime", "old", -1 * NS - 500000000, 5]],
        stored,
        [["stat", "f"], ["stat", "d"], ["stat", "old"]],
    )


def test_times_s3fs_wrote_are_read_exactly(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="s3fs", Body=b"x", Metadata={
        "mode": "33188", "atime": "1500000000.000000001", "mtime": "1600000000.999999999", "ctime": "1650000000"})
    run = objmount(f"stat -c '%.9X %.9Y %.9Z' /objmount/s3/{bucket}/s3fs")
    assert run.returncode == 0, run.stderr
    assert run.text.split() == ["1500000000.000000001", "1600000000.999999999", "1650000000.000000000"]


def test_statx_and_stat_agree_with_a_local_file(objmount, s3, bucket, tmp_path):
    """coreutils stat asks statx; the probe's os.stat asks newfstatat."""
    local = tmp_path / "f"
    local.write_bytes(b"x")
    script = "touch -d @1300000000.987654321 {p} && touch -a -d @1234567890.123456789 {p} && stat -c '%.9X %.9Y' {p}"
    native = subprocess.run(["sh", "-c", script.format(p=local)], capture_output=True, text=True)
    run = objmount(script.format(p=f"/objmount/s3/{bucket}/f"))
    assert run.returncode == 0, run.stderr
    assert run.text == native.stdout == "1234567890.123456789 1300000000.987654321\n"


@pytest.mark.parametrize("times", [["omit", M], [A, "omit"], ["now", M], [A, "now"], ["now", "now"]])
def test_utime_omit_and_now_change_only_what_they_name(differential, times):
    differential(
        [["put", "f", "x"], ["utime", "f", 2 * NS, 3 * NS], ["snap", "f", "s"], TICK,
         ["utimensat", "f", *times], ["since", "f", "s"], ["stat", "f"],
         ["open", "f", "RDWR"], ["snap", "f", "t"], TICK, ["utimensat", None, *times, True, "a"],
         ["since", "f", "t"], ["close", "a"]],
        [["stat", "f"]],
    )


def test_times_out_of_range_are_einval_once_the_path_is_found(differential):
    differential(
        [["put", "f", "x"], ["utimensat", "f", [1, 10**9], "omit"], ["utimensat", "missing", "omit", [1, -1]],
         ["utimensat", "missing/deeper", [1, 10**9], "now"], ["utimensat", "f", [5, 999999999], [-7, 0]],
         ["stat", "f"]],
    )


CHANGES = {
    "chmod": [["chmod", "f", 0o600]],
    "chown": [["chown", "f", -1, -1]],
    "utime": [["utime", "f", A, M]],
    "rename": [["rename", "f", "g"], ["rename", "g", "f"]],
    "link": [["link", "f", "g"]],
    "unlink-other-name": [["link", "f", "g"], ["sleep", 0.05], ["snap", "f", "s"], TICK, ["unlink", "g"]],
    "truncate": [["truncate", "f", 1]],
    "ftruncate": [["open", "f", "RDWR"], ["ftruncate", "a", 10], ["close", "a"]],
    "write": [["open", "f", "WRONLY|APPEND"], ["write", "a", "more"], ["close", "a"]],
    "setxattr": [["setxattr", "f", "user.k", "v"]],
}


@pytest.mark.parametrize("change", CHANGES)
def test_ctime_changes_with_the_file(differential, change):
    """chmod, chown, utimes, rename, link, truncate, write: ctime is the time of the change,
    mtime only for the data; a fresh run sees them in the same order."""
    differential(
        [["put", "f", "data"], ["utime", "f", 2 * NS, 3 * NS], ["snap", "f", "s"], TICK,
         *CHANGES[change], ["since", "f", "s"], ["order", "f"], ["stat", "f", False]],
        [["order", "f"]],
    )


def test_ctime_mtime_and_atime_reach_the_bucket(differential, s3, bucket):
    def stored():
        chmodded = _times(s3.head_object(Bucket=bucket, Key="chmodded")["Metadata"])
        assert chmodded[0] == 2 * NS and chmodded[1] == 3 * NS and chmodded[2] > 1_700_000_000 * NS
        written = _times(s3.head_object(Bucket=bucket, Key="written")["Metadata"])
        assert written[0] == 2 * NS and written[1] == written[2] > 1_700_000_000 * NS
        renamed = _times(s3.head_object(Bucket=bucket, Key="renamed")["Metadata"])
        assert renamed[:2] == (2 * NS, 3 * NS) and renamed[2] > 1_700_000_000 * NS
        linked = [_times(s3.head_object(Bucket=bucket, Key=k)["Metadata"]) for k in ("linked", "link2")]
        assert linked[0] == linked[1] and linked[0][:2] == (2 * NS, 3 * NS) and linked[0][2] > 1_700_000_000 * NS

    setup = [step for name in ("chmodded", "written", "torename", "linked")
             for step in (["put", name, "x"], ["utime", name, 2 * NS, 3 * NS])]
    differential(
        setup + [["chmod", "chmodded", 0o600], ["open", "written", "WRONLY|APPEND"], ["write", "a", "y"],
                 ["close", "a"], ["rename", "torename", "renamed"], ["link", "linked", "link2"]],
        stored,
        [["order", name] for name in ("chmodded", "written", "renamed", "linked", "link2")],
    )


DIR_CHANGES = {
    "create": [["put", "d/new", "x"]],
    "unlink": [["unlink", "d/x"]],
    "mkdir": [["mkdir", "d/sub"]],
    "rmdir": [["rmdir", "d/empty"]],
    "rename-within": [["rename", "d/x", "d/y"]],
    "rename-out": [["rename", "d/x", "e/x"]],
    "rename-in": [["rename", "e/z", "d/z"]],
    "rename-dir-out": [["rename", "d/empty", "e/moved"]],
    "link": [["link", "d/x", "d/l"]],
    "symlink": [["symlink", "x", "d/s"]],
}


@pytest.mark.parametrize("change", DIR_CHANGES)
def test_a_directory_changes_with_its_entries(differential, change):
    differential(
        [["mkdir", "d"], ["mkdir", "e"], ["mkdir", "d/empty"], ["put", "d/x", "x"], ["put", "e/z", "z"],
         ["utime", "d", 2 * NS, 3 * NS], ["utime", "e", 2 * NS, 3 * NS], ["snap", "d", "d"], ["snap", "e", "e"], TICK,
         *DIR_CHANGES[change], ["since", "d", "d"], ["since", "e", "e"], ["order", "d"]],
    )


def test_a_directory_changes_with_a_special_file_made_in_it(differential):
    differential(
        [["mkdir", "d"], ["utime", "d", 2 * NS, 3 * NS], ["snap", "d", "d"], TICK,
         ["mkfifo", "d/fifo"], ["since", "d", "d"]],
    )


@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_utimensat_nofollow_sets_the_times_of_the_link(differential, mount):
    differential(
        [["put", "f", "x"], ["utime", "f", 2 * NS, 3 * NS], ["symlink", "f", "l"],
         ["utime", "l", A, M, False], ["lstat", "l"], ["stat", "l"], ["stat", "f"], ["lstat", "l"]],
        # following the link in the first run moved its atime (relatime), which is not
        # stored (see README): the next run compares its mtime
        [["mtime", "l", False], ["stat", "l"], ["lstat", "l", False]],
        mount=mount,
    )


def test_a_symlinks_own_times_are_stored(differential, s3, bucket):
    def stored():
        md = s3.head_object(Bucket=bucket, Key="l")["Metadata"]
        assert (md["atime"], md["mtime"]) == ("1234567890.123456789", "1300000000.987654321")
        assert s3.head_object(Bucket=bucket, Key="f")["Metadata"]["mtime"] == "3"

    differential(
        [["put", "f", "x"], ["utime", "f", 2 * NS, 3 * NS], ["symlink", "f", "l"], ["utime", "l", A, M, False]],
        stored,
        [["lstat", "l"], ["stat", "f"]],
    )


def test_executing_a_program_or_a_script_is_a_read(differential):
    elf = open("/bin/true", "rb").read().hex()
    differential(
        [["put", "s", "#!/bin/sh\nexit 3\n", 0o755], ["utime", "s", 2 * NS, 3 * NS], ["snap", "s", "s"], TICK,
         ["run", "s"], ["since", "s", "s"],
         ["put", "elf", {"hex": elf}, 0o755], ["utime", "elf", 2 * NS, 3 * NS], ["snap", "elf", "e"], TICK,
         ["run", "elf"], ["since", "elf", "e"]],
    )


def test_reads_update_atime_as_relatime_does(differential):
    """atime moves at a read when it is not after mtime or ctime (relatime), and only
    then; a listing is a read of the directory."""
    differential(
        [["put", "f", "data"], ["mkdir", "d"], ["put", "d/x", "x"], TICK,
         ["snap", "f", "s"], ["cat", "f"], ["since", "f", "s"], TICK,
         ["snap", "f", "t"], ["cat", "f"], ["since", "f", "t"], ["order", "f"],
         ["open", "f"], ["snap", "f", "u"], ["fstat", "a"], ["close", "a"], ["since", "f", "u"],
         ["utime", "f", 2 * NS, 3 * NS], TICK, ["cat", "f"], ["since", "f", "t"], ["stat", "f"],
         ["snap", "d", "d"], ["listdir", "d"], ["since", "d", "d"], ["order", "d"]],
    )


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory keeps no object of its own")
@pytest.mark.parametrize("mount", ["bucket", "prefix", "file"])
def test_the_mount_root_changes_with_its_entries(differential, mount):
    differential(
        [["utime", ".", 2 * NS, 3 * NS], ["snap", ".", "r"], TICK, ["put", "new", "x"], ["since", ".", "r"],
         ["snap", ".", "s"], TICK, ["mkdir", "d"], ["unlink", "new"], ["since", ".", "s"], ["order", "."]],
        mount=mount,
    )


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory keeps no object of its own")
def test_fstat_of_an_open_directory_sees_its_entries_change(differential):
    differential(
        [["mkdir", "d"], ["utime", "d", 2 * NS, 3 * NS], ["open", "d", "RDONLY|DIRECTORY"], ["fstat", "a"],
         ["put", "d/x", "x"], ["fstat", "a"], ["snap", "d", "s"], TICK, ["unlink", "d/x"],
         ["since", "d", "s"], ["close", "a"]],
    )


@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_size_changes_to_the_same_size_change_the_times_too(differential, mount):
    """truncate/ftruncate to the current size, O_TRUNC of an empty file and fallocate
    inside the file change mtime and ctime, as on ext4; a write of nothing does not."""
    past = [["utime", "f", 2 * NS, 3 * NS], ["snap", "f", "s"], TICK]
    differential(
        [["put", "f", "abc"], *past, ["truncate", "f", 3], ["since", "f", "s"],
         *past, ["open", "f", "RDWR"], ["ftruncate", "a", 3], ["since", "f", "s"], ["close", "a"],
         *past, ["open", "f", "RDWR"], ["write", "a", ""], ["since", "f", "s"], ["close", "a"], ["since", "f", "s"],
         *past, ["open", "f", "RDWR"], ["fallocate", "a", 0, 2], ["since", "f", "s"], ["close", "a"],
         ["put", "e", ""], ["utime", "e", 2 * NS, 3 * NS], ["snap", "e", "s"], TICK,
         ["open", "e", "WRONLY|TRUNC"], ["close", "a"], ["since", "e", "s"]],
        [["stat", "f"], ["stat", "e"]],
        mount=mount,
    )


def test_rename_and_chmod_keep_the_content_type_and_other_tools_metadata(objmount, s3, bucket):
    """A rename stores the moved file's ctime with a metadata rewrite, which keeps what it
    does not know: another tool's keys and the Content-Type (as s3fs's rename does)."""
    s3.put_object(Bucket=bucket, Key="page.html", Body=b"<p>", ContentType="text/html",
                  Metadata={"mtime": "1600000000", "origin": "uploader"})
    before = parse_time(s3.head_object(Bucket=bucket, Key="page.html")["Metadata"]["mtime"])
    run = objmount(f"cd /objmount/s3/{bucket} && mv page.html moved.html && chmod 600 moved.html")
    assert run.returncode == 0, run.stderr
    head = s3.head_object(Bucket=bucket, Key="moved.html")
    md = head["Metadata"]
    assert head["ContentType"] == "text/html" and md["origin"] == "uploader"
    assert parse_time(md["mtime"]) == before and parse_time(md["ctime"]) > 1_700_000_000 * NS
    assert int(md["mode"]) & 0o777 == 0o600
