"""The command line: options, exit status, signals, stdio passthrough."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from exec_support import REPO, objmount_cmd

ENV = dict(os.environ, PYTHONPATH=str(REPO))


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "objmount", *args], capture_output=True, text=True, env=ENV, **kw)


def test_version_prints_the_package_version():
    out = cli("--version")
    assert out.returncode == 0
    assert "objmount, version 0.1.0" in out.stdout


def test_exec_help_documents_every_option():
    out = cli("exec", "--help")
    assert out.returncode == 0
    for option in ("--mount", "--cache-dir", "--cache-size", "--metadata-ttl", "--endpoint-url",
                   "--profile", "--region", "--verbose", "--stats-file", "--fast-path"):
        assert option in out.stdout


def test_exit_status_is_the_programs(objmount):
    assert objmount("exit 7").returncode == 7


def test_death_by_signal_exits_128_plus_signal(objmount):
    assert objmount("kill -TERM $$").returncode == 128 + signal.SIGTERM


def test_missing_command_exits_127_with_a_message(objmount):
    run = objmount(["no-such-command-xyz"])
    assert run.returncode == 127
    assert "no-such-command-xyz" in run.stderr


def test_stdin_stdout_env_and_cwd_pass_through(objmount, tmp_path):
    run = objmount('cat; echo "$OBJMOUNT_TEST_VAR"; pwd', input=b"from stdin\n", cwd=tmp_path,
                   env={"OBJMOUNT_TEST_VAR": "marker-42"})
    assert run.returncode == 0, run.stderr
    assert run.text == f"from stdin\nmarker-42\n{tmp_path}\n"


def test_malformed_mount_is_a_usage_error_before_anything_runs(objmount, tmp_path):
    marker = tmp_path / "ran"
    for spec in ("nodelimiter", "relative=s3://bucket", "/data=ftp://host/x", "/data=s3://",
                 # mount points that read as / or inside /objmount (a leading '//' included)
                 "//=s3://bucket", "/a/..=s3://bucket", "//objmount/x=s3://bucket"):
        run = objmount(f"touch {marker}", "-m", spec)
        assert run.returncode == 2, (spec, run.stderr)
        assert "Error" in run.stderr
        assert not marker.exists()


def test_a_mount_point_reads_as_the_kernel_reads_it(objmount, s3, bucket):
    """'//data' (os.path.normpath keeps a leading '//'), '/data/', '/a/../data': the mount
    is /data, for the supervisor, the fast path and the quick loop alike, and given twice
    in two spellings it is refused as any mount given twice."""
    s3.put_object(Bucket=bucket, Key="x", Body=b"hello\n")
    script = "cat /data/x; cd /data && cat x && ls; cat //data/x"
    for spec, options in (("//data", ()), ("//data", ("--no-fast-path",)), ("/data/", ()), ("/a/../data", ())):
        run = objmount(script, "-m", f"{spec}=s3://{bucket}", *options)
        assert (run.returncode, run.text) == (0, "hello\nhello\nx\nhello\n"), (spec, options, run.stderr)
    run = objmount("true", "-m", f"/data=s3://{bucket}", "-m", f"//data/=s3://{bucket}")
    assert run.returncode == 2 and "/data is given twice" in run.stderr


def test_sigterm_to_objmount_reaches_the_program(tmp_path, cache_dir):
    ready = tmp_path / "ready"
    script = f"trap 'echo got-term; exit 9' TERM; touch {ready}; while :; do sleep 0.1; done"
    proc = subprocess.Popen(objmount_cmd("--cache-dir", str(cache_dir), "--", "sh", "-c", script),
                            stdout=subprocess.PIPE, env=ENV)
    try:
        deadline = time.time() + 30
        while not ready.exists():
            assert time.time() < deadline, "program did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 9
    assert out == b"got-term\n"


def test_killing_the_supervisor_leaves_no_traced_process(tmp_path, cache_dir):
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen(objmount_cmd("--cache-dir", str(cache_dir), "--", "sh", "-c",
                                         f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; exec sleep 60"),
                            env=ENV)
    try:
        deadline = time.time() + 30
        while not pidfile.exists():
            assert time.time() < deadline
            time.sleep(0.05)
        child = int(pidfile.read_text())
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.time() + 10
        while os.path.exists(f"/proc/{child}") and _state(child) != "Z":
            assert time.time() < deadline, "traced program outlived its supervisor"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_traced_objmount_says_it_cannot_trace_instead_of_a_traceback(objmount):
    """Under another tracer (here: an outer objmount) ptrace is refused: one line, 125."""
    inner = " ".join(objmount_cmd()) + " -- true"
    run = objmount(["sh", "-c", f"{inner}; echo status=$?"])
    assert run.returncode == 0, run.stderr
    assert run.text.strip() == "status=125"
    assert "ptrace was refused" in run.stderr and "Traceback" not in run.stderr
