"""The prefilter on its own (no objmount): with it preloaded, a program's calls on paths
outside the roots run without a stop, and calls under the roots still stop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RUNNER = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    from tracer import NR, SyscallFilter, Tracer, prefilter, spawn

    class Handler:
        paths = []
        def on_syscall(self, stop):
            self.paths.append(stop.read_cstring(stop.arg(0 if stop.nr == NR["execve"] else 1)).decode())
            if self.paths[-1].startswith("/virtual/"):
                stop.fail(13)   # EACCES: proves the supervisor answered
        def on_spawn(self, *a): pass
        def on_exec(self, tgid): pass
        def on_exit(self, tgid): pass

    use, lib_dir, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    f = SyscallFilter(always={NR["openat"], NR["newfstatat"], NR["execve"]}, fd_base=600)
    env = dict(os.environ)
    if use == "yes":
        env = prefilter.environ(env, prefilter.build(Path(lib_dir)), ["/virtual"], 600)
        f.trusted_ip = prefilter.TRUSTED_IP
    h = Handler()
    t = Tracer(h)
    spawn(t, argv, env, f)
    status = t.run()
    print(json.dumps({"status": status, "paths": h.paths}), file=sys.stderr)
''')


def trace(tmp_path, use: bool, *argv: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(runner), "yes" if use else "no", str(tmp_path / "lib"), *argv],
                          capture_output=True, text=True, env=env, timeout=60)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc, report["paths"]


@pytest.fixture(autouse=True)
def need_cc():
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler")


def test_local_opens_run_in_the_process_and_root_paths_still_stop(tmp_path):
    local = tmp_path / "local.txt"
    local.write_text("local\n")
    proc, paths = trace(tmp_path, True, "cat", str(local), "/virtual/x")
    assert proc.stdout == "local\n"
    assert "Permission denied" in proc.stderr            # the handler's answer reached cat
    assert "/virtual/x" in paths
    assert str(local) not in paths


def test_without_the_prefilter_every_open_stops(tmp_path):
    local = tmp_path / "local.txt"
    local.write_text("local\n")
    proc, paths = trace(tmp_path, False, "cat", str(local), "/virtual/x")
    assert proc.stdout == "local\n"
    assert str(local) in paths and "/virtual/x" in paths


def test_dotdot_and_root_components_are_left_to_the_supervisor(tmp_path):
    proc, paths = trace(tmp_path, True, "sh", "-c", "cd / && cat virtual/a; cat /tmp/../virtual/b; cat /virtual//c")
    assert "virtual/a" in paths
    assert "/tmp/../virtual/b" in paths
    assert "/virtual//c" in paths
    assert "/virtual//c: Permission denied" in proc.stderr


def test_dotdot_that_stays_local_runs_in_the_process(tmp_path):
    """'..' is resolved against the real directory (fts climbs with openat(fd, "..")): only
    when it leads into a root does the call stop."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "f.txt").write_text("up\n")
    proc, paths = trace(tmp_path, True, "sh", "-c", f"cd {tmp_path}/sub && cat ../f.txt && cd / && cat tmp/../virtual/y")
    assert proc.stdout == "up\n"
    assert "../f.txt" not in paths
    assert "tmp/../virtual/y" in paths


def test_a_shells_path_search_runs_in_the_process_and_root_programs_still_stop(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env_path = f"{bindir}:/usr/bin:/bin"
    proc, paths = trace(tmp_path, True, "sh", "-c", f"PATH={env_path}; cat /dev/null && echo ran; /virtual/prog")
    assert proc.stdout == "ran\n"
    assert f"{bindir}/cat" not in paths                 # the failed probe did not stop
    assert "/virtual/prog" in paths and "Permission denied" in proc.stderr
    _, untouched = trace(tmp_path, False, "sh", "-c", f"PATH={env_path}; cat /dev/null")
    assert f"{bindir}/cat" in untouched


def test_the_library_is_built_once_and_reused(tmp_path):
    from tracer import prefilter
    first = prefilter.build(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert prefilter.build(tmp_path) == first
    assert first.stat().st_mtime_ns == mtime


def test_a_missing_compiler_is_a_clear_error(tmp_path):
    from tracer import prefilter
    with pytest.raises(prefilter.PrefilterUnavailable, match="building the prefilter failed"):
        prefilter.build(tmp_path, cc="/bin/false")


REALPATH_CASES = ["/t/f", "f", "./d/../f", "l1", "l1/g", "l2/e/g", "l3", "l4/g/", "l4/g/..", "f/", "f/..", "f/x",
                  "loop", "dangling", "missing", "/", "/t/d//e/./g", "..", "", "d/e/", "l1/..", "/t/l4"]

REALPATH_PROBE = '''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.realpath.restype = ctypes.c_char_p
os.chdir(sys.argv[1])
for case in sys.argv[2:]:
    ctypes.set_errno(0)
    r = libc.realpath(case.replace("/t/", sys.argv[1] + "/").encode(), None)
    print(repr(case), r.decode().replace(sys.argv[1], "/t") if r else f"errno={ctypes.get_errno()}")
'''


def test_realpath_resolves_like_libc(tmp_path):
    """The prefilter's own realpath (libc's readlinks each component from inside libc,
    where a preload cannot see them) gives libc's answers, errors included."""
    from tracer import prefilter
    t = tmp_path / "t"
    (t / "d" / "e").mkdir(parents=True)
    (t / "f").touch()
    (t / "d" / "e" / "g").touch()
    for name, target in {"l1": "d/e", "l2": str(t / "d"), "l3": "../t/l1/g", "loop": "loop", "l4": "l1",
                         "dangling": "nowhere"}.items():
        (t / name).symlink_to(target)
    argv = [sys.executable, "-c", REALPATH_PROBE, str(t), *REALPATH_CASES]
    native = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    env = prefilter.environ(dict(os.environ), prefilter.build(tmp_path / "lib"), ["/objmount"], 600)
    preloaded = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    assert preloaded == native
    assert "'l3' /t/d/e/g" in native and "'loop' errno=40" in native and "'f/..' errno=20" in native


EXEC_PROBE = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def argv(*a):
    arr = (ctypes.c_char_p * (len(a) + 1))(*[x.encode() for x in a], None)
    return arr
def child(label, fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        fn()
        os.write(1, f"errno={ctypes.get_errno()}".encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    print(label, os.read(r, 1000).decode().strip().replace("\n", "|"))
os.chdir(sys.argv[1])
os.environ["PATH"] = f"{sys.argv[1]}/noexec::{sys.argv[1]}/bin:/usr/bin"
child("found", lambda: libc.execvp(b"hello", argv("hello", "a b")))
child("eacces-then-found", lambda: libc.execvp(b"both", argv("both")))
child("only-eacces", lambda: libc.execvp(b"denied", argv("denied")))
child("missing", lambda: libc.execvp(b"no-such-program", argv("x")))
child("empty-element-is-cwd", lambda: libc.execvp(b"incwd", argv("incwd")))
child("noshebang", lambda: libc.execvp(b"plain", argv("plain", "arg1")))
child("slash", lambda: libc.execvp(b"./incwd", argv("incwd")))
child("empty", lambda: libc.execvp(b"", argv("x")))
child("execlp", lambda: libc.execlp(b"hello", b"hello", b"via-execlp", None))
child("execle", lambda: libc.execle(b"/usr/bin/printenv", b"printenv", b"ONLY", None, argv("ONLY=yes")))
'''


def test_execvp_searches_path_like_libc(tmp_path):
    from tracer import prefilter
    root = tmp_path / "t"
    for d in ("noexec", "bin"):
        (root / d).mkdir(parents=True)
    def script(path, body, mode=0o755):
        path.write_text(body)
        path.chmod(mode)
    script(root / "bin" / "hello", "#!/bin/sh\necho hello \"$@\"\n")
    script(root / "noexec" / "both", "#!/bin/sh\necho wrong\n", 0o644)
    script(root / "bin" / "both", "#!/bin/sh\necho right\n")
    script(root / "noexec" / "denied", "#!/bin/sh\necho wrong\n", 0o644)
    script(root / "incwd", "#!/bin/sh\necho cwd\n")
    script(root / "bin" / "plain", "echo plain \"$0\" \"$@\"\n")
    argv = [sys.executable, "-c", EXEC_PROBE, str(root)]
    native = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    env = prefilter.environ(dict(os.environ), prefilter.build(tmp_path / "lib"), ["/objmount"], 600)
    preloaded = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    assert preloaded == native
    lines = dict(line.split(" ", 1) for line in native.splitlines())
    assert lines["found"] == "hello a b" and lines["eacces-then-found"] == "right"
    assert lines["only-eacces"] == "errno=13" and lines["missing"] == "errno=2"
    assert lines["empty-element-is-cwd"] == "cwd" and lines["noshebang"].startswith("plain")
    assert lines["execlp"] == "hello via-execlp" and lines["execle"] == "yes"
