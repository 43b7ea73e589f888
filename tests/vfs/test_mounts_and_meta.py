"""Mount specs, path ownership, and the s3fs metadata convention."""

from __future__ import annotations

import os
import stat

import pytest

from vfs import Kind, MountTable
from vfs.meta import format_time, from_object, parse_time, to_metadata


def test_parse_accepts_s3_prefix_and_file_urls(tmp_path):
    table = MountTable.parse(["/data=s3://bucket/pre/fix/", f"/local=file://{tmp_path}"])
    assert table.locate("/data/a/b").key == "pre/fix/a/b"
    assert table.locate("/data").rel == ""
    assert table.locate("/local/x").store_url == f"file://{tmp_path}"


@pytest.mark.parametrize("spec", ["nodelimiter", "rel=s3://b", "/d=ftp://x", "/d=s3://", "/d=s3://Bad_Bucket!",
                                  "/=s3://bucket", "/objmount/x=s3://bucket", "/d=file:///no/such/dir", "/d=file://rel"])
def test_parse_rejects_malformed_specs_with_a_reason(spec):
    with pytest.raises(ValueError) as info:
        MountTable.parse([spec])
    assert spec.split("=")[0] in str(info.value) or "mount" in str(info.value)


def test_virtual_paths_are_the_namespace_and_the_targets_only():
    table = MountTable.parse(["/data/x=s3://bucket"])
    assert table.is_virtual("/objmount") and table.is_virtual("/objmount/s3/b/k")
    assert table.is_virtual("/data/x") and table.is_virtual("/data/x/y")
    assert not table.is_virtual("/data") and not table.is_virtual("/data/xy") and not table.is_virtual("/")
    assert table.locate("/objmount/s3/bkt/some/key").key == "some/key"
    assert table.locate("/objmount/s3") is None


def test_s3fs_metadata_is_read_and_written():
    meta = from_object("s", "k", 5, '"e"', 1000.0, {"mode": str(0o100750), "uid": "12", "gid": "34", "mtime": "1700000000"})
    assert (meta.kind, stat.S_IMODE(meta.mode), meta.uid, meta.gid, meta.mtime_ns) == (Kind.FILE, 0o750, 12, 34, 1700000000 * NS)
    assert to_metadata(meta.mode, 12, 34, 1700000000 * NS) == {
        "mode": str(0o100750), "uid": "12", "gid": "34", "mtime": "1700000000", "atime": "1700000000", "ctime": "1700000000"}


NS = 10**9


@pytest.mark.parametrize("text, ns", [
    ("1700000000", 1700000000 * NS),
    ("1700000000.000000001", 1700000000 * NS + 1),       # s3fs: "%ld.%09ld"
    ("1700000000.999999999", 1700000000 * NS + 999999999),
    ("1700000000.25", 1700000000 * NS + 250000000),       # rclone, older objmount: a decimal fraction
    ("1700000000.1234567891", 1700000000 * NS + 123456789),
    ("-2.500000000", -2 * NS + 500000000),                 # a timespec before 1970, as s3fs writes it
    ("0", 0),
    ("1.7e9", 1700000000 * NS),
])
def test_times_are_read_as_s3fs_writes_them(text, ns):
    assert parse_time(text) == ns


@pytest.mark.parametrize("ns, text", [(1700000000 * NS, "1700000000"), (1700000000 * NS + 1, "1700000000.000000001"),
                                      (-1 * NS - 500000000, "-2.500000000"), (0, "0")])
def test_times_are_written_as_s3fs_writes_them(ns, text):
    assert format_time(ns) == text and parse_time(text) == ns


def test_atime_and_ctime_have_keys_of_their_own():
    md = {"mtime": "1600000000.000000007", "atime": "1500000000.123456789", "ctime": "1650000000"}
    meta = from_object("s", "k", 1, None, 1700000000.0, md)
    assert (meta.atime_ns, meta.mtime_ns, meta.ctime_ns) == (1500000000 * NS + 123456789, 1600000000 * NS + 7,
                                                             1650000000 * NS)
    back = to_metadata(meta.mode, 0, 0, meta.mtime_ns, atime_ns=meta.atime_ns, ctime_ns=meta.ctime_ns)
    assert {k: back[k] for k in ("atime", "mtime", "ctime")} == md
    # none stored (another tool's object): LastModified, as s3fs reads it
    plain = from_object("s", "k", 1, None, 1700000000.5, {"mtime": "1600000000"})
    assert (plain.atime_ns, plain.ctime_ns) == (1700000000 * NS + 500000000,) * 2


def test_rclone_fractional_mtime_and_symlink_mode():
    meta = from_object("s", "k", 3, None, 0.0, {"mtime": "1700000000.25", "mode": str(0o120777)})
    assert meta.mtime_ns == 1700000000 * NS + 250000000 and meta.kind is Kind.SYMLINK


def test_objects_without_metadata_get_defaults():
    meta = from_object("s", "k", 7, None, 1234.5, {})
    assert meta.mode == stat.S_IFREG | 0o644 and meta.uid == os.getuid() and meta.mtime == 1234.5
    listed = from_object("s", "k", 7, None, 1234.5, None)
    assert not listed.exact
    marker = from_object("s", "d/", 0, None, 0.0, {}, "application/x-directory")
    assert marker.kind is Kind.DIR


def test_other_tools_metadata_and_content_type_are_carried_for_rewrites():
    from vfs.meta import special_metadata
    meta = from_object("s", "k", 1, None, 0.0, {"mode": "33188", "Origin": "x", "xattr": "%7B%7D"}, "text/html")
    assert meta.extra == (("origin", "x"),) and meta.content_type == "text/html"
    assert special_metadata(meta) == {"origin": "x", "xattr": "%7B%7D"}


@pytest.mark.parametrize("target", ["/data", "//data", "///data", "/data/", "/data/.", "/a/../data", "/./data//"])
def test_a_mount_point_reads_as_the_kernel_reads_it(target):
    """os.path.normpath keeps a leading '//' (POSIX leaves it to the system): the kernel,
    the path classifier and the C side all read it as '/'."""
    table = MountTable.parse([f"{target}=s3://bucket/p"])
    assert table.targets == ["/data"]
    assert table.is_virtual("/data/x") and table.locate("/data/x").key == "p/x"


@pytest.mark.parametrize("target", ["//", "/..", "/a/..", "//objmount", "/objmount/../objmount/s3/b"])
def test_a_mount_point_that_reads_as_the_root_or_the_namespace_is_refused(target):
    with pytest.raises(ValueError, match="cannot be / or inside /objmount"):
        MountTable.parse([f"{target}=s3://bucket"])
