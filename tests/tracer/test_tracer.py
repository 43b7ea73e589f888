"""The tracer on real processes: tree following, argument rewriting, skipping, injection."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest


RUNNER = textwrap.dedent('''
    import json, os, sys
    from tracer import NR, SyscallFilter, Tracer, spawn
    def quick_loop():   # the quick loop when the test asks for it (conftest: QUICK_DIR)
        if not os.environ.get("QUICK_DIR"):
            return None
        from tracer import quickloop
        return quickloop.load(os.environ["QUICK_DIR"])

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
    t = Tracer(h, quick_loop())
    if os.environ.get("PASS_LOCAL"):
        t.pass_local_paths(["/virtual"], {NR["openat"]: 1})
    f = SyscallFilter(always={NR["openat"]}, fd_args={NR["read"]: (0,)}, fd_base=600)
    spawn(t, sys.argv[2:], dict(os.environ), f)
    status = t.run()
    print(json.dumps({"status": status, "spawns": len(h.spawns), "execs": len(h.execs),
                      "exits": len(h.exits), "paths": h.paths, "stops": t.stops,
                      "flags": [flags for _, _, flags in h.spawns],
                      "passed": t.passed()}), file=sys.stderr)
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


pytestmark = pytest.mark.usefixtures("loop")


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


def test_a_fork_event_of_clone_carries_its_sharing_flags(tmp_path):
    """clone/clone3 with SIGCHLD and no CLONE_THREAD is reported as a fork event: the
    handler is told the flags all the same (CLONE_FILES, CLONE_FS), by either loop."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    probe = tmp_path / "clone_probe"
    source = os.path.join(os.path.dirname(os.path.dirname(__file__)), "exec", "clone_probe.c")
    subprocess.run(["gcc", "-O2", "-o", str(probe), source], check=True)
    (tmp_path / "root" / "dir").mkdir(parents=True)
    (tmp_path / "root" / "big.bin").write_bytes(b"x" * 1000)
    (tmp_path / "root" / "dir" / "f").write_text("hello from dir\n")
    proc, report = trace(tmp_path, str(probe), str(tmp_path / "root"))
    assert proc.returncode == 0 and proc.stdout.count("hello from dir") == 2, proc.stdout
    files, fs, thread = 0x400, 0x200, 0x10000
    assert [f & (files | fs | thread) for f in report["flags"]] == [files, files, fs] * 2


def test_exit_status_and_signal_death_are_reported(tmp_path):
    _, report = trace(tmp_path, "sh", "-c", "exit 5")
    assert os.WEXITSTATUS(report["status"]) == 5
    _, report = trace(tmp_path, "sh", "-c", "kill -KILL $$")
    assert os.WIFSIGNALED(report["status"]) and os.WTERMSIG(report["status"]) == 9


def test_unfiltered_syscalls_do_not_stop(tmp_path):
    # 10,000 getpid/write calls, a handful of openat stops.
    _, report = trace(tmp_path, "python3", "-c", "import os\nfor _ in range(10000): os.getpid(); os.write(1, b'')")
    assert report["stops"] < 2000


SLOW_PIPE = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
static volatile int ticks;
static void tick(int s) { (void)s; ticks++; }
int main(int argc, char **argv) {
    int p[2];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tick;
    sa.sa_flags = argv[1][0] == 'r' ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, 0);
    if (pipe(p) || dup2(p[0], 600) != 600) return 3;
    if (fork() == 0) {   /* a slow writer: 20 messages, 30 ms apart */
        for (int i = 0; i < 20; i++) { usleep(30000); if (write(p[1], "0123456789", 10) != 10) return 1; }
        return 0;
    }
    close(p[1]);
    struct itimerval it = {{0, 5000}, {0, 5000}};
    setitimer(ITIMER_REAL, &it, 0);
    char buf[64];
    long total = 0, eintr = 0, bad = 0;
    for (;;) {
        ssize_t n = read(600, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0 && errno == EINTR) { eintr++; continue; }
        if (n < 0 || n % 10 || memcmp(buf, "0123456789", 10)) { bad++; break; }
        total += n;
    }
    printf("%ld %s %ld\n", total, eintr ? "eintr" : "no-eintr", bad);
    return 0;
}
'''

RESTART_RUNNER = textwrap.dedent('''
    import os, sys
    from tracer import NR, SyscallFilter, Tracer, spawn
    def quick_loop():   # the quick loop when the test asks for it (conftest: QUICK_DIR)
        if not os.environ.get("QUICK_DIR"):
            return None
        from tracer import quickloop
        return quickloop.load(os.environ["QUICK_DIR"])

    class Handler:
        def on_syscall(self, stop):
            # Read into a buffer of ours below the stack, inject a call, copy back.
            buf, n = stop.arg(1), stop.arg(2)
            scratch = stop.push(bytes(n))
            stop.set_arg(1, scratch)
            r = stop.run()
            assert stop.inject(NR["getpid"]) == stop.tgid
            if r > 0:
                stop.write(buf, stop.read(scratch, r))
            stop.set_result(r)
        def on_spawn(self, parent, child, flags): pass
        def on_exec(self, tgid): pass
        def on_exit(self, tgid): pass

    t = Tracer(Handler(), quick_loop())
    spawn(t, sys.argv[1:], dict(os.environ), SyscallFilter(fd_args={NR["read"]: (0,)}, fd_base=600))
    t.run()
''')


def test_signals_interrupting_a_handled_syscall(tmp_path):
    """A read run by the handler (arguments rewritten, a call injected after it) on a
    slow pipe while a 200 Hz timer fires: with SA_RESTART it restarts as the kernel
    would and never fails; without, it fails with EINTR and nothing else. Every byte
    arrives either way."""
    import shutil
    if shutil.which("gcc") is None:
        import pytest
        pytest.skip("gcc not installed")
    src = tmp_path / "slow.c"
    src.write_text(SLOW_PIPE)
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "slow"), str(src)], check=True)
    runner = tmp_path / "runner.py"
    runner.write_text(RESTART_RUNNER)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    for mode, expect in (("restart", "200 no-eintr 0"), ("norestart", "200 eintr 0")):
        native = subprocess.run([str(tmp_path / "slow"), mode], capture_output=True, text=True, timeout=60)
        assert native.stdout.strip() == expect
        traced = subprocess.run([sys.executable, str(runner), str(tmp_path / "slow"), mode],
                                capture_output=True, text=True, timeout=60, env=env)
        assert traced.stdout.strip() == expect, traced.stderr


SLEEPER = r'''
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {   /* SIGWINCH (ignored by default) every 5 ms for half a second */
        for (int i = 0; i < 100; i++) { usleep(5000); kill(parent, SIGWINCH); }
        return 0;
    }
    int failures = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 5; i++) {
        struct timespec t = {0, 100000000};
        if (nanosleep(&t, 0) != 0) failures++;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    waitpid(child, 0, 0);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    printf("%d %s\n", failures, ms >= 500 ? "slept-enough" : "woke-early");
    return 0;
}
'''

SLEEP_RUNNER = textwrap.dedent('''
    import os, sys
    from tracer import NR, SyscallFilter, Tracer, spawn
    def quick_loop():   # the quick loop when the test asks for it (conftest: QUICK_DIR)
        if not os.environ.get("QUICK_DIR"):
            return None
        from tracer import quickloop
        return quickloop.load(os.environ["QUICK_DIR"])

    class Handler:
        def on_syscall(self, stop):
            # Sleep on a copy of the timespec below the stack, inject a call after it.
            stop.set_arg(2, stop.push(stop.read(stop.arg(2), 16)))   # clock_nanosleep(clock, flags, req, rem)
            r = stop.run()
            assert stop.inject(NR["getpid"]) == stop.tgid
            stop.set_result(r)
        def on_spawn(self, parent, child, flags): pass
        def on_exec(self, tgid): pass
        def on_exit(self, tgid): pass

    t = Tracer(Handler(), quick_loop())
    spawn(t, sys.argv[1:], dict(os.environ), SyscallFilter(always={NR["clock_nanosleep"]}, fd_base=600))
    t.run()
''')


def test_an_interrupted_sleep_restarts_through_restart_syscall(tmp_path):
    """A sleep interrupted by an ignored signal returns -ERESTART_RESTARTBLOCK at its
    exit; the kernel must be left to continue it with restart_syscall: 0, full length."""
    import shutil
    if shutil.which("gcc") is None:
        import pytest
        pytest.skip("gcc not installed")
    (tmp_path / "sleeper.c").write_text(SLEEPER)
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "sleeper"), str(tmp_path / "sleeper.c")], check=True)
    (tmp_path / "runner.py").write_text(SLEEP_RUNNER)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    native = subprocess.run([str(tmp_path / "sleeper")], capture_output=True, text=True, timeout=60)
    assert native.stdout == "0 slept-enough\n"
    traced = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "sleeper")],
                            capture_output=True, text=True, timeout=60, env=env)
    assert traced.stdout == "0 slept-enough\n", traced.stderr


FAMILY = ("import os, subprocess, threading\n"
          "t = threading.Thread(target=lambda: open('/virtual/answer').read()); t.start(); t.join()\n"
          "subprocess.run(['cat', '/virtual/answer'])\n"
          "subprocess.run(['sh', '-c', 'for i in 1 2 3; do /bin/true; done; cat /etc/hostname >/dev/null'])\n"
          "if os.fork() == 0:\n    os.execvp('cat', ['cat', '/virtual/answer'])\n"
          "os.wait()\n"
          "os.chdir('/'); open('etc/hostname').read()\n")


@pytest.mark.parametrize("loop", ["quick-loop"], indirect=True)
def test_the_quick_loop_lets_local_paths_go_and_books_every_event(tmp_path, loop, monkeypatch):
    """Against the Python loop of the same run: the same output, the same events booked
    (births, execs, ends), and the handler sees every openat but those of absolute paths
    outside the roots, which the quick loop answers itself."""
    monkeypatch.setenv("PASS_LOCAL", "1")
    quick, quick_report = trace(tmp_path, "python3", "-c", FAMILY)
    monkeypatch.delenv("QUICK_DIR")
    slow, slow_report = trace(tmp_path, "python3", "-c", FAMILY)
    assert quick.stdout == slow.stdout == "forty-two\nforty-two\n"
    for key in ("status", "spawns", "execs", "exits"):
        assert quick_report[key] == slow_report[key], key
    local = [p for p in slow_report["paths"] if p.startswith("/") and not p.startswith("/virtual")]
    assert local and "etc/hostname" in slow_report["paths"]
    assert quick_report["paths"] == [p for p in slow_report["paths"] if p not in local]
    assert quick_report["passed"] == {"openat": len(local)}
    assert quick_report["stops"] == slow_report["stops"]
