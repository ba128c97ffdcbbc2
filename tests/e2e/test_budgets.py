"""Budgets and token limits on real processes: a runaway run stopped by its run budget (BudgetExceeded, its
worker's task cancelled, a gap-free log, a model downgrade on the way); a day budget that alerts (log,
audit, webhook) and then refuses new runs on REST, MCP (the official client) and A2A (a2a-sdk), naming
itself; a tokens-per-minute limit; a budget reloaded on SIGHUP."""

from __future__ import annotations

import json
import secrets
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.utils.errors import A2AError
from mcp import MCPError

from tests.conftest import Cluster, Gateway, Worker, free_port, wait_until
from tests.e2e.follow import Follower
from tests.e2e.test_identity import cli
from tests.e2e.test_limits import _auth, _keys, a2a_send, mcp_call

WORKER = "tests.workers.budget_worker:app"
WORKER_TOKEN = "budgets-worker-secret-0123456789"
WORKER_APP = "budgets"


def _worker(cluster: Cluster, gateway: Gateway, log: Path | None = None) -> Worker:
    worker = Worker(gateway, WORKER, cluster.logs, f"budgets{len(cluster.processes)}")
    worker.env["FASTAGENTIC_WORKER_TOKEN"] = WORKER_TOKEN
    worker.env["BUDGET_WORKER_LOG"] = str(log or cluster.tmp_path / "worker.log")
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: f"({WORKER_APP}) connected" in gateway.output(), what="the budget worker")
    return worker


class _Webhook:
    """An HTTP server of the test's own receiving the budget alerts."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    server = _Webhook()
    yield server
    server.close()


def test_a_run_past_its_run_budget_is_stopped_with_budget_exceeded(cluster: Cluster) -> None:
    budgets = [
        {
            "name": "per-run",
            "period": "run",
            "tokens": 1000,
            "downgrade_at": 0.5,
            "downgrade_to": "small-model",
        }
    ]
    log = cluster.tmp_path / "stopped.log"
    metrics_port = free_port()
    gateway = cluster.start_gateway(
        worker_token=WORKER_TOKEN, budgets=json.dumps(budgets), metrics_port=str(metrics_port)
    )
    _worker(cluster, gateway, log)
    started = httpx.post(f"{gateway.url}/v1/agents/runaway/runs", json={"steps": 1000}, timeout=30)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    follower = Follower([gateway], run_id)
    follower.start()
    follower.join(timeout=60)
    assert not follower.is_alive(), "the runaway run never ended"

    run = httpx.get(f"{gateway.url}/v1/runs/{run_id}", timeout=10).json()
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "BudgetExceeded" and "per-run" in run["error"]["message"], run
    events = follower.events
    # Gap-free, ending with the failure right after the usage that crossed the budget.
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"]["type"] == "BudgetExceeded"
    spends = [e["data"] for e in events if e["kind"] == "llm_end"]
    spent = sum(s["input_tokens"] + s["output_tokens"] for s in spends)
    assert 1000 <= spent < 1000 + 100 * 5, spent  # stopped at the batch that crossed it
    # Past half the budget, the worker was told to use the smaller model, and did.
    models = [s["model"] for s in spends]
    assert models[:5] == ["big-model"] * 5, models
    assert models[-1] == "small-model" and models.count("big-model") <= 7, models
    # The worker's task saw CancelledError, with the gateway's reason.
    wait_until(lambda: log.exists() and run_id in log.read_text(), what="the worker's cancellation record")
    assert f"{run_id} CancelledError BudgetExceeded" in log.read_text()
    assert run["usage"]["input_tokens"] + run["usage"]["output_tokens"] == spent
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert 'fastagentic_runs_over_budget_total{budget="per-run"} 1.0' in scraped


async def test_a_spent_day_budget_alerts_then_refuses_on_every_front(
    cluster: Cluster, webhook: _Webhook
) -> None:
    keys = _keys(cluster.tmp_path / "data", "alice", "bob")
    budgets = [
        {
            "name": "acme-daily",
            "period": "day",
            "per": ["principal"],
            "tokens": 1000,
            "alert_at": 0.5,
            "downgrade_at": 0.5,
            "downgrade_to": "small-model",
        }
    ]
    metrics_port = free_port()
    gateway = cluster.start_gateway(
        auth="required",
        worker_token=WORKER_TOKEN,
        budgets=json.dumps(budgets),
        budget_webhook=webhook.url,
        budget_refresh="0.2",
        metrics_port=str(metrics_port),
    )
    _worker(cluster, gateway)
    alice = keys["alice"]

    def spend(tokens: int, key: str = alice) -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/agents/spend/invoke", json={"tokens": tokens}, headers=_auth(key), timeout=30
        )

    first = spend(600)
    assert first.status_code == 200 and first.json()["output"] == {"hint": ""}, first.text
    wait_until(lambda: len(webhook.received) == 1, what="the soft alert")
    alert = webhook.received[0]
    assert alert["type"] == "budget.alert" and alert["budget"] == "acme-daily", alert
    # An API key's principal is its id.
    assert (
        alert["principal"].startswith("key_") and alert["tenant"] == "acme" and alert["spent_tokens"] == 600
    )
    assert "budget.alert" in gateway.output()  # the log line
    # Past downgrade_at, the next run starts with the hint.
    second = spend(500)
    assert second.status_code == 200 and second.json()["output"] == {"hint": "small-model"}, second.text
    wait_until(lambda: len(webhook.received) == 2, what="the exhausted alert")
    assert webhook.received[1]["type"] == "budget.exhausted" and webhook.received[1]["spent_tokens"] == 1100

    refused = spend(1)
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert body["type"] == "budget_exceeded" and body["budget"] == "acme-daily", body
    assert "budget 'acme-daily' (1000 tokens per day) is spent" in body["message"], body
    assert 1 <= int(refused.headers["Retry-After"]) <= 86400 and body["resets_at"] % 86400 == 0
    mcp = await mcp_call(gateway, alice, "spend", {"tokens": 1})
    assert isinstance(mcp, MCPError) and mcp.code == -32029, mcp
    assert mcp.data["type"] == "budget_exceeded" and mcp.data["budget"] == "acme-daily", mcp.data
    assert mcp.data["resetsAt"] == body["resets_at"] and mcp.data["retryAfter"] >= 1
    a2a = await a2a_send(gateway, alice, "spend", {"tokens": 1})
    assert isinstance(a2a, A2AError) and "acme-daily" in str(a2a), a2a
    # The budget is per principal: bob still spends.
    assert spend(10, keys["bob"]).status_code == 200
    # The alerts are in the audit log too.
    admin = cli(cluster.tmp_path / "data", "keys", "create", "--name", "root", "--scope", "fastagentic:admin")

    def alerts() -> list[str]:  # audit records are written in batches, within a second
        audit = httpx.get(
            f"{gateway.url}/v1/audit", params={"tenant": "acme"}, headers=_auth(admin), timeout=10
        )
        return sorted(r["action"] for r in audit.json()["records"] if r["target"] == "acme-daily")

    wait_until(lambda: alerts() == ["budget.alert", "budget.exhausted"], what="the alerts in the audit log")
    # And in the metrics, on their own port (not the API's).
    async with httpx.AsyncClient(timeout=10) as http:
        scraped = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert (await http.get(f"{gateway.url}/metrics")).status_code == 404
    assert 'fastagentic_budget_alerts_total{budget="acme-daily",type="budget.alert"} 1.0' in scraped
    assert 'fastagentic_budget_alerts_total{budget="acme-daily",type="budget.exhausted"} 1.0' in scraped
    assert 'fastagentic_budget_refused_total{budget="acme-daily"} 3.0' in scraped  # REST, MCP, A2A


def test_a_tokens_per_minute_limit_refuses_after_the_spend(cluster: Cluster) -> None:
    limits = [{"name": "tpm", "rate": "600/minute", "burst": 100, "unit": "tokens", "per": ["tenant"]}]
    gateway = cluster.start_gateway(worker_token=WORKER_TOKEN, limits=json.dumps(limits))
    _worker(cluster, gateway)
    url = f"{gateway.url}/v1/agents/spend/invoke"
    assert httpx.post(url, json={"tokens": 50}, timeout=30).status_code == 200
    assert httpx.post(url, json={"tokens": 1000}, timeout=30).status_code == 200  # admitted: within
    refused = httpx.post(url, json={"tokens": 1}, timeout=30)
    assert refused.status_code == 429 and refused.json()["rule"] == "tpm", refused.text
    # 1050 tokens at 10 a second, 100 of burst: about 95 s until the next call.
    assert 80 <= int(refused.headers["Retry-After"]) <= 96, refused.headers
    assert "600 tokens per minute" in refused.json()["message"]


def test_budgets_reload_on_sighup(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[[budgets]]\nname = "tiny"\nperiod = "day"\ntokens = 10\n')
    gateway = cluster.start_gateway(worker_token=WORKER_TOKEN, config=str(config), budget_refresh="0.1")
    _worker(cluster, gateway)
    url = f"{gateway.url}/v1/agents/spend/invoke"
    assert httpx.post(url, json={"tokens": 20}, timeout=30).status_code == 200
    refused = httpx.post(url, json={"tokens": 1}, timeout=30)
    assert refused.status_code == 429 and refused.json()["budget"] == "tiny", refused.text
    config.write_text('[[budgets]]\nname = "roomy"\nperiod = "day"\ntokens = 1000000\n')
    gateway.signal(signal.SIGHUP)
    wait_until(lambda: "1 budget(s)" in gateway.output(), what="the reload")
    assert httpx.post(url, json={"tokens": 1}, timeout=30).status_code == 200


def test_two_replicas_hold_one_day_budget(cluster: Cluster) -> None:
    import asyncio

    from tests.e2e.test_limits import _delete_bucket
    from tests.services import postgres_database, require_nats

    nats_url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    budgets = json.dumps([{"name": "team-daily", "period": "day", "tokens": 1000, "per": ["tenant"]}])
    try:
        with postgres_database() as pg_url:
            shared = {"store_url": pg_url, "bus_url": nats_url, "bus_prefix": prefix, "budget_refresh": "0.2"}
            a = cluster.start_gateway(worker_token=WORKER_TOKEN, budgets=budgets, replica_id="a", **shared)
            b = cluster.start_gateway(worker_token=WORKER_TOKEN, budgets=budgets, replica_id="b", **shared)
            _worker(cluster, a)
            _worker(cluster, b)

            def spend(gateway: Gateway, tokens: int) -> httpx.Response:
                url = f"{gateway.url}/v1/agents/spend/invoke"
                return httpx.post(url, json={"tokens": tokens}, timeout=30)

            assert spend(a, 400).status_code == 200
            assert spend(b, 400).status_code == 200
            assert spend(a, 400).status_code == 200  # 1200: spent, counted on both
            # Within budget_refresh, each replica reads what the other counted from the shared store.
            wait_until(lambda: spend(b, 1).status_code == 429, what="replica b to see the spent budget")
            refused = spend(a, 1)
            assert refused.status_code == 429 and refused.json()["budget"] == "team-daily", refused.text
    finally:
        asyncio.run(_delete_bucket(nats_url, prefix))


async def test_the_gateway_names_what_an_older_worker_lacks(cluster: Cluster) -> None:
    from tests.e2e.test_identity import _first_answer, _hello

    budgets = [{"name": "r", "period": "run", "tokens": 10, "downgrade_at": 0.5, "downgrade_to": "mini"}]
    gateway = cluster.start_gateway(worker_token=WORKER_TOKEN, budgets=json.dumps(budgets))
    # A Hello as an SDK from before model hints sends it: no features. It is welcome, and named.
    answer = await _first_answer(gateway.grpc_address, _hello("old-worker", WORKER_TOKEN, ["old_tool"]))
    assert answer.HasField("welcome"), answer
    wait_until(lambda: "worker old-worker" in gateway.output() and "lacks model hints" in gateway.output())
    _worker(cluster, gateway)  # the current SDK declares the feature: nothing said about it
    assert gateway.output().count("lacks model hints") == 1
