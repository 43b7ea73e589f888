"""An HTTP proxy between objmount and the S3 server that breaks requests on purpose.

Point objmount at it with --endpoint-url; it forwards each request to the real server and
answers with the server's response, unless a Fault matches the request, in which case it
misbehaves in that fault's way:

    reset   headers (full Content-Length) and `at` bytes of the body, then a TCP reset
    short   headers (full Content-Length) and `at` bytes of the body, then a clean close
    status  an error answer (`status`, S3 error `code`) instead of forwarding
    stall   `at` bytes of the body (None: nothing at all, not even headers), then silence
            for `seconds` (or until the proxy stops, or the test sets `release`)
    pause   as stall, but then the rest of the body: a slow answer, not a broken one

A fault matches by method and a substring of the path (and, for GETs, only ranged ones
if `ranged`), and applies to its first `times` matching requests after the first `skip`
(an open's own GET, say).

`rewrite(method, path, body) -> body`, if set, changes the server's answers (to play a
server that spells things its own way); `route(method, path) -> path`, if set, changes the
path a request is forwarded to (to play a server that stores keys its own way; the
server must not check signatures: moto); `ignored` names request headers (lower case) that
are not forwarded (to play a server that ignores them, e.g. {"if-match"}).
"""

from __future__ import annotations

import http.client
import http.server
import socket
import struct
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Fault:
    kind: str                      # reset | short | status | stall | pause
    method: str | None = None      # GET, PUT, HEAD, ... (None: any)
    path: str = ""                 # substring of the request path (with query)
    times: int = 1                 # how many matching requests it breaks
    at: int | None = None          # body bytes sent before breaking (None: half; stall: none)
    status: int = 503
    code: str = "SlowDown"
    seconds: float = 3600.0        # how long a stall lasts
    release: threading.Event | None = None   # ends a stall early
    hits: int = 0                  # requests it broke so far
    skip: int = 0                  # matching requests let through before it starts
    skipped: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.hits < self.times and (self.method is None or self.method == method)
                and self.path in path)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    fault: str | None


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.rewrite = None   # (method, path, body) -> body
        self.route = None     # (method, path) -> the path forwarded
        self.ignored: set[str] = set()   # request headers not forwarded
        self._lock = threading.Lock()
        self._stop = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except (ConnectionError, BrokenPipeError):
                    self.close_connection = True

            def _any(self):
                proxy._serve(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.seen.clear()

    def requests(self, method: str | None = None, path: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if (method is None or s.method == method) and path in s.path]

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    # --- one request ---------------------------------------------------------------------
    def _serve(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(h.rfile)
        with self._lock:
            fault = next((f for f in self.faults if f.matches(h.command, h.path)), None)
            if fault is not None and fault.skipped < fault.skip:
                fault.skipped += 1
                fault = None
            if fault is not None:
                fault.hits += 1
            self.seen.append(Seen(h.command, h.path, dict(h.headers), fault.kind if fault else None))
        if fault is not None and fault.kind == "status":
            return self._error(h, fault)
        if fault is not None and fault.kind == "stall" and fault.at is None:
            self._stall(fault)
            h.close_connection = True
            return
        status, headers, payload = self._forward(h, body)
        if self.rewrite is not None:
            payload = self.rewrite(h.command, h.path, payload)
        h.send_response_only(status)
        length = len(payload)
        for name, value in headers:
            if name.lower() == "content-length" and h.command == "HEAD":
                length = int(value)   # a HEAD's length is the object's
            elif name.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(name, value)
        h.send_header("Content-Length", str(length))
        if fault is None:
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(payload)
            return
        h.send_header("Connection", "close")
        h.end_headers()
        cut = len(payload) // 2 if fault.at is None else min(fault.at, len(payload))
        h.wfile.write(payload[:cut])
        h.wfile.flush()
        if fault.kind == "pause":
            self._stall(fault)
            h.wfile.write(payload[cut:])
            h.wfile.flush()
        h.close_connection = True
        if fault.kind == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault.kind == "stall":
            self._stall(fault)
        h.connection.close()

    def _stall(self, fault: Fault) -> None:
        deadline = time.monotonic() + fault.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            if fault.release is not None and fault.release.is_set():
                return
            self._stop.wait(0.05)

    def _forward(self, h, body: bytes):
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items()
                       if k.lower() not in ("connection", "transfer-encoding") and k.lower() not in self.ignored}
            headers["Content-Length"] = str(len(body))
            path = h.path if self.route is None else self.route(h.command, h.path)
            conn.request(h.command, path, body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.getheaders(), payload
        finally:
            conn.close()

    def _error(self, h, fault: Fault) -> None:
        payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                   f'<Message>injected by the test proxy</Message></Error>').encode()
        h.send_response_only(fault.status)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(payload)


def _read_chunked(rfile) -> bytes:
    out = bytearray()
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        out += rfile.read(size)
        rfile.readline()
