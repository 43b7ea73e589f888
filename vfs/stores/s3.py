"""S3 through the lean client (stores/http.py) where the configuration allows, else botocore
(the client boto3 wraps). The lean one makes the hot requests (HEAD, GET, ListObjectsV2,
PUT, DELETE, CopyObject); multipart uploads and ListBuckets always go through botocore,
imported at their first use."""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from dataclasses import dataclass
from functools import cached_property

from ..errors import VfsError, answer, from_boto, network_kind, without_userinfo
from ..blocking import waiting
from ..stats import Stats
from .base import Below, First, Listing, ObjectInfo

_SNAKE = {"PutObject": "put_object", "DeleteObject": "delete_object", "CopyObject": "copy_object",
          "CreateMultipartUpload": "create_multipart_upload", "UploadPart": "upload_part",
          "UploadPartCopy": "upload_part_copy", "ListParts": "list_parts",
          "CompleteMultipartUpload": "complete_multipart_upload", "AbortMultipartUpload": "abort_multipart_upload"}


_LEAN_OPS = {"PutObject", "DeleteObject", "CopyObject"}   # the writes the lean client makes

_CHUNK_RESUMABLE = 64 << 10    # a GET's body is kept chunk by chunk: a break loses less than this

# Server answers worth asking again (S3 asks clients to back off and retry on these).
_RETRY_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                "Throttling", "ThrottlingException", "RequestLimitExceeded", "BandwidthLimitExceeded"}


log = logging.getLogger(__name__)
_UNSET = object()


@dataclass
class Network:
    """How long one request may take and how often a failed one is tried again.

    connect_timeout / read_timeout bound each attempt (read: the wait for any bytes, so a
    stalled server or a body that stops arriving ends there). A reset, a short body, a
    timeout, a 5xx or a throttling answer is retried `retries` times with exponential
    backoff (backoff, 2*backoff, ... up to max_backoff, jittered); a ranged GET resumes
    where its body broke. Only then does the operation fail."""
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 4
    backoff: float = 0.25
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def retryable(exc: Exception) -> bool:
    """Worth another attempt: a server answer asking for one (5xx, throttling), or a network
    failure (refused, reset, timed out, a body cut short), from either client."""
    found = answer(exc)
    if found is not None:
        code, status = found
        return code in _RETRY_CODES or status >= 500 or status == 429
    return isinstance(exc, _ShortBody) or network_kind(exc) in ("unreachable", "timeout", "stream")


def _client_failure(exc: Exception) -> bool:
    """A failure of a request (botocore's ClientError or BotoCoreError, the lean client's
    twins, a short body), as opposed to a bug."""
    return isinstance(exc, _ShortBody) or answer(exc) is not None or network_kind(exc) is not None


class _ShortBody(Exception):
    """The body ended before the bytes asked for (a server that closed early)."""


class S3Service:
    """One S3 client per process, shared by the bucket stores (thread-safe): `fast` for the
    hot operations (the lean client when the configuration allows, else botocore's),
    `client` (botocore's, made at first use) for the rest."""

    def __init__(self, endpoint_url: str | None, profile: str | None, region: str | None, stats: Stats,
                 network: Network | None = None):
        self.stats = stats
        self.network = network or Network()
        # userinfo means nothing to S3 (requests are signed with the AWS credentials) and
        # must not reach a log line: it is dropped here, once.
        endpoint_url = without_userinfo(endpoint_url) if endpoint_url else endpoint_url
        self._args = (endpoint_url, profile, region)
        self._lock = threading.Lock()
        self._client = None
        self._lean = _UNSET

    @property
    def lean(self):
        """The lean client (stores/http.py), or None where botocore must make the requests
        (OBJMOUNT_S3_CLIENT=botocore, credentials other than static keys, ...)."""
        lean = self._lean
        if lean is _UNSET:
            with self._lock:
                if self._lean is _UNSET:
                    from .http import LeanS3, resolve
                    settings, why = resolve(*self._args)
                    self._lean = settings and LeanS3(settings, self.network.connect_timeout,
                                                     self.network.read_timeout)
                    log.debug("S3 requests: %s (%s)", "lean client" if settings else "botocore", why)
                lean = self._lean
        return lean

    @property
    def fast(self):
        """The client for HEAD, GET, ListObjectsV2, PUT, DELETE and CopyObject."""
        return self.lean or self.client

    def lean_for(self, bucket: str):
        """The lean client for requests about this bucket, or None (botocore's): S3 Express
        directory buckets and ARNs need botocore's endpoints and auth."""
        lean = self.lean
        if lean is not None:
            from .http import lean_bucket
            if not lean_bucket(bucket):
                return None
        return lean

    def fast_for(self, bucket: str):
        """The client for HEAD, GET, ListObjectsV2, PUT, DELETE and CopyObject of this bucket."""
        return self.lean_for(bucket) or self.client

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                # Imported here: botocore costs ~0.13 s, which a run touching no bucket never
                # pays. botocore's own session, not boto3's: boto3 adds s3transfer and the
                # resource layer (~40 ms of every run that touches a bucket), used by nothing here.
                import botocore.session
                from botocore.config import Config

                endpoint_url, profile, region = self._args
                session = botocore.session.Session(profile=profile) if profile else botocore.session.Session()
                net = self.network
                config = Config(
                    retries={"total_max_attempts": 1},   # retried by `call`, with resumable GETs
                    connect_timeout=net.connect_timeout, read_timeout=net.read_timeout, max_pool_connections=64,
                    # Checksums of whole objects mean nothing to ranged GETs, and botocore's
                    # checksum wrapper breaks the parsing of a 304 (Not Modified) answer.
                    response_checksum_validation="when_required",
                    # Our own code builds every request's parameters; botocore's check of
                    # them is ~0.2-0.5 ms of CPU per request (1.9 -> 1.4 ms for a GET).
                    parameter_validation=False,
                    s3={"addressing_style": "path"} if endpoint_url or _env_endpoint() else {},
                )
                self._client = session.create_client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
            return self._client

    @cached_property
    def endpoint(self) -> str:
        if self.lean is not None:   # botocore's client.meta.endpoint_url
            return without_userinfo(self.lean.s.endpoint_url)
        try:
            return without_userinfo(self.client.meta.endpoint_url)
        except Exception:
            return self._args[0] or "the S3 endpoint"

    def call(self, op: str, what: str, fn, attempts: int | None = None, sent: int = 0):
        """fn() with the retry policy; a failure that remains becomes one VfsError about
        `what` (e.g. 's3://bucket/key'). Every attempt counts as a request of `op`."""
        attempts = attempts or self.network.retries + 1
        attempt = 1
        while True:
            try:
                with waiting():
                    return fn()
            except Exception as exc:
                if not _client_failure(exc):
                    raise
                if attempt >= attempts or not retryable(exc):
                    raise self.failure(exc, what, attempt) from None
            finally:
                self.stats.request(op, sent=sent)
            self.stats.count("retries")
            with waiting():
                time.sleep(self.network.delay(attempt))
            attempt += 1

    def failure(self, exc: Exception, what: str, attempts: int = 1) -> VfsError:
        if isinstance(exc, _ShortBody):
            err = VfsError(5, f"{what}: {self.endpoint} closed the connection early ({exc})")
        else:
            err = from_boto(exc, what, self.endpoint)
        if attempts > 1:
            err = VfsError(err.errno, f"{err.message} (after {attempts} attempts)")
        return err

    def list_buckets(self) -> list[str]:
        out = self.call("ListBuckets", "s3://", lambda: self.client.list_buckets())
        return [b["Name"] for b in out.get("Buckets", [])]


def _env_endpoint() -> bool:
    import os
    return bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))


_EMPTY = First(ObjectInfo("", 0, None, 0.0, None))   # a ranged GET's 416: ask again without a range


def _total_size(content_range: str | None, length: int) -> int:
    """The object's size from 'bytes 0-99/1234' (a ranged answer), else the body's."""
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        if total.isdigit():
            return int(total)
    return int(length)


def _etag(value: str | None) -> str | None:
    """An ETag in its quoted form (RFC 9110), however the server spelled it: versions are
    compared by this string, and rclone serve s3 lists ETags bare while its HEAD and GET
    quote them (a prefetched version then never matched the listed one)."""
    if not value or value.startswith('"') or value.startswith('W/"'):
        return value or None
    return f'"{value}"'


def _same_version(answered: str | None, expected: str) -> bool:
    """Whether an answer's ETag names the version asked for with If-Match (an answer
    without one is taken at its word)."""
    return not answered or _etag(answered) == _etag(expected)


def _not_modified(key: str, etag: str, headers: dict) -> First:
    """A 304's headers: the ETag, and the metadata if the server sends it (S3 and rclone
    do, moto does not: then None, and the caller knows it from before)."""
    from email.utils import parsedate_to_datetime

    metadata = {k[len("x-amz-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-amz-meta-")}
    try:
        mtime = parsedate_to_datetime(headers["last-modified"]).timestamp()
    except (KeyError, TypeError, ValueError):
        mtime = 0.0
    if not metadata or not mtime:
        metadata = None
    return First(ObjectInfo(key, -1, _etag(headers.get("etag", etag)), mtime, metadata, headers.get("content-type")),
                 not_modified=True)


class S3Store:
    max_key = 1024   # bytes of UTF-8: S3 refuses longer keys (Vfs.key_fits)

    def __init__(self, service: S3Service, bucket: str):
        self.service = service
        self.bucket = bucket
        self.url = f"s3://{bucket}"
        self._root_checked = False

    @property
    def stats(self) -> Stats:
        return self.service.stats

    @cached_property
    def id(self) -> str:
        return f"{self.service.endpoint}/{self.bucket}"

    @property
    def endpoint(self) -> str:
        return self.service.endpoint

    @property
    def _fast(self):
        """The client for this bucket's HEAD, GET and ListObjectsV2 (`S3Service.fast_for`)."""
        return self.service.fast_for(self.bucket)

    def _do(self, op: str, key: str, fn, attempts: int | None = None, sent: int = 0):
        return self.service.call(op, f"s3://{self.bucket}/{key}", fn, attempts, sent)

    def check_root(self) -> None:
        if self._root_checked:
            return
        self._do("HeadBucket", "", lambda: self._fast.head_bucket(Bucket=self.bucket))
        self._root_checked = True

    def probe(self, prefix: str = "") -> tuple[str, VfsError] | None:
        """One cheap request that fails the way a run would. Returns (what is wrong, the
        error) when it is the configuration: 'unreachable', 'credentials' or 'no-bucket';
        None when the request worked or failed for another reason (denied, a 5xx) that the
        run itself will meet and report. A listing, not HeadBucket: a refused HEAD has no
        body to say why. Connection failures are not retried: this runs before the program."""
        from ..errors import BAD_CREDENTIALS

        def listing():
            return self._fast.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        try:
            self._do("ListObjectsV2", prefix, listing, attempts=1)
            self._root_checked = True   # a listing answered: the bucket is there (no HeadBucket later)
            return None
        except VfsError as exc:
            cause = exc.__context__
        except Exception as exc:   # noqa: BLE001 - what botocore raises while building the client
            return "credentials", VfsError(5, f"s3://{self.bucket}: {exc}")
        err = self.service.failure(cause, f"s3://{self.bucket}/{prefix}") if cause else None
        found = answer(cause) if cause else None
        if found is not None:
            code = found[0]
            if code in BAD_CREDENTIALS:
                return "credentials", err
            if code == "NoSuchBucket":
                return "no-bucket", VfsError(2, f"s3://{self.bucket}: no such bucket at {self.endpoint}")
            return None
        kind = network_kind(cause) if cause else None
        if kind == "credentials":
            return "credentials", err
        if kind in ("unreachable", "timeout"):
            return "unreachable", err
        return None

    def _explain_denial(self, key: str) -> None:
        """Raise the refused-credentials error if that is why `key` was denied."""
        found = self.probe(key)
        if found is not None and found[0] == "credentials":
            raise found[1]

    def head(self, key: str) -> ObjectInfo | None:
        def head():
            try:
                return self._fast.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                found = answer(exc)
                if found is not None and found[0] in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        try:
            out = self._do("HeadObject", key, head)
        except VfsError as exc:
            if exc.errno == 13:  # a HEAD's 403 has no body to say why: a listing says it
                self._explain_denial(key)
            raise
        if out is None:
            return None
        return ObjectInfo(key, out["ContentLength"], _etag(out.get("ETag")), out["LastModified"].timestamp(),
                          out.get("Metadata", {}), out.get("ContentType"))

    def _pages(self, **kwargs):
        """Every page of a ListObjectsV2, following continuation tokens."""
        kwargs["Bucket"] = self.bucket
        while True:
            page = self._do("ListObjectsV2", kwargs.get("Prefix", ""),
                            lambda: self._fast.list_objects_v2(**kwargs))
            yield page
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def list(self, prefix: str) -> Listing:
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        for page in self._pages(Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                objects.append(ObjectInfo(obj["Key"], obj["Size"], _etag(obj.get("ETag")),
                                          obj["LastModified"].timestamp(), None))
            prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return Listing(objects, prefixes)

    def moved_away(self, prefix: str) -> None:
        pass   # a prefix without keys is gone by itself

    def look_below(self, prefix: str) -> Below:
        page = self._do("ListObjectsV2", prefix,
                        lambda: self._fast.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1))
        first = page.get("Contents") or []
        if page.get("KeyCount", len(first)) == 0 and not first:
            return Below.NOTHING
        # Listings come in key order, and 'dir/' is the least key below 'dir/': the one
        # key asked for is the marker if there is one. A directory bucket's listings are
        # not in order (S3 Express), so there the marker may still be there.
        if self.bucket.endswith("--x-s3") or (first and first[0].get("Key") == prefix):
            return Below.MARKED
        return Below.UNMARKED

    # --- writes ------------------------------------------------------------------------
    def _call(self, op: str, key: str, sent: int = 0, **kwargs):
        client = None
        if op in _LEAN_OPS:
            from .http import meta_ok
            lean = self.service.lean_for(self.bucket)
            if lean is not None and meta_ok(kwargs.get("Metadata")):
                client = lean
        method = getattr(client or self.service.client, _SNAKE[op])
        return self._do(op, key, lambda: method(Bucket=self.bucket, Key=key, **kwargs), sent=sent)

    def put(self, key: str, body: bytes, metadata: dict[str, str], content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        etag = _etag(self._call("PutObject", key, len(body), Body=body, Metadata=metadata, **extra).get("ETag"))
        if etag is None:
            info = self.head(key)
            etag = info.etag if info else None
        return etag

    def delete(self, key: str) -> None:
        self._call("DeleteObject", key)

    def copy(self, src: str, dst: str, metadata: dict[str, str] | None, etag: str | None = None,
             content_type: str | None = None) -> str:
        """Server-side copy; with `metadata`, replace the user metadata (chmod and friends)."""
        extra: dict = {"CopySource": {"Bucket": self.bucket, "Key": src}}
        if metadata is not None:
            extra.update(MetadataDirective="REPLACE", Metadata=metadata)
            if content_type:
                extra["ContentType"] = content_type
        if etag:
            extra["CopySourceIfMatch"] = etag
        etag = _etag(self._call("CopyObject", dst, **extra).get("CopyObjectResult", {}).get("ETag"))
        if etag is None:  # some servers (rclone serve s3) leave it out
            info = self.head(dst)
            etag = info.etag if info else None
        return etag

    def create_multipart(self, key: str, metadata: dict[str, str]) -> str:
        return self._call("CreateMultipartUpload", key, Metadata=metadata)["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        return self._call("UploadPart", key, len(body), UploadId=upload_id, PartNumber=number, Body=body)["ETag"]

    def upload_part_copy(self, key: str, upload_id: str, number: int, start: int, end: int, etag: str | None) -> str:
        extra = {"CopySourceIfMatch": etag} if etag else {}
        out = self._call("UploadPartCopy", key, UploadId=upload_id, PartNumber=number,
                         CopySource={"Bucket": self.bucket, "Key": key},
                         CopySourceRange=f"bytes={start}-{end - 1}", **extra)
        etag = out.get("CopyPartResult", {}).get("ETag")
        if not etag:   # rclone serve s3 answers 200 with no result, having stored an empty part
            raise VfsError(errno.EOPNOTSUPP, f"s3://{self.bucket}/{key}: UploadPartCopy answered without an ETag")
        return etag

    def part_sizes(self, key: str, upload_id: str) -> dict[int, int]:
        """Every part's size (ListParts answers 1,000 parts a page)."""
        sizes: dict[int, int] = {}
        marker = 0
        while True:
            out = self._call("ListParts", key, UploadId=upload_id, PartNumberMarker=marker)
            sizes.update((p["PartNumber"], p["Size"]) for p in out.get("Parts", []))
            if not out.get("IsTruncated") or not out.get("Parts"):
                return sizes
            marker = int(out.get("NextPartNumberMarker") or max(sizes))

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> str:
        parts = [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]
        return _etag(self._call("CompleteMultipartUpload", key, UploadId=upload_id,
                                MultipartUpload={"Parts": parts})["ETag"])

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._call("AbortMultipartUpload", key, UploadId=upload_id)
        except VfsError:
            pass

    def list_all(self, prefix: str) -> list[str]:
        """Every key below prefix (no delimiter), for directory renames."""
        return [o["Key"] for page in self._pages(Prefix=prefix) for o in page.get("Contents", [])]

    def get_first(self, key: str, length: int, etag: str | None = None, ranged: bool = True) -> First | None:
        """One ranged GET of [0, length): the answer's headers say the object's ETag, size
        (Content-Range) and metadata, so an open needs no HEAD. A 0-byte object has no
        byte 0 (416 InvalidRange): it is asked again without a range (at once with
        ranged=False, for an object believed empty; a longer body is cut at `length`).
        A body that breaks is asked again from where it broke, of the same version."""
        chunks: list[bytes] = []
        first: list[First] = []   # the answer whose headers describe the object

        def get(ranged: bool):
            got = sum(len(c) for c in chunks)
            kwargs = {"Bucket": self.bucket, "Key": key}
            if got:  # resuming: the rest of the same version
                kwargs["Range"] = f"bytes={got}-{length - 1}"
                kwargs["IfMatch"] = first[0].info.etag
            elif ranged:
                kwargs["Range"] = f"bytes=0-{length - 1}"
            if etag and not got:
                kwargs["IfNoneMatch"] = etag
            try:
                out = self._fast.get_object(**kwargs)
            except Exception as exc:
                found = answer(exc)
                if found is None:
                    raise
                code, status = found
                if got and (status == 412 or code == "PreconditionFailed"):  # changed meanwhile: start over
                    chunks.clear()
                    first.clear()
                    return get(ranged)
                if code in ("404", "NoSuchKey", "NotFound"):
                    return None
                if status == 304 or code == "304":
                    return _not_modified(key, etag, exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}))
                if ranged and not got and (status == 416 or code == "InvalidRange"):
                    return _EMPTY
                raise
            if got and not _same_version(out.get("ETag"), first[0].info.etag):   # If-Match ignored
                out["Body"].close()
                chunks.clear()
                first.clear()
                return get(ranged)
            if not first:
                size = _total_size(out.get("ContentRange"), out.get("ContentLength", 0))
                first.append(First(ObjectInfo(key, size, _etag(out.get("ETag")), out["LastModified"].timestamp(),
                                              out.get("Metadata", {}), out.get("ContentType"))))
            want = min(length, first[0].info.size)
            body = out["Body"]
            try:
                while (got := sum(len(c) for c in chunks)) < want:
                    chunk = body.read(min(_CHUNK_RESUMABLE, want - got))
                    if not chunk:
                        raise _ShortBody(f"body ended at byte {got} of {want}")
                    chunks.append(chunk)
            finally:
                body.close()
            return First(first[0].info, b"".join(chunks))

        got = self._do("GetObject", key, lambda: get(ranged))
        if got is _EMPTY:
            got = self._do("GetObject", key, lambda: get(False))
        if got is not None and got.data:
            self.stats.add_received(len(got.data))
        return got

    def read(self, key: str, start: int, end: int, etag: str | None, sink) -> None:
        """Pass [start, end) to sink(offset, chunk) as it arrives. A body that breaks (reset,
        short, stalled) is asked again for what is still missing only."""
        pos = start

        def get():
            nonlocal pos
            kwargs = {"Bucket": self.bucket, "Key": key, "Range": f"bytes={pos}-{end - 1}"}
            if etag:
                kwargs["IfMatch"] = etag
            out = self._fast.get_object(**kwargs)
            body = out["Body"]
            if etag and not _same_version(out.get("ETag"), etag):
                body.close()   # a server that ignores If-Match (rclone serve s3): never mix versions
                raise VfsError(errno.ESTALE, f"s3://{self.bucket}/{key}: object changed while reading")
            try:
                while pos < end:
                    chunk = body.read(min(_CHUNK_RESUMABLE, end - pos))
                    if not chunk:
                        raise _ShortBody(f"body ended at byte {pos} of {start}-{end}")
                    sink(pos, chunk)
                    self.stats.add_received(len(chunk))
                    pos += len(chunk)
            finally:
                body.close()

        self._do("GetObject", key, get)
