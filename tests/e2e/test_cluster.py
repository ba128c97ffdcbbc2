"""Several gateway replicas sharing one PostgreSQL and one NATS behave as one gateway.

Real processes throughout: two or three `fastagentic-gateway serve` replicas on a fresh database and a
bus prefix of their own (its JetStream stream is deleted afterwards), workers dialling one replica, or a
gRPC target naming two, and clients talking to any replica.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import msgspec
import pytest

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.follow import Follower, run_status
from tests.e2e.mcp_support import MODES
from tests.e2e.mcp_support import WORKER as MCP_WORKER
from tests.e2e.mcp_support import client as mcp_client
from tests.e2e.test_postgres_gateway import finished
from tests.e2e.test_rest import assert_gap_free, sse_events
from tests.services import delete_nats_state, postgres_database, require_nats


@pytest.fixture
def shared() -> Iterator[dict[str, str]]:
    """Settings every replica of one test shares: a fresh database, the local NATS, a prefix of its own."""
    nats_url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    with postgres_database() as pg_url:
        yield {"store_url": pg_url, "bus_url": nats_url, "bus_prefix": prefix}
        asyncio.run(delete_nats_state(nats_url, streams=(f"{prefix}_dispatch",)))


def replicas(cluster: Cluster, shared: dict[str, str], count: int, **settings: str) -> list[Gateway]:
    return [
        cluster.start_gateway(**shared, replica_id=f"replica-{'abc'[index]}", **settings)
        for index in range(count)
    ]


def lists(gateway: Gateway, name: str) -> bool:
    return name in gateway.endpoints()


def test_a_run_accepted_by_one_replica_runs_on_a_worker_of_another(
    shared: dict[str, str], cluster: Cluster
) -> None:
    a, b = replicas(cluster, shared, 2)
    cluster.start_worker(gateway=b)
    wait_until(lambda: lists(a, "steps"), what="replica A to learn B's endpoints")
    with a.client() as client:
        accepted = client.post("/v1/agents/steps/runs", json={"steps": 4, "delay": 0.1})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        # Followed live on A while the worker reports to B.
        events = sse_events(client.get(f"/v1/runs/{run_id}/events"))
        # A non-durable endpoint, too: its run crosses to B through the shared store.
        invoked = client.post(
            "/v1/agents/order/invoke", json={"customer": "ada", "items": [{"name": "tea", "quantity": 2}]}
        )
    assert events[-1]["kind"] == "run.completed", events
    assert_gap_free(events)
    assert [e["data"]["text"] for e in events if e["kind"] == "token"] == [f"step {n} " for n in range(1, 5)]
    assert invoked.status_code == 200, invoked.text
    assert finished(b, run_id)["status"] == "succeeded"
    assert "worker worker1" not in a.output()  # the worker never dialled A


def test_a_follower_moving_to_a_third_replica_gets_the_rest_once_and_in_order(
    shared: dict[str, str], cluster: Cluster
) -> None:
    a, b, c = replicas(cluster, shared, 3)
    cluster.start_worker(gateway=b)
    wait_until(lambda: lists(a, "steps") and lists(c, "steps"), what="A and C to learn B's endpoints")
    with a.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 12, "delay": 0.1}).json()["run_id"]
    first: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{a.url}/v1/runs/{run_id}/events", timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                first.append(msgspec.json.decode(line[6:]))
                if len(first) == 5:
                    break  # the client drops its stream mid-run...
    with c.client() as client:  # ...and comes back through another replica
        rest = sse_events(
            client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(first[-1]["seq"])})
        )
        everything = sse_events(client.get(f"/v1/runs/{run_id}/events"))
    assert rest[-1]["kind"] == "run.completed"
    assert_gap_free(first + rest)
    assert first + rest == everything


def test_a_cancel_sent_to_any_replica_reaches_the_worker(
    shared: dict[str, str], cluster: Cluster, tmp_path: Path
) -> None:
    a, b, c = replicas(cluster, shared, 3)
    cluster.start_worker(gateway=b)
    wait_until(lambda: lists(a, "steps") and lists(c, "steps"), what="replicas to learn B's endpoints")
    marker = tmp_path / "cancelled.txt"
    with a.client() as client:
        run_id = client.post(
            "/v1/agents/steps/runs", json={"steps": 200, "delay": 0.05, "marker": str(marker)}
        ).json()["run_id"]
    wait_until(lambda: run_status(a, run_id).get("status") == "running", what="the run to start on B")
    with c.client() as client:
        cancelled = client.post(f"/v1/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    wait_until(marker.exists, what="the worker (on B) to see the cancel sent to C")
    assert marker.read_text() == "cancelled ctx.cancelled=True"
    events = sse_events(httpx.get(f"{a.url}/v1/runs/{run_id}/events", timeout=10))
    assert events[-1]["kind"] == "run.cancelled"
    assert_gap_free(events)


def test_every_replica_lists_every_endpoint_served_anywhere(shared: dict[str, str], cluster: Cluster) -> None:
    a, b = replicas(cluster, shared, 2)
    worker = cluster.start_worker(gateway=b)
    wait_until(lambda: lists(a, "steps"), what="replica A to learn B's endpoints")
    assert a.endpoints() == b.endpoints()
    with a.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert "/v1/agents/steps/invoke" in paths
        assert "/v1/tools/add" in paths
        added = client.post("/v1/tools/add", json={"a": 2, "b": 40})
        assert added.status_code == 200, added.text
        assert added.json()["output"] == 42
        tools = client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _mcp_meta()}},
            headers=_mcp_headers("tools/list"),
        )
    assert tools.status_code == 200, tools.text
    assert {"steps", "add"} <= {tool["name"] for tool in tools.json()["result"]["tools"]}
    worker.stop()
    wait_until(lambda: not lists(a, "steps"), what="A to see that nobody serves B's endpoints any more")
    with a.client() as client:
        gone = client.post("/v1/tools/add", json={"a": 1, "b": 1})
    assert gone.status_code == 503, gone.text


def _mcp_meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "cluster-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def _mcp_headers(method: str) -> dict[str, str]:
    return {
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
        "Accept": "application/json, text/event-stream",
    }


def test_a_worker_killed_mid_run_resumes_on_another_replica_from_its_checkpoint(
    shared: dict[str, str], cluster: Cluster
) -> None:
    a, b = replicas(cluster, shared, 2)
    doomed = cluster.start_worker(gateway=a)
    with a.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 10, "delay": 0.15}).json()["run_id"]
    follower = Follower([a, b], run_id)
    follower.start()
    wait_until(lambda: run_status(a, run_id).get("last_seq", 0) >= 6, what="a few checkpoints")
    cluster.start_worker(gateway=b)
    doomed.kill()
    final = finished(a, run_id)
    follower.join(timeout=30)
    assert final["status"] == "succeeded", final
    assert final["attempt"] == 2
    assert follower.events[-1]["kind"] == "run.completed"
    assert_gap_free(follower.events)
    started = [e for e in follower.events if e["kind"] == "run.started"]
    assert [s["data"]["attempt"] for s in started] == [1, 2]
    assert final["output"]["resumed_from"] >= 3, "attempt 2 starts from the last checkpoint of attempt 1"
    assert sse_events(httpx.get(f"{b.url}/v1/runs/{run_id}/events", timeout=10)) == follower.events


def test_a_replica_killed_with_runs_in_flight_they_finish_through_the_other(
    shared: dict[str, str], cluster: Cluster
) -> None:
    a, b = replicas(cluster, shared, 2)
    # Like a Kubernetes Service in front of the replicas: the worker's gRPC target names both.
    cluster.start_worker(gateway=a, address=f"ipv4:127.0.0.1:{a.grpc_port},127.0.0.1:{b.grpc_port}")
    wait_until(lambda: lists(b, "steps"), what="B to learn the endpoints")
    with a.client() as client:
        run_ids = [
            client.post("/v1/agents/steps/runs", json={"steps": 8, "delay": 0.2}).json()["run_id"]
            for _ in range(3)
        ]
    followers = [Follower([a, b], run_id) for run_id in run_ids]
    for follower in followers:
        follower.start()
    wait_until(
        lambda: all(run_status(a, run_id).get("last_seq", 0) >= 3 for run_id in run_ids),
        what="runs under way",
    )
    a.kill()
    for run_id, follower in zip(run_ids, followers, strict=True):
        final = finished(b, run_id)
        follower.join(timeout=30)
        assert final["status"] == "succeeded", final
        assert follower.events[-1]["kind"] == "run.completed"
        assert_gap_free(follower.events)
        assert sse_events(httpx.get(f"{b.url}/v1/runs/{run_id}/events", timeout=10)) == follower.events
        assert b.url in follower.served_by


@pytest.mark.parametrize("mode", MODES)
async def test_completion_is_answered_by_a_worker_on_another_replica(
    shared: dict[str, str], cluster: Cluster, mode: str
) -> None:
    a, b = replicas(cluster, shared, 2)
    cluster.start_worker(MCP_WORKER, gateway=b)
    wait_until(lambda: lists(a, "trip"), what="A to learn B's endpoints")
    trip = types.PromptReference(type="ref/prompt", name="trip")
    async with mcp_client(a, mode) as mcp:
        cities = await mcp.complete(trip, {"name": "city", "value": "p"})
        districts = await mcp.complete(trip, {"name": "district", "value": "M"}, {"city": "Paris"})
        fallback = await mcp.complete(trip, {"name": "mood", "value": "b"})  # B's completer raises
    assert cities.completion.values == ["Paris", "Porto", "Prague"]
    assert districts.completion.values == ["Marais", "Montmartre"]
    assert fallback.completion.values == ["busy"]
