"""The whole process tree is followed: shells, make -j, subprocess, threads, vfork."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

FILES = {f"f{i}.bin": os.urandom(200_000 + i) for i in range(6)}


@pytest.fixture
def files(s3, bucket):
    for key, data in FILES.items():
        s3.put_object(Bucket=bucket, Key=f"d/{key}", Body=data)
    return f"/objmount/s3/{bucket}/d"


def test_nested_shells_and_pipes(objmount, files):
    run = objmount(f"sh -c 'cat {files}/f0.bin | sh -c \"cat > /dev/null; cat {files}/f1.bin\"' | wc -c")
    assert run.returncode == 0, run.stderr
    assert int(run.text) == len(FILES["f1.bin"])


def test_make_j2_reads_virtual_inputs(objmount, files, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    rules = "".join(f"out/{k}.sha: {files}/{k}\n\tmkdir -p out && sha256sum < $< > $@\n" for k in FILES)
    (tmp_path / "Makefile").write_text("all: " + " ".join(f"out/{k}.sha" for k in FILES) + "\n" + rules)
    run = objmount(["make", "-s", "-j2", "-C", str(tmp_path)])
    assert run.returncode == 0, run.stderr
    for k, data in FILES.items():
        assert (tmp_path / "out" / f"{k}.sha").read_text().split()[0] == hashlib.sha256(data).hexdigest()


def test_python_subprocess_and_posix_spawn(objmount, files):
    script = f"""
import os, subprocess
a = subprocess.run(['cat', '{files}/f2.bin'], capture_output=True).stdout
pid = os.posix_spawn('/bin/cat', ['cat', '{files}/f3.bin'], os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, '/dev/null', os.O_WRONLY, 0)])
_, status = os.waitpid(pid, 0)
print(len(a), status)
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    assert run.text.split() == [str(len(FILES["f2.bin"])), "0"]


def test_multithreaded_reader(objmount, files):
    script = f"""
import hashlib, threading
out = {{}}
def work(name):
    with open('{files}/' + name, 'rb') as f:
        h = hashlib.sha256()
        while chunk := f.read(7000):
            h.update(chunk)
    out[name] = h.hexdigest()
threads = [threading.Thread(target=work, args=(n,)) for n in {sorted(FILES)!r}]
[t.start() for t in threads]; [t.join() for t in threads]
for n in sorted(out): print(n, out[n])
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    expected = "".join(f"{k} {hashlib.sha256(v).hexdigest()}\n" for k, v in sorted(FILES.items()))
    assert run.text == expected


def test_descriptors_survive_fork_and_exec_and_cloexec_is_respected(objmount, files):
    # The shell opens fd 5 without CLOEXEC; the child inherits it across exec.
    run = objmount(f"exec 5< {files}/f4.bin; cat <&5 | wc -c; python3 -c 'import os; os.read(5, 1)' 2>&1 | tail -1")
    assert run.returncode == 0, run.stderr
    lines = run.text.splitlines()
    assert int(lines[0]) == len(FILES["f4.bin"])
    script = f"""
import os, subprocess
fd = os.open('{files}/f5.bin', os.O_RDONLY)          # Python opens with O_CLOEXEC
r = subprocess.run(['sh', '-c', f'cat <&{{fd}} | wc -c'], pass_fds=(), capture_output=True, text=True)
dup = os.dup(fd); os.set_inheritable(dup, True)
s = subprocess.run(['python3', '-c', f'import os; print(len(os.read({{dup}}, 10**6)))'], pass_fds=(dup,),
                   capture_output=True, text=True)
print(r.returncode != 0 or r.stdout.strip() == '0', s.stdout.strip())
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    closed, size = run.text.split()
    assert closed == "True"
    assert int(size) == len(FILES["f5.bin"])


def test_dev_fd_and_proc_self_fd_reopen_the_object(objmount, files):
    script = f"""
import os
fd = os.open('{files}/f3.bin', os.O_RDONLY)
print(os.readlink(f'/proc/self/fd/{{fd}}'))
print(len(open(f'/dev/fd/{{fd}}', 'rb').read()), len(open(f'/proc/self/fd/{{fd}}', 'rb').read()))
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    link, sizes = run.text.splitlines()
    assert link == f"{files}/f3.bin"
    assert sizes == f"{len(FILES['f3.bin'])} {len(FILES['f3.bin'])}"
