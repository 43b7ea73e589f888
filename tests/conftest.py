"""Shared fixtures: a real S3 server (moto, or rclone: OBJMOUNT_TEST_SERVER) on 127.0.0.1, a client, fresh buckets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import boto3
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER = os.environ.get("OBJMOUNT_TEST_SERVER", "moto")   # moto | rclone (rclone serve s3)


def pytest_configure(config):
    config.addinivalue_line("markers", "not_rclone(reason): needs what rclone serve s3 does not do; "
                                       "skipped with OBJMOUNT_TEST_SERVER=rclone, giving the reason")


def pytest_runtest_setup(item):
    mark = item.get_closest_marker("not_rclone")
    if mark is not None and SERVER == "rclone":
        pytest.skip(f"rclone serve s3: {mark.args[0]}")


@pytest.fixture(scope="session")
def s3_server_name() -> str:
    """moto or rclone: for the odd test that asks less of rclone (say why where it does)."""
    return SERVER


@pytest.fixture(scope="session")
def s3_server():
    """An S3 server in its own process (so traced programs and boto3 in the tests reach it
    over HTTP like a real endpoint): moto's, or `rclone serve s3` over a temporary
    directory with OBJMOUNT_TEST_SERVER=rclone. Stopped at the end of the session."""
    port = _free_port()
    root = None
    if SERVER == "rclone":
        root = tempfile.mkdtemp(prefix="objmount-rclone-")
        argv = ["rclone", "serve", "s3", "--auth-key", "testing,testing", "--addr", f"127.0.0.1:{port}", root]
    elif SERVER == "moto":
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    else:
        raise RuntimeError(f"OBJMOUNT_TEST_SERVER={SERVER!r}: moto or rclone")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"{SERVER} server did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if root:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def aws_env(s3_server):
    """Point every boto3 client — ours and the traced programs' — at the server."""
    saved = dict(os.environ)
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server,
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    })
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(var, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _lower_metadata(parsed, **_):
    if isinstance(parsed, dict) and isinstance(parsed.get("Metadata"), dict):
        parsed["Metadata"] = {k.lower(): v for k, v in parsed["Metadata"].items()}


@pytest.fixture
def s3(s3_server):
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    # User metadata names as S3 spells them (lower case): rclone serve s3 capitalizes them ('Mode').
    client.meta.events.register("after-call.s3", _lower_metadata)
    return client


@pytest.fixture
def bucket(s3):
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def recover(cache_dir):
    """recover(*dead) -> the lines of `objmount flush` on the same cache: what publishes
    the files of a killed supervisor. Each Vfs in `dead` has its locks dropped first, as
    its process would have at death."""
    from vfs import MountTable, Vfs, VfsConfig, recovery

    def run(*dead) -> list[str]:
        for v in dead:
            for item in list(v.cache.items.values()):
                item.unlock()
        again = Vfs(MountTable.parse([]), VfsConfig(cache_dir=cache_dir))
        try:
            return recovery.publish(again)[0]
        finally:
            again.close()
    return run


@pytest.fixture(params=["python-loop", "quick-loop"])
def loop(request, tmp_path_factory, monkeypatch):
    """Run a tracer test with the Python loop alone, and with the quick loop in front
    of it (tracer/quickloop.py): the runners in tests/tracer read QUICK_DIR."""
    if request.param == "quick-loop":
        from tracer import prefilter, quickloop
        directory = tmp_path_factory.getbasetemp() / "quickloop"
        try:
            quickloop.load(directory)
        except prefilter.PrefilterUnavailable as exc:
            pytest.skip(str(exc))
        monkeypatch.setenv("QUICK_DIR", str(directory))
    else:
        monkeypatch.delenv("QUICK_DIR", raising=False)
    return request.param
