"""The ``/mcp`` ASGI app: what every request passes before the SDK's session manager sees it.

Pure ASGI, one pass over the headers:

- ``Origin``, when present, must be an allowed origin, else 403 (the spec's guard against DNS rebinding:
  a browser page must not reach a local server). Requests without ``Origin`` (non-browser clients) pass.
- ``Host`` must be an allowed host when hosts are restricted, else 421.
- The request's session (``Mcp-Session-Id``, or the one its response assigns) is put in
  ``REQUEST_SCOPE`` so resumable SSE keeps each session's events apart.
- A 2026-07-28 request of a method that never streams goes to a manager answering plain JSON.

Patterns are exact values, ``scheme://host:*`` / ``host:*`` for any port, or ``*`` for anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from mcp_types import INVALID_REQUEST
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from sniffio import current_async_library_cvar
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .resumption import REQUEST_SCOPE, RequestScope

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
_MODERN = frozenset(version.encode() for version in MODERN_PROTOCOL_VERSIONS)
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


class McpAsgi:
    """``app`` serves everything; ``quick`` (answering with one JSON body, never a stream) serves the
    2026-07-28 requests that never send notifications, which spares them the SSE machinery."""

    def __init__(self, app: ASGIApp, quick: ASGIApp, origins: Patterns, hosts: Patterns | None) -> None:
        self.app = app
        self.quick = quick
        self.origins = origins
        self.hosts = hosts  # None: any Host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = host = session_id = version = method = None
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
        if origin is not None and not self.origins.allows(origin):
            await _refuse(send, 403, f"Origin {origin} is not allowed")
            return
        if self.hosts is not None and not self.hosts.allows(host or ""):
            await _refuse(send, 421, f"Host {host} is not allowed")
            return
        # anyio asks sniffio which event loop runs on every checkpoint; the SDK's session transport makes
        # dozens per request. Answered up front, for this request and the tasks it starts.
        current_async_library_cvar.set("asyncio")
        if version in _MODERN and method in QUICK_METHODS:
            # The SDK checks Mcp-Method against the body, so a request cannot take this path under a false name.
            await self.quick(scope, receive, send)
            return
        request_scope = RequestScope(session_id)
        token = REQUEST_SCOPE.set(request_scope)
        try:
            if session_id is None:
                await self.app(scope, receive, _learning_session(send, request_scope))
            else:
                await self.app(scope, receive, send)
        finally:
            REQUEST_SCOPE.reset(token)


def _learning_session(send: Send, request_scope: RequestScope) -> Send:
    async def learn(message: Message) -> None:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", ()):
                if name.lower() == _SESSION:
                    request_scope.session_id = value.decode("latin-1")
        await send(message)

    return learn


async def _refuse(send: Send, status: int, message: str) -> None:
    body = msgspec.json.encode(
        {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}
    )
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
