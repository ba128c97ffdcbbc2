"""Gateway-enforced approval (``approval_required``): a call of a gated endpoint, from REST or MCP, waits
for an approver's decision before any worker runs it; approve, edit and reject; only the approver scope
decides; the decision is the run's ``input`` event and is audited. Real gateway and worker processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.test_identity import cli

pytestmark = pytest.mark.e2e

WORKER_TOKEN = "approval-gate-worker-secret-0123456789"


@dataclass
class Gated:
    gateway: Gateway
    keys: dict[str, str]
    worker_log: Path


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gated]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("gate")))
    data = cluster.tmp_path / "data"
    keys = {
        "caller": cli(data, "keys", "create", "--name", "caller", "--tenant", "acme"),
        "approver": cli(
            data, "keys", "create", "--name", "boss", "--tenant", "acme", "--scope", "fastagentic:approve"
        ),
        "outsider": cli(
            data, "keys", "create", "--name", "other", "--tenant", "other", "--scope", "fastagentic:approve"
        ),
        "admin": cli(
            data, "keys", "create", "--name", "root", "--tenant", "acme", "--scope", "fastagentic:admin"
        ),
    }
    try:
        gateway = cluster.start_gateway(
            auth="required", worker_token=WORKER_TOKEN, approval_required="ec*,add"
        )
        worker = Worker(gateway, "tests.workers.basic:app", cluster.logs, "gated")
        worker.env |= {"FASTAGENTIC_WORKER_TOKEN": WORKER_TOKEN}
        worker.start()
        cluster.processes.append(worker)
        wait_until(lambda: "(basic) connected" in gateway.output(), what="the worker")
        yield Gated(gateway, keys, cluster.logs / "gated.log")
    finally:
        cluster.close()


def call(gated: Gated, method: str, path: str, key: str = "caller", **options: Any) -> httpx.Response:
    return httpx.request(
        method, f"{gated.gateway.url}{path}", headers={"X-API-Key": gated.keys[key]}, timeout=30, **options
    )


def start(gated: Gated, text: str) -> dict[str, Any]:
    response = call(gated, "POST", "/v1/agents/echo/runs", json={"text": text})
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    return run


def run_of(gated: Gated, run_id: str) -> dict[str, Any]:
    response = call(gated, "GET", f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def kinds(gated: Gated, run_id: str, *, waiting: bool = False) -> list[str]:
    """The kinds of the run's events; of a waiting run, those up to its interrupt (its stream stays open)."""
    found: list[str] = []
    headers = {"X-API-Key": gated.keys["caller"]}
    with httpx.stream(
        "GET", f"{gated.gateway.url}/v1/runs/{run_id}/events", headers=headers, timeout=30
    ) as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                found.append(line.split(":", 1)[1].strip())
                if waiting and found[-1] == "interrupt":
                    break
    return found


def decide(gated: Gated, run_id: str, answer: Any, key: str = "approver") -> httpx.Response:
    return call(gated, "POST", f"/v1/runs/{run_id}/resume", key, json={"answer": answer})


def test_a_gated_call_waits_and_runs_once_approved(gated: Gated) -> None:
    run = start(gated, "hello")
    assert run["status"] == "waiting_input"
    waiting = call(gated, "GET", "/v1/runs", params={"status": "waiting_input", "endpoint": "echo"}).json()
    assert run["run_id"] in [r["run_id"] for r in waiting["runs"]]
    assert kinds(gated, run["run_id"], waiting=True) == ["interrupt"]  # no worker saw it
    with httpx.stream(
        "GET",
        f"{gated.gateway.url}/v1/runs/{run['run_id']}/events",
        headers={"X-API-Key": gated.keys["caller"]},
        timeout=30,
    ) as stream:
        data = next(line for line in stream.iter_lines() if line.startswith("data:"))
    interrupt = json.loads(data[len("data:") :])["data"]
    assert interrupt["id"] == "gateway.approval"
    assert interrupt["request"]["approval"] == {"action": "call echo", "details": {"text": "hello"}}
    assert interrupt["request"]["approver_scope"] == "fastagentic:approve"

    # The caller may not approve its own call; another tenant's approver does not even see the run.
    refused = decide(gated, run["run_id"], {"decision": "approve"}, key="caller")
    assert refused.status_code == 403, refused.text
    assert refused.json()["required_scopes"] == ["fastagentic:approve"]
    assert decide(gated, run["run_id"], {"decision": "approve"}, key="outsider").status_code == 404
    bad = decide(gated, run["run_id"], {"decision": "maybe"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "$.decision", bad.text

    assert decide(gated, run["run_id"], {"decision": "approve"}).status_code == 200
    wait_until(lambda: run_of(gated, run["run_id"])["status"] == "succeeded", what="the approved run")
    assert run_of(gated, run["run_id"])["output"]["text"] == "hello"
    assert kinds(gated, run["run_id"])[:2] == ["interrupt", "input"]
    again = decide(gated, run["run_id"], {"decision": "approve"})
    assert again.status_code == 409, again.text


def test_an_edit_replaces_the_input_after_checking_it(gated: Gated) -> None:
    run = start(gated, "pay 100")
    wrong = decide(gated, run["run_id"], {"decision": "edit", "payload": {"text": 5}})
    assert wrong.status_code == 422, wrong.text
    assert [e["path"] for e in wrong.json()["errors"]] == ["$.payload.text"]
    assert run_of(gated, run["run_id"])["status"] == "waiting_input"
    assert (
        decide(gated, run["run_id"], {"decision": "edit", "payload": {"text": "pay 10"}}).status_code == 200
    )
    wait_until(lambda: run_of(gated, run["run_id"])["status"] == "succeeded", what="the edited run")
    assert run_of(gated, run["run_id"])["output"]["text"] == "pay 10"


def test_a_rejected_call_fails_without_reaching_a_worker(gated: Gated) -> None:
    run = start(gated, "drop tables")
    assert decide(gated, run["run_id"], {"decision": "reject", "reason": "not today"}).status_code == 200
    done = run_of(gated, run["run_id"])
    assert done["status"] == "failed"
    assert done["error"] == {"type": "ApprovalRejected", "message": "not today"}
    assert kinds(gated, run["run_id"]) == ["interrupt", "input", "run.failed"]
    audit = call(gated, "GET", "/v1/audit", key="admin", params={"action": "run.reject"})
    assert audit.status_code == 200, audit.text
    wait_until(
        lambda: any(
            r["target"] == run["run_id"]
            for r in call(gated, "GET", "/v1/audit", key="admin", params={"action": "run.reject"}).json()[
                "records"
            ]
        ),
        what="the rejection in the audit log",
    )


def test_an_ungated_endpoint_runs_at_once(gated: Gated) -> None:
    response = call(gated, "POST", "/v1/tools/maybe", json={"value": 3})
    assert response.status_code == 200, response.text
    assert response.json() == {"output": 3}


async def test_an_mcp_tool_call_waits_for_the_decision_instead_of_asking_the_caller(gated: Gated) -> None:
    headers = {"X-API-Key": gated.keys["caller"]}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{gated.gateway.url}/mcp", http_client=http)
        async with Client(transport, mode="legacy", read_timeout_seconds=60) as mcp:
            result: Any = None

            async def call_add() -> None:
                nonlocal result
                result = await mcp.call_tool("add", {"a": 2, "b": 3})

            async with anyio.create_task_group() as group:
                group.start_soon(call_add)
                waiting: list[dict[str, Any]] = []
                with anyio.fail_after(30):
                    while not waiting:
                        await anyio.sleep(0.1)
                        waiting = call(
                            gated, "GET", "/v1/runs", params={"status": "waiting_input", "endpoint": "add"}
                        ).json()["runs"]
                assert waiting[0]["protocol"] == "mcp"
                assert decide(gated, waiting[0]["run_id"], {"decision": "approve"}).status_code == 200
    assert result is not None and not result.is_error, result
    assert result.structured_content == {"result": 5}


def test_an_endpoint_marked_require_approval_in_the_sdk_is_held_without_any_setting(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cluster = Cluster(Path(tmp_path_factory.mktemp("flag")))
    try:
        gateway = cluster.start_gateway()  # no approval_required: the worker's flag alone gates the tool
        cluster.start_worker("tests.workers.gated_worker:app")
        started = httpx.post(
            f"{gateway.url}/v1/agents/transfer/runs", json={"account": "x", "amount": 1}, timeout=10
        )
        assert started.status_code == 404  # a tool, not an agent
        endpoints = httpx.get(f"{gateway.url}/v1/endpoints", timeout=10).json()["endpoints"]
        assert next(e for e in endpoints if e["name"] == "transfer")["require_approval"] is True

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as http:
                return await http.post(f"{gateway.url}/v1/tools/transfer", json={"account": "x", "amount": 9})

        async def scenario() -> httpx.Response:
            async with anyio.create_task_group() as group:
                answer: list[httpx.Response] = []

                async def calling() -> None:
                    answer.append(await call())

                group.start_soon(calling)
                async with httpx.AsyncClient(timeout=10) as http:
                    waiting: list[dict[str, Any]] = []
                    with anyio.fail_after(20):
                        while not waiting:
                            await anyio.sleep(0.1)
                            listed = await http.get(
                                f"{gateway.url}/v1/runs",
                                params={"status": "waiting_input", "endpoint": "transfer"},
                            )
                            waiting = listed.json()["runs"]
                    edited = {"decision": "edit", "payload": {"account": "x", "amount": 5}}
                    decided = await http.post(
                        f"{gateway.url}/v1/runs/{waiting[0]['run_id']}/resume", json={"answer": edited}
                    )
                    assert decided.status_code == 200, decided.text
            return answer[0]

        response = anyio.run(scenario)
        assert response.status_code == 200, response.text
        assert response.json() == {"output": {"account": "x", "amount": 5}}
    finally:
        cluster.close()
