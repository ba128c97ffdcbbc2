"""``ctx.roots`` asks the calling client for its roots (MCP ``roots/list``), with the official client in both
revisions against real gateway and worker processes (``tests/workers/roots_worker.py``): on the call's
stream in 2025-11-25, as an ``inputRequests`` entry in 2026-07-28 (``-32021`` for a client without the
capability), in ``tasks/get`` / ``tasks/update`` of the tasks extension; over REST it fails at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.mcp_support import LEGACY, MODERN, CreatedTask, TasksExtension, client, eventually, get_task
from tests.e2e.test_mcp_interrupts import UpdateTask, UpdateTaskParams, _task_if, get_waiting

pytestmark = pytest.mark.e2e

WORK: list[dict[str, Any]] = [
    {"uri": "file:///work/project", "name": "project"},
    {"uri": "file:///work/notes", "name": None},
]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("roots")))
    try:
        gateway = cluster.start_gateway()
        worker = Worker(gateway, "tests.workers.roots_worker:app", cluster.logs, "roots")
        worker.start()
        cluster.processes.append(worker)
        wait_until(lambda: "(roots) connected" in gateway.output(), what="the roots worker")
        yield gateway
    finally:
        cluster.close()


def listed(entries: list[dict[str, Any]]) -> types.ListRootsResult:
    return types.ListRootsResult(
        roots=[
            types.Root.model_validate({key: value for key, value in entry.items() if value is not None})
            for entry in entries
        ]
    )


class Roots:
    """A ``list_roots_callback``: answers with ``reply`` and counts how often it was asked."""

    def __init__(self, reply: types.ListRootsResult | types.ErrorData) -> None:
        self.reply = reply
        self.asked = 0

    async def __call__(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        self.asked += 1
        return self.reply


def run_of(gateway: Gateway, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def last_run(gateway: Gateway, endpoint: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs", params={"endpoint": endpoint, "limit": 1}, timeout=10)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["runs"][0]
    return run


def logged(gateway: Gateway, run_id: str) -> list[tuple[str, Any]]:
    """The run's events as (kind, data)."""
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10)
    assert response.status_code == 200, response.text
    kinds, datas = [], []
    for line in response.text.splitlines():
        if line.startswith("event:"):
            kinds.append(line.split(":", 1)[1].strip())
        elif line.startswith("data:"):
            data = json.loads(line.split(":", 1)[1])
            datas.append(data.get("data", data) if isinstance(data, dict) else data)
    return list(zip(kinds, datas, strict=True))


# ---------------------------------------------------------------- 2025-11-25: roots/list on the call's stream


async def test_a_2025_client_declaring_roots_is_asked_and_the_agent_gets_them(roots: Gateway) -> None:
    callback = Roots(listed(WORK))
    async with client(roots, "legacy", list_roots_callback=callback) as mcp:
        assert mcp.protocol_version == LEGACY
        result = await mcp.call_tool("workspace", {})
    assert not result.is_error, result
    assert result.structured_content == {"protocol": "mcp", "roots": WORK}
    assert callback.asked == 1
    run = last_run(roots, "workspace")
    assert run["status"] == "succeeded"
    events = logged(roots, run["run_id"])
    kinds = [kind for kind, _ in events]
    at = kinds.index("interrupt")
    assert kinds[at + 1] == "input", kinds  # the question and its answer, in the log
    assert events[at][1]["request"] == {"roots": {}}
    assert events[at + 1][1]["answer"] == {
        "roots": [{"uri": "file:///work/project", "name": "project"}, {"uri": "file:///work/notes"}]
    }


async def test_a_2025_client_without_roots_makes_the_agent_go_on_without_them(roots: Gateway) -> None:
    async with client(roots, "legacy") as mcp:
        result = await mcp.call_tool("workspace", {})
    assert not result.is_error, result
    assert result.structured_content == {
        "protocol": "mcp",
        "unavailable": "the MCP client did not declare the roots capability",
    }


async def test_a_refusal_by_the_client_reaches_the_agent_with_its_reason(roots: Gateway) -> None:
    callback = Roots(types.ErrorData(code=-1, message="no roots for you"))
    async with client(roots, "legacy", list_roots_callback=callback) as mcp:
        result = await mcp.call_tool("workspace", {})
    assert callback.asked == 1
    assert result.structured_content == {
        "protocol": "mcp",
        "unavailable": "the MCP client refused roots/list: no roots for you",
    }


async def test_an_uncaught_roots_unavailable_fails_the_run_with_its_type(roots: Gateway) -> None:
    async with client(roots, "legacy") as mcp:
        result = await mcp.call_tool("strict_workspace", {})
    assert result.is_error, result
    run = last_run(roots, "strict_workspace")
    assert run["status"] == "failed"
    assert run["error"] == {
        "type": "RootsUnavailable",
        "message": "the MCP client did not declare the roots capability",
    }


# ---------------------------------------------------------------- 2026-07-28: an input request round


async def test_the_2026_input_required_result_asks_roots_list_and_takes_the_answer(roots: Gateway) -> None:
    async with client(roots, MODERN, list_roots_callback=Roots(listed(WORK))) as mcp:
        assert mcp.protocol_version == MODERN
        first = await mcp.session.call_tool("workspace", {}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult), first
        assert first.input_requests is not None and first.request_state is not None
        ((key, request),) = first.input_requests.items()
        assert key == "client_roots"
        assert isinstance(request, types.ListRootsRequest), request
        # An answer of the wrong kind (an elicitation result) is asked for again, not taken.
        again = await mcp.session.call_tool(
            "workspace",
            {},
            input_responses={key: types.ElicitResult(action="accept", content={"x": 1})},
            request_state=first.request_state,
            allow_input_required=True,
        )
        assert isinstance(again, types.InputRequiredResult), again
        assert again.input_requests is not None and list(again.input_requests) == [key]
        assert again.request_state is not None
        mine: list[dict[str, Any]] = [{"uri": "file:///srv/data", "name": "data"}]
        done = await mcp.session.call_tool(
            "workspace",
            {},
            input_responses={key: listed(mine)},
            request_state=again.request_state,
            allow_input_required=True,
        )
    assert isinstance(done, types.CallToolResult) and not done.is_error, done
    assert done.structured_content == {"protocol": "mcp", "roots": mine}


async def test_the_official_client_answers_the_2026_round_with_its_callback(roots: Gateway) -> None:
    callback = Roots(listed(WORK))
    async with client(roots, MODERN, list_roots_callback=callback) as mcp:
        result = await mcp.call_tool("workspace", {})
    assert not result.is_error, result
    assert result.structured_content == {"protocol": "mcp", "roots": WORK}
    assert callback.asked == 1


async def test_a_2026_request_without_roots_gets_missing_capability(roots: Gateway) -> None:
    async with client(roots, MODERN) as mcp:
        with pytest.raises(MCPError) as missing:
            await mcp.call_tool("workspace", {})
    assert missing.value.code == -32021
    assert missing.value.data == {"requiredCapabilities": {"roots": {}}}
    assert "asks the client's roots" in missing.value.message
    run_id = next(word.strip(".,:;'\"") for word in missing.value.message.split() if word.startswith("run_"))
    # Nobody else could answer: the run is not left waiting, the agent gets RootsUnavailable.
    wait_until(lambda: run_of(roots, run_id)["status"] == "succeeded", what="the run to go on")
    assert run_of(roots, run_id)["output"] == {
        "protocol": "mcp",
        "unavailable": "the MCP client did not declare the roots capability",
    }


async def test_a_2026_task_lists_roots_list_and_tasks_update_answers_it(roots: Gateway) -> None:
    async with client(
        roots, MODERN, list_roots_callback=Roots(listed(WORK)), extensions=[TasksExtension()]
    ) as mcp:
        created = await mcp.session.call_tool("durable_workspace", {}, allow_claimed=True)
        assert isinstance(created, CreatedTask), created
        task_id = created.task_id
        waiting = await eventually(
            lambda: _task_if(get_waiting(mcp.session, task_id), "input_required"), "the task to need input"
        )
        assert waiting.input_requests == {"client_roots": {"method": "roots/list", "params": {}}}

        async def update(response: Any) -> types.Result:
            params = UpdateTaskParams(task_id=task_id, input_responses={"client_roots": response})
            return await mcp.session.send_request(UpdateTask(params=params), types.Result)

        with pytest.raises(MCPError) as refused:
            await update({"action": "accept", "content": {}})
        assert refused.value.code == -32602 and "not a ListRootsResult" in refused.value.message
        await update({"roots": [{"uri": "file:///tasks", "name": "tasks"}]})
        done = await eventually(
            lambda: _task_if(get_task(mcp.session, task_id), "completed"), "the task to end"
        )
    assert done.result is not None
    assert done.result["structuredContent"] == {
        "protocol": "mcp",
        "roots": [{"uri": "file:///tasks", "name": "tasks"}],
    }


# ---------------------------------------------------------------- REST: nobody to ask


def test_over_rest_roots_fail_at_once_without_pausing_the_run(roots: Gateway) -> None:
    response = httpx.post(f"{roots.url}/v1/agents/workspace/invoke", json={}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == {
        "protocol": "rest",
        "unavailable": "the run was called over rest: only an MCP client that declares the roots "
        "capability can be asked for its roots",
    }
    kinds = [kind for kind, _ in logged(roots, body["run_id"])]
    assert "interrupt" not in kinds and "input" not in kinds, kinds


def test_over_rest_an_uncaught_roots_unavailable_fails_the_run(roots: Gateway) -> None:
    response = httpx.post(f"{roots.url}/v1/agents/strict_workspace/invoke", json={}, timeout=30)
    body = response.json()
    assert body["status"] == "failed", body
    assert body["error"]["type"] == "RootsUnavailable"
    assert "called over rest" in body["error"]["message"]
