"""Shells look commands up with stat and eaccess (glibc's makes its calls inside libc):
the fast path answers them in the process, with the same answers as libc and the
supervisor give, for local and virtual paths."""

from __future__ import annotations

import os
import subprocess

import pytest
from exec_support import compile_c

PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int modes[] = {F_OK, R_OK, W_OK, X_OK, R_OK | X_OK, 8 | R_OK};
    for (int i = 1; i < argc; i++)
        for (unsigned m = 0; m < sizeof modes / sizeof *modes; m++) {
            errno = 0;
            int a = eaccess(argv[i], modes[m]);
            int ea = errno;
            errno = 0;
            int b = euidaccess(argv[i], modes[m]);
            printf("%d %d:%d %d:%d\n", modes[m], a, ea, b, errno);
        }
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return compile_c(tmp_path_factory.mktemp("eaccess") / "probe", PROBE, "-O2")


def _tree(root):
    os.makedirs(root / "dir", exist_ok=True)
    for name, mode in (("exe", 0o755), ("plain", 0o644), ("private", 0o600)):
        (root / name).write_bytes(b"#!/bin/sh\n")
        os.chmod(root / name, mode)


def test_eaccess_answers_as_libc_does(objmount, probe, s3, bucket, tmp_path):
    local = tmp_path / "local"
    _tree(local)
    names = ["exe", "plain", "private", "dir", "missing", "plain/below"]
    local_args = [str(local / n) for n in names] + ["/usr/bin/env", "/etc/shadow", ""]
    native = subprocess.run([str(probe), *local_args], capture_output=True, text=True, timeout=60)
    assert native.returncode == 0
    for key, mode in (("exe", 0o100755), ("plain", 0o100644)):
        s3.put_object(Bucket=bucket, Key=key, Body=b"#!/bin/sh\n", Metadata={"mode": str(mode)})
    virtual_args = [f"/objmount/s3/{bucket}/{n}" for n in ("exe", "plain", "missing")]
    answers = {}
    for options in ((), ("--no-fast-path",)):
        run = objmount([str(probe), *local_args, *virtual_args], *options)
        assert run.returncode == 0, run.stderr
        lines = run.text.splitlines()
        assert lines[:len(native.stdout.splitlines())] == native.stdout.splitlines(), options
        answers[options] = (lines, run.stats["syscalls"])
    assert answers[()][0] == answers[("--no-fast-path",)][0]
    # Local paths answered in the process: what stops is the virtual paths' calls (a stat
    # for each of 3 paths x 6 modes x 2 functions, an access for the two that exist but
    # F_OK) and the loader's access("/etc/ld.so.preload").
    fast = answers[()][1]
    assert fast.get("access", 0) + fast.get("faccessat", 0) + fast.get("newfstatat", 0) <= 36 + 20 + 1, fast
