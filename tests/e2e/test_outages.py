"""Outages of the services the gateway depends on: the real local PostgreSQL and NATS are stopped and
started again while runs are in flight. While one is down `/readyz` fails and new requests get a 503
saying what is missing; nothing already accepted is lost; service resumes by itself.

These tests stop machine-wide services, so they restore them in ``finally`` blocks and run in seconds.
"""

from __future__ import annotations

import time

import httpx

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.follow import Follower
from tests.e2e.test_cluster import lists, replicas, shared  # noqa: F401 (shared is a fixture)
from tests.e2e.test_postgres_gateway import finished, pg_url  # noqa: F401 (pg_url is a fixture)
from tests.e2e.test_rest import assert_gap_free, sse_events
from tests.services import nats_outage, postgres_outage


def readiness(gateway: Gateway) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        response = httpx.get(f"{gateway.url}/readyz", timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


def assert_refused_while_down(gateway: Gateway, component: str, says: str) -> None:
    """``/readyz`` names ``component``; a new run gets 503 ``unavailable`` saying ``says``, with Retry-After."""
    _status, body = wait_until(
        lambda: (r := readiness(gateway))[0] == 503 and r, timeout=15, what="/readyz to fail"
    )
    assert component in body["problems"], body
    refused = httpx.post(f"{gateway.url}/v1/agents/steps/runs", json={"steps": 1}, timeout=15)
    assert refused.status_code == 503, refused.text
    assert refused.json()["type"] == "unavailable"
    assert says in refused.json()["message"]
    assert refused.headers["Retry-After"]


def assert_finished_complete(gateway: Gateway, run_id: str, follower: Follower) -> None:
    """The run succeeded and the follower saw its whole log, gap-free, as the store has it."""
    final = finished(gateway, run_id, timeout=60)
    follower.join(timeout=30)
    assert final["status"] == "succeeded", final
    assert follower.events[-1]["kind"] == "run.completed"
    assert_gap_free(follower.events)
    assert sse_events(httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10)) == follower.events


def test_postgresql_down_then_back_loses_no_accepted_run(pg_url: str, cluster: Cluster) -> None:  # noqa: F811
    gateway = cluster.start_gateway(store_url=pg_url)
    cluster.start_worker()
    with gateway.client() as client:
        run_ids = [
            client.post("/v1/agents/steps/runs", json={"steps": 12, "delay": 0.2}).json()["run_id"]
            for _ in range(4)
        ]
    followers = [Follower([gateway], run_id) for run_id in run_ids]
    for follower in followers:
        follower.start()
    wait_until(lambda: all(len(f.events) >= 3 for f in followers), what="runs under way")

    with postgres_outage():
        assert_refused_while_down(gateway, "store", "run store")
        time.sleep(1.0)  # the worker keeps producing events meanwhile: the gateway holds them back

    wait_until(lambda: readiness(gateway)[0] == 200, timeout=30, what="/readyz to recover")
    for run_id, follower in zip(run_ids, followers, strict=True):
        assert_finished_complete(gateway, run_id, follower)
        assert finished(gateway, run_id)["output"]["completed"] == 12
    with gateway.client() as client:
        after = client.post("/v1/agents/steps/invoke", json={"steps": 2, "delay": 0})
    assert after.status_code == 200, after.text


def test_nats_down_then_back_replicas_resume_by_themselves(shared: dict[str, str], cluster: Cluster) -> None:  # noqa: F811
    a, b = replicas(cluster, shared, 2)
    cluster.start_worker(gateway=b)
    wait_until(lambda: lists(a, "steps"), what="A to learn B's endpoints")
    with a.client() as client:
        in_flight = client.post("/v1/agents/steps/runs", json={"steps": 15, "delay": 0.2}).json()["run_id"]
    follower = Follower([a], in_flight)
    follower.start()
    wait_until(lambda: len(follower.events) >= 3, what="the run to be under way on B")

    with nats_outage():
        assert_refused_while_down(a, "bus", "NATS")
        time.sleep(1.0)

    for gateway in (a, b):
        wait_until(
            lambda gateway=gateway: readiness(gateway)[0] == 200, timeout=30, what="/readyz to recover"
        )
    assert_finished_complete(a, in_flight, follower)
    # Dispatch across replicas works again: accepted on A, run by B's worker.
    with a.client() as client:
        after = client.post("/v1/agents/steps/invoke", json={"steps": 2, "delay": 0})
    assert after.status_code == 200, after.text
    assert after.json()["output"]["completed"] == 2
