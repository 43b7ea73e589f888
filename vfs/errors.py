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


# --- what the lean S3 client (stores/http.py) raises -----------------------------------
# The same shapes as botocore's exceptions (and, for the network ones, the same names and
# texts, which messages quote), so that every errno, retry and message is the same whichever
# client made the request, and deciding needs no import of botocore.

class LeanError(Exception):
    """A failure of a request made by the lean S3 client."""


class ClientError(LeanError):
    """An error answer: `response` as botocore's ClientError has it ({'Error': {'Code',
    'Message', ...}, 'ResponseMetadata': {'HTTPStatusCode', 'HTTPHeaders'}})."""

    def __init__(self, response: dict, operation_name: str):
        error = response.get("Error", {})
        super().__init__(f"An error occurred ({error.get('Code', 'Unknown')}) when calling the "
                         f"{operation_name} operation: {error.get('Message', 'Unknown')}")
        self.response = response
        self.operation_name = operation_name


class EndpointConnectionError(LeanError):
    def __init__(self, endpoint_url: str):
        super().__init__(f'Could not connect to the endpoint URL: "{endpoint_url}"')


class ConnectTimeoutError(LeanError):
    def __init__(self, endpoint_url: str):
        super().__init__(f'Connect timeout on endpoint URL: "{endpoint_url}"')


class ReadTimeoutError(LeanError):
    def __init__(self, endpoint_url: str):
        super().__init__(f'Read timeout on endpoint URL: "{endpoint_url}"')


class ConnectionClosedError(LeanError):
    def __init__(self, endpoint_url: str):
        super().__init__("Connection was closed before we received a valid response from endpoint "
                         f'URL: "{endpoint_url}".')


class ResponseStreamingError(LeanError):
    def __init__(self, error: Exception):
        super().__init__(f"An error occurred while reading from response stream: {error!r}")


def _boto():
    """botocore.exceptions if botocore was imported, else None: then no exception can be
    one of its, and nothing here imports it."""
    import sys
    return sys.modules.get("botocore.exceptions")


def answer(exc: Exception) -> tuple[str, int] | None:
    """(Error.Code, HTTP status) of an S3 error answer from either client, else None."""
    b = _boto()
    if isinstance(exc, ClientError) or (b is not None and isinstance(exc, b.ClientError)):
        return (str(exc.response.get("Error", {}).get("Code", "")),
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return None


def network_kind(exc: Exception) -> str | None:
    """'credentials' (none usable), 'unreachable' (no answer: refused, timed out, closed),
    'timeout' (no bytes within the read timeout: also unreachable), 'stream' (the body
    broke), 'other' (another client failure), or None (not a client failure)."""
    if isinstance(exc, LeanError):
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
            return "unreachable"
        if isinstance(exc, ReadTimeoutError):
            return "timeout"
        if isinstance(exc, ResponseStreamingError):
            return "stream"
        return None if isinstance(exc, ClientError) else "other"
    b = _boto()
    if b is None or not isinstance(exc, b.BotoCoreError):
        return None
    if isinstance(exc, (b.NoCredentialsError, b.PartialCredentialsError)):
        return "credentials"
    if isinstance(exc, (b.EndpointConnectionError, b.ConnectTimeoutError, b.ConnectionClosedError)):
        return "unreachable"
    if isinstance(exc, b.ReadTimeoutError):
        return "timeout"
    if isinstance(exc, (b.ResponseStreamingError, b.IncompleteReadError)):
        return "stream"
    return "other"


def from_boto(exc: Exception, what: str, endpoint: str) -> VfsError:
    """Map a client exception (botocore's or the lean client's) raised while doing `what`
    (e.g. 's3://b/k') to a VfsError."""
    found = answer(exc)
    if found is not None:
        code, status = found
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
    kind = network_kind(exc)
    if kind == "credentials":
        return VfsError(E.EIO, f"{what}: no usable AWS credentials found for {endpoint} ({exc})")
    if kind == "unreachable":
        return VfsError(E.EIO, f"{what}: endpoint {endpoint} unreachable ({_reason(exc)})")
    if kind == "timeout":
        return VfsError(E.EIO, f"{what}: endpoint {endpoint} timed out")
    if kind is not None:
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
