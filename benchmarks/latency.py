"""A TCP proxy that makes a local S3 server look far away: each request waits `delay` ms
before it is passed on, as if it had crossed a network with that much latency.

    python -m benchmarks.latency --upstream 127.0.0.1:PORT --delay-ms 20 --port-file F

A request is recognised as the client's first bytes after the server last spoke (HTTP/1.1
requests on a kept-alive connection alternate with their responses), so an upload's body
is not delayed again per chunk. New connections pay the delay on their first request only,
which is kinder than a real network (no handshake round trip). Runs as its own process so
that the proxy's work never competes for the GIL with a baseline measured in the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from contextlib import contextmanager

_CHUNK = 1 << 16


async def _serve(listen_port: int, upstream: tuple[str, int], delay: float, ready) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*upstream)
        except OSError:
            client_w.close()
            return
        server_spoke = [True]   # the next client bytes start a request

        async def to_server() -> None:
            while data := await client_r.read(_CHUNK):
                if server_spoke[0]:
                    server_spoke[0] = False
                    await asyncio.sleep(delay)
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def to_client() -> None:
            while data := await server_r.read(_CHUNK):
                server_spoke[0] = True
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        try:
            await asyncio.gather(to_server(), to_client())
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


@contextmanager
def delayed(endpoint: str, delay_ms: float):
    """An endpoint URL in front of `endpoint` (http://127.0.0.1:PORT) that delays each
    request by `delay_ms`. The proxy process ends with the block."""
    host, port = endpoint.rsplit("//", 1)[1].rsplit(":", 1)
    port_file = f"/tmp/objmount-latency-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.latency", "--upstream", f"{host}:{port}",
                             "--delay-ms", str(delay_ms), "--port-file", port_file],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the latency proxy did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{open(port_file).read().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if os.path.exists(port_file):
            os.unlink(port_file)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--port-file", help="write the port listened on here once ready")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)

    def ready(bound: int) -> None:
        if args.port_file:
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(bound))
            os.replace(tmp, args.port_file)
        else:
            print(bound, flush=True)

    asyncio.run(_serve(args.port, (host, int(port)), args.delay_ms / 1000, ready))


if __name__ == "__main__":
    main()
