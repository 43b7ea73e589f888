"""objmount exec returns when the program exits, a second SIGINT/SIGTERM ends the whole
traced tree, and nothing traced is left running."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from exec_support import REPO, objmount_cmd

ENV = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(path, proc):
    deadline = time.time() + 30
    while not path.exists() or not path.read_text().endswith("\n"):
        assert proc.poll() is None, "objmount ended early"
        assert time.time() < deadline, "program did not start"
        time.sleep(0.05)
    return [int(x) for x in path.read_text().split()]


def test_exec_returns_when_the_program_exits_and_ends_what_it_left(tmp_path, cache_dir):
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids}; exit 3"
    done = subprocess.run(objmount_cmd("--cache-dir", str(cache_dir), "--", "sh", "-c", script),
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 3           # (and within the timeout, not after the sleep's 300 s)
    (background,) = [int(x) for x in pids.read_text().split()]
    assert not _alive(background)
    assert "left running" in done.stderr


def test_a_second_sigterm_ends_the_whole_traced_tree(tmp_path, cache_dir):
    pids, got = tmp_path / "pids", tmp_path / "got"
    # The shell shrugs off TERM; its child ignores it altogether.
    script = (f"trap 'echo got-term > {got}' TERM; sh -c 'trap \"\" TERM; sleep 300' & "
              f"echo $$ $! > {pids}; while :; do sleep 0.1; done")
    proc = subprocess.Popen(objmount_cmd("--cache-dir", str(cache_dir), "--", "sh", "-c", script),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        traced = _wait_for(pids, proc)
        proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 30
        while not got.exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert proc.poll() is None          # the first one only reached the program
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGKILL
    assert "second SIGTERM" in err.decode()
    for pid in traced:
        assert not _alive(pid)


def test_exec_returns_when_the_program_exits_while_what_it_left_is_forking(tmp_path, cache_dir):
    """A background shell forking without pause when the program exits: a child whose
    parent is killed before its fork event is reported must not keep the run waiting for
    ever in its first stop (with the quick loop and with the Python loop)."""
    for quick in ("1", "0"):
        script = "( while :; do sleep 8 & sleep 8 & sleep 8 & done ) & sleep 0.3; exit 0"
        done = subprocess.run(objmount_cmd("--cache-dir", str(cache_dir), "--", "sh", "-c", script),
                              capture_output=True, text=True, env=dict(ENV, OBJMOUNT_QUICK_LOOP=quick), timeout=60)
        assert done.returncode == 0, (quick, done.stderr)
        assert "left running" in done.stderr
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", "sleep 8"], capture_output=True, text=True).stdout.split()
    assert not [p for p in left if _alive(int(p))]
