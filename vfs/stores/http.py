"""A lean S3 client for the requests objmount makes most, without botocore.

botocore costs ~0.13-0.16 s of import and client construction in every run that touches a
bucket, and ~1.4 ms of CPU per request (event hooks, parsing, signing) on a machine where
the supervisor's tracing thread competes for the GIL with the threads making requests.
This module signs requests itself (AWS SigV4, hmac/hashlib), keeps one http.client
connection per thread (keep-alive; a connection the server closed while idle is opened
again), and answers the same dicts as botocore's client for HeadBucket, HeadObject,
GetObject (with a streaming body), ListObjectsV2, PutObject, DeleteObject and CopyObject.
Its failures are the shapes of botocore's exceptions (vfs/errors.py: ClientError with the
same `response`, the network errors with the same names), so errnos, retries and messages
are decided the same way.

It is used only where its answers are the ones botocore would give (`resolve`): static
credentials (the environment's, or a profile's keys in the shared credentials or config
file), a region from --region, AWS_DEFAULT_REGION or the profile (else us-east-1, as
botocore does for S3), and an endpoint from --endpoint-url, AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL (path-style addressing), or AWS's in the aws partition (virtual-hosted,
path-style for a bucket name that cannot be a host name). Anything else (SSO, roles,
credential_process, instance metadata, web identity (AWS_ROLE_ARN,
AWS_WEB_IDENTITY_TOKEN_FILE), no credentials, proxies, FIPS or dual-stack endpoints, a CA
bundle in the config file, endpoints or S3 settings in the config file) is left to
botocore, as is everything but those operations (multipart uploads, ListBuckets), and
buckets botocore sends elsewhere (S3 Express directory buckets, ARNs: `lean_bucket`).
https is verified against AWS_CA_BUNDLE, else botocore's default bundle (certifi's, else
botocore's own cacert.pem), not the system's store.
OBJMOUNT_S3_CLIENT=botocore forces botocore.
"""

from __future__ import annotations

import configparser
import hashlib
import hmac
import http.client
import os
import re
import select
import threading
import time
from datetime import datetime, timezone
from urllib.parse import quote, unquote_plus, urlsplit

from ..errors import (ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, LeanError,
                      ReadTimeoutError, ResponseStreamingError)


class ResponseParserError(LeanError):
    """An answer that is not what S3 sends (as botocore's ResponseParserError)."""


class SSLError(LeanError):
    """The endpoint's certificate was refused (as botocore's SSLError: not retried)."""

    def __init__(self, endpoint_url: str, error: Exception):
        super().__init__(f"SSL validation failed for {endpoint_url} {error}")

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"

# --- signing ---------------------------------------------------------------------------


def _uri_encode(text: str, slash: bool = False) -> str:
    """AWS's UriEncode: every byte but A-Z a-z 0-9 - . _ ~ percent-encoded (and '/' kept
    when `slash`, as in an S3 path)."""
    return quote(text, safe="/~" if slash else "~")


def canonical_query(query: dict[str, str] | None) -> str:
    if not query:
        return ""
    return "&".join(f"{k}={v}" for k, v in sorted((_uri_encode(k), _uri_encode(str(v))) for k, v in query.items()))


class Signer:
    """AWS Signature Version 4 for S3 (one set of static credentials)."""

    def __init__(self, access_key: str, secret_key: str, token: str | None = None):
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token
        self._keys: dict[tuple[str, str], bytes] = {}

    def _key(self, date: str, region: str) -> bytes:
        key = self._keys.get((date, region))
        if key is None:
            k = hmac.new(("AWS4" + self.secret_key).encode(), date.encode(), hashlib.sha256).digest()
            for part in (region, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._keys = {(date, region): k, **{kk: v for kk, v in self._keys.items() if kk[0] == date}}
            key = k
        return key

    def authorization(self, method: str, path: str, query: str, headers: dict[str, str], payload: str,
                      region: str, amz_date: str) -> str:
        """The Authorization header for a request. path: as sent (URI-encoded); query: the
        canonical query string; headers: lower-case names -> values, every one signed
        (host, x-amz-date and x-amz-content-sha256 among them); payload: the body's
        sha256 (hex) or UNSIGNED-PAYLOAD."""
        names = sorted(headers)
        canonical = "\n".join((method, path, query,
                               "".join(f"{n}:{' '.join(str(headers[n]).split())}\n" for n in names),
                               ";".join(names), payload))
        date = amz_date[:8]
        scope = f"{date}/{region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(date, region), to_sign.encode(), hashlib.sha256).hexdigest()
        return (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                f"SignedHeaders={';'.join(names)}, Signature={signature}")


# --- which configurations it takes -------------------------------------------------------

# Settings that change where or how botocore sends S3 requests: with any of them set, it does.
_BOTOCORE_ENV = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
                 "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_CREDENTIAL_EXPIRATION",
                 "AWS_S3_ADDRESSING_STYLE", "AWS_SIGV4A_SIGNING_REGION_SET", "AWS_AUTH_SCHEME_PREFERENCE",
                 "AWS_ACCOUNT_ID_ENDPOINT_MODE", "AWS_DISABLE_REQUEST_COMPRESSION",
                 "AWS_S3_DISABLE_EXPRESS_SESSION_AUTH",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
# Keys of a config-file profile that change nothing here (anything else: botocore).
_PLAIN_CONFIG = {"region", "output", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                 "aws_security_token", "retry_mode", "max_attempts", "cli_pager", "cli_timestamp_format",
                 "cli_history", "cli_binary_format", "cli_auto_prompt", "cli_follow_urlparam", "parameter_validation",
                 "tcp_keepalive", "metadata_service_timeout", "metadata_service_num_attempts"}
# Web identity (EKS IRSA): botocore assumes the role, unless a profile is given explicitly
# (botocore then ignores these variables).
_WEB_IDENTITY_ENV = ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
_AWS_REGION = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d+$")
_HOSTABLE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class Settings:
    """Where requests go and how they are signed, as botocore would resolve them."""

    def __init__(self, scheme: str, host: str, port: int | None, base: str, path_style: bool, region: str,
                 signer: Signer, endpoint_url: str, how: str):
        self.scheme, self.host, self.port, self.base = scheme, host, port, base
        self.path_style, self.region, self.signer = path_style, region, signer
        self.endpoint_url = endpoint_url   # what botocore's client.meta.endpoint_url says
        self.how = how                     # where the credentials came from (for the log)
        # https: verify with this alone, as botocore (None: botocore's default bundle)
        self.ca_bundle = os.environ.get("AWS_CA_BUNDLE") or None


def lean_bucket(bucket: str) -> bool:
    """Whether requests about this bucket can be the lean client's: not an S3 Express
    directory bucket (name ending --x-s3: its own endpoints and session auth) nor an ARN
    (access points, Outposts, Object Lambda), which botocore sends elsewhere."""
    return not bucket.endswith("--x-s3") and ":" not in bucket


def default_ca_bundle() -> str | None:
    """The CA bundle botocore verifies https with when AWS_CA_BUNDLE is not set: certifi's,
    else the cacert.pem botocore ships (found without importing botocore)."""
    try:
        import certifi
        return certifi.where()
    except ImportError:
        pass
    import importlib.util
    spec = importlib.util.find_spec("botocore")
    if spec is not None and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "cacert.pem")
        if os.path.isfile(path):
            return path
    return None


def _profile_sections(profile: str) -> tuple[dict | None, dict | None]:
    """(the profile's section of the config file, of the shared credentials file); None
    where the file or section is missing. Raises ValueError for a file that cannot be parsed."""
    def read(path: str, section: str) -> dict | None:
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            return None
        parser = configparser.RawConfigParser()
        try:
            parser.read(path)
        except configparser.Error as exc:
            raise ValueError(str(exc)) from None
        return dict(parser.items(section)) if parser.has_section(section) else None

    config = read(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
                  "default" if profile == "default" else f"profile {profile}")
    if config is None and profile == "default":
        config = read(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"), "profile default")
    creds = read(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), profile)
    return config, creds


def profile_problem(profile: str) -> str | None:
    """What botocore would say of a named profile that it cannot use (its message), or
    None: in neither the config file nor the shared credentials file, or a file that
    cannot be parsed."""
    try:
        config, creds = _profile_sections(profile)
    except ValueError:
        for var, default in (("AWS_CONFIG_FILE", "~/.aws/config"), ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")):
            path = os.path.expanduser(os.environ.get(var, default))
            try:
                parser = configparser.RawConfigParser()
                parser.read(path)
            except configparser.Error:
                return f"Unable to parse config file: {path}"
            except OSError:
                continue
        return "Unable to parse config file"
    if config is None and creds is None:
        return f"The config profile ({profile}) could not be found"
    return None


def resolve(endpoint_url: str | None, profile: str | None, region: str | None) -> tuple[Settings | None, str]:
    """The settings when this client gives botocore's answers for this configuration, and
    a line saying why (or why not)."""
    choice = os.environ.get("OBJMOUNT_S3_CLIENT", "").strip().lower()
    if choice == "botocore":
        return None, "OBJMOUNT_S3_CLIENT=botocore"
    for var in _BOTOCORE_ENV:
        if os.environ.get(var):
            return None, f"{var} is set"
    if not profile:
        for var in _WEB_IDENTITY_ENV:
            if os.environ.get(var):
                return None, f"{var} is set"
    # botocore's order: AWS_DEFAULT_PROFILE before AWS_PROFILE
    name = profile or os.environ.get("AWS_DEFAULT_PROFILE") or os.environ.get("AWS_PROFILE") or "default"
    try:
        config, creds_section = _profile_sections(name)
    except ValueError as exc:
        return None, f"the AWS configuration cannot be read here ({exc})"
    if profile and config is None and creds_section is None:
        return None, f"no profile {profile!r}"
    # botocore merges the credentials file's section into the profile (its keys win)
    merged = {**(config or {}), **(creds_section or {})}
    odd = sorted(set(merged) - _PLAIN_CONFIG)
    if odd:
        return None, f"the profile sets {', '.join(odd)}"
    # Credentials, in botocore's order: the environment (unless --profile), then the
    # profile's static keys in the credentials file, then in the config file.
    env_key, env_secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    signer = how = None
    if not profile and (env_key or env_secret):
        if not (env_key and env_secret):
            return None, "partial credentials in the environment"
        token = os.environ.get("AWS_SESSION_TOKEN") or os.environ.get("AWS_SECURITY_TOKEN") or None
        signer, how = Signer(env_key, env_secret, token), "environment credentials"
    else:
        for section, where in ((creds_section, "the shared credentials file"), (config, "the config file")):
            if section and ("aws_access_key_id" in section or "aws_secret_access_key" in section):
                key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
                if not (key and secret):
                    return None, f"partial credentials in {where}"
                token = section.get("aws_session_token") or section.get("aws_security_token") or None
                signer, how = Signer(key, secret, token), f"profile {name!r} in {where}"
                break
    if signer is None:
        return None, "no static credentials"
    region = region or os.environ.get("AWS_DEFAULT_REGION") or merged.get("region") or "us-east-1"
    url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            return None, f"endpoint {url!r}"
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        return Settings(parts.scheme, host, parts.port, parts.path.rstrip("/"), True, region, signer, url, how), how
    if not _AWS_REGION.match(region):
        return None, f"region {region!r} is outside the aws partition"
    endpoint = "https://s3.amazonaws.com" if region == "us-east-1" else f"https://s3.{region}.amazonaws.com"
    return Settings("https", urlsplit(endpoint).hostname, None, "", False, region, signer, endpoint, how), how


# --- requests ----------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"), 1)}


def http_date(text: str) -> datetime:
    """'Tue, 01 Dec 2026 04:52:24 GMT' -> an aware datetime (the form S3 sends)."""
    try:
        _, day, month, year, clock, _ = text.split()
        h, m, s = clock.split(":")
        return datetime(int(year), _MONTHS[month], int(day), int(h), int(m), int(s), tzinfo=timezone.utc)
    except (ValueError, KeyError):
        from email.utils import parsedate_to_datetime
        return parsedate_to_datetime(text)


def iso_date(text: str) -> datetime:
    """'2026-12-01T04:52:24.000Z' -> an aware datetime (a listing's LastModified)."""
    out = datetime.fromisoformat(text)
    return out if out.tzinfo else out.replace(tzinfo=timezone.utc)


def _amz_date() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class Body:
    """A GET's body as botocore's StreamingBody is read here: read(n), close(). A break
    becomes ResponseStreamingError or ReadTimeoutError, as botocore's would."""

    def __init__(self, client: "LeanS3", resp: http.client.HTTPResponse, conn, url: str):
        self._client, self._resp, self._conn, self._url = client, resp, conn, url

    def read(self, n: int | None = None) -> bytes:
        try:
            return self._resp.read(n)
        except TimeoutError:
            raise ReadTimeoutError(self._url) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ResponseStreamingError(exc) from None

    def close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is None:
            return
        self._client._done(self._conn, resp)


_local = threading.local()


class LeanS3:
    """The operations, with botocore's parameter names and answers."""

    def __init__(self, settings: Settings, connect_timeout: float, read_timeout: float):
        self.s = settings
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._regions: dict[str, str] = {}   # buckets found in another region (a redirect said so)
        self._id = id(self)
        self._context = None

    def _tls(self):
        if self._context is None:
            import ssl
            self._context = ssl.create_default_context(cafile=self.s.ca_bundle or default_ca_bundle())
        return self._context

    # --- connections: one per thread (and host), kept alive ---------------------------
    def _pool(self) -> dict:
        pool = getattr(_local, "pool", None)
        if pool is None:
            pool = _local.pool = {}
        return pool

    def _connect(self, key: tuple, host: str, url: str):
        if host.startswith("["):   # an IPv6 address: bracketed in Host and URLs, not to connect
            host = host[1:-1]
        if self.s.scheme == "https":
            conn = http.client.HTTPSConnection(host, self.s.port, timeout=self.connect_timeout, context=self._tls())
        else:
            conn = http.client.HTTPConnection(host, self.s.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except TimeoutError:
            raise ConnectTimeoutError(url) from None
        except OSError as exc:
            if type(exc).__module__ == "ssl":   # ssl.SSLError, ssl.SSLCertVerificationError
                raise SSLError(url, exc) from None
            raise EndpointConnectionError(url) from None
        conn.sock.settimeout(self.read_timeout)
        conn.lean_key = key
        return conn

    def _done(self, conn, resp) -> None:
        """A response is over: its connection serves the next request of this thread if
        the whole answer was read and neither side closes it."""
        if resp.isclosed() and not resp.will_close and conn.sock is not None:
            self._pool()[conn.lean_key] = conn
        else:
            conn.close()

    def _send(self, method: str, host: str, path: str, query: str, headers: dict, body: bytes, url: str):
        key = (self._id, host)
        conn = self._pool().pop(key, None)
        if conn is not None and conn.sock is not None:
            try:   # the server closed it while it was idle (or sent something unasked for)
                # poll, not select: select refuses descriptors >= 1024
                poller = select.poll()
                poller.register(conn.sock, select.POLLIN | select.POLLPRI)
                if poller.poll(0):
                    conn.close()
                    conn = None
            except (OSError, ValueError):
                conn.close()
                conn = None
        elif conn is not None:
            conn = None
        for fresh in ((False, True) if conn is not None else (True,)):
            if fresh:
                conn = self._connect(key, host, url)
            try:
                conn.putrequest(method, f"{path}?{query}" if query else path, skip_host=True,
                                skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                return conn, conn.getresponse()
            except TimeoutError:
                conn.close()
                raise ReadTimeoutError(url) from None
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
                conn.close()
                if not fresh:   # a kept connection the server had dropped: once more on a new one
                    continue
                raise ConnectionClosedError(url) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise ConnectionClosedError(url) from exc
        raise AssertionError("unreachable")

    def prepare(self, method: str, bucket: str, key: str | None = None, query: dict | None = None,
                headers: dict | None = None, body: bytes = b"", amz_date: str | None = None):
        """(host, path, canonical query, headers with Authorization, URL) of a request."""
        s = self.s
        region = self._regions.get(bucket, s.region)
        if s.path_style:
            host, path = s.host, f"{s.base}/{bucket}"
        elif _HOSTABLE.match(bucket):
            host, path = (f"{bucket}.s3.amazonaws.com" if region == "us-east-1"
                          else f"{bucket}.s3.{region}.amazonaws.com"), ""
        else:
            host, path = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com", f"/{bucket}"
        if key is not None:
            path += "/" + _uri_encode(key, slash=True)
        elif not path:
            path = "/"
        hostport = host if s.port is None else f"{host}:{s.port}"
        qs = canonical_query(query)
        payload = EMPTY_SHA256 if not body else (UNSIGNED if s.scheme == "https" else hashlib.sha256(body).hexdigest())
        amz_date = amz_date or _amz_date()
        out = {"Host": hostport, "X-Amz-Date": amz_date, "X-Amz-Content-SHA256": payload}
        if s.signer.token:
            out["X-Amz-Security-Token"] = s.signer.token
        if headers:
            out.update(headers)
        if body or method in ("PUT", "POST"):
            out["Content-Length"] = str(len(body))
        if body and payload == UNSIGNED:
            # The body's integrity: over http the signed sha256 says it; over https S3
            # checks this CRC32, the checksum botocore sends by default.
            import base64
            import zlib
            out["x-amz-checksum-crc32"] = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        signed = {k.lower(): v for k, v in out.items()}
        out["Authorization"] = s.signer.authorization(method, path, qs, signed, payload, region, amz_date)
        return host, path, qs, out, f"{s.scheme}://{hostport}{path}"

    def request(self, op: str, method: str, bucket: str, key: str | None = None, query: dict | None = None,
                headers: dict | None = None, body: bytes = b"", stream: bool = False, redirected: bool = False,
                xml: bool = False):
        """One request; returns (status, headers (lower-case names), raw header pairs, body
        bytes or a Body when `stream`, or its parsed XML root when `xml` and it is XML). An
        answer >= 300 raises ClientError, as does a 200 that is an <Error> or not XML."""
        host, path, qs, out, url = self.prepare(method, bucket, key, query, headers, body)
        conn, resp = self._send(method, host, path, qs, out, body, url)
        pairs = resp.getheaders()
        lower = {k.lower(): v for k, v in pairs}
        status = resp.status
        if status < 300 and stream:
            return status, lower, pairs, Body(self, resp, conn, url)
        try:
            data = resp.read()
        except TimeoutError:
            conn.close()
            raise ReadTimeoutError(url) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ResponseStreamingError(exc) from None
        self._done(conn, resp)
        root = _xml_root(data) if status == 200 and data else None
        if status >= 300 or (status == 200 and data and (root is None or root.tag == "Error")):
            # an error in a 200, or a body cut short: botocore's _handle_200_error
            if status == 200:   # botocore makes it a 500 (retried)
                status = 500
            error = _error(status, data)
            response = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": lower}}
            if not redirected:
                new = self._redirect(op, bucket, error, status, lower)
                if new:
                    return self.request(op, method, bucket, key, query, headers, body, stream, redirected=True,
                                        xml=xml)
            raise ClientError(response, op)
        return status, lower, pairs, (root if xml and root is not None else data)

    def _redirect(self, op: str, bucket: str, error: dict, status: int, headers: dict) -> bool:
        """botocore's S3RegionRedirector: an answer saying the bucket is in another region
        sends the request there (once), and later ones too."""
        code = error.get("Code")
        if not (code in ("301", "400") and op == "HeadObject"
                or code in ("301", "400") and op == "HeadBucket" and "x-amz-bucket-region" in headers
                or code == "AuthorizationHeaderMalformed" and "Region" in error
                or code == "PermanentRedirect" or status in (301, 302, 307)
                or code == "IllegalLocationConstraintException"):
            return False
        region = headers.get("x-amz-bucket-region") or error.get("Region")
        if region is None:
            try:
                region = self.request("HeadBucket", "HEAD", bucket, redirected=True)[1].get("x-amz-bucket-region")
            except ClientError as exc:
                region = exc.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
            except Exception:   # noqa: BLE001 - no better answer: the first error stands
                return False
        if not region or region == self._regions.get(bucket, self.s.region):
            return False
        self._regions[bucket] = region
        return True

    # --- the operations ------------------------------------------------------------------
    def head_bucket(self, Bucket: str) -> dict:
        _, headers, _, _ = self.request("HeadBucket", "HEAD", Bucket)
        return {"ResponseMetadata": {"HTTPHeaders": headers}}

    def head_object(self, Bucket: str, Key: str) -> dict:
        _, headers, pairs, _ = self.request("HeadObject", "HEAD", Bucket, Key)
        return _object(headers, pairs)

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, IfMatch: str | None = None,
                   IfNoneMatch: str | None = None) -> dict:
        headers = _given({"Range": Range, "If-Match": IfMatch, "If-None-Match": IfNoneMatch})
        _, lower, pairs, body = self.request("GetObject", "GET", Bucket, Key, headers=headers, stream=True)
        out = _object(lower, pairs)
        if "content-range" in lower:
            out["ContentRange"] = lower["content-range"]
        out["Body"] = body
        return out

    def list_objects_v2(self, Bucket: str, Prefix: str | None = None, Delimiter: str | None = None,
                        MaxKeys: int | None = None, ContinuationToken: str | None = None) -> dict:
        query = {"list-type": "2", "encoding-type": "url"}
        if Prefix is not None:
            query["prefix"] = Prefix
        if Delimiter is not None:
            query["delimiter"] = Delimiter
        if MaxKeys is not None:
            query["max-keys"] = str(MaxKeys)
        if ContinuationToken is not None:
            query["continuation-token"] = ContinuationToken
        _, _, _, data = self.request("ListObjectsV2", "GET", Bucket, query=query, xml=True)
        try:
            return parse_listing(data)
        except (SyntaxError, ValueError) as exc:   # ParseError is a SyntaxError
            raise _unparsable(exc) from None

    def put_object(self, Bucket: str, Key: str, Body: bytes, Metadata: dict | None = None,
                   ContentType: str | None = None) -> dict:
        headers = {**_meta_headers(Metadata), **_given({"Content-Type": ContentType})}
        _, lower, _, _ = self.request("PutObject", "PUT", Bucket, Key, headers=headers, body=bytes(Body))
        return {"ETag": lower["etag"]} if "etag" in lower else {}

    def delete_object(self, Bucket: str, Key: str) -> dict:
        self.request("DeleteObject", "DELETE", Bucket, Key)
        return {}

    def copy_object(self, Bucket: str, Key: str, CopySource: dict, MetadataDirective: str | None = None,
                    Metadata: dict | None = None, ContentType: str | None = None,
                    CopySourceIfMatch: str | None = None) -> dict:
        headers = _meta_headers(Metadata)
        headers["x-amz-copy-source"] = f"{CopySource['Bucket']}/{quote(CopySource['Key'], safe='/~')}"
        headers.update(_given({"x-amz-metadata-directive": MetadataDirective, "Content-Type": ContentType,
                               "x-amz-copy-source-if-match": CopySourceIfMatch}))
        _, _, _, data = self.request("CopyObject", "PUT", Bucket, Key, headers=headers, xml=True)
        result = {}
        try:
            fields = _children(data)
        except SyntaxError as exc:
            raise _unparsable(exc) from None
        for el in fields:
            if el[0] in ("ETag", "LastModified"):
                result[el[0]] = el[1] if el[0] == "ETag" else iso_date(el[1])
        return {"CopyObjectResult": result}


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]*$")       # a header name's characters (RFC 9110)
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


def meta_ok(metadata: dict | None) -> bool:
    """User metadata this client can send as it is (botocore sends the rest its way): names
    of header characters, printable ASCII values (no CR, LF or other control characters),
    and no two names differing only in case (one header for S3, botocore's merge)."""
    items = [(str(k), str(v)) for k, v in (metadata or {}).items()]
    return (all(_TOKEN.match(k) and _PRINTABLE.match(v) for k, v in items)
            and len({k.lower() for k, _ in items}) == len(items))


def _given(headers: dict) -> dict:
    """The headers whose value is given (botocore sends no header for None or "")."""
    return {name: value for name, value in headers.items() if value}


def _unparsable(exc: Exception) -> Exception:
    """botocore's error for an answer whose XML cannot be read."""
    return ResponseParserError(f"Unable to parse response ({exc}), invalid XML received")


def _meta_headers(metadata: dict | None) -> dict:
    return {f"x-amz-meta-{k}": str(v) for k, v in (metadata or {}).items()}   # botocore's case


def _object(lower: dict, pairs: list) -> dict:
    """A HEAD's or GET's headers as botocore's answer has them."""
    out: dict = {"ResponseMetadata": {"HTTPHeaders": lower}}
    if "content-length" in lower:
        out["ContentLength"] = int(lower["content-length"])
    if "etag" in lower:
        out["ETag"] = lower["etag"]
    if "last-modified" in lower:
        out["LastModified"] = http_date(lower["last-modified"])
    if "content-type" in lower:
        out["ContentType"] = lower["content-type"]
    out["Metadata"] = {k[11:]: v for k, v in pairs if k[:11].lower() == "x-amz-meta-"}
    return out


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_root(data: bytes):
    """The body's XML root element, or None when it is not XML (parsed as botocore's
    _looks_like_special_case_error does: a 200 whose body is not XML, or is an <Error>,
    is an error)."""
    from xml.etree.ElementTree import ParseError, XMLParser
    parser = XMLParser(encoding="utf-8")
    try:
        parser.feed(data)
        return parser.close()
    except ParseError:
        return None


def _children(data) -> list[tuple[str, str]]:
    """The children of an XML root (an element, or bytes to parse) as (tag, text)."""
    if isinstance(data, (bytes, bytearray)):
        if not data.strip():
            return []
        from xml.etree.ElementTree import fromstring
        data = fromstring(data)
    return [(_strip(el.tag), el.text or "") for el in data]


def _error(status: int, data: bytes) -> dict:
    """An error answer's Error as botocore parses S3's (RestXMLParser._do_error_parse): an
    <Error> document's fields (RequestId and HostId aside), '' Code and Message for another
    XML document (its <Error> child's fields if it has one), or for a body-less or non-XML
    answer the status and its reason (also a 5xx's HTML page: _is_generic_error_response)."""
    if data and not (status >= 500 and data.strip().startswith(b"<html>")):
        from xml.etree.ElementTree import ParseError, XMLParser
        parser = XMLParser(encoding="utf-8")
        try:
            parser.feed(data)
            root = parser.close()
        except ParseError:
            root = None
        if root is not None:
            parsed = _replace_nodes(_nodes(root))
            if root.tag == "Error":
                parsed.pop("RequestId", None)
                parsed.pop("HostId", None)
                return parsed
            error = {"Message": "", "Code": ""}
            if isinstance(parsed.get("Error"), dict):
                error.update(parsed["Error"])
            return error
    return {"Code": str(status), "Message": http.client.responses.get(status, "")}


def _nodes(parent) -> dict:
    """botocore's _build_name_to_xml_node: children by tag (repeated tags: a list)."""
    if isinstance(parent, list):
        parent = parent[0]
    out: dict = {}
    for item in parent:
        key = _strip(item.tag)
        if key in out:
            out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [item]
        else:
            out[key] = item
    return out


def _replace_nodes(parsed: dict) -> dict:
    """botocore's _replace_nodes: leaves -> their text, the rest -> dicts."""
    for key, value in parsed.items():
        parsed[key] = _replace_nodes(_nodes(value)) if len(value) else value.text
    return parsed


def parse_listing(data) -> dict:
    """A ListObjectsV2 answer (encoding-type=url) as botocore's, with the fields used here:
    Contents (Key, Size, ETag, LastModified), CommonPrefixes (Prefix), KeyCount,
    IsTruncated, NextContinuationToken."""
    if isinstance(data, (bytes, bytearray)):
        from xml.etree.ElementTree import fromstring
        root = fromstring(data)
    else:   # already parsed (LeanS3.request(xml=True))
        root = data
    url = False
    out: dict = {}
    contents, prefixes = [], []
    for el in root:
        tag = _strip(el.tag)
        if tag == "Contents":
            obj: dict = {}
            for f in el:
                name = _strip(f.tag)
                text = f.text or ""
                if name == "Key":
                    obj["Key"] = text
                elif name == "Size":
                    obj["Size"] = int(text)
                elif name == "ETag":
                    obj["ETag"] = text
                elif name == "LastModified":
                    obj["LastModified"] = iso_date(text)
            contents.append(obj)
        elif tag == "CommonPrefixes":
            for f in el:
                if _strip(f.tag) == "Prefix":
                    prefixes.append({"Prefix": f.text or ""})
        elif tag == "IsTruncated":
            out["IsTruncated"] = (el.text or "").strip() == "true"
        elif tag == "KeyCount":
            out["KeyCount"] = int(el.text or 0)
        elif tag == "NextContinuationToken":
            out["NextContinuationToken"] = el.text or ""
        elif tag == "EncodingType":
            url = (el.text or "") == "url"
    if url:
        for obj in contents:
            if "Key" in obj:
                obj["Key"] = unquote_plus(obj["Key"])
        for p in prefixes:
            p["Prefix"] = unquote_plus(p["Prefix"])
    if contents:
        out["Contents"] = contents
    if prefixes:
        out["CommonPrefixes"] = prefixes
    return out
