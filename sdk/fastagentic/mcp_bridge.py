"""``fastagentic mcp stdio``: an MCP server on stdin/stdout that relays everything to a gateway's ``/mcp``.

Desktop apps and IDEs that only launch stdio MCP servers reach a gateway through this bridge. It speaks
no MCP itself: each newline-delimited JSON-RPC message from stdin becomes a POST to the Streamable HTTP
endpoint, and every JSON-RPC message the gateway answers with (a JSON body, or the events of an SSE
stream) goes to stdout, one per line. Both protocol revisions pass through:

- 2025-11-25: the ``Mcp-Session-Id`` of the ``initialize`` answer goes on every later request; after
  ``notifications/initialized`` a GET stream carries server-initiated messages (list changes, task
  status); a POST stream that drops before its answer is resumed with ``Last-Event-ID``; closing stdin
  ends the session (DELETE), after answers in flight had ``drain`` seconds to arrive.
- 2026-07-28: requests carry their own envelope, from which the ``MCP-Protocol-Version``, ``Mcp-Method``
  and ``Mcp-Name`` headers are set; ``notifications/cancelled`` closes the request's stream, which is that
  revision's cancellation.

Only httpx (an SDK dependency) is used; the ``mcp`` package is not needed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import re
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import httpx

log = logging.getLogger("fastagentic.mcp_bridge")

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
#: params key mirrored into the Mcp-Name header, per method (SEP-2243, and SEP-2663 for tasks)
NAME_PARAMS = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}
ACCEPT = "application/json, text/event-stream"
RESUME_ATTEMPTS = 3
GET_STREAM_ATTEMPTS = 5
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_SENTINEL = re.compile(r"=\?base64\?.*\?=")

PARSE_ERROR = -32700
INTERNAL_ERROR = -32603
CONNECTION_CLOSED = -32000


def header_value(value: str) -> str:
    """A value as an HTTP header carries it: verbatim when safe, else the ``=?base64?...?=`` form."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


class SSEEvent:
    __slots__ = ("data", "id", "retry")

    def __init__(self) -> None:
        self.data: list[str] = []
        self.id: str | None = None
        self.retry: int | None = None


async def sse_events(response: httpx.Response) -> AsyncIterator[SSEEvent]:
    """The events of a ``text/event-stream`` body (comments and unknown fields skipped)."""
    event = SSEEvent()
    async for line in response.aiter_lines():
        if not line:
            if event.data or event.id is not None:
                yield event
            event = SSEEvent()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            event.data.append(value)
        elif name == "id":
            event.id = value
        elif name == "retry" and value.isdigit():
            event.retry = int(value)
    if event.data:
        yield event


class StdioBridge:
    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        drain: float = 2.0,
    ) -> None:
        self.url = url
        self.drain = drain
        self.extra_headers = dict(headers or {})
        self._stdin = stdin if stdin is not None else sys.stdin.buffer
        self._stdout = stdout if stdout is not None else sys.stdout.buffer
        self._transport = transport
        self.session_id: str | None = None
        self.protocol_version: str | None = None  # negotiated by initialize (2025-11-25)
        self._in_flight: dict[Any, asyncio.Task[None]] = {}
        self._modern: set[Any] = set()  # ids of in-flight requests sent under 2026-07-28
        self._tasks: set[asyncio.Task[None]] = set()
        self._get_stream: asyncio.Task[None] | None = None
        self._initializing: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ stdio

    def _write(self, message: Any) -> None:
        self._stdout.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self._stdout.flush()

    def _error(self, request_id: Any, code: int, message: str) -> None:
        self._write({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    async def _lines(self) -> AsyncIterator[bytes]:
        """stdin, line by line, read by a daemon thread so a blocked read never holds the process open."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def read() -> None:
            while True:
                line = self._stdin.readline()
                loop.call_soon_threadsafe(queue.put_nowait, line)
                if not line:
                    return

        threading.Thread(target=read, name="fastagentic-mcp-stdin", daemon=True).start()
        while line := await queue.get():
            if line.strip():
                yield line

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        timeout = httpx.Timeout(30.0, read=None)  # answers may take as long as the run
        async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
            self._client = client
            try:
                async for line in self._lines():
                    await self._handle(line)
            finally:
                await self._close(client)

    async def _handle(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self._error(None, PARSE_ERROR, "Parse error: a line on stdin is not JSON")
            return
        if not isinstance(message, dict):
            self._error(None, -32600, "Invalid request: expected one JSON-RPC object per line")
            return
        method = message.get("method")
        if self._initializing is not None:
            # Everything after initialize needs the session it opens (a piped client may not wait for it).
            await asyncio.wait([self._initializing])
            self._initializing = None
        if method is not None and "id" in message:
            request_id = message["id"]
            task = asyncio.ensure_future(self._request(message))
            if method == "initialize":
                self._initializing = task
            self._in_flight[request_id] = task
            self._track(task)
            task.add_done_callback(functools.partial(self._landed, request_id))
        elif method == "notifications/cancelled" and self._cancels_modern(message):
            return
        else:
            # A notification, or the client's answer to a server request: delivered in order (202, no body).
            await self._send(message)
            if method == "notifications/initialized" and self.session_id and self._get_stream is None:
                self._get_stream = asyncio.ensure_future(self._listen())

    def _landed(self, request_id: Any, task: asyncio.Task[None]) -> None:
        if self._in_flight.get(request_id) is task:
            del self._in_flight[request_id]

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancels_modern(self, message: dict[str, Any]) -> bool:
        """2026-07-28 has no cancel notification over HTTP: closing the request's stream cancels it.
        True when the notification is consumed here (also when there is no session to tell it to)."""
        params = message.get("params") or {}
        request_id = params.get("requestId") if isinstance(params, dict) else None
        task = self._in_flight.get(request_id)
        if task is not None and request_id in self._modern:
            task.cancel()
            return True
        return self.session_id is None

    async def _close(self, client: httpx.AsyncClient) -> None:
        # stdin closed: answers already on their way get a moment to land (a piped batch wants them).
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=self.drain)
        for task in [*self._tasks, *([self._get_stream] if self._get_stream else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._get_stream is not None:
            await asyncio.gather(self._get_stream, return_exceptions=True)
        if self.session_id is not None:
            with contextlib.suppress(httpx.HTTPError):
                await client.delete(self.url, headers=self._headers(None), timeout=5.0)

    # ------------------------------------------------------------------ HTTP

    def _headers(self, message: dict[str, Any] | None) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json", **self.extra_headers}
        params = message.get("params") if message is not None else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
        if message is not None and isinstance(version, str):
            # 2026-07-28: the envelope names the version; routing headers mirror the body.
            method = str(message.get("method", ""))
            headers["MCP-Protocol-Version"] = version
            headers["Mcp-Method"] = method
            name = params.get(NAME_PARAMS.get(method, "")) if isinstance(params, dict) else None
            if isinstance(name, str):
                headers["Mcp-Name"] = header_value(name)
            return headers
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._client is not None
        try:
            response = await self._client.post(self.url, json=message, headers=self._headers(message))
            if response.status_code >= 400:
                log.warning(
                    "gateway answered %s to a %s", response.status_code, message.get("method", "response")
                )
        except httpx.HTTPError as exc:
            log.warning("could not deliver %s: %s", message.get("method", "a response"), exc)

    async def _request(self, message: dict[str, Any]) -> None:
        assert self._client is not None
        request_id = message["id"]
        headers = self._headers(message)
        if "Mcp-Method" in headers:
            self._modern.add(request_id)
        try:
            async with self._client.stream("POST", self.url, json=message, headers=headers) as response:
                if message.get("method") == "initialize":
                    self.session_id = response.headers.get("mcp-session-id") or self.session_id
                answered, last_event_id, retry = await self._relay_answer(response, message)
            if not answered:
                if last_event_id is not None and self.session_id is not None:
                    await self._resume(message, last_event_id, retry)
                else:
                    self._error(
                        request_id, CONNECTION_CLOSED, "the gateway closed the stream without an answer"
                    )
        except httpx.HTTPError as exc:
            self._error(request_id, INTERNAL_ERROR, f"gateway unreachable: {exc}")
        finally:
            self._modern.discard(request_id)

    async def _relay_answer(
        self, response: httpx.Response, request: dict[str, Any]
    ) -> tuple[bool, str | None, int | None]:
        """Relay a POST's answer; (answered, last SSE event id, retry ms) for resuming a dropped stream."""
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "text/event-stream":
            return await self._relay_stream(response, request)
        body = await response.aread()
        if content_type == "application/json" and body:
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            if isinstance(answer, dict) and ("result" in answer or "error" in answer):
                if answer.get("id") is None:
                    answer["id"] = request["id"]  # rejected before the gateway read the id
                self._answered(request, answer)
                return True, None, None
        text = body.decode("utf-8", "replace")[:200]
        self._error(request["id"], INTERNAL_ERROR, f"gateway answered HTTP {response.status_code}: {text}")
        return True, None, None

    async def _relay_stream(
        self, response: httpx.Response, request: dict[str, Any] | None
    ) -> tuple[bool, str | None, int | None]:
        """Relay an SSE stream until the answer to ``request`` (None: the GET stream, no answer awaited)."""
        last_event_id: str | None = None
        retry: int | None = None
        with contextlib.suppress(httpx.HTTPError):
            async for event in sse_events(response):
                last_event_id = event.id or last_event_id
                retry = event.retry if event.retry is not None else retry
                payload = "\n".join(event.data)
                if not payload.strip():
                    continue  # a priming event: only its id matters
                try:
                    message = json.loads(payload)
                except ValueError:
                    log.warning("dropped an SSE event that is not JSON")
                    continue
                if request is not None and _answers(message, request["id"]):
                    self._answered(request, message)
                    return True, last_event_id, retry
                self._write(message)
        return False, last_event_id, retry

    def _answered(self, request: dict[str, Any], answer: dict[str, Any]) -> None:
        if request.get("method") == "initialize" and isinstance(answer.get("result"), dict):
            version = answer["result"].get("protocolVersion")
            if isinstance(version, str):
                self.protocol_version = version  # sent on every later request of the session
        self._write(answer)

    async def _resume(self, request: dict[str, Any], last_event_id: str, retry: int | None) -> None:
        """A POST stream dropped before its answer: replay from ``Last-Event-ID`` on a GET (2025-11-25)."""
        assert self._client is not None
        request_id = request["id"]
        for _ in range(RESUME_ATTEMPTS):
            await asyncio.sleep((retry or 500) / 1000)
            headers = self._headers(None)
            headers["Last-Event-ID"] = last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code >= 400:
                        break
                    answered, last, retry = await self._relay_stream(response, request)
                    last_event_id = last or last_event_id
                    if answered:
                        return
            except httpx.HTTPError:
                continue
        self._error(
            request_id, CONNECTION_CLOSED, "the stream to the gateway dropped and could not be resumed"
        )

    async def _listen(self) -> None:
        """The session's GET stream: server-initiated messages (list changes, task status, pings)."""
        assert self._client is not None
        last_event_id: str | None = None
        failures = 0
        while failures < GET_STREAM_ATTEMPTS:
            headers = self._headers(None)
            headers["Accept"] = "text/event-stream"
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code in (404, 405):
                        return  # the session is gone, or the gateway has no GET stream
                    if response.status_code >= 400:
                        failures += 1
                    else:
                        failures = 0
                        _, last, _ = await self._relay_stream(response, None)
                        last_event_id = last or last_event_id
            except httpx.HTTPError:
                failures += 1
            await asyncio.sleep(min(0.2 * 2**failures, 5.0))


def _answers(message: Any, request_id: Any) -> bool:
    return (
        isinstance(message, dict)
        and "method" not in message
        and message.get("id") == request_id
        and ("result" in message or "error" in message)
    )


async def serve_stdio(url: str, headers: dict[str, str] | None = None) -> None:
    await StdioBridge(url, headers=headers).run()
