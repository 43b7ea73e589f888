"""A listing cannot tell a symlink object from a file (no user metadata in ListObjectsV2):
following and readlink of a listed entry still see the link (lstat too: see
test_attributes.py)."""

from __future__ import annotations

import stat


def test_a_listed_symlink_is_followed_and_read_as_a_link(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"alpha\n")
    s3.put_object(Bucket=bucket, Key="link", Body=b"dir/a.txt", Metadata={"mode": str(stat.S_IFLNK | 0o777)})
    b = f"/objmount/s3/{bucket}"
    run = objmount(f"ls {b} >/dev/null && cat {b}/link && ls {b} >/dev/null && readlink {b}/link")
    assert run.returncode == 0, run.stderr
    assert run.text == "alpha\ndir/a.txt\n"


def test_opening_a_listed_file_asks_the_bucket_once(objmount, s3, bucket):
    """Following a listed entry asks the bucket what it is, with the GET of its first bytes;
    that answer is also the open's close-to-open revalidation and its read: one request."""
    for f in range(5):
        s3.put_object(Bucket=bucket, Key=f"d/f{f}.txt", Body=b"x")
    run = objmount(f"ls /objmount/s3/{bucket}/d >/dev/null && cat /objmount/s3/{bucket}/d/*")
    assert run.returncode == 0, run.stderr
    assert run.text == "xxxxx"
    assert run.requests("GetObject") == 5
    assert run.requests("HeadObject") == 1   # the directory d (no marker: its listing said so), no file
