"""No root needed: objmount works with every capability dropped, and the README's
quick start runs on the embedded file:// store with no S3 configured."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from exec_support import REPO


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
def test_runs_with_no_capabilities(s3, bucket, cache_dir):
    s3.put_object(Bucket=bucket, Key="k", Body=b"no privileges needed\n")
    cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs",
           sys.executable, "-m", "objmount", "exec", "--cache-dir", str(cache_dir), "--",
           "sh", "-c", f"grep CapEff /proc/self/status; cat s3://{bucket}/k"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["CapEff:\t0000000000000000", "no privileges needed"]


def test_readme_quick_start_runs_on_the_embedded_default(tmp_path):
    readme = (REPO / "README.md").read_text()
    line = next(l.strip() for l in readme.splitlines() if l.strip().startswith("pip install") and "objmount exec" in l)
    quick = line.split("&&", 1)[1].strip()   # the install part is what CI already did
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "objmount").write_text(f"#!/bin/sh\nexec {sys.executable} -m objmount \"$@\"\n")
    (shim / "objmount").chmod(0o755)
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    out = subprocess.run(["sh", "-c", quick], cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "README.md" in out.stdout and "# objmount" in out.stdout
