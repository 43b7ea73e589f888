"""mkstemp and its variants through the fast path (glibc makes their open inside libc,
where no preload sees it): the same answers as with every call traced (names are random,
so each is checked for its shape), and a local template's open no longer stops."""

from __future__ import annotations

import subprocess

import pytest
from exec_support import compile_c

PROBE = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int shape(const char *before, const char *name, const char *prefix, const char *suffix) {
    size_t p = strlen(prefix), s = strlen(suffix), n = strlen(name);
    if (n != p + 6 + s || strncmp(name, prefix, p) || strcmp(name + p + 6, suffix)) return 0;
    if (strcmp(before + p + 6, suffix)) return 0;
    for (size_t i = p; i < p + 6; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", name[i])) return 0;
    return strncmp(name + p, "XXXXXX", 6) != 0;
}

static void report(const char *what, const char *dir, const char *prefix, const char *suffix, int fd, char *tmpl,
                   const char *before) {
    if (fd < 0) { printf("%s %s errno=%d template-unchanged=%d\n", what, dir, errno, !strcmp(tmpl, before)); return; }
    struct stat st;
    int ok = fstat(fd, &st) == 0 && stat(tmpl, &st) == 0;
    int cloexec = fcntl(fd, F_GETFD) & FD_CLOEXEC;
    int fl = fcntl(fd, F_GETFL);
    char data[16] = "";
    int w = (int)write(fd, "temp\n", 5);
    int back = (int)pread(fd, data, sizeof data - 1, 0);
    printf("%s %s shape=%d exists=%d mode=%o cloexec=%d rdwr=%d append=%d wrote=%d read=%.*s", what, dir,
           shape(before, tmpl, prefix, suffix), ok, st.st_mode & 07777, !!cloexec, (fl & O_ACCMODE) == O_RDWR,
           !!(fl & O_APPEND), w, back > 0 ? back : 0, data);
    close(fd);
    unlink(tmpl);
}

#define TRY(what, dir, prefix, suffix, call) do {                                   \
    char tmpl[256], before[256];                                                    \
    snprintf(tmpl, sizeof tmpl, "%s/%sXXXXXX%s", dir, prefix, suffix);              \
    strcpy(before, tmpl);                                                           \
    char full[256];                                                                 \
    snprintf(full, sizeof full, "%s/%s", dir, prefix);                              \
    errno = 0;                                                                      \
    int fd = call;                                                                  \
    report(what, dir, full, suffix, fd, tmpl, before);                              \
} while (0)

int main(int argc, char **argv) {
    umask(022);
    for (int i = 1; i < argc; i++) {
        const char *d = argv[i];
        TRY("mkstemp", d, "a.", "", mkstemp(tmpl));
        TRY("mkstemp64", d, "b", "", mkstemp64(tmpl));
        TRY("mkostemp", d, "c", "", mkostemp(tmpl, O_CLOEXEC | O_APPEND));
        TRY("mkstemps", d, "cc", ".s", mkstemps(tmpl, 2));
        TRY("mkostemps", d, "d", ".cdtor.c", mkostemps(tmpl, 8, O_CLOEXEC));
        TRY("mkstemps-short", d, "e", ".s", mkstemps(tmpl, 9));
        TRY("mkstemps-negative", d, "f", "", mkstemps(tmpl, -1));
        TRY("mkstemp-suffix", d, "g", "x", mkstemp(tmpl));
        TRY("mkstemp-missing-dir", d, "nodir/h", "", mkstemp(tmpl));
    }
    char bad[] = "XXXXX";
    errno = 0;
    int five = mkstemp(bad);
    printf("mkstemp-five %d errno=%d %s\n", five, errno, bad);
    char rel[] = "relXXXXXX";
    int fd = mkstemp(rel);
    printf("mkstemp-relative %d %d\n", fd >= 0, fd >= 0 && access(rel, F_OK) == 0);
    if (fd >= 0) unlink(rel);
    return 0;
}
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return compile_c(tmp_path_factory.mktemp("mkstemp") / "probe", PROBE, "-O0")


def test_temporary_files_answer_the_same_with_and_without_the_fast_path(objmount, s3, bucket, probe, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    cmd = [str(probe), str(local), "/data"]
    fast = objmount(cmd, "-m", f"/data=s3://{bucket}", cwd=local)
    slow = objmount(cmd, "-m", f"/data=s3://{bucket}", "--no-fast-path", cwd=local)
    assert fast.returncode == 0 and slow.returncode == 0, fast.stderr + slow.stderr
    native = subprocess.run(cmd[:2], capture_output=True, text=True, cwd=local).stdout
    assert fast.text == slow.text
    assert fast.text.startswith(native.split("mkstemp-five")[0])   # the local directory's lines, as natively
    lines = fast.text.splitlines()
    for d in (str(local), "/data"):
        assert f"mkstemp {d} shape=1 exists=1 mode=600 cloexec=0 rdwr=1 append=0 wrote=5 read=temp" in lines
        assert f"mkostemp {d} shape=1 exists=1 mode=600 cloexec=1 rdwr=1 append=1 wrote=5 read=temp" in lines
        assert f"mkostemps {d} shape=1 exists=1 mode=600 cloexec=1 rdwr=1 append=0 wrote=5 read=temp" in lines
        assert f"mkstemps-short {d} errno=22 template-unchanged=1" in lines
        assert f"mkstemps-negative {d} errno=22 template-unchanged=1" in lines
        assert f"mkstemp-suffix {d} errno=22 template-unchanged=1" in lines
        assert f"mkstemp-missing-dir {d} errno=2 template-unchanged=0" in lines
    assert "mkstemp-five -1 errno=22 XXXXX" in lines
    assert "mkstemp-relative 1 1" in lines
    # The 7 local creations (5 files, the missing directory's attempt, the relative one) no
    # longer stop; the fast path's run has one loader open more (the library itself).
    assert fast.stats["syscalls"].get("openat", 0) <= slow.stats["syscalls"]["openat"] - 7 + 1
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0   # each one unlinked
