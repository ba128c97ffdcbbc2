"""Shared pieces of the MCP end-to-end tests: clusters serving the MCP worker, official-client helpers."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import httpx
import mcp_types as types
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

from tests.conftest import Gateway

#: How the official client picks the revision: probe and fall back, the 2025-11-25 handshake, or 2026-07-28.
MODES = ["auto", "legacy", "2026-07-28"]
WORKER = "tests.workers.mcp_worker:app"
LATE_WORKER = "tests.workers.mcp_worker:late"
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
TASKS = "io.modelcontextprotocol/tasks"


async def eventually(condition: Callable[[], Any], what: str, seconds: float = 20.0) -> Any:
    """Poll ``condition`` (plain or async) until it is truthy; its value."""
    for _ in range(int(seconds / 0.05)):
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await anyio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def mcp_url(gateway: Gateway) -> str:
    return f"{gateway.url}/mcp"


def client(gateway: Gateway, mode: str = "auto", **options: Any) -> Client:
    return Client(mcp_url(gateway), mode=mode, read_timeout_seconds=60, **options)


@asynccontextmanager
async def legacy_session(
    gateway: Gateway, **options: Any
) -> AsyncIterator[tuple[ClientSession, JSONRPCDispatcher[Any]]]:
    """A 2025-11-25 session of the official client, with its dispatcher for the requests the client's
    typed API does not offer (a task-augmented ``tools/call`` answers a task, not a ``CallToolResult``)."""
    async with streamable_http_client(mcp_url(gateway)) as (read, write):
        dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(read, write)
        async with ClientSession(dispatcher=dispatcher, read_timeout_seconds=60, **options) as session:
            await session.initialize()
            yield session, dispatcher


async def call_as_task(
    dispatcher: JSONRPCDispatcher[Any], name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    return await dispatcher.send_raw_request(
        "tools/call", {"name": name, "arguments": arguments, "task": {"ttl": 60_000}}, None
    )


# ---------------------------------------------------------------- the 2026-07-28 tasks extension, client side


class CreatedTask(types.Result):
    """``CreateTaskResult`` of the tasks extension (``resultType: "task"``)."""

    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


class DetailedTask(types.Result):
    """A ``tasks/get`` answer of the tasks extension."""

    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class TaskIdParams(types.RequestParams):
    task_id: str


class GetTask(types.Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param = "taskId"  # SEP-2663: Mcp-Name carries the task id


class CancelTask(types.Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param = "taskId"


async def get_task(session: ClientSession, task_id: str) -> DetailedTask:
    return await session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), DetailedTask)


class TasksExtension(ClientExtension):
    """The client half of the tasks extension: a ``resultType: "task"`` answer is polled to its end."""

    identifier = TASKS

    def __init__(self) -> None:
        self.created: list[CreatedTask] = []
        self.seen: list[str] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=self._resolve)]

    async def _resolve(self, created: CreatedTask, ctx: ClaimContext) -> types.CallToolResult:
        self.created.append(created)
        while True:
            task = await get_task(ctx.session, created.task_id)
            self.seen.append(task.status)
            if task.status == "completed" and task.result is not None:
                return types.CallToolResult.model_validate(task.result, by_name=False)
            if task.status in ("failed", "cancelled"):
                message = task.status_message or task.status
                return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)
            await anyio.sleep(0.1)  # quicker than the advertised interval: tests wait on it


# ---------------------------------------------------------------- raw HTTP, for what a client library hides


HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def modern_request(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    envelope = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**(params or {}), "_meta": envelope},
    }


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    headers = {**HEADERS, "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


# A 2025-11-25 initialize request, as a client without the SDK sends it.
LEGACY_INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


def method_recorder() -> tuple[list[str], Callable[[Any], Awaitable[None]]]:
    """A client message handler that records the method of every notification or request it receives."""
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        method = getattr(message, "method", None)
        if isinstance(method, str):
            heard.append(method)

    return heard, on_message


def open_legacy_session(http: httpx.Client) -> str:
    """initialize + initialized over plain HTTP; the session id."""
    response = http.post("/mcp", json=LEGACY_INITIALIZE, headers=HEADERS)
    assert response.status_code == 200, response.text
    session_id = response.headers["mcp-session-id"]
    headers = session_headers(session_id)
    ack = http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    assert ack.status_code == 202, ack.text
    return session_id


def session_headers(session_id: str) -> dict[str, str]:
    return {**HEADERS, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": LEGACY}


def sse_messages(lines: list[str]) -> list[tuple[str | None, dict[str, Any] | None]]:
    """(event id, JSON-RPC message or None for a priming event) for each SSE event in ``lines``."""
    events: list[tuple[str | None, dict[str, Any] | None]] = []
    event_id: str | None = None
    data: list[str] = []
    for line in [*lines, ""]:
        if not line:
            if event_id is not None or data:
                payload = "\n".join(data).strip()
                events.append((event_id, json.loads(payload) if payload else None))
            event_id, data = None, []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return events
