"""Helpers of the A2A end-to-end tests: the official a2a-sdk client, bound to one gateway agent."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.client import Client
from a2a.types.a2a_pb2 import AgentCard, Message, Part, Role, SendMessageRequest, StreamResponse, Task
from google.protobuf.json_format import MessageToDict, ParseDict

WORKER = "tests.workers.a2a_worker:app"
BINDINGS = ["JSONRPC", "HTTP+JSON"]
HEADERS = {"A2A-Version": "1.0"}


def canonical(value: Any, data: bool = False) -> Any:
    """A JSON value as the A2A answers are compared: numbers with their type, object members in order, but
    inside a data part (a protobuf Struct: the SDK renders its members in its hash table's order)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, list):
        return [canonical(item, data) for item in value]
    if isinstance(value, dict):
        items = [(key, canonical(item, data or key == "data")) for key, item in value.items()]
        return sorted(items) if data else items
    return value


def text_message(text: str, context_id: str = "", **metadata: Any) -> Message:
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)])
    if context_id:
        message.context_id = context_id
    if metadata:
        message.metadata.update(metadata)
    return message


def data_message(value: dict[str, Any], context_id: str = "") -> Message:
    part = Part(media_type="application/json")
    ParseDict(value, part.data.struct_value)
    message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[part])
    if context_id:
        message.context_id = context_id
    return message


def request(message: Message, *, blocking: bool = True, **config: Any) -> SendMessageRequest:
    req = SendMessageRequest(message=message)
    req.configuration.return_immediately = not blocking
    for key, value in config.items():
        setattr(req.configuration, key, value)
    return req


@asynccontextmanager
async def a2a_client(
    base_url: str,
    agent: str = "",
    binding: str = "JSONRPC",
    streaming: bool = True,
    card: AgentCard | None = None,
) -> AsyncIterator[Client]:
    """An a2a-sdk client of the agent at ``/a2a/{agent}`` (the gateway's agent when ``agent`` is empty),
    from its card, for one binding."""
    async with httpx.AsyncClient(timeout=30) as http:
        if card is None:
            path = f"/a2a/{agent}" if agent else "/a2a"
            card = await A2ACardResolver(http, base_url + path).get_agent_card()
        config = ClientConfig(httpx_client=http, supported_protocol_bindings=[binding], streaming=streaming)
        client = ClientFactory(config).create(card)
        try:
            yield client
        finally:
            await client.close()


def legacy_card(card: AgentCard) -> AgentCard:
    """The card with only its A2A 0.3 interfaces, so the SDK picks its 0.3 compat transports."""
    legacy = AgentCard()
    legacy.CopyFrom(card)
    del legacy.supported_interfaces[:]
    legacy.supported_interfaces.extend(i for i in card.supported_interfaces if i.protocol_version == "0.3")
    return legacy


async def collect(stream: AsyncIterator[StreamResponse], limit: int | None = None) -> list[StreamResponse]:
    items = []
    async for item in stream:
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    return items


def streamed_text(items: list[StreamResponse], artifact: str = "response") -> str:
    """The text of an artifact as a streaming client accumulates it (a Task snapshot resets it)."""
    text = ""
    for item in items:
        if item.HasField("task"):
            text = "".join(
                part.text for a in item.task.artifacts if a.artifact_id == artifact for part in a.parts
            )
        elif item.HasField("artifact_update") and item.artifact_update.artifact.artifact_id == artifact:
            chunk = "".join(part.text for part in item.artifact_update.artifact.parts)
            text = text + chunk if item.artifact_update.append else chunk
    return text


def output_of(task: Task) -> Any:
    for artifact in task.artifacts:
        if artifact.artifact_id == "output":
            return MessageToDict(artifact.parts[0]).get("data")
    return None


def rpc(base_url: str, path: str, method: str, params: Any, version: str | None = "1.0") -> httpx.Response:
    headers = {"A2A-Version": version} if version else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(base_url + path, json=body, headers=headers, timeout=30)


async def wait_state(client: Client, task_id: str, state: int, within: float = 15) -> Task:
    from a2a.types.a2a_pb2 import GetTaskRequest

    deadline = asyncio.get_running_loop().time() + within
    while True:
        task = await client.get_task(GetTaskRequest(id=task_id))
        if task.status.state == state:
            return task
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {task_id} stayed {task.status.state}, wanted {state}")
        await asyncio.sleep(0.05)


class Receiver:
    """A webhook on 127.0.0.1 that records what it is sent; it can fail its first N requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.fail_first = fail_first
        self.attempts = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(503)
                else:
                    receiver.received.append((dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


async def get(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(url, headers=headers)
