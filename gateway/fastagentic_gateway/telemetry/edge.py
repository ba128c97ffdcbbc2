"""RequestEdge: the outermost stage of every HTTP request (pure ASGI, no middleware base class).

- The request id (the client's ``X-Request-ID`` when sane, else one made up) is put in the scope, where the
  access edge, the audit log and the fronts find it, and echoed in the response's ``X-Request-ID``.
- With JSON logs, the request id is in the log context of everything the request logs (``logging.py``).
- With tracing, REST and A2A requests get a server span, the child of the client's ``traceparent``; MCP
  requests get theirs per JSON-RPC message in ``fronts/mcp/asgi.py``, where the message is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access.edge import _request_id, protocol_of
from ..access.principal import REQUEST_ID_KEY
from .logging import REQUEST_ID

if TYPE_CHECKING:  # imported only when tracing is on: off, the OpenTelemetry SDK is never loaded
    from .tracing import Tracing

_X_REQUEST_ID = b"x-request-id"
#: Probes and scrapes: not worth a span each.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestEdge:
    def __init__(self, app: ASGIApp, tracing: Tracing | None = None, log_context: bool = False) -> None:
        self.app = app
        self.tracing = tracing
        self.log_context = log_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        scope[REQUEST_ID_KEY] = request_id = _request_id(scope["headers"])
        if kind == "http":
            send = _echoing(send, request_id.encode("latin-1"))
        token = REQUEST_ID.set(request_id) if self.log_context else None
        try:
            tracing = self.tracing
            path: str = scope["path"]
            if tracing is None or path in UNTRACED or protocol_of(path) == "mcp":
                await self.app(scope, receive, send)
                return
            await self._traced(tracing, scope, receive, send, request_id)
        finally:
            if token is not None:
                REQUEST_ID.reset(token)

    async def _traced(
        self, tracing: Tracing, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> None:
        from opentelemetry.trace import StatusCode

        from .tracing import parent_from_headers

        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        path: str = scope["path"]
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scope.get("scheme", "http"),
            "fastagentic.protocol": protocol_of(path),
            "fastagentic.request.id": request_id,
        }
        status = [0]

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        with tracing.server_span(
            f"{method} {path}", parent_from_headers(scope["headers"]), attributes
        ) as span:
            try:
                await self.app(scope, receive, observed)
            finally:
                route = _route(scope)
                if route:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")
                if status[0]:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(StatusCode.ERROR)
                        span.set_attribute("error.type", str(status[0]))


def _route(scope: Scope) -> str:
    """The matched route's template (low cardinality, unlike the path), when litestar found one."""
    handler = scope.get("route_handler")
    paths = getattr(handler, "paths", None)
    if not paths:
        return ""
    return str(min(paths, key=len))


def _echoing(send: Send, request_id: bytes) -> Send:
    async def echo(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(name.lower() == _X_REQUEST_ID for name, _ in headers):
                headers.append((_X_REQUEST_ID, request_id))
                message = {**message, "headers": headers}
        await send(message)

    return echo


__all__ = ["RequestEdge"]
