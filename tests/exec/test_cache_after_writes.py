"""What a run fetched or wrote stays in the cache once nobody writes the file: a writer's
private copy becomes the clean copy of the version it holds at its last close, whether
the close uploaded it (the close handler uploads while the writer still counts) or it was
left unchanged (sqlite3 opens its database read-write to read it). Until then this run's
readers and writers share one file, as on a local filesystem."""

from __future__ import annotations

import os
import sys

DATA = "0123456789" * 100


def test_a_reader_sees_each_later_writer_as_on_one_inode(differential):
    """A descriptor open for reading and two writers after it, each in a process of its
    own: the reader sees both changes at once. (The first writer's item used to stay
    private after its close: the second, a truncation, then went to a new file the
    reader never saw.)"""
    here = 'cd "$(dirname "$0")" && '
    differential(
        [["put", "w.sh", f"#!/bin/sh\n{here}printf AB | dd of=f bs=1 seek=2 conv=notrunc status=none\n", 0o755],
         ["put", "t.sh", f"#!/bin/sh\n{here}: > f\n", 0o755],
         ["put", "f", DATA], ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 0], ["pread", "r", 8, 0],
         ["run", "w.sh"], ["pread", "r", 8, 0], ["run", "t.sh"], ["pread", "r", 8, 0], ["fstat", "r"],
         ["close", "r"]],
    )


def test_a_file_opened_for_writing_and_left_unchanged_stays_cached(objmount, s3, bucket):
    """sqlite3 opens its database read-write to read it: what it fetched must serve the
    next open, not be thrown away with a private copy."""
    data = os.urandom(3 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="db", Body=data)
    path = f"/objmount/s3/{bucket}/db"
    first = objmount([sys.executable, "-c",
                      "import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); n=0\n"
                      "while (b := os.read(fd, 1 << 16)): n += len(b)\n"
                      "print(n)", path])
    assert first.returncode == 0, first.stderr
    assert first.text.strip() == str(len(data))
    assert first.requests("PutObject") == 0
    second = objmount(["cat", path])
    assert second.stdout == data
    assert second.bytes_received == 0
    assert second.requests("GetObject") == 1   # the open's revalidation: a 304


def test_a_file_written_and_closed_is_read_back_from_the_cache(objmount, s3, bucket):
    """The close's upload happens while the writer still counts (the close handler
    flushes first): the item it made must still become that version's clean item when
    the count drops, or the next open fetches the bytes just written."""
    data = os.urandom(200_000)
    path = f"/objmount/s3/{bucket}/w"
    run = objmount(f"cp /dev/stdin {path} && cat {path}", input=data)   # cp closes what it wrote
    assert run.returncode == 0, run.stderr
    assert run.stdout == data
    assert run.bytes_received == 0, run.stats.get("vfs")
    again = objmount(["cat", path])
    assert again.stdout == data
    assert again.bytes_received == 0
