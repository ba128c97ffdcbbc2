"""The ``/mcp`` ASGI app: what every request passes before the SDK's session manager sees it.

Pure ASGI, one pass over the headers:

- ``Origin``, when present, must be an allowed origin, else 403 (the spec's guard against DNS rebinding:
  a browser page must not reach a local server). Requests without ``Origin`` (non-browser clients) pass.
- ``Host`` must be an allowed host when hosts are restricted, else 421.
- A POST must declare a JSON body (else 400), accept what the answer will be (else 406) and stay within
  ``max_body_bytes`` (else 413); its body must be one JSON-RPC message (``envelope.py``: else ``-32700``
  or ``-32600``, 400). A 2026-07-28 request that is not a POST gets 405. The SDK would refuse most of these
  too, but some as plain text or an empty body, and a malformed envelope with pydantic's text: every
  refusal here is a JSON-RPC error body (``id: null``) with the SDK's HTTP status.
- The request's session (``Mcp-Session-Id``, or the one its response assigns) is put in
  ``REQUEST_SCOPE`` so resumable SSE keeps each session's events apart.
- A 2026-07-28 ``tasks/get``, ``tasks/update`` or ``tasks/cancel`` must carry ``Mcp-Name`` equal to its
  ``params.taskId`` (the tasks extension's routing header), else 400 with ``-32020``: the SDK checks the
  header only for ``tools/call``, ``prompts/get`` and ``resources/read``.
- A 2026-07-28 request of a method that never streams goes to a manager answering plain JSON.
- With the fast path on (``fast.py``), a ``tools/call`` or ``tools/list`` it serves is answered there,
  after every check above; everything else goes on to the managers.
- With tracing on, each JSON-RPC request gets its MCP server span (``{mcp.method.name} {target}``), the
  child of the trace context in its ``params._meta`` (else of the HTTP ``traceparent``); the message then
  carries the span's own context in ``_meta``, to the handler and the run it starts.

Patterns are exact values, ``scheme://host:*`` / ``host:*`` for any port, or ``*`` for anything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from mcp_types import HEADER_MISMATCH, INVALID_REQUEST
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from msgspec import UNSET
from sniffio import current_async_library_cvar
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp.shared.inbound import decode_header_value

from ...access.principal import principal_of
from . import envelope
from .resumption import REQUEST_SCOPE, RequestScope

if TYPE_CHECKING:
    from ...telemetry.tracing import Tracing
    from .fast import FastPath

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
LOOPBACK_ORIGINS = [
    f"{scheme}://{name}{port}"
    for scheme in ("http", "https")
    for name in LOOPBACK_NAMES
    for port in ("", ":*")
]
LOOPBACK_HOSTS = [f"{name}{port}" for name in LOOPBACK_NAMES for port in ("", ":*")]

_ORIGIN = b"origin"
_HOST = b"host"
_SESSION = b"mcp-session-id"
_VERSION = b"mcp-protocol-version"
_METHOD = b"mcp-method"
_NAME = b"mcp-name"
_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"
_ACCEPT = b"accept"
_MODERN = frozenset(version.encode() for version in MODERN_PROTOCOL_VERSIONS)
#: The revisions of the SDK's session transport; a request naming any other goes to its 2026-07-28 entry.
_HANDSHAKE = frozenset(version.encode() for version in HANDSHAKE_PROTOCOL_VERSIONS)
_ALLOW_POST = [(b"allow", b"POST")]
#: What the official clients send.
_USUAL_ACCEPT = b"application/json, text/event-stream"
#: ``task_name`` of a request that is not 2026-07-28 (its Mcp-Name is not checked).
_NOT_MODERN = b"\x00not-modern"
#: Session owners remembered (oldest forgotten first); well above ``mcp_max_sessions``' default.
MAX_OWNED_SESSIONS = 100_000
#: 2026-07-28 methods whose answer is never preceded by a notification.
QUICK_METHODS = frozenset(
    method.encode()
    for method in (
        "server/discover",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "prompts/list",
        "completion/complete",
        "tasks/get",
        "tasks/update",
        "tasks/cancel",
        "ping",
    )
)


class Patterns:
    """Allowed values: exact ones, ``prefix:*`` (any port) ones, or everything (``*``)."""

    __slots__ = ("any", "exact", "prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = [p.strip() for p in patterns if p.strip()]
        self.any = "*" in patterns
        self.exact = frozenset(p.lower() for p in patterns if not p.endswith(":*"))
        self.prefixes = tuple(p[:-1].lower() for p in patterns if p.endswith(":*"))

    def allows(self, value: str) -> bool:
        if self.any:
            return True
        value = value.lower()
        if value in self.exact:
            return True
        return any(value.startswith(prefix) and value[len(prefix) :].isdigit() for prefix in self.prefixes)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


#: Where ``_checked_body`` leaves the request's MCP span (tracing on) for ``__call__`` to end.
_SPAN = "fastagentic.mcp_span"


class McpAsgi:
    """``app`` serves everything; ``quick`` (answering with one JSON body, never a stream) serves the
    2026-07-28 requests that never send notifications, which spares them the SSE machinery."""

    #: OpenTelemetry traces (set by the gateway when the ``tracing`` setting is on)
    tracing: Tracing | None = None
    #: the fast path (``fast.py``; set by the front when the ``mcp_fast_path`` setting is on)
    fast: FastPath | None = None

    def __init__(
        self,
        app: ASGIApp,
        quick: ASGIApp,
        origins: Patterns,
        hosts: Patterns | None,
        max_body: int = 1_048_576,
        scopes_for: Callable[[str, str], Sequence[str]] | None = None,
        metadata_url: Callable[[Scope], str] | None = None,
        on_denied: Callable[[Scope, str, str], None] | None = None,
    ) -> None:
        self.app = app
        self.quick = quick
        self.origins = origins
        self.hosts = hosts  # None: any Host
        self.max_body = max_body
        #: (method, name or URI) -> the scopes the addressed endpoint requires ([] when none or unknown)
        self.scopes_for = scopes_for
        #: where a client finds the protected resource metadata (RFC 9728), for the 403 challenge
        self.metadata_url = metadata_url
        #: told of each request refused for its scopes (the audit log)
        self.on_denied = on_denied
        #: 2025-11-25 session id -> who opened it (subject and tenant), when callers authenticate: a
        #: session is its opener's, and another principal presenting its id finds no such session.
        self.owners: OrderedDict[str, tuple[str, str]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.tracing is None or scope["type"] != "http":
            await self._serve(scope, receive, send)
            return
        try:
            await self._serve(scope, receive, send)
        finally:
            span = scope.pop(_SPAN, None)
            if span is not None:
                span.end()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = host = session_id = version = method = mcp_name = content_type = length = accept = None
        for name, value in scope["headers"]:
            if name == _ORIGIN:
                origin = value.decode("latin-1")
            elif name == _HOST:
                host = value.decode("latin-1")
            elif name == _SESSION:
                session_id = value.decode("latin-1")
            elif name == _VERSION:
                version = value
            elif name == _METHOD:
                method = value
            elif name == _NAME:
                mcp_name = value
            elif name == _CONTENT_TYPE:
                content_type = value
            elif name == _CONTENT_LENGTH:
                length = value
            elif name == _ACCEPT:
                accept = value
        if origin is not None and not self.origins.allows(origin):
            await _refuse(send, 403, f"Origin {origin} is not allowed")
            return
        if self.hosts is not None and not self.hosts.allows(host or ""):
            await _refuse(send, 421, f"Host {host} is not allowed")
            return
        principal = principal_of(scope)
        owner = None if principal.unrestricted else (principal.subject, principal.tenant)
        if session_id is not None and owner is not None and self.owners.get(session_id) != owner:
            await _refuse(send, 404, "Session not found")
            return
        quick = version in _MODERN and method in QUICK_METHODS
        if scope["method"] == "POST":
            task_name = mcp_name if version in _MODERN else _NOT_MODERN
            checked = await self._checked_body(
                scope, receive, send, content_type, length, accept, quick, task_name
            )
            if checked is None:
                return
            receive = checked
        elif version is not None and version not in _HANDSHAKE:
            await _refuse(send, 405, "Method Not Allowed: a 2026-07-28 request is a POST", _ALLOW_POST)
            return
        # anyio asks sniffio which event loop runs on every checkpoint; the SDK's session transport makes
        # dozens per request. Answered up front, for this request and the tasks it starts.
        current_async_library_cvar.set("asyncio")
        if self.fast is not None and scope["method"] == "POST":
            # The commonest requests, answered as the SDK would answer them (fast.py); the rest go on.
            served, receive = await self.fast.serve(scope, receive, send, version, session_id)
            if served:
                return
        if quick:
            # The SDK checks Mcp-Method against the body, so a request cannot take this path under a false name.
            await self.quick(scope, receive, send)
            return
        request_scope = RequestScope(session_id)
        token = REQUEST_SCOPE.set(request_scope)
        try:
            if session_id is None:
                # The SDK may answer from a task of the new session's: ownership is taken as the
                # session id goes out, not after the call returns.
                owned = None if owner is None else (lambda new_id: self._own(new_id, owner))
                await self.app(scope, receive, _learning_session(send, request_scope, owned))
            else:
                await self.app(scope, receive, send)
        finally:
            REQUEST_SCOPE.reset(token)

    def _own(self, session_id: str, owner: tuple[str, str]) -> None:
        self.owners[session_id] = owner
        self.owners.move_to_end(session_id)
        while len(self.owners) > MAX_OWNED_SESSIONS:
            self.owners.popitem(last=False)

    async def _checked_body(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        content_type: bytes | None,
        length: bytes | None,
        accept: bytes | None,
        quick: bool,
        task_name: bytes | None = None,
    ) -> Receive | None:
        """A POST's checks, in the SDK's order. ``task_name``: the ``Mcp-Name`` header of a 2026-07-28
        request (None when absent), ``_NOT_MODERN`` for another revision. The ``receive`` that hands the SDK the body already read, or
        None once the request is refused (or the client left while sending it)."""
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _refuse(send, 413, f"Request body too large: at most {self.max_body} bytes")
            return None
        if content_type is None or not content_type.lower().startswith(b"application/json"):
            await _refuse(send, 400, "Invalid Content-Type header: a POST carries application/json")
            return None
        if not _accepts(accept, quick):
            wanted = "application/json" if quick else "both application/json and text/event-stream"
            await _refuse(send, 406, f"Not Acceptable: Client must accept {wanted}")
            return None
        message = await receive()
        if message["type"] != "http.request":
            return None
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [body]
            size = len(body)
            while message.get("more_body", False) and size <= self.max_body:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
            body = b"".join(chunks)
        if len(body) > self.max_body:
            await _refuse(send, 413, f"Request body too large: at most {self.max_body} bytes")
            return None
        problem, parsed = envelope.check(body)
        if problem is not None:
            code, text = problem
            await _refuse(send, 400, text, code=code)
            return None
        if task_name is not _NOT_MODERN and parsed is not None:
            task_id = envelope.task_id(parsed)
            named = decode_header_value(task_name.decode("latin-1")) if task_name is not None else None
            if task_id is not None and named != task_id:
                await _refuse(
                    send,
                    400,
                    f"Mcp-Name header does not match the request body's 'taskId' parameter ({parsed.method})",
                    code=HEADER_MISMATCH,
                    request_id=parsed.id,
                )
                return None
        if self.scopes_for is not None and parsed is not None:
            target = envelope.target(parsed)
            missing = principal_of(scope).missing(self.scopes_for(*target)) if target is not None else []
            if missing and target is not None:
                # The MCP authorization spec's scope challenge: 403, naming the scopes to ask for.
                challenge = f'Bearer error="insufficient_scope", scope="{" ".join(missing)}"'
                if self.metadata_url is not None:
                    challenge += f', resource_metadata="{self.metadata_url(scope)}"'
                why = f"{target[1]!r} requires the scope(s) {', '.join(missing)}"
                if self.on_denied is not None:
                    self.on_denied(scope, f"{target[0]} {target[1]}", why)
                await _refuse(
                    send,
                    403,
                    why,
                    [(b"www-authenticate", challenge.encode("latin-1"))],
                    data={"type": "insufficient_scope", "required_scopes": missing},
                )
                return None
        if (
            self.tracing is not None
            and parsed is not None
            and parsed.method is not UNSET
            and parsed.id is not UNSET
        ):
            body = self._traced(scope, parsed, body)
        return replaying(body, receive)

    def _traced(self, scope: Scope, message: Any, body: bytes) -> bytes:
        """Start the request's MCP span (left in the scope) and return the body carrying its context."""
        assert self.tracing is not None
        method: str = message.method
        params: dict[str, Any] = dict(message.params or {})
        meta: Any = {}
        if "_meta" in params:
            try:
                meta = msgspec.json.decode(params["_meta"])
            except msgspec.DecodeError:
                meta = None
        if not isinstance(meta, dict):
            return body  # not ours to fix: the SDK answers a malformed _meta
        carrier = {k: v for k, v in meta.items() if k in ("traceparent", "tracestate") and isinstance(v, str)}
        attributes: dict[str, Any] = {"mcp.method.name": method, "jsonrpc.request.id": str(message.id)}
        for name, value in scope["headers"]:
            if name == _SESSION:
                attributes["mcp.session.id"] = value.decode("latin-1")
            elif name == _VERSION:
                attributes["mcp.protocol.version"] = value.decode("latin-1")
        target = envelope.target(message)
        span_name = method
        if target is not None:
            if method == "resources/read":
                attributes["mcp.resource.uri"] = target[1]
            else:
                span_name = f"{method} {target[1]}"
                if method == "tools/call":
                    attributes["gen_ai.tool.name"] = target[1]
                    attributes["gen_ai.operation.name"] = "execute_tool"
                else:
                    attributes["gen_ai.prompt.name"] = target[1]
        span, own = self.tracing.message_span(span_name, carrier, scope["headers"], attributes)
        scope[_SPAN] = span
        meta.pop("tracestate", None)
        meta.update(own)
        params["_meta"] = msgspec.Raw(msgspec.json.encode(meta))
        message.params = params
        return msgspec.json.encode(message)


def _accepts(accept: bytes | None, quick: bool) -> bool:
    """Whether ``Accept`` allows the answer: JSON (``quick``), else both JSON and an SSE stream. Read as the
    SDK reads it (``check_accept_headers``): media types without parameters, ``*/*`` and ``type/*``."""
    if accept == _USUAL_ACCEPT:
        return True
    if accept is None:
        return False
    types = {part.split(b";", 1)[0].strip().lower() for part in accept.split(b",")}
    if b"*/*" in types:
        return True
    has_json = b"application/json" in types or b"application/*" in types
    return has_json and (quick or b"text/event-stream" in types or b"text/*" in types)


def replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the SDK: the body already read, then whatever the client sends next (its disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _learning_session(
    send: Send, request_scope: RequestScope, on_session: Callable[[str], None] | None = None
) -> Send:
    async def learn(message: Message) -> None:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", ()):
                if name.lower() == _SESSION:
                    request_scope.session_id = value.decode("latin-1")
                    if on_session is not None:
                        on_session(request_scope.session_id)
        await send(message)

    return learn


async def _refuse(
    send: Send,
    status: int,
    message: str,
    extra: list[Any] | None = None,
    *,
    code: int = INVALID_REQUEST,
    data: dict[str, Any] | None = None,
    request_id: Any = None,
) -> None:
    """Answer a refused request: a JSON-RPC error, with the HTTP ``status``; its id when it was read."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    if not isinstance(request_id, int | str):
        request_id = None
    body = msgspec.json.encode({"jsonrpc": "2.0", "id": request_id, "error": error})
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
