"""The one place where storage failures become errnos."""

from __future__ import annotations

import errno as E

from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError, ConnectTimeoutError,
                                 EndpointConnectionError, NoCredentialsError, PartialCredentialsError,
                                 ReadTimeoutError)


class VfsError(Exception):
    """An operation failed with `errno`; `message` is one line saying why."""

    def __init__(self, errno: int, message: str):
        super().__init__(message)
        self.errno = errno
        self.message = message


_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
_DENIED = {"AccessDenied", "Forbidden", "403", "AllAccessDisabled", "AccountProblem"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                    "TokenRefreshRequired", "InvalidSecurity"}
_CHANGED = {"PreconditionFailed", "412"}


def from_boto(exc: Exception, what: str, endpoint: str) -> VfsError:
    """Map a botocore exception raised while doing `what` (e.g. 's3://b/k') to a VfsError."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _NOT_FOUND:
            return VfsError(E.ENOENT, f"{what}: not found")
        if code in _BAD_CREDENTIALS:
            return VfsError(E.EIO, f"{what}: credentials rejected by {endpoint} ({code})")
        if code in _DENIED:
            return VfsError(E.EACCES, f"{what}: access denied by {endpoint}")
        if code in _CHANGED:
            return VfsError(E.ESTALE, f"{what}: object changed while reading")
        if status >= 500:
            return VfsError(E.EIO, f"{what}: server error from {endpoint} ({code or status})")
        return VfsError(E.EIO, f"{what}: {endpoint} answered {code or status}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return VfsError(E.EIO, f"{what}: no usable AWS credentials found for {endpoint} ({exc})")
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return VfsError(E.EIO, f"{what}: endpoint {endpoint} unreachable ({_reason(exc)})")
    if isinstance(exc, ReadTimeoutError):
        return VfsError(E.EIO, f"{what}: endpoint {endpoint} timed out")
    if isinstance(exc, BotoCoreError):
        return VfsError(E.EIO, f"{what}: {exc}")
    if isinstance(exc, OSError):
        return VfsError(exc.errno or E.EIO, f"{what}: {exc.strerror or exc}")
    return VfsError(E.EIO, f"{what}: {exc}")


def _reason(exc: Exception) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if hint in text:
            return hint
    return type(exc).__name__
