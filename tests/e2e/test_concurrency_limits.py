"""Concurrency limits on real processes (a gateway and a worker): a per-tenant limit with background runs
queued fairly between two tenants, ``when_full = "refuse"`` on REST, MCP (the official client) and A2A
(a2a-sdk), a reload on SIGHUP that changes the max, and runs queued past the limit that survive a
gateway restart; in a cluster, runs accepted by a replica without workers are pulled by another and
held to its limit, a limit holds for two replicas with workers of their own together, and an outage of
the shared claims fails open or closed as configured, in /readyz and the log."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.errors import A2AClientError
from a2a.utils.errors import A2AError
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ROOT, Cluster, Gateway, Process, Worker, base_env, free_port, wait_until
from tests.e2e.a2a_support import collect, data_message, request
from tests.services import delete_nats_state, postgres_database, require_nats, require_nats_server

WORKER = "tests.workers.concurrency_worker:app"
WORKER_TOKEN = "concurrency-worker-secret-0123"


def _keys(data: Path, **tenants: str) -> dict[str, str]:
    """An API key per name, of the tenant given for it, made with the gateway's CLI in its store."""
    env = base_env() | {"FASTAGENTIC_DATA_DIR": str(data)}
    keys = {}
    for name, tenant in tenants.items():
        args = [
            sys.executable,
            "-m",
            "fastagentic_gateway",
            "keys",
            "create",
            "--name",
            name,
            "--tenant",
            tenant,
        ]
        done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        keys[name] = done.stdout.strip()
    return keys


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _start(cluster: Cluster, gateway: Gateway, slots: int) -> None:
    worker = Worker(
        gateway, WORKER, cluster.logs, f"concurrency{len(cluster.processes)}", "--slots", str(slots)
    )
    worker.env["FASTAGENTIC_WORKER_TOKEN"] = WORKER_TOKEN
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: _ready(gateway), what="the worker to register")


def _ready(gateway: Gateway) -> bool:
    try:
        return httpx.get(f"{gateway.url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _background(gateway: Gateway, key: str | None, pause: float, log: Path) -> str:
    response = httpx.post(
        f"{gateway.url}/v1/agents/slow/runs",
        json={"pause": pause, "log": str(log)},
        headers=_auth(key),
        timeout=30,
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def _invoke(gateway: Gateway, key: str, log: Path) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/agents/slow/invoke",
        json={"pause": 0.01, "log": str(log)},
        headers=_auth(key),
        timeout=30,
    )


def _cancel(gateway: Gateway, key: str, run_id: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/runs/{run_id}/cancel", headers=_auth(key), timeout=10)


def _status(gateway: Gateway, key: str | None, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}", headers=_auth(key), timeout=10)
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


def _finished(gateway: Gateway, runs: dict[str, str | None], timeout: float = 40) -> None:
    """Wait until every run (id -> its tenant's key) succeeded."""
    left = dict(runs)

    def done() -> bool:
        for run_id, key in list(left.items()):
            status = _status(gateway, key, run_id)["status"]
            assert status in {"queued", "running", "succeeded"}, status
            if status == "succeeded":
                del left[run_id]
        return not left

    wait_until(done, timeout=timeout, interval=0.2, what=f"{len(left)} run(s) to succeed")


def _record(log: Path) -> tuple[dict[str, tuple[float, float, str]], dict[str, int]]:
    """The worker's record: run id -> (start, end, tenant), and the most runs of each tenant at once."""
    spans: dict[str, list[Any]] = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        span = spans.setdefault(entry["run"], [0.0, 0.0, entry["tenant"]])
        span[0 if entry["event"] == "start" else 1] = entry["at"]
    moments: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for start, end, tenant in spans.values():
        moments[tenant] += [(start, 1), (end, -1)]
    most = {}
    for tenant, changes in moments.items():
        now = top = 0
        for _, change in sorted(changes):  # an end before a start at the same instant
            now += change
            top = max(top, now)
        most[tenant] = top
    return {run: (s[0], s[1], s[2]) for run, s in spans.items()}, most


def _two_tenants(
    cluster: Cluster, slots: int, a_count: int, pause: float
) -> tuple[list[str], list[str], float]:
    """A gateway with a limit of 2 runs at once per tenant, a worker with ``slots``; tenant a starts
    ``a_count`` background runs, then tenant b starts 2. Waits until all succeeded; their ids and when b
    had submitted."""
    keys = _keys(cluster.tmp_path / "data", alice="tenant-a", bob="tenant-b")
    rules = [{"name": "per-tenant", "max": 2, "per": ["tenant"], "endpoints": ["slow"]}]
    gateway = cluster.start_gateway(auth="required", worker_token=WORKER_TOKEN, concurrency=json.dumps(rules))
    _start(cluster, gateway, slots=slots)
    log = cluster.tmp_path / "runs.log"
    a_runs = [_background(gateway, keys["alice"], pause, log) for _ in range(a_count)]
    b_runs = [_background(gateway, keys["bob"], pause, log) for _ in range(2)]
    b_submitted = time.time()
    _finished(gateway, dict.fromkeys(a_runs, keys["alice"]) | dict.fromkeys(b_runs, keys["bob"]))
    return a_runs, b_runs, b_submitted


def test_a_tenant_limit_queues_background_runs_fairly_between_two_tenants(cluster: Cluster) -> None:
    a_runs, b_runs, _ = _two_tenants(cluster, slots=4, a_count=10, pause=1.0)
    spans, most = _record(cluster.tmp_path / "runs.log")
    assert len(spans) == 12 and all(end >= start > 0 for start, end, _ in spans.values())
    # On the worker's own clock: a never ran more than 2 at once (and did reach 2: its runs queued).
    assert most == {"tenant-a": 2, "tenant-b": 2}, most
    a_starts = sorted(spans[run][0] for run in a_runs)
    # b's runs did not wait for a's backlog: both started before a's third run (a's 8 waiting runs, queued
    # first, wait for a's own runs to end; the free slots went to b).
    assert max(spans[run][0] for run in b_runs) < a_starts[2], (spans, a_starts)


def test_tenants_take_turns_when_the_workers_are_full(cluster: Cluster) -> None:
    """With every worker slot busy, a freed slot goes to the tenants in turn: b's runs, queued after 8 of
    a's, start after at most a couple more of a's (one FIFO would start all 8 first)."""
    a_runs, b_runs, b_submitted = _two_tenants(cluster, slots=2, a_count=10, pause=0.5)
    spans, most = _record(cluster.tmp_path / "runs.log")
    assert len(spans) == 12 and most["tenant-a"] <= 2, most
    b_last = max(spans[run][0] for run in b_runs)
    a_before = [run for run in a_runs if b_submitted < spans[run][0] < b_last]
    assert len(a_before) <= 3, (len(a_before), spans)


# ------------------------------------------------------------------------------ refuse


async def _mcp_call(gateway: Gateway, key: str, log: Path) -> Any:
    """The tool's result with the official MCP client, or the MCPError it raised."""
    http = httpx2.AsyncClient(headers=_auth(key), timeout=60)
    try:
        async with (
            http,
            Client(streamable_http_client(f"{gateway.url}/mcp", http_client=http), mode="2026-07-28") as mcp,
        ):
            result = await mcp.call_tool("slow", {"pause": 0.01, "log": str(log)})
            assert not result.is_error, result
            return result.structured_content
    except (MCPError, ExceptionGroup) as raised:
        error: BaseException = raised  # the client's task groups wrap what it raises
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        assert isinstance(error, MCPError), repr(raised)
        return error


async def _a2a_send(gateway: Gateway, key: str, log: Path) -> Any:
    """The A2A error the a2a-sdk client raised, or the items it received."""
    async with httpx.AsyncClient(headers=_auth(key), timeout=30) as http:
        card = await A2ACardResolver(http, f"{gateway.url}/a2a/slow").get_agent_card()
        client = ClientFactory(
            ClientConfig(httpx_client=http, supported_protocol_bindings=["JSONRPC"], streaming=False)
        ).create(card)
        try:
            return await collect(client.send_message(request(data_message({"pause": 0.01, "log": str(log)}))))
        except (A2AClientError, A2AError) as error:
            return error
        finally:
            await client.close()


async def test_when_full_refuse_answers_429_on_rest_mcp_and_a2a(cluster: Cluster) -> None:
    keys = _keys(cluster.tmp_path / "data", carol="tenant-c", dan="tenant-d")
    rules = [{"name": "one-at-a-time", "max": 1, "when_full": "refuse"}]
    gateway = cluster.start_gateway(auth="required", worker_token=WORKER_TOKEN, concurrency=json.dumps(rules))
    _start(cluster, gateway, slots=4)
    log = cluster.tmp_path / "runs.log"
    busy = _background(gateway, keys["carol"], 30.0, log)
    refused = _invoke(gateway, keys["carol"], log)
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["type"] == "concurrency_limited" and body["rule"] == "one-at-a-time" and body["limit"] == 1
    assert "at most 1 run(s) at once per tenant" in body["message"], body
    assert refused.headers["Retry-After"] == "1" and body["retry_after"] == 1
    assert "RateLimit-Policy" not in refused.headers
    mcp_refused = await _mcp_call(gateway, keys["carol"], log)
    assert isinstance(mcp_refused, MCPError), mcp_refused
    assert mcp_refused.code == -32029 and mcp_refused.data["type"] == "concurrency_limited", mcp_refused
    assert mcp_refused.data["rule"] == "one-at-a-time" and mcp_refused.data["retryAfter"] == 1
    a2a_refused = await _a2a_send(gateway, keys["carol"], log)
    assert isinstance(a2a_refused, A2AError) and "one-at-a-time" in str(a2a_refused), a2a_refused
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": "m1",
                "role": "ROLE_USER",
                "parts": [{"data": {"pause": 0.01, "log": str(log)}, "mediaType": "application/json"}],
            }
        },
    }
    async with httpx.AsyncClient(timeout=30) as http:
        posted = await http.post(
            f"{gateway.url}/a2a/slow", json=body, headers={"A2A-Version": "1.0", **_auth(keys["carol"])}
        )
    (info,) = posted.json()["error"]["data"]
    assert info["metadata"]["type"] == "concurrency_limited", posted.text
    assert info["metadata"]["rule"] == "one-at-a-time" and int(info["metadata"]["retryAfter"]) == 1
    # Another tenant has its own slot, on every front.
    assert await _mcp_call(gateway, keys["dan"], log) == {"tenant": "tenant-d"}
    # Once carol's run ends (cancelled here), she is accepted again.
    cancelled = _cancel(gateway, keys["carol"], busy)
    assert cancelled.status_code == 200, cancelled.text
    assert await _mcp_call(gateway, keys["carol"], log) == {"tenant": "tenant-c"}


# ------------------------------------------------------------------------------ reload and restart


def _statuses(gateway: Gateway, runs: list[str]) -> list[str]:
    return [_status(gateway, None, run_id)["status"] for run_id in runs]


def test_a_reload_on_sighup_changes_the_max(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[[concurrency]]\nname = "tight"\nmax = 1\n')
    gateway = cluster.start_gateway(config=str(config))
    _start(cluster, gateway, slots=4)
    log = cluster.tmp_path / "runs.log"
    runs = [_background(gateway, None, 4.0, log) for _ in range(3)]
    wait_until(lambda: "running" in _statuses(gateway, runs), what="the first run to start")
    time.sleep(0.5)
    assert sorted(_statuses(gateway, runs)) == ["queued", "queued", "running"]
    config.write_text('[[concurrency]]\nname = "tight"\nmax = 3\n')
    gateway.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded: 1 concurrency rule" in gateway.output(), what="the reload")
    # The waiting runs start at once, while the first one still runs.
    wait_until(lambda: _statuses(gateway, runs) == ["running"] * 3, timeout=2.5, what="all three running")
    config.write_text('[[concurrency]]\nname = "tight"\nmax = 0\n')
    gateway.signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in gateway.output(), what="the refused reload")
    _finished(gateway, dict.fromkeys(runs))
    # The rule in force stayed: max 3.
    more = [_background(gateway, None, 1.0, log) for _ in range(4)]
    wait_until(lambda: _statuses(gateway, more).count("running") == 3, what="three of four running")
    assert _statuses(gateway, more).count("queued") == 1
    _finished(gateway, dict.fromkeys(more))
    _, most = _record(log)
    assert most == {"default": 3}, most


def test_runs_queued_past_the_limit_run_after_a_gateway_restart(cluster: Cluster) -> None:
    rules = [{"name": "per-tenant", "max": 1}]
    gateway = cluster.start_gateway(concurrency=json.dumps(rules))
    _start(cluster, gateway, slots=4)
    log = cluster.tmp_path / "runs.log"
    runs = [_background(gateway, None, 2.0, log) for _ in range(4)]
    wait_until(lambda: "running" in _statuses(gateway, runs), what="the first run to start")
    assert _statuses(gateway, runs).count("queued") == 3
    gateway.stop()
    cluster.restart_gateway(gateway)
    _finished(gateway, dict.fromkeys(runs), timeout=45)
    spans, most = _record(log)
    # The worker kept its run across the restart (it counted again), and the queued ones ran one at a time.
    assert set(spans) == set(runs) and most == {"default": 1}, (spans, most)


# ------------------------------------------------------------------------------ cluster


async def _delete_nats_state(url: str, prefix: str) -> None:
    """The dispatch stream and the limits bucket (rate counters, concurrency claims) of ``prefix``."""
    await delete_nats_state(url, streams=(f"{prefix}_dispatch",), buckets=(f"{prefix}_limits",))


def test_in_a_cluster_runs_waiting_for_a_slot_are_pulled_and_none_is_left_behind(cluster: Cluster) -> None:
    """With the only worker on replica b, b holds the limit for the runs accepted on a (announced, pulled,
    queued on b) as for its own; every run finishes."""
    nats_url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    rules = json.dumps([{"name": "per-tenant", "max": 1}])
    try:
        with postgres_database() as pg_url:
            shared = {"store_url": pg_url, "bus_url": nats_url, "bus_prefix": prefix, "concurrency": rules}
            a = cluster.start_gateway(replica_id="replica-a", **shared)
            b = cluster.start_gateway(replica_id="replica-b", **shared)
            _start(cluster, b, slots=4)
            wait_until(lambda: "slow" in a.endpoints(), what="replica a to learn b's endpoints")
            log = cluster.tmp_path / "runs.log"
            runs = [_background(a, None, 0.5, log) for _ in range(4)]
            runs += [_background(b, None, 0.5, log) for _ in range(2)]
            _finished(a, dict.fromkeys(runs), timeout=45)
            spans, most = _record(log)
            assert set(spans) == set(runs) and most == {"default": 1}, (spans, most)
    finally:
        asyncio.run(_delete_nats_state(nats_url, prefix))


def test_in_a_cluster_a_limit_holds_for_the_replicas_together(cluster: Cluster) -> None:
    """Two replicas on PostgreSQL and NATS, each with a worker of its own, a limit of 2 runs at once per
    tenant, background runs submitted to both: on the workers' own clock, never more than 2 of them ran
    at once across the cluster (each replica runs only the slots it claimed), and every one finished."""
    nats_url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    rules = json.dumps([{"name": "per-tenant", "max": 2, "per": ["tenant"]}])
    try:
        with postgres_database() as pg_url:
            shared = {"store_url": pg_url, "bus_url": nats_url, "bus_prefix": prefix, "concurrency": rules}
            a = cluster.start_gateway(replica_id="replica-a", **shared)
            b = cluster.start_gateway(replica_id="replica-b", **shared)
            _start(cluster, a, slots=4)
            _start(cluster, b, slots=4)
            log = cluster.tmp_path / "runs.log"
            runs = []
            for _ in range(9):
                runs += [_background(a, None, 0.4, log), _background(b, None, 0.4, log)]
            _finished(a, dict.fromkeys(runs), timeout=50)
            spans, most = _record(log)
            assert set(spans) == set(runs) and most == {"default": 2}, (spans, most)
    finally:
        asyncio.run(_delete_nats_state(nats_url, prefix))


class _Nats(Process):
    """A NATS server of the test's own, to take down."""

    def __init__(self, log_dir: Path, store: Path, binary: str) -> None:
        self.port = free_port()
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]
        super().__init__("nats", args, {}, log_dir)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def _readyz(gateway: Gateway) -> httpx.Response:
    return httpx.get(f"{gateway.url}/readyz", timeout=5)


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_an_outage_of_the_shared_claims_fails_as_configured(
    cluster: Cluster, tmp_path: Path, mode: str
) -> None:
    """The claims live in NATS (limits_url); NATS goes down: ``open`` runs on the local max (degraded),
    ``closed`` refuses a refuse rule's calls with 503 (not ready); both say so in the log, and recover."""
    require_nats()
    server = _Nats(cluster.logs, tmp_path / "nats", require_nats_server())
    server.start()
    cluster.processes.append(server)
    wait_until(lambda: "Server is ready" in server.output(), what="the test's NATS server")
    rules = json.dumps([{"name": "one-at-a-time", "max": 1, "when_full": "refuse"}])
    gateway = cluster.start_gateway(concurrency=rules, limits_url=server.url, limits_fail=mode)
    _start(cluster, gateway, slots=4)
    log = cluster.tmp_path / "runs.log"
    _finished(gateway, {_background(gateway, None, 0.2, log): None})  # claimed, ran, given back
    assert "concurrency" not in _readyz(gateway).text
    server.kill()
    # Past the claim's local validity (lease_ttl 2 s x 2/3): the next call needs a claim it cannot write.
    time.sleep(1.5)
    answer = _invoke(gateway, "", log)
    ready = _readyz(gateway)
    if mode == "open":
        assert answer.status_code == 200, answer.text  # on the local max of 1
        assert ready.status_code == 200 and "concurrency" in ready.json()["degraded"], ready.text
        assert "each replica allows up to max runs of a key on its own" in gateway.output()
    else:
        assert answer.status_code == 503, answer.text
        assert "concurrency limits cannot be checked" in answer.json()["message"]
        assert ready.status_code == 503 and "concurrency" in ready.json()["problems"], ready.text
        assert "no concurrency slot is claimed or renewed" in gateway.output()
    server.start()  # back: claims again
    wait_until(
        lambda: _invoke(gateway, "", log).status_code == 200 and "concurrency" not in _readyz(gateway).text,
        timeout=20,
        what="recovery",
    )
    assert "the shared claims answer again" in gateway.output()
