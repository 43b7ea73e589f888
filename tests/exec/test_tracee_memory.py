"""objmount writes into the program's memory only where nothing of the program's lives:
a rewritten path must not land below the stack pointer, where a Go goroutine's small
stack may end and another's begin."""

from __future__ import annotations

import os
import subprocess

import pytest
from exec_support import compile_c

LOW_STACK = r'''
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* open() from a stack whose bottom is 256 bytes below the stack pointer, as a goroutine's
 * may be; the memory below stands for another goroutine's stack and must stay intact. */
static char region[16384] __attribute__((aligned(64)));
int main(int argc, char **argv) {
    memset(region, 0xAB, sizeof region);
    long fd;
    char *top = region + 8192 + 256;
    __asm__ volatile("mov %%rsp, %%r12\n\tmov %[top], %%rsp\n\tsyscall\n\tmov %%r12, %%rsp"
                     : "=a"(fd)
                     : "a"(257L), "D"(-100L), "S"(argv[1]), "d"((long)O_RDONLY), [top] "r"(top)
                     : "rcx", "r11", "r12", "memory");
    int intact = 1;
    for (int i = 0; i < 8192; i++) if ((unsigned char)region[i] != 0xAB) intact = 0;
    char buf[100] = {0};
    long n = fd >= 0 ? read((int)fd, buf, sizeof buf - 1) : 0;
    printf("%s %s", intact ? "intact" : "overwritten", n > 0 ? buf : "no data\n");
    return 0;
}
'''


def test_a_rewritten_path_does_not_land_below_the_stack(objmount, s3, bucket, tmp_path):
    compile_c(tmp_path / "low", LOW_STACK, "-O2")
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello\n")
    local = tmp_path / "hello.txt"
    local.write_bytes(b"hello\n")
    native = subprocess.run([str(tmp_path / "low"), str(local)], capture_output=True, text=True)
    assert native.stdout == "intact hello\n"
    run = objmount([str(tmp_path / "low"), f"/objmount/s3/{bucket}/hello.txt"])
    assert run.returncode == 0, run.stderr
    assert run.text == "intact hello\n"


@pytest.mark.not_rclone("a dir/ marker becomes a file there (this test makes one)")
@pytest.mark.parametrize("fast_path", [True, False])
def test_a_rewritten_call_that_blocks_does_not_hold_the_supervisor(objmount, s3, bucket, tmp_path, fast_path):
    """A FIFO opened through a relative path from a virtual cwd (the supervisor rewrites
    it to the local path) blocks until a writer opens it; the writer's own open must
    still be served meanwhile."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    s3.put_object(Bucket=bucket, Key="d/", Body=b"")
    up = "../../../.."   # from /objmount/s3/BUCKET/d to /
    # (the sleep lets the reader block first; any order must work)
    script = f"cd /objmount/s3/{bucket}/d && {{ cat {up}{fifo} & }}; sleep 1; echo through-the-fifo > {fifo}; wait"
    run = objmount(["sh", "-c", script], *([] if fast_path else ["--no-fast-path"]), timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.text == "through-the-fifo\n"
