"""The tracer on real processes: tree following, argument rewriting, skipping, injection."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


RUNNER = textwrap.dedent('''
    import json, os, sys
    from tracer import NR, SyscallFilter, Tracer, spawn

    class Handler:
        def __init__(self):
            self.spawns, self.execs, self.exits, self.paths = [], [], [], []
        def on_syscall(self, stop):
            if stop.nr == NR["openat"]:
                path = stop.read_cstring(stop.arg(1))
                self.paths.append(path.decode())
                if path == b"/virtual/answer":          # rewrite the argument
                    stop.set_arg(1, stop.push(sys.argv[1].encode() + b"\\0"))
                    fd = stop.run()
                    if fd >= 0:                         # then move the descriptor up
                        new = stop.inject(NR["fcntl"], fd, 0, 600)
                        stop.inject(NR["close"], fd)
                        stop.set_result(new)
                elif path == b"/virtual/denied":
                    stop.fail(13)
        def on_spawn(self, parent, child, flags): self.spawns.append((parent, child, flags))
        def on_exec(self, tgid): self.execs.append(tgid)
        def on_exit(self, tgid): self.exits.append(tgid)

    h = Handler()
    t = Tracer(h)
    f = SyscallFilter(always={NR["openat"]}, fd_args={NR["read"]: (0,)}, fd_base=600)
    spawn(t, sys.argv[2:], dict(os.environ), f)
    status = t.run()
    print(json.dumps({"status": status, "spawns": len(h.spawns), "execs": len(h.execs),
                      "exits": len(h.exits), "paths": h.paths, "stops": t.stops}), file=sys.stderr)
''')


def trace(tmp_path, *argv: str) -> tuple[subprocess.CompletedProcess, dict]:
    import json
    answer = tmp_path / "answer.txt"
    answer.write_text("forty-two\n")
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    proc = subprocess.run([sys.executable, str(runner), str(answer), *argv], capture_output=True, text=True,
                          env=env, timeout=60)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc, report


def test_rewritten_path_and_moved_descriptor(tmp_path):
    proc, report = trace(tmp_path, "python3", "-c",
                         "import os; fd = os.open('/virtual/answer', os.O_RDONLY); print(fd, os.read(fd, 100).decode(), end='')")
    assert proc.stdout == "600 forty-two\n"
    assert report["status"] == 0


def test_skipped_syscall_returns_the_handlers_errno(tmp_path):
    proc, _ = trace(tmp_path, "python3", "-c",
                    "import os\ntry: os.open('/virtual/denied', os.O_RDONLY)\nexcept OSError as e: print(e.errno)")
    assert proc.stdout.strip() == "13"


def test_follows_fork_vfork_threads_and_exec(tmp_path):
    script = ("import os, subprocess, threading\n"
              "t = threading.Thread(target=lambda: open('/virtual/answer').read()); t.start(); t.join()\n"
              "subprocess.run(['cat', '/virtual/answer'])\n"
              "if os.fork() == 0:\n    os.execvp('cat', ['cat', '/virtual/answer'])\n"
              "os.wait()\n")
    proc, report = trace(tmp_path, "python3", "-c", script)
    assert proc.stdout == "forty-two\nforty-two\n"
    assert report["spawns"] >= 3          # thread, subprocess (vfork/clone), fork
    assert report["execs"] >= 3           # python itself, cat, cat
    assert report["exits"] >= 3


def test_exit_status_and_signal_death_are_reported(tmp_path):
    _, report = trace(tmp_path, "sh", "-c", "exit 5")
    assert os.WEXITSTATUS(report["status"]) == 5
    _, report = trace(tmp_path, "sh", "-c", "kill -KILL $$")
    assert os.WIFSIGNALED(report["status"]) and os.WTERMSIG(report["status"]) == 9


def test_unfiltered_syscalls_do_not_stop(tmp_path):
    # 10,000 getpid/write calls, a handful of openat stops.
    _, report = trace(tmp_path, "python3", "-c", "import os\nfor _ in range(10000): os.getpid(); os.write(1, b'')")
    assert report["stops"] < 2000
