"""Close-to-open consistency, metadata TTL, concurrent writers, and nothing lost when the
program, the supervisor or the server fails."""

from __future__ import annotations

import http.client
import http.server
import os
import subprocess
import sys
import threading
import time

import pytest

from exec_support import REPO, objmount_cmd

MiB = 1024 * 1024


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO))


def get(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def exists(s3, bucket, key) -> bool:
    return s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0


def test_listing_cache_follows_metadata_ttl(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="d/a", Body=b"")
    script = f"""
import boto3, os
d = '/objmount/s3/{bucket}/d'
before = sorted(os.listdir(d))
boto3.client('s3').put_object(Bucket='{bucket}', Key='d/b', Body=b'')
print(before, sorted(os.listdir(d)))
"""
    fresh = objmount(["python3", "-c", script], "--metadata-ttl", "0")
    assert fresh.text.strip() == "['a'] ['a', 'b']"
    s3.delete_object(Bucket=bucket, Key="d/b")
    cached = objmount(["python3", "-c", script], "--metadata-ttl", "60")
    assert cached.text.strip() == "['a'] ['a']"


def test_last_close_wins_and_objects_are_never_mixed(s3, bucket, tmp_path, cache_dir):
    go = tmp_path / "go"
    path = f"/objmount/s3/{bucket}/shared"
    slow = f"""
import os, time
f = open('{path}', 'wb'); f.write(b'A' * 300000); f.flush()
while not os.path.exists('{go}'): time.sleep(0.05)
f.close()
"""
    a = subprocess.Popen(objmount_cmd("--cache-dir", str(cache_dir / "a"), "--", "python3", "-c", slow), env=env())
    try:
        deadline = time.time() + 60
        while not exists(s3, bucket, "shared") and a.poll() is None and time.time() < deadline:
            # B writes and closes while A still has its descriptor open.
            b = subprocess.run(objmount_cmd("--cache-dir", str(cache_dir / "b"), "--", "sh", "-c",
                                            f"printf BBBB > {path}"), env=env(), capture_output=True)
            assert b.returncode == 0, b.stderr
        assert get(s3, bucket, "shared") == b"BBBB"
        go.touch()
        assert a.wait(timeout=60) == 0
    finally:
        a.kill()
        a.wait()
    assert get(s3, bucket, "shared") == b"A" * 300000


def test_program_killed_with_a_written_descriptor_still_uploads(objmount, s3, bucket):
    script = f"""
import os
f = open('/objmount/s3/{bucket}/k', 'wb'); f.write(b'written before SIGKILL'); f.flush()
os.kill(os.getpid(), 9)
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 128 + 9
    assert get(s3, bucket, "k") == b"written before SIGKILL"


def _kill_supervisor_mid_write(s3, bucket, tmp_path, cache_dir, key: str) -> None:
    ready = tmp_path / f"ready-{key}"
    script = f"""
f = open('/objmount/s3/{bucket}/{key}', 'wb'); f.write(b'survives a killed supervisor'); f.flush()
open('{ready}', 'w').close()
import time; time.sleep(60)
"""
    proc = subprocess.Popen(objmount_cmd("--cache-dir", str(cache_dir), "--", "python3", "-c", script), env=env())
    try:
        deadline = time.time() + 60
        while not ready.exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    assert not exists(s3, bucket, key)


def test_objmount_flush_uploads_what_a_killed_supervisor_left(s3, bucket, tmp_path, cache_dir):
    _kill_supervisor_mid_write(s3, bucket, tmp_path, cache_dir, "orphan")
    out = subprocess.run([sys.executable, "-m", "objmount", "flush", "--cache-dir", str(cache_dir)],
                         env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"uploaded s3://{bucket}/orphan" in out.stdout
    assert get(s3, bucket, "orphan") == b"survives a killed supervisor"


def test_next_exec_start_reports_what_a_killed_supervisor_left_and_uploads_nothing(objmount, s3, bucket, tmp_path,
                                                                                  cache_dir):
    _kill_supervisor_mid_write(s3, bucket, tmp_path, cache_dir, "orphan2")
    run = objmount(["true"])
    assert run.returncode == 0
    assert "holds 1 file (28 bytes)" in run.stderr and "objmount flush" in run.stderr
    assert not exists(s3, bucket, "orphan2")


def test_failed_upload_gives_eio_and_keeps_the_data_for_flush(objmount, s3, bucket, cache_dir):
    script = f"""
import boto3, os
f = open('/objmount/s3/{bucket}/keep', 'wb'); f.write(b'precious'); f.flush()
boto3.client('s3').delete_bucket(Bucket='{bucket}')
try:
    f.close(); print('closed')
except OSError as e:
    print(e.errno)
"""
    run = objmount(["python3", "-c", script])
    assert run.text.strip() == "5", run.stderr
    assert bucket in run.stderr and "Traceback" not in run.stderr
    s3.create_bucket(Bucket=bucket)
    out = subprocess.run([sys.executable, "-m", "objmount", "flush", "--cache-dir", str(cache_dir)],
                         env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert get(s3, bucket, "keep") == b"precious"


class _NoPartCopy(http.server.BaseHTTPRequestHandler):
    """A reverse proxy to moto that answers UploadPartCopy with 501, like servers that do
    not implement it (rclone serve s3)."""
    upstream = ""
    protocol_version = "HTTP/1.1"

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT" and "x-amz-copy-source" in self.headers and "partNumber=" in self.path:
            err = b"<Error><Code>NotImplemented</Code><Message>no UploadPartCopy</Message></Error>"
            self.send_response(501)
            self.send_header("Content-Length", str(len(err)))
            self.end_headers()
            self.wfile.write(err)
            return
        host, port = self.upstream.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        # Host as sent: it is signed (rclone serve s3 checks signatures, moto does not)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        # HEAD answers carry the object's length with no body
        self.send_header("Content-Length", resp.getheader("Content-Length", "0") if self.command == "HEAD"
                         else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args):
        pass


@pytest.fixture
def no_part_copy_endpoint(s3_server):
    handler = type("H", (_NoPartCopy,), {"upstream": s3_server.split("//", 1)[1]})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_server_without_upload_part_copy_gets_a_full_upload(objmount, s3, bucket, no_part_copy_endpoint):
    data = os.urandom(20 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    run = objmount(f"printf tail >> /objmount/s3/{bucket}/big", "--endpoint-url", no_part_copy_endpoint)
    assert run.returncode == 0, run.stderr
    assert get(s3, bucket, "big") == data + b"tail"
