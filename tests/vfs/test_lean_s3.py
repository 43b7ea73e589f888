"""The lean S3 client (vfs/stores/http.py): its signatures are AWS's published ones and
botocore's, its addresses botocore's, its answers and failures the same as botocore's
(same fields, same errnos, retries and messages once mapped), over the moto server."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import socket
import threading

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from vfs.errors import answer, from_boto
from vfs.stores.http import EMPTY_SHA256, LeanS3, Signer, canonical_query, profile_problem, resolve
from vfs.stores.s3 import retryable

KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = "20130524T000000Z"
HOST = "examplebucket.s3.amazonaws.com"


@contextlib.contextmanager
def serving(server):
    """`server` (an http.server) answers on a thread of its own for the block."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _auth(method, path, query, headers, payload):
    signed = {"host": HOST, "x-amz-date": DATE, "x-amz-content-sha256": payload, **headers}
    return Signer(KEY, SECRET).authorization(method, path, canonical_query(query), signed, payload,
                                             "us-east-1", DATE).rsplit("Signature=", 1)[1]


def test_signatures_are_the_published_examples():
    """The examples of the S3 API reference ("Signature Calculations for the Authorization
    Header: Transferring Payload in a Single Chunk")."""
    assert _auth("GET", "/test.txt", None, {"range": "bytes=0-9"}, EMPTY_SHA256) == \
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"          # GET Object
    assert _auth("GET", "/", {"max-keys": "2", "prefix": "J"}, {}, EMPTY_SHA256) == \
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"          # GET Bucket
    assert _auth("GET", "/", {"lifecycle": ""}, {}, EMPTY_SHA256) == \
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"          # GET Bucket lifecycle
    body = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    assert _auth("PUT", "/test%24file.text", None,
                 {"date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"}, body) == \
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"          # PUT Object


@pytest.fixture
def clean_env(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE",
                "OBJMOUNT_S3_CLIENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return monkeypatch


def _botocore_request(endpoint, region, call):
    """(URL, headers) botocore sends for call(client), without sending it."""
    path = {"addressing_style": "path"} if endpoint or os.environ.get("AWS_ENDPOINT_URL") else {}
    client = botocore.session.Session().create_client("s3", endpoint_url=endpoint, region_name=region,
                                                      config=Config(s3=path, retries={"total_max_attempts": 1},
                                                                    response_checksum_validation="when_required"))
    seen = []

    def send(request, **kwargs):
        seen.append(request)
        return AWSResponse(request.url, 200, {}, None)
    client.meta.events.register("before-send", send)
    try:
        call(client)
    except Exception:   # noqa: BLE001 - the empty answer does not parse; the request is what counts
        pass
    return client, seen[0]


CASES = [   # (--endpoint-url, AWS_ENDPOINT_URL, --region, AWS_DEFAULT_REGION, bucket)
    (None, None, None, None, "my-bucket"),
    (None, None, "eu-west-1", None, "my-bucket"),
    (None, None, None, "ap-southeast-2", "my.dotted.bucket"),
    (None, None, "us-east-1", None, "Upper_Case"),
    ("http://127.0.0.1:9000", None, None, None, "bk-1"),
    ("http://127.0.0.1:9000/", None, "eu-central-1", None, "bk-1"),
    (None, "https://s3.example.com:8443", None, "us-west-2", "bk-2"),
]


@pytest.mark.parametrize("endpoint,env_endpoint,region,env_region,bucket", CASES)
@pytest.mark.parametrize("op", ["head", "get", "list"])
def test_addresses_and_signatures_are_botocores(clean_env, endpoint, env_endpoint, region, env_region, bucket, op):
    if env_endpoint:
        clean_env.setenv("AWS_ENDPOINT_URL", env_endpoint)
    if env_region:
        clean_env.setenv("AWS_DEFAULT_REGION", env_region)
    key = "a b/c~d+e%f/é"
    calls = {
        "head": (lambda c: c.head_object(Bucket=bucket, Key=key), ("HEAD", key, None, None)),
        "get": (lambda c: c.get_object(Bucket=bucket, Key=key, Range="bytes=0-99", IfNoneMatch='"abc"'),
                ("GET", key, None, {"Range": "bytes=0-99", "If-None-Match": '"abc"'})),
        "list": (lambda c: c.list_objects_v2(Bucket=bucket, Prefix="x y/", Delimiter="/", MaxKeys=7,
                                              ContinuationToken="t/+="),
                 ("GET", None, {"list-type": "2", "encoding-type": "url", "prefix": "x y/", "delimiter": "/",
                                "max-keys": "7", "continuation-token": "t/+="}, None)),
    }
    call, (method, k, query, headers) = calls[op]
    client, sent = _botocore_request(endpoint, region, call)
    settings, why = resolve(endpoint, None, region)
    assert settings is not None, why
    lean = LeanS3(settings, 1, 1)
    assert settings.endpoint_url == client.meta.endpoint_url
    amz_date = sent.headers["X-Amz-Date"].decode()
    _, path, qs, out, url = lean.prepare(method, bucket, k, query, headers, amz_date=amz_date)
    assert url + (f"?{qs}" if qs else "") == sent.url.replace("%7E", "~") or (
        url == sent.url.split("?")[0] and sorted(qs.split("&")) == sorted(sent.url.split("?")[1].split("&")))
    assert out["Authorization"] == sent.headers["Authorization"].decode()


@pytest.mark.parametrize("env,expected", [
    ({}, "environment credentials"),
    ({"OBJMOUNT_S3_CLIENT": "botocore"}, None),
    ({"AWS_USE_FIPS_ENDPOINT": "true"}, None),
    ({"HTTPS_PROXY": "http://proxy:3128"}, None),
    ({"AWS_SECRET_ACCESS_KEY": ""}, None),              # partial: botocore says what is wrong
    ({"AWS_DEFAULT_REGION": "cn-north-1"}, None),       # another partition
])
def test_only_simple_configurations_take_the_lean_client(clean_env, env, expected, tmp_path):
    clean_env.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    clean_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for k, v in env.items():
        clean_env.setenv(k, v)
    settings, why = resolve(None, None, None)
    assert (settings and settings.how) == expected, why


def test_profiles_static_keys_are_taken_and_others_left_to_botocore(clean_env, tmp_path):
    clean_env.delenv("AWS_ACCESS_KEY_ID")
    clean_env.delenv("AWS_SECRET_ACCESS_KEY")
    creds, config = tmp_path / "credentials", tmp_path / "config"
    creds.write_text("[default]\naws_access_key_id = AK1\naws_secret_access_key = S1\n"
                     "[other]\naws_access_key_id = AK2\naws_secret_access_key = S2\naws_session_token = T2\n")
    config.write_text("[default]\nregion = eu-west-3\n[profile other]\nregion = us-west-1\n"
                      "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = default\n"
                      "[profile sso]\nsso_session = x\n")
    clean_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    clean_env.setenv("AWS_CONFIG_FILE", str(config))
    s, _ = resolve(None, None, None)
    assert (s.signer.access_key, s.region, s.endpoint_url) == ("AK1", "eu-west-3", "https://s3.eu-west-3.amazonaws.com")
    s, _ = resolve(None, "other", None)
    assert (s.signer.access_key, s.signer.token, s.region) == ("AK2", "T2", "us-west-1")
    clean_env.setenv("AWS_PROFILE", "other")
    assert resolve(None, None, "ap-south-1")[0].region == "ap-south-1"
    assert resolve(None, "role", None)[0] is None
    assert resolve(None, "sso", None)[0] is None
    assert resolve(None, "missing", None)[0] is None
    # --profile wins over keys in the environment (botocore drops its environment provider)
    clean_env.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    assert resolve(None, "other", None)[0].signer.access_key == "AK2"
    assert resolve(None, None, None)[0].signer.access_key == "ENVKEY"


# --- over moto: answers and failures ----------------------------------------------------

@pytest.fixture
def clients(s3_server):
    settings, why = resolve(s3_server, None, None)
    assert settings is not None, why
    boto = botocore.session.Session().create_client(
        "s3", endpoint_url=s3_server, config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"},
                                                    response_checksum_validation="when_required"))
    return LeanS3(settings, 5, 5), boto


KEYS = ["plain", "a b", "plus+sign", "tilde~", "per%cent", "amp&er", "ütf-8/ñ", "d/x", "d/y/z", "d2/q", "q?uery=1"]


def test_listings_are_botocores(clients, s3, bucket):
    lean, boto = clients
    for i, k in enumerate(KEYS):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x" * i)
    for kwargs in ({}, {"Delimiter": "/"}, {"Prefix": "d/", "Delimiter": "/"}, {"Prefix": "nothing"}):
        for max_keys in (None, 3):
            extra = {"MaxKeys": max_keys} if max_keys else {}
            a = lean.list_objects_v2(Bucket=bucket, **kwargs, **extra)
            b = boto.list_objects_v2(Bucket=bucket, **kwargs, **extra)
            for page in (a, b):
                for o in page.get("Contents", []):
                    o.pop("StorageClass", None), o.pop("ChecksumAlgorithm", None), o.pop("ChecksumType", None)
                    o.pop("Owner", None)
            fields = ("Contents", "CommonPrefixes", "KeyCount", "IsTruncated", "NextContinuationToken")
            assert {f: a.get(f) for f in fields} == {f: b.get(f) for f in fields}, kwargs
            if a.get("IsTruncated"):
                token = a["NextContinuationToken"]
                again = lean.list_objects_v2(Bucket=bucket, ContinuationToken=token, **kwargs, **extra)
                assert [o["Key"] for o in again["Contents"]] == \
                       [o["Key"] for o in boto.list_objects_v2(Bucket=bucket, ContinuationToken=token, **kwargs,
                                                               **extra)["Contents"]]


def test_heads_and_gets_are_botocores(clients, s3, bucket, s3_server_name):
    lean, boto = clients
    data = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="k ey+", Body=data, Metadata={"Mode": "644", "uid": "0"}, ContentType="text/x")
    a, b = lean.head_object(Bucket=bucket, Key="k ey+"), boto.head_object(Bucket=bucket, Key="k ey+")
    for f in ("ContentLength", "ETag", "LastModified", "Metadata", "ContentType"):
        assert a[f] == b[f], f
    a = lean.get_object(Bucket=bucket, Key="k ey+", Range="bytes=10-99")
    b = boto.get_object(Bucket=bucket, Key="k ey+", Range="bytes=10-99")
    for f in ("ContentLength", "ETag", "LastModified", "Metadata", "ContentType", "ContentRange"):
        assert a[f] == b[f], f
    assert a["Body"].read(50) + a["Body"].read(1000) == data[10:100] == b["Body"].read()
    assert a["Body"].read(10) == b""
    a["Body"].close()
    # writes: what botocore reads back
    etag = lean.put_object(Bucket=bucket, Key="w/1", Body=b"written", Metadata={"mode": "600"},
                           ContentType="text/plain")["ETag"]
    got = boto.get_object(Bucket=bucket, Key="w/1")
    assert (got["Body"].read(), got["ETag"], lower(got["Metadata"]), got["ContentType"]) == \
           (b"written", etag, {"mode": "600"}, "text/plain")
    copied = lean.copy_object(Bucket=bucket, Key="w/2 copy+", CopySource={"Bucket": bucket, "Key": "k ey+"},
                              MetadataDirective="REPLACE", Metadata={"mode": "755"}, CopySourceIfMatch=b["ETag"])
    got = boto.head_object(Bucket=bucket, Key="w/2 copy+")
    metadata = lower(got["Metadata"])
    if s3_server_name == "rclone":   # its REPLACE keeps the source's other names (and adds its mtime)
        metadata = {k: v for k, v in metadata.items() if k == "mode"}
    assert (got["ETag"], metadata) == (copied["CopyObjectResult"]["ETag"], {"mode": "755"})
    lean.delete_object(Bucket=bucket, Key="w/1")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="w/")["Contents"]] == ["w/2 copy+"]


def lower(metadata: dict) -> dict:
    """User metadata as S3 spells its names (rclone serve s3 capitalizes them: 'Mode')."""
    return {k.lower(): v for k, v in metadata.items()}


def _both(fn):
    """The exceptions fn(client) raises with each client."""
    out = []
    for client in fn.clients:
        try:
            fn(client)
        except Exception as exc:   # noqa: BLE001
            out.append(exc)
        else:
            out.append(None)
    return out


def test_failures_map_as_botocores(clients, s3, bucket, s3_server_name):
    lean, boto = clients
    s3.put_object(Bucket=bucket, Key="obj", Body=b"12345")
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    etag = s3.head_object(Bucket=bucket, Key="obj")["ETag"]
    cases = {
        "head of a missing key": lambda c: c.head_object(Bucket=bucket, Key="missing"),
        "get of a missing key": lambda c: c.get_object(Bucket=bucket, Key="missing"),
        "head in a missing bucket": lambda c: c.head_object(Bucket=bucket + "-no", Key="x"),
        "listing of a missing bucket": lambda c: c.list_objects_v2(Bucket=bucket + "-no"),
        "missing bucket": lambda c: c.head_bucket(Bucket=bucket + "-no"),
        "not modified": lambda c: c.get_object(Bucket=bucket, Key="obj", Range="bytes=0-9", IfNoneMatch=etag),
        "range of an empty object": lambda c: c.get_object(Bucket=bucket, Key="empty", Range="bytes=0-9"),
        "changed": lambda c: c.get_object(Bucket=bucket, Key="obj", Range="bytes=1-3", IfMatch='"0000"'),
        "copy of a missing source": lambda c: c.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket,
                                                            "Key": "missing"}),
    }
    if s3_server_name == "rclone":
        del cases["changed"]   # rclone serve s3 ignores If-Match: no failure to compare
    for what, fn in cases.items():
        fn.clients = (lean, boto)
        a, b = _both(fn)
        assert a is not None and b is not None, what
        assert answer(a) == answer(b), what
        ea, eb = from_boto(a, "s3://x/y", "E"), from_boto(b, "s3://x/y", "E")
        assert (ea.errno, ea.message, retryable(a)) == (eb.errno, eb.message, retryable(b)), what
        if answer(a)[1] == 304:
            ha = a.response["ResponseMetadata"]["HTTPHeaders"]
            hb = b.response["ResponseMetadata"]["HTTPHeaders"]
            assert ha.get("etag") == hb.get("etag")


def test_network_failures_map_as_botocores(s3_server):
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    lean = LeanS3(resolve(dead, None, None)[0], 1, 1)
    boto = botocore.session.Session().create_client("s3", endpoint_url=dead, config=Config(
        retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}, connect_timeout=1, read_timeout=1))
    fn = lambda c: c.head_object(Bucket="bkt", Key="k")   # noqa: E731
    fn.clients = (lean, boto)
    a, b = _both(fn)
    ea, eb = from_boto(a, "s3://bkt/k", dead), from_boto(b, "s3://bkt/k", dead)
    assert (ea.errno, ea.message, retryable(a)) == (eb.errno, eb.message, retryable(b))
    assert "unreachable" in ea.message and retryable(a)


def test_a_connection_the_server_closed_while_idle_is_opened_again():
    """A kept-alive connection the server has dropped since: the next request goes on a new
    one, and only once (no error, no retry counted by the caller)."""
    connections = []

    class OneShot(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self):
            connections.append(self.client_address)
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.send_header("ETag", '"e"')
            self.send_header("Last-Modified", "Tue, 01 Dec 2026 04:52:24 GMT")
            self.end_headers()
            self.close_connection = True   # closed after the answer, without saying so

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneShot)
    with serving(server):
        url = f"http://127.0.0.1:{server.server_port}"
        lean = LeanS3(resolve(url, None, None)[0], 2, 2)
        for _ in range(3):
            out = lean.head_object(Bucket="bkt", Key="k")
            assert out["ContentLength"] == 5 and out["LastModified"].timestamp() == 1796100744
        assert len(connections) == 3 and len(set(connections)) == 3


def test_a_bucket_in_another_region_is_followed_there_as_botocore_does():
    """301 PermanentRedirect (a HEAD's has no body: its x-amz-bucket-region says where): the
    request is signed again for that region, and the next ones start there."""
    seen = []

    class Regional(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self):
            region = self.headers["Authorization"].split("/")[2]
            seen.append((self.command, region))
            body = b"" if self.command == "HEAD" else b"hello"
            if region != "eu-west-1":
                body = b"" if self.command == "HEAD" else (
                    b"<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>")
                self.send_response(301)
            else:
                self.send_response(200)
                self.send_header("ETag", '"e"')
                self.send_header("Last-Modified", "Tue, 01 Dec 2026 04:52:24 GMT")
            self.send_header("x-amz-bucket-region", "eu-west-1")
            self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 5))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Regional)
    with serving(server):
        url = f"http://127.0.0.1:{server.server_port}"
        lean = LeanS3(resolve(url, None, "us-east-1")[0], 2, 2)
        boto = botocore.session.Session().create_client("s3", endpoint_url=url, region_name="us-east-1", config=Config(
            retries={"total_max_attempts": 1}, s3={"addressing_style": "path"},
            response_checksum_validation="when_required"))
        for client in (boto, lean):
            del seen[:]
            assert client.head_object(Bucket="bkt", Key="k")["ContentLength"] == 5
            assert client.get_object(Bucket="bkt", Key="k")["Body"].read() == b"hello"
            assert seen == [("HEAD", "us-east-1"), ("HEAD", "eu-west-1"), ("GET", "eu-west-1")], client


def test_a_put_over_https_carries_the_crc32_botocore_would_send(clean_env):
    """Over https the body is not in the signature (UNSIGNED-PAYLOAD): its CRC32 header is
    what S3 checks it against, the value botocore computes."""
    body = os.urandom(3000)
    client, sent = _botocore_request("https://s3.example.com", "us-east-1",
                                     lambda c: c.put_object(Bucket="bkt", Key="k", Body=body))
    lean = LeanS3(resolve("https://s3.example.com", None, "us-east-1")[0], 1, 1)
    _, _, _, out, _ = lean.prepare("PUT", "bkt", "k", body=body)
    assert out["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    theirs = {k.lower(): v for k, v in sent.headers.items()}
    crc = theirs.get("x-amz-checksum-crc32")
    if crc is None:   # sent as a trailer of an aws-chunked body
        crc = sent.body.read().split(b"x-amz-checksum-crc32:")[1].split(b"\r\n")[0]
    assert out["x-amz-checksum-crc32"].encode() == (crc if isinstance(crc, bytes) else crc.encode())


def test_a_refused_certificate_is_not_retried_as_with_botocore(tmp_path):
    """https to a server whose certificate the CA bundle does not vouch for: one failure,
    not retried, saying SSL validation failed (botocore's SSLError)."""
    import shutil
    import ssl
    import subprocess
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server):
        url = f"https://127.0.0.1:{server.server_port}"
        lean = LeanS3(resolve(url, None, "us-east-1")[0], 2, 2)
        boto = botocore.session.Session().create_client("s3", endpoint_url=url, region_name="us-east-1", config=Config(
            retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=2))
        fn = lambda c: c.head_object(Bucket="bkt", Key="k")   # noqa: E731
        fn.clients = (lean, boto)
        a, b = _both(fn)
        ea, eb = from_boto(a, "s3://bkt/k", url), from_boto(b, "s3://bkt/k", url)
        assert (ea.errno, retryable(a)) == (eb.errno, retryable(b)) == (5, False)
        assert ea.message.startswith(f"s3://bkt/k: SSL validation failed for {url}/bkt/k")
        assert eb.message.startswith(f"s3://bkt/k: SSL validation failed for {url}/bkt/k")


@pytest.mark.parametrize("credentials", ["[creds]\naws_access_key_id = a\naws_secret_access_key = b\n",
                                         "[creds]\naws_access_key_id = a\n[broken\n", None])
@pytest.mark.parametrize("name", ["good", "creds", "nosuch", "default"])
def test_a_profile_is_judged_as_botocore_judges_it(tmp_path, monkeypatch, credentials, name):
    import botocore.session
    config = tmp_path / "config"
    config.write_text("[profile good]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    if credentials is not None:
        (tmp_path / "credentials").write_text(credentials)
    try:
        botocore.session.Session(profile=name).get_scoped_config()
        expected = None
    except Exception as exc:
        expected = str(exc)
    assert profile_problem(name) == expected


# --- review fixes: answers, client choice, configurations botocore resolves otherwise ----

def _canned(raw: bytes):
    """A server that answers every request with `raw` and closes; (server socket, URL)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)

    def run():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                d = c.recv(65536)
                if not d:
                    break
                data += d
            if b"Content-Length: " in data:   # read the body too (a PUT's)
                n = int(data.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                while len(data.split(b"\r\n\r\n", 1)[1]) < n:
                    data += c.recv(65536)
            c.sendall(raw)
            c.close()
    threading.Thread(target=run, daemon=True).start()
    return ls, f"http://127.0.0.1:{ls.getsockname()[1]}"


def _raw(status, body):
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


@pytest.mark.parametrize("body", [
    b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message>"
    b"</Error>",
    b"<ListBucketResult><Contents>",     # cut short: not XML
])
@pytest.mark.parametrize("op", ["list", "put", "delete", "copy"])
def test_an_error_in_a_200_is_a_500_as_botocore_makes_it(clean_env, body, op):
    ls, url = _canned(_raw("200 OK", body))
    try:
        lean = LeanS3(resolve(url, None, "us-east-1")[0], 2, 2)
        boto = botocore.session.Session().create_client("s3", endpoint_url=url, region_name="us-east-1", config=Config(
            retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}))
        fn = {"list": lambda c: c.list_objects_v2(Bucket="bkt"),
              "put": lambda c: c.put_object(Bucket="bkt", Key="k", Body=b"x"),
              "delete": lambda c: c.delete_object(Bucket="bkt", Key="k"),
              "copy": lambda c: c.copy_object(Bucket="bkt", Key="k", CopySource={"Bucket": "bkt", "Key": "s"})}[op]
        fn.clients = (lean, boto)
        a, b = _both(fn)
        assert a is not None and b is not None
        assert answer(a) == answer(b) and answer(a)[1] == 500
        ea, eb = from_boto(a, "s3://bkt/k", url), from_boto(b, "s3://bkt/k", url)
        assert (ea.errno, ea.message, retryable(a)) == (eb.errno, eb.message, retryable(b))
        assert retryable(a)
    finally:
        ls.close()


@pytest.mark.parametrize("bucket,lean", [("plain-bucket", True), ("bkt--usw2-az1--x-s3", False),
                                         ("arn:aws:s3:us-east-1:123456789012:accesspoint/ap", False)])
def test_directory_buckets_and_arns_go_to_botocore(clean_env, bucket, lean):
    from vfs.stats import Stats
    from vfs.stores.s3 import S3Service, S3Store

    class Recorder:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            def call(**kwargs):
                self.calls.append(name)
                return {"ETag": '"e"', "ContentLength": 1, "Metadata": {}, "LastModified": None,
                        "ResponseMetadata": {"HTTPHeaders": {}}}
            return call

    service = S3Service("http://127.0.0.1:9", None, "us-east-1", Stats())
    assert service.lean is not None
    assert (service.fast_for(bucket) is service.lean) == lean
    fast, boto = Recorder(), Recorder()
    service._lean, service._client = fast, boto
    store = S3Store(service, bucket)
    store.check_root()
    store.put("k", b"x", {"mode": "644"})
    store.delete("k")
    used, unused = (fast, boto) if lean else (boto, fast)
    assert used.calls == ["head_bucket", "put_object", "delete_object"] and not unused.calls


def _write_aws(tmp_path, monkeypatch, credentials, config=""):
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_S3_DISABLE_EXPRESS_SESSION_AUTH"):
        monkeypatch.delenv(var, raising=False)


def test_aws_default_profile_comes_before_aws_profile_as_in_botocore(clean_env, tmp_path):
    _write_aws(tmp_path, clean_env, "[p1]\naws_access_key_id = P1KEY\naws_secret_access_key = S1\n"
                                    "[p2]\naws_access_key_id = P2KEY\naws_secret_access_key = S2\n",
               "[profile p1]\nregion = eu-west-1\n[profile p2]\nregion = ap-south-1\n")
    clean_env.setenv("AWS_PROFILE", "p1")
    clean_env.setenv("AWS_DEFAULT_PROFILE", "p2")
    session = botocore.session.Session()
    s, why = resolve(None, None, None)
    assert s is not None, why
    assert (s.signer.access_key, s.region) == (session.get_credentials().access_key,
                                                session.get_config_variable("region")) == ("P2KEY", "ap-south-1")


def test_web_identity_goes_to_botocore_unless_a_profile_is_given(clean_env, tmp_path):
    _write_aws(tmp_path, clean_env, "[default]\naws_access_key_id = K\naws_secret_access_key = S\n"
                                    "[p]\naws_access_key_id = PK\naws_secret_access_key = PS\n")
    (tmp_path / "token").write_text("tok")
    clean_env.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
    clean_env.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
    assert botocore.session.Session().get_credentials().method == "assume-role-with-web-identity"
    assert resolve(None, None, None)[0] is None
    # an explicit profile: botocore ignores the variables
    creds = botocore.session.Session(profile="p").get_credentials()
    assert creds.method == "shared-credentials-file"
    assert resolve(None, "p", None)[0].signer.access_key == creds.access_key == "PK"
    clean_env.delenv("AWS_ROLE_ARN")
    clean_env.delenv("AWS_WEB_IDENTITY_TOKEN_FILE")
    assert resolve(None, None, None)[0] is not None
    clean_env.setenv("AWS_S3_DISABLE_EXPRESS_SESSION_AUTH", "true")
    assert resolve(None, None, None)[0] is None


def test_the_credentials_files_section_is_part_of_the_profile_as_in_botocore(clean_env, tmp_path):
    _write_aws(tmp_path, clean_env, "[default]\naws_access_key_id = K\naws_secret_access_key = S\nregion = eu-west-1\n"
                                    "[dev]\naws_access_key_id = K\naws_secret_access_key = S\n"
                                    "role_arn = arn:aws:iam::123456789012:role/r\nsource_profile = default\n")
    clean_env.delenv("AWS_PROFILE", raising=False)
    s, why = resolve(None, None, None)
    assert s is not None, why
    assert s.region == botocore.session.Session().get_config_variable("region") == "eu-west-1"
    assert s.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert botocore.session.Session(profile="dev").get_credentials().method == "assume-role"
    assert resolve(None, "dev", None)[0] is None


def test_an_ipv6_endpoint_with_a_port_is_reached(clean_env):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self):
            seen.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.send_header("ETag", '"e"')
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

    try:
        server = Server(("::1", 0), Handler)
    except OSError:
        pytest.skip("no IPv6 loopback")
    with serving(server):
        url = f"http://[::1]:{server.server_port}"
        lean = LeanS3(resolve(url, None, "us-east-1")[0], 2, 2)
        assert lean.head_object(Bucket="bkt", Key="k")["ContentLength"] == 5
        client, sent = _botocore_request(url, "us-east-1", lambda c: c.head_object(Bucket="bkt", Key="k"))
        assert seen == [f"[::1]:{server.server_port}"]
        _, _, _, out, lean_url = lean.prepare("HEAD", "bkt", "k", amz_date=sent.headers["X-Amz-Date"].decode())
        assert (lean_url, out["Authorization"]) == (sent.url, sent.headers["Authorization"].decode())


@pytest.mark.parametrize("metadata,ok", [
    ({"mode": "644", "uid": "0"}, True),
    ({"a": "x\ry"}, False), ({"a": "x\ny"}, False), ({"a": "x\x00y"}, False), ({"a\rb": "v"}, False),
    ({"a b": "v"}, False), ({"a": "1", "A": "2"}, False), ({"é": "v"}, False),
])
def test_metadata_the_lean_client_cannot_send_as_botocore_goes_to_botocore(metadata, ok):
    from vfs.stores.http import meta_ok
    assert meta_ok(metadata) == ok


def test_a_store_put_with_odd_metadata_is_botocores(s3, bucket):
    """A value with CR, keys differing in case: the store's PUT gives botocore's outcome."""
    from vfs.stats import Stats
    from vfs.stores.s3 import S3Service, S3Store

    def outcome(store, key, metadata):
        try:
            store.put(key, b"x", metadata)
            return s3.head_object(Bucket=bucket, Key=key)["Metadata"]
        except Exception as exc:   # noqa: BLE001
            return type(exc).__name__, getattr(exc, "errno", None), str(exc).replace(f"/{key}:", "/K:")

    service = S3Service(os.environ["AWS_ENDPOINT_URL"], None, None, Stats())
    assert service.lean is not None
    boto = S3Service(os.environ["AWS_ENDPOINT_URL"], None, None, Stats())
    boto._lean = None
    for i, metadata in enumerate(({"a": "x\ry"}, {"a": "1", "A": "2"})):
        assert outcome(S3Store(service, bucket), f"l{i}", metadata) == \
            outcome(S3Store(boto, bucket), f"b{i}", metadata), metadata


def test_https_trusts_botocores_ca_bundle(clean_env, monkeypatch):
    import ssl

    from botocore.httpsession import where
    clean_env.delenv("AWS_CA_BUNDLE", raising=False)
    seen = []
    real = ssl.create_default_context

    def spy(*args, **kwargs):
        seen.append(kwargs.get("cafile"))
        return real(*args, **kwargs)
    monkeypatch.setattr(ssl, "create_default_context", spy)
    LeanS3(resolve("https://s3.example.com", None, "us-east-1")[0], 1, 1)._tls()
    assert seen == [where()]
    clean_env.setenv("AWS_CA_BUNDLE", "/tmp/some-bundle.pem")
    lean = LeanS3(resolve("https://s3.example.com", None, "us-east-1")[0], 1, 1)
    assert lean.s.ca_bundle == "/tmp/some-bundle.pem"


def test_connections_are_kept_with_descriptors_above_1024():
    import resource
    connections = []

    class Keep(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self):
            if not connections or connections[-1] != self.client_address:
                connections.append(self.client_address)
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.send_header("ETag", '"e"')
            self.end_headers()

        def log_message(self, *args):
            pass

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("cannot open 1100 descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200) if soft != resource.RLIM_INFINITY else soft, hard))
    fillers = [open(os.devnull) for _ in range(1100)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keep)
    try:
        with serving(server):
            lean = LeanS3(resolve(f"http://127.0.0.1:{server.server_port}", None, "us-east-1")[0], 2, 2)
            for _ in range(5):
                assert lean.head_object(Bucket="bkt", Key="k")["ContentLength"] == 5
            assert len(connections) == 1
    finally:
        for f in fillers:
            f.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("status,body", [
    ("404 Not Found", b"<html><body>Not Found</body></html>"),            # XML, not an <Error>
    ("503 Service Unavailable", b"<html><body>busy</body></html>"),        # a 5xx's HTML page
    ("503 Service Unavailable", b"<html><body>busy<hr></body></html>"),    # not XML
    ("403 Forbidden", b"<Error><Message>no</Message></Error>"),            # no Code
    ("400 Bad Request", b"<Error><Code>X</Code><RequestId>r</RequestId><Extra><A>1</A></Extra></Error>"),
    ("200 OK", b"<Error><Message>no code</Message></Error>"),
])
def test_error_bodies_are_parsed_as_botocore_parses_them(clean_env, status, body):
    ls, url = _canned(_raw(status, body))
    try:
        lean = LeanS3(resolve(url, None, "us-east-1")[0], 2, 2)
        boto = botocore.session.Session().create_client("s3", endpoint_url=url, region_name="us-east-1", config=Config(
            retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}))
        fn = lambda c: c.delete_object(Bucket="bkt", Key="k")   # noqa: E731
        fn.clients = (lean, boto)
        a, b = _both(fn)
        assert a.response["Error"] == b.response["Error"]
        ea, eb = from_boto(a, "s3://bkt/k", url), from_boto(b, "s3://bkt/k", url)
        assert (ea.errno, ea.message, retryable(a)) == (eb.errno, eb.message, retryable(b))
    finally:
        ls.close()
