"""A real gateway process on PostgreSQL (FASTAGENTIC_STORE_URL=postgresql://...) with a real worker.

Each test gets a fresh database on the local server, dropped afterwards; without a reachable PostgreSQL
the tests are skipped (failed with FASTAGENTIC_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.follow import run_status
from tests.e2e.test_rest import assert_gap_free, sse_events
from tests.services import database_exists, postgres_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    # Requested before ``cluster``, so it is torn down after the processes stop.
    with postgres_database() as url:
        yield url
    assert not database_exists(url.rpartition("/")[2])


def finished(gateway: Gateway, run_id: str, timeout: float = 40) -> dict[str, Any]:
    final: dict[str, Any] = wait_until(
        lambda: (
            (r := run_status(gateway, run_id)).get("status") in {"succeeded", "failed", "cancelled"} and r
        ),
        timeout=timeout,
        what=f"{run_id} to finish",
    )
    return final


def stored_events(url: str, run_id: str) -> list[tuple[int, str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT seq, kind, data FROM fastagentic_events WHERE run_id = %s ORDER BY seq", (run_id,)
        ).fetchall()
    return [(seq, kind, json.loads(data)) for seq, kind, data in rows]


def test_durable_background_run_finishes_with_its_events_in_postgresql(pg_url: str, cluster: Cluster) -> None:
    gateway = cluster.start_gateway(store_url=pg_url)
    cluster.start_worker()
    with gateway.client() as client:
        accepted = client.post("/v1/agents/steps/runs", json={"steps": 3, "delay": 0.05})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        final = finished(gateway, run_id)
        events = sse_events(client.get(f"/v1/runs/{run_id}/events"))

    assert final["status"] == "succeeded", final
    assert final["output"]["completed"] == 3
    assert_gap_free(events)
    assert [(e["seq"], e["kind"], e["data"]) for e in events] == stored_events(pg_url, run_id)
    assert (events[0]["kind"], events[-1]["kind"]) == ("run.started", "run.completed")
    with psycopg.connect(pg_url) as conn:
        run = conn.execute(
            "SELECT status, last_seq, durable FROM fastagentic_runs WHERE id = %s", (run_id,)
        ).fetchone()
        checkpoints = conn.execute(
            "SELECT id, state FROM fastagentic_checkpoints WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
        versions = conn.execute("SELECT version FROM fastagentic_schema_migrations").fetchall()
    assert run == ("succeeded", len(events), True)
    assert [(cp_id, json.loads(state)) for cp_id, state in checkpoints] == [
        (1, {"done": 1}),
        (2, {"done": 2}),
        (3, {"done": 3}),
    ]
    # Migrated by the gateway at start (migrate_on_start defaults to true).
    assert versions == [(1,), (2,), (3,), (4,), (5,), (6,), (7,)]
    assert not (gateway.data_dir / "runs.sqlite3").exists()


def test_gateway_restart_on_postgresql_loses_no_accepted_run(pg_url: str, cluster: Cluster) -> None:
    gateway = cluster.start_gateway(store_url=pg_url)
    cluster.start_worker("tests.workers.basic:app", "--slots", "1")
    with gateway.client() as client:
        busy = client.post("/v1/agents/steps/runs", json={"steps": 10, "delay": 0.2}).json()["run_id"]
        waiting = client.post("/v1/agents/steps/runs", json={"steps": 2, "delay": 0}).json()["run_id"]
        wait_until(
            lambda: run_status(gateway, busy).get("last_seq", 0) >= 4, what="progress of the first run"
        )
        assert run_status(gateway, waiting)["status"] == "queued"

    gateway.kill()
    cluster.restart_gateway(gateway)

    finals = {run_id: finished(gateway, run_id) for run_id in (busy, waiting)}
    assert finals[busy]["status"] == "succeeded" and finals[busy]["output"]["completed"] == 10, finals
    assert finals[waiting]["status"] == "succeeded" and finals[waiting]["output"]["completed"] == 2, finals
    for run_id in (busy, waiting):
        events = sse_events(httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10))
        assert_gap_free(events)
        assert [e["kind"] for e in events].count("run.completed") == 1
        assert events[-1]["kind"] == "run.completed"
        assert [(e["seq"], e["kind"], e["data"]) for e in events] == stored_events(pg_url, run_id)
