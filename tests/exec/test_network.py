"""Networks that reset, cut bodies short, answer 5xx or stall: requests are bounded by the
timeouts, retried, a GET resumes where its body broke, and only spent retries give EIO
with one line. The faults come from tests/faultproxy.py between objmount and moto."""

from __future__ import annotations

import os
import re

import pytest

from faultproxy import Fault

DATA = os.urandom(3 * 2**20 + 12345)


@pytest.fixture
def obj(s3, bucket):
    s3.put_object(Bucket=bucket, Key="big.bin", Body=DATA)
    return bucket


def net(proxy, retries: int = 3) -> tuple[str, ...]:
    return ("--endpoint-url", proxy.url, "--connect-timeout", "2", "--read-timeout", "1", "--retries", str(retries))


def _range(seen) -> tuple[int, int]:
    start, end = re.match(r"bytes=(\d+)-(\d+)", seen.headers["Range"]).groups()
    return int(start), int(end)


def _read(objmount, proxy, bucket, retries=3):
    return objmount(["cat", f"/objmount/s3/{bucket}/big.bin"], *net(proxy, retries))


@pytest.mark.parametrize("kind", ["reset", "short"])
def test_a_get_broken_mid_body_resumes_where_it_broke(objmount, proxy, obj, kind):
    proxy.add(Fault(kind, "GET", f"/{obj}/big.bin", times=2))
    run = _read(objmount, proxy, obj)
    assert run.returncode == 0, run.stderr
    assert run.stdout == DATA
    gets = proxy.requests("GET", f"/{obj}/big.bin")
    broken = [g for g in gets if g.fault == kind]
    assert len(broken) == 2
    for b in broken:
        start, end = _range(b)
        # the next request for the same range's end starts past what arrived
        again = [g for g in gets[gets.index(b) + 1:] if _range(g)[1] == end]
        assert again and _range(again[0])[0] > start, (b.headers["Range"], [g.headers["Range"] for g in gets])
    assert run.stats["vfs"]["counters"].get("retries", 0) >= 2
    assert run.stderr == ""


def test_server_errors_and_throttling_are_retried_for_reads_and_writes(objmount, proxy, obj, s3):
    proxy.add(Fault("status", "GET", f"/{obj}/big.bin", times=1, status=500, code="InternalError"),
              Fault("status", "PUT", f"/{obj}/out.txt", times=2, status=503, code="SlowDown"),
              Fault("status", "HEAD", f"/{obj}/big.bin", times=1, status=503, code="SlowDown"))
    run = objmount(f"cat /objmount/s3/{obj}/big.bin > /dev/null && echo hello > /objmount/s3/{obj}/out.txt",
                   *net(proxy))
    assert run.returncode == 0, run.stderr
    assert s3.get_object(Bucket=obj, Key="out.txt")["Body"].read() == b"hello\n"
    assert len(proxy.requests("PUT", f"/{obj}/out.txt")) == 3
    assert run.stderr == ""


def test_stalled_answers_end_at_the_read_timeout_and_are_retried(objmount, proxy, obj):
    proxy.add(Fault("stall", "GET", f"/{obj}/big.bin", times=1),                 # no answer at all
              Fault("stall", "GET", f"/{obj}/big.bin", times=1, at=100_000))     # a body that stops
    run = _read(objmount, proxy, obj)
    assert run.returncode == 0, run.stderr
    assert run.stdout == DATA
    assert [g.fault for g in proxy.requests("GET", f"/{obj}/big.bin")].count("stall") == 2


def test_spent_retries_give_eio_and_one_line(objmount, proxy, obj):
    # the open's own GET (its first MiB) gets through; the reads past it do not
    proxy.add(Fault("status", "GET", f"/{obj}/big.bin", times=1000, status=503, code="SlowDown", skip=1))
    code = (f"import os\nf = open('/objmount/s3/{obj}/big.bin', 'rb')\nf.seek(2 << 20)\n"
            "for _ in range(3):\n    try: f.read(10)\n    except OSError as e: print(e.errno)")
    run = objmount(["python3", "-c", code], *net(proxy, retries=2))
    assert run.text.split() == ["5", "5", "5"], run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert "big.bin" in lines[0] and "SlowDown" in lines[0] and "after 3 attempts" in lines[0]
    assert "Traceback" not in run.stderr


def test_an_endpoint_that_never_answers_costs_the_timeouts_only(objmount, proxy, obj):
    proxy.add(Fault("stall", "GET", f"/{obj}/big.bin", times=1000))   # the open asks with a GET
    code = f"import os\ntry: open('/objmount/s3/{obj}/big.bin')\nexcept OSError as e: print(e.errno)"
    run = objmount(["python3", "-c", code], *net(proxy, retries=1), timeout=60)
    assert run.text.strip() == "5"
    assert len(proxy.requests("GET", f"/{obj}/big.bin")) == 2
    assert "timed out" in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr


def test_refused_credentials_are_named_at_start(objmount, proxy, obj, tmp_path):
    proxy.add(Fault("status", None, "", times=1000, status=403, code="InvalidAccessKeyId"))
    marker = tmp_path / "ran"
    run = objmount(f"touch {marker}", "-m", f"/data=s3://{obj}", *net(proxy))
    assert run.returncode == 2
    assert not marker.exists()
    assert "refused the credentials" in run.stderr and "InvalidAccessKeyId" in run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr


def test_refused_credentials_are_named_at_run_time(objmount, proxy, obj):
    """A HEAD's 403 has no body: the refusal is still told apart from a denied object."""
    proxy.add(Fault("status", None, "", times=1000, status=403, code="SignatureDoesNotMatch"))
    path = f"/objmount/s3/{obj}/big.bin"
    code = f"import os\np = '{path[:9]}' + '{path[9:]}'\ntry: open(p)\nexcept OSError as e: print(e.errno)"
    run = objmount(["python3", "-c", code], *net(proxy))
    assert run.text.strip() == "13"
    assert "refused the credentials" in run.stderr and "SignatureDoesNotMatch" in run.stderr
