"""``GET /v1/stats`` end to end: a real gateway (auth = "required", a price table), real workers, API keys
made with the CLI. Runs that succeed, fail, take time, live in memory (ephemeral) and report usage; then an
admin's stats of their tenant show the counts, the error rates, sane latency percentiles and the usage, and
nothing of another tenant; a plain key gets 403 and a bad window 400."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Worker, wait_until
from tests.e2e.test_identity import cli

PRICES = {"gpt-small": {"input_per_million": 1.0, "output_per_million": 2.0}}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_stats_count_an_admins_tenant_over_a_window(cluster: Cluster) -> None:
    data = cluster.tmp_path / "data"
    key = lambda name, *extra: cli(data, "keys", "create", "--name", name, *extra)  # noqa: E731
    alice = key("alice", "--tenant", "acme", "--scope", "orders:write")
    admin = key("root", "--tenant", "acme", "--scope", "fastagentic:admin")
    bob = key("bob", "--tenant", "globex")
    globex_admin = key("groot", "--tenant", "globex", "--scope", "fastagentic:admin")
    worker_token = cli(data, "workers", "create-token", "--name", "all", "--endpoint", "*")
    gateway = cluster.start_gateway(auth="required", prices=json.dumps(PRICES), credential_cache_ttl="0")
    for name, target in (("basic", "tests.workers.basic:app"), ("usage", "tests.workers.usage_worker:app")):
        worker = Worker(gateway, target, cluster.logs, name)
        worker.env["FASTAGENTIC_WORKER_TOKEN"] = worker_token
        worker.start()
        cluster.processes.append(worker)
    http = httpx.Client(base_url=gateway.url, timeout=30)

    def endpoints() -> set[str]:
        found = http.get("/v1/endpoints", headers=_auth(alice)).json().get("endpoints", [])
        return {e["name"] for e in found}

    wait_until(lambda: {"echo", "fail", "steps", "order", "spend"} <= endpoints(), what="the workers")

    def invoke(token: str, name: str, body: dict[str, Any], status: str = "succeeded") -> None:
        done = http.post(f"/v1/agents/{name}/invoke", json=body, headers=_auth(token))
        assert done.status_code == 200, done.text
        assert done.json()["status"] == status, done.text

    for _ in range(3):
        invoke(alice, "echo", {"text": "hi"})
    for _ in range(2):
        invoke(alice, "fail", {"message": "no"}, status="failed")
    invoke(alice, "steps", {"steps": 2, "delay": 0.3})  # at least 0.6 s from created to finished
    invoke(alice, "order", {"customer": "c", "items": [{"name": "x"}]})  # ephemeral: in memory
    calls = [{"model": "gpt-small", "input_tokens": 1000, "output_tokens": 500}]
    invoke(alice, "spend", {"calls": calls})
    for _ in range(4):
        invoke(bob, "echo", {"text": "other tenant"})

    # Admins only.
    denied = http.get("/v1/stats", headers=_auth(alice))
    assert denied.status_code == 403, denied.text
    assert denied.json()["type"] == "insufficient_scope" and "fastagentic:admin" in denied.json()["message"]
    assert http.get("/v1/stats").status_code == 401

    answer = http.get("/v1/stats", headers=_auth(admin))
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert (stats["tenant"], stats["window"], stats["truncated"]) == ("acme", "1h", False)
    assert stats["until"] - stats["since"] == pytest.approx(3600)
    assert stats["usage_from"] == time.strftime("%Y-%m-%d", time.gmtime(stats["since"]))
    ends = stats["endpoints"]
    assert sorted(ends) == ["echo", "fail", "order", "spend", "steps"]

    echo = ends["echo"]  # bob's four echo runs are globex's: not here
    assert (echo["runs"], echo["finished"], echo["error_rate"]) == (3, 3, 0.0)
    assert echo["by_status"] == {
        "queued": 0,
        "running": 0,
        "waiting_input": 0,
        "succeeded": 3,
        "failed": 0,
        "cancelled": 0,
        "timed_out": 0,
    }
    assert (ends["fail"]["by_status"]["failed"], ends["fail"]["error_rate"]) == (2, 1.0)
    assert ends["order"]["by_status"]["succeeded"] == 1
    assert ends["steps"]["latency"]["p50"] >= 0.6

    totals = stats["totals"]
    assert (totals["runs"], totals["finished"], totals["error_rate"]) == (8, 8, 0.25)
    assert totals["by_status"]["succeeded"] == 6 and totals["by_status"]["failed"] == 2
    for name in ("latency", "queue_wait"):
        spread = totals[name]
        assert spread["count"] == 8, spread
        assert 0 <= spread["p50"] <= spread["p90"] <= spread["p99"] < 30, spread
    assert totals["latency"]["p99"] >= 0.6  # the steps run: of 8 runs, p99 is the slowest
    assert totals["queue_wait"]["p99"] <= totals["latency"]["p99"]  # a run starts before it finishes

    spent = {"input_tokens": 1000, "output_tokens": 500, "calls": 1, "unpriced_calls": 0}
    assert ends["spend"]["usage"] | spent == ends["spend"]["usage"]
    assert ends["spend"]["usage"]["cost"] == pytest.approx(0.002)  # 1000 * 1.0 + 500 * 2.0 per million
    assert ends["spend"]["usage"]["by_model"]["gpt-small"]["input_tokens"] == 1000
    assert ends["echo"]["usage"]["calls"] == 0
    assert totals["usage"]["input_tokens"] == 1000 and list(totals["usage"]["by_model"]) == ["gpt-small"]

    # The other tenant's admin sees only the other tenant's runs.
    theirs = http.get("/v1/stats", headers=_auth(globex_admin)).json()
    assert (theirs["tenant"], sorted(theirs["endpoints"])) == ("globex", ["echo"])
    assert theirs["totals"]["runs"] == 4 == theirs["endpoints"]["echo"]["by_status"]["succeeded"]
    assert theirs["totals"]["usage"]["calls"] == 0

    # The window: runs created before it are not counted (usage is per UTC day: still the day's).
    time.sleep(1.5)
    recent = http.get("/v1/stats", params={"window": "1s"}, headers=_auth(admin)).json()
    assert (recent["window"], recent["totals"]["runs"], recent["totals"]["error_rate"]) == ("1s", 0, None)
    assert recent["totals"]["latency"] == {"count": 0, "p50": None, "p90": None, "p99": None}
    week = http.get("/v1/stats", params={"window": "7d"}, headers=_auth(admin)).json()
    assert week["totals"]["runs"] == 8

    for window in ("8d", "1w", "0m", "abc", "1.5h", ""):
        bad = http.get("/v1/stats", params={"window": window}, headers=_auth(admin))
        assert bad.status_code == 400, (window, bad.text)
        assert bad.json()["message"].startswith("window must be a whole number followed by s, m, h or d")
        assert repr(window) in bad.json()["message"]
