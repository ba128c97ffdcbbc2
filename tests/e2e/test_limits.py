"""Rate limits on real processes: one limit holds for a key across REST, MCP (the official client) and A2A
(a2a-sdk); the rate an endpoint declares in the SDK; a reload on SIGHUP; two replicas on PostgreSQL + NATS
share one limit; an outage of the shared counter fails open or closed as configured."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.errors import A2AClientError
from a2a.types.a2a_pb2 import TaskState
from a2a.utils.errors import A2AError
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ROOT, Cluster, Gateway, Process, Worker, base_env, free_port, wait_until
from tests.e2e.a2a_support import collect, data_message, output_of, request
from tests.services import delete_nats_state, postgres_database, require_nats, require_nats_server

WORKER = "tests.workers.limited:app"
WORKER_TOKEN = "limits-worker-secret-0123456789"
PER_KEY = [{"name": "per-key", "rate": "6/minute", "burst": 6}]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _keys(data: Path, *names: str, store_url: str = "") -> dict[str, str]:
    """API keys of tenant acme, made with the gateway's CLI in its store (``store_url``: PostgreSQL)."""
    env = base_env() | {"FASTAGENTIC_DATA_DIR": str(data)}
    if store_url:
        env["FASTAGENTIC_STORE_URL"] = store_url
    keys = {}
    for name in names:
        args = [
            sys.executable,
            "-m",
            "fastagentic_gateway",
            "keys",
            "create",
            "--name",
            name,
            "--tenant",
            "acme",
        ]
        done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        keys[name] = done.stdout.strip()
    return keys


def _worker(cluster: Cluster, gateway: Gateway) -> Worker:
    worker = Worker(gateway, WORKER, cluster.logs, f"limited{len(cluster.processes)}")
    worker.env["FASTAGENTIC_WORKER_TOKEN"] = WORKER_TOKEN
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "quota" in gateway.output() or _serves(gateway), what="the limited worker")
    return worker


def _serves(gateway: Gateway) -> bool:
    try:
        return httpx.get(f"{gateway.url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def rest(gateway: Gateway, key: str, agent: str = "echo") -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/agents/{agent}/invoke", json={"text": "hi"}, headers=_auth(key), timeout=30
    )


async def mcp_call(
    gateway: Gateway, key: str, tool: str = "echo", arguments: dict[str, Any] | None = None
) -> Any:
    """The tool's result with the official MCP client, or the MCPError it raised."""
    http = httpx2.AsyncClient(headers=_auth(key), timeout=60)
    try:
        async with (
            http,
            Client(streamable_http_client(f"{gateway.url}/mcp", http_client=http), mode="2026-07-28") as mcp,
        ):
            result = await mcp.call_tool(tool, {"text": "hi"} if arguments is None else arguments)
            assert not result.is_error, result
            return result.structured_content
    except (MCPError, ExceptionGroup) as raised:
        # the client's task groups wrap what it raises
        error: BaseException = raised
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        assert isinstance(error, MCPError), repr(raised)
        return error


async def a2a_send(
    gateway: Gateway, key: str, agent: str = "echo", data: dict[str, Any] | None = None
) -> Any:
    """The task's output with the a2a-sdk client, or the error it raised (for a JSON-RPC error, the
    A2A error of its code)."""
    async with httpx.AsyncClient(headers=_auth(key), timeout=30) as http:
        card = await A2ACardResolver(http, f"{gateway.url}/a2a/{agent}").get_agent_card()
        client = ClientFactory(
            ClientConfig(httpx_client=http, supported_protocol_bindings=["JSONRPC"], streaming=False)
        ).create(card)
        try:
            message = data_message({"text": "hi"} if data is None else data)
            items = await collect(client.send_message(request(message)))
        except (A2AClientError, A2AError) as error:
            return error
        finally:
            await client.close()
    task = next(item.task for item in items if item.HasField("task"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task
    return output_of(task)


def _refused_rest(response: httpx.Response, rule: str, quota: int, window: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["type"] == "rate_limited" and body["rule"] == rule, body
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= window and body["retry_after"] == seconds
    assert response.headers["RateLimit-Policy"] == f'"{rule}";q={quota};w={window}'
    assert response.headers["RateLimit"] == f'"{rule}";r=0;t={seconds}'


@pytest.fixture
def limited(cluster: Cluster) -> Iterator[tuple[Gateway, dict[str, str]]]:
    keys = _keys(cluster.tmp_path / "data", "alice", "bob")
    gateway = cluster.start_gateway(auth="required", worker_token=WORKER_TOKEN, limits=json.dumps(PER_KEY))
    _worker(cluster, gateway)
    yield gateway, keys


async def test_one_limit_holds_for_a_key_across_rest_mcp_and_a2a(
    limited: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, keys = limited
    alice = keys["alice"]
    # 6 a minute, bursts of 6: two calls on each front, then every front refuses with a retry hint.
    assert [rest(gateway, alice).status_code for _ in range(2)] == [200, 200]
    assert [await mcp_call(gateway, alice) for _ in range(2)] == [{"echo": "hi"}] * 2
    assert [await a2a_send(gateway, alice) for _ in range(2)] == [{"echo": "hi"}] * 2
    _refused_rest(rest(gateway, alice), "per-key", 6, 60)
    refused = await mcp_call(gateway, alice)
    assert isinstance(refused, MCPError), refused
    assert refused.code == -32029 and refused.data["type"] == "rate_limited", refused
    assert refused.data["rule"] == "per-key" and 1 <= refused.data["retryAfter"] <= 60
    refused_a2a = await a2a_send(gateway, alice)
    assert isinstance(refused_a2a, A2AError) and "per-key" in str(refused_a2a), refused_a2a
    # The JSON-RPC error the client saw carries the same hint.
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": "m1",
                "role": "ROLE_USER",
                "parts": [{"data": {"text": "hi"}, "mediaType": "application/json"}],
            }
        },
    }
    async with httpx.AsyncClient(timeout=30) as http:
        posted = await http.post(
            f"{gateway.url}/a2a/echo", json=body, headers={"A2A-Version": "1.0", **_auth(alice)}
        )
    answer = posted.json()
    # A2A 1.0 carries error details as google.rpc.ErrorInfo; the retry hint is in its metadata.
    (info,) = answer["error"]["data"]
    assert info["metadata"]["type"] == "rate_limited" and int(info["metadata"]["retryAfter"]) >= 1, answer
    # Another key has its own counter.
    assert rest(gateway, keys["bob"]).status_code == 200


def test_the_rate_an_endpoint_declares_is_enforced_per_caller(
    limited: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, keys = limited
    listed = httpx.get(f"{gateway.url}/v1/endpoints", headers=_auth(keys["alice"]), timeout=10).json()
    assert next(e for e in listed["endpoints"] if e["name"] == "quota")["rate_limit"] == "2/minute"
    called = [
        httpx.post(
            f"{gateway.url}/v1/tools/quota", json={"text": "hi"}, headers=_auth(keys["bob"]), timeout=30
        )
        for _ in range(3)
    ]
    assert [c.status_code for c in called[:2]] == [200, 200], [c.text for c in called]
    _refused_rest(called[2], "endpoint:quota", 2, 60)


def test_limits_reload_on_sighup(cluster: Cluster, tmp_path: Path) -> None:
    keys = _keys(cluster.tmp_path / "data", "carol")
    config = tmp_path / "gateway.toml"
    config.write_text('[[limits]]\nname = "tight"\nrate = "1/minute"\n')
    gateway = cluster.start_gateway(auth="required", worker_token=WORKER_TOKEN, config=str(config))
    _worker(cluster, gateway)
    assert [rest(gateway, keys["carol"]).status_code for _ in range(2)] == [200, 429]
    config.write_text('[[limits]]\nname = "roomy"\nrate = "100/minute"\n')
    gateway.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded: 1 limit rule" in gateway.output(), what="the reload")
    assert rest(gateway, keys["carol"]).status_code == 200
    config.write_text('[[limits]]\nname = "broken"\nrate = "many"\n')
    gateway.signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in gateway.output(), what="the refused reload")
    assert rest(gateway, keys["carol"]).status_code == 200  # the rules in force stay


# ------------------------------------------------------------------------------ shared counters


async def _delete_bucket(url: str, prefix: str) -> None:
    await delete_nats_state(url, streams=(f"{prefix}_dispatch",), buckets=(f"{prefix}_limits",))


def test_two_replicas_enforce_one_shared_limit(cluster: Cluster) -> None:
    import asyncio

    nats_url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    rules = json.dumps([{"name": "shared", "rate": "10/minute", "burst": 10}])
    try:
        with postgres_database() as pg_url:
            keys = _keys(cluster.tmp_path / "data", "dave", store_url=pg_url)
            shared = {"store_url": pg_url, "bus_url": nats_url, "bus_prefix": prefix}
            a = cluster.start_gateway(
                auth="required", worker_token=WORKER_TOKEN, limits=rules, replica_id="a", **shared
            )
            b = cluster.start_gateway(
                auth="required", worker_token=WORKER_TOKEN, limits=rules, replica_id="b", **shared
            )
            _worker(cluster, a)
            _worker(cluster, b)
            statuses = [rest(gateway, keys["dave"]).status_code for _ in range(8) for gateway in (a, b)]
            assert statuses.count(200) == 10 and statuses.count(429) == 6, statuses
    finally:
        asyncio.run(_delete_bucket(nats_url, prefix))


class _Nats(Process):
    """A NATS server of the test's own, to take down."""

    def __init__(self, log_dir: Path, store: Path, binary: str) -> None:
        self.port = free_port()
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]
        super().__init__("nats", args, {}, log_dir)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_an_outage_of_the_shared_counter_fails_as_configured(
    cluster: Cluster, tmp_path: Path, mode: str
) -> None:
    require_nats()
    server = _Nats(cluster.logs, tmp_path / "nats", require_nats_server())
    server.start()
    cluster.processes.append(server)
    wait_until(lambda: "Server is ready" in server.output(), what="the test's NATS server")
    keys = _keys(cluster.tmp_path / "data", "erin")
    rules = json.dumps([{"name": "guarded", "rate": "100/minute"}])
    gateway = cluster.start_gateway(
        auth="required", worker_token=WORKER_TOKEN, limits=rules, limits_url=server.url, limits_fail=mode
    )
    _worker(cluster, gateway)
    assert rest(gateway, keys["erin"]).status_code == 200
    assert httpx.get(f"{gateway.url}/readyz", timeout=5).json().get("degraded") is None
    server.kill()
    answers = [rest(gateway, keys["erin"]) for _ in range(3)]
    ready = httpx.get(f"{gateway.url}/readyz", timeout=5)
    if mode == "open":
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert ready.status_code == 200 and "limits" in ready.json()["degraded"], ready.text
    else:
        assert [a.status_code for a in answers] == [503, 503, 503], [a.text for a in answers]
        assert "rate limits cannot be checked" in answers[0].json()["message"]
        assert ready.status_code == 503 and "limits" in ready.json()["problems"], ready.text
    assert "limits: the shared limit counter" in gateway.output()
    server.start()  # back: limits are enforced again
    wait_until(
        lambda: rest(gateway, keys["erin"]).status_code == 200 and _ready_clean(gateway),
        timeout=20,
        what="recovery",
    )


def _ready_clean(gateway: Gateway) -> bool:
    ready = httpx.get(f"{gateway.url}/readyz", timeout=5)
    return ready.status_code == 200 and "degraded" not in ready.json()
