"""The fast path (the preloaded prefilter): local path calls of dynamically linked programs
run without a stop, and every answer is the same as with every call traced."""

from __future__ import annotations

import os
import shutil
import stat
import sys

import pytest

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
    assert lines["realpath"] == "/data/dir/a.txt /data/hello.txt /etc"
    assert lines["cwd-realpath"] == "/data/dir/a.txt /data/dir None"
    assert lines["abs"] == "alpha 6"
    assert lines["url"] == "alpha"
    assert lines["listdir"] == "['a.txt', 'b.txt'] ['dir', 'hello.txt', 'link']"
    assert lines["link"] == "dir/a.txt alpha 0o120777"
    assert lines["dirfd"] == "6 True"
    assert lines["procfd"] == "alpha alpha"
    assert lines["cwd"] == "/data/dir alpha True ['a.txt', 'b.txt']"
    assert lines["dotdot"] == "6 True"
    assert lines["root-rel"] == "True hello"
    assert lines["local"] == "True False /"
    assert lines["missing"] == "2"
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
    assert preload[0].endswith(".so") and "prefilter" in preload[0]
    assert preload[1:] == ["libuser-a.so", "libuser-b.so"]


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
