"""Bad inputs and failures become errnos the program can handle, with one log line."""

from __future__ import annotations

import http.server
import threading

import pytest


@pytest.fixture
def small(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/file.txt", Body=b"content\n")
    return f"/objmount/s3/{bucket}"


def errno_of(objmount, code: str, *options: str) -> str:
    run = objmount(["python3", "-c", f"import os\ntry:\n    {code}\n    print('ok')\nexcept OSError as e:\n    print(e.errno)"], *options)
    assert run.returncode == 0, run.stderr
    return run.text.strip()


def test_missing_key_and_bucket_are_enoent(objmount, small):
    assert errno_of(objmount, f"open('{small}/dir/nope')") == "2"
    assert errno_of(objmount, "open('/objmount/s3/no-such-bucket-zz/x')") == "2"
    assert errno_of(objmount, "os.stat('s3://no-such-bucket-zz')") == "2"


def test_synthetic_directories_refuse_changes_with_erofs(objmount, small):
    for code in ("open('/objmount/new', 'w')", "os.mkdir('/objmount/s3/newbucket')", "os.unlink('/objmount/s3')",
                 "open('/objmount/s3/x', 'w')"):
        assert errno_of(objmount, code) == "30", code


def test_path_forms_resolve_as_the_kernel_would(objmount, small):
    assert errno_of(objmount, f"assert open('{small}//dir/./file.txt').read() == 'content\\n'") == "ok"
    assert errno_of(objmount, f"assert open('{small}/dir/../dir/file.txt').read() == 'content\\n'") == "ok"
    assert errno_of(objmount, f"open('{small}/dir/file.txt/')") == "20"  # ENOTDIR
    assert errno_of(objmount, f"assert os.listdir('{small}/dir/') == ['file.txt']") == "ok"
    assert errno_of(objmount, f"open('{small}/dir')") == "21"  # EISDIR
    assert errno_of(objmount, f"os.listdir('{small}/dir/file.txt')") == "20"


def test_unreachable_endpoint_gives_eio_and_one_clear_line(objmount, small):
    run = objmount(["python3", "-c", "import os\nfor _ in range(3):\n    try: open('s3://b/k')\n    except OSError as e: print(e.errno)"],
                   "--endpoint-url", "http://127.0.0.1:9", "--retries", "1")
    assert run.text.split() == ["5", "5", "5"]
    lines = [l for l in run.stderr.splitlines() if "127.0.0.1:9" in l]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr


class _Deny(http.server.BaseHTTPRequestHandler):
    def _deny(self):
        body = b'<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = _deny

    def log_message(self, *args):
        pass


@pytest.fixture
def denying_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Deny)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_access_denied_is_eacces(objmount, denying_endpoint):
    assert errno_of(objmount, "open('s3://bucket/key')", "--endpoint-url", denying_endpoint) == "13"


def test_missing_credentials_give_eio_naming_the_reason(objmount, small):
    """Found at start when the command line names the bucket (exit 2), else at run time."""
    no_keys = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    run = objmount(["cat", f"{small}/dir/file.txt"], env=no_keys)
    assert run.returncode == 2
    assert "credentials" in run.stderr.lower() and len(run.stderr.splitlines()) == 1
    hidden = f"'{small[:9]}' + '{small[9:]}/dir/file.txt'"
    run = objmount(["python3", "-c", f"import os\ntry: open({hidden})\nexcept OSError as e: print(e.errno)"],
                   env=no_keys)
    assert run.text.strip() == "5"
    assert "credentials" in run.stderr.lower()
    assert "Traceback" not in run.stderr


def test_a_limit_every_file_meets_is_said_once(objmount, bucket, tmp_path):
    """cp -a copies ACLs (system.* attributes), which no object keeps: the program gets
    EOPNOTSUPP for each file (cp goes on, as it does on filesystems without ACLs), and the
    user one line, not one per file."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_text(str(i))
    code = ("import os, sys\n"
            "for i in range(5):\n"
            "    try: os.setxattr(f'{sys.argv[1]}/f{i}', 'system.posix_acl_access', b'\\x02\\0\\0\\0')\n"
            "    except OSError as e: print(e.errno)\n")
    dst = f"/objmount/s3/{bucket}/dst"
    run = objmount(["sh", "-c", f'cp -a {src} {dst} && python3 -c "$0" {dst}', code])
    assert run.returncode == 0, run.stderr
    assert run.text.split() == ["95"] * 5   # EOPNOTSUPP each time
    lines = [line for line in run.stderr.splitlines() if "attributes are kept" in line]
    assert len(lines) == 1, run.stderr
