"""Token and cost accounting end to end: a real gateway (auth = "required", a price table) and a real worker
reporting usage with ``ctx.usage``; the run's usage in ``GET /v1/runs/{id}``, the aggregates in
``GET /v1/usage`` (admins only), and a rogue worker whose negative tokens are refused whole."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Worker, wait_until
from tests.e2e.test_identity import cli

USAGE_WORKER = "tests.workers.usage_worker:app"
PRICES = {"gpt-small": {"input_per_million": 1.0, "output_per_million": 2.0}}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def _start_worker(cluster: Cluster, token: str | None = None) -> Worker:
    assert cluster.gateway is not None
    worker = Worker(cluster.gateway, USAGE_WORKER, cluster.logs, "usage-worker")
    if token is not None:
        worker.env["FASTAGENTIC_WORKER_TOKEN"] = token
    worker.start()
    cluster.processes.append(worker)
    return worker


def test_usage_adds_up_per_run_and_in_the_admin_aggregates(cluster: Cluster) -> None:
    data = cluster.tmp_path / "data"
    key = lambda name, *extra: cli(data, "keys", "create", "--name", name, *extra)  # noqa: E731
    alice = key("alice", "--tenant", "acme")
    admin = key("root", "--tenant", "ops", "--scope", "fastagentic:admin")
    worker_token = cli(data, "workers", "create-token", "--name", "usage", "--endpoint", "*")
    gateway = cluster.start_gateway(auth="required", prices=json.dumps(PRICES), credential_cache_ttl="0")
    _start_worker(cluster, worker_token)
    http = httpx.Client(base_url=gateway.url, timeout=30)

    def endpoints() -> set[str]:
        found = http.get("/v1/endpoints", headers=_auth(alice)).json().get("endpoints", [])
        return {e["name"] for e in found}

    wait_until(lambda: {"spend", "priced"} <= endpoints(), what="the usage worker's endpoints")

    calls: list[dict[str, Any]] = [
        {"model": "gpt-small", "input_tokens": 1_000_000, "output_tokens": 500_000},  # priced: 1 + 1
        {"model": "gpt-small", "input_tokens": 10, "output_tokens": 20, "cost": 0.5},  # its own cost
        {"model": "local-llama", "input_tokens": 7, "output_tokens": 3},  # unpriced
        {"model": "local-llama", "input_tokens": 1, "output_tokens": 1, "cost": 0.25},  # an llm_end by hand
    ]
    invoked = http.post(
        "/v1/agents/spend/invoke", json={"calls": calls, "by_hand": True}, headers=_auth(alice)
    )
    assert invoked.status_code == 200, invoked.text
    assert invoked.json()["status"] == "succeeded"
    run_id = invoked.json()["run_id"]

    run = http.get(f"/v1/runs/{run_id}", headers=_auth(alice)).json()
    assert run["usage"] == {
        "input_tokens": 1_000_018,
        "output_tokens": 500_024,
        "cost": pytest.approx(2.75),
        "calls": 4,
        "unpriced_calls": 1,
        "by_model": {
            "gpt-small": {
                "input_tokens": 1_000_010,
                "output_tokens": 500_020,
                "cost": pytest.approx(2.5),
                "calls": 2,
                "unpriced_calls": 0,
            },
            "local-llama": {
                "input_tokens": 8,
                "output_tokens": 4,
                "cost": 0.25,
                "calls": 2,
                "unpriced_calls": 1,
            },
        },
    }
    # The event log keeps every llm_end as it came, the one without usage fields too.
    events = http.get(f"/v1/runs/{run_id}/events", headers=_auth(alice)).text
    assert events.count("event: llm_end") == 5

    # An ephemeral tool call: its usage is in its run (memory) and in the durable aggregates.
    tool = http.post("/v1/tools/priced", json={"model": "gpt-small", "tokens": 1000}, headers=_auth(alice))
    assert tool.status_code == 200, tool.text

    # Admins only: a plain key gets 403 naming the scope.
    denied = http.get("/v1/usage", headers=_auth(alice))
    assert denied.status_code == 403
    assert denied.json()["type"] == "insufficient_scope" and "fastagentic:admin" in denied.json()["message"]
    assert http.get("/v1/usage").status_code == 401

    by_endpoint = http.get(
        "/v1/usage", params={"tenant": "acme", "group_by": "endpoint,model"}, headers=_auth(admin)
    )
    assert by_endpoint.status_code == 200, by_endpoint.text
    body = by_endpoint.json()
    assert body["group_by"] == ["endpoint", "model"]
    assert body["truncated"] is False
    assert [(r["endpoint"], r["model"], r["input_tokens"], r["calls"]) for r in body["rows"]] == [
        ("priced", "gpt-small", 1000, 1),
        ("spend", "gpt-small", 1_000_010, 2),
        ("spend", "local-llama", 8, 2),
    ]
    assert body["rows"][0]["cost"] == pytest.approx(0.003)  # 1000 * 1.0 + 1000 * 2.0 per million
    assert body["totals"]["input_tokens"] == 1_001_018
    assert body["totals"]["cost"] == pytest.approx(2.753)
    assert body["totals"]["unpriced_calls"] == 1

    by_day = http.get("/v1/usage", params={"from": _today(), "to": _today()}, headers=_auth(admin)).json()
    assert [r["day"] for r in by_day["rows"]] == [_today()]
    assert by_day["rows"][0]["calls"] == 5 == by_day["totals"]["calls"]
    assert by_day["rows"][0]["input_tokens"] == 1_001_018

    principal = run["principal"]
    mine = http.get(
        "/v1/usage",
        params={"principal": principal, "model": "local-llama", "group_by": ""},
        headers=_auth(admin),
    ).json()
    assert mine["rows"] == [] and mine["totals"]["input_tokens"] == 8
    assert (
        http.get("/v1/usage", params={"tenant": "other"}, headers=_auth(admin)).json()["totals"]["calls"] == 0
    )

    for params in ({"from": "2026-13-01"}, {"from": "yesterday"}, {"group_by": "color"}, {"limit": "0"}):
        bad = http.get("/v1/usage", params=params, headers=_auth(admin))
        assert bad.status_code == 400, (params, bad.text)
    assert "from (2026-02-02) is after to (2026-02-01)" in (
        http.get("/v1/usage", params={"from": "2026-02-02", "to": "2026-02-01"}, headers=_auth(admin)).text
    )

    # The totals are durable: a restarted gateway still has them.
    gateway.stop()
    cluster.restart_gateway(gateway)
    again = http.get("/v1/usage", params={"group_by": ""}, headers=_auth(admin)).json()
    assert again["totals"] == body["totals"]
    wait_until(lambda: "spend" in endpoints(), what="the worker to reconnect")  # until then: 503, warming
    assert http.get(f"/v1/runs/{run_id}", headers=_auth(alice)).json()["usage"] == run["usage"]


def test_a_rogue_workers_negative_tokens_are_refused_and_count_nothing(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    worker = _start_worker(cluster)
    wait_until(lambda: "rogue" in gateway.endpoints(), what="the usage worker")
    http = httpx.Client(base_url=gateway.url, timeout=30)
    started = http.post("/v1/agents/rogue/runs", json={"text": "hi"})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    # The gateway disconnects the worker, saying precisely what was wrong; the SDK stops on a Reject.
    message = "llm_end event (seq 3): input_tokens must be an integer from 0 to 2**53, not -1000"
    wait_until(lambda: message in gateway.output(), what="the protocol violation in the gateway's log")
    wait_until(lambda: not worker.alive, what="the rejected worker to stop")
    assert "protocol_violation" in worker.output()

    # Nothing of the batch was stored (not even the valid llm_end before the bad one), nothing counted.
    run = http.get(f"/v1/runs/{run_id}").json()
    assert run["last_seq"] == 1  # run.started only
    assert run["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "calls": 0,
        "unpriced_calls": 0,
        "by_model": {},
    }
    assert http.get("/v1/usage", params={"group_by": ""}).json()["totals"]["calls"] == 0
    assert http.get("/v1/usage").json()["rows"] == []


def test_usage_needs_no_admin_when_nobody_authenticates(cluster: Cluster, tmp_path: Path) -> None:
    gateway = cluster.start_gateway()
    _start_worker(cluster)
    wait_until(lambda: "spend" in gateway.endpoints(), what="the usage worker")
    http = httpx.Client(base_url=gateway.url, timeout=30)
    calls = [{"model": "m", "input_tokens": 3, "output_tokens": 4}]
    run_id = http.post("/v1/agents/spend/invoke", json={"calls": calls}).json()["run_id"]
    assert http.get(f"/v1/runs/{run_id}").json()["usage"]["by_model"]["m"]["unpriced_calls"] == 1
    body = http.get("/v1/usage", params={"group_by": "tenant,principal"}).json()
    assert body["rows"] == [
        {
            "tenant": "default",
            "principal": "anonymous",
            "input_tokens": 3,
            "output_tokens": 4,
            "cost": 0.0,
            "calls": 1,
            "unpriced_calls": 1,
        }
    ]
