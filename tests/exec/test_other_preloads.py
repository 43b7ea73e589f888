"""fakeroot and faketime preload their own libraries: every answer is the same with and
without the fast path, on local and on virtual paths, whichever order the preloads come in
(faketime appends its library after the fast path's, fakeroot puts its own first, and a
preload objmount itself was started with stays before the fast path's)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess

import pytest

from exec_support import REPO, objmount_cmd

pytestmark = pytest.mark.skipif(not (shutil.which("fakeroot") and shutil.which("faketime")),
                                reason="fakeroot and faketime not installed")

FAKEROOT = "touch {d}/f; chown 123:456 {d}/f; ls -ln {d}/f | cut -d' ' -f1-4; stat -c '%u %g %a' {d}/f; id -u"
FAKETIME = "date +%s; touch -d @1500000000 {d}/u; stat -c %Y {d}/u; date -r {d}/u +%s"


def compare(run, bucket, tmp_path, script: str, wrap: tuple = ()) -> list[str]:
    """The script on a local and a virtual directory, each with and without the fast
    path; asserts the answers agree and returns them (local, virtual)."""
    out = []
    for where in ("local", "virtual"):
        answers = []
        for fast in (True, False):
            d = tmp_path / f"{where}-{fast}" if where == "local" else f"/w/{where}-{fast}"
            cmd = [*wrap, "sh", "-c", f"mkdir -p {d} && " + script.format(d=d)]
            options = ["-m", f"/w=s3://{bucket}", *([] if fast else ["--no-fast-path"])]
            returncode, text, stderr = run(cmd, options)
            assert returncode == 0, stderr
            answers.append(text)
        assert answers[0] == answers[1], f"{where}: with the fast path {answers[0]!r}, without {answers[1]!r}"
        out.append(answers[0])
    return out


def inside(objmount):
    def run(cmd, options):
        r = objmount(cmd, *options)
        return r.returncode, r.text, r.stderr
    return run


@pytest.fixture
def faked():
    """A fakeroot daemon started outside objmount (the key for FAKEROOTKEY) and the
    library that talks to it. (`fakeroot` started under objmount often fails to start
    its daemon, with or without the fast path: a tracer matter, not this one.)"""
    libs = glob.glob("/usr/lib/*/libfakeroot/libfakeroot-sysv.so")
    if not libs or not shutil.which("faked-sysv"):
        pytest.skip("faked-sysv not installed")
    key, pid = subprocess.run(["faked-sysv"], capture_output=True, text=True, check=True).stdout.strip().split(":")
    yield key, libs[0]
    os.kill(int(pid), signal.SIGTERM)


def test_fakeroot_appended_by_the_program(objmount, bucket, tmp_path, faked):
    """As faketime does: the program puts libfakeroot after the fast path's library."""
    key, lib = faked
    wrap = ("env", f"FAKEROOTKEY={key}", "sh", "-c", f'LD_PRELOAD="$LD_PRELOAD:{lib}" exec "$@"', "-")
    local, virtual = compare(inside(objmount), bucket, tmp_path, FAKEROOT, wrap=wrap)
    assert local.splitlines()[1:] == ["123 456 644", "0"]
    assert virtual == local


def test_faketime_run_by_the_program(objmount, bucket, tmp_path):
    local, virtual = compare(inside(objmount), bucket, tmp_path, FAKETIME, wrap=("faketime", "-f", "2020-01-02 03:04:05"))
    assert local.splitlines()[:2] == ["1577934245", "1500000000"]
    assert virtual == local


def test_fakeroot_around_objmount(bucket, tmp_path, cache_dir):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run(cmd, options):
        done = subprocess.run(["fakeroot", *objmount_cmd("--cache-dir", str(cache_dir), *options, "--", *cmd)],
                              capture_output=True, text=True, env=env, timeout=120)
        return done.returncode, done.stdout, done.stderr
    local, virtual = compare(run, bucket, tmp_path, FAKEROOT)
    assert local.splitlines()[1:] == ["123 456 644", "0"]
    assert virtual == local
