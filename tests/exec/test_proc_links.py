"""/proc's links into a virtual directory: /proc/self/cwd while the working directory is
virtual (the kernel's cwd is then a stand-in), and /proc/self/fd/N/... below a virtual
directory's descriptor. The same shell script runs in a local directory and in a virtual
one; its output, with the directory's own path written as ROOT, must be the same."""

from __future__ import annotations

import subprocess

import pytest

SCRIPT = r'''
cd "$ROOT/d"
echo "link: $(readlink /proc/self/cwd)"
echo "through: $(cat /proc/self/cwd/f)"
echo "listing: $(ls /proc/self/cwd/ | tr '\n' ' ')"
echo "type: $(stat -c %F /proc/self/cwd) $(stat -L -c %F /proc/self/cwd) $(stat -c %F /proc/self/cwd/)"
echo "find: $(find /proc/self/cwd/ -maxdepth 1 | sort | tr '\n' ' ')"
echo made > /proc/self/cwd/new && echo "new: $(cat new)"
exec 3< "$ROOT/d"
echo "below fd: $(cat /proc/self/fd/3/f) $(cat /dev/fd/3/sub/g)"
echo "fd listing: $(ls /dev/fd/3/ | tr '\n' ' ') $(find /dev/fd/3/ -maxdepth 1 | sort | tr '\n' ' ')"
exec 4< "$ROOT/d/f"
cat /dev/fd/4/ 2>/dev/null || echo "a file's link with a slash: no directory"
sh -c 'echo "child: $(readlink /proc/$PPID/cwd) $(cat /proc/$PPID/cwd/f)"'
python3 -c 'import os; print("python:", os.readlink("/proc/self/cwd"), open("/proc/self/cwd/f").read().strip())'
'''


def _setup(root) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "f").write_text("eff\n")
    (root / "d" / "sub" / "g").write_text("gee\n")


@pytest.mark.parametrize("options", [(), ("--no-fast-path",)], ids=["fast-path", "every-call-stops"])
def test_proc_links_into_a_virtual_directory(objmount, tmp_path, options):
    local = tmp_path / "local"
    _setup(local)
    native = subprocess.run(["sh", "-c", SCRIPT], env={"ROOT": str(local), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True)
    store = tmp_path / "store"
    _setup(store)
    run = objmount(["env", "ROOT=/v", "sh", "-c", SCRIPT], "-m", f"/v=file://{store}", *options)
    assert run.returncode == native.returncode, run.stderr
    assert run.text.replace("/v", "ROOT") == native.stdout.replace(str(local), "ROOT"), run.stderr
