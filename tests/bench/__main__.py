"""``make bench``: every front measured against a bare litestar floor in the same run, loopback only.

Bounded: each load step runs ``--seconds`` (default 5); the whole suite takes about two minutes on two
cores. Writes ``bench-results/latest.json`` and ``bench-results/latest.md``; ``--update-docs`` also
rewrites the table in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.bench.scale import ROWS as SCALE_ROWS
from tests.bench.scale import SETTINGS as SCALE_SETTINGS
from tests.bench.scale import bench_scale, scale_line, scale_markdown

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

TARGETS = {
    "invoke_c32_ratio": 0.4,  # throughput at concurrency 32 as a share of the floor's, at least
    "invoke_c32_p99_ms": 25.0,  # at most
    "invoke_c1_added_ms": 1.0,  # latency added over the floor at concurrency 1, at most
    "tokens_per_s": 100_000.0,  # on one stream, at least
    "stream_kb": 50.0,  # gateway memory per idle SSE stream, at most
    # MCP tools/list per second at concurrency 32, in each revision, at least: fifty times the ~30/s an
    # established Python MCP gateway served on the same machine (issue 5).
    "mcp_2026_tools_list_per_s": 1500.0,
    "mcp_2025_tools_list_per_s": 1500.0,
    # REST invoke at c=32 with authentication, as a share of the same without it, at least (issue 11).
    "invoke_jwt_c32_ratio": 0.85,
    "invoke_jwt_uncached_c32_ratio": 0.85,
    "invoke_api_key_c32_ratio": 0.9,
    "invoke_rate_limited_c32_ratio": 0.9,
    # The same in a cluster (two replicas sharing PostgreSQL and NATS; the limit's counter in NATS).
    "invoke_rate_limited_cluster_c32_ratio": 0.9,
    # A tool call checked centrally (on_tool_call and on_tool_result), added p50 latency, at most (issue 15).
    "tool_check_added_p50_ms": 1.0,
    # Issue 18: durable runs against the ephemeral path of the same run, the fronts against the floor.
    "durable_sqlite_c32_x_ephemeral": 0.6,  # at least
    "durable_sqlite_c1_p50_x_ephemeral": 1.5,  # at most
    "durable_postgresql_c32_x_ephemeral": 0.4,
    "cluster_c32_x_durable_postgresql": 0.25,
    "mcp_2026_call_c32_ratio": 0.3,
    "mcp_2025_call_c32_ratio": 0.2,
    "a2a_send_c32_ratio": 0.25,
}
#: Verdicts that are a ceiling (the value must stay at or below the target); every other one is a floor.
AT_MOST = {"invoke_c32_p99_ms", "invoke_c1_added_ms", "stream_kb", "tool_check_added_p50_ms"}
AT_MOST.add("durable_sqlite_c1_p50_x_ephemeral")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not come up")


class Servers:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"proc{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


#: Seconds of load, discarded, before a group's first measured step on a target (``warm``).
WARMUP_SECONDS = 1.0


def warm(url: str, body: str, seconds: float, headers: dict[str, str] | None = None) -> None:
    """Load ``url`` for ``WARMUP_SECONDS`` and discard the figures. A process idle for a minute or more
    (while other groups ran) serves its first seconds of load measurably slower here (a quarter, seen on
    MCP tools/call: 1,660 req/s after 90 s idle, 2,400 from the next step on); a group's rows measure the
    path, not its wake-up."""
    load(url, body, 32, min(WARMUP_SECONDS, seconds), [], headers)


def load(
    url: str,
    body: str,
    concurrency: int,
    seconds: float,
    server_pids: list[int],
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One closed-loop load step from a separate process; adds server CPU per request."""
    before = [cpu_seconds(pid) for pid in server_pids]
    header_args = [arg for name, value in (headers or {}).items() for arg in ("--header", f"{name}: {value}")]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.load",
            url,
            "--body",
            body,
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
            *header_args,
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=seconds + 60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    after = [cpu_seconds(pid) for pid in server_pids]
    # Includes the warm-up requests, so it slightly overstates CPU per request: the same for every server.
    server_cpu = sum(a - b for a, b in zip(after, before, strict=True))
    result["server_cpu_us_per_req"] = server_cpu / max(result["requests"], 1) * 1e6
    result["generator_cpu_share"] = result["generator_cpu_s"] / result["seconds"]
    return result


async def _sse_first_and_count(url: str, body: bytes | None, kind: bytes) -> tuple[float, float, int]:
    """(seconds to first frame, seconds to the end, frames of ``kind``) for one SSE response."""
    parts = httpx.URL(url)
    reader, writer = await asyncio.open_connection(parts.host, parts.port)
    method = "POST" if body is not None else "GET"
    payload = body or b""
    writer.write(
        f"{method} {parts.raw_path.decode()} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + payload
    )
    started = time.perf_counter()
    first = 0.0
    count = 0
    tail = b""
    while chunk := await reader.read(1 << 16):
        if not first and b"\n\n" in tail + chunk:
            first = time.perf_counter() - started
        data = tail + chunk
        count += data.count(b"event: " + kind + b"\n")
        tail = data[-32:]
        count -= tail.count(b"event: " + kind + b"\n")
    count += tail.count(b"event: " + kind + b"\n")
    writer.close()
    return first, time.perf_counter() - started, count


async def _hold_streams(url: str, count: int, settle: float) -> int:
    """Open ``count`` SSE streams on ``url``, wait until each got its first frame, hold them ``settle`` s."""
    parts = httpx.URL(url)
    writers = []
    opened = 0
    for _ in range(count):
        reader, writer = await asyncio.open_connection(parts.host, parts.port)
        writer.write(f"GET {parts.raw_path.decode()} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        writers.append((reader, writer))
    for reader, _ in writers:
        data = b""
        while b"\n\n" not in data.split(b"\r\n\r\n", 1)[-1]:
            data += await reader.read(4096)
        opened += 1
    await asyncio.sleep(settle)
    return opened


def start_gateway(
    servers: Servers, data_dir: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], str]:
    """A gateway and the bench worker (64 slots), ready; returns both processes and the base URL."""
    gateway, base, grpc_port, env = spawn_gateway(servers, data_dir, **settings)
    worker_args = ["run", "tests.bench.worker:app", "--gateway", f"127.0.0.1:{grpc_port}", "--slots", "64"]
    worker = servers.spawn([sys.executable, "-m", "fastagentic", "--log-level", "warning", *worker_args], env)
    wait_http(f"{base}/readyz")
    return gateway, worker, base


def spawn_gateway(
    servers: Servers, data_dir: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], str, int, dict[str, str]]:
    """A gateway alone, up (not necessarily ready): its process, base URL, gRPC port and environment."""
    http_port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGENTIC_")}
    env.update(
        {
            "FASTAGENTIC_HTTP_PORT": str(http_port),
            "FASTAGENTIC_GRPC_PORT": str(grpc_port),
            "FASTAGENTIC_DATA_DIR": str(data_dir),
            "FASTAGENTIC_LOG_LEVEL": "warning",
            "FASTAGENTIC_AUTH": "none",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({f"FASTAGENTIC_{name.upper()}": value for name, value in settings.items()})
    gateway = servers.spawn([sys.executable, "-m", "fastagentic_gateway", "serve"], env)
    base = f"http://127.0.0.1:{http_port}"
    wait_http(f"{base}/healthz")
    return gateway, base, grpc_port, env


#: Rounds of a paired comparison (see ``paired``), and the share of the step's time each round gets.
PAIRED_ROUNDS = 7


def paired(
    baseline: tuple[str, list[int], dict[str, str] | None],
    variants: dict[str, tuple[str, list[int], dict[str, str] | None]],
    body: str,
    seconds: float,
    rounds: int = PAIRED_ROUNDS,
) -> dict[str, Any]:
    """Each variant against the baseline, interleaved: ``rounds`` short rounds (at c=32) each load the
    baseline and every variant, in an order that rotates from round to round, each target ``2 * seconds``
    in all. A variant's ratio is the median of its per-round ratios to the baseline of the same round: the
    drift of a shared machine (seconds apart) does not count as its cost, and neither does the position in
    a round. Its row merges its steps. Each target is (url, server pids, headers)."""
    names = ["", *variants]
    targets = {"": baseline, **variants}
    for url, _, headers in targets.values():
        warm(url, body, seconds, headers)
    step = max(2 * seconds / rounds, 0.2)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            url, pids, headers = targets[name]
            rows[name].append(load(url, body, 32, step, pids, headers))
    out: dict[str, Any] = {}
    for name in variants:
        ratios = [
            row["rps"] / base["rps"] if base["rps"] else 0.0
            for row, base in zip(rows[name], rows[""], strict=True)
        ]
        out[name] = _merged(rows[name]) | {
            "paired_ratio": sorted(ratios)[len(ratios) // 2],
            "paired_rounds": [round(r, 3) for r in ratios],
        }
    out["paired_baseline"] = _merged(rows[""])
    return out


def _merged(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Load steps as one: totals summed, rates over the total time, percentiles the steps' medians."""
    requests = sum(s["requests"] for s in steps)
    seconds = sum(s["seconds"] for s in steps)
    cpu = sum(s["server_cpu_us_per_req"] * s["requests"] for s in steps)
    generator = sum(s["generator_cpu_s"] for s in steps)
    return {
        "requests": requests,
        "errors": sum(s["errors"] for s in steps),
        "seconds": seconds,
        "rps": requests / seconds if seconds else 0.0,
        "p50_ms": sorted(s["p50_ms"] for s in steps)[len(steps) // 2],
        "p99_ms": sorted(s["p99_ms"] for s in steps)[len(steps) // 2],
        "generator_cpu_s": generator,
        "server_cpu_us_per_req": cpu / requests if requests else 0.0,
        "generator_cpu_share": generator / seconds if seconds else 0.0,
    }


def bench_auth(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """REST invoke with authentication on: with an RS256 JWT from a local IdP (its key cached; the token's
    signature verified once and remembered, the default, and verified on every request, with
    ``jwt_cache_size = 0``), and with an API key; each paired with the same run without authentication
    (``paired``): three gateways, each with its worker, up at once, loaded in turn."""
    from tests.idp import LocalIdP

    data = workdir / "auth-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGENTIC_")}
    env.update({"FASTAGENTIC_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)})
    key = subprocess.run(
        [sys.executable, "-m", "fastagentic_gateway", "keys", "create", "--name", "bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    with LocalIdP(algorithms=("RS256",)) as idp:
        issuers = json.dumps([{"issuer": idp.issuer, "audiences": [idp.audience], "tenant": "bench"}])
        bearer = {"Authorization": f"Bearer {idp.token(sub='bench', exp_in=3600)}"}
        started = []
        none = start_gateway(servers, workdir / "auth-none")
        started.append(none)
        # The same without authentication, with one rate limit that every call passes through (and that
        # admits them all): what the limit stage costs.
        limit = json.dumps([{"name": "bench", "rate": "100000000/minute"}])
        limited = start_gateway(servers, workdir / "limited", limits=limit)
        started.append(limited)
        targets = {
            "invoke_rate_limited_c32": (
                f"{limited[2]}/v1/agents/echo/invoke",
                [limited[0].pid, limited[1].pid],
                None,
            )
        }
        for cache in ("10000", "0"):
            gateway, worker, base = start_gateway(
                servers,
                data,
                auth="required",
                oidc_issuers=issuers,
                jwt_cache_size=cache,
                worker_token="bench-worker-secret-0123456789",
            )
            started.append((gateway, worker, base))
            url, pids = f"{base}/v1/agents/echo/invoke", [gateway.pid, worker.pid]
            if cache == "0":
                targets["invoke_jwt_uncached_c32"] = (url, pids, bearer)
            else:
                targets["invoke_jwt_c32"] = (url, pids, bearer)
                targets["invoke_api_key_c32"] = (url, pids, {"X-API-Key": key})
        gateway, worker, base = none
        out = paired(
            (f"{base}/v1/agents/echo/invoke", [gateway.pid, worker.pid], None), targets, body, seconds
        )
        for gateway, worker, _ in started:
            for proc in (worker, gateway):
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
    return out


def bench_hooks(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """The hook stage (issue 15). REST invoke with one no-op gateway hook (``on_request``) and with the
    built-in PII masker at ``on_request`` and ``on_response``, each paired with the same run without hooks
    (``paired``). Then a tool call checked centrally: tests/workers/guarded_worker.py ``timed`` times
    ``ctx.tool`` on a no-op tool in the worker, against a gateway without hooks and one with a no-op hook
    at ``on_tool_call`` and ``on_tool_result`` (two round trips a call), rounds interleaved; the row is the
    p50 per call of each, and their difference (what the central check adds)."""
    noop = {"module": "tests.hook_policies:proceed", "fail": "closed"}
    one_hook = json.dumps([{"name": "noop", "points": ["on_request"], **noop}])
    pii = json.dumps([{"name": "pii", "points": ["on_request", "on_response"], "type": "pii"}])
    tool_hooks = json.dumps([{"name": "noop", "points": ["on_tool_call", "on_tool_result"], **noop}])
    started: list[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], str]] = []

    def up(name: str, **settings: str) -> tuple[str, list[int]]:
        gateway, worker, base = start_gateway(servers, workdir / f"hooks-{name}", **settings)
        started.append((gateway, worker, base))
        return f"{base}/v1/agents/echo/invoke", [gateway.pid, worker.pid]

    def guarded(name: str, **settings: str) -> str:
        gateway, base, grpc_port, env = spawn_gateway(servers, workdir / f"hooks-{name}", **settings)
        worker_args = ["run", "tests.workers.guarded_worker:app", "--gateway", f"127.0.0.1:{grpc_port}"]
        worker = servers.spawn(
            [sys.executable, "-m", "fastagentic", "--log-level", "warning", *worker_args], env
        )
        wait_http(f"{base}/readyz")
        started.append((gateway, worker, base))
        return f"{base}/v1/agents/timed/invoke"

    try:
        url, pids = up("none")
        targets = {
            "invoke_noop_hook_c32": (*up("noop", hooks=one_hook), None),
            "invoke_pii_c32": (*up("pii", hooks=pii), None),
        }
        out = paired((url, pids, None), targets, body, seconds)
        out["hooks_paired_baseline"] = out.pop("paired_baseline")
        plain, checked = guarded("tools-none"), guarded("tools-noop", hooks=tool_hooks)
        calls = 500
        runs: dict[str, list[float]] = {"plain": [], "checked": []}
        with httpx.Client(timeout=120) as http:
            for round_ in range(6):
                order = [("plain", plain), ("checked", checked)]
                for name, target in order if round_ % 2 == 0 else order[::-1]:
                    answer = http.post(target, json={"calls": calls}).json()
                    if answer.get("status") != "succeeded":
                        raise RuntimeError(f"the timed tool run failed: {answer}")
                    runs[name].append(answer["output"]["p50_us"])
        median = {name: sorted(values)[len(values) // 2] for name, values in runs.items()}
        out["tool_check"] = {
            "calls_per_run": calls,
            "plain_p50_ms": round(median["plain"] / 1000, 3),
            "checked_p50_ms": round(median["checked"] / 1000, 3),
            "added_p50_ms": round((median["checked"] - median["plain"]) / 1000, 3),
            "rounds_p50_us": {name: [round(v, 1) for v in values] for name, values in runs.items()},
        }
        return out
    finally:
        for gateway, worker, _ in started:
            for proc in (worker, gateway):
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)


def bench_telemetry(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """REST invoke with tracing on (every request, run, attempt and worker span exported over OTLP/gRPC to
    a receiver in this process, tests/e2e/otlp_receiver.py) and with metrics on (``metrics_port``), each
    paired with the same run with both off (``paired``): three gateways, each with its worker. The receiver
    runs in a process of its own, so decoding spans takes no CPU from the load generator."""
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.otlp_receiver", str(port)], cwd=ROOT, stdout=subprocess.PIPE
    )
    started: list[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], str]] = []
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
    }

    def up(name: str, environ: dict[str, str] | None = None, **settings: str) -> tuple[str, list[int], None]:
        saved = {key: os.environ.get(key) for key in environ or {}}
        os.environ.update(environ or {})  # the gateway and its worker inherit it
        try:
            gateway, worker, base = start_gateway(servers, workdir / f"telemetry-{name}", **settings)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        started.append((gateway, worker, base))
        return f"{base}/v1/agents/echo/invoke", [gateway.pid, worker.pid], None

    try:
        baseline = up("off")
        targets = {
            "invoke_tracing_c32": up("tracing", otel, tracing="true"),
            "invoke_metrics_c32": up("metrics", metrics_port=str(free_port())),
            # the baseline's twin (both off): its ratio is the noise of this comparison, against which
            # the cost of the off path (an ``is None`` check per stage) is judged
            "invoke_telemetry_off_twin_c32": up("off-twin"),
        }
        out = paired(baseline, targets, body, seconds)
        out["telemetry_paired_baseline"] = out.pop("paired_baseline")
    finally:
        for gateway, worker, _ in started:
            for proc in (worker, gateway):
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
        receiver.send_signal(signal.SIGTERM)
        received, _ = receiver.communicate(timeout=30)
    out["invoke_tracing_c32"]["spans_received"] = int(received.strip() or 0)
    return out


class NoDatabase(Exception):
    """PostgreSQL cannot be reached: the rows that need it are "not measured"."""


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """The URL of a PostgreSQL database made for one group of rows and dropped after it (on the server
    ``FASTAGENTIC_TEST_POSTGRES`` names, by default the local one); NoDatabase when it cannot be made."""
    admin = os.environ.get("FASTAGENTIC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"fa_bench_{os.urandom(6).hex()}"
    try:
        import psycopg

        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        raise NoDatabase(str(exc)) from exc
    try:
        yield str(httpx.URL(admin).copy_with(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_postgres(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """Durable invoke on the PostgreSQL store, in a database made for this run and dropped after it."""
    try:
        with bench_database() as url:
            return _durable_postgres(servers, workdir, body, seconds, url)
    except NoDatabase as exc:
        return {"durable_postgresql": f"durable PostgreSQL: not measured, PostgreSQL unreachable ({exc})"}


def _durable_postgres(servers: Servers, workdir: Path, body: str, seconds: float, url: str) -> dict[str, Any]:
    """Durable invoke on the PostgreSQL store at c=1, and at c=32 paired with the ephemeral invoke of the
    same gateway (``paired``)."""
    gateway, worker, base = start_gateway(servers, workdir / "pg-data", store_url=url)
    pids = [gateway.pid, worker.pid]
    durable = f"{base}/v1/agents/echo_durable/invoke"
    results = paired(
        (f"{base}/v1/agents/echo/invoke", pids, None),
        {"durable_postgresql_c32": (durable, pids, None)},
        body,
        seconds,
    )
    results["durable_postgresql_c1"] = load(durable, body, 1, seconds, pids)
    results["durable_postgresql_c1"] |= {"paired_ratio": 0.0, "paired_rounds": []}
    results["durable_postgresql"] = ""
    stopped(worker, gateway)
    return results


def bench_cluster(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """Two replicas sharing a fresh PostgreSQL database and NATS (a bus prefix of their own): durable runs
    accepted by replica A, which has no worker, and run by the worker of replica B."""
    admin = os.environ.get("FASTAGENTIC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    nats_address = os.environ.get("FASTAGENTIC_TEST_NATS", "127.0.0.1:4222")
    host, _, port = nats_address.rpartition(":")
    try:
        import psycopg

        with socket.create_connection((host, int(port)), timeout=3):
            pass
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            name = f"fa_bench_{os.urandom(6).hex()}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        return {"cluster": f"two replicas: not measured, PostgreSQL or NATS unreachable ({exc})"}
    prefix = f"fabench_{os.urandom(4).hex()}"
    shared = {
        "store_url": str(httpx.URL(admin).copy_with(path=f"/{name}")),
        "bus_url": f"nats://{nats_address}",
        "bus_prefix": prefix,
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        gateway_b, worker_b, _ = start_gateway(servers, workdir / "b-data", replica_id="bench-b", **shared)
        gateway_a, base_a, _, _ = spawn_gateway(servers, workdir / "a-data", replica_id="bench-a", **shared)
        procs = [worker_b, gateway_a, gateway_b]
        wait_http(f"{base_a}/readyz")  # ready once it learnt B's endpoints
        pids = [gateway_a.pid, gateway_b.pid, worker_b.pid]
        url = f"{base_a}/v1/agents/echo_durable/invoke"
        return {
            "cluster_c1": load(url, body, 1, seconds, pids),
            "cluster_c32": load(url, body, 32, seconds, pids),
            "cluster": "",
        }
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                print(f"bench: {proc.args} did not stop within 20 s; killed", file=sys.stderr)
                proc.kill()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        asyncio.run(_delete_stream(f"nats://{nats_address}", f"{prefix}_dispatch"))


def bench_cluster_limits(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """REST invoke on a cluster of two replicas (PostgreSQL + NATS) with one rate limit that admits every
    call (its counter shared through NATS key-value), paired with the same cluster without it: two
    clusters up at once, each replica A with a worker (the run stays on A) and a replica B sharing the
    store, the bus and the counters."""
    admin = os.environ.get("FASTAGENTIC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    nats_address = os.environ.get("FASTAGENTIC_TEST_NATS", "127.0.0.1:4222")
    host, _, port = nats_address.rpartition(":")
    names = [f"fa_bench_{os.urandom(6).hex()}" for _ in range(2)]
    prefixes = [f"fabench_{os.urandom(4).hex()}" for _ in range(2)]
    try:
        import psycopg

        with socket.create_connection((host, int(port)), timeout=3):
            pass
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            for name in names:
                conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        return {
            "cluster_limits": f"rate limit on two replicas: not measured, PostgreSQL or NATS unreachable ({exc})"
        }
    limit = json.dumps([{"name": "bench", "rate": "100000000/minute"}])
    procs: list[subprocess.Popen[bytes]] = []
    try:
        targets = []
        for index, (name, prefix) in enumerate(zip(names, prefixes, strict=True)):
            shared = {
                "store_url": str(httpx.URL(admin).copy_with(path=f"/{name}")),
                "bus_url": f"nats://{nats_address}",
                "bus_prefix": prefix,
            }
            if index:
                shared["limits"] = limit
            gateway_a, worker_a, base_a = start_gateway(
                servers, workdir / f"limits-{index}-a", replica_id=f"bench-{index}-a", **shared
            )
            gateway_b, _, _, _ = spawn_gateway(
                servers, workdir / f"limits-{index}-b", replica_id=f"bench-{index}-b", **shared
            )
            procs += [worker_a, gateway_a, gateway_b]
            targets.append(
                (f"{base_a}/v1/agents/echo/invoke", [gateway_a.pid, worker_a.pid, gateway_b.pid], None)
            )
        out = paired(targets[0], {"invoke_rate_limited_cluster_c32": targets[1]}, body, seconds)
        out["cluster_baseline_c32"] = out.pop("paired_baseline")
        out["cluster_limits"] = ""
        return out
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for prefix in prefixes:
            asyncio.run(_delete_stream(f"nats://{nats_address}", f"{prefix}_dispatch"))
            asyncio.run(_delete_bucket(f"nats://{nats_address}", f"{prefix}_limits"))


async def _delete_bucket(url: str, bucket: str) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=3)
    try:
        await nc.jetstream().delete_key_value(bucket)
    except Exception as exc:  # never created (no limit in that cluster): nothing to clean
        print(f"bench: bucket {bucket} not deleted: {exc}", file=sys.stderr)
    finally:
        await nc.close()


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=3)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception as exc:  # already gone, or never created: nothing to clean
        print(f"bench: stream {stream} not deleted: {exc}", file=sys.stderr)
    finally:
        await nc.close()


def ratio(value: float, floor: float) -> float:
    return round(value / floor, 3) if floor else float("nan")


def against_floor(
    servers: Servers, body: str, seconds: float, rows: Callable[[], dict[str, Any]], key: str = "floor"
) -> dict[str, Any]:
    """The rows ``rows()`` measures, against the floor measured just before and just after them (``key``_c1
    and ``key``_c32): each row's ``paired_ratio`` is its rate over that floor's at the same concurrency
    (``_c1`` or ``_c32``), ``floor_rps`` the floor's rate. A floor measured minutes earlier would count the
    drift of a shared machine (a third within minutes) as the front's cost."""
    floor_port = free_port()
    floor = servers.spawn([sys.executable, "-m", "tests.bench.floor", str(floor_port)])
    wait_http(f"http://127.0.0.1:{floor_port}/tokens/1")
    floor_url = f"http://127.0.0.1:{floor_port}/echo"
    warm(floor_url, body, seconds)
    floors = [load(floor_url, body, c, seconds, [floor.pid]) for c in (1, 32)]
    out = rows()
    floors += [load(floor_url, body, c, seconds, [floor.pid]) for c in (1, 32)]
    stopped(floor)
    for name, row in out.items():
        if isinstance(row, dict) and "rps" in row:
            floor_rps = _merged(floors[0::2] if "_c1" in name else floors[1::2])["rps"]
            row["paired_ratio"] = row["rps"] / floor_rps if floor_rps else 0.0
            row["paired_rounds"] = []
            row["floor_rps"] = floor_rps
    out[f"{key}_c1"], out[f"{key}_c32"] = _merged(floors[0::2]), _merged(floors[1::2])
    return out


def stopped(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def bench_mcp_only(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """``--only mcp``: the MCP rows against the floor, with the MCP fast path on (the rows) and off (the
    same rows suffixed ``_sdk``: every request through the ``mcp`` package)."""

    def rows() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for suffix, fast in (("", "true"), ("_sdk", "false")):
            gateway, worker, base = start_gateway(servers, workdir / f"mcp{suffix}", mcp_fast_path=fast)
            measured = bench_mcp(f"{base}/mcp", seconds, [gateway.pid, worker.pid])
            out.update({f"{name}{suffix}": row for name, row in measured.items()})
            stopped(worker, gateway)
        return out

    return against_floor(servers, body, seconds, rows)


def bench_a2a_only(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """``--only a2a``: the A2A rows (``bench_a2a``) against the floor."""

    def rows() -> dict[str, Any]:
        gateway, worker, base = start_gateway(servers, workdir / "a2a")
        measured = bench_a2a(f"{base}/a2a/echo", seconds, [gateway.pid, worker.pid])
        stopped(worker, gateway)
        return measured

    return against_floor(servers, body, seconds, rows)


def bench_postgres_only(servers: Servers, workdir: Path, body: str, seconds: float) -> dict[str, Any]:
    """``--only postgres``: durable invoke on the PostgreSQL store (``bench_postgres``'s c=1 and c=32 rows),
    and at c=32 paired against the ephemeral ``echo`` invoke of the same gateway, in a database made for
    this run and dropped after it."""
    with bench_database() as url:
        return _durable_postgres(servers, workdir, body, seconds, url)


MCP_ROWS = ("mcp_2026_call_c1", "mcp_2026_call_c32", "mcp_2025_call_c1", "mcp_2025_call_c32")
MCP_ROWS += ("mcp_2026_list_c32", "mcp_2025_list_c32")

#: ``--only NAME``: one group of rows, its function and the rows it prints (each paired against a baseline).
ONLY: dict[str, tuple[Callable[[Servers, Path, str, float], dict[str, Any]], tuple[str, ...]]] = {
    "auth": (
        bench_auth,
        ("invoke_jwt_c32", "invoke_jwt_uncached_c32", "invoke_api_key_c32", "invoke_rate_limited_c32"),
    ),
    "hooks": (bench_hooks, ("invoke_noop_hook_c32", "invoke_pii_c32")),
    "telemetry": (
        bench_telemetry,
        ("invoke_tracing_c32", "invoke_metrics_c32", "invoke_telemetry_off_twin_c32"),
    ),
    # against the floor, fast path on and off (``_sdk``)
    "mcp": (bench_mcp_only, MCP_ROWS + tuple(f"{row}_sdk" for row in MCP_ROWS)),
    # against the floor
    "a2a": (bench_a2a_only, ("a2a_send_c1", "a2a_send_c32", "a2a_stream_c1", "a2a_stream_c32")),
    # c=32 paired against the ephemeral invoke of the same gateway (c=1 not paired)
    "postgres": (bench_postgres_only, ("durable_postgresql_c32", "durable_postgresql_c1")),
    # not paired: a backlog drained, and many concurrent streams (tests/bench/scale.py)
    "scale": (bench_scale, tuple(SCALE_ROWS)),
}


def only(name: str, args: argparse.Namespace) -> int:
    """``--only NAME``: just that group, written to <out>/NAME.json (the docs table is not touched)."""
    bench, rows = ONLY[name]
    workdir = Path(tempfile.mkdtemp(prefix="fastagentic-bench-"))
    servers = Servers(workdir)
    try:
        results = bench(servers, workdir, json.dumps({"text": "hello bench", "n": 42}), args.seconds)
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    for row_name in rows:
        row = results[row_name]
        if row_name in SCALE_ROWS:
            print(scale_line(row_name, row))
            continue
        print(
            f"{row_name}: {row['rps']:.0f} req/s, x baseline {row['paired_ratio']:.3f} {row['paired_rounds']}"
        )
    extras = {key: value for key, value in results.items() if key in ("tool_check",)}
    if "invoke_tracing_c32" in results:
        extras["spans_received"] = results["invoke_tracing_c32"].get("spans_received")
    if extras:
        print(json.dumps(extras))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load step")
    parser.add_argument(
        "--streams", type=int, default=1000, help="idle SSE streams held open (10000 for the big run)"
    )
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument("--update-docs", action="store_true", help="rewrite the table in docs/benchmarks.md")
    parser.add_argument(
        "--only",
        choices=sorted(ONLY),
        help="run only one group of rows (auth: bench_auth; hooks: bench_hooks; telemetry: bench_telemetry)",
    )
    parser.add_argument(
        "--scale-runs",
        type=int,
        default=SCALE_SETTINGS["runs"],
        help="durable runs queued, then drained (scale)",
    )
    parser.add_argument(
        "--scale-seconds",
        type=float,
        default=SCALE_SETTINGS["seconds"],
        help="length of the concurrent streaming row (scale)",
    )
    args = parser.parse_args()
    SCALE_SETTINGS.update(runs=args.scale_runs, seconds=args.scale_seconds)
    if args.only is not None:
        return only(args.only, args)

    workdir = Path(tempfile.mkdtemp(prefix="fastagentic-bench-"))
    servers = Servers(workdir)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "generator": "tests/bench/load.py (asyncio + uvloop, keep-alive, separate process)",
        },
        "settings": {"seconds": args.seconds, "streams": args.streams, "tokens": args.tokens},
        "targets": TARGETS,
    }
    body = json.dumps({"text": "hello bench", "n": 42})
    try:
        # ---------------------------------------------------------------- floor
        floor_port = free_port()
        floor = servers.spawn([sys.executable, "-m", "tests.bench.floor", str(floor_port)])
        wait_http(f"http://127.0.0.1:{floor_port}/tokens/1")
        floor_url = f"http://127.0.0.1:{floor_port}/echo"
        results["floor_c1"] = load(floor_url, body, 1, args.seconds, [floor.pid])
        results["floor_c32"] = load(floor_url, body, 32, args.seconds, [floor.pid])
        first, total, count = asyncio.run(
            _sse_first_and_count(f"http://127.0.0.1:{floor_port}/tokens/{args.tokens}", None, b"token")
        )
        results["floor_stream"] = {"ttfe_ms": first * 1000, "tokens": count, "tokens_per_s": count / total}
        floor.send_signal(signal.SIGTERM)
        floor.wait(15)

        # ---------------------------------------------------------------- gateway + worker
        gateway, worker, base = start_gateway(servers, workdir / "data")
        pids = [gateway.pid, worker.pid]
        results["invoke_c1"] = load(f"{base}/v1/agents/echo/invoke", body, 1, args.seconds, pids)
        results["invoke_c32"] = load(f"{base}/v1/agents/echo/invoke", body, 32, args.seconds, pids)
        results["durable_sqlite_c1"] = load(
            f"{base}/v1/agents/echo_durable/invoke", body, 1, args.seconds, pids
        )
        # c=32 paired with the ephemeral invoke of the same gateway (``paired``): the ratio is the target.
        durable = paired(
            (f"{base}/v1/agents/echo/invoke", pids, None),
            {"durable_sqlite_c32": (f"{base}/v1/agents/echo_durable/invoke", pids, None)},
            body,
            args.seconds,
        )
        results["durable_sqlite_c32"] = durable["durable_sqlite_c32"]
        results.update(bench_auth(servers, workdir, body, args.seconds))
        results.update(bench_postgres(servers, workdir, body, args.seconds))
        results.update(bench_cluster(servers, workdir, body, args.seconds))
        results.update(bench_cluster_limits(servers, workdir, body, args.seconds))
        results.update(bench_hooks(servers, workdir, body, args.seconds))
        results.update(bench_telemetry(servers, workdir, body, args.seconds))

        body_tokens = json.dumps({"count": args.tokens}).encode()
        streams = [
            asyncio.run(_sse_first_and_count(f"{base}/v1/agents/tokens/stream", body_tokens, b"token"))
            for _ in range(3)
        ]
        first, total, count = sorted(streams, key=lambda s: s[1])[1]  # the median run
        results["stream"] = {"ttfe_ms": first * 1000, "tokens": count, "tokens_per_s": count / total}

        idle = httpx.post(f"{base}/v1/agents/idle/runs", json={"seconds": 600}, timeout=10).json()["run_id"]
        time.sleep(0.5)
        rss_before = rss_bytes(gateway.pid)
        opened = asyncio.run(_hold_streams(f"{base}/v1/runs/{idle}/events", args.streams, settle=1.0))
        rss_after = rss_bytes(gateway.pid)
        httpx.post(f"{base}/v1/runs/{idle}/cancel", timeout=10)
        results["idle_streams"] = {
            "streams": opened,
            "rss_before_mb": rss_before / 2**20,
            "rss_after_mb": rss_after / 2**20,
            "kb_per_stream": (rss_after - rss_before) / max(opened, 1) / 1024,
        }
        # The fronts, against a floor measured just before and after them (``against_floor``).
        results.update(
            against_floor(
                servers,
                body,
                args.seconds,
                lambda: (
                    bench_mcp(f"{base}/mcp", args.seconds, pids)
                    | bench_a2a(f"{base}/a2a/echo", args.seconds, pids)
                ),
                key="fronts_floor",
            )
        )
        gateway.send_signal(signal.SIGTERM)  # the scale rows start gateways of their own
        worker.send_signal(signal.SIGTERM)
        results.update(bench_scale(servers, workdir, body, args.seconds))
        results["a2a_send_message"] = ""
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    summarize(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results, previous_figures())
    (out / "latest.md").write_text(table)
    print(table)
    if args.update_docs:
        update_docs(table)
    return 0


MCP_ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}


def _mcp_call(request_id: str, method: str, params: dict[str, Any]) -> str:
    # request_id is spliced in raw so the load generator's __ID__ placeholder can stand for a number.
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
    return body.replace('"id": 0', f'"id": {request_id}', 1)


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON-RPC answer of a response (JSON, or the last message of an SSE stream); exits on an error."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        answer: dict[str, Any] = json.loads([d for d in data if d][-1])
    else:
        answer = response.json()
    if "result" not in answer or answer["result"].get("isError"):
        raise SystemExit(f"bench: {what} failed: {response.status_code} {response.text[:300]}")
    return answer


def bench_mcp(url: str, seconds: float, pids: list[int]) -> dict[str, Any]:
    """tools/call (the ephemeral echo agent as a tool) and tools/list, in each revision: 2026-07-28 as
    stateless POSTs, 2025-11-25 inside one session (initialized first, then every request names it)."""
    arguments = {"text": "hello bench", "n": 42}
    modern = {**MCP_ACCEPT, "MCP-Protocol-Version": "2026-07-28"}
    call_2026 = _mcp_call("1", "tools/call", {"name": "echo", "arguments": arguments, "_meta": MCP_ENVELOPE})
    list_2026 = _mcp_call("1", "tools/list", {"_meta": MCP_ENVELOPE})
    call_headers = {**modern, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    list_headers = {**modern, "Mcp-Method": "tools/list"}
    json_headers = {"Content-Type": "application/json"}
    _checked(
        httpx.post(url, content=call_2026, headers={**call_headers, **json_headers}, timeout=10), "tools/call"
    )
    init = _mcp_call(
        "0",
        "initialize",
        {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    )
    opened = httpx.post(url, content=init, headers={**MCP_ACCEPT, **json_headers}, timeout=10)
    _checked(opened, "initialize")
    session = {
        **MCP_ACCEPT,
        "Mcp-Session-Id": opened.headers["mcp-session-id"],
        "MCP-Protocol-Version": "2025-11-25",
    }
    initialized = '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    httpx.post(url, content=initialized, headers={**session, **json_headers}, timeout=10)
    call_2025 = _mcp_call("__ID__", "tools/call", {"name": "echo", "arguments": arguments})
    list_2025 = _mcp_call("__ID__", "tools/list", {})
    _checked(
        httpx.post(url, content=call_2025.replace("__ID__", "1"), headers={**session, **json_headers}), "call"
    )
    for warm_body, warm_headers in ((call_2026, call_headers), (call_2025, session)):
        warm(url, warm_body, seconds, warm_headers)
    return {
        "mcp_2026_call_c1": load(url, call_2026, 1, seconds, pids, call_headers),
        "mcp_2026_call_c32": load(url, call_2026, 32, seconds, pids, call_headers),
        "mcp_2025_call_c1": load(url, call_2025, 1, seconds, pids, session),
        "mcp_2025_call_c32": load(url, call_2025, 32, seconds, pids, session),
        "mcp_2026_list_c32": load(url, list_2026, 32, seconds, pids, list_headers),
        "mcp_2025_list_c32": load(url, list_2025, 32, seconds, pids, session),
    }


A2A_HEADERS = {"A2A-Version": "1.0"}


def _a2a_send(method: str) -> str:
    message = {
        "messageId": "bench",
        "role": "ROLE_USER",
        "parts": [{"data": {"text": "hello bench", "n": 42}, "mediaType": "application/json"}],
    }
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}})


def bench_a2a(url: str, seconds: float, pids: list[int]) -> dict[str, Any]:
    """A2A JSON-RPC on the ephemeral echo agent: SendMessage (blocking: the answer is the finished task)
    and SendStreamingMessage (the whole SSE stream, task to completed status, is one request)."""
    send, stream = _a2a_send("SendMessage"), _a2a_send("SendStreamingMessage")
    answer = httpx.post(
        url, content=send, headers={**A2A_HEADERS, "Content-Type": "application/json"}, timeout=10
    )
    if (
        answer.json().get("result", {}).get("task", {}).get("status", {}).get("state")
        != "TASK_STATE_COMPLETED"
    ):
        raise SystemExit(f"bench: A2A SendMessage failed: {answer.status_code} {answer.text[:300]}")
    streamed = httpx.post(
        url, content=stream, headers={**A2A_HEADERS, "Content-Type": "application/json"}, timeout=10
    )
    if "TASK_STATE_COMPLETED" not in streamed.text:
        raise SystemExit(
            f"bench: A2A SendStreamingMessage failed: {streamed.status_code} {streamed.text[:300]}"
        )
    warm(url, send, seconds, A2A_HEADERS)
    return {
        "a2a_send_c1": load(url, send, 1, seconds, pids, A2A_HEADERS),
        "a2a_send_c32": load(url, send, 32, seconds, pids, A2A_HEADERS),
        "a2a_stream_c1": load(url, stream, 1, seconds, pids, A2A_HEADERS),
        "a2a_stream_c32": load(url, stream, 32, seconds, pids, A2A_HEADERS),
    }


def summarize(results: dict[str, Any]) -> None:
    floor1, floor32 = results["floor_c1"], results["floor_c32"]
    inv1, inv32 = results["invoke_c1"], results["invoke_c32"]
    verdicts = {
        "invoke_c32_ratio": ratio(inv32["rps"], floor32["rps"]),
        "invoke_c32_p99_ms": round(inv32["p99_ms"], 2),
        "invoke_c1_added_ms": round(inv1["p50_ms"] - floor1["p50_ms"], 3),
        "tokens_per_s": round(results["stream"]["tokens_per_s"]),
        "stream_kb": round(results["idle_streams"]["kb_per_stream"], 1),
        "mcp_2026_tools_list_per_s": round(results["mcp_2026_list_c32"]["rps"]),
        "mcp_2025_tools_list_per_s": round(results["mcp_2025_list_c32"]["rps"]),
        "invoke_jwt_c32_ratio": round(results["invoke_jwt_c32"]["paired_ratio"], 3),
        "invoke_jwt_uncached_c32_ratio": round(results["invoke_jwt_uncached_c32"]["paired_ratio"], 3),
        "invoke_api_key_c32_ratio": round(results["invoke_api_key_c32"]["paired_ratio"], 3),
        "invoke_rate_limited_c32_ratio": round(results["invoke_rate_limited_c32"]["paired_ratio"], 3),
    }
    if "invoke_rate_limited_cluster_c32" in results:
        verdicts["invoke_rate_limited_cluster_c32_ratio"] = round(
            results["invoke_rate_limited_cluster_c32"]["paired_ratio"], 3
        )
    if "tool_check" in results:
        verdicts["tool_check_added_p50_ms"] = round(results["tool_check"]["added_p50_ms"], 3)
    rows = {name: row for name, row in results.items() if isinstance(row, dict) and "rps" in row}
    for name, (row, over) in {
        "durable_sqlite_c32_x_ephemeral": ("durable_sqlite_c32", "invoke_c32"),
        "durable_postgresql_c32_x_ephemeral": ("durable_postgresql_c32", "invoke_c32"),
        "cluster_c32_x_durable_postgresql": ("cluster_c32", "durable_postgresql_c32"),
        "mcp_2026_call_c32_ratio": ("mcp_2026_call_c32", "floor_c32"),
        "mcp_2025_call_c32_ratio": ("mcp_2025_call_c32", "floor_c32"),
        "a2a_send_c32_ratio": ("a2a_send_c32", "floor_c32"),
    }.items():
        if row in rows and rows[row].get("paired_ratio"):
            # Paired with its baseline (or against a floor measured beside it): drift does not count.
            verdicts[name] = round(rows[row]["paired_ratio"], 3)
        elif row in rows and over in rows:
            verdicts[name] = ratio(rows[row]["rps"], rows[over]["rps"])
    if "durable_sqlite_c1" in rows:
        verdicts["durable_sqlite_c1_p50_x_ephemeral"] = ratio(
            rows["durable_sqlite_c1"]["p50_ms"], inv1["p50_ms"]
        )
    results["verdicts"] = {
        name: {
            "value": value,
            "target": TARGETS[name],
            "met": value <= TARGETS[name] if name in AT_MOST else value >= TARGETS[name],
            "by": round(value / TARGETS[name], 3),
        }
        for name, value in verdicts.items()
    }


def markdown(results: dict[str, Any], previous: dict[str, str] | None = None) -> str:
    """The docs table; ``previous`` (scenario label -> "req/s, x floor" of the table it replaces, from
    ``previous_figures``) fills the "before" column."""
    machine = results["machine"]
    floor1, floor32 = results["floor_c1"], results["floor_c32"]
    before = previous or {}
    lines = [
        f"Machine: {machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}; "
        f"load from {machine['generator']}; {results['settings']['seconds']:.0f} s per step. "
        "Before: req/s and x floor of the table this one replaced (another run, maybe another machine).",
        "",
        "| scenario | req/s | x floor | before | p50 ms | p99 ms | server CPU µs/req | generator CPU share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label, floor in (
        ("floor_c1", "floor, c=1", floor1),
        ("floor_c32", "floor, c=32", floor32),
        ("invoke_c1", "REST invoke, ephemeral, c=1", floor1),
        ("invoke_c32", "REST invoke, ephemeral, c=32", floor32),
        (
            "invoke_jwt_c32",
            "REST invoke, ephemeral, with a JWT (RS256, signature verified once), c=32",
            floor32,
        ),
        (
            "invoke_jwt_uncached_c32",
            "REST invoke, ephemeral, with a JWT (RS256, verified on every request), c=32",
            floor32,
        ),
        ("invoke_api_key_c32", "REST invoke, ephemeral, with an API key, c=32", floor32),
        ("invoke_rate_limited_c32", "REST invoke, ephemeral, one rate limit (not reached), c=32", floor32),
        (
            "invoke_tracing_c32",
            "REST invoke, ephemeral, tracing on (OTLP/gRPC to a local receiver), c=32",
            floor32,
        ),
        ("invoke_metrics_c32", "REST invoke, ephemeral, metrics on (metrics_port), c=32", floor32),
        (
            "invoke_telemetry_off_twin_c32",
            "REST invoke, ephemeral, tracing and metrics off (the telemetry baseline's twin), c=32",
            floor32,
        ),
        ("durable_sqlite_c1", "REST invoke, durable SQLite, c=1", floor1),
        ("durable_sqlite_c32", "REST invoke, durable SQLite, c=32", floor32),
        ("durable_postgresql_c1", "REST invoke, durable PostgreSQL, c=1", floor1),
        ("durable_postgresql_c32", "REST invoke, durable PostgreSQL, c=32", floor32),
        (
            "cluster_c1",
            "REST invoke, durable, accepted by replica A, run on B (PostgreSQL + NATS), c=1",
            floor1,
        ),
        (
            "cluster_c32",
            "REST invoke, durable, accepted by replica A, run on B (PostgreSQL + NATS), c=32",
            floor32,
        ),
        (
            "cluster_baseline_c32",
            "REST invoke, ephemeral, on replica A of two (PostgreSQL + NATS), c=32",
            floor32,
        ),
        (
            "invoke_rate_limited_cluster_c32",
            "REST invoke, ephemeral, on replica A of two, one shared rate limit (not reached), c=32",
            floor32,
        ),
        ("mcp_2026_call_c1", "MCP tools/call, 2026-07-28 stateless, c=1", floor1),
        ("mcp_2026_call_c32", "MCP tools/call, 2026-07-28 stateless, c=32", floor32),
        ("mcp_2025_call_c1", "MCP tools/call, 2025-11-25 session, c=1", floor1),
        ("mcp_2025_call_c32", "MCP tools/call, 2025-11-25 session, c=32", floor32),
        ("mcp_2026_list_c32", "MCP tools/list, 2026-07-28 stateless, c=32", floor32),
        ("mcp_2025_list_c32", "MCP tools/list, 2025-11-25 session, c=32", floor32),
        ("a2a_send_c1", "A2A SendMessage (blocking), JSON-RPC, c=1", floor1),
        ("a2a_send_c32", "A2A SendMessage (blocking), JSON-RPC, c=32", floor32),
        ("a2a_stream_c1", "A2A SendStreamingMessage, JSON-RPC, whole stream, c=1", floor1),
        ("a2a_stream_c32", "A2A SendStreamingMessage, JSON-RPC, whole stream, c=32", floor32),
    ):
        if key not in results:
            continue
        r = results[key]
        floor_rps = r.get("floor_rps") or floor["rps"]  # the floor measured beside the row, when it was
        lines.append(
            f"| {label} | {r['rps']:.0f} | {ratio(r['rps'], floor_rps)} | {before.get(label, '')} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['server_cpu_us_per_req']:.0f} "
            f"| {r['generator_cpu_share']:.2f} |"
        )
    stream, floor_stream, idle = results["stream"], results["floor_stream"], results["idle_streams"]
    lines += [
        "",
        "| streaming | value | floor | x floor |",
        "|---|---:|---:|---:|",
        f"| tokens/s on one SSE stream ({stream['tokens']} tokens) | {stream['tokens_per_s']:.0f} "
        f"| {floor_stream['tokens_per_s']:.0f} | {ratio(stream['tokens_per_s'], floor_stream['tokens_per_s'])} |",
        f"| time to first event, ms | {stream['ttfe_ms']:.2f} | {floor_stream['ttfe_ms']:.2f} "
        f"| {ratio(stream['ttfe_ms'], floor_stream['ttfe_ms'])} |",
        f"| gateway memory per idle SSE stream ({idle['streams']} streams), KB | {idle['kb_per_stream']:.1f} | | |",
        "",
        "| target | value | target | met |",
        "|---|---:|---:|---|",
    ]
    for name, verdict in results["verdicts"].items():
        lines.append(
            f"| {name} | {verdict['value']} | {verdict['target']} | {'yes' if verdict['met'] else 'no'} |"
        )
    if any(name in results for name in SCALE_ROWS):
        lines += ["", *scale_markdown(results)]
    paired_rows = {
        name: row for name, row in results.items() if isinstance(row, dict) and "paired_ratio" in row
    }
    if paired_rows:
        lines += [
            "",
            "| paired comparison (c=32) | x its baseline (median of rounds) | rounds |",
            "|---|---:|---|",
        ]
        lines += [
            f"| {name} | {row['paired_ratio']:.3f} | {', '.join(f'{r:.2f}' for r in row['paired_rounds'])} |"
            for name, row in paired_rows.items()
        ]
    missing = list(
        filter(
            None,
            [
                results["durable_postgresql"],
                results["cluster"],
                results.get("cluster_limits", ""),
                results["a2a_send_message"],
            ],
        )
    )
    if missing:
        lines += ["", "Not measured — " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_START, DOCS_END = "<!-- bench:start -->", "<!-- bench:end -->"


def previous_figures() -> dict[str, str]:
    """Scenario label -> "req/s, x floor" in the table docs/benchmarks.md holds now (before it is replaced)."""
    _, _, rest = DOCS.read_text().partition(DOCS_START)
    table, _, _ = rest.partition(DOCS_END)
    header = ""
    figures: dict[str, str] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] == "scenario":
            header = line
        elif header and len(cells) >= 3 and cells[0] and not cells[0].startswith("---"):
            figures[cells[0]] = f"{cells[1]}, {cells[2]}"
        elif not line.strip():
            header = "" if figures else header
    return figures


def update_docs(table: str) -> None:
    text = DOCS.read_text()
    head, _, rest = text.partition(DOCS_START)
    _, _, tail = rest.partition(DOCS_END)
    DOCS.write_text(f"{head}{DOCS_START}\n{table}{DOCS_END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
