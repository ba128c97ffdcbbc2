"""AccessEdge: the first stage of the request pipeline, in front of every HTTP front (pure ASGI).

Every request to REST, ``/mcp`` and ``/a2a`` passes here once: its credential is authenticated
(``Authenticator``) and the Principal is left in the ASGI scope (``principal.SCOPE_KEY``), where each front
finds it (``principal_of``) to build its Call and scope its run reads. A request without a valid
credential is answered here, 401 in the shape of the protocol it addressed (the REST error object, a
JSON-RPC error for MCP and A2A JSON-RPC, the A2A HTTP+JSON error), with ``WWW-Authenticate`` (for MCP
naming the protected resource metadata, RFC 9728), and audited. Public routes (health, cards, metadata,
the docs page) take a credential when one is presented and a visitor otherwise.

With ``auth = "none"`` the edge is not installed at all: nothing to pay on the hot path.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import GatewayError, Unauthenticated
from .audit import AuditLog
from .authenticate import VISITOR, Authenticator, presented
from .principal import REQUEST_ID_KEY, SCOPE_KEY

if TYPE_CHECKING:
    from ..telemetry.metrics import GatewayMetrics

PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"
CARD = "/.well-known/agent-card.json"
PUBLIC = frozenset(
    {"/healthz", "/readyz", "/metrics", "/docs", CARD, PROTECTED_RESOURCE, PROTECTED_RESOURCE + "/mcp"}
)
_A2A_JSON_RPC = re.compile(r"/a2a(/[^/]+)?/?")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_X_REQUEST_ID = b"x-request-id"
_HOST = b"host"


def protocol_of(path: str) -> str:
    if path == "/mcp" or path.startswith("/mcp/"):
        return "mcp"
    if path.startswith("/a2a") or path == CARD:
        return "a2a"
    return "rest"


#: An agent's card (``/a2a/{name}/.well-known/agent-card.json``, and the gateway agent's); nothing else
#: that merely ends like one (``/v1/resources/docs://x/.well-known/agent-card.json`` is a resource read).
_AGENT_CARD = re.compile(r"/a2a(?:/[^/]+)?/\.well-known/agent-card\.json")


def is_public(path: str) -> bool:
    if path in PUBLIC or path.startswith("/v1/approvals/"):  # approval links: the token is the credential
        return True
    return path.endswith("agent-card.json") and _AGENT_CARD.fullmatch(path) is not None


class AccessEdge:
    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, audit: AuditLog, public_url: str = ""
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.audit = audit
        self.public_url = public_url.rstrip("/")
        self._failures = Budget(MAX_FAILURE_RECORDS)
        #: counts refusals when the gateway serves metrics
        self.metrics: GatewayMetrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = scope["headers"]
        # The request edge (telemetry/edge.py) set it already, when it is installed.
        scope[REQUEST_ID_KEY] = request_id = scope.get(REQUEST_ID_KEY) or _request_id(headers)
        try:
            if is_public(path):
                scope[SCOPE_KEY] = await self._visitor(headers)
            else:
                scope[SCOPE_KEY] = await self.authenticator.authenticate(presented(headers))
        except GatewayError as exc:
            protocol = protocol_of(path)
            if self.metrics is not None:
                self.metrics.auth_refused.inc(protocol, exc.type)
            if isinstance(exc, Unauthenticated) and self._failures.allow():
                skipped, self._failures.skipped = self._failures.skipped, 0
                self.audit.record(
                    "auth.failed",
                    outcome="denied",
                    protocol=protocol,
                    request_id=request_id,
                    target=path[:200],
                    detail=exc.message + (f" ({skipped} earlier failures not recorded)" if skipped else ""),
                )
            await self._refuse(scope, receive, send, protocol, exc)
            return
        await self.app(scope, receive, send)

    async def _visitor(self, headers: Any) -> Any:
        """A public route: the caller's principal when a credential verifies, else a visitor."""
        try:
            credential = presented(headers)
            return VISITOR if credential is None else await self.authenticator.authenticate(credential)
        except GatewayError:
            return VISITOR

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, protocol: str, exc: GatewayError
    ) -> None:
        headers = dict(exc.headers)
        if protocol == "mcp" and "WWW-Authenticate" in headers:
            # RFC 9728: where the client finds which authorization servers issue tokens for this resource.
            metadata = base_url(scope, self.public_url) + PROTECTED_RESOURCE + "/mcp"
            challenge = headers["WWW-Authenticate"]
            params = challenge[len("Bearer") :].strip()
            headers["WWW-Authenticate"] = f'Bearer resource_metadata="{metadata}"' + (
                f", {params}" if params else ""
            )
        body = refusal_body(protocol, scope["path"], exc)
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]
        if scope["type"] == "websocket":
            # Refused before the handshake completes: the same status, headers and body as over HTTP where
            # the server can send a response (ASGI's websocket.http.response), else a close (HTTP 403).
            await receive()  # websocket.connect
            if "websocket.http.response" not in (scope.get("extensions") or {}):
                await send({"type": "websocket.close", "code": 4000 + exc.status, "reason": exc.type})
                return
            await send({"type": "websocket.http.response.start", "status": exc.status, "headers": raw})
            await send({"type": "websocket.http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": exc.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


#: Failed authentications recorded per second at most: a flood of bad credentials must not become a
#: flood of database writes (the rest are counted in the next record's detail).
MAX_FAILURE_RECORDS = 20


class Budget:
    """At most ``per_second`` events a second; counts the ones refused."""

    __slots__ = ("per_second", "second", "skipped", "used")

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self.second = 0
        self.used = 0
        self.skipped = 0

    def allow(self) -> bool:
        now = int(time.monotonic())
        if now != self.second:
            self.second, self.used = now, 0
        if self.used < self.per_second:
            self.used += 1
            return True
        self.skipped += 1
        return False


def base_url(scope: Any, public_url: str = "") -> str:
    """Where clients reach this gateway: ``public_url`` when set, else the request's scheme and Host."""
    if public_url:
        return public_url.rstrip("/")
    host = next((value.decode("latin-1") for name, value in scope["headers"] if name == _HOST), "localhost")
    return f"{scope.get('scheme', 'http')}://{host}"


def refusal_body(protocol: str, path: str, exc: GatewayError) -> bytes:
    """The error in the protocol's own shape."""
    if protocol == "mcp" or (protocol == "a2a" and _A2A_JSON_RPC.fullmatch(path)):
        # JSON-RPC has no code for this: the HTTP status (401, 403, 503) carries it; -32600 says the
        # request as sent cannot be served.
        error = {"code": -32600, "message": exc.message, "data": {"type": exc.type}}
        return msgspec.json.encode({"jsonrpc": "2.0", "id": None, "error": error})
    if protocol == "a2a":
        status = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 503: "UNAVAILABLE"}.get(
            exc.status, "UNKNOWN"
        )
        return msgspec.json.encode({"error": {"code": exc.status, "status": status, "message": exc.message}})
    return msgspec.json.encode({"type": exc.type, "message": exc.message, **exc.extra})


_PREFIX = uuid.uuid4().hex[:12]
_NUMBERS = itertools.count(1)


def _request_id(headers: Any) -> str:
    """The client's ``X-Request-ID`` when it is sane, else this process's prefix and a number (unique
    across replicas and restarts, and far cheaper than a UUID per request)."""
    for name, value in headers:
        if name == _X_REQUEST_ID:
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return f"{_PREFIX}-{next(_NUMBERS):x}"


__all__ = ["REQUEST_ID_KEY", "AccessEdge", "base_url", "is_public", "protocol_of", "refusal_body"]
