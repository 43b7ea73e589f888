"""The fast path for calls made before its constructor ran (a library loaded with the
program, such as libselinux, runs its constructor first and calls statfs, access and
fopen from there), for statfs, and for paths under /proc that are no descriptor links:
the same answers as with every call traced, and the local calls no longer stop."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from exec_support import compile_c

# Every call's result (or errno) is printed, from the library's constructor and from main.
LIB = r'''
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

void probe(const char *when) {
    const char *paths[] = {"/", "/data", "/data/dir", "/data/hello.txt", "/nonexistent", "/sys/fs/selinux",
                           "/proc/self/status", "/proc/filesystems", "/objmount/s3", 0};
    for (int i = 0; paths[i]; i++) {
        struct statfs sf;
        int r = statfs(paths[i], &sf);
        printf("%s statfs %s %d %d\n", when, paths[i], r, r ? errno : (sf.f_bsize > 0));
        r = statfs64(paths[i], (struct statfs64 *)&sf);
        printf("%s statfs64 %s %d %d\n", when, paths[i], r, r ? errno : (sf.f_bsize > 0));
        struct stat st;
        r = stat(paths[i], &st);
        printf("%s stat %s %d %d\n", when, paths[i], r, r ? errno : (int)(st.st_mode >> 12));
        printf("%s access %s %d\n", when, paths[i], access(paths[i], R_OK) ? errno : 0);
    }
    FILE *f = fopen("/proc/self/status", "re");
    char line[256] = "";
    if (f) { fgets(line, sizeof line, f); fclose(f); }
    printf("%s fopen /proc/self/status %d %.5s\n", when, f != 0, line);
    f = fopen("/proc/filesystems", "r");
    int ext = 0;
    while (f && fgets(line, sizeof line, f)) ext |= strstr(line, "proc") != 0;
    if (f) fclose(f);
    printf("%s fopen /proc/filesystems %d %d\n", when, f != 0, ext);
    f = fopen("/data/hello.txt", "r");
    line[0] = 0;
    if (f) { fgets(line, sizeof line, f); fclose(f); }
    printf("%s fopen /data/hello.txt %d %s", when, f != 0, line);
    int fd = open("/data/dir/a.txt", O_RDONLY);
    char link[64], buf[64] = "";
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int fd2 = open(link, O_RDONLY);
    int n = fd2 >= 0 ? (int)read(fd2, buf, sizeof buf - 1) : -1;
    printf("%s procfd %d %.*s", when, fd2 >= 0, n > 0 ? n : 0, buf);
    close(fd2);
    close(fd);
    fflush(stdout);
}

__attribute__((constructor)) static void early(void) { probe("ctor"); }
'''

MAIN = r'''
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
void probe(const char *when);
int main(void) {
    probe("main");
    if (chdir("/data/dir") != 0) return 3;
    char buf[64] = "";
    int fd = open("/proc/self/cwd/a.txt", O_RDONLY);   /* the virtual directory's file, as locally */
    printf("cwd-link %d %d\n", fd >= 0, fd >= 0 ? 0 : errno);
    fd = open("a.txt", O_RDONLY);
    int n = fd >= 0 ? (int)read(fd, buf, sizeof buf - 1) : -1;
    printf("cwd %.*s", n > 0 ? n : 0, buf);
    return 0;
}
'''


@pytest.fixture(scope="module")
def early_prog(tmp_path_factory):
    """A program linked with a library whose constructor calls in before the fast path's."""
    d = tmp_path_factory.mktemp("early")
    compile_c(d / "libearly.so", LIB, "-shared", "-fPIC")
    return compile_c(d / "early", MAIN, f"-L{d}", "-learly", f"-Wl,-rpath,{d}")


@pytest.fixture
def tree(s3, bucket):
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello\n")
    s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"alpha\n")
    return bucket


def test_calls_before_the_constructor_answer_the_same_and_local_ones_do_not_stop(objmount, tree, early_prog):
    fast = objmount([str(early_prog)], "-m", f"/data=s3://{tree}")
    slow = objmount([str(early_prog)], "-m", f"/data=s3://{tree}", "--no-fast-path")
    assert fast.returncode == 0 and slow.returncode == 0, fast.stderr + slow.stderr
    assert fast.text == slow.text
    lines = fast.text.splitlines()
    for when in ("ctor", "main"):
        assert f"{when} statfs /data 0 1" in lines
        assert f"{when} statfs /nonexistent -1 2" in lines
        assert f"{when} fopen /proc/self/status 1 Name:" in lines
        assert f"{when} fopen /proc/filesystems 1 1" in lines
        assert f"{when} fopen /data/hello.txt 1 hello" in lines
        assert f"{when} procfd 1 alpha" in lines
    assert lines[-2:] == ["cwd-link 1 0", "cwd alpha"]
    # statfs: 2 x 2 of virtual paths (/data, /data/dir, /data/hello.txt, /objmount/s3: 4 each)
    # stop; the 6 local ones per probe do not, in the constructor either.
    assert slow.stats["syscalls"]["statfs"] == 2 * 2 * 9
    assert fast.stats["syscalls"]["statfs"] == 2 * 2 * 4
    # The constructor's local stats, accesses and /proc opens run in the process too.
    assert fast.stats["syscalls"].get("faccessat", 0) == 2 * 4   # the virtual ones
    assert fast.stats["syscalls"].get("access", 0) <= 1   # the loader's /etc/ld.so.preload
    assert fast.stats["syscalls"].get("newfstatat", 0) <= slow.stats["syscalls"]["newfstatat"] - 2 * 5


def test_selinux_linked_programs_make_no_statfs_stop(objmount):
    ls = shutil.which("ls")
    out = subprocess.run(["ldd", ls], capture_output=True, text=True).stdout
    if "libselinux" not in out:
        pytest.skip("ls is not linked with libselinux here")
    fast = objmount([ls, "/"])
    slow = objmount([ls, "/"], "--no-fast-path")
    assert fast.returncode == 0 and fast.text == slow.text
    assert slow.stats["syscalls"].get("statfs", 0) >= 1
    assert fast.stats["syscalls"].get("statfs", 0) == 0
