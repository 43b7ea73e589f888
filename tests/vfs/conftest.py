"""Fixtures of the vfs tests that read a directory's files in listing order."""

from __future__ import annotations

import os

import pytest

KiB = 1024
LISTED_SIZE = 200 * KiB   # each of the ten objects of `files`


@pytest.fixture
def files(s3, bucket) -> dict[int, bytes]:
    """Ten objects d/f0..d/f9 of LISTED_SIZE random bytes: {i: bytes}."""
    data = {}
    for i in range(10):
        data[i] = os.urandom(LISTED_SIZE)
        s3.put_object(Bucket=bucket, Key=f"d/f{i}", Body=data[i])
    return data


@pytest.fixture
def read():
    """read(vfs, path, flags=O_RDONLY) -> the whole file as one open sees it (then closed,
    and the operation ended, as the supervisor does after each call)."""
    def read(vfs, path: str, flags: int = os.O_RDONLY) -> bytes:
        f = vfs.open(path, flags)
        try:
            f.ensure_all()
            with open(f.cache_path, "rb") as fh:
                return fh.read(f.item.size)
        finally:
            f.close()
            vfs.end_operation()
    return read


@pytest.fixture
def proxy(s3_server, monkeypatch):
    """The bucket behind a proxy of ours (tests/faultproxy.py) that records every request
    and can play faults or another server's answers; the Vfs made after it talks to it."""
    from faultproxy import FaultProxy
    p = FaultProxy(s3_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
    yield p
    p.close()
