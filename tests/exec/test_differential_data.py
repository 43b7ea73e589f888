"""Data you can trust: the same probe on a local directory and under objmount, every answer
compared (see the `differential` fixture and tests/probe/probe.py)."""

from __future__ import annotations

import shutil

import pytest

BIG = {"rep": ["0123456789abcdef", 4096]}   # 64 KiB


def test_shrinking_truncate_keeps_the_new_size_and_bytes(differential):
    differential(
        [["put", "f", BIG], ["truncate", "f", 1000], ["stat", "f"], ["cat", "f"],
         ["open", "f", "RDWR"], ["ftruncate", "a", 10], ["fstat", "a"], ["close", "a"], ["cat", "f"]],
        [["stat", "f"], ["cat", "f"]],
    )


def test_truncate_then_grow_reads_zeros_past_the_old_end(differential):
    differential(
        [["put", "f", BIG], ["truncate", "f", 100], ["truncate", "f", 300], ["cat", "f"]],
        [["cat", "f"], ["stat", "f"]],
    )


def test_a_file_unlinked_while_open_stays_deleted_after_writes_through_its_descriptor(differential):
    differential(
        [["put", "f", "old"], ["open", "f", "RDWR"], ["unlink", "f"], ["write", "a", "new data"],
         ["fstat", "a"], ["close", "a"], ["exists", "f"], ["listdir"]],
        [["exists", "f"], ["listdir"]],
    )


def test_a_file_renamed_away_while_open_is_written_at_its_new_name_only(differential):
    differential(
        [["put", "f", "old"], ["open", "f", "RDWR|APPEND"], ["rename", "f", "g"], ["write", "a", "+more"],
         ["close", "a"], ["listdir"], ["cat", "g"]],
        [["listdir"], ["cat", "g"]],
    )


def test_a_created_unwritten_file_exists_when_close_returns(differential, s3, bucket):
    def in_bucket_now():
        head = s3.head_object(Bucket=bucket, Key="new")
        assert head["ContentLength"] == 0 and int(head["Metadata"]["mode"]) & 0o777 == 0o640

    differential(
        [["open", "new", "RDONLY|CREAT|EXCL", 0o640], ["close", "a"], ["stat", "new"]],
        in_bucket_now,
        [["stat", "new"], ["cat", "new"]],
    )


@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_mmap_writes_survive_close_and_reopen(differential, mount):
    differential(
        [["put", "f", BIG], ["open", "f", "RDWR"], ["mmap_write", "a", 100, "MAPPED"], ["close", "a"],
         ["open", "f", "RDWR"], ["mmap_write", "a", 5000, "AGAIN"], ["pread", "a", 6, 100], ["close", "a"],
         ["cat", "f"]],
        [["cat", "f"]],
        mount=mount,
    )


@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_truncate_across_close_and_reopen(differential, mount):
    differential(
        [["put", "f", BIG], ["open", "f", "RDWR"], ["ftruncate", "a", 5], ["close", "a"],
         ["open", "f", "RDWR"], ["write", "a", "xy"], ["ftruncate", "a", 3], ["close", "a"], ["cat", "f"],
         ["open", "f", "RDONLY"], ["read", "a", 100], ["close", "a"]],
        [["cat", "f"], ["stat", "f"]],
        mount=mount,
    )


@pytest.mark.parametrize("change", [
    ["write_through", "b"],
    ["truncate", "b", 2],
    ["chmod", "b", 0o600],
])
def test_hard_links_share_bytes_and_attributes(differential, change):
    if change[0] == "write_through":
        change = [["open", "b", "WRONLY|APPEND"], ["write", "a", "!!"], ["close", "a"]]
    else:
        change = [change]
    differential(
        [["put", "a", "shared"], ["link", "a", "b"], ["stat", "a", False], *change,
         ["stat", "a", False], ["stat", "b", False], ["cat", "a"], ["cat", "b"]],
        [["stat", "a", False], ["cat", "a"], ["cat", "b"], ["unlink", "b"], ["stat", "a", False], ["cat", "a"]],
    )


FOUR_MIB = {"rep": ["0123456789abcdef", 262144]}


TWENTY_MIB = {"rep": ["0123456789abcdef", 1310720]}


def test_a_reader_fetches_the_version_our_own_upload_made(differential, cache_dir):
    """A descriptor opened before another one's fsync reads ranges not fetched yet: they
    must come from the version the upload made (the cache item was re-keyed to it), not
    fail as 'object changed while reading' (ESTALE). 20 MiB: a multipart upload whose
    untouched parts are copied server-side, so they are not local."""
    differential(
        [["put", "f", TWENTY_MIB]],
        lambda: shutil.rmtree(cache_dir),   # nothing of f local any more
        [["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 5, 0],
         ["open", "f", "RDWR", 0o644, "w"], ["pwrite", "w", "XYZ", 0], ["fsync", "w"],
         ["pread", "r", 5, 15_000_000], ["pread", "r", 5, 0], ["pwrite", "w", "Q", 17_000_000], ["close", "w"],
         ["pread", "r", 4, 16_999_999], ["mmap_read", "r", 8, 19_000_000], ["close", "r"], ["stat", "f", False]],
        [["cat", "f"]],
    )


@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_a_reader_keeps_reading_after_our_own_attribute_change(differential, cache_dir, mount):
    """utimes/chmod re-write the object (file://: its mtime is in the ETag): an open
    descriptor's later fetches must ask for that version."""
    differential(
        [["put", "f", FOUR_MIB]],
        lambda: shutil.rmtree(cache_dir),
        [["open", "f", "RDONLY"], ["pread", "a", 5, 0], ["utime", "f", 10**18, 10**18], ["chmod", "f", 0o600],
         ["pread", "a", 5, 3_000_000], ["mmap_read", "a", 8, 4_000_000], ["close", "a"], ["stat", "f", False]],
        [["stat", "f", False], ["cat", "f"]],
        mount=mount,
    )


@pytest.mark.parametrize("mount", ["bucket", "file"])
def test_shrinking_an_object_not_fetched_yet_keeps_its_head(differential, cache_dir, mount):
    differential(
        [["put", "f", FOUR_MIB]],
        lambda: shutil.rmtree(cache_dir),
        [["open", "f", "RDWR"], ["pread", "a", 5, 100], ["ftruncate", "a", 3_000_001], ["close", "a"],
         ["stat", "f", False], ["cat", "f"], ["truncate", "f", 17], ["cat", "f"]],
        [["stat", "f", False], ["cat", "f"]],
        mount=mount,
    )


def test_a_file_replaced_by_rename_while_open_stays_gone(differential, s3, bucket):
    def only_g_and_its_bytes():
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        assert keys == ["f"]
        assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"replacement"

    differential(
        [["put", "f", "old"], ["put", "g", "replacement"], ["open", "f", "RDWR"], ["rename", "g", "f"],
         ["write", "a", "written after"], ["fstat", "a", False], ["pread", "a", 20, 0], ["close", "a"],
         ["cat", "f"], ["listdir"]],
        only_g_and_its_bytes,
        [["cat", "f"], ["listdir"]],
    )


def test_an_unlinked_open_file_is_still_readable(differential, cache_dir):
    differential(
        [["put", "f", FOUR_MIB]],
        lambda: shutil.rmtree(cache_dir),
        [["open", "f", "RDONLY"], ["read", "a", 3], ["unlink", "f"], ["pread", "a", 6, 4_000_000],
         ["fstat", "a", False], ["close", "a"], ["exists", "f"]],
    )


def test_a_created_file_without_write_access_is_in_the_bucket_at_close(differential, s3, bucket):
    def in_bucket_now():
        assert s3.head_object(Bucket=bucket, Key="c")["ContentLength"] == 0

    differential(
        [["open", "c", "RDONLY|CREAT", 0o600], ["fstat", "a", False], ["close", "a"]],
        in_bucket_now,
        [["stat", "c", False]],
    )


# --- hard links ------------------------------------------------------------------------
def _keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def _body(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_hard_links_fstat_and_chown_through_either_name(differential):
    differential(
        [["put", "a", "shared"], ["link", "a", "b"], ["open", "a", "RDWR", 0o644, "x"],
         ["open", "b", "RDWR", 0o644, "y"], ["pwrite", "y", "SH", 0], ["fstat", "x", False],
         ["pread", "x", 10, 0], ["ftruncate", "x", 4], ["fstat", "y", False], ["close", "x"], ["close", "y"],
         ["chown", "b", 0, 1234], ["stat", "a", False], ["cat", "b"]],
        [["stat", "a", False], ["stat", "b", False], ["cat", "a"], ["cat", "b"]],
    )


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory keeps no object of its own")
def test_hard_links_survive_renames_without_leaving_old_names(differential, s3, bucket):
    def in_bucket():
        assert _keys(s3, bucket) == ["c", "d/", "d/e"]
        assert _body(s3, bucket, "c") == _body(s3, bucket, "d/e") == b"one+two"

    differential(
        [["put", "a", "one"], ["link", "a", "b"], ["mkdir", "d"], ["rename", "a", "c"], ["rename", "b", "d/e"],
         ["open", "c", "WRONLY|APPEND"], ["write", "a", "+two"], ["close", "a"],
         ["stat", "d/e", False], ["cat", "d/e"], ["listdir"]],
        in_bucket,
        [["stat", "c", False], ["stat", "d/e", False], ["cat", "d/e"], ["listdir"], ["listdir", "d"]],
    )


def test_hard_links_across_runs_and_unlink_of_one_name(differential, s3, bucket):
    def each_name_a_whole_object():
        for key in ("a", "b", "c"):
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["Metadata"]["objmount-links"] == "a,b,c"
            assert _body(s3, bucket, key) == b"data"

    def two_names_left():
        assert _keys(s3, bucket) == ["a", "c"]
        assert s3.head_object(Bucket=bucket, Key="c")["Metadata"]["objmount-links"] == "a,c"

    differential(
        [["put", "a", "data"], ["link", "a", "b"], ["link", "b", "c"], ["stat", "c", False]],
        each_name_a_whole_object,
        [["stat", "b", False], ["unlink", "b"], ["stat", "a", False]],
        two_names_left,
        [["stat", "c", False], ["open", "c", "WRONLY|TRUNC"], ["write", "a", "new"], ["close", "a"],
         ["cat", "a"], ["unlink", "a"], ["stat", "c", False]],
        [["stat", "c", False], ["cat", "c"], ["listdir"]],
    )


def test_renaming_one_name_onto_another_of_the_same_file_does_nothing(differential):
    differential(
        [["put", "a", "x"], ["link", "a", "b"], ["rename", "a", "b"], ["listdir"], ["stat", "b", False]],
        [["listdir"], ["stat", "a", False]],
    )


def test_a_copy_made_by_another_tool_is_not_a_link(objmount, s3, bucket):
    """The group lists its members: an object copied with its metadata under another name
    by another tool does not count itself in."""
    run = objmount(["sh", "-c", "echo hi > /m/a && ln /m/a /m/b"], "-m", f"/m=s3://{bucket}")
    assert run.returncode == 0, run.stderr
    s3.copy_object(Bucket=bucket, Key="z", CopySource={"Bucket": bucket, "Key": "a"})
    run = objmount(["stat", "-c", "%n %h", "/m/a", "/m/z"], "-m", f"/m=s3://{bucket}")
    assert run.text.split("\n")[:2] == ["/m/a 2", "/m/z 1"], run.stderr


@pytest.mark.not_rclone("counts header names in the 2 KiB of metadata: ~1.7 KiB for values")
def test_too_many_links_for_the_metadata_is_emlink(objmount, s3, bucket):
    name = "n" * 200
    run = objmount(["sh", "-c", f"echo x > /m/a; for i in 1 2 3 4 5 6 7 8 9 10 11; do ln /m/a /m/{name}$i || exit $i; done"],
                   "-m", f"/m=s3://{bucket}")
    assert run.returncode == 9 and "Too many links" in run.stderr, (run.returncode, run.stderr)
    assert len(s3.head_object(Bucket=bucket, Key="a")["Metadata"]["objmount-links"]) <= 1800


def test_a_reader_of_one_name_sees_a_write_through_another(differential, cache_dir):
    differential(
        [["put", "a", FOUR_MIB], ["link", "a", "b"]],
        lambda: shutil.rmtree(cache_dir),
        [["open", "b", "RDONLY", 0o644, "r"], ["pread", "r", 4, 0], ["open", "a", "RDWR", 0o644, "w"],
         ["pwrite", "w", "NEW", 0], ["ftruncate", "w", 3_000_000], ["close", "w"], ["fstat", "r", False],
         ["pread", "r", 4, 0], ["pread", "r", 4, 2_999_998], ["close", "r"], ["cat", "b"]],
        [["cat", "b"], ["stat", "b", False]],
    )


def test_hard_links_on_a_file_store_within_a_run(differential):
    differential(
        [["put", "a", "shared"], ["link", "a", "b"], ["open", "b", "WRONLY|APPEND"], ["write", "a", "!!"],
         ["close", "a"], ["chmod", "a", 0o600], ["truncate", "a", 8], ["stat", "b", False], ["cat", "b"],
         ["unlink", "a"], ["stat", "b", False], ["cat", "b"]],
        [["cat", "b"], ["listdir"]],
        mount="file",
    )


def test_unlinking_one_name_of_a_file_open_through_both_keeps_the_writes_for_the_other(differential, s3, bucket):
    def b_alone():
        assert _keys(s3, bucket) == ["b"]
        assert "objmount-links" not in s3.head_object(Bucket=bucket, Key="b")["Metadata"]

    differential(
        [["put", "a", "0123456789"], ["link", "a", "b"], ["open", "a", "RDWR", 0o644, "x"],
         ["open", "b", "RDWR", 0o644, "y"], ["unlink", "a"], ["pwrite", "x", "via a", 0], ["fstat", "x", False],
         ["close", "x"], ["pwrite", "y", "+b", 8], ["close", "y"], ["cat", "b"], ["listdir"]],
        b_alone,
        [["cat", "b"], ["stat", "b", False], ["listdir"]],
    )


def test_shrinking_with_real_programs_and_any_descriptor(objmount, s3, bucket):
    for key in ("f", "g", "h"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 5000)
    script = ("truncate -s 1000 /m/f && "
              "python3 -c 'import os; os.ftruncate(0, 7)' 0<>/m/g && "
              "python3 -c 'import os; fd = os.open(\"/m/h\", os.O_RDWR); os.ftruncate(os.dup(fd), 3); os.close(fd)'")
    run = objmount(["sh", "-c", script], "-m", f"/m=s3://{bucket}")
    assert run.returncode == 0, run.stderr
    assert [len(_body(s3, bucket, k)) for k in ("f", "g", "h")] == [1000, 7, 3]


def test_a_hard_linked_file_rewritten_with_write_behind_reaches_every_name(differential, s3, bucket):
    def both_whole():
        for key in ("a", "b"):
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["ContentLength"] == 20 * 2**20 and head["Metadata"]["objmount-links"] == "a,b"

    differential(
        [["put", "a", "small"], ["link", "a", "b"], ["open", "b", "WRONLY|TRUNC"],
         *[["write", "a", {"rep": ["0123456789abcdef", 65536]}] for _ in range(20)], ["close", "a"],
         ["stat", "a", False]],
        both_whole,
        [["stat", "a", False], ["cat", "a"], ["cat", "b"]],
    )


@pytest.mark.not_rclone("no dir/ markers there (--no-dir-markers): a directory keeps no object of its own")
def test_renaming_a_directory_with_hard_linked_files_keeps_the_groups(differential, s3, bucket):
    def lists():
        assert _keys(s3, bucket) == ["e/", "e/a", "e/b", "top"]
        for key in ("e/a", "e/b", "top"):
            assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["objmount-links"] == "e/a,e/b,top"

    differential(
        [["mkdir", "d"], ["put", "d/a", "x"], ["link", "d/a", "d/b"], ["link", "d/a", "top"], ["rename", "d", "e"],
         ["stat", "top", False], ["open", "top", "WRONLY|APPEND"], ["write", "a", "y"], ["close", "a"],
         ["cat", "e/b"]],
        lists,
        [["stat", "e/a", False], ["cat", "e/a"], ["cat", "e/b"]],
    )


def test_names_sharing_an_item_fetch_the_version_it_holds(differential, cache_dir):
    """b opened while a is written shares a's cache item: its fetches ask a's key for
    a's version (a multipart object's copy under b has an ETag of its own)."""
    differential(
        [["put", "a", TWENTY_MIB], ["link", "a", "b"]],
        lambda: shutil.rmtree(cache_dir),
        [["open", "a", "RDWR", 0o644, "w"], ["pwrite", "w", "W", 0], ["open", "b", "RDONLY", 0o644, "r"],
         ["pread", "r", 4, 15_000_000], ["pread", "r", 2, 0], ["close", "w"], ["pread", "r", 4, 18_000_000],
         ["close", "r"], ["stat", "b", False]],
        [["stat", "a", False], ["cat", "b"]],
    )


def test_fstat_of_a_reader_shows_attribute_changes_through_any_name(differential):
    differential(
        [["put", "a", "data"], ["link", "a", "b"], ["open", "b", "RDONLY", 0o644, "r"], ["open", "a", "RDONLY", 0o644, "s"],
         ["chmod", "a", 0o600], ["fstat", "r", False], ["chown", "b", 0, 4321], ["fstat", "s", False],
         ["close", "r"], ["close", "s"]],
        [["stat", "a", False], ["stat", "b", False]],
    )


def test_a_name_deleted_by_another_tool_leaves_the_group_at_the_next_write(objmount, s3, bucket):
    run = objmount(["sh", "-c", "echo one > /m/a && ln /m/a /m/b && ln /m/a /m/c"], "-m", f"/m=s3://{bucket}")
    assert run.returncode == 0, run.stderr
    s3.delete_object(Bucket=bucket, Key="b")
    run = objmount(["sh", "-c", "echo two >> /m/a && stat -c %h /m/c"], "-m", f"/m=s3://{bucket}")
    assert run.returncode == 0 and run.text == "2\n", run.stderr
    assert _keys(s3, bucket) == ["a", "c"]
    assert _body(s3, bucket, "c") == b"one\ntwo\n"
    assert s3.head_object(Bucket=bucket, Key="c")["Metadata"]["objmount-links"] == "a,c"


def test_a_new_file_with_the_bytes_of_an_unlinked_open_one_is_its_own(differential):
    differential(
        [["put", "f", "same"], ["open", "f", "RDONLY", 0o644, "r"], ["unlink", "f"], ["put", "f", "same"],
         ["open", "f", "RDWR", 0o644, "w"], ["pwrite", "w", "S", 0], ["close", "w"], ["pread", "r", 9, 0],
         ["fstat", "r", False], ["close", "r"], ["cat", "f"]],
        [["cat", "f"]],
    )


def test_appending_after_fsync(differential):
    """fsync re-files the cache file under the version it uploaded: later appends (which
    ask the cache file's size) must find it."""
    differential(
        [["open", "f", "WRONLY|APPEND|CREAT"], ["write", "a", "one"], ["fsync", "a"], ["write", "a", "two"],
         ["fsync", "a"], ["write", "a", "3"], ["close", "a"], ["cat", "f"],
         ["open", "f", "RDWR"], ["pwrite", "a", "X", 0], ["fsync", "a"], ["fallocate", "a", 0, 20], ["close", "a"]],
        [["cat", "f"], ["stat", "f", False]],
    )


# Descriptors, names and uploads mixed: each sequence, then a fresh run's view (a stat
# first: a listing alone carries no modes or link counts).
DATA_PATHS = {
    "fsync_truncate_extend": [["open", "f", "RDWR|CREAT"], ["write", "a", "hello world"], ["fsync", "a"],
                              ["ftruncate", "a", 4], ["fsync", "a"], ["pwrite", "a", "Z", 10], ["fstat", "a", False],
                              ["close", "a"], ["cat", "f"]],
    "two_writers": [["put", "f", "0123456789"], ["open", "f", "RDWR", 0o644, "x"], ["open", "f", "RDWR", 0o644, "y"],
                    ["pwrite", "x", "A", 0], ["close", "x"], ["pwrite", "y", "B", 1], ["pread", "y", 3, 0],
                    ["close", "y"], ["cat", "f"]],
    "trunc_while_reader": [["put", "f", "0123456789"], ["open", "f", "RDONLY", 0o644, "r"],
                           ["open", "f", "WRONLY|TRUNC", 0o644, "w"], ["write", "w", "new"], ["close", "w"],
                           ["pread", "r", 10, 0], ["fstat", "r", False], ["close", "r"], ["cat", "f"]],
    "rename_then_fsync": [["open", "f", "RDWR|CREAT"], ["write", "a", "abc"], ["rename", "f", "g"],
                          ["write", "a", "def"], ["fsync", "a"], ["write", "a", "ghi"], ["close", "a"],
                          ["cat", "g"], ["listdir"]],
    "dup_close": [["open", "f", "RDWR|CREAT"], ["dup", "a", "b"], ["write", "a", "x"], ["close", "a"],
                  ["write", "b", "y"], ["close", "b"], ["cat", "f"]],
    "mmap_after_fsync": [["put", "f", {"rep": ["0123456789abcdef", 4096]}], ["open", "f", "RDWR"],
                         ["pwrite", "a", "W", 0], ["fsync", "a"], ["mmap_write", "a", 60000, "M"], ["close", "a"],
                         ["cat", "f"]],
    "truncate_path_while_open": [["open", "f", "RDWR|CREAT"], ["write", "a", "0123456789"], ["truncate", "f", 3],
                                 ["fstat", "a", False], ["write", "a", "Z"], ["close", "a"], ["cat", "f"]],
    "link_then_old_fd": [["open", "f", "RDWR|CREAT"], ["write", "a", "abc"], ["link", "f", "g"],
                         ["write", "a", "def"], ["close", "a"], ["cat", "g"], ["stat", "g", False]],
    "unlink_then_recreate_while_open": [["open", "f", "RDWR|CREAT", 0o644, "a"], ["write", "a", "first"],
                                        ["unlink", "f"], ["open", "f", "RDWR|CREAT", 0o644, "b"], ["write", "b", "second"],
                                        ["write", "a", "!"], ["close", "a"], ["close", "b"], ["cat", "f"]],
    "rename_over_open_then_write_new": [["put", "f", "old"], ["put", "g", "new"], ["open", "f", "RDWR", 0o644, "a"],
                                        ["open", "g", "RDWR", 0o644, "b"], ["rename", "g", "f"], ["write", "b", "N"],
                                        ["write", "a", "O"], ["close", "a"], ["close", "b"], ["cat", "f"], ["listdir"]],
    "excl_create_rdonly_then_write_other": [["open", "c", "RDONLY|CREAT|EXCL", 0o600, "r"],
                                            ["open", "c", "WRONLY", 0o600, "w"], ["write", "w", "data"],
                                            ["close", "r"], ["close", "w"], ["cat", "c"]],
}



@pytest.mark.parametrize("name", sorted(DATA_PATHS))
def test_data_paths(differential, name):
    differential(DATA_PATHS[name], [["listdir"], ["stat", "c" if "excl" in name else "f", False], ["tree"]])


HARD_LINK_PATHS = {
    "fchmod_linked": [["put", "f", "x"], ["link", "f", "g"], ["open", "g", "RDWR"], ["fchmod", "a", 0o640],
                      ["fstat", "a", False], ["close", "a"], ["stat", "f", False]],
    "trunc_create_linked": [["put", "f", "long content"], ["link", "f", "g"], ["put", "g", "short"],
                            ["cat", "f"], ["stat", "f", False]],
    "rename_linked_over_plain": [["put", "f", "linked"], ["link", "f", "g"], ["put", "h", "plain"],
                                 ["rename", "g", "h"], ["stat", "f", False], ["stat", "h", False], ["listdir"]],
    "unlink_all": [["put", "f", "x"], ["link", "f", "g"], ["unlink", "f"], ["unlink", "g"], ["listdir"]],
    "link_unlink_orig": [["put", "f", "x"], ["link", "f", "g"], ["unlink", "f"], ["stat", "g", False]],
    "cfr_into_linked": [["put", "src", {"rep": ["abc", 1000]}], ["put", "f", "x"], ["link", "f", "g"],
                        ["copyfile", "src", "g"], ["cat", "f"], ["stat", "f", False]],
    "link_of_link_chain_rename": [["put", "f", "x"], ["link", "f", "g"], ["rename", "f", "h"], ["link", "h", "f"],
                                  ["stat", "g", False], ["unlink", "h"], ["stat", "f", False]],
    "sparse_extend_linked": [["put", "f", "x"], ["link", "f", "g"], ["truncate", "g", 100000], ["stat", "f", False],
                             ["open", "f", "RDONLY"], ["pread", "a", 4, 99990], ["close", "a"]],
}



@pytest.mark.parametrize("name", sorted(HARD_LINK_PATHS))
def test_hard_link_paths(differential, name):
    differential(HARD_LINK_PATHS[name], [["listdir"], *[["stat", n, False] for n in ("f", "g", "h")], ["tree"]])


def test_linking_a_listed_name_joins_the_group_it_already_has(differential):
    differential(
        [["put", "a", "x"], ["link", "a", "b"]],
        [["listdir"], ["link", "a", "c"], ["stat", "b", False], ["stat", "c", False]],
        [["stat", "b", False], ["unlink", "a"], ["stat", "c", False]],
    )


def test_renaming_listed_names_of_a_group_keeps_it(differential, s3, bucket):
    def lists():
        assert _keys(s3, bucket) == ["b", "c", "e"]
        for key in ("b", "e"):  # d (linked to e) replaced b (linked to a, now c)
            assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["objmount-links"] == "b,e"
        assert "objmount-links" not in s3.head_object(Bucket=bucket, Key="c")["Metadata"]

    differential(
        [["put", "a", "x"], ["link", "a", "b"], ["put", "d", "y"], ["link", "d", "e"]],
        [["listdir"], ["rename", "a", "c"], ["listdir"], ["rename", "d", "b"], ["stat", "c", False],
         ["stat", "e", False]],
        lists,
        [["stat", "b", False], ["stat", "e", False], ["cat", "b"], ["cat", "e"]],
    )


def test_a_size_past_the_largest_file_is_efbig_and_changes_nothing(differential):
    """truncate(path) past what the cache's filesystem holds (ext4: 16 TiB) says EFBIG, as
    the kernel does, and the file keeps its size and bytes (it was an internal error: EIO)."""
    huge = 999_999_999_999_999
    differential(
        [["put", "f", "data"], ["truncate", "f", huge], ["stat", "f", False], ["cat", "f"],
         ["open", "f", "RDWR"], ["ftruncate", "a", huge], ["fstat", "a", False], ["close", "a"], ["cat", "f"]],
        [["stat", "f", False], ["cat", "f"]],
    )
