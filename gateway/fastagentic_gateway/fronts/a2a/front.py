"""A2aFront: the A2A protocol (1.0, and 0.3 for older clients) over JSON-RPC and HTTP+JSON.

Built from the ``a2a-sdk``'s own parts: ``DefaultRequestHandler`` (v2) with a task store and an event
stream over the gateway's runs (``store.py``), an agent executor and request-context builder that go
through ``calls.make_call`` and the RunService like every other front (``executor.py``), a push
notification config store over the run stores with our sender (``push.py``), and its JSON-RPC and REST
routes, in one
Starlette app that the litestar gateway mounts at ``/a2a`` and ``/.well-known/agent-card.json``.

Routes (the gateway's own agent at ``/a2a``, each agent endpoint at ``/a2a/{name}``):

- ``POST /a2a[/{name}]``: JSON-RPC (1.0 method names, and 0.3 ``message/send`` etc.);
- ``/a2a[/{name}]/message:send``, ``/tasks/{id}``, ... : HTTP+JSON (and 0.3's ``/v1/...``);
- ``GET /a2a[/{name}]/.well-known/agent-card.json`` and ``GET /.well-known/agent-card.json`` (the
  default agent): the cards.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import DefaultServerCallContextBuilder, create_rest_routes
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types.a2a_pb2 import AgentCard, Message, SubscribeToTaskRequest, Task, TaskStatusUpdateEvent
from a2a.utils.errors import ExtendedAgentCardNotConfiguredError

from ...access.audit import AuditLog
from ...access.edge import base_url, refusal_body
from ...access.policy import authorize
from ...access.principal import Principal, principal_of, request_id_of
from ...errors import Forbidden
from ...runs.service import RunService
from ...settings import Settings
from ...workers.registry import EndpointRegistry
from .cards import CardCache, capability_card, endpoint_card, gateway_card, not_modified, secure
from .executor import RunContextBuilder, RunExecutor, served_agents
from .fast import FastPath
from .guards import (
    Guarded03JsonRpc,
    Guarded03Rest,
    quiet_client_errors,
    refusal,
    screen_body,
    short_errors,
)
from .mapping import RETURN_STATES
from .push import PushSender, PushUrlPolicy, RunPushConfigStore
from .store import RunEventStream, RunTaskStore, agent_of, principal_in

log = logging.getLogger("fastagentic.a2a")

CARD_PATH = "/.well-known/agent-card.json"
JSON_RPC_PATH = re.compile(r"/a2a(/[^/]+)?/?")
# A task that waits for input is answered by a message that may come hours later, through any replica:
# the SDK's per-task machinery (an ActiveTask) for it goes away once idle this long, and the answer
# builds a new one from the task store.
PARKED_TASK_SECONDS = 1.0


class RunRequestHandler(DefaultRequestHandler):
    """The SDK's request handler, with every subscription ending at the next interrupted or terminal
    state after its snapshot (spec 11.7). The SDK ends it there when it reads the task's events from the
    event stream (a task run elsewhere, or served by the fast path), but a subscription to a task running
    in this process's ``ActiveTask`` would go on past ``input-required`` into the next request's events."""

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        snapshot = True
        async for event in super().on_subscribe_to_task(params, context):
            yield event
            if isinstance(event, Message) or (
                not snapshot
                and isinstance(event, Task | TaskStatusUpdateEvent)
                and event.status.state in RETURN_STATES
            ):
                return
            snapshot = False


def principal_at(request: Request) -> Principal:
    """Who is calling, as the access edge authenticated the request."""
    return principal_of(request.scope)


class ContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context, plus which agent the URL addressed and the gateway's caller."""

    def __init__(self, public_url: str = "") -> None:
        super().__init__()
        self.public_url = public_url

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["agent"] = request.path_params.get("agent")
        context.state["principal"] = principal_at(request)
        context.state["base_url"] = base_url(request.scope, self.public_url)
        context.state["request_id_http"] = request_id_of(request.scope)
        return context


class A2aFront:
    def __init__(
        self, settings: Settings, registry: EndpointRegistry, runs: RunService, audit: AuditLog | None = None
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.registry = registry
        self.runs = runs
        self.store = RunTaskStore(runs)
        self.push_configs = RunPushConfigStore(runs.durable, runs.ephemeral)
        self.push = PushSender(settings, self.push_configs)
        push_url_policy = PushUrlPolicy(settings.a2a_push_allow_private)
        self.builder = RunContextBuilder(registry, runs, self.store, settings.retry_after, push_url_policy)
        self.handler = RunRequestHandler(
            agent_executor=RunExecutor(runs, self.store),
            task_store=self.store,
            agent_card=secure(capability_card(), settings),
            push_config_store=self.push_configs,
            push_sender=self.push,
            request_context_builder=self.builder,
            push_url_validator=push_url_policy,
            event_stream=RunEventStream(self.store),
            extended_agent_card=capability_card() if settings.auth == "required" else None,
            extended_card_modifier=self._extended_card if settings.auth == "required" else None,
            interrupted_task_timeout=PARKED_TASK_SECONDS,
        )
        self.cards = CardCache()
        self.max_body = settings.max_body_bytes
        context = ContextBuilder(settings.public_url)
        json_rpc_routes: set[int] = set()  # ids: Starlette routes are not hashable
        routes = self._routes(context, json_rpc_routes)
        self.app = Starlette(routes=routes)
        self.fast = FastPath(runs, self.store, self.builder, self.push, routes, json_rpc_routes)
        self.started_at = time.time()
        quiet_client_errors()
        self._resuming: asyncio.Task[None] | None = None
        self._resumed = False
        registry.on_change(self._resume_pushes)

    def _resume_pushes(self) -> None:
        """Once workers (re)connect after a start: pick up the pushes of durable tasks whose follower
        died with the previous process (``FastPath.resume_pushes``). Alone only: in a cluster the replica
        that followed a task may still be up, and pushing twice is worse than the gap."""
        if self._resumed or self._resuming is not None or self.runs.bus.clustered:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._resuming = loop.create_task(self._resume_once(), name="a2a-resume-pushes")

    async def _resume_once(self) -> None:
        delay = 0.5
        try:
            while True:
                try:
                    resumed = await self.fast.resume_pushes(self.started_at)
                except Exception as exc:  # the store not started yet, or unreachable: try again
                    log.warning(
                        "A2A: resuming push notifications failed (%s); retrying in %.1f s", exc, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                self._resumed = True
                if resumed:
                    log.info("A2A: resumed push notifications of %d task(s)", resumed)
                return
        finally:
            self._resuming = None

    def _routes(self, context: ContextBuilder, json_rpc_routes: set[int]) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(CARD_PATH, self._default_card, methods=["GET"]),
            Route("/a2a" + CARD_PATH, self._gateway_card, methods=["GET"]),
            Route("/a2a/{agent}" + CARD_PATH, self._agent_card, methods=["GET"]),
        ]
        # The gateway's agent first: its HTTP+JSON paths (/a2a/message:send) would otherwise look like
        # the JSON-RPC URL of an agent named "message:send".
        for prefix in ("/a2a", "/a2a/{agent}"):
            dispatcher = JsonRpcDispatcher(self.handler, context_builder=context, enable_v0_3_compat=True)
            # The SDK's 0.3 adapter, with the guards (guards.py) in its place.
            dispatcher._v03_adapter = Guarded03JsonRpc(self.handler, context_builder=context)
            json_rpc = Route(prefix, dispatcher.handle_requests, methods=["POST"])
            json_rpc_routes.add(id(json_rpc))
            routes.append(json_rpc)
            routes += [
                Route(prefix + path, endpoint, methods=[method])
                for (path, method), endpoint in Guarded03Rest(self.handler, context_builder=context)
                .routes()
                .items()
            ]
            routes += [
                route
                for route in create_rest_routes(self.handler, context_builder=context, path_prefix=prefix)
                if isinstance(route, Route)  # not the SDK's "/{tenant}" mount: tenants are not A2A paths here
            ]
        return routes

    # ------------------------------------------------------------------ cards

    def _base_url(self, request: Request) -> str:
        return base_url(request.scope, self.settings.public_url)

    async def _agent_card(self, request: Request) -> Response:
        name = request.path_params["agent"]
        endpoint = next(
            (e for e in served_agents(self.registry, principal_at(request)) if e.name == name), None
        )
        if endpoint is None:
            return JSONResponse({"type": "not_found", "message": f"no agent named {name!r}"}, status_code=404)
        return self._card_response(request, name, endpoint_card(endpoint.info, self._base_url(request)))

    async def _gateway_card(self, request: Request) -> Response:
        principal = principal_at(request)
        infos = [e.info for e in served_agents(self.registry, principal)]
        key = "" if principal.unrestricted else " ".join(sorted(principal.scopes))
        return self._card_response(request, "\0" + key, gateway_card(infos, self._base_url(request)))

    async def _extended_card(self, card: AgentCard, context: ServerCallContext) -> AgentCard:
        """GetExtendedAgentCard (with authentication on): the card of the agent addressed, or of the
        gateway's agent, as the authenticated caller may use it."""
        principal = principal_in(context)
        base = str(context.state.get("base_url", ""))
        agent = agent_of(context)
        agents = served_agents(self.registry, principal)
        if agent is not None:
            endpoint = next((e for e in agents if e.name == agent), None)
            if endpoint is None:
                raise ExtendedAgentCardNotConfiguredError(message=f"no agent named {agent!r}")
            return secure(endpoint_card(endpoint.info, base), self.settings)
        return secure(gateway_card([e.info for e in agents], base), self.settings)

    async def _default_card(self, request: Request) -> Response:
        agents = served_agents(self.registry, principal_at(request))
        name = self.settings.a2a_default_agent
        if not name and len(agents) == 1:
            name = agents[0].name
        if name:
            endpoint = next((e for e in agents if e.name == name), None)
            if endpoint is None:
                return JSONResponse(
                    {"type": "no_worker", "message": f"the default agent {name!r} is not served right now"},
                    status_code=503,
                    headers={"Retry-After": str(self.settings.retry_after)},
                )
            return self._card_response(request, name, endpoint_card(endpoint.info, self._base_url(request)))
        return await self._gateway_card(request)

    def _card_response(self, request: Request, key: str, card: Any) -> Response:
        body, etag, last_modified = self.cards.render(key, secure(card, self.settings))
        headers = {
            "ETag": etag,
            "Last-Modified": last_modified,
            "Cache-Control": f"public, max-age={self.settings.a2a_card_max_age}",
        }
        if self.settings.auth == "required":
            # What a card shows depends on who asks: no shared cache may hand one caller's to another.
            headers["Cache-Control"] = f"private, max-age={self.settings.a2a_card_max_age}"
            headers["Vary"] = "Authorization, X-API-Key"
        if not_modified(request.headers, etag, last_modified):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    # ------------------------------------------------------------------ ASGI

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one request of the mounted paths. Litestar's mount trims the path; the routes here are
        written against the full path, so it is restored from ``raw_path``. A body over
        ``max_body_bytes`` is refused before the SDK reads it: an invalid-request error on JSON-RPC
        (HTTP 200, as JSON-RPC errors are), 413 on HTTP+JSON."""
        raw = scope.get("raw_path")
        if raw:
            scope["path"] = unquote(raw.decode("latin-1"))
        scope["root_path"] = ""
        forbidden = self._forbidden(scope)
        if forbidden is not None:
            await forbidden(scope, receive, send)
            return
        if scope.get("type") == "http" and scope.get("method") in ("POST", "PUT", "PATCH"):
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message.get("type") != "http.request":
                    break
                body = message.get("body", b"")
                size += len(body)
                if size > self.max_body:
                    await self._too_large(scope, send)
                    return
                chunks.append(body)
                if not message.get("more_body"):
                    break
            whole = b"".join(chunks)
            json_rpc = self.fast.is_json_rpc(scope)
            data, refused = screen_body(whole, json_rpc=json_rpc)
            if refused is not None:
                response = refusal(refused, json_rpc=json_rpc)
                await response(scope, receive, send)
                return
            if await self.fast.serve(scope, data, receive, send):
                return
            replayed = False

            async def replay() -> Any:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": whole, "more_body": False}
                return await receive()

            await self.app(scope, replay, short_errors(send))
            return
        await self.app(scope, receive, short_errors(send))

    def _forbidden(self, scope: Any) -> Response | None:
        """403 for anything under ``/a2a/{agent}`` (but its card) when the caller lacks the agent's scopes:
        an agent's scopes guard all of its A2A surface (messages, tasks, push configs)."""
        path: str = scope["path"]
        if not path.startswith("/a2a/") or path.endswith(CARD_PATH):
            return None
        agent = path[5:].split("/", 1)[0]
        endpoint = self.registry.get(agent)
        if endpoint is None:
            return None
        try:
            authorize(principal_of(scope), endpoint.info)
        except Forbidden as exc:
            if self.audit is not None:
                self.audit.denied(scope, "a2a", path, exc.message)
            body = refusal_body("a2a", path, exc)
            return Response(body, status_code=403, media_type="application/json", headers=exc.headers)
        return None

    async def _too_large(self, scope: Any, send: Any) -> None:
        message = f"request body is larger than {self.max_body} bytes"
        if JSON_RPC_PATH.fullmatch(scope["path"]):
            body: dict[str, Any] = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32600, "message": message},
            }
            status = 200
        else:
            body = {"error": {"code": 413, "status": "INVALID_ARGUMENT", "message": message}}
            status = 413
        response = JSONResponse(body, status_code=status, headers={"Connection": "close"})
        await response({"type": "http"}, _nothing, send)

    async def close(self) -> None:
        if self._resuming is not None:
            self._resuming.cancel()
            await asyncio.gather(self._resuming, return_exceptions=True)
        await self.fast.close()
        await self.handler.aclose()
        await self.push.close()


async def _nothing() -> Any:
    return {"type": "http.disconnect"}


__all__ = ["A2aFront"]
