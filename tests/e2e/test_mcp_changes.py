"""MCP changes and the tasks extension's gates, with the official client against real processes.

Resource subscriptions (``resources/subscribe`` in 2025-11-25, ``subscriptions/listen`` in 2026-07-28) fed
by ``app.resource_changed`` through the worker protocol's ``ResourceChanged``; a rogue worker announcing a
URI it does not serve; tasks methods without the extension (``-32021``); the ``Mcp-Name`` routing header
of tasks methods (``-32020``); tools that require a task (``taskSupport: "required"``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import grpc
import grpc.aio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from fastagentic.v1 import worker_pb2 as pb
from fastagentic.v1 import worker_pb2_grpc as pb_grpc
from tests.conftest import Cluster, Gateway
from tests.e2e.mcp_support import (
    HEADERS,
    LEGACY_INITIALIZE,
    MODERN,
    TASKS,
    TasksExtension,
    call_as_task,
    client,
    eventually,
    get_task,
    legacy_session,
    modern_headers,
    sse_messages,
)

pytestmark = [
    pytest.mark.e2e,
    # resources/subscribe is a 2025-11-25 method: the client warns that 2026-07-28 removed it.
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

WORKER = "tests.workers.mcp_changes_worker:app"


@pytest.fixture(scope="module")
def changes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("changes")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(WORKER)
        yield gateway
    finally:
        cluster.close()


def recorder() -> tuple[list[tuple[str, str | None]], Any]:
    """A message handler recording (method, params.uri) of every notification the client receives."""
    heard: list[tuple[str, str | None]] = []

    async def on_message(message: Any) -> None:
        method = getattr(message, "method", None)
        if isinstance(method, str):
            heard.append((method, getattr(getattr(message, "params", None), "uri", None)))

    return heard, on_message


UPDATED = "notifications/resources/updated"


# ---------------------------------------------------------------- resources/subscribe (2025-11-25)


def test_legacy_server_declares_resource_subscriptions(changes: Gateway) -> None:
    with changes.client() as http:
        response = http.post("/mcp", json=LEGACY_INITIALIZE, headers=HEADERS)
    result = next(message for _, message in sse_messages(response.text.splitlines()) if message)["result"]
    assert result["capabilities"]["resources"] == {"subscribe": True, "listChanged": True}


async def test_legacy_session_hears_updates_of_the_resources_it_subscribed_to(changes: Gateway) -> None:
    heard, on_message = recorder()
    async with client(changes, "legacy", message_handler=on_message) as mcp:
        await anyio.sleep(0.5)  # the GET stream opens after initialization
        assert await mcp.subscribe_resource("memo://alpha") is not None
        await mcp.call_tool("write", {"name": "alpha", "text": "one"})  # sync tool: from a worker thread
        await eventually(lambda: (UPDATED, "memo://alpha") in heard, "the update of memo://alpha")
        await mcp.call_tool("append", {"name": "alpha", "text": "+two"})  # async tool: from the loop
        await eventually(lambda: heard.count((UPDATED, "memo://alpha")) == 2, "the second update")
        await mcp.call_tool("write", {"name": "beta", "text": "other"})
        # Unsubscribed from alpha, subscribed to the index: a new memo changes both, only the index is heard.
        await mcp.unsubscribe_resource("memo://alpha")
        await mcp.subscribe_resource("memo://index")
        await mcp.call_tool("write", {"name": "alpha", "text": "three"})
        await mcp.call_tool("write", {"name": "gamma", "text": "new"})
        await eventually(lambda: (UPDATED, "memo://index") in heard, "the update of the index")
        contents = await mcp.read_resource("memo://alpha")
    updates = [uri for method, uri in heard if method == UPDATED]
    assert updates == ["memo://alpha", "memo://alpha", "memo://index"]  # never beta, not alpha after leaving
    assert isinstance(contents.contents[0], types.TextResourceContents)
    assert contents.contents[0].text == "three"


async def test_legacy_subscribe_to_a_uri_no_resource_serves_is_refused(changes: Gateway) -> None:
    async with client(changes, "legacy") as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.subscribe_resource("memo://a/b")  # a template variable is one path segment
        await mcp.unsubscribe_resource("memo://never-subscribed")  # idempotent
    assert caught.value.error.code == -32002
    assert caught.value.error.data == {"uri": "memo://a/b"}


def test_2026_resources_subscribe_does_not_exist(changes: Gateway) -> None:
    body = _modern("resources/subscribe", {"uri": "memo://alpha"})
    with changes.client() as http:
        response = http.post("/mcp", json=body, headers=modern_headers("resources/subscribe"))
    assert response.json()["error"]["code"] == types.METHOD_NOT_FOUND
    assert "subscriptions/listen" in response.json()["error"]["message"]


# ---------------------------------------------------------------- subscriptions/listen (2026-07-28)


async def test_2026_listen_stream_hears_updates_of_the_resources_it_names(changes: Gateway) -> None:
    wanted = ["memo://delta", "memo://nested/x", "elsewhere://delta"]
    async with client(changes, MODERN) as mcp, mcp.listen(resource_subscriptions=wanted) as subscription:
        # Only URIs of resources (the caller may read) are honored.
        assert subscription.honored.resource_subscriptions == ["memo://delta"]
        await mcp.call_tool("write", {"name": "epsilon", "text": "not watched"})
        await mcp.call_tool("write", {"name": "delta", "text": "watched"})
        with anyio.fail_after(20):
            event = await anext(aiter(subscription))
    assert event == ResourceUpdated(uri="memo://delta")


# ---------------------------------------------------------------- a rogue worker


def _rogue_hello(worker_id: str, **spec: Any) -> pb.WorkerMessage:
    defaults: dict[str, Any] = {
        "name": "rogue_doc",
        "kind": pb.ENDPOINT_KIND_RESOURCE,
        "input_schema": b'{"type":"object","properties":{"id":{"type":"string"}}}',
        "output_schema": b"{}",
        "uri_template": "rogue://{id}",
    }
    endpoint = pb.EndpointSpec(**{**defaults, **spec})
    hello = pb.Hello(worker_id=worker_id, protocol_version=1, app_name="rogue", endpoints=[endpoint], slots=1)
    return pb.WorkerMessage(hello=hello)


class _Rogue:
    """One raw Connect stream: what it sends is up to the test."""

    def __init__(self, channel: grpc.aio.Channel, hello: pb.WorkerMessage) -> None:
        self.queue: asyncio.Queue[pb.WorkerMessage] = asyncio.Queue()
        self.queue.put_nowait(hello)

        async def outgoing():  # type: ignore[no-untyped-def]
            while True:
                yield pb.WorkerFrame(messages=[await self.queue.get()])

        self.call = pb_grpc.WorkerGatewayStub(channel).Connect(outgoing())

    async def read(self) -> pb.GatewayMessage:
        frame = await asyncio.wait_for(self.call.read(), 10)
        assert frame is not grpc.aio.EOF, "the gateway closed the stream"
        return frame.messages[0]

    def changed(self, uri: str) -> None:
        self.queue.put_nowait(pb.WorkerMessage(resource_changed=pb.ResourceChanged(uri=uri)))


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("memo://alpha", "not a URI of a resource this worker serves"),  # another worker's resource
        ("rogue://a/b", "not a URI of a resource this worker serves"),
        ("", "is not a URI"),
        ("rogue://\x00", "is not a URI"),
        ("rogue://" + "x" * 3000, "is not a URI"),
    ],
)
async def test_worker_announcing_a_uri_it_does_not_serve_is_disconnected(
    changes: Gateway, uri: str, reason: str
) -> None:
    async with grpc.aio.insecure_channel(changes.grpc_address) as channel:
        rogue = _Rogue(channel, _rogue_hello(f"rogue-{len(uri)}-{reason[:3]}"))
        assert (await rogue.read()).HasField("welcome")
        rogue.changed(uri)
        refused = await rogue.read()
    assert refused.reject.code == "protocol_violation"
    assert reason in refused.reject.message
    assert len(refused.reject.message) < 300  # a long URI is not echoed whole


async def test_a_raw_worker_announcing_its_own_resource_reaches_listeners(changes: Gateway) -> None:
    async with grpc.aio.insecure_channel(changes.grpc_address) as channel:
        rogue = _Rogue(channel, _rogue_hello("raw-announcer"))
        assert (await rogue.read()).HasField("welcome")
        async with client(changes, MODERN) as mcp, mcp.listen(resource_subscriptions=["rogue://7"]) as stream:
            assert stream.honored.resource_subscriptions == ["rogue://7"]
            rogue.changed("rogue://8")
            rogue.changed("rogue://7")
            with anyio.fail_after(20):
                event = await anext(aiter(stream))
    assert event == ResourceUpdated(uri="rogue://7")


async def test_task_required_on_what_cannot_run_as_a_task_is_refused_at_registration(
    changes: Gateway,
) -> None:
    async with grpc.aio.insecure_channel(changes.grpc_address) as channel:
        rogue = _Rogue(channel, _rogue_hello("rogue-required", task_required=True))
        refused = await rogue.read()
    assert refused.reject.code == "invalid_registration"
    assert "only agents and durable tools run as tasks" in refused.reject.message


# ---------------------------------------------------------------- tasks methods without the extension


def _modern(
    method: str, params: dict[str, Any], *, tasks: bool = False, request_id: int = 1
) -> dict[str, Any]:
    capabilities: dict[str, Any] = {"extensions": {TASKS: {}}} if tasks else {}
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": meta}}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tasks/get", {"taskId": "run_" + "0" * 32}),
        ("tasks/update", {"taskId": "run_" + "0" * 32, "inputResponses": {}}),
        ("tasks/cancel", {"taskId": "run_" + "0" * 32}),
    ],
)
def test_2026_tasks_methods_without_the_extension_answer_missing_capability(
    changes: Gateway, method: str, params: dict[str, Any]
) -> None:
    with changes.client() as http:
        response = http.post(
            "/mcp", json=_modern(method, params), headers=modern_headers(method, params["taskId"])
        )
        declared = http.post(
            "/mcp", json=_modern(method, params, tasks=True), headers=modern_headers(method, params["taskId"])
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert error["data"] == {"requiredCapabilities": {"extensions": {TASKS: {}}}}
    # Declared, the same request reaches the method (an unknown task, or an acknowledgement).
    assert declared.json().get("error", {}).get("code") != types.MISSING_REQUIRED_CLIENT_CAPABILITY


@pytest.mark.parametrize("method", ["tasks/list", "tasks/result"])
def test_2026_tasks_methods_the_extension_removed_stay_not_found(changes: Gateway, method: str) -> None:
    with changes.client() as http:
        response = http.post("/mcp", json=_modern(method, {"taskId": "x"}), headers=modern_headers(method))
    assert response.json()["error"]["code"] == types.METHOD_NOT_FOUND


# ---------------------------------------------------------------- Mcp-Name on tasks methods


async def _a_task(gateway: Gateway) -> str:
    tasks = TasksExtension()
    async with client(gateway, MODERN, extensions=[tasks]) as mcp:
        result = await mcp.call_tool("crunch", {"n": 5})
        assert result.structured_content == {"result": 25}
        # The official client sends Mcp-Name (name_param) on tasks/get: it is accepted.
        assert (await get_task(mcp.session, tasks.created[0].task_id)).status == "completed"
    return tasks.created[0].task_id


@pytest.mark.parametrize("method", ["tasks/get", "tasks/update", "tasks/cancel"])
async def test_2026_tasks_method_whose_mcp_name_is_not_its_task_id_is_refused(
    changes: Gateway, method: str
) -> None:
    task_id = await _a_task(changes)
    body = _modern(method, {"taskId": task_id}, tasks=True, request_id=41)
    with changes.client() as http:
        wrong = http.post("/mcp", json=body, headers=modern_headers(method, "run_" + "f" * 32))
        missing = http.post("/mcp", json=body, headers=modern_headers(method))
        right = http.post("/mcp", json=body, headers=modern_headers(method, task_id))
    for refused in (wrong, missing):
        assert refused.status_code == 400
        assert refused.json()["id"] == 41
        assert refused.json()["error"]["code"] == types.HEADER_MISMATCH
        assert "Mcp-Name" in refused.json()["error"]["message"]
    assert right.status_code == 200 and "result" in right.json()


# ---------------------------------------------------------------- taskSupport: "required"


async def test_tools_requiring_a_task_say_so_in_tools_list(changes: Gateway) -> None:
    async with client(changes, "legacy") as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    support = {name: tool.execution.task_support if tool.execution else None for name, tool in tools.items()}
    assert support == {
        "write": "forbidden",
        "append": "forbidden",
        "crunch": "required",
        "archive": "required",
    }


async def test_legacy_call_of_a_tool_requiring_a_task_without_one_is_method_not_found(
    changes: Gateway,
) -> None:
    async with client(changes, "legacy") as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("crunch", {"n": 2})
    assert caught.value.error.code == types.METHOD_NOT_FOUND
    assert "runs only as a task" in caught.value.error.message


async def test_legacy_call_of_a_tool_requiring_a_task_as_a_task_runs(changes: Gateway) -> None:
    async with legacy_session(changes) as (session, dispatcher):
        created = await call_as_task(dispatcher, "archive", {"item": "letters"})
        request = types.GetTaskPayloadRequest(
            params=types.GetTaskPayloadRequestParams(task_id=created["task"]["taskId"])
        )
        result = await session.send_request(request, types.CallToolResult)
    assert result.structured_content == {"result": "archived letters"}


async def test_2026_call_of_a_tool_requiring_a_task_without_the_extension_is_refused(
    changes: Gateway,
) -> None:
    async with client(changes, MODERN) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("crunch", {"n": 3})
    assert caught.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert caught.value.error.data == {"requiredCapabilities": {"extensions": {TASKS: {}}}}


async def test_2026_call_of_a_tool_requiring_a_task_with_the_extension_is_a_task(changes: Gateway) -> None:
    tasks = TasksExtension()
    async with client(changes, MODERN, extensions=[tasks]) as mcp:
        result = await mcp.call_tool("archive", {"item": "maps"})
    assert result.structured_content == {"result": "archived maps"}
    assert len(tasks.created) == 1


def test_rest_callers_are_not_held_to_task_required(changes: Gateway) -> None:
    with changes.client() as http:
        response = http.post("/v1/tools/archive", json={"item": "deeds"})
    assert response.json()["output"] == "archived deeds"
