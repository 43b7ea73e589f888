"""Running commands natively and under objmount, timing them, counting requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    seconds: float
    stats: dict = field(default_factory=dict)
    stdout: bytes = b""
    ptrace_stops: dict = field(default_factory=dict)   # by kind, with count_stops (see stopcount.py)

    def requests(self) -> dict:
        return self.stats.get("vfs", {}).get("requests", {})

    @property
    def sent(self) -> int:
        return self.stats.get("vfs", {}).get("bytes_sent", 0)

    @property
    def received(self) -> int:
        return self.stats.get("vfs", {}).get("bytes_received", 0)


class Harness:
    def __init__(self, endpoint: str, env: dict[str, str], latency_ms: float = 20.0):
        self.endpoint = endpoint
        self.latency_ms = latency_ms
        self.env = dict(env, PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
        # Measure objmount as installed, with its bytecode cached: without this, every run
        # would compile its ~70 modules again (~45 ms of start-up).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.tmp = Path(tempfile.mkdtemp(prefix="objmount-bench-work-"))
        self._n = 0

    def via(self, endpoint: str) -> "Harness":
        """The same harness (work directory, credentials) talking to another endpoint."""
        other = Harness.__new__(Harness)
        other.__dict__.update(self.__dict__, endpoint=endpoint, env=dict(self.env, AWS_ENDPOINT_URL=endpoint))
        return other

    def client(self, counter: Counter | None = None):
        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                          aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])
        if counter is not None:
            def count(event_name, **kwargs):
                counter[event_name.split(".")[-1]] += 1
            s3.meta.events.register("before-call.s3.*", count)
        return s3

    def native(self, cmd: list[str], prefix: list[str] = (), cwd: str | None = None) -> Result:
        start = time.perf_counter()
        out = subprocess.run([*prefix, *cmd], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            raise RuntimeError(f"{cmd} failed: {out.stderr.decode()[-500:]}")
        return Result(seconds, stdout=out.stdout)

    def objmount(self, cmd: list[str], *options: str, prefix: list[str] = (), cache: str | None = None,
                 count_stops: bool = False, cwd: str | None = None) -> Result:
        """Run cmd under objmount; with count_stops, every ptrace stop is counted by kind
        (benchmarks/stopcount.py wraps the supervisor's waitpid)."""
        self._n += 1
        stats = self.tmp / f"stats-{self._n}.json"
        stops = self.tmp / f"stops-{self._n}.json"
        cache_dir = cache or str(self.tmp / f"cache-{self._n}")
        entry = ["-m", "benchmarks.stopcount", str(stops)] if count_stops else ["-m", "objmount"]
        full = [*prefix, sys.executable, *entry, "exec", "--cache-dir", cache_dir,
                "--stats-file", str(stats), *options, "--", *cmd]
        start = time.perf_counter()
        out = subprocess.run(full, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            raise RuntimeError(f"objmount {cmd} failed ({out.returncode}): {out.stderr.decode()[-500:]}")
        return Result(seconds, json.loads(stats.read_text()) if stats.exists() else {}, out.stdout,
                      json.loads(stops.read_text()) if stops.exists() else {})

    def best(self, runs: int, fn):
        """The fastest of a few runs: the least disturbed by a noisy shared machine."""
        results = [fn() for _ in range(runs)]
        return min(results, key=lambda r: r.seconds)

    def versus(self, runs: int, native, objmount) -> tuple[Result, Result]:
        """The fastest of a few runs of each, alternated, so that a slow spell of the
        machine falls on both sides rather than on one."""
        pairs = [(native(), objmount()) for _ in range(runs)]
        return (min((p[0] for p in pairs), key=lambda r: r.seconds),
                min((p[1] for p in pairs), key=lambda r: r.seconds))
