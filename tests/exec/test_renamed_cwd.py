"""A directory renamed while a process works in it, or holds a descriptor of it, stays
that process's: the kernel's cwd and descriptors hold the directory, not its name. The
same script runs in a local directory and in a virtual one; its output, with the root
written as ROOT, must be the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = r'''
import os, subprocess, sys
root = sys.argv[1]
show = lambda x: print(str(x).replace(root, "ROOT"), flush=True)
os.chdir(root)
os.makedirs("a/in")
with open("a/f", "w") as f:
    f.write("x")
os.chdir("a")
fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
os.rename(root + "/a", root + "/b")
show(os.getcwd())
show(sorted(os.listdir(".")))
show(open("f").read())
show(os.read(os.open("f", os.O_RDONLY, dir_fd=fd), 10))
show(os.readlink(f"/proc/self/fd/{fd}"))
with open("new", "w") as f:
    f.write("made")
show(sorted(os.listdir(root + "/b")))
os.chdir("in")
show(os.getcwd())
os.chdir("..")
subprocess.run(["mv", root + "/b", root + "/c"], check=True)   # another process renames it
show(os.getcwd())
show(open("new").read())
show(subprocess.run(["/bin/pwd"], capture_output=True, text=True).stdout.strip())
show(sorted(os.listdir(root)))
'''




@pytest.mark.parametrize("store_kind", ["file", "s3"])
def test_a_renamed_working_directory_and_directory_descriptor_go_on(objmount, tmp_path, bucket, store_kind):
    local = tmp_path / "local"
    local.mkdir()
    native = subprocess.run([sys.executable, "-c", SCRIPT, str(local)], capture_output=True, text=True)
    assert native.returncode == 0, native.stderr
    store = tmp_path / "store"
    store.mkdir()
    url = f"file://{store}" if store_kind == "file" else f"s3://{bucket}/pre"
    run = objmount([sys.executable, "-c", SCRIPT, "/v"], "-m", f"/v={url}")
    assert run.returncode == 0, run.stderr
    assert run.text == native.stdout
