"""Fixtures for running real programs under `objmount exec` against the moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from exec_support import REPO, compile_c, objmount_cmd


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: str
    stats: dict

    @property
    def text(self) -> str:
        return self.stdout.decode()

    def requests(self, op: str) -> int:
        return self.stats.get("vfs", {}).get("requests", {}).get(op, 0)

    @property
    def bytes_received(self) -> int:
        return self.stats.get("vfs", {}).get("bytes_received", 0)


@pytest.fixture
def objmount(cache_dir, tmp_path):
    """run(cmd, *options, input=b"", cwd=None, timeout=120) -> Run"""
    counter = iter(range(1_000_000))

    def run(cmd: list[str] | str, *options: str, input: bytes | None = None, cwd=None,
            timeout: float = 120, env: dict | None = None) -> Run:
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        stats = tmp_path / f"stats-{next(counter)}.json"
        full = objmount_cmd("--cache-dir", str(cache_dir), "--stats-file", str(stats), *options, "--", *cmd)
        environ = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        environ.update(env or {})
        proc = subprocess.run(full, input=input, capture_output=True, cwd=cwd, timeout=timeout, env=environ)
        data = json.loads(stats.read_text()) if stats.exists() else {}
        return Run(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"), data)

    return run


@pytest.fixture(scope="session")
def static_cat(tmp_path_factory) -> Path:
    """A statically linked program that copies files to stdout with raw read(2)s and
    reports errors as 'errno=N'."""
    out = compile_c(tmp_path_factory.mktemp("static") / "scat", r'''
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buf[65536];
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0) { printf("errno=%d\n", errno); return 2; }
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) write(1, buf, n);
        close(fd);
    }
    return 0;
}
''', "-static", "-O2", optional=True)
    if out is None:
        pytest.skip("static linking unavailable")
    return out


class Mounted:
    """A bucket mounted at /w, whole or below a prefix: the same test on both."""

    root = "/w"

    def __init__(self, objmount, s3, bucket: str, prefix: str):
        self._objmount, self.s3, self.bucket, self.prefix = objmount, s3, bucket, prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def run(self, cmd, *options, **kwargs) -> Run:
        return self._objmount(cmd, "-m", f"{self.root}={self.url}", *options, **kwargs)

    def put(self, key: str, body: bytes, **kwargs) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body, **kwargs)

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def meta(self, key: str) -> dict:
        return self.s3.head_object(Bucket=self.bucket, Key=self.prefix + key)["Metadata"]

    def keys(self) -> list[str]:
        """Every key below the mount, relative to it (the root's own marker left out)."""
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            out += [o["Key"][len(self.prefix):] for o in page.get("Contents", []) if o["Key"] != self.prefix]
        return sorted(out)


@pytest.fixture(params=["bucket", "prefix"])
def mounted(request, objmount, s3, bucket) -> Mounted:
    """The bucket at /w (`-m /w=s3://BUCKET`), or a prefix of it (`-m /w=s3://BUCKET/pre/fix`)."""
    return Mounted(objmount, s3, bucket, "" if request.param == "bucket" else "pre/fix/")


PROBE = REPO / "tests" / "probe" / "probe.py"
VIRTUAL_ROOT = "/objdiff"


@dataclass
class Differential:
    """Same steps, local directory and objmount: see `differential`."""
    local: list[list]
    virtual: list[list]
    phases: tuple[list, ...]
    stderr: list[str]

    def differences(self) -> list[str]:
        out = []
        for i, (phase, loc, vir) in enumerate(zip(self.phases, self.local, self.virtual)):
            for j, step in enumerate(phase if isinstance(phase, list) else []):
                a = loc[j] if j < len(loc) else "<missing>"
                b = vir[j] if j < len(vir) else "<missing>"
                if a != b:
                    out.append(f"phase {i} step {j} {step}:\n    local:    {a}\n    objmount: {b}")
        return out


@pytest.fixture
def differential(objmount, bucket, tmp_path):
    """compare(*phases, mount="bucket"|"prefix"|"file", options=()) runs each phase (a list of
    probe steps, see tests/probe/probe.py) as its own process on a local directory and as its
    own `objmount exec` run on a virtual one, and asserts every answer is the same. Later
    phases see what earlier ones left: a fresh run must agree with the local disk too. A
    phase may also be a callable, called between runs (to check the bucket directly).
    Returns the Differential (for further checks of the bucket)."""
    counter = iter(range(1000))

    def compare(*phases: list, mount: str = "bucket", options: tuple = ()) -> Differential:
        n = next(counter)
        local_root = tmp_path / f"local-{n}"
        local_root.mkdir()
        if mount == "bucket":
            url = f"s3://{bucket}"
        elif mount == "prefix":
            url = f"s3://{bucket}/pre/fix-{n}"
        elif mount == "file":
            store = tmp_path / f"store-{n}"
            store.mkdir()
            url = f"file://{store}"
        else:
            raise ValueError(mount)
        local, virtual, errors = [], [], []
        for i, steps in enumerate(phases):
            if callable(steps):  # a check between runs (of the bucket, say)
                steps()
                local.append([])
                virtual.append([])
                continue
            spec = tmp_path / f"steps-{n}-{i}.json"
            spec.write_text(json.dumps(steps))
            native = subprocess.run([sys.executable, str(PROBE), str(local_root), str(spec)],
                                    capture_output=True, timeout=120)
            assert native.returncode == 0, native.stderr.decode()
            local.append(json.loads(native.stdout))
            run = objmount([sys.executable, str(PROBE), VIRTUAL_ROOT, str(spec)],
                           "-m", f"{VIRTUAL_ROOT}={url}", *options)
            errors.append(run.stderr)
            assert run.returncode == 0, run.stderr
            virtual.append(json.loads(run.stdout))
        result = Differential(local, virtual, phases, errors)
        diff = result.differences()
        assert not diff, "objmount differs from a local directory:\n" + "\n".join(diff) + \
            "\nobjmount stderr:\n" + "".join(errors)
        return result

    return compare


@pytest.fixture
def proxy(s3_server):
    """A fault-injecting proxy (tests/faultproxy.py) in front of the moto server."""
    from faultproxy import FaultProxy
    p = FaultProxy(s3_server)
    yield p
    p.close()
