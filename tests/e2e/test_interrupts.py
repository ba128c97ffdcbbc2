"""Two-way runs over REST, with real processes: a run that calls ``ctx.interrupt`` waits (``waiting_input``,
an ``interrupt`` event), ``POST /v1/runs/{id}/resume`` answers it (validated against the interrupt's
schema) and the run goes on, in place or, for a durable run its worker handed back, as a new attempt on
another worker from its checkpoint; the event log stays gap-free; a gateway restart while a run waits
loses nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.follow import Follower
from tests.e2e.test_identity import cli

WORKER = "tests.workers.interrupt_worker:app"


def _worker(cluster: Cluster, gateway: Gateway, log: Path, name: str = "") -> Worker:
    worker = Worker(gateway, WORKER, cluster.logs, name or f"interrupts{len(cluster.processes)}")
    worker.env["INTERRUPT_WORKER_LOG"] = str(log)
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "(interrupts) connected" in gateway.output(), what="the interrupt worker")
    return worker


def _run(gateway: Gateway, run_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def _resume(
    gateway: Gateway, run_id: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/runs/{run_id}/resume", json=body, headers=headers, timeout=10)


def _events(gateway: Gateway, run_id: str) -> list[dict[str, Any]]:
    follower = Follower([gateway], run_id)
    follower.start()
    follower.join(timeout=60)
    assert not follower.is_alive(), "the run never ended"
    events = follower.events
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "the log has a gap"
    return events


def test_a_run_waits_in_place_and_an_answer_of_the_right_shape_resumes_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    gateway = cluster.start_gateway()
    _worker(cluster, gateway, tmp_path / "worker.log")
    started = httpx.post(f"{gateway.url}/v1/agents/ask/runs", json={"question": "how much?"}, timeout=10)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    wait_until(lambda: _run(gateway, run_id)["status"] == "waiting_input", what="the run to wait for input")
    listed = httpx.get(f"{gateway.url}/v1/runs", params={"status": "waiting_input"}, timeout=10).json()
    assert run_id in [r["run_id"] for r in listed["runs"]], listed

    wrong = _resume(gateway, run_id, {"answer": {"amount": "five"}})
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["type"] == "validation_error"
    assert [e["path"] for e in wrong.json()["errors"]] == ["$.amount"], wrong.json()
    assert _resume(gateway, run_id, {"answer": {"amount": 5}, "interrupt": "other"}).status_code == 409
    assert _resume(gateway, run_id, {"reply": 5}).status_code == 422
    assert _resume(gateway, "run_nope", {"answer": {"amount": 5}}).status_code == 404

    resumed = _resume(gateway, run_id, {"answer": {"amount": 5, "note": "ok"}})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "running" and resumed.json()["attempt"] == 1  # in place
    events = _events(gateway, run_id)
    kinds = [e["kind"] for e in events]
    assert kinds == ["run.started", "token", "interrupt", "input", "token", "run.completed"], kinds
    interrupt, given = events[2]["data"], events[3]["data"]
    assert interrupt["id"] == "interrupt-1" and interrupt["request"] == {"question": "how much?"}
    assert interrupt["schema"]["required"] == ["amount"], interrupt
    assert given == {"id": "interrupt-1", "answer": {"amount": 5, "note": "ok"}}
    assert _run(gateway, run_id)["output"] == {"amount": 5, "note": "ok", "attempt": 1}
    # It no longer waits.
    again = _resume(gateway, run_id, {"answer": {"amount": 6}})
    assert again.status_code == 409 and "not waiting for input (succeeded)" in again.json()["message"]


def test_a_durable_run_handed_back_resumes_on_another_worker_from_its_checkpoint(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    gateway = cluster.start_gateway(interrupt_hold="0.5")
    first = _worker(cluster, gateway, log, "first")
    started = httpx.post(f"{gateway.url}/v1/agents/refund/runs", json={"amount": 30}, timeout=10)
    run_id = started.json()["run_id"]
    # Past interrupt_hold the worker hands the run back: it waits with no worker, at attempt 2.
    wait_until(
        lambda: _run(gateway, run_id)["status"] == "waiting_input" and _run(gateway, run_id)["attempt"] == 2,
        what="the run to be handed back",
    )
    first.kill()  # kill -9: nothing of the run is on a worker any more
    _worker(cluster, gateway, log, "second")
    decision = {"decision": "edit", "payload": {"amount": 20}}
    resumed = _resume(gateway, run_id, {"answer": decision})
    assert resumed.status_code == 200, resumed.text
    events = _events(gateway, run_id)
    assert _run(gateway, run_id)["output"] == {"decision": "edit", "payload": {"amount": 20}, "attempt": 2}
    kinds = [e["kind"] for e in events]
    assert kinds.count("interrupt") == 1 and kinds.count("input") == 1 and kinds[-1] == "run.completed", kinds
    # Prepared once (the checkpoint), decided once (the answer reached the new attempt as resume input).
    assert log.read_text().splitlines() == [f"prepare {run_id} 1", f"decided {run_id} 2 edit"]


def test_a_wait_survives_a_gateway_restart(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    gateway = cluster.start_gateway(interrupt_hold="600", lease_ttl="30", heartbeat_interval="0.3")
    _worker(cluster, gateway, log)
    run_id = httpx.post(f"{gateway.url}/v1/agents/refund/runs", json={"amount": 7}, timeout=10).json()[
        "run_id"
    ]
    wait_until(lambda: _run(gateway, run_id)["status"] == "waiting_input", what="the wait")
    gateway.kill()
    cluster.restart_gateway(gateway)
    # Its second connection (the gateway answers /healthz a moment before it prints its banner, so the
    # banner cannot tell the two lives apart): only then does the answer find the run held in place.
    wait_until(lambda: gateway.output().count("(interrupts) connected") == 2, what="the worker back")
    assert "1 run(s) kept" in gateway.output()
    assert _run(gateway, run_id)["status"] == "waiting_input"
    assert _resume(gateway, run_id, {"answer": {"decision": "approve"}}).status_code == 200
    _events(gateway, run_id)
    assert _run(gateway, run_id)["output"] == {"decision": "approve", "payload": None, "attempt": 1}
    assert log.read_text().splitlines() == [f"prepare {run_id} 1", f"decided {run_id} 1 approve"]


def test_only_the_runs_tenant_may_answer(cluster: Cluster, tmp_path: Path) -> None:
    data = cluster.tmp_path / "data"
    acme = cli(data, "keys", "create", "--name", "ann", "--tenant", "acme")
    globex = cli(data, "keys", "create", "--name", "gus", "--tenant", "globex")
    token = cli(data, "workers", "create-token", "--name", "interrupts", "--endpoint", "*")
    gateway = cluster.start_gateway(auth="required")
    worker = Worker(gateway, WORKER, cluster.logs, "interrupts")
    worker.env["INTERRUPT_WORKER_LOG"] = str(tmp_path / "worker.log")
    worker.env["FASTAGENTIC_WORKER_TOKEN"] = token
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "(interrupts) connected" in gateway.output(), what="the worker")
    ann, gus = {"Authorization": f"Bearer {acme}"}, {"Authorization": f"Bearer {globex}"}
    started = httpx.post(f"{gateway.url}/v1/agents/ask/runs", json={"question": "?"}, headers=ann, timeout=10)
    run_id = started.json()["run_id"]
    wait_until(lambda: _run(gateway, run_id, ann)["status"] == "waiting_input", what="the wait")
    assert _resume(gateway, run_id, {"answer": {"amount": 1}}, gus).status_code == 404
    assert _resume(gateway, run_id, {"answer": {"amount": 1}}, ann).status_code == 200
    wait_until(lambda: _run(gateway, run_id, ann)["status"] == "succeeded", what="the answered run")
    body = json.dumps(_run(gateway, run_id, ann)["output"])
    assert json.loads(body)["amount"] == 1


def test_an_answer_sent_as_soon_as_the_interrupt_is_seen_is_taken(cluster: Cluster, tmp_path: Path) -> None:
    """A client that answers the moment its stream shows the interrupt never gets 409 "not waiting"."""
    gateway = cluster.start_gateway()
    _worker(cluster, gateway, tmp_path / "worker.log")
    for attempt in range(5):
        run_id = httpx.post(f"{gateway.url}/v1/agents/ask/runs", json={"question": "?"}, timeout=10).json()[
            "run_id"
        ]
        with httpx.stream("GET", f"{gateway.url}/v1/runs/{run_id}/events", timeout=30) as stream:
            for line in stream.iter_lines():
                if line == "event: interrupt":
                    answered = _resume(gateway, run_id, {"answer": {"amount": attempt}})
                    assert answered.status_code == 200, answered.text
                if line == "event: run.completed":
                    break
        assert _run(gateway, run_id)["output"]["amount"] == attempt


def test_an_ephemeral_run_nobody_answers_fails_after_interrupt_timeout(
    cluster: Cluster, tmp_path: Path
) -> None:
    gateway = cluster.start_gateway(interrupt_timeout="1")
    _worker(cluster, gateway, tmp_path / "worker.log")
    run_id = httpx.post(f"{gateway.url}/v1/agents/ask/runs", json={"question": "?"}, timeout=10).json()[
        "run_id"
    ]
    events = _events(gateway, run_id)
    assert [e["kind"] for e in events] == ["run.started", "token", "interrupt", "run.failed"]
    run = _run(gateway, run_id)
    assert run["status"] == "failed" and run["error"]["type"] == "InterruptTimeout", run
    assert "was not answered within 1 s" in run["error"]["message"]
    assert _resume(gateway, run_id, {"answer": {"amount": 1}}).status_code == 409
