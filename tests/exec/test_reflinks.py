"""Clones and dedupes (FICLONE, FICLONERANGE, FIDEDUPERANGE) naming a virtual descriptor
fail with EOPNOTSUPP, whatever filesystem holds the cache (found while running fsx on an
XFS cache).

On a cache filesystem with reflinks (XFS, btrfs) the kernel cloned the cache files
themselves: `cp` (coreutils 9 tries FICLONE first) of a virtual file to a local one on the
same filesystem copied the holes of what was not fetched yet (zeros), and a clone into a
virtual file was never recorded as written (never uploaded). The cache is put on such a
filesystem when OBJMOUNT_TEST_REFLINK_DIR names a directory on one; elsewhere the kernel
says EOPNOTSUPP itself and these tests only check that nothing else changed.
"""

from __future__ import annotations

import os
import shutil

import pytest

from exec_support import compile_c

MiB = 1 << 20
DATA = os.urandom(20 * MiB + 4321)

PROBE = r'''
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
/* clone_probe VIRTUAL LOCAL: each call's answer, as the program sees it */
int main(int argc, char **argv) {
    int v = open(argv[1], O_RDWR), l = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (v < 0 || l < 0) { perror("open"); return 2; }
    struct file_clone_range same = { .src_fd = v, .src_offset = 0, .src_length = 65536, .dest_offset = 8 << 20 };
    int r = ioctl(v, FICLONERANGE, &same);
    printf("FICLONERANGE within the virtual file: %d %s\n", r, r ? strerror(errno) : "");
    r = ioctl(l, FICLONE, v);
    printf("FICLONE virtual -> local: %d %s\n", r, r ? strerror(errno) : "");
    if (ftruncate(l, 1 << 20) || pwrite(l, "local", 5, 0) != 5) { perror("local"); return 2; }
    struct file_clone_range in = { .src_fd = l, .src_offset = 0, .src_length = 65536, .dest_offset = 0 };
    r = ioctl(v, FICLONERANGE, &in);
    printf("FICLONERANGE local -> virtual: %d %s\n", r, r ? strerror(errno) : "");
    struct file_clone_range out = { .src_fd = v, .src_offset = 0, .src_length = 65536, .dest_offset = 0 };
    r = ioctl(l, FICLONERANGE, &out);
    printf("FICLONERANGE virtual -> local: %d %s\n", r, r ? strerror(errno) : "");
    struct { struct file_dedupe_range r; struct file_dedupe_range_info i; } d = {
        .r = { .src_offset = 0, .src_length = 65536, .dest_count = 1 }, .i = { .dest_fd = v, .dest_offset = 0 } };
    r = ioctl(l, FIDEDUPERANGE, &d);
    printf("FIDEDUPERANGE local -> virtual: %d %s\n", r, r ? strerror(errno) : "");
    return close(v) || close(l);
}
'''


@pytest.fixture
def reflink_dir(tmp_path):
    """A directory for the cache and the local copies: on a filesystem with reflinks if
    OBJMOUNT_TEST_REFLINK_DIR names one, else the test's own."""
    base = os.environ.get("OBJMOUNT_TEST_REFLINK_DIR")
    if not base:
        yield tmp_path
        return
    where = os.path.join(base, f"reflinks-{os.getpid()}-{tmp_path.name}")
    os.makedirs(where)
    yield where
    shutil.rmtree(where, ignore_errors=True)


def test_cp_of_a_virtual_file_copies_its_bytes_not_its_holes(objmount, s3, bucket, reflink_dir):
    s3.put_object(Bucket=bucket, Key="big.bin", Body=DATA)
    cache, copy = os.path.join(reflink_dir, "cache"), os.path.join(reflink_dir, "copy.bin")
    run = objmount(["cp", f"/objmount/s3/{bucket}/big.bin", copy], "--cache-dir", cache)
    assert run.returncode == 0, run.stderr
    with open(copy, "rb") as f:
        assert f.read() == DATA


def test_clones_naming_a_virtual_descriptor_are_not_supported(objmount, s3, bucket, reflink_dir, tmp_path):
    probe = compile_c(tmp_path / "clone_probe", PROBE)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=DATA)
    run = objmount([str(probe), f"/objmount/s3/{bucket}/big.bin", os.path.join(reflink_dir, "local.bin")],
                   "--cache-dir", os.path.join(reflink_dir, "cache"))
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == [
        "FICLONERANGE within the virtual file: -1 Operation not supported",
        "FICLONE virtual -> local: -1 Operation not supported",
        "FICLONERANGE local -> virtual: -1 Operation not supported",
        "FICLONERANGE virtual -> local: -1 Operation not supported",
        "FIDEDUPERANGE local -> virtual: -1 Operation not supported",
    ]
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == DATA
