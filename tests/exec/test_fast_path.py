"""The fast path (the preloaded prefilter): local path calls of dynamically linked programs
run without a stop, and every answer is the same as with every call traced."""

from __future__ import annotations

import os
import shutil
import stat
import sys

import pytest
from exec_support import compile_c

PY = os.path.realpath(sys.executable)   # the real interpreter, not a pyenv shell shim

# Exercises every way a path can reach a virtual file from a dynamically linked program:
# absolute, s3:// strings, relative to a virtual cwd, '..', relative from '/', dirfd-relative
# on a virtual directory, /proc/self/fd of a virtual descriptor, opendir, access, readlink,
# lstat of a symlink, and writes.
PROBE = r'''
import ctypes, os, sys
b = sys.argv[1]
libc = ctypes.CDLL(None)
libc.realpath.restype = ctypes.c_char_p
def realpath(p): return (libc.realpath(p.encode(), None) or b"None").decode()
out = []
def say(*a): out.append(" ".join(str(x) for x in a))
say("link", os.readlink("/data/link"), open("/data/link").read().strip(), oct(os.lstat("/data/link").st_mode))
say("realpath", realpath("/data/link"), realpath("/data/dir/../hello.txt"), realpath("/usr/../etc"))
say("abs", open("/data/dir/a.txt").read().strip(), os.stat("/data/dir/a.txt").st_size)
say("url", open(f"s3://{b}/dir/a.txt").read().strip())
say("listdir", sorted(os.listdir("/data/dir")), sorted(e.name for e in os.scandir("/data")))
say("access", os.access("/data/dir/a.txt", os.R_OK), os.access("/data/nope", os.F_OK))
fd = os.open("/data/dir", os.O_RDONLY | os.O_DIRECTORY)
say("dirfd", os.stat("a.txt", dir_fd=fd).st_size, os.open("b.txt", os.O_RDONLY, dir_fd=fd) >= 0)
f = os.open("/data/dir/a.txt", os.O_RDONLY)
say("procfd", open(f"/proc/self/fd/{f}").read().strip(), open(f"/dev/fd/{f}").read().strip())
os.chdir("/data/dir")
say("cwd", os.getcwd(), open("a.txt").read().strip(), os.path.exists("b.txt"), sorted(os.listdir(".")))
say("cwd-realpath", realpath("a.txt"), realpath("."), realpath("missing"))
say("dotdot", os.stat("../hello.txt").st_size, os.path.isdir("../dir"))
with open("new.txt", "w") as w:
    w.write("written in a virtual cwd\n")
os.chdir("/")
say("root-rel", os.path.exists("data/dir/a.txt"), open("data/hello.txt").read().strip())
say("local", os.path.isdir("/usr/bin"), os.path.exists("/nonexistent-path"), os.getcwd())
try:
    open("/data/missing.txt")
except OSError as e:
    say("missing", e.errno)
print("\n".join(out))
'''


@pytest.fixture
def tree(s3, bucket):
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello\n")
    s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"alpha\n")
    s3.put_object(Bucket=bucket, Key="dir/b.txt", Body=b"beta\n")
    s3.put_object(Bucket=bucket, Key="link", Body=b"dir/a.txt",
                  Metadata={"mode": str(stat.S_IFLNK | 0o777)})
    return bucket


def stops(run, name: str) -> int:
    return run.stats["syscalls"].get(name, 0)


def test_local_path_calls_do_not_stop(objmount):
    """A Python start stats and opens hundreds of local files: with the fast path they run
    in the process; without it each one stops."""
    code = "import json, email, http.client, asyncio"
    fast = objmount([PY, "-c", code])
    slow = objmount([PY, "-c", code], "--no-fast-path")
    assert fast.returncode == 0 and slow.returncode == 0, fast.stderr + slow.stderr
    assert stops(slow, "newfstatat") > 200
    assert stops(fast, "newfstatat") < stops(slow, "newfstatat") / 5
    assert fast.stats["stops"] < slow.stats["stops"] / 3


def test_every_path_form_answers_the_same_with_and_without_the_fast_path(objmount, s3, tree):
    fast = objmount([PY, "-c", PROBE, tree], "-m", f"/data=s3://{tree}")
    assert fast.returncode == 0, fast.stderr
    s3.delete_object(Bucket=tree, Key="dir/new.txt")
    slow = objmount([PY, "-c", PROBE, tree], "-m", f"/data=s3://{tree}", "--no-fast-path")
    assert slow.returncode == 0, slow.stderr
    assert fast.text == slow.text
    lines = dict(line.split(" ", 1) for line in fast.text.splitlines())
    expected = {
        "realpath": "/data/dir/a.txt /data/hello.txt /etc",
        "cwd-realpath": "/data/dir/a.txt /data/dir None",
        "abs": "alpha 6",
        "url": "alpha",
        "listdir": "['a.txt', 'b.txt'] ['dir', 'hello.txt', 'link']",
        "link": "dir/a.txt alpha 0o120777",
        "dirfd": "6 True",
        "procfd": "alpha alpha",
        "cwd": "/data/dir alpha True ['a.txt', 'b.txt']",
        "dotdot": "6 True",
        "root-rel": "True hello",
        "local": "True False /",
        "missing": "2",
    }
    assert {key: lines.get(key) for key in expected} == expected
    assert s3.get_object(Bucket=tree, Key="dir/new.txt")["Body"].read() == b"written in a virtual cwd\n"


def test_a_shell_in_a_virtual_directory_hands_its_cwd_to_the_programs_it_starts(objmount, tree):
    """The cwd is inherited across fork and exec; each new program's prefilter must see
    that it is virtual and leave relative paths to the supervisor."""
    run = objmount("cd /data/dir && cat a.txt b.txt && ls && test -f a.txt && echo yes", "-m", f"/data=s3://{tree}")
    assert run.returncode == 0, run.stderr
    assert run.text == "alpha\nbeta\na.txt\nb.txt\nyes\n"


def test_programs_that_clear_the_environment_still_see_virtual_paths(objmount, tree):
    run = objmount(["env", "-i", shutil.which("cat"), f"/objmount/s3/{tree}/dir/a.txt"])
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"alpha\n"


def test_a_preload_of_the_user_is_kept(objmount, tmp_path):
    run = objmount([PY, "-c", "import os; print(os.environ['LD_PRELOAD'])"],
                   env={"LD_PRELOAD": "libuser-a.so libuser-b.so"})
    assert run.returncode == 0, run.stderr
    preload = run.text.strip().split(":")
    assert preload[:2] == ["libuser-a.so", "libuser-b.so"]   # first: they interpose before the fast path
    assert preload[2].endswith(".so") and "prefilter" in preload[2]


def test_without_a_compiler_the_fast_path_is_off_with_one_line_and_everything_works(objmount, tree, tmp_path):
    run = objmount(["cat", f"/objmount/s3/{tree}/dir/a.txt"],
                   env={"XDG_CACHE_HOME": str(tmp_path / "xdg"), "CC": "/bin/false"})
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"alpha\n"
    assert run.stderr.count("fast path off") == 1
    assert "Traceback" not in run.stderr
    assert stops(run, "openat") > 3   # the loader's opens stop again


def test_static_binaries_are_traced_as_before(objmount, tree, static_cat):
    run = objmount([str(static_cat), f"/objmount/s3/{tree}/dir/a.txt", f"s3://{tree}/hello.txt"])
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"alpha\nhello\n"


# Namespace and attribute changes through libc, in directory `root`: every result and
# errno is printed, so two runs can be compared line by line.
CHANGES = r'''
import errno, os, sys
root = sys.argv[1]
os.chdir(root)
def attempt(label, fn, *args, **kw):
    try:
        r = fn(*args, **kw)
        print(label, "ok" if r is None else r)
    except OSError as e:
        print(label, errno.errorcode[e.errno])
attempt("mkdir", os.mkdir, "d")
attempt("mkdir-again", os.mkdir, "d")
attempt("mkdirat", os.mkdir, "e", dir_fd=os.open(".", os.O_RDONLY))
with open("d/f", "w") as f:
    f.write("0123456789")
attempt("truncate", os.truncate, "d/f", 4)
attempt("size", lambda: os.stat("d/f").st_size)
attempt("chmod", os.chmod, "d/f", 0o600)
attempt("mode", lambda: oct(os.stat("d/f").st_mode & 0o777))
attempt("utime", os.utime, "d/f", (1000000000, 1234567890))
attempt("mtime", lambda: int(os.stat("d/f").st_mtime))
attempt("chown-self", os.chown, "d/f", os.getuid(), os.getgid())
attempt("symlink", os.symlink, "f", "d/l")
attempt("readlink", os.readlink, "d/l")
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def lchmod(path, mode):
    if libc.fchmodat(-100, path.encode(), mode, 0x100) != 0:   # AT_SYMLINK_NOFOLLOW
        raise OSError(ctypes.get_errno(), "fchmodat")
attempt("lchmod-link", lchmod, "d/l", 0o700)
attempt("lchmod-file", lchmod, "d/f", 0o640)
attempt("mode-after", lambda: oct(os.stat("d/f").st_mode & 0o777))
attempt("rename", os.rename, "d/f", "d/g")
attempt("rename-missing", os.rename, "d/nothing", "d/h")
attempt("listing", lambda: sorted(os.listdir("d")))
attempt("rmdir-nonempty", os.rmdir, "d")
attempt("unlink", os.unlink, "d/g")
attempt("unlink-missing", os.unlink, "d/g")
attempt("unlink-link", os.unlink, "d/l")
attempt("rmdir", os.rmdir, "d")
attempt("rmdir-e", os.rmdir, "e")
attempt("gone", lambda: os.path.exists("d"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.fputs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
libc.fgets.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
def fopen(path, mode):
    f = libc.fopen(path.encode(), mode.encode())
    if not f:
        raise OSError(ctypes.get_errno(), "fopen")
    return f
def fopen_write(path, mode, text):
    f = fopen(path, mode)
    libc.fputs(text.encode(), f)
    libc.fclose(f)
def fopen_read(path, mode):
    f = fopen(path, mode)
    buf = ctypes.create_string_buffer(100)
    libc.fgets(buf, 100, f)
    libc.fclose(f)
    return buf.value.decode().strip()
def fopen_only(path, mode):
    libc.fclose(fopen(path, mode))
    return "opened"
attempt("fopen-w", fopen_write, "s.txt", "w", "one")
attempt("fopen-a", fopen_write, "s.txt", "ae", "two")
attempt("fopen-r", fopen_read, "s.txt", "r")
attempt("fopen-x", fopen_write, "s.txt", "wx", "three")
attempt("fopen-ccs", fopen_only, "s.txt", "r,ccs=UTF-8")   # a wide stream: left to libc
attempt("fopen-missing", fopen_read, "missing.txt", "rb")
attempt("fopen-rplus", fopen_write, "s.txt", "r+", "ONE")
attempt("fopen-final", lambda: open("s.txt").read())
os.unlink("s.txt")
'''


@pytest.mark.parametrize("where", ["local", "virtual"])
def test_namespace_and_attribute_changes_answer_the_same_with_and_without_the_fast_path(
        objmount, s3, bucket, tmp_path, where):
    runs = []
    for mode in ("fast", "slow"):
        if where == "local":
            root = tmp_path / mode
            root.mkdir()
        else:
            root = f"/data/{mode}"
        options = ["-m", f"/data=s3://{bucket}"] + (["--no-fast-path"] if mode == "slow" else [])
        run = objmount([PY, "-c", ("import os; os.makedirs(%r, exist_ok=True)\n" % str(root)) + CHANGES, str(root)],
                       *options)
        assert run.returncode == 0, run.stderr
        runs.append(run)
    fast, slow = runs
    assert fast.text == slow.text
    lines = dict(line.split(" ", 1) for line in fast.text.splitlines())
    assert lines["mkdir-again"] == "EEXIST"
    assert lines["size"] == "4" and lines["mtime"] == "1234567890" and lines["readlink"] == "f"
    assert lines["listing"] == "['g', 'l']" and lines["rmdir-nonempty"] == "ENOTEMPTY"
    assert lines["unlink-missing"] == "ENOENT" and lines["gone"] == "False"
    assert lines["fopen-r"] == "onetwo" and lines["fopen-x"] == "EEXIST" and lines["fopen-ccs"] == "opened"
    assert lines["fopen-missing"] == "ENOENT" and lines["fopen-final"] == "ONEtwo"
    assert lines["lchmod-link"] == "ENOTSUP" and lines["mode-after"] == "0o640"
    if where == "local":
        # Local changes never stop with the fast path; every one does without it.
        changes = ("mkdir", "mkdirat", "unlink", "unlinkat", "rmdir", "rename", "renameat2", "chmod", "fchmodat",
                   "fchmodat2", "chown", "fchownat", "utimensat", "truncate", "symlink", "symlinkat")
        assert sum(fast.stats["syscalls"].get(n, 0) for n in changes) == 0
        assert sum(slow.stats["syscalls"].get(n, 0) for n in changes) >= 15
    else:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert not [k for k in keys if k.startswith(("fast/d", "slow/d"))]


ALTSTACK_PROGRAM = r'''
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
static volatile int ok;
static void handler(int sig) {
    struct stat st;
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0) close(fd);
    ok = fd >= 0 && stat("/etc/../etc/hostname", &st) == 0 && access("../etc/hostname", R_OK) == 0
         && faccessat(AT_FDCWD, "../etc", F_OK, 0) == 0;
}
int main(void) {
    /* an 8 KiB alternate signal stack with an inaccessible guard page below it */
    char *area = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(area, 4096, PROT_NONE);
    stack_t ss = {.ss_sp = area + 4096, .ss_size = 2 * 4096, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    chdir("/tmp");
    raise(SIGUSR1);
    printf(ok ? "ok\n" : "failed\n");
    return !ok;
}
'''


def test_path_calls_in_a_signal_handler_on_a_small_stack_do_not_overflow(objmount, tmp_path):
    """open() is async-signal-safe; programs call it on small alternate stacks. The
    library's frames must fit there on every branch."""
    compile_c(tmp_path / "altstack", ALTSTACK_PROGRAM, "-O1")
    run = objmount([str(tmp_path / "altstack")])
    assert run.returncode == 0, run.stderr
    assert run.text == "ok\n"
    assert run.stats["syscalls"].get("faccessat", 0) == 0   # answered by the library, not stopped


VFORK_CHDIR_PROGRAM = r'''
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (chdir(argv[1]) != 0) { perror("chdir"); return 2; }
    pid_t pid = vfork();
    if (pid == 0) { chdir("/tmp"); _exit(0); }   /* the child's cwd only */
    char buf[64] = {0};
    int fd = open("a.txt", O_RDONLY);            /* still relative to argv[1] */
    if (fd < 0) { perror("open"); return 1; }
    read(fd, buf, sizeof buf - 1);
    fputs(buf, stdout);
    return 0;
}
'''


def test_a_vfork_childs_chdir_does_not_move_its_parent(objmount, tree, tmp_path):
    """The library asks the kernel for the cwd each time: a vfork child shares its
    parent's memory, so a remembered answer would be the child's."""
    compile_c(tmp_path / "vfork", VFORK_CHDIR_PROGRAM, "-O1")
    run = objmount([str(tmp_path / "vfork"), "/data/dir"], "-m", f"/data=s3://{tree}")
    assert run.returncode == 0, run.stderr
    assert run.text == "alpha\n"


def test_a_mount_over_the_librarys_directory_keeps_the_fast_path(objmount, s3, bucket):
    """-m /tmp=...: the library, kept in /tmp/objmount-prefilter-UID when the home is
    private, would be looked for in the bucket (ld.so printed an error in every program):
    it is kept where no mount covers it."""
    s3.put_object(Bucket=bucket, Key="x", Body=b"hello\n")
    run = objmount(["sh", "-c", "cat /tmp/x; ls /tmp; for i in 1 2 3 4 5; do test -e /etc/hostname; done"],
                   "-m", f"/tmp=s3://{bucket}")
    assert run.returncode == 0, run.stderr
    assert run.text == "hello\nx\n"
    assert "cannot be preloaded" not in run.stderr and "fast path off" not in run.stderr
    assert run.stats["syscalls"].get("newfstatat", 0) < 5   # the shell's tests ran in the library
