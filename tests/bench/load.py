"""A small, tuned HTTP/1.1 load generator: keep-alive connections, closed loop, bounded in time.

Run as its own process (``python -m tests.bench.load URL --concurrency 32 --seconds 5``) so it competes
with the server for CPU the same way for the floor and the gateway; prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import time
from collections.abc import Callable
from urllib.parse import urlsplit

Requests = Callable[[], bytes]


async def _connection(
    host: str, port: int, requests: Requests, deadline: float, latencies: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            request = requests()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            chunked = False
            for line in head.split(b"\r\n"):
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(line[15:])
                elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                errors.append(str(status))
    finally:
        writer.close()


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def _requests(method: str, url: str, body: bytes, headers: list[str]) -> Requests:
    """The bytes of each request. ``__ID__`` in the body becomes a number unique to the request (JSON-RPC
    ids must not repeat while in flight on one MCP session); otherwise every request is the same bytes."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"{method} {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        + "".join(f"{header}\r\n" for header in headers)
    ).encode()
    if b"__ID__" not in body:
        fixed = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        return lambda: fixed
    ids = itertools.count(1)

    def numbered() -> bytes:
        payload = body.replace(b"__ID__", b"%d" % next(ids))
        return head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload

    return numbered


async def run(
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    method: str = "POST",
    headers: list[str] | None = None,
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _requests(method, url, body, headers or [])
    # Warm up: open connections and prime the server's caches.
    warm: list[float] = []
    await asyncio.gather(
        *(_connection(host, port, request, time.perf_counter() + 0.5, warm, []) for _ in range(concurrency))
    )
    latencies: list[float] = []
    errors: list[str] = []
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(host, port, request, started + seconds, latencies, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "generator_cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--body", default="{}")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(
        run(args.url, args.body.encode(), args.concurrency, args.seconds, args.method, args.header)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
