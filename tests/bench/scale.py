"""The scale rows of ``make bench`` (issue 18): a backlog of durable runs drained by workers, and many
concurrent streaming runs held for a while. Loopback only, bounded in time, every process stopped at the end.

- **Queue drain** (``bench_drain``): a gateway (SQLite, the default store; then PostgreSQL, in a database
  made for the run and dropped after it, when reachable) gets ``runs`` durable runs
  (``POST /v1/agents/echo_durable/runs``, 32 keep-alive connections) while no worker can take them, then 4
  bench workers are started and the time until every run has succeeded is measured. A durable run is refused
  (503 ``no_worker``) while no worker serves its endpoint, so one placeholder worker with a single slot,
  held by an ``idle`` run for the whole row, keeps the endpoint served without taking any of the runs. The
  drain is watched with ``GET /v1/runs?endpoint=echo_durable&status=queued&limit=1`` then
  ``status=running`` (each at most one row) every 50 ms; the final count per status comes from ``GET /v1/stats``.
- **Concurrent streams** (``bench_streams``): ``clients`` clients, split over ``STREAM_PROCESSES`` processes
  of their own (``python -m tests.bench.scale streams ...``, raw asyncio streams on uvloop, keep-alive, the
  chunked SSE body parsed as it comes), each ``POST /v1/agents/drip/stream`` in a loop for ``seconds``: a run
  that emits 10 tokens 100 ms apart. Two bench workers hold enough slots for every client's run at once. A
  run counts as an error when the answer is not 200, the stream ends without ``run.completed`` or with fewer
  tokens, or it takes more than ``RUN_TIMEOUT``. Time to first event is from the request's first byte sent to
  the first whole SSE frame (``run.started``). The gateway's RSS is read before the load, 10 s into it and at
  the end; its CPU (and the workers') over the load.

``python -m tests.bench --only scale`` runs both (``--scale-runs``, default 10,000; ``--scale-seconds``,
default 60); ``scale_markdown`` gives their table lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    from tests.bench.__main__ import Servers

ROOT = Path(__file__).resolve().parents[2]

#: Defaults of ``--scale-runs`` and ``--scale-seconds``, and the clients of the streaming row.
RUNS = 10_000
SECONDS = 60.0
CLIENTS = 1_000
#: Queue drain: workers started once the runs are queued, the slots of each, submitting connections.
DRAIN_WORKERS = 4
DRAIN_SLOTS = 64
SUBMIT_CONCURRENCY = 32
#: Longest a drain may take, at least (more runs get more: 20 ms a run); past it the row says so.
DRAIN_TIMEOUT = 120.0
#: Streaming: worker processes (their slots add up to the clients and a fifth more), client processes,
#: what each run streams, and how long one may take before it counts as an error.
STREAM_WORKERS = 2
STREAM_PROCESSES = 2
DRIP = {"count": 10, "interval": 0.1}
RUN_TIMEOUT = 30.0
#: When the streaming row reads the gateway's RSS in the middle of the load (or half-way, if shorter).
RSS_PROBE_S = 10.0

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _mb(value: int) -> float:
    return round(value / 2**20, 1)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """SIGTERM to each process still running, then wait; killed past ``timeout``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"bench: {proc.args!r} did not stop within {timeout:.0f} s; killed", file=sys.stderr)
            proc.kill()
            proc.wait(5)


def _worker(
    servers: Servers, grpc_port: int, env: dict[str, str], slots: int, app: str = "tests.bench.worker:app"
) -> subprocess.Popen[bytes]:
    args = ["run", app, "--gateway", f"127.0.0.1:{grpc_port}", "--slots", str(slots)]
    return servers.spawn([sys.executable, "-m", "fastagentic", "--log-level", "warning", *args], env)


def _wait_workers(base: str, count: int, timeout: float = 60) -> None:
    """Until ``/readyz`` counts ``count`` connected workers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2)
            if answer.status_code == 200 and answer.json().get("workers", 0) >= count:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"bench: {count} worker(s) did not connect to {base} within {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------- HTTP/1.1


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server closes the connection) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = close = False
    for line in head.split(b"\r\n")[1:]:
        lower = line.lower()
        if lower.startswith(b"content-length:"):
            length = int(line[15:])
        elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
            chunked = True
        elif lower.startswith(b"connection:") and b"close" in lower:
            close = True
    if not chunked:
        return status, await reader.readexactly(length) if length else b"", close
    parts: list[bytes] = []
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    await reader.readuntil(b"\r\n")
    return status, b"".join(parts), close


def _request(host: str, port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _submit(
    host: str, port: int, path: str, body: bytes, runs: int, concurrency: int
) -> dict[str, Any]:
    """POST ``runs`` requests over ``concurrency`` keep-alive connections; counts the 202s."""
    request = _request(host, port, path, body)
    left = runs
    accepted = 0
    errors: Counter[str] = Counter()

    async def connection() -> None:
        nonlocal left, accepted
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while left > 0:
                left -= 1
                writer.write(request)
                status, answer, close = await _read_response(reader)
                if status == 202:
                    accepted += 1
                else:
                    errors[f"{status} {answer[:120].decode(errors='replace')}"] += 1
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return {
        "accepted": accepted,
        "errors": dict(errors),
        "seconds": time.perf_counter() - started,
        "generator_cpu_s": time.process_time() - cpu,
    }


# ---------------------------------------------------------------------------------------------- queue drain


def _first(http: httpx.Client, base: str, status: str, endpoint: str = "echo_durable") -> bool:
    """Whether some run of ``endpoint`` is in ``status`` (one read of at most one row)."""
    answer = http.get(f"{base}/v1/runs", params={"status": status, "endpoint": endpoint, "limit": 1})
    answer.raise_for_status()
    return bool(answer.json()["runs"])


def bench_drain(
    servers: Servers, workdir: Path, body: str, runs: int, name: str, **settings: str
) -> dict[str, Any]:
    """One queue-drain row (see the module's docstring) on a gateway with ``settings``."""
    from tests.bench.__main__ import cpu_seconds, rss_bytes, spawn_gateway, wait_http

    gateway, base, grpc_port, env = spawn_gateway(servers, workdir / f"drain-{name}", **settings)
    procs = [gateway]
    try:
        # The placeholder: serves the endpoint with one slot, held by an idle run until the row ends.
        procs.insert(0, _worker(servers, grpc_port, env, 1))
        wait_http(f"{base}/readyz")
        _wait_workers(base, 1)
        idle = httpx.post(f"{base}/v1/agents/idle/runs", json={"seconds": 3600}, timeout=10)
        idle.raise_for_status()
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 10
            while not _first(http, base, "running", "idle"):
                if time.monotonic() > deadline:
                    raise RuntimeError("bench: the placeholder worker did not start the idle run")
                time.sleep(0.02)
            rss_before = rss_bytes(gateway.pid)
            cpu_before = cpu_seconds(gateway.pid)
            submitted = _run(
                _submit(
                    "127.0.0.1",
                    int(base.rsplit(":", 1)[1]),
                    "/v1/agents/echo_durable/runs",
                    body.encode(),
                    runs,
                    SUBMIT_CONCURRENCY,
                )
            )
            cpu_submit = cpu_seconds(gateway.pid) - cpu_before
            rss_queued = rss_bytes(gateway.pid)

            started = time.monotonic()
            workers = [_worker(servers, grpc_port, env, DRAIN_SLOTS) for _ in range(DRAIN_WORKERS)]
            procs[:0] = workers
            cpu_before = cpu_seconds(gateway.pid)
            first_s = drain_s = None
            timeout = max(DRAIN_TIMEOUT, runs * 0.02)
            while time.monotonic() - started < timeout:
                now = time.monotonic() - started
                if first_s is None and _first(http, base, "succeeded"):
                    first_s = now
                # queued first: a run leaves ``queued`` for ``running``, never back (no worker is lost here)
                if (
                    first_s is not None
                    and not _first(http, base, "queued")
                    and not _first(http, base, "running")
                ):
                    drain_s = time.monotonic() - started
                    break
                time.sleep(0.05)
            cpu_drain = cpu_seconds(gateway.pid) - cpu_before
            worker_cpu = sum(cpu_seconds(w.pid) for w in workers)
            rss_drained = rss_bytes(gateway.pid)
            stats = http.get(f"{base}/v1/stats", params={"window": "1h"})
            stats.raise_for_status()
            by_status = stats.json()["endpoints"].get("echo_durable", {}).get("by_status", {})
            http.post(f"{base}/v1/runs/{idle.json()['run_id']}/cancel")
    finally:
        _stop(procs)
    succeeded = by_status.get("succeeded", 0)
    drain = drain_s if drain_s is not None else float("nan")
    steady = drain - (first_s or 0.0)
    return {
        "runs": runs,
        "accepted": submitted["accepted"],
        "submit_errors": sum(submitted["errors"].values()),
        "submit_error_kinds": submitted["errors"],
        "submit_s": round(submitted["seconds"], 3),
        "submit_rps": round(submitted["accepted"] / submitted["seconds"], 1),
        "submit_gateway_cpu_us_per_run": round(cpu_submit / max(submitted["accepted"], 1) * 1e6),
        "submit_generator_cpu_share": round(submitted["generator_cpu_s"] / submitted["seconds"], 3),
        "workers": DRAIN_WORKERS,
        "slots": DRAIN_SLOTS,
        "drained": drain_s is not None,
        "first_run_s": round(first_s, 3) if first_s is not None else None,
        "drain_s": round(drain, 3),
        # the steady rate: from the first run finished (the workers' start-up left out) to the last
        "drain_rps": round(succeeded / steady, 1) if steady > 0 else float("nan"),
        "drain_gateway_cpu_us_per_run": round(cpu_drain / max(succeeded, 1) * 1e6),
        "drain_worker_cpu_us_per_run": round(worker_cpu / max(succeeded, 1) * 1e6),
        "succeeded": succeeded,
        "failed": sum(v for k, v in by_status.items() if k != "succeeded"),
        "by_status": by_status,
        "errors": sum(submitted["errors"].values()) + (submitted["accepted"] - succeeded),
        "rss_before_mb": _mb(rss_before),
        "rss_queued_mb": _mb(rss_queued),
        "rss_after_mb": _mb(rss_drained),
    }


# ---------------------------------------------------------------------------------------------- streams


async def _stream_once(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, tokens: int
) -> tuple[str, float, bool]:
    """One streaming run on an open connection: (error or "", seconds to the first frame, close after)."""
    started = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    first = 0.0
    status = int(head[9:12])
    lower = head.lower()
    close = b"connection: close" in lower
    if status != 200 or b"transfer-encoding: chunked" not in lower:
        # an error answer (JSON, with its length): read it so the connection can serve the next run
        length = 0
        for line in lower.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        return f"status {status}", 0.0, close
    parts: list[bytes] = []
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
        chunk = (await reader.readexactly(size + 2))[:-2]
        if not first and (b"\n\n" in chunk or (parts and b"\n\n" in parts[-1][-1:] + chunk)):
            first = time.perf_counter() - started
        parts.append(chunk)
    await reader.readuntil(b"\r\n")
    data = b"".join(parts)
    if b"event: run.completed\n" not in data.rstrip().rsplit(b"\n\n", 1)[-1]:
        return "no run.completed", first, close
    if data.count(b"event: token\n") != tokens:
        return "truncated", first, close
    return "", first, close


async def _stream_client(
    host: str, port: int, request: bytes, tokens: int, deadline: float, out: dict[str, Any]
) -> None:
    """Streaming runs back to back on a keep-alive connection until ``deadline``; a new one after an error."""
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    errors: Counter[str] = out["errors"]
    while time.perf_counter() < deadline:
        if writer is None or reader is None:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                errors[f"connect: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.1)
                continue
        started = time.perf_counter()
        try:
            error, first, close = await asyncio.wait_for(
                _stream_once(reader, writer, request, tokens), RUN_TIMEOUT
            )
        except TimeoutError:
            error, first, close = "timeout", 0.0, True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            error, first, close = type(exc).__name__, 0.0, True
        if error:
            errors[error] += 1
        else:
            out["ttfe"].append(round(first * 1000, 3))
            out["run_ms"].append(round((time.perf_counter() - started) * 1000, 3))
        if close:
            writer.close()
            writer = reader = None
    if writer is not None:
        writer.close()


async def stream_clients(url: str, body: bytes, clients: int, seconds: float, tokens: int) -> dict[str, Any]:
    """``clients`` concurrent clients streaming runs from ``url`` for ``seconds``; raw samples and totals."""
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or 80
    request = _request(host, port, parts.raw_path.decode(), body)
    out: dict[str, Any] = {"errors": Counter(), "ttfe": [], "run_ms": []}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(
        *(_stream_client(host, port, request, tokens, started + seconds, out) for _ in range(clients))
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {
        "clients": clients,
        "runs": len(out["ttfe"]),
        "errors": dict(out["errors"]),
        "seconds": elapsed,
        "generator_cpu_s": cpu,
        "ttfe_ms": out["ttfe"],
        "run_ms": out["run_ms"],
    }


def bench_streams(servers: Servers, workdir: Path, clients: int, seconds: float) -> dict[str, Any]:
    """The concurrent-streams row (see the module's docstring)."""
    from tests.bench.__main__ import cpu_seconds, rss_bytes, spawn_gateway, wait_http

    gateway, base, grpc_port, env = spawn_gateway(servers, workdir / "streams")
    slots = -(-clients * 6 // 5 // STREAM_WORKERS)
    workers = [_worker(servers, grpc_port, env, slots) for _ in range(STREAM_WORKERS)]
    procs = [*workers, gateway]
    generators: list[subprocess.Popen[bytes]] = []
    url = f"{base}/v1/agents/drip/stream"
    body = json.dumps(DRIP)
    try:
        wait_http(f"{base}/readyz")
        _wait_workers(base, STREAM_WORKERS)
        warm = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
        if warm.status_code != 200 or "run.completed" not in warm.text:
            raise RuntimeError(f"bench: a drip stream failed: {warm.status_code} {warm.text[:300]}")
        rss_start = rss_bytes(gateway.pid)
        pids = [gateway.pid, *(w.pid for w in workers)]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        processes = max(min(STREAM_PROCESSES, clients), 1)
        shares = [clients // processes + (i < clients % processes) for i in range(processes)]
        started = time.monotonic()
        outputs = [workdir / f"streams-{index}.json" for index in range(processes)]
        for share, output in zip(shares, outputs, strict=True):
            args = [
                url,
                "--body",
                body,
                "--clients",
                str(share),
                "--seconds",
                str(seconds),
                "--out",
                str(output),
            ]
            generators.append(
                subprocess.Popen([sys.executable, "-m", "tests.bench.scale", "streams", *args], cwd=ROOT)
            )
        probe_at = min(RSS_PROBE_S, seconds / 2)
        rss_probe = None
        samples: list[tuple[float, float]] = []  # (seconds into the load, gateway RSS MB), every 5 s
        while any(proc.poll() is None for proc in generators):
            now = time.monotonic() - started
            if rss_probe is None and now >= probe_at:
                rss_probe = rss_bytes(gateway.pid)
            if now >= 5 * len(samples):
                samples.append((round(now, 1), _mb(rss_bytes(gateway.pid))))
            if now > seconds + RUN_TIMEOUT + 60:
                raise RuntimeError("bench: the stream clients did not stop in time")
            time.sleep(0.05)
        results = []
        for proc, output in zip(generators, outputs, strict=True):
            if proc.returncode:
                raise RuntimeError(f"bench: a stream client process failed ({proc.returncode})")
            results.append(json.loads(output.read_text()))
        elapsed = time.monotonic() - started
        cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
        rss_end = rss_bytes(gateway.pid)
        rss_probe = rss_end if rss_probe is None else rss_probe
    finally:
        for proc in generators:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        _stop(procs)
    ttfe = [v for r in results for v in r["ttfe_ms"]]
    run_ms = [v for r in results for v in r["run_ms"]]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    completed = len(ttfe)
    return {
        "clients": clients,
        "client_processes": processes,
        "seconds": seconds,
        "wall_s": round(elapsed, 2),  # the clients' start and the last runs' end included
        "tokens_per_run": DRIP["count"],
        "token_interval_ms": DRIP["interval"] * 1000,
        "worker_slots": slots * STREAM_WORKERS,
        "runs": completed,
        "runs_per_s": round(sum(r["runs"] / r["seconds"] for r in results), 1),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "ttfe_p50_ms": round(_percentile(ttfe, 0.5), 2),
        "ttfe_p99_ms": round(_percentile(ttfe, 0.99), 2),
        "run_p50_ms": round(_percentile(run_ms, 0.5), 1),
        "run_p99_ms": round(_percentile(run_ms, 0.99), 1),
        "rss_start_mb": _mb(rss_start),
        "rss_probe_at_s": probe_at,
        "rss_10s_mb": _mb(rss_probe),
        "rss_end_mb": _mb(rss_end),
        "rss_growth_mb": _mb(rss_end - rss_probe),
        # the gateway keeps the last ``ephemeral_retention`` (10,000) finished runs: RSS grows until then
        "rss_samples_mb": samples,
        "gateway_cpu_share": round(cpu[0] / elapsed, 3),
        "gateway_cpu_us_per_run": round(cpu[0] / max(completed, 1) * 1e6),
        "worker_cpu_share": round(sum(cpu[1:]) / elapsed, 3),
        "generator_cpu_share": [round(r["generator_cpu_s"] / r["seconds"], 3) for r in results],
    }


# ---------------------------------------------------------------------------------------------- the group


def bench_scale(
    servers: Servers,
    workdir: Path,
    body: str,
    seconds: float,
    runs: int | None = None,
    stream_seconds: float | None = None,
    clients: int | None = None,
) -> dict[str, Any]:
    """Both scale rows: the queue drain on SQLite (and on PostgreSQL when reachable), then the streams.
    ``seconds`` (the other groups' step length) is not used; the sizes are ``runs`` and ``stream_seconds``
    (``--scale-runs`` and ``--scale-seconds``: ``SETTINGS`` when not given) and ``clients``."""
    count = int(SETTINGS["runs"] if runs is None else runs)
    out: dict[str, Any] = {"scale_drain_sqlite": bench_drain(servers, workdir, body, count, "sqlite")}
    out.update(_drain_postgres(servers, workdir, body, count))
    length = float(SETTINGS["seconds"] if stream_seconds is None else stream_seconds)
    out["scale_streams"] = bench_streams(servers, workdir, CLIENTS if clients is None else clients, length)
    return out


#: What ``bench_scale`` runs when not told: ``python -m tests.bench`` sets it from its options.
SETTINGS: dict[str, float] = {"runs": RUNS, "seconds": SECONDS}


def _drain_postgres(servers: Servers, workdir: Path, body: str, runs: int) -> dict[str, Any]:
    from tests.bench.__main__ import NoDatabase, bench_database

    try:
        with bench_database() as url:
            return {"scale_drain_postgresql": bench_drain(servers, workdir, body, runs, "pg", store_url=url)}
    except NoDatabase as exc:
        return {"scale_drain_postgresql": f"queue drain on PostgreSQL: not measured, unreachable ({exc})"}


#: The rows ``--only scale`` prints, and their labels in the table.
ROWS = {
    "scale_drain_sqlite": "durable runs queued, then drained by 4 workers, SQLite",
    "scale_drain_postgresql": "durable runs queued, then drained by 4 workers, PostgreSQL",
    "scale_streams": "concurrent SSE streaming runs",
}


def scale_line(name: str, row: dict[str, Any] | str) -> str:
    """One row as a line of text (``--only scale``)."""
    if isinstance(row, str):
        return f"{name}: {row}"
    if name == "scale_streams":
        return (
            f"{name}: {row['clients']} clients for {row['seconds']:.0f} s, {row['runs']} runs "
            f"({row['runs_per_s']:.0f}/s), {row['errors']} errors, time to first event p50 "
            f"{row['ttfe_p50_ms']:.1f} ms p99 {row['ttfe_p99_ms']:.1f} ms, gateway RSS {row['rss_start_mb']} -> "
            f"{row['rss_10s_mb']} -> {row['rss_end_mb']} MB, gateway CPU {row['gateway_cpu_share']:.2f}"
        )
    return (
        f"{name}: {row['runs']} runs submitted at {row['submit_rps']:.0f}/s, drained in {row['drain_s']:.2f} s "
        f"({row['drain_rps']:.0f}/s after the first), {row['errors']} errors, {row['failed']} not succeeded, "
        f"gateway RSS {row['rss_before_mb']} -> {row['rss_queued_mb']} -> {row['rss_after_mb']} MB"
    )


def scale_markdown(results: dict[str, Any]) -> list[str]:
    """The table of the scale rows (the rows measured in ``results``; a row not measured says why)."""
    lines = [
        "| scale | runs | submit runs/s | drain runs/s | time to drain s | errors "
        "| gateway RSS MB (before, queued, drained) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("scale_drain_sqlite", "scale_drain_postgresql"):
        row = results.get(name)
        if isinstance(row, str):
            lines.append(f"| {ROWS[name]} | {row} | | | | | |")
        elif row:
            lines.append(
                f"| {ROWS[name]} | {row['runs']} | {row['submit_rps']:.0f} | {row['drain_rps']:.0f} "
                f"| {row['drain_s']:.2f} | {row['errors']} "
                f"| {row['rss_before_mb']} -> {row['rss_queued_mb']} -> {row['rss_after_mb']} |"
            )
    streams = results.get("scale_streams")
    if streams:
        lines += [
            "",
            "| scale | clients | seconds | runs | runs/s | errors | first event p50 ms | first event p99 ms "
            "| gateway RSS MB (start, 10 s, end) | gateway CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
            f"| {ROWS['scale_streams']} ({streams['tokens_per_run']} tokens "
            f"{streams['token_interval_ms']:.0f} ms apart each) | {streams['clients']} | {streams['seconds']:.0f} "
            f"| {streams['runs']} | {streams['runs_per_s']:.0f} | {streams['errors']} "
            f"| {streams['ttfe_p50_ms']:.1f} | {streams['ttfe_p99_ms']:.1f} "
            f"| {streams['rss_start_mb']}, {streams['rss_10s_mb']}, {streams['rss_end_mb']} "
            f"| {streams['gateway_cpu_share']:.2f} |",
        ]
    return lines


def main() -> None:
    """``python -m tests.bench.scale streams URL --out FILE``: one process of stream clients; writes its
    results (with every run's time to first event) as JSON to FILE."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.scale")
    commands = parser.add_subparsers(dest="command", required=True)
    streams = commands.add_parser("streams")
    streams.add_argument("url")
    streams.add_argument("--body", default=json.dumps(DRIP))
    streams.add_argument("--clients", type=int, default=CLIENTS)
    streams.add_argument("--seconds", type=float, default=SECONDS)
    streams.add_argument("--out", required=True, help="where the results go (JSON)")
    args = parser.parse_args()
    tokens = int(json.loads(args.body).get("count", DRIP["count"]))
    result = _run(stream_clients(args.url, args.body.encode(), args.clients, args.seconds, tokens))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
