"""The one place where storage failures become errnos."""

from __future__ import annotations

import errno as E
import os
import re


class VfsError(Exception):
    """An operation failed with `errno`; `message` is one line saying why."""

    def __init__(self, errno: int, message: str):
        message = redact(message)
        super().__init__(message)
        self.errno = errno
        self.message = message


_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
_DENIED = {"AccessDenied", "Forbidden", "403", "AllAccessDisabled", "AccountProblem"}
BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                    "TokenRefreshRequired", "InvalidSecurity"}
_CHANGED = {"PreconditionFailed", "412"}


def from_boto(exc: Exception, what: str, endpoint: str) -> VfsError:
    """Map a botocore exception raised while doing `what` (e.g. 's3://b/k') to a VfsError."""
    # Imported here, not with the module: a run that makes no request never needs them.
    from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError, ConnectTimeoutError,
                                     EndpointConnectionError, NoCredentialsError, PartialCredentialsError,
                                     ReadTimeoutError)
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _NOT_FOUND:
            return VfsError(E.ENOENT, f"{what}: not found")
        if code in BAD_CREDENTIALS:
            return VfsError(E.EACCES, f"{what}: {endpoint} refused the credentials ({code}): check the "
                                      f"access key, secret and profile")
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


_USERINFO = re.compile(r"(?<=//)[^/@\s\"']*@")
_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def without_userinfo(url: str) -> str:
    """url without its 'user:secret@' part."""
    return _USERINFO.sub("", url)


def redact(text: str) -> str:
    """text with URL userinfo and the secret credentials in the environment removed: what
    reaches a log line, an error line or the stats file goes through here."""
    text = without_userinfo(text)
    for var in _SECRET_VARS:
        secret = os.environ.get(var)
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text
