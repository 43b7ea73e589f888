"""The quick loop's log holds ~509 events per pass: when a pass ends because it is full,
the statuses still waiting must be taken at once, not after the tracing thread's poll
(up to 500 ms) — while a stop is parked the loop sleeps on a signalfd for SIGCHLD, and
the SIGCHLD of those statuses was read already.

The burst: 600 children killed from the tracing thread while a parked stop's worker
waits for their exits, so that all 600 exits wait at once when the loop looks. The
poll is watched: sleeping while a status waits (and no descriptor says so) is the bug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

RUNNER = textwrap.dedent('''
    import errno, json, os, select, signal, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from tracer import NR, SyscallFilter, Tracer, spawn
    import tracer.tracer as tracing
    def quick_loop():   # the quick loop when the test asks for it (conftest: QUICK_DIR)
        if not os.environ.get("QUICK_DIR"):
            return None
        from tracer import quickloop
        return quickloop.load(os.environ["QUICK_DIR"])

    N = int(sys.argv[1])
    WALL = 0x40000000
    asleep_with_work = []   # polls that would sleep while a status waits, unannounced

    def waiting() -> bool:
        try:
            return os.waitid(os.P_ALL, 0, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT | WALL) is not None
        except ChildProcessError:
            return False

    class WatchedPoll:
        def __init__(self):
            self.inner = select.poll()
        def register(self, *args):
            self.inner.register(*args)
        def poll(self, timeout=None):
            if waiting() and not self.inner.poll(0) and not self.inner.poll(50):
                asleep_with_work.append(time.monotonic())   # 50 ms and still no SIGCHLD for it
            return self.inner.poll(timeout)

    class Select:
        poll = WatchedPoll
        POLLIN = select.POLLIN
    tracing.select = Select

    class Handler:
        def __init__(self):
            self.pool = ThreadPoolExecutor(2)
            self.children = []
            self.exits = 0
            self.all_gone = threading.Event()
            self.killed_at = self.gone_at = 0.0
        def on_syscall(self, stop):
            if stop.read_cstring(stop.arg(1)) == b"/virtual/park":
                stop.tracer.park(stop, self.parked, self.pool.submit)
        def parked(self, stop):
            stop.tracer.on_tracer(self.kill_all_children)
            self.all_gone.wait(30)
            stop.fail(errno.ENOENT)
        def kill_all_children(self):
            # On the tracing thread: every exit waits before the loop looks again.
            for pid in self.children:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 20
            for pid in self.children:
                while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT | WALL) is None:
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.001)
            self.killed_at = time.monotonic()
        def on_spawn(self, parent, child, flags):
            if child != parent:
                self.children.append(child)
        def on_exec(self, tgid): pass
        def on_exit(self, tgid):
            if tgid in self.children:
                self.exits += 1
                if self.exits == len(self.children):
                    self.gone_at = time.monotonic()
                    self.all_gone.set()

    h = Handler()
    t = Tracer(h, quick_loop())
    f = SyscallFilter(always={NR["openat"]}, fd_args={}, fd_base=600)
    spawn(t, sys.argv[2:], dict(os.environ), f)
    status = t.run()
    h.pool.shutdown()
    print(json.dumps({"status": status, "children": len(h.children), "exits": h.exits,
                      "asleep_with_work": len(asleep_with_work),
                      "exits_booked_after": h.gone_at - h.killed_at}), file=sys.stderr)
''')

PROGRAM = textwrap.dedent('''
    import os, signal, sys
    kids = []
    for _ in range(int(sys.argv[1])):
        pid = os.fork()
        if pid == 0:
            while True:
                signal.pause()
        kids.append(pid)
    try:
        os.open("/virtual/park", os.O_RDONLY)
    except OSError as e:
        print("park", e.errno)
    print("killed", sum(os.WIFSIGNALED(os.waitpid(pid, 0)[1]) for pid in kids))
''')

pytestmark = pytest.mark.usefixtures("loop")


def test_a_full_log_never_leaves_the_loop_asleep_while_statuses_wait(tmp_path):
    n = 600   # more exits than the log holds in one pass
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    proc = subprocess.run([sys.executable, str(runner), str(n), sys.executable, "-c", PROGRAM, str(n)],
                          capture_output=True, text=True, env=env, timeout=120)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert proc.stdout == f"park 2\nkilled {n}\n", proc.stderr
    assert report["status"] == 0 and report["children"] == report["exits"] == n, report
    assert report["asleep_with_work"] == 0, report
