"""S3 through boto3."""

from __future__ import annotations

import threading
from functools import cached_property

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import VfsError, from_boto
from ..stats import Stats
from .base import Listing, ObjectInfo

_CHUNK = 1 << 20
_SNAKE = {"PutObject": "put_object", "DeleteObject": "delete_object", "CopyObject": "copy_object",
          "CreateMultipartUpload": "create_multipart_upload", "UploadPart": "upload_part",
          "UploadPartCopy": "upload_part_copy", "ListParts": "list_parts",
          "CompleteMultipartUpload": "complete_multipart_upload", "AbortMultipartUpload": "abort_multipart_upload"}


class S3Service:
    """One boto3 client per process, shared by the bucket stores (it is thread-safe)."""

    def __init__(self, endpoint_url: str | None, profile: str | None, region: str | None, stats: Stats):
        self.stats = stats
        self._args = (endpoint_url, profile, region)
        self._lock = threading.Lock()
        self._client = None

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                # Imported here: boto3 costs ~0.15 s, which a run touching no bucket never pays.
                import boto3
                from botocore.config import Config

                endpoint_url, profile, region = self._args
                session = boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
                config = Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5, read_timeout=60, max_pool_connections=64,
                    s3={"addressing_style": "path"} if endpoint_url or _env_endpoint() else {},
                )
                self._client = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
            return self._client

    @cached_property
    def endpoint(self) -> str:
        try:
            return self.client.meta.endpoint_url
        except Exception:
            return self._args[0] or "the S3 endpoint"

    def list_buckets(self) -> list[str]:
        try:
            out = self.client.list_buckets()
        except (ClientError, BotoCoreError) as exc:
            raise from_boto(exc, "s3://", self.endpoint) from None
        self.stats.request("ListBuckets")
        return [b["Name"] for b in out.get("Buckets", [])]


def _env_endpoint() -> bool:
    import os
    return bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))


class S3Store:
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

    def _fail(self, exc: Exception, key: str = "") -> VfsError:
        return from_boto(exc, f"s3://{self.bucket}/{key}", self.endpoint)

    def check_root(self) -> None:
        if self._root_checked:
            return
        try:
            self.service.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc) from None
        finally:
            self.stats.request("HeadBucket")
        self._root_checked = True

    def head(self, key: str) -> ObjectInfo | None:
        try:
            out = self.service.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            err = self._fail(exc, key)
            if err.errno == 2 and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise err from None
        except BotoCoreError as exc:
            raise self._fail(exc, key) from None
        finally:
            self.stats.request("HeadObject")
        return ObjectInfo(key, out["ContentLength"], out.get("ETag"), out["LastModified"].timestamp(),
                          out.get("Metadata", {}), out.get("ContentType"))

    def _pages(self, **kwargs):
        """Every page of a ListObjectsV2, following continuation tokens."""
        kwargs["Bucket"] = self.bucket
        while True:
            try:
                page = self.service.client.list_objects_v2(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, kwargs.get("Prefix", "")) from None
            finally:
                self.stats.request("ListObjectsV2")
            yield page
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def list(self, prefix: str) -> Listing:
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        for page in self._pages(Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                objects.append(ObjectInfo(obj["Key"], obj["Size"], obj.get("ETag"),
                                          obj["LastModified"].timestamp(), None))
            prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return Listing(objects, prefixes)

    def has_prefix(self, prefix: str) -> bool:
        try:
            page = self.service.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, prefix) from None
        finally:
            self.stats.request("ListObjectsV2")
        return page.get("KeyCount", 0) > 0

    # --- writes ------------------------------------------------------------------------
    def _call(self, op: str, key: str, sent: int = 0, **kwargs):
        try:
            return getattr(self.service.client, _SNAKE[op])(Bucket=self.bucket, Key=key, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, key) from None
        finally:
            self.stats.request(op, sent=sent)

    def put(self, key: str, body: bytes, metadata: dict[str, str], content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        etag = self._call("PutObject", key, len(body), Body=body, Metadata=metadata, **extra).get("ETag")
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
        etag = self._call("CopyObject", dst, **extra).get("CopyObjectResult", {}).get("ETag")
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
        return out["CopyPartResult"]["ETag"]

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
        return self._call("CompleteMultipartUpload", key, UploadId=upload_id, MultipartUpload={"Parts": parts})["ETag"]

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._call("AbortMultipartUpload", key, UploadId=upload_id)
        except VfsError:
            pass

    def list_all(self, prefix: str) -> list[str]:
        """Every key below prefix (no delimiter), for directory renames."""
        return [o["Key"] for page in self._pages(Prefix=prefix) for o in page.get("Contents", [])]

    def read(self, key: str, start: int, end: int, etag: str | None, sink) -> None:
        kwargs = {"Bucket": self.bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
        if etag:
            kwargs["IfMatch"] = etag
        try:
            body = self.service.client.get_object(**kwargs)["Body"]
            self.stats.request("GetObject")
            pos = start
            while pos < end:
                chunk = body.read(min(_CHUNK, end - pos))
                if not chunk:
                    raise VfsError(5, f"s3://{self.bucket}/{key}: short read at {pos} (expected up to {end})")
                sink(pos, chunk)
                self.stats.add_received(len(chunk))
                pos += len(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, key) from None
