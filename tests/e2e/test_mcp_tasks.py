"""MCP tasks end to end: 2025-11-25 tasks and the 2026-07-28 tasks extension, backed by durable runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.client.extension import NotificationBinding
from mcp.shared.exceptions import MCPError

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.mcp_support import (
    MODERN,
    TASKS,
    WORKER,
    CancelTask,
    CreatedTask,
    DetailedTask,
    TaskIdParams,
    TasksExtension,
    call_as_task,
    client,
    eventually,
    get_task,
    legacy_session,
    mcp_url,
    modern_headers,
    sse_messages,
)

pytestmark = pytest.mark.e2e


async def get(session: Any, task_id: str) -> types.GetTaskResult:
    return await session.send_request(
        types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id)), types.GetTaskResult
    )


async def result_of(session: Any, task_id: str) -> types.CallToolResult:
    request = types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id))
    return await session.send_request(request, types.CallToolResult)


async def cancel(session: Any, task_id: str) -> types.CancelTaskResult:
    request = types.CancelTaskRequest(params=types.CancelTaskRequestParams(task_id=task_id))
    return await session.send_request(request, types.CancelTaskResult)


# ---------------------------------------------------------------- 2025-11-25


async def test_task_augmented_call_answers_a_working_task_at_once(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, dispatcher):
        created = await call_as_task(dispatcher, "research", {"topic": "owls", "steps": 20, "delay": 0.1})
        task = created["task"]
        assert task["status"] == "working"
        assert task["taskId"].startswith("run_")
        assert task["pollInterval"] == 1000 and task["ttl"] == 60_000  # the ttl the client asked for
        assert task["createdAt"].endswith("Z")
        await cancel(session, task["taskId"])


async def test_task_is_polled_then_its_result_fetched(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, dispatcher):
        created = await call_as_task(dispatcher, "research", {"topic": "owls", "steps": 3, "delay": 0.2})
        task_id = created["task"]["taskId"]
        assert (await get(session, task_id)).status == "working"
        result = await result_of(session, task_id)  # blocks until the run ends
        assert (await get(session, task_id)).status == "completed"
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["notes"] == ["owls #1", "owls #2", "owls #3"]
    assert result.meta == {"io.modelcontextprotocol/related-task": {"taskId": task_id}}


async def test_failed_task_is_failed_and_its_result_is_the_error_result(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, dispatcher):
        task_id = (await call_as_task(dispatcher, "fragile", {"topic": "yetis"}))["task"]["taskId"]
        result = await result_of(session, task_id)
        task = await get(session, task_id)
    assert task.status == "failed"
    assert task.status_message == "RuntimeError: no sources on yetis"
    assert result.is_error
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text == "RuntimeError: no sources on yetis"


async def test_durable_tool_runs_as_a_task(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, dispatcher):
        task_id = (await call_as_task(dispatcher, "archive", {"item": "letters"}))["task"]["taskId"]
        result = await result_of(session, task_id)
    assert result.structured_content == {"result": "archived letters"}


async def test_tool_without_task_support_refuses_to_run_as_a_task(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (_, dispatcher):
        with pytest.raises(MCPError) as caught:
            await call_as_task(dispatcher, "add", {"a": 1, "b": 2})
    assert caught.value.error.code == types.METHOD_NOT_FOUND


async def test_task_with_bad_arguments_is_refused_naming_the_field(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (_, dispatcher):
        with pytest.raises(MCPError) as caught:
            await call_as_task(dispatcher, "research", {"topic": 7})
    assert caught.value.error.code == types.INVALID_PARAMS
    assert caught.value.error.data["errors"][0]["path"] == "$.topic"


async def test_tasks_list_holds_the_tasks_newest_first(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, dispatcher):
        first = (await call_as_task(dispatcher, "archive", {"item": "a"}))["task"]["taskId"]
        second = (await call_as_task(dispatcher, "archive", {"item": "b"}))["task"]["taskId"]
        await result_of(session, second)
        listed = await session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        await session.call_tool("add", {"a": 1, "b": 1})  # an ephemeral tool call is a run, not a task
        listed_again = await session.send_request(types.ListTasksRequest(), types.ListTasksResult)
    with served_mcp.client() as http:
        plain = http.get("/v1/runs", params={"endpoint": "add", "limit": 1}).json()["runs"][0]["run_id"]
    ids = [task.task_id for task in listed.tasks]
    assert ids.index(second) < ids.index(first)
    assert plain not in {task.task_id for task in listed_again.tasks}


async def test_cancelling_a_task_cancels_the_run_on_the_worker(served_mcp: Gateway, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    async with legacy_session(served_mcp) as (session, dispatcher):
        created = await call_as_task(dispatcher, "dawdle", {"seconds": 60, "marker": str(marker)})
        task_id = created["task"]["taskId"]
        await anyio.to_thread.run_sync(lambda: wait_until(marker.exists, what="the agent to start"))
        cancelled = await cancel(session, task_id)
        assert cancelled.status == "cancelled"
        await anyio.to_thread.run_sync(
            lambda: wait_until(
                lambda: marker.read_text().startswith("cancelled"), what="the worker to see it"
            )
        )
        assert (await get(session, task_id)).status == "cancelled"
        with pytest.raises(MCPError) as again:
            await cancel(session, task_id)
        with pytest.raises(MCPError) as fetched:
            await result_of(session, task_id)
    assert again.value.error.code == types.INVALID_PARAMS  # a task that ended cannot be cancelled
    assert fetched.value.error.message == "Task cancelled"
    assert marker.read_text() == "cancelled ctx.cancelled=True"


async def test_unknown_task_is_invalid_params(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, _):
        with pytest.raises(MCPError) as caught:
            await get(session, "run_" + "f" * 32)
    assert caught.value.error.code == types.INVALID_PARAMS


async def test_status_notification_announces_how_the_task_ended(served_mcp: Gateway) -> None:
    statuses: list[types.TaskStatusNotificationParams] = []

    async def heard(params: types.TaskStatusNotificationParams) -> None:
        statuses.append(params)

    binding = NotificationBinding(
        method="notifications/tasks/status", params_type=types.TaskStatusNotificationParams, handler=heard
    )
    async with legacy_session(served_mcp, notification_bindings=[binding]) as (_, dispatcher):
        await anyio.sleep(0.3)  # the GET stream, which carries the notification, opens after initialization
        task_id = (await call_as_task(dispatcher, "research", {"topic": "moles", "steps": 2}))["task"][
            "taskId"
        ]
        await eventually(lambda: statuses, "the task status notification")
    assert (statuses[0].task_id, statuses[0].status) == (task_id, "completed")


async def test_task_progress_arrives_for_the_token_of_the_creating_call(served_mcp: Gateway) -> None:
    progress: list[tuple[float, Any]] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ProgressNotification) and message.params.progress_token == "tp":
            progress.append(
                (
                    message.params.progress,
                    (message.params.meta or {}).get("io.modelcontextprotocol/related-task"),
                )
            )

    async with legacy_session(served_mcp, message_handler=on_message) as (session, dispatcher):
        await anyio.sleep(
            0.3
        )  # progress after the call answered rides the GET stream, opened after initialization
        params = {
            "name": "research",
            "arguments": {"topic": "voles", "steps": 2},
            "task": {},
            "_meta": {"progressToken": "tp"},
        }
        task_id = (await dispatcher.send_raw_request("tools/call", params, None))["task"]["taskId"]
        await result_of(session, task_id)
        await eventually(lambda: len(progress) >= 2, "two progress notifications")
    assert progress == [(1.0, {"taskId": task_id}), (2.0, {"taskId": task_id})]


async def test_task_outlives_the_session_that_made_it(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (_, dispatcher):
        task_id = (await call_as_task(dispatcher, "research", {"topic": "newts", "steps": 3}))["task"][
            "taskId"
        ]
    async with legacy_session(served_mcp) as (session, _):
        result = await result_of(session, task_id)
    assert result.structured_content is not None and result.structured_content["topic"] == "newts"


async def test_task_survives_a_gateway_restart(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(shutdown_grace="1")
    cluster.start_worker(WORKER)
    async with legacy_session(gateway) as (_, dispatcher):
        arguments = {"topic": "tardigrades", "steps": 15, "delay": 0.2}
        task_id = (await call_as_task(dispatcher, "research", arguments))["task"]["taskId"]
    await anyio.to_thread.run_sync(gateway.stop)
    await anyio.to_thread.run_sync(lambda: cluster.restart_gateway(gateway))
    async with legacy_session(gateway) as (session, _):
        assert (await get(session, task_id)).task_id == task_id
        result = await result_of(session, task_id)
    assert result.structured_content is not None
    assert result.structured_content["notes"][-1] == "tardigrades #15"


async def test_task_is_a_run_seen_over_rest_too(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, dispatcher):
        task_id = (await call_as_task(dispatcher, "archive", {"item": "z"}))["task"]["taskId"]
        await result_of(session, task_id)
    with served_mcp.client() as http:
        run = http.get(f"/v1/runs/{task_id}").json()
    assert (run["endpoint"], run["status"], run["durable"]) == ("archive", "succeeded", True)


# ---------------------------------------------------------------- 2026-07-28 tasks extension


async def test_2026_client_with_the_extension_gets_a_task_it_polls_to_the_result(served_mcp: Gateway) -> None:
    tasks = TasksExtension()
    async with client(served_mcp, MODERN, extensions=[tasks]) as mcp:
        result = await mcp.call_tool("research", {"topic": "eels", "steps": 3, "delay": 0.1})
    assert len(tasks.created) == 1  # answered with a task, not the result
    assert tasks.created[0].status == "working"
    assert tasks.seen[0] == "working" and tasks.seen[-1] == "completed"
    assert result.structured_content is not None
    assert result.structured_content["notes"] == ["eels #1", "eels #2", "eels #3"]


async def test_2026_tool_without_task_support_answers_directly_even_with_the_extension(
    served_mcp: Gateway,
) -> None:
    tasks = TasksExtension()
    async with client(served_mcp, MODERN, extensions=[tasks]) as mcp:
        result = await mcp.call_tool("add", {"a": 1, "b": 2})
    assert tasks.created == []
    assert result.structured_content == {"result": 3}


async def test_2026_failed_agent_task_completes_with_an_error_result(served_mcp: Gateway) -> None:
    tasks = TasksExtension()
    async with client(served_mcp, MODERN, extensions=[tasks]) as mcp:
        result = await mcp.call_tool("fragile", {"topic": "krakens"})
    assert tasks.seen[-1] == "completed"  # the extension keeps "failed" for JSON-RPC errors
    assert result.is_error
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text == "RuntimeError: no sources on krakens"


async def test_2026_tasks_cancel_acknowledges_and_cancels_the_run(
    served_mcp: Gateway, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    async with client(served_mcp, MODERN, extensions=[TasksExtension()]) as mcp:
        created = await mcp.session.call_tool(
            "dawdle", {"seconds": 60, "marker": str(marker)}, allow_claimed=True
        )
        assert isinstance(created, CreatedTask)
        await anyio.to_thread.run_sync(lambda: wait_until(marker.exists, what="the agent to start"))
        ack = await mcp.session.send_request(
            CancelTask(params=TaskIdParams(task_id=created.task_id)), types.Result
        )
        await anyio.to_thread.run_sync(
            lambda: wait_until(
                lambda: marker.read_text().startswith("cancelled"), what="the worker to see it"
            )
        )
        task = await get_task(mcp.session, created.task_id)
        unknown = await mcp.session.send_request(
            CancelTask(params=TaskIdParams(task_id="run_nope")), types.Result
        )
    assert ack.meta is not None  # an empty result: only the server's _meta stamp
    assert unknown.meta is not None  # acknowledged whatever the task, as the extension requires
    assert task.status == "cancelled"
    assert marker.read_text() == "cancelled ctx.cancelled=True"


async def test_2026_tasks_result_and_list_do_not_exist(served_mcp: Gateway) -> None:
    async with client(served_mcp, MODERN) as mcp:
        with pytest.raises(MCPError) as listing:
            await mcp.session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        with pytest.raises(MCPError) as fetching:
            await result_of(mcp.session, "run_" + "0" * 32)
    assert listing.value.error.code == types.METHOD_NOT_FOUND
    assert fetching.value.error.code == types.METHOD_NOT_FOUND


async def test_2026_task_made_by_one_client_is_read_by_another(served_mcp: Gateway) -> None:
    async with client(served_mcp, MODERN, extensions=[TasksExtension()]) as mcp:
        created = await mcp.session.call_tool("research", {"topic": "crabs", "steps": 1}, allow_claimed=True)
    assert isinstance(created, CreatedTask)
    async with client(served_mcp, MODERN, extensions=[TasksExtension()]) as other:  # tasks/get needs it

        async def completed() -> DetailedTask | None:
            task = await get_task(other.session, created.task_id)
            return task if task.status == "completed" else None

        task = await eventually(completed, "the task to complete")
    assert task.result is not None
    assert task.result["structuredContent"]["topic"] == "crabs"


# ---------------------------------------------------------------- TTLs


async def test_a_task_past_its_requested_ttl_has_expired(served_mcp: Gateway) -> None:
    async with legacy_session(served_mcp) as (session, dispatcher):
        params = {"name": "archive", "arguments": {"item": "brief"}, "task": {"ttl": 700}}
        task = (await dispatcher.send_raw_request("tools/call", params, None))["task"]
        assert task["ttl"] == 700
        assert (await get(session, task["taskId"])).ttl == 700
        await anyio.sleep(1.0)
        with pytest.raises(MCPError) as caught:
            await get(session, task["taskId"])
        listed = await session.send_request(types.ListTasksRequest(), types.ListTasksResult)
    assert caught.value.error.code == types.INVALID_PARAMS
    assert caught.value.error.message == "Failed to retrieve task: Task has expired"
    assert task["taskId"] not in {t.task_id for t in listed.tasks}
    with served_mcp.client() as http:  # the run itself is still there
        assert http.get(f"/v1/runs/{task['taskId']}").json()["status"] == "succeeded"


async def test_the_longest_ttl_setting_caps_what_clients_ask_and_applies_to_both_revisions(
    cluster: Cluster,
) -> None:
    gateway = cluster.start_gateway(mcp_task_ttl="30")
    cluster.start_worker(WORKER)
    async with legacy_session(gateway) as (_, dispatcher):
        asked_more = (await call_as_task(dispatcher, "archive", {"item": "a"}))["task"]  # asks 60 s
        params = {"name": "archive", "arguments": {"item": "b"}, "task": {}}
        asked_nothing = (await dispatcher.send_raw_request("tools/call", params, None))["task"]
    tasks = TasksExtension()
    async with client(gateway, MODERN, extensions=[tasks]) as mcp:
        await mcp.call_tool("research", {"topic": "ttl", "steps": 1})
        modern = await get_task(mcp.session, tasks.created[0].task_id)
    assert asked_more["ttl"] == 30_000 and asked_nothing["ttl"] == 30_000
    assert tasks.created[0].ttl_ms == 30_000 and modern.ttl_ms == 30_000
    assert tasks.created[0].poll_interval_ms == 1000


# ---------------------------------------------------------------- 2026-07-28 task status notifications


def _listen_request(notifications: dict[str, Any], *, extension: bool = True) -> dict[str, Any]:
    capabilities: dict[str, Any] = {"extensions": {TASKS: {}}} if extension else {}
    envelope = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    }
    params = {"notifications": notifications, "_meta": envelope}
    return {"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen", "params": params}


async def _listen(
    gateway: Gateway, body: dict[str, Any], until: str, seconds: float = 20
) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a listen stream up to the first one whose JSON contains ``until``."""
    lines: list[str] = []
    async with httpx.AsyncClient(timeout=seconds) as http:
        headers = modern_headers("subscriptions/listen")
        async with http.stream("POST", mcp_url(gateway), json=body, headers=headers) as response:
            if response.headers.get("content-type", "").startswith("application/json"):
                return [json.loads(await response.aread())]
            with anyio.fail_after(seconds):
                async for line in response.aiter_lines():
                    lines.append(line)
                    if line.startswith("data:") and until in line:
                        break
    return [message for _, message in sse_messages(lines) if message is not None]


async def test_2026_listen_with_task_ids_pushes_the_task_when_it_ends(served_mcp: Gateway) -> None:
    async with client(served_mcp, MODERN, extensions=[TasksExtension()]) as mcp:
        created = await mcp.session.call_tool(
            "research", {"topic": "herons", "steps": 4, "delay": 0.2}, allow_claimed=True
        )
    assert isinstance(created, CreatedTask)
    body = _listen_request({"taskIds": [created.task_id, "run_" + "0" * 32], "toolsListChanged": True})
    messages = await _listen(served_mcp, body, '"notifications/tasks"')
    ack, pushed = messages[0], messages[-1]
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"] == {"toolsListChanged": True, "taskIds": [created.task_id]}
    assert pushed["method"] == "notifications/tasks"
    task = pushed["params"]
    assert (task["taskId"], task["status"]) == (created.task_id, "completed")
    assert task["result"]["structuredContent"]["notes"][-1] == "herons #4"
    assert task["ttlMs"] is None and task["pollIntervalMs"] == 1000
    assert task["_meta"]["io.modelcontextprotocol/subscriptionId"] == 9


async def test_2026_listen_for_a_task_that_already_ended_pushes_it_at_once(served_mcp: Gateway) -> None:
    tasks = TasksExtension()
    async with client(served_mcp, MODERN, extensions=[tasks]) as mcp:
        await mcp.call_tool("fragile", {"topic": "wyverns"})
    messages = await _listen(served_mcp, _listen_request({"taskIds": [tasks.created[0].task_id]}), "wyverns")
    task = messages[-1]["params"]
    assert task["status"] == "completed" and task["result"]["isError"] is True


async def test_2026_listen_for_tasks_without_the_extension_is_refused(served_mcp: Gateway) -> None:
    body = _listen_request({"taskIds": ["run_" + "0" * 32]}, extension=False)
    messages = await _listen(served_mcp, body, '"error"')
    error = messages[-1]["error"]
    assert error["code"] == -32021
    assert error["data"]["requiredCapabilities"] == {"extensions": {TASKS: {}}}
