"""Parked stops at the tracer level: a handler run on another thread, whose ptrace requests
the tracing thread makes for it. An injected call is one request however many stops it
makes on its way in (its entry, a seccomp stop when a filter traps it): those are passed
on the tracing thread, and the handler sees the call's exit only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

RUNNER = textwrap.dedent('''
    import collections, json, os, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from tracer import NR, SyscallFilter, Tracer, spawn
    def quick_loop():   # the quick loop when the test asks for it (conftest: QUICK_DIR)
        if not os.environ.get("QUICK_DIR"):
            return None
        from tracer import quickloop
        return quickloop.load(os.environ["QUICK_DIR"])

    AT_FDCWD = -100
    posted = collections.Counter()   # requests workers posted to the tracing thread, by kind

    class Handler:
        def __init__(self):
            self.pool = ThreadPoolExecutor(4)
            self.opens = []
        def on_syscall(self, stop):
            path = stop.read_cstring(stop.arg(1))
            self.opens.append(path.decode())
            if path == b"/virtual/answer":
                stop.tracer.park(stop, self.parked, self.pool.submit)
        def parked(self, stop):
            # One openat turned into another: the real file opened by an injected openat
            # (which the filter traps: a seccomp stop on its way in), moved up by an
            # injected fcntl (not trapped), the spare closed.
            stop.become(NR["getpid"])
            stop.run()
            at = stop.push(sys.argv[1].encode() + b"\\0")
            before = sum(posted.values())
            fd = stop.inject(NR["openat"], AT_FDCWD, at, os.O_RDONLY)
            one = sum(posted.values()) - before
            moved = stop.inject(NR["fcntl"], fd, 0, 600)
            stop.inject(NR["close"], fd)
            stop.set_result(moved)
            self.requests_for_one_inject = one
        def on_spawn(self, parent, child, flags): pass
        def on_exec(self, tgid): pass
        def on_exit(self, tgid): pass

    h = Handler()
    t = Tracer(h, quick_loop())
    serve = t.on_tracer
    def counting(fn, *args, **kw):
        if threading.get_ident() != t._thread:
            posted[getattr(fn, "__name__", "?")] += 1
        return serve(fn, *args, **kw)
    t.on_tracer = counting
    f = SyscallFilter(always={NR["openat"]}, fd_args={}, fd_base=600)
    spawn(t, sys.argv[2:], dict(os.environ), f)
    status = t.run()
    h.pool.shutdown()
    print(json.dumps({"status": status, "opens": h.opens, "one": h.requests_for_one_inject}), file=sys.stderr)
''')


pytestmark = pytest.mark.usefixtures("loop")


def test_an_injected_call_is_one_request_and_its_stops_on_the_way_in_are_not_the_handlers(tmp_path):
    answer = tmp_path / "answer.txt"
    answer.write_text("forty-two\n")
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    program = "import os; fd = os.open('/virtual/answer', os.O_RDONLY); print(fd, os.read(fd, 100).decode(), end='')"
    proc = subprocess.run([sys.executable, str(runner), str(answer), "python3", "-c", program],
                          capture_output=True, text=True, env=env, timeout=60)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert proc.stdout == "600 forty-two\n", proc.stderr
    assert report["status"] == 0
    # the injected openat stopped in the filter, but the handler never saw it as a call
    assert str(answer) not in report["opens"]
    assert report["one"] == 1
