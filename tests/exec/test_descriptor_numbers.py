"""Descriptor numbers follow the kernel's rules for virtual files too: open, dup,
dup2/dup3 and fcntl(F_DUPFD*) give the lowest free number, as on a local directory, and
the program's later calls on that number reach the object (GNU tar's close(1); dup(fd))."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
from exec_support import compile_c

PROBE = r'''
import fcntl, json, os, sys
D, L = sys.argv[1], sys.argv[2]
out = []
def note(label, value):
    out.append([label, value])
def make(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    note("create " + os.path.basename(path), fd)
    os.write(fd, data)
    os.close(fd)
def content(fd):
    os.lseek(fd, 0, 0)
    return os.read(fd, 100).decode()

make(D + "/a", b"alpha")
make(D + "/b", b"bravo")
make(L + "/l", b"local")
a = os.open(D + "/a", os.O_RDONLY); note("open a", a)
l = os.open(L + "/l", os.O_RDONLY); note("open local", l)
b = os.open(D + "/b", os.O_RDONLY); note("open b", b)
d = os.dup(a); note("dup a", d); note("via dup", content(d))
os.close(l)
d2 = os.dup(b); note("dup b into the local file's hole", d2); note("via it", content(d2))
l = os.open(L + "/l", os.O_RDONLY); note("local again", l)
os.close(a)
a2 = os.open(D + "/b", os.O_RDONLY); note("reopen takes a's number", a2); note("reads", content(a2))
n = os.dup2(d, 40); note("dup2 to 40", n); note("via 40", content(40))
n = os.dup2(l, 40); note("dup2 local onto 40", n); note("via 40 now", content(40))
n = os.dup2(d, 41, inheritable=False); note("dup3 cloexec to 41", n)
note("41 cloexec", bool(fcntl.fcntl(41, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)); note("via 41", content(41))
n = fcntl.fcntl(d, fcntl.F_DUPFD, 30); note("F_DUPFD 30", n); note("via it", content(n))
n2 = fcntl.fcntl(d, fcntl.F_DUPFD_CLOEXEC, 30); note("F_DUPFD_CLOEXEC 30", n2); note("via it", content(n2))
n3 = fcntl.fcntl(d, fcntl.F_DUPFD, 0); note("F_DUPFD 0", n3)
for fd in (n, n2, n3, 40, 41):
    os.close(fd)
note("after closes", os.open(D + "/a", os.O_RDONLY))
# GNU tar: close(1); dup(fd) makes a file the standard output.
saved = os.dup(1); note("saved stdout", saved)
w = os.open(D + "/out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); note("open out", w)
os.close(1)
one = os.dup(w); note("close(1); dup", one)
os.close(w)
os.write(1, b"written through fd 1\n")
os.write(1, b"and again\n")
os.close(1)
os.dup2(saved, 1)
os.close(saved)
r = os.open(D + "/out", os.O_RDONLY); note("out reads", os.read(r, 100).decode()); os.close(r)
# Many at once, then holes filled lowest first.
many = [os.open(D + "/a", os.O_RDONLY) for _ in range(40)]
note("many", many)
for fd in many[5:30:3]:
    os.close(fd)
refill = [os.open(D + "/b" if i % 2 else L + "/l", os.O_RDONLY) for i in range(9)]
note("refill", refill)
note("refill reads", [content(fd) for fd in refill])
note("many reads", [content(fd) for fd in many if fd not in many[5:30:3]][-3:])
# A directory descriptor below the base: *at() calls relative to it.
dfd = os.open(D, os.O_RDONLY | os.O_DIRECTORY); note("dir fd", dfd)
note("stat at", os.stat("a", dir_fd=dfd).st_size)
f = os.open("b", os.O_RDONLY, dir_fd=dfd); note("open at", f); note("reads", content(f))
note("access at", os.access("out", os.R_OK, dir_fd=dfd))
note("listdir fd", sorted(os.listdir(dfd)))
note("dot at", oct(os.stat(".", dir_fd=dfd).st_mode))
os.mkdir("sub", dir_fd=dfd); note("mkdir at", os.path.isdir(D + "/sub"))
try:
    os.stat("missing", dir_fd=dfd)
except OSError as e:
    note("missing at", e.errno)
print(json.dumps(out))
'''


@pytest.fixture
def dirs(s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="v/", Body=b"")
    native, local = tmp_path / "native", tmp_path / "local"
    native.mkdir()
    local.mkdir()
    return f"/objmount/s3/{bucket}/v", str(native), str(local)


@pytest.mark.not_rclone("a dir/ marker becomes a file there (this test makes one)")
@pytest.mark.parametrize("fast_path", [True, False])
def test_numbers_match_a_local_directory(objmount, s3, bucket, dirs, tmp_path, fast_path):
    virtual, native, local = dirs
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    want = subprocess.run([sys.executable, str(probe), native, local], capture_output=True, text=True, check=True)
    run = objmount([sys.executable, str(probe), virtual, local], *([] if fast_path else ["--no-fast-path"]))
    assert run.returncode == 0, run.stderr
    got, expected = json.loads(run.text), json.loads(want.stdout)
    assert got == expected
    assert s3.get_object(Bucket=bucket, Key="v/out")["Body"].read() == b"written through fd 1\nand again\n"


def test_static_program_gets_the_lowest_number(objmount, s3, bucket, static_cat):
    s3.put_object(Bucket=bucket, Key="one", Body=b"first\n")
    s3.put_object(Bucket=bucket, Key="two", Body=b"second\n")
    # static_cat opens each file in turn: the number is reused, reads go to the new file
    run = objmount([str(static_cat), f"/objmount/s3/{bucket}/one", f"/objmount/s3/{bucket}/two",
                    f"/objmount/s3/{bucket}/one"])
    assert run.returncode == 0, run.stderr
    assert run.text == "first\nsecond\nfirst\n"


def test_shell_redirections(objmount, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="in.txt", Body=b"line one\nline two\n")
    v = f"/objmount/s3/{bucket}"
    script = (f"exec 5<{v}/in.txt; read x <&5; read y <&5; exec 5<&-; "
              f"exec 6>{v}/out.txt; echo \"$y/$x\" >&6; echo more 1>&6; exec 6>&-; "
              f"{{ echo to-three >&3; }} 3>{v}/three.txt; "
              f"echo appended 3>&1 >>{v}/out.txt; "
              f"cat <{v}/in.txt 2>&1 >{v}/copy.txt; "
              f"exec 7<>{v}/rw.txt; echo rw >&7; exec 7>&-; "
              f"ls -l /proc/$$/fd >/dev/null; echo done")
    for shell in ("sh", "bash"):
        if shutil.which(shell) is None:
            continue
        run = objmount([shell, "-c", script])
        assert run.returncode == 0, run.stderr
        assert run.text == "done\n"
        get = lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert get("out.txt") == b"line two/line one\nmore\nappended\n"
        assert get("three.txt") == b"to-three\n"
        assert get("copy.txt") == b"line one\nline two\n"
        assert get("rw.txt") == b"rw\n"


MEMBERS = {"top.txt": b"top level\n" * 100, "sub/deep.bin": os.urandom(300_000), "sub/empty": b"",
           "sub/more/notes.md": b"# notes\n" + b"x" * 5000}


def _local_tree(root) -> None:
    for name, data in MEMBERS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _archive_members(blob: bytes, mode: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode=mode) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize("flag, ext, mode", [("z", "tgz", "r:gz"), ("J", "txz", "r:xz")])
def test_tar_creates_an_archive_on_the_bucket(objmount, s3, bucket, tmp_path, flag, ext, mode):
    if shutil.which("tar") is None or (flag == "J" and shutil.which("xz") is None):
        pytest.skip("tar/xz not installed")
    src = tmp_path / "src"
    _local_tree(src)
    run = objmount(["tar", f"c{flag}f", f"/objmount/s3/{bucket}/a.{ext}", "-C", str(src), "."])
    assert run.returncode == 0, run.stderr
    blob = s3.get_object(Bucket=bucket, Key=f"a.{ext}")["Body"].read()
    assert blob, "a 0-byte archive"
    assert _archive_members(blob, mode) == MEMBERS


@pytest.mark.not_rclone("a dir/ marker becomes a file there (this test makes one)")
def test_tar_lists_and_extracts_onto_the_bucket(objmount, s3, bucket, tmp_path):
    if shutil.which("tar") is None:
        pytest.skip("tar not installed")
    src = tmp_path / "src"
    _local_tree(src)
    subprocess.run(["tar", "czf", str(tmp_path / "a.tgz"), "-C", str(src), "."], check=True)
    s3.put_object(Bucket=bucket, Key="a.tgz", Body=(tmp_path / "a.tgz").read_bytes())
    v = f"/objmount/s3/{bucket}"
    listed = objmount(["tar", "tzf", f"{v}/a.tgz"])
    assert listed.returncode == 0, listed.stderr
    native = subprocess.run(["tar", "tzf", str(tmp_path / "a.tgz")], capture_output=True, check=True).stdout
    assert listed.stdout == native
    s3.put_object(Bucket=bucket, Key="x/", Body=b"")
    run = objmount(["tar", "xzf", f"{v}/a.tgz", "-C", f"{v}/x"])
    assert run.returncode == 0, run.stderr
    for name, data in MEMBERS.items():
        assert s3.get_object(Bucket=bucket, Key=f"x/{name}")["Body"].read() == data
    # members on the bucket, archive local, and back: extracting natively gives the same
    run = objmount(["tar", "czf", str(tmp_path / "b.tgz"), "-C", f"{v}/x", "."])
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "xzf", str(tmp_path / "b.tgz"), "-C", str(out)], check=True)
    for name, data in MEMBERS.items():
        assert (out / name).read_bytes() == data


NO_MORE_FILTERS = r'''
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Forbids seccomp() from here on (as some sandboxes do), then copies argv[1] to argv[2]. */
int main(int argc, char **argv) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_seccomp, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {4, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) return 3;
    char buf[4096];
    int in = open(argv[1], O_RDONLY), out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) return 4;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) return 5;
    printf("%d %d\n", in, out);
    return close(in) || close(out);
}
'''


def test_without_a_filter_the_file_is_fetched_and_uploaded_whole(objmount, s3, bucket, tmp_path):
    """When no filter can be added for a number, its reads and writes do not stop: the
    object is fetched whole at the open, and the file goes up whole."""
    compile_c(tmp_path / "nf", NO_MORE_FILTERS, "-O2")
    data = os.urandom(3_000_000)
    s3.put_object(Bucket=bucket, Key="in.bin", Body=data)
    v = f"/objmount/s3/{bucket}"
    run = objmount([str(tmp_path / "nf"), f"{v}/in.bin", f"{v}/out.bin"])
    assert run.returncode == 0, run.stderr
    assert run.text == "3 4\n"
    assert "cannot watch fd" in run.stderr
    assert s3.get_object(Bucket=bucket, Key="out.bin")["Body"].read() == data


RAW_OPEN = r'''
#include <stdio.h>
/* openat by the syscall instruction: the kernel gives back every register but rax, rcx
   and r11, and code may rely on it (a raw syscall keeps values in its argument
   registers). An open the supervisor answers must too. */
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long rax = 257, rdi = -100, rsi = (long)argv[i], rdx = 0, r10 = 0;
        long r8 = 0x0808080808080808, r9 = 0x0909090909090909;
        register long a4 __asm__("r10") = r10, a5 __asm__("r8") = r8, a6 __asm__("r9") = r9;
        long out_rdi, out_rsi, out_rdx;
        __asm__ volatile("syscall"
                         : "+a"(rax), "=D"(out_rdi), "=S"(out_rsi), "=d"(out_rdx), "+r"(a4), "+r"(a5), "+r"(a6)
                         : "1"(rdi), "2"(rsi), "3"(rdx)
                         : "rcx", "r11", "memory");
        printf("fd=%ld kept=%d\n", rax, out_rdi == rdi && out_rsi == rsi && out_rdx == rdx
               && a4 == r10 && a5 == r8 && a6 == r9);
    }
    return 0;
}
'''


@pytest.fixture(scope="session")
def raw_open(tmp_path_factory):
    return compile_c(tmp_path_factory.mktemp("raw") / "raw_open", RAW_OPEN, "-O2")


def test_a_virtual_open_gives_the_argument_registers_back(objmount, s3, bucket, raw_open, tmp_path):
    """The open handed over as a descriptor (the call made another one in the program)
    returns with the registers the program entered with, as a local open does."""
    s3.put_object(Bucket=bucket, Key="one", Body=b"first\n")
    s3.put_object(Bucket=bucket, Key="two", Body=b"second\n")
    local = tmp_path / "local"
    local.write_text("x")
    native = subprocess.run([str(raw_open), str(local), str(local)], capture_output=True, text=True)
    assert native.stdout == "fd=3 kept=1\nfd=4 kept=1\n"
    # the second virtual open is the one made through an existing channel
    run = objmount([str(raw_open), f"/objmount/s3/{bucket}/one", f"/objmount/s3/{bucket}/two", str(local)])
    assert run.returncode == 0, run.stderr
    assert run.text == "fd=3 kept=1\nfd=4 kept=1\nfd=5 kept=1\n"
