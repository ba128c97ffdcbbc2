"""The WebSocket session front: one socket carries a run's events out, and its answers and cancel in.

``/v1/agents/{name}/session`` starts a run with its first frame (``{"type": "start", "input": …}``);
``/v1/runs/{run_id}/session`` attaches to a run of the caller's. Both resume after ``?after=<seq>`` (or
``Last-Event-ID``), as ``GET /v1/runs/{run_id}/events`` does. Everything goes through the REST front's
helpers and the RunService exactly as the REST routes do: the same authentication (the access edge sees
the handshake), authorization, input validation, limits and error bodies. The protocol is in
docs/reference/rest.md ("WebSocket sessions").

Backpressure: frames are sent one at a time and each send waits while the ASGI server's write buffer is
full, so a slow reader holds back its own follower (the bus drops what it cannot hand over and the follower
reads it back from the store, in order); nothing queues here. The server pings idle sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from litestar import Router, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from ..access.policy import authorize
from ..access.principal import Principal, principal_of, request_id_of
from ..calls import decode_body, find_endpoint, make_call
from ..errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidInput,
    MalformedRequest,
    NoWorker,
    PayloadTooLarge,
)
from ..runs.model import EndpointKind, Event, Run
from ..runs.service import RunService
from ..settings import Settings
from ..validation import FieldError
from ..workers.registry import EndpointRegistry
from .rest import after_seq_of, error_body, idempotency_key_of, run_timeout_of, run_view

log = logging.getLogger("fastagentic.session")

_encode = msgspec.json.encode

#: What a frame may carry beyond ``max_body_bytes`` of input or answer: the server reads frames up to
#: ``max_body_bytes + FRAME_ENVELOPE`` and closes the socket (1009) on a larger one (Gateway.serve).
FRAME_ENVELOPE = 65_536

#: Close codes. 1000 ends a session after the run's terminal event; an error that the socket cannot get
#: past closes it 4000 + the HTTP status REST answers for the same error (4400, 4403, 4404, 4503…).
NORMAL = 1000
INTERNAL = 1011
ERROR_BASE = 4000
#: Errors after which a session cannot go on: its agent or run does not exist or is not the caller's.
_FATAL = frozenset({401, 403, 404})


class Start(msgspec.Struct, tag="start", tag_field="type", forbid_unknown_fields=True):
    """Start the session's run: ``input`` is the agent's input, as the body of ``POST …/runs``."""

    input: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b""))


class Answer(msgspec.Struct, tag="answer", tag_field="type", forbid_unknown_fields=True):
    """Answer the interrupt the run waits on, as the body of ``POST /v1/runs/{id}/resume``."""

    answer: msgspec.Raw
    interrupt: str | None = None


class Cancel(msgspec.Struct, tag="cancel", tag_field="type", forbid_unknown_fields=True):
    """Cancel the run, as ``POST /v1/runs/{id}/cancel``."""


ClientFrame = Start | Answer | Cancel
FRAME_TYPES = ("start", "answer", "cancel")


def parse_frame(text: str) -> Start | Answer | Cancel:
    """A client frame: 400 when it is not JSON, 422 (with the field path) when it is not one of ours."""
    value = decode_body(text.encode())  # MalformedRequest (400) when it is not JSON
    if not isinstance(value, dict):
        raise InvalidInput(
            "a frame must be a JSON object", errors=[FieldError("$", "expected an object with a type")]
        )
    kind = value.get("type")
    if kind not in FRAME_TYPES:
        raise InvalidInput(
            f"unknown frame type {str(kind)[:40]!r}",
            errors=[FieldError("$.type", f"expected one of {', '.join(FRAME_TYPES)}")],
        )
    try:
        return msgspec.json.decode(text, type=ClientFrame)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `")
        raise InvalidInput(
            f"malformed {kind} frame", errors=[FieldError(at.rstrip("`") or "$", message)]
        ) from None


def event_frame(event: Event) -> bytes:
    """An event as the SSE stream's data line carries it, with ``"type": "event"`` in front. By hand, as
    rest.sse_frames: kinds are validated on ingest and event data is JSON."""
    return b'{"type":"event","run_id":"%s","seq":%d,"ts":%r,"kind":"%s","data":%s}' % (
        event.run_id.encode(),
        event.seq,
        event.ts,
        event.kind.encode(),
        event.data,
    )


class Session:
    """One socket: its principal, the run it carries (once known), and the task sending its events."""

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        runs: RunService,
        registry: EndpointRegistry,
        settings: Settings,
    ) -> None:
        self.socket = socket
        self.runs = runs
        self.registry = registry
        self.settings = settings
        self.principal: Principal = principal_of(socket.scope)
        self.request_id = request_id_of(socket.scope)
        self.run: Run | None = None
        self.follower: asyncio.Task[None] | None = None
        self.closed = False
        self._send_lock = asyncio.Lock()
        self.max_frame = settings.max_body_bytes

    # ---------------------------------------------------------------- sending

    async def send(self, frame: bytes) -> bool:
        """Send one frame; False once the socket is closed (by either side)."""
        async with self._send_lock:
            if self.closed:
                return False
            try:
                await self.socket.send_data(frame.decode(), mode="text")
            except (WebSocketDisconnect, OSError, RuntimeError):
                self.closed = True  # the client left (uvicorn: ClientDisconnected, an OSError)
                return False
            return True

    async def close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                await self.socket.close(code, reason[:120])  # a close reason is at most 123 bytes

    async def error(self, exc: GatewayError, op: str | None) -> None:
        """The error frame: the REST error body of ``exc``, its status and headers; ``op`` is the type of
        the client frame it answers (None: the frame could not be read, or the session's own request)."""
        if isinstance(exc, Forbidden) and self.runs.audit is not None:
            self.runs.audit.denied(self.socket.scope, "rest", self.socket.scope["path"], exc.message)
        frame: dict[str, Any] = {"type": "error", "op": op, "status": exc.status, "error": error_body(exc)}
        if exc.headers:
            frame["headers"] = exc.headers
        await self.send(_encode(frame))

    async def refuse(self, exc: GatewayError, op: str | None) -> None:
        """An error the session cannot get past: the error frame, then close 4000 + status."""
        await self.error(exc, op)
        await self.close(ERROR_BASE + exc.status, exc.type)

    # ---------------------------------------------------------------- the run

    def attach(self, run: Run, after: int) -> None:
        self.run = run
        self.follower = asyncio.create_task(self._follow(run, after), name=f"session-{run.id}")

    async def announce(self, run: Run, *, replayed: bool = False) -> bool:
        frame: dict[str, Any] = {"type": "run", "run": run_view(run)}
        if replayed:
            frame["replayed"] = True
        return await self.send(_encode(frame))

    async def _follow(self, run: Run, after: int) -> None:
        """Send the run's events after ``after`` to the end, then close 1000."""
        try:
            async for batch in self.runs.follow(run, after):
                for event in batch:  # an empty batch is a quiet interval: the server pings, not us
                    if not await self.send(event_frame(event)):
                        return
            current = await self.runs.get(run.id, self.principal)
            status = current.status.value if current is not None else "ended"
            await self.close(NORMAL, f"run {status}")
        except asyncio.CancelledError:
            raise
        except GatewayError as exc:  # the store or the bus went away while following
            await self.refuse(exc, None)
        except Exception:
            log.exception("session of run %s failed", run.id)
            await self.close(INTERNAL, "internal error")

    # ---------------------------------------------------------------- frames in

    async def serve(self, name: str | None) -> None:
        """Read the client's frames until it leaves or the session closes. ``name``: the agent a start frame
        starts (None: the session was attached to a run already)."""
        try:
            while not self.closed:
                message = await self.socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if not isinstance(text, str):
                    await self.error(MalformedRequest("frames are JSON text frames, not binary"), None)
                    continue
                if len(text) * 4 > self.max_frame and len(text.encode()) > self.max_frame:
                    await self.error(
                        PayloadTooLarge(
                            f"a frame is at most {self.max_frame} bytes (setting max_body_bytes)"
                        ),
                        None,
                    )
                    continue
                try:
                    frame = parse_frame(text)
                except GatewayError as exc:
                    await self.error(exc, None)
                    continue
                await self.handle(frame, name)
        except WebSocketDisconnect:
            return
        finally:
            if self.follower is not None:
                self.follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.follower

    async def handle(self, frame: Start | Answer | Cancel, name: str | None) -> None:
        op = type(frame).__name__.lower()
        try:
            if isinstance(frame, Start):
                await self.start(frame, name)
                return
            if self.run is None:
                raise Conflict("no run on this socket yet: send a start frame first")
            if isinstance(frame, Answer):
                raw = bytes(frame.answer)
                await self.runs.resume(
                    self.run.id,
                    self.principal,
                    msgspec.json.decode(raw),
                    raw,
                    interrupt_id=frame.interrupt,
                    protocol="rest",
                    request_id=self.request_id,
                )
            else:
                await self.runs.cancel(
                    self.run.id, self.principal, protocol="rest", request_id=self.request_id
                )
        except GatewayError as exc:
            if exc.status in _FATAL:
                await self.refuse(exc, op)
            else:
                await self.error(exc, op)
        except Exception:  # as REST's 500: said, logged, and the socket goes on
            log.exception("session frame %s failed", op)
            await self.error(GatewayError("internal error"), op)

    async def start(self, frame: Start, name: str | None) -> None:
        if self.run is not None:
            raise Conflict(f"this socket already carries run {self.run.id}")
        if name is None:
            raise Conflict(
                "this socket was opened on a run: a start frame starts a run on /v1/agents/{name}/session"
            )
        run_timeout = run_timeout_of(self.socket, self.settings)
        key = idempotency_key_of(self.socket)
        after = after_seq_of(self.socket)
        endpoint = find_endpoint(self.registry, EndpointKind.AGENT, name, self.settings.retry_after)
        raw = bytes(frame.input)
        call = make_call(
            endpoint,
            decode_body(raw),
            principal=self.principal,
            protocol="rest",
            request_id=self.request_id,
            raw=raw,
            idempotency_key=key,
        )
        run, created = await self.runs.submit(call, run_timeout=run_timeout)
        if await self.announce(run, replayed=not created):
            self.attach(run, after)


def session_router(settings: Settings, registry: EndpointRegistry, runs: RunService) -> Router:
    """The session sockets, beside the REST routes (server.py registers both)."""

    @websocket("/v1/agents/{name:str}/session")
    async def agent_session(socket: WebSocket[Any, Any, Any], name: str) -> None:
        session = Session(socket, runs, registry, settings)
        await socket.accept()
        try:
            # Checked before the start frame: a bad handshake header, an unknown agent or one the caller may
            # not use is refused at once. (No worker serving it yet is not: the start frame says so.)
            run_timeout_of(socket, settings)
            idempotency_key_of(socket)
            after_seq_of(socket)
            with contextlib.suppress(NoWorker):
                authorize(session.principal, find_endpoint(registry, EndpointKind.AGENT, name, 1).info)
        except GatewayError as exc:
            await session.refuse(exc, None)
            return
        await session.serve(name)

    @websocket("/v1/runs/{run_id:str}/session")
    async def run_session(socket: WebSocket[Any, Any, Any], run_id: str) -> None:
        session = Session(socket, runs, registry, settings)
        await socket.accept()
        try:
            after = after_seq_of(socket)
            run = await runs.require(run_id, session.principal)
        except GatewayError as exc:
            await session.refuse(exc, None)
            return
        if await session.announce(run):
            session.attach(run, after)
        await session.serve(None)

    return Router(path="/", route_handlers=[agent_session, run_session])


__all__ = ["FRAME_ENVELOPE", "Session", "event_frame", "parse_frame", "session_router"]
