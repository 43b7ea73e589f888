"""Reads of a virtual file whose bytes are all local go to the kernel without a stop
(objmount/direct_reads.py). The marks that let them go must come off before anything that
changes what a read sees or what it does to atime: compared with a local directory."""

from __future__ import annotations

import os
import sys

NS = 10**9
TICK = ["sleep", 0.05]   # the kernel's coarse clock moves between two times
DATA = "0123456789" * 100

def test_a_file_read_without_stops_still_sees_every_change_as_a_local_file_does(differential):
    """The probe (Python: os.pread is libc's pread, which the fast path sees) reads a
    small file until it is marked, then changes it through another descriptor, by path
    and by its attributes, and reads again after each change: bytes, sizes and how atime
    moved must be the local directory's."""
    # A change and the read after it are a tick apart: the kernel's times come from its
    # coarse clock, and a read in the change's own tick would find atime equal to it.
    read = ["pread", "r", 12, 0]
    differential(
        [["put", "f", DATA], TICK, ["open", "f", "RDONLY", 0o644, "r"], read, read, read,
         ["snap", "f", "s"], TICK, read, ["since", "f", "s"],          # relatime: no new atime
         ["open", "f", "RDWR", 0o644, "w"], ["pwrite", "w", "XYZ", 0], TICK, read, ["since", "f", "s"],
         ["snap", "f", "t"], TICK, read, read, ["since", "f", "t"],
         ["ftruncate", "w", 5], TICK, read, ["pread", "r", 100, 2], ["fstat", "r"],
         ["ftruncate", "w", 20], TICK, read, ["fstat", "r"],
         ["utime", "f", 2 * NS, 3 * NS], TICK, read, ["snap", "f", "u"], TICK, read, ["since", "f", "u"],
         ["snap", "f", "v"], TICK, ["chmod", "f", 0o600], TICK, read, ["since", "f", "v"],
         ["snap", "f", "w"], TICK, ["put", "g", "other"], ["rename", "g", "f"], TICK, read,
         ["since", "f", "w"], ["fxattrs", "r"], ["close", "w"], ["close", "r"], ["stat", "f"]],
        [["cat", "f"], ["stat", "f"]],
    )


def _stops(run, name: str) -> int:
    return run.stats.get("syscalls", {}).get(name, 0)


READER = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
data = [os.pread(fd, 4096, (i % 4) * 4096) for i in range(200)]
os.lseek(fd, 0, 0)
data += [os.read(fd, 4096) for _ in range(50)]
sys.stdout.write(str(sum(map(len, data))))
"""


def test_reads_of_a_file_whose_bytes_are_all_local_do_not_stop(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="f", Body=os.urandom(16384))
    run = objmount([sys.executable, "-c", READER, f"/objmount/s3/{bucket}/f"])
    assert run.returncode == 0, run.stderr
    assert run.text == str(200 * 4096 + 4 * 4096)
    # the first read of each call stops (it marks the file), the rest do not
    assert _stops(run, "pread64") <= 2 and _stops(run, "read") <= 2, run.stats.get("syscalls")


def test_without_the_fast_path_every_read_still_stops(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="f", Body=os.urandom(16384))
    run = objmount([sys.executable, "-c", READER, f"/objmount/s3/{bucket}/f"], "--no-fast-path")
    assert run.returncode == 0, run.stderr
    assert _stops(run, "pread64") == 200


def test_no_mark_is_left_on_the_cache_files(objmount, s3, bucket, cache_dir):
    s3.put_object(Bucket=bucket, Key="f", Body=os.urandom(16384))
    run = objmount([sys.executable, "-c", READER, f"/objmount/s3/{bucket}/f"])
    assert run.returncode == 0, run.stderr
    marked = []
    for top, _, names in os.walk(cache_dir):
        for name in names:
            path = os.path.join(top, name)
            try:
                if any(a.startswith("user.objmount") for a in os.listxattr(path)):
                    marked.append(path)
            except OSError:
                pass
    assert not marked
