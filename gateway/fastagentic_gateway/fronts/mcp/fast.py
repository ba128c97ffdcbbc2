"""The fast path: ``tools/call`` and ``tools/list`` answered without the SDK's transport machinery.

For every request the ``mcp`` package's session manager builds a transport layer around the handler: in
2026-07-28 a task group with a handler task, a disconnect watcher and a zero-buffer memory stream (to
defer the choice between a JSON body and an SSE stream); in a 2025-11-25 session a priming event, two
memory streams per request, an SSE response of four tasks, the session's read stream to its dispatcher,
a handler task there, its write stream to a message router and back. For the commonest requests all of
that is a detour: the answer is one JSON-RPC message. This path serves them by doing exactly what the
SDK's path amounts to, with the SDK's own pieces where the answer is made:

- the request is classified as the SDK classifies it (``classify_inbound_request``, the duplicated
  routing headers, the per-version params validation, ``validate_client_request``): a request it would
  refuse is left to it, so the refusal is its own;
- the handler chain is the SDK's kernel itself (``ServerRunner.on_request``: the front's middleware and
  handlers, the params model, the result shaped for the revision), on a context built as the SDK builds
  it (``Connection.from_envelope``, or the session's own connection), so access rules, hooks, limits,
  budgets, metrics and audit are the handler's, through ``RunService.submit``. One exception: a
  2026-07-28 ``tools/call`` of a known tool that does not require a task, whose params pass the kernel's
  own check (``validate_client_request``), goes straight to what the kernel's chain comes to for it
  (the front's ``run_tool``, the body of its ``tools/call`` handler; the kernel's ``_serialize`` shapes
  the result). The SDK's request context (with the kernel, a quarter of such a call's gateway CPU) is
  built only if the run asks the client a question, for the ``InputRequiredResult``;
- the answer is written as the SDK writes it: 2026-07-28 as its ``_write`` (a JSON body with the
  status its error table gives; a successful answer's body encoded from the result dict directly, the
  same bytes for any JSON result, ``_write`` itself for anything else), an SSE stream of ``: ping``
  comments and the final message when the handler runs longer than the SDK's deferral window, and
  nothing when the client leaves (its run is cancelled); 2025-11-25 as the session's SSE response (the
  same headers, a priming event, events stored in the session's event store under the request's id so a
  resumed stream replays them, ``notifications/message`` for the run's logs on the way, ``-32800`` when
  the client cancels it).

Left to the SDK, untouched (``serve`` hands back the body before anything has been done): other methods,
notifications other than a ``notifications/cancelled`` (which is also passed on), responses, batches,
a ``_meta`` other than the envelope and trace context (progress tokens, log levels), tasks (``params.task``,
a client declaring the tasks extension), retried calls (``requestState``), a tool with ``Mcp-Param``
headers, a 2025-11-25 request outside an initialized session or from a client that declared elicitation,
sampling or roots (its run could ask it a question: that needs the session's back channel), a request id
already in flight in its session, and anything the SDK would refuse.

What differs, the bytes aside: a 2025-11-25 response's head and priming event are held (``_HOLD``) until
the first notification or the answer, so that a quick call goes out in two writes; a 2026-07-28 call's
disconnect watcher starts only after ``_WATCH_AFTER`` (a quick call costs no task). A 2025-11-25 call
served here is not in the session dispatcher's table of requests in flight; a ``notifications/cancelled``
naming it is applied here (the call ends with ``-32800``, its run is cancelled) and then passed on to the
SDK, which finds nothing to cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import pydantic_core
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    CallToolRequestParams,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCResponse,
)
from mcp_types import methods as _methods
from sse_starlette.event import ServerSentEvent
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from mcp.server._streamable_http_modern import (
    _SSE_HEADERS,
    _SSE_PING_INTERVAL,
    _SingleExchangeDispatchContext,
    _sse_event,
    _write,
)
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner, _extract_meta, aclose_shielded, modern_error_data
from mcp.server.streamable_http import REQUEST_CANCELLED
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import InboundModernRoute, classify_inbound_request, find_duplicated_routing_header
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params, handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext

from ...access.principal import principal_of, request_id_of
from ...runs.model import Run
from .asgi import replaying
from .catalogue import ToolView
from .elicitation import Interrupt
from .resumption import REQUEST_SCOPE, RequestScope
from .running import OnInterrupt
from .sessions import connection_of
from .tasks import TASKS_EXTENSION

if TYPE_CHECKING:
    from .front import McpFront

log = logging.getLogger("fastagentic.mcp")

MODERN = b"2026-07-28"
LEGACY = b"2025-11-25"
CALL = "tools/call"
LIST = "tools/list"
CANCELLED = "notifications/cancelled"
ENVELOPE = frozenset({"jsonrpc", "id", "method", "params"})
#: ``params`` members a call or a listing served here may carry (anything else: the SDK's path).
CALL_PARAMS = frozenset({"name", "arguments", "_meta"})
LIST_PARAMS = frozenset({"cursor", "_meta"})
#: ``_meta`` members handled here: the 2026-07-28 envelope, and the trace context tracing puts there.
TRACE_META = frozenset({"traceparent", "tracestate"})
MODERN_META = TRACE_META | {PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY}
#: A 2026-07-28 call's disconnect watcher starts once its handler has run this long (seconds).
_WATCH_AFTER = 0.05
#: The 2025-11-25 session transport's SSE headers, before the session id (``EventSourceResponse`` order).
_SESSION_SSE_HEADERS = [
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"content-type", b"text/event-stream"),
]
_SEP = "\r\n"
#: A 2025-11-25 call's response head and priming event are held this long at most (seconds).
_HOLD = 0.05


class FastPath:
    def __init__(self, front: McpFront) -> None:
        self.front = front
        self.server = front.server
        self.manager = front.manager
        self.quick = front.quick
        self.events = front.events
        # The kernel's result shaping (``ServerRunner._serialize``) for ``_run_tool``: it reads the server
        # only, never the connection, so one runner serves every request.
        self._shaper = ServerRunner(self.server, Connection.from_envelope(MODERN.decode(), None, None), None)
        #: 2025-11-25 calls in flight here, by (session id, request id): a notifications/cancelled finds them
        self._calls: dict[tuple[str, str], _LegacyCall] = {}

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, version: bytes | None, session_id: str | None
    ) -> tuple[bool, Receive]:
        """Answer a POST (its body already read, replayed by ``receive``) if it is one this path serves:
        (True, _). Else (False, the ``receive`` that replays the body for the SDK), nothing done."""
        if version != MODERN and (version != LEGACY or session_id is None):
            return False, receive
        message = await receive()
        body: bytes = message.get("body", b"")
        again = replaying(body, receive)
        if version == MODERN:
            decided = self._modern(scope, body)
            if decided is None:
                return False, again
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s served on the MCP fast path", decided[1], version.decode())
            await self._serve_modern(scope, receive, send, *decided)
            return True, again
        assert session_id is not None
        legacy = self._legacy(scope, body, session_id)
        if legacy is None:
            return False, again
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s served on the MCP fast path", legacy.method, version.decode())
        await legacy.serve(scope, send)
        return True, again

    # ------------------------------------------------------------------ 2026-07-28

    def _modern(self, scope: Scope, body: bytes) -> tuple[Any, str, dict[str, Any], Any] | None:
        """(request id, method, params, the envelope's verdict) of a request served here, else None."""
        try:
            decoded = json.loads(body)  # as the SDK decodes it
        except (ValueError, RecursionError):
            return None
        request = _request(decoded)
        if request is None:
            return None
        request_id, method, params = request
        if params is None:
            return None
        meta = params.get("_meta")
        if not isinstance(meta, dict) or not meta.keys() <= MODERN_META:
            return None  # no envelope (the SDK words the error), a progress token, a log level...
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        if find_duplicated_routing_header(headers) is not None:
            return None
        verdict = classify_inbound_request(decoded, headers=dict(headers))
        if not isinstance(verdict, InboundModernRoute):
            return None  # a rejection: the SDK's
        capabilities = verdict.client_capabilities
        if isinstance(capabilities, dict):
            extensions = capabilities.get("extensions")
            if isinstance(extensions, dict) and TASKS_EXTENSION in extensions:
                return None  # the tasks extension: the SDK's path
        if method == CALL:
            name = params.get("name")
            if isinstance(name, str) and self.front.catalogue.input_schema(name) is not None:
                return None  # Mcp-Param-* headers to check against the tool's schema
        return request_id, method, params, verdict

    async def _serve_modern(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: Any,
        method: str,
        params: dict[str, Any],
        verdict: Any,
    ) -> None:
        if method == LIST:
            # The quick manager's JSON mode: the answer in the request's task.
            state = self.quick._lifespan_state
            connection, dctx = _exchange(scope, receive, request_id, verdict)
            answer = await _answer(self.server, dctx, method, params, connection, state)
            await _write_answer(answer, scope, receive, send)
            return
        # The main manager's SSE mode: a JSON body when the handler answers within the deferral window
        # (nothing it runs here sends a notification), else an SSE stream of pings, then the answer. A
        # client that leaves cancels the handler (and so the run), and gets nothing. The watcher is only
        # started once the handler has run ``_WATCH_AFTER`` seconds: a quick answer costs no task.
        state = self.manager._lifespan_state
        handler = asyncio.current_task()
        assert handler is not None
        stream = _Deferral(scope, receive, send, handler)
        starting = asyncio.get_running_loop().call_later(_WATCH_AFTER, stream.start)
        try:
            view = self._plain_call(verdict, params)
            if view is not None:
                answer = await self._run_tool(scope, receive, request_id, params, verdict, view, state)
            else:
                connection, dctx = _exchange(scope, receive, request_id, verdict)
                answer = await _answer(self.server, dctx, method, params, connection, state)
        except asyncio.CancelledError:
            if not stream.left:
                raise
            handler.uncancel()
            return
        finally:
            starting.cancel()
            await stream.stop()
        if stream.left:
            return
        if stream.committed:
            await send({"type": "http.response.body", "body": _sse_event(answer), "more_body": False})
        else:
            await _write_answer(answer, scope, receive, send)

    def _plain_call(self, verdict: Any, params: dict[str, Any]) -> ToolView | None:
        """The tool a 2026-07-28 ``tools/call`` names when its answer comes from ``McpFront.run_tool``
        alone: the kernel's checks of its params pass (``validate_client_request``), it names a known tool
        that does not require a task, and its client cannot be sent notifications (the path admits no
        progress token and no log level), and the kernel's middleware is the front's ``_shortcuts`` alone
        (tracing adds one that makes the request's trace context current around the handler). Else None:
        the kernel's way (``_answer``)."""
        if self.server.middleware != [self.front._shortcuts]:
            return None
        name = params.get("name")
        view = self.front.catalogue.tool(name) if isinstance(name, str) else None
        if view is None or view.required:
            return None
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            return None
        try:
            _methods.validate_client_request(CALL, verdict.protocol_version, params)
        except Exception:  # the kernel's error, worded by the kernel
            return None
        return view

    async def _run_tool(
        self,
        scope: Scope,
        receive: Receive,
        request_id: Any,
        params: dict[str, Any],
        verdict: Any,
        view: ToolView,
        state: Any,
    ) -> JSONRPCResponse | JSONRPCError:
        """``_answer`` for a ``_plain_call``: what the kernel's chain comes to for it (the front's
        ``_shortcuts`` pass it on, ``_call_tool`` runs it, ``_serialize`` shapes its result), without the
        SDK's request context, which is built only if the run asks the client a question."""
        built: list[Connection] = []

        def asker(run: Run) -> OnInterrupt:
            asking: OnInterrupt | None = None

            async def on_interrupt(interrupt: Interrupt) -> dict[str, Any] | None:
                nonlocal asking
                if asking is None:
                    connection, dctx = _exchange(scope, receive, request_id, verdict)
                    built.append(connection)
                    runner = ServerRunner(self.server, connection, state)
                    version = connection.protocol_version
                    ctx = runner._make_context(dctx, CALL, params, _extract_meta(params), version)
                    typed = CallToolRequestParams.model_validate(params, by_name=False)
                    asking = self.front.asking.by_input_required(ctx, typed, run)
                return await asking(interrupt)

            return on_interrupt

        name: str = params["name"]
        try:
            result = await self.front.run_tool(
                principal_of(scope),
                request_id_of(scope),
                view,
                name,
                params.get("arguments") or {},
                None,
                asker,
            )
            shaped = self._shaper._serialize(CALL, verdict.protocol_version, result)
        except Exception as exc:
            return JSONRPCError(jsonrpc="2.0", id=request_id, error=modern_error_data(exc))
        finally:
            for connection in built:
                if getattr(connection.exit_stack, "_exit_callbacks", True):
                    await aclose_shielded(connection)
        return _response(request_id, shaped)

    # ------------------------------------------------------------------ 2025-11-25

    def _legacy(self, scope: Scope, body: bytes, session_id: str) -> _LegacyCall | None:
        """The call to serve in the session, else None (having applied a notifications/cancelled naming a
        call served here)."""
        try:
            decoded = pydantic_core.from_json(body)  # as the session transport decodes it
        except ValueError:
            return None
        if (
            isinstance(decoded, dict)
            and decoded.get("method") == CANCELLED
            and "id" not in decoded
            and self._calls
        ):
            self._peer_cancelled(session_id, decoded.get("params"))
            return None
        request = _request(decoded)
        if request is None:
            return None
        request_id, method, params = request
        meta = params.get("_meta") if params is not None else None
        if meta is not None and (not isinstance(meta, dict) or not meta.keys() <= TRACE_META):
            return None  # a progress token, the 2026-07-28 envelope (refused by the SDK)...
        transport = self.manager._server_instances.get(session_id)
        if transport is None or transport.is_terminated or self.manager._session_owners.get(session_id):
            return None
        if isinstance(scope.get("user"), AuthenticatedUser):
            return None  # the SDK's own credential check for the session
        idle = transport.idle_scope
        if idle is not None and idle.cancel_called:
            return None
        key = str(request_id)
        if key in transport._request_streams or (session_id, key) in self._calls:
            return None  # an id already in flight in this session
        session = self.front.sessions._sessions.get(session_id)
        connection = connection_of(session) if session is not None else None
        if (
            connection is None
            or not connection.initialize_accepted
            or connection.protocol_version != LEGACY.decode()
        ):
            return None
        capabilities = connection.client_capabilities
        if capabilities is not None and (
            capabilities.elicitation is not None
            or capabilities.sampling is not None
            or capabilities.roots is not None
        ):
            return None  # the run could ask the client: that needs the session's back channel
        return _LegacyCall(self, transport, connection, session_id, request_id, method, params)

    def _peer_cancelled(self, session_id: str, params: Any) -> None:
        request_id = cancelled_request_id_from_params(params if isinstance(params, dict) else None)
        call = self._calls.get((session_id, str(request_id))) if request_id is not None else None
        if call is not None:
            call.cancel()


class _Deferral:
    """The SDK's deferral of a 2026-07-28 answer: JSON while the handler is quick, SSE (pings, then the
    answer) once it has run ``_SSE_PING_INTERVAL`` seconds; the handler cancelled when the client leaves
    (noticed from ``_WATCH_AFTER`` seconds on: the watcher starts then)."""

    __slots__ = ("committed", "handler", "left", "receive", "scope", "send", "watcher")

    def __init__(self, scope: Scope, receive: Receive, send: Send, handler: asyncio.Task[Any]) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.handler = handler
        self.committed = False
        self.left = False
        self.watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.watcher = asyncio.get_running_loop().create_task(self.watch())

    async def stop(self) -> None:
        watcher = self.watcher
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def watch(self) -> None:
        wait = _SSE_PING_INTERVAL - _WATCH_AFTER  # the first ping as the SDK sends it, from the start
        while True:
            try:
                async with asyncio.timeout(wait):
                    while (await self.receive()).get("type") != "http.disconnect":
                        pass
            except TimeoutError:
                wait = _SSE_PING_INTERVAL
                if not self.committed:
                    self.committed = True
                    await self.send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                await self.send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
                continue
            self.left = True
            self.handler.cancel()
            return


class _LegacyDispatch:
    """The ``DispatchContext`` of a 2025-11-25 request served here: notifications go out on its SSE stream
    (stored first, as the session's message router stores them); it cannot carry server requests (only
    calls from clients without elicitation, sampling and roots are served here)."""

    __slots__ = ("_call", "_cancel", "message_metadata", "request_id", "transport")

    def __init__(self, call: _LegacyCall, request: Request) -> None:
        self._call = call
        self.request_id = call.request_id
        self.transport = TransportContext(
            kind="streamable-http", can_send_request=False, headers=request.headers
        )
        self.message_metadata = ServerMessageMetadata(request_context=request)
        self._cancel: anyio.Event | None = None

    @property
    def can_send_request(self) -> bool:
        return False

    @property
    def cancel_requested(self) -> anyio.Event:
        if self._cancel is None:
            self._cancel = anyio.Event()
        return self._cancel

    async def send_raw_request(self, method: str, params: Any, opts: Any = None) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Any, opts: Any = None) -> None:
        if params is not None:
            message = JSONRPCNotification(jsonrpc="2.0", method=method, params=dict(params))
        else:
            message = JSONRPCNotification(jsonrpc="2.0", method=method)
        await self._call.emit(message)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None  # calls with a progress token are the SDK's


class _LegacyCall:
    """One 2025-11-25 request served in its session, as the session transport serves it: the SSE response
    (priming event, the request's notifications, its answer), each event stored first.

    The bytes are the transport's; fewer writes carry them. The response's head and priming event are held
    until the first notification, the answer or ``_HOLD`` seconds (a quick call's whole response goes out
    in two writes, not four), and the answer carries the end of the body."""

    def __init__(
        self,
        fast: FastPath,
        transport: Any,
        connection: Connection,
        session_id: str,
        request_id: Any,
        method: str,
        params: dict[str, Any] | None,
    ) -> None:
        self.fast = fast
        self.transport = transport
        self.connection = connection
        self.session_id = session_id
        self.request_id = request_id
        self.stream_id = str(request_id)
        self.method = method
        self.params = params
        self.send: Send | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        #: the response's head and priming event, until sent
        self.held: tuple[Message, bytes] | None = None
        self.flushing: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        if not self.cancelled and self.task is not None:
            self.cancelled = True
            self.task.cancel()

    async def emit(
        self, message: JSONRPCNotification | JSONRPCResponse | JSONRPCError, last: bool = False
    ) -> None:
        event_id = await self.fast.events.store_event(self.stream_id, message)
        data = sse_data(message)
        event = ServerSentEvent(data=data, event="message", id=event_id, sep=_SEP).encode()
        if self.flushing is not None:
            await self.flushing  # the held head and priming event go first
        held = self.held
        if held is not None:
            self.held = None
            await self._send(held[0])
            event = held[1] + event
        await self._send({"type": "http.response.body", "body": event, "more_body": not last})

    def _flush_soon(self) -> None:
        if self.held is not None and self.flushing is None:
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            await self._send(held[0])
            await self._send({"type": "http.response.body", "body": held[1], "more_body": True})

    async def _send(self, message: Message) -> None:
        """Send, unless the client left: the events stay stored for a resumed stream."""
        assert self.send is not None
        try:
            await self.send(message)
        except OSError:
            log.debug("MCP client left before its answer was sent")

    async def serve(self, scope: Scope, send: Send) -> None:
        self.send = send
        self.task = asyncio.current_task()
        fast = self.fast
        key = (self.session_id, self.stream_id)
        token = REQUEST_SCOPE.set(RequestScope(self.session_id))
        transport = self.transport
        idle = transport.idle_scope
        counted = idle is not None and transport._idle_timeout is not None
        if counted:  # as the transport counts requests in flight against its idle timeout
            transport._requests_in_flight += 1
            idle.deadline = math.inf
        loop = asyncio.get_running_loop()
        holding = loop.call_later(_HOLD, self._flush_soon)
        pinging = loop.call_later(_SSE_PING_INTERVAL, self._start_pings)
        try:
            await self._serve(scope)
        finally:
            holding.cancel()
            pinging.cancel()
            self._stop_pings()
            if self.flushing is not None and not self.flushing.done():
                self.flushing.cancel()
            fast._calls.pop(key, None)
            REQUEST_SCOPE.reset(token)
            if counted:
                transport._requests_in_flight -= 1
                if not transport._requests_in_flight:
                    idle.deadline = anyio.current_time() + transport._idle_timeout

    async def _serve(self, scope: Scope) -> None:
        request = Request(scope)
        headers = [*_SESSION_SSE_HEADERS, (b"mcp-session-id", self.session_id.encode("latin-1"))]
        headers.append((b"x-accel-buffering", b"no"))
        # the priming event, stored now, sent with the head
        event_id = await self.fast.events.store_event(self.stream_id, None)
        priming = ServerSentEvent(data="", id=event_id, sep=_SEP).encode()
        self.held = ({"type": "http.response.start", "status": 200, "headers": headers}, priming)
        runner = ServerRunner(self.fast.server, self.connection, self.fast.manager._lifespan_state)
        dctx = _LegacyDispatch(self, request)
        self.fast._calls[(self.session_id, self.stream_id)] = self
        answer: JSONRPCResponse | JSONRPCError
        try:
            # the kernel's _on_request: ServerRunner.on_request is a cached_property, behind a lock here
            result = await runner._on_request(dctx, self.method, self.params)
        except asyncio.CancelledError:
            task = self.task
            if not self.cancelled or task is None:
                raise
            task.uncancel()
            # The SDK's answer to a request its client cancelled, on this era's wire.
            error = ErrorData(code=REQUEST_CANCELLED, message="Request cancelled")
            answer = JSONRPCError(jsonrpc="2.0", id=self.request_id, error=error)
        except Exception as exc:
            error_data = handler_exception_to_error_data(exc)
            if error_data is None:
                log.exception("handler for %r raised", self.method)
                error_data = ErrorData(code=0, message=str(exc))
            answer = JSONRPCError(jsonrpc="2.0", id=self.request_id, error=error_data)
        else:
            answer = _response(self.request_id, result)
        await self.emit(answer, last=True)

    # ------------------------------------------------------------------ keep-alive, as the SSE response's

    _pinger: asyncio.Task[None] | None = None

    def _start_pings(self) -> None:
        self._pinger = asyncio.get_running_loop().create_task(self._pings())

    def _stop_pings(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()

    async def _pings(self) -> None:
        if self.flushing is not None:
            await self.flushing
        await self._flush()
        while True:
            ping = ServerSentEvent(comment=f"ping - {datetime.now(UTC)}", sep=_SEP)
            await self._send({"type": "http.response.body", "body": ping.encode(), "more_body": True})
            await asyncio.sleep(_SSE_PING_INTERVAL)


def _exchange(
    scope: Scope, receive: Receive, request_id: Any, verdict: Any
) -> tuple[Connection, _SingleExchangeDispatchContext]:
    """The connection and dispatch context the SDK's stateless transport makes for a request."""
    request = Request(scope, receive)
    connection = Connection.from_envelope(
        verdict.protocol_version, verdict.client_info, verdict.client_capabilities
    )
    dctx = _SingleExchangeDispatchContext(
        transport=TransportContext(kind="streamable-http", can_send_request=False, headers=request.headers),
        request_id=request_id,
        message_metadata=ServerMessageMetadata(request_context=request),
    )
    return connection, dctx


async def _answer(
    server: Any,
    dctx: _SingleExchangeDispatchContext,
    method: str,
    params: dict[str, Any],
    connection: Connection,
    lifespan_state: Any,
) -> JSONRPCResponse | JSONRPCError:
    """``_to_jsonrpc_response(request_id, serve_one(...))``, as the SDK composes them, less its overheads:
    the kernel's ``_on_request`` called directly (``ServerRunner.on_request`` is a ``cached_property``,
    behind a lock on this Python), the connection's exit stack unwound only when something is on it, the
    response built without re-validating the result dict the kernel has just shaped."""
    runner = ServerRunner(server, connection, lifespan_state)
    try:
        result = await runner._on_request(dctx, method, params)
    except Exception as exc:
        return JSONRPCError(jsonrpc="2.0", id=dctx.request_id, error=modern_error_data(exc))
    finally:
        # (an AsyncExitStack's callbacks; a Python without that attribute always unwinds)
        if getattr(connection.exit_stack, "_exit_callbacks", True):
            await aclose_shielded(connection)
    return _response(dctx.request_id, result)


def _response(request_id: Any, result: dict[str, Any]) -> JSONRPCResponse:
    """``JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)`` without validating ``result``
    (a ``dict[str, Any]`` field: validation only copies it); the same fields set."""
    return JSONRPCResponse.model_construct(jsonrpc="2.0", id=request_id, result=result)


def json_body(answer: JSONRPCResponse) -> bytes | None:
    """The body ``_write`` sends for a successful answer, without the model dump: the same bytes whenever
    the result is plain JSON data (``test_mcp_fast.py`` compares them), else None (non-finite floats,
    which the dump turns into ``null``, and anything that is not JSON: ``_write`` serialises those)."""
    try:
        text = _dumps({"jsonrpc": "2.0", "id": answer.id, "result": answer.result})
    except (TypeError, ValueError):
        return None
    return text.encode()


def sse_data(message: JSONRPCResponse | JSONRPCError | JSONRPCNotification) -> str:
    """``message.model_dump_json(by_alias=True, exclude_unset=True)``, the session transport's event data;
    for a response, the JSON of the plain dict (``test_mcp_fast.py`` compares them)."""
    if type(message) is JSONRPCResponse:
        body = {"jsonrpc": "2.0", "id": message.id, "result": message.result}
        try:
            return pydantic_core.to_json(body, inf_nan_mode="null").decode()
        except pydantic_core.PydanticSerializationError:
            pass
    return message.model_dump_json(by_alias=True, exclude_unset=True)


_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


async def _write_answer(
    answer: JSONRPCResponse | JSONRPCError, scope: Scope, receive: Receive, send: Send
) -> None:
    """``_write(answer, ...)``: a JSON body with the status the SDK's error table gives."""
    body = json_body(answer) if type(answer) is JSONRPCResponse else None
    if body is None:
        await _write(answer, scope, receive, send)
        return
    # starlette's Response(body, 200, media_type="application/json"), its headers in its order
    headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_JSON_TYPE = (b"content-type", b"application/json")


def _request(decoded: Any) -> tuple[Any, str, dict[str, Any] | None] | None:
    """(id, method, params) of a ``tools/call`` or ``tools/list`` request this path may serve."""
    if not isinstance(decoded, dict) or decoded.get("jsonrpc") != "2.0" or not decoded.keys() <= ENVELOPE:
        return None
    request_id = decoded.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None
    method = decoded.get("method")
    params = decoded.get("params")
    if method == CALL:
        allowed = CALL_PARAMS
    elif method == LIST:
        allowed = LIST_PARAMS
    else:
        return None
    if params is not None and (not isinstance(params, dict) or not params.keys() <= allowed):
        return None
    if method == CALL and params is None:
        return None
    return request_id, method, params


__all__ = ["FastPath"]
