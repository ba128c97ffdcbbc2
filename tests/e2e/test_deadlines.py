"""Run deadlines end to end: the Run-Timeout header and the run_timeout setting, enforced by the gateway's
reaper on real gateway and worker processes (SQLite store)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fastagentic_gateway.settings import SettingsError, load
from tests.conftest import Cluster, wait_until
from tests.e2e.test_replay import finished, start, status
from tests.e2e.test_rest import assert_gap_free, sse_events

LONG = {"steps": 400, "delay": 0.05}  # 20 s unless stopped


def assert_timed_out(run: dict[str, Any]) -> None:
    assert run["status"] == "timed_out", run
    assert run["error"]["type"] == "Timeout"
    assert "deadline" in run["error"]["message"]


def test_invoke_past_its_run_timeout_answers_timed_out_and_the_worker_stops(
    cluster: Cluster, tmp_path: Path
) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker()
    marker = tmp_path / "stopped"
    with gateway.client() as client:
        began = time.monotonic()
        response = client.post(
            "/v1/agents/steps/invoke",
            json={**LONG, "marker": str(marker)},
            headers={"Run-Timeout": "1.5"},
        )
        took = time.monotonic() - began
        body = response.json()
        run = status(client, body["run_id"])
        events = sse_events(client.get(f"/v1/runs/{body['run_id']}/events"))
        wait_until(marker.exists, what="the worker to stop the run")
        after = client.post("/v1/agents/echo/invoke", json={"text": "next"}).json()

    assert response.status_code == 200, response.text
    assert_timed_out(body)
    assert "output" not in body
    assert 1.5 <= took < 8, took
    assert_timed_out(run)
    assert run["deadline_at"] == pytest.approx(run["created_at"] + 1.5)
    assert run["finished_at"] >= run["deadline_at"]
    assert_gap_free(events)
    assert events[0]["kind"] == "run.started"
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"] == body["error"]
    assert marker.read_text() == "cancelled ctx.cancelled=True"
    assert after["status"] == "succeeded"


def test_a_queued_run_past_its_deadline_times_out_without_ever_starting(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker("tests.workers.basic:app", "--slots", "1")
    with gateway.client() as client:
        busy = start(client, "steps", LONG)
        wait_until(lambda: status(client, busy)["status"] == "running", what="the slot to be taken")
        response = client.post(
            "/v1/agents/steps/runs", json={"steps": 1, "delay": 0}, headers={"Run-Timeout": "1"}
        )
        assert response.status_code == 202, response.text
        assert response.json()["deadline_at"] == pytest.approx(response.json()["created_at"] + 1)
        queued = response.json()["run_id"]
        final = finished(client, queued)
        client.post(f"/v1/runs/{busy}/cancel")
        # The slot frees; the timed-out run must not be dispatched to it.
        later = client.post("/v1/agents/echo/invoke", json={"text": "x"}).json()
        events = sse_events(client.get(f"/v1/runs/{queued}/events"))
        still = status(client, queued)

    assert_timed_out(final)
    assert "started_at" not in final
    assert [e["kind"] for e in events] == ["run.failed"]
    assert events[0]["data"]["error"]["type"] == "Timeout"
    assert later["status"] == "succeeded"
    assert still == final


def test_run_timeout_setting_applies_when_the_header_is_absent(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(run_timeout="1.5")
    cluster.start_worker()
    with gateway.client() as client:
        streamed = client.post("/v1/agents/steps/stream", json=LONG)
        events = sse_events(streamed)
        run = status(client, streamed.headers["x-run-id"])
        # The header wins over the setting.
        longer = client.post(
            "/v1/agents/steps/invoke", json={"steps": 4, "delay": 0.5}, headers={"Run-Timeout": "30"}
        ).json()
        longer_run = status(client, longer["run_id"])

    assert_gap_free(events)
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"]["type"] == "Timeout"
    assert_timed_out(run)
    assert run["deadline_at"] == pytest.approx(run["created_at"] + 1.5)
    assert longer["status"] == "succeeded", longer
    assert longer_run["deadline_at"] == pytest.approx(longer_run["created_at"] + 30)


def test_runs_without_a_deadline_have_none(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker()
    with gateway.client() as client:
        body = client.post("/v1/agents/steps/invoke", json={"steps": 1, "delay": 0}).json()
        run = status(client, body["run_id"])
    assert body["status"] == "succeeded"
    assert "deadline_at" not in run


def test_bad_run_timeout_headers_are_refused(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(max_run_timeout="60")
    cluster.start_worker()
    routes = ("invoke", "stream", "runs")
    with gateway.client() as client:
        refused = {
            (route, value): client.post(
                f"/v1/agents/steps/{route}", json={"steps": 1, "delay": 0}, headers={"Run-Timeout": value}
            )
            for route in routes
            for value in ("soon", "", "nan", "inf", "1e400", "0", "-2", "60.5")
        }
        at_most = client.post(
            "/v1/agents/steps/runs", json={"steps": 1, "delay": 0}, headers={"Run-Timeout": "60"}
        )
        runs = client.get("/v1/runs").json()["runs"]

    for (route, value), response in refused.items():
        assert response.status_code == 400, (route, value, response.text)
        body = response.json()
        assert body["type"] == "malformed_request"
        assert "Run-Timeout" in body["message"], body
    assert "at most 60 seconds (setting max_run_timeout)" in refused[("runs", "60.5")].json()["message"]
    assert "a number of seconds" in refused[("invoke", "soon")].json()["message"]
    assert at_most.status_code == 202, at_most.text
    assert [r["run_id"] for r in runs] == [at_most.json()["run_id"]]  # nothing refused was started


def test_deadline_settings_are_validated() -> None:
    with pytest.raises(SettingsError, match="run_timeout"):
        load(environ={"FASTAGENTIC_RUN_TIMEOUT": "100", "FASTAGENTIC_MAX_RUN_TIMEOUT": "50"})
    with pytest.raises(SettingsError, match="max_run_timeout"):
        load(environ={"FASTAGENTIC_MAX_RUN_TIMEOUT": "0"})
    with pytest.raises(SettingsError, match="max_checkpoint_bytes"):
        load(
            environ={
                "FASTAGENTIC_MAX_CHECKPOINT_BYTES": "2000000",
                "FASTAGENTIC_MAX_MESSAGE_BYTES": "1000000",
            }
        )
    settings = load(environ={"FASTAGENTIC_RUN_TIMEOUT": "30"})
    assert (settings.run_timeout, settings.max_run_timeout, settings.max_checkpoint_bytes) == (
        30.0,
        86_400.0,
        1_048_576,
    )
