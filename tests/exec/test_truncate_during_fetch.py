"""A truncation while a fetch of the same file is still on its way (found while running fsx).

Reading the start of a large file starts readahead in the background; a program that then
cuts the file short and grows it again (fsx does this all the time) must see zeros in the
grown part, and the size it set, whenever the readahead's bytes arrive: before, during or
after an fsync that uploads the new version. The readahead GET is slowed down by the fault
proxy so that most of it lands after the cut.
Each run is compared with the same program on a local file, and the bucket with that file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from exec_support import compile_c
from faultproxy import Fault

MiB = 1 << 20
DATA = os.urandom(6 * MiB + 12345)

PROBE = r'''
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GROWN (8 << 20)
static unsigned char buf[GROWN];

/* what a reader sees now: the size, a hash of the bytes, how many past `cut` are not zero */
static void show(int fd, const char *when, long cut) {
    struct stat st;
    fstat(fd, &st);
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    unsigned long long h = 1469598103934665603ULL;
    long nonzero = 0;
    for (ssize_t i = 0; i < n; i++) {
        h = (h ^ buf[i]) * 1099511628211ULL;
        if (i >= cut && buf[i]) nonzero++;
    }
    printf("%s: size %lld read %zd hash %llx nonzero past cut %ld\n", when, (long long)st.st_size, n, h, nonzero);
}

int main(int argc, char **argv) {
    long cut = atol(argv[2]);
    int fsync_first = strcmp(argv[3], "fsync") == 0;
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) { perror("open"); return 2; }
    if (read(fd, buf, 4096) != 4096) { perror("read"); return 2; }   /* starts readahead */
    if (ftruncate(fd, cut)) { perror("ftruncate"); return 2; }
    if (fsync_first) {
        /* grow and upload while the readahead of the old bytes is still on its way */
        if (ftruncate(fd, GROWN) || fsync(fd)) { perror("grow+fsync"); return 2; }
        usleep(2500000);
    } else {
        usleep(2500000);   /* the readahead lands meanwhile */
        struct stat st;
        fstat(fd, &st);
        printf("after the cut: size %lld\n", (long long)st.st_size);
        if (ftruncate(fd, GROWN)) { perror("grow"); return 2; }
    }
    show(fd, "grown", cut);
    if (close(fd)) { perror("close"); return 2; }
    fd = open(argv[1], O_RDONLY);
    show(fd, "reopened", cut);
    return 0;
}
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return compile_c(tmp_path_factory.mktemp("truncfetch") / "truncfetch", PROBE, "-O2")


@pytest.mark.parametrize("cut", [4096, MiB + MiB // 2], ids=["before-readahead", "inside-readahead"])
@pytest.mark.parametrize("when", ["sleep", "fsync"])
def test_bytes_fetched_after_a_truncation_stay_cut_off(objmount, proxy, s3, bucket, probe, tmp_path, cut, when):
    local = tmp_path / "big.bin"
    local.write_bytes(DATA)
    native = subprocess.run([str(probe), str(local), str(cut), when], capture_output=True, timeout=60)
    assert native.returncode == 0, native.stderr
    assert b"nonzero past cut 0" in native.stdout

    s3.put_object(Bucket=bucket, Key="big.bin", Body=DATA)
    # the open's own GET (the first MiB) passes; the readahead's first GET sends 64 KiB,
    # then the rest 1.5 s later: after the cut (and the fsync), long before the probe looks
    proxy.add(Fault("pause", "GET", f"/{bucket}/big.bin", times=1, skip=1, at=64 * 1024, seconds=1.5))
    run = objmount([str(probe), f"/objmount/s3/{bucket}/big.bin", str(cut), when],
                   "--endpoint-url", proxy.url, "--read-timeout", "5")
    assert run.returncode == 0, run.stderr
    assert [g.fault for g in proxy.requests("GET", f"/{bucket}/big.bin")].count("pause") == 1
    assert run.stdout.decode() == native.stdout.decode()
    body = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(local.read_bytes()).hexdigest()
