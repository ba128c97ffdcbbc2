"""Replaying a run from one of its checkpoints, and the checkpoint size limit: real gateway and worker
processes over real gRPC, on SQLite (the default) and, for replay, on PostgreSQL too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.test_rest import assert_gap_free, sse_events
from tests.services import postgres_database

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The gateway's store: "" (SQLite in the data directory) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield ""
        return
    with postgres_database() as url:
        yield url


def status(client: httpx.Client, run_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def finished(client: httpx.Client, run_id: str, timeout: float = 30) -> dict[str, Any]:
    final: dict[str, Any] = wait_until(
        lambda: (body := status(client, run_id))["status"] in TERMINAL and body,
        timeout=timeout,
        what=f"{run_id} to finish",
    )
    return final


def checkpoints(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/runs/{run_id}/checkpoints")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["checkpoints"]
    return found


def start(client: httpx.Client, endpoint: str, body: dict[str, Any]) -> str:
    response = client.post(f"/v1/agents/{endpoint}/runs", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def replay(client: httpx.Client, run_id: str, **kwargs: Any) -> httpx.Response:
    return client.post(f"/v1/runs/{run_id}/replay", **kwargs)


@pytest.fixture
def served(cluster: Cluster) -> Gateway:
    gateway = cluster.start_gateway()
    cluster.start_worker()
    return gateway


# replay


def test_replay_from_a_chosen_checkpoint_is_a_new_run_starting_from_its_state(
    store_url: str, cluster: Cluster
) -> None:
    gateway = cluster.start_gateway(store_url=store_url)
    cluster.start_worker()
    with gateway.client() as client:
        origin_id = start(client, "steps", {"steps": 4, "delay": 0.02})
        origin = finished(client, origin_id)
        assert origin["status"] == "succeeded", origin
        assert [(c["id"], c["state"]) for c in checkpoints(client, origin_id)] == [
            (1, {"done": 1}),
            (2, {"done": 2}),
            (3, {"done": 3}),
            (4, {"done": 4}),
        ]

        response = replay(client, origin_id, json={"checkpoint": 2})

        assert response.status_code == 202, response.text
        accepted = response.json()
        replay_id = accepted["run_id"]
        assert replay_id != origin_id
        assert response.headers["location"] == f"/v1/runs/{replay_id}"
        assert accepted["replay_of"] == {"run_id": origin_id, "checkpoint": 2}
        final = finished(client, replay_id)
        events = sse_events(client.get(f"/v1/runs/{replay_id}/events"))
        replay_checkpoints = checkpoints(client, replay_id)
        origin_after = status(client, origin_id)
        listed = {r["run_id"]: r for r in client.get("/v1/runs").json()["runs"]}

    assert final["status"] == "succeeded", final
    # Its first attempt started from checkpoint 2's state: steps 3 and 4 only.
    assert final["attempt"] == 1
    assert (final["output"]["resumed_from"], final["output"]["completed"]) == (2, 4)
    assert (final["endpoint"], final["principal"], final["tenant"]) == (
        origin["endpoint"],
        origin["principal"],
        origin["tenant"],
    )
    assert final["replay_of"] == {"run_id": origin_id, "checkpoint": 2}
    assert listed[replay_id]["replay_of"] == {"run_id": origin_id, "checkpoint": 2}
    assert "replay_of" not in listed[origin_id]
    assert_gap_free(events)
    assert [e["data"]["text"] for e in events if e["kind"] == "token"] == ["step 3 ", "step 4 "]
    # The replay has checkpoints of its own, numbered from 1; the origin is untouched.
    assert [(c["id"], c["state"]) for c in replay_checkpoints] == [(1, {"done": 3}), (2, {"done": 4})]
    assert origin_after == origin


def test_replay_without_a_checkpoint_id_starts_from_the_last_checkpoint(served: Gateway) -> None:
    with served.client() as client:
        origin_id = start(client, "steps", {"steps": 3, "delay": 0.02})
        assert finished(client, origin_id)["status"] == "succeeded"

        for body in ({"content": b""}, {"json": {}}, {"json": {"checkpoint": None}}):
            response = replay(client, origin_id, **body)
            assert response.status_code == 202, (body, response.text)
            assert response.json()["replay_of"] == {"run_id": origin_id, "checkpoint": 3}
            final = finished(client, response.json()["run_id"])
            assert final["status"] == "succeeded", final
            assert final["output"]["resumed_from"] == 3


def test_replay_of_a_run_still_running_starts_from_its_checkpoint(served: Gateway) -> None:
    with served.client() as client:
        origin_id = start(client, "steps", {"steps": 200, "delay": 0.05})
        wait_until(lambda: len(checkpoints(client, origin_id)) >= 2, what="two checkpoints")

        response = replay(client, origin_id, json={"checkpoint": 1})
        assert response.status_code == 202, response.text
        replay_id = response.json()["run_id"]
        # Cut the replay short: it resumed from step 1, so its first token is step 2.
        wait_until(lambda: checkpoints(client, replay_id), what="the replay's first checkpoint")
        origin_running = status(client, origin_id)["status"]
        client.post(f"/v1/runs/{replay_id}/cancel")
        client.post(f"/v1/runs/{origin_id}/cancel")
        replay_events = sse_events(client.get(f"/v1/runs/{replay_id}/events"))

    assert origin_running == "running"
    tokens = [e["data"]["text"] for e in replay_events if e["kind"] == "token"]
    assert tokens[0] == "step 2 "


def test_replay_errors(cluster: Cluster, tmp_path: Path) -> None:
    gateway = cluster.start_gateway()
    worker = cluster.start_worker()
    with gateway.client() as client:
        origin_id = start(client, "steps", {"steps": 2, "delay": 0.01})
        assert finished(client, origin_id)["status"] == "succeeded"
        failed_id = start(client, "fail", {"message": "nope"})
        assert finished(client, failed_id)["status"] == "failed"

        unknown_run = replay(client, "run_nope", json={})
        unknown_checkpoint = replay(client, origin_id, json={"checkpoint": 9})
        no_checkpoint = replay(client, failed_id)
        no_checkpoint_named = replay(client, failed_id, json={"checkpoint": 1})
        malformed = replay(client, origin_id, content=b'{"checkpoint": ')
        not_an_object = replay(client, origin_id, json=[1])
        invalid = {
            repr(value): replay(client, origin_id, json={"checkpoint": value})
            for value in ("2", 1.5, True, 0, -1)
        }
        unknown_field = replay(client, origin_id, json={"checkpoint": 1, "from": 2})
        bad_timeout = replay(client, origin_id, json={"checkpoint": 1}, headers={"Run-Timeout": "soon"})

        worker.stop()
        wait_until(lambda: "steps" not in gateway.endpoints(), what="steps to be unserved")
        no_worker = replay(client, origin_id, json={"checkpoint": 1})
        runs_after = client.get("/v1/runs").json()["runs"]

    assert unknown_run.status_code == 404
    assert unknown_run.json()["type"] == "not_found"
    assert unknown_checkpoint.status_code == 404
    assert unknown_checkpoint.json()["message"] == f"run {origin_id} has no checkpoint 9"
    assert no_checkpoint.status_code == 409
    assert no_checkpoint.json()["type"] == "conflict"
    assert no_checkpoint.json()["message"] == f"run {failed_id} has no checkpoint to replay from"
    assert no_checkpoint_named.status_code == 404
    assert malformed.status_code == 400
    assert malformed.json()["type"] == "malformed_request"
    assert not_an_object.status_code == 422
    assert [e["path"] for e in not_an_object.json()["errors"]] == ["$"]
    for value, response in invalid.items():
        assert response.status_code == 422, value
        assert response.json()["type"] == "validation_error"
        assert [e["path"] for e in response.json()["errors"]] == ["$.checkpoint"], value
    assert unknown_field.status_code == 422
    assert [e["path"] for e in unknown_field.json()["errors"]] == ["$.from"]
    assert bad_timeout.status_code == 400
    assert "Run-Timeout" in bad_timeout.json()["message"]
    assert no_worker.status_code == 503
    assert no_worker.headers["retry-after"] == "5"
    assert no_worker.json()["type"] == "no_worker"
    # None of the refused requests created a run.
    assert {r["run_id"] for r in runs_after} == {origin_id, failed_id}


# checkpoint size limit


def test_a_checkpoint_over_max_checkpoint_bytes_fails_the_run_not_the_worker(
    cluster: Cluster, tmp_path: Path
) -> None:
    gateway = cluster.start_gateway(max_checkpoint_bytes="100000")
    worker = cluster.start_worker()
    marker = tmp_path / "stopped"
    with gateway.client() as client:
        small = client.post("/v1/agents/big_checkpoint/invoke", json={"size": 90_000, "after": 0})
        big = client.post(
            "/v1/agents/big_checkpoint/invoke", json={"size": 150_000, "after": 20, "marker": str(marker)}
        )
        body = big.json()
        events = sse_events(client.get(f"/v1/runs/{body['run_id']}/events"))
        stored = checkpoints(client, body["run_id"])
        wait_until(marker.exists, what="the worker to stop the run")
        # The same worker, still connected, keeps serving.
        after = client.post("/v1/agents/echo/invoke", json={"text": "still here"}).json()

    assert small.json()["status"] == "succeeded", small.text
    assert big.status_code == 200
    assert body["status"] == "failed"
    assert body["error"]["type"] == "CheckpointTooLarge"
    message = body["error"]["message"]
    assert "max_checkpoint_bytes" in message and "100000" in message
    assert str(150_000 + len('{"pad":""}')) in message
    assert stored == []
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"]["type"] == "CheckpointTooLarge"
    assert marker.read_text() == "cancelled ctx.cancelled=True"
    assert after["status"] == "succeeded"
    assert worker.alive
    log = gateway.output()
    assert "broke the protocol" not in log
    assert log.count(") connected: ") == 1 and " disconnected" not in log.partition("shutting down")[0]


def test_openapi_documents_replay_and_the_run_timeout_header(served: Gateway) -> None:
    with served.client() as client:
        document = client.get("/openapi.json").json()

    replay_operation = document["paths"]["/v1/runs/{run_id}/replay"]["post"]
    assert {"202", "400", "404", "409", "422", "503"} <= set(replay_operation["responses"])
    body = replay_operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["checkpoint"]["minimum"] == 1
    for route in ("invoke", "stream", "runs"):
        operation = document["paths"][f"/v1/agents/steps/{route}"]["post"]
        assert "Run-Timeout" in [p["name"] for p in operation["parameters"]], route
    run = document["components"]["schemas"]["Run"]["properties"]
    assert {"deadline_at", "replay_of"} <= set(run)
