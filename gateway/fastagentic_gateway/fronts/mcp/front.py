"""The MCP front: every registered endpoint over MCP Streamable HTTP at ``/mcp``, both protocol revisions.

Built on the official ``mcp`` package: its low-level ``Server`` holds one handler per method, its
``StreamableHTTPSessionManager`` speaks the transport. 2025-11-25 clients get sessions (``initialize``,
``Mcp-Session-Id``, the GET stream, DELETE, resumable SSE); 2026-07-28 clients are stateless
(``server/discover``, per-request envelope and headers), the manager routing each request by its
``MCP-Protocol-Version`` header.

Handlers stay thin, like the REST routes: find the endpoint and build the ``Call`` (``calls.py``), hand
it to the ``RunService``, render the outcome. Nothing here validates input, dispatches or stores runs.

Changes reach clients as they happen: list changes when the registry changes (a worker connects with new
endpoints, the last worker of one leaves, a replica's catalogue changes), and a resource's update when
its worker announces it (``ResourceChanged``, checked by the registry): to the 2025-11-25 sessions that
``resources/subscribe``d to it, and to the 2026-07-28 ``subscriptions/listen`` streams that name it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import msgspec
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, SERVER_INFO_META_KEY
from mcp_types.methods import CacheableMethod
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp.server.caching import CacheHint
from mcp.server.connection import allowed_log_levels
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError

from ... import __version__
from ...access.audit import AuditLog
from ...access.edge import base_url
from ...access.policy import visible
from ...access.principal import ANONYMOUS, Principal, principal_of
from ...calls import Call, find_endpoint, make_call
from ...errors import GatewayError, InvalidInput, NoWorker
from ...runs.model import EndpointKind, Run, RunStatus
from ...runs.service import RunService
from ...settings import Settings
from ...workers.completion import Completer
from ...workers.connection import MAX_COMPLETION_VALUES
from ...workers.registry import Endpoint, EndpointRegistry
from .answering import Asking, request_id_in
from .asgi import LOOPBACK_HOSTS, LOOPBACK_ORIGINS, McpAsgi, Patterns, is_loopback
from .catalogue import Catalogue, ToolView
from .fast import FastPath
from .listen import Listen
from .request_state import RequestStates
from .results import (
    RESOURCE_NOT_FOUND,
    Outcome,
    error_code,
    error_data,
    gateway_error_result,
    prompt_result,
    resource_result,
    tool_result,
)
from .resumption import SessionEvents
from .running import OnInterrupt, finish_answering, questions_first, submit
from .sessions import MAX_SUBSCRIPTIONS, LegacySessions
from .streaming import Relay
from .tasks import (
    EXTENSION_METHODS,
    RELATED_TASK,
    TASKS_EXTENSION,
    Tasks,
    UpdateTaskRequestParams,
    absent_method,
    declares_tasks,
    is_modern,
    missing_tasks_extension,
)

log = logging.getLogger("fastagentic.mcp")

INSTRUCTIONS = (
    "FastAgentic gateway. Tools are the registered tools and agents; agents (and durable tools) can run "
    "as tasks. Resources, resource templates and prompts come from the connected workers."
)
_LISTS_AND_READS: tuple[CacheableMethod, ...] = (
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "resources/read",
)
# Origin and Host are checked in front of the managers (asgi.py). An explicit object, so the SDK does not
# build a default one for every request.
_CHECKED_IN_FRONT = TransportSecuritySettings(enable_dns_rebinding_protection=False)
_LISTINGS = {
    "tools/list": "tools",
    "resources/list": "resources",
    "resources/templates/list": "templates",
    "prompts/list": "prompts",
}
#: Methods of 2025-11-25 only: the 2026-07-28 client subscribes to resources on ``subscriptions/listen``.
_LEGACY_ONLY = {
    "resources/subscribe": "resources/subscribe is not part of 2026-07-28: use subscriptions/listen",
    "resources/unsubscribe": "resources/unsubscribe is not part of 2026-07-28: use subscriptions/listen",
}
_LIST_EVENTS: dict[str, ServerEvent] = {
    "tools": ToolsListChanged(),
    "resources": ResourcesListChanged(),
    "prompts": PromptsListChanged(),
}


def principal_in(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """Who is calling, as the access edge authenticated the HTTP request carrying this message."""
    request = ctx.request
    return principal_of(request.scope) if request is not None else ANONYMOUS


class _GatewayServer(Server[Any]):
    """The SDK's server, advertising what the gateway adds: list changes and (2025-11-25) tasks."""

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        capabilities = super().get_capabilities(
            NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
            protocol_version=protocol_version,
        )
        if protocol_version not in MODERN_PROTOCOL_VERSIONS:
            capabilities.tasks = types.ServerTasksCapability(
                list=types.TasksListCapability(),
                cancel=types.TasksCancelCapability(),
                requests=types.ServerTasksRequestsCapability(
                    tools=types.TasksToolsCapability(call=types.TasksCallCapability())
                ),
            )
        return capabilities


class McpFront:
    def __init__(
        self,
        settings: Settings,
        registry: EndpointRegistry,
        runs: RunService,
        completer: Completer,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.runs = runs
        self.completer = completer
        self.catalogue = Catalogue(registry)
        self.events = SessionEvents(limit=settings.mcp_resume_events)
        self.sessions = LegacySessions(on_leave=self.events.forget)
        self.states = RequestStates(settings.mcp_state_secret, settings.data_dir, settings.mcp_state_ttl)
        self.asking = Asking(runs, self.states, principal_in)
        self.tasks = Tasks(runs, self.catalogue, principal_in, self.asking, settings.mcp_task_ttl)
        self.bus = InMemorySubscriptionBus()
        self.listen = Listen(self.bus, self.tasks, self._readable)
        self.server = self._build_server()
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            event_store=self.events,
            json_response=False,
            stateless=False,
            security_settings=_CHECKED_IN_FRONT,
            max_request_body_size=settings.max_body_bytes,
            session_idle_timeout=settings.mcp_session_idle_timeout,
            max_sessions=settings.mcp_max_sessions,
        )
        # 2026-07-28 requests that never stream (lists, discover, tasks/get...) are answered with plain JSON.
        self.quick = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            security_settings=_CHECKED_IN_FRONT,
            max_request_body_size=settings.max_body_bytes,
        )
        origins = Patterns(settings.mcp_allowed_origins or LOOPBACK_ORIGINS)
        hosts = settings.mcp_allowed_hosts or (LOOPBACK_HOSTS if is_loopback(settings.http_host) else None)
        self.asgi = McpAsgi(
            self.manager.handle_request,
            self.quick.handle_request,
            origins,
            Patterns(hosts) if hosts else None,
            settings.max_body_bytes,
            self._scopes_for,
            lambda scope: f"{base_url(scope, settings.public_url)}/.well-known/oauth-protected-resource/mcp",
            (lambda scope, target, detail: audit.denied(scope, "mcp", target, detail)) if audit else None,
        )
        if settings.mcp_fast_path:
            self.asgi.fast = FastPath(self)
        self._served = self.catalogue.served()
        self._announcements: set[asyncio.Task[None]] = set()
        registry.on_change(self._registry_changed)
        registry.on_resource_changed(self._resource_changed)

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        async with self.manager.run(), self.quick.run():
            try:
                yield
            finally:
                self.listen.close()
                await self.tasks.close()

    # ------------------------------------------------------------------ the server

    def _build_server(self) -> Server[Any]:
        # Lists and reads change as workers come and go: never fresh for a 2026-07-28 client's cache.
        stale = CacheHint(ttl_ms=0, scope="private")
        server = _GatewayServer(
            "fastagentic",
            version=__version__,
            instructions=INSTRUCTIONS,
            cache_hints=dict.fromkeys(_LISTS_AND_READS, stale),
        )
        # Mcp-Param-* headers are checked against the tool's input schema; a dict lookup, not a listing.
        server.get_tool_input_schema = self.catalogue.input_schema
        # Telemetry lands with its own issue; until then no span per message.
        server.middleware = [self._shortcuts]
        server.extensions = {TASKS_EXTENSION: {}}
        self._server_info = server.server_info_stamp
        handlers: list[tuple[str, type[Any], Any]] = [
            ("tools/list", types.PaginatedRequestParams, self._list("tools")),
            ("tools/call", types.CallToolRequestParams, self._call_tool),
            ("resources/list", types.PaginatedRequestParams, self._list("resources")),
            ("resources/templates/list", types.PaginatedRequestParams, self._list("templates")),
            ("resources/read", types.ReadResourceRequestParams, self._read_resource),
            ("resources/subscribe", types.SubscribeRequestParams, self._subscribe),
            ("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe),
            ("prompts/list", types.PaginatedRequestParams, self._list("prompts")),
            ("prompts/get", types.GetPromptRequestParams, self._get_prompt),
            ("completion/complete", types.CompleteRequestParams, self._complete),
            ("logging/setLevel", types.SetLevelRequestParams, self._set_level),
            ("subscriptions/listen", types.SubscriptionsListenRequestParams, self.listen),
            ("tasks/get", types.GetTaskRequestParams, self.tasks.get_task),
            ("tasks/result", types.GetTaskPayloadRequestParams, self.tasks.task_result),
            ("tasks/list", types.PaginatedRequestParams, self.tasks.list_tasks),
            ("tasks/cancel", types.CancelTaskRequestParams, self.tasks.cancel_task),
            ("tasks/update", UpdateTaskRequestParams, self.tasks.update_task),
        ]
        for method, params_type, handler in handlers:
            server.add_request_handler(method, params_type, handler)
        server.add_notification_handler(
            "notifications/initialized", types.NotificationParams, self._initialized
        )
        return server

    def _list(self, what: str) -> Any:
        # Normally answered by _shortcuts; registered so the SDK derives the capabilities from them.
        async def listing(
            ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams
        ) -> HandlerResult:
            return self.catalogue.listing(what, principal_in(ctx))

        return listing

    def _scopes_for(self, method: str, target: str) -> list[str]:
        """The scopes the endpoint a ``tools/call``, ``prompts/get`` or ``resources/read`` addresses requires."""
        if method == "resources/read":
            found = self.registry.resource_for(target)
            endpoint = found[0] if found is not None else None
        else:
            endpoint = self.registry.get(target)
        return endpoint.info.scopes if endpoint is not None else []

    async def _initialized(
        self, ctx: ServerRequestContext[Any, Any], params: types.NotificationParams
    ) -> None:
        self.sessions.join(ctx)

    async def _set_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> HandlerResult:
        self.sessions.set_level(ctx, params.level)
        return {}

    # ------------------------------------------------------------------ calls

    def _call(self, ctx: ServerRequestContext[Any, Any], kind: EndpointKind, name: str, value: Any) -> Call:
        return self._call_as(principal_in(ctx), request_id_in(ctx), kind, name, value)

    def _call_as(
        self, principal: Principal, request_id: str, kind: EndpointKind, name: str, value: Any
    ) -> Call:
        endpoint = find_endpoint(self.registry, kind, name, self.settings.retry_after)
        return make_call(endpoint, value, principal=principal, protocol="mcp", request_id=request_id)

    def _relay(self, ctx: ServerRequestContext[Any, Any], logger: str) -> Relay:
        meta = ctx.meta
        token = meta.get("progress_token") if meta else None
        if is_modern(ctx):
            levels: frozenset[str] = frozenset(allowed_log_levels(ctx.protocol_version, meta))
        else:
            levels = self.sessions.levels(ctx)
        return Relay(
            ctx.session, progress_token=token, levels=levels, logger=logger, related_request_id=ctx.request_id
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> HandlerResult:
        view = self.catalogue.tool(params.name)
        if view is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}")
        modern = is_modern(ctx)
        if view.required and not (modern and declares_tasks(ctx)):
            # The spec's answers for a call that cannot be served without a task.
            if modern:
                raise missing_tasks_extension(
                    f"Missing required client capability: {params.name} runs only as a task"
                )
            raise MCPError(
                METHOD_NOT_FOUND,
                f"{params.name} runs only as a task (taskSupport: required): call it with params.task",
            )
        as_task = view.tasks and modern and declares_tasks(ctx)
        if modern and params.request_state is not None:
            # A retry answering the InputRequiredResult of an earlier call (answering.py).
            go_on = self._task_after_questions(ctx, params) if as_task and view.input_first else None
            try:
                ended = await self.asking.redeem(ctx, params, self._relay(ctx, params.name), go_on)
            except GatewayError as exc:
                raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc
            return ended if isinstance(ended, dict) else tool_result(view, ended)
        request_id = request_id_in(ctx)
        if as_task:
            call = self._tool_call(principal_in(ctx), request_id, view, params.name, params.arguments or {})
            if isinstance(call, dict):
                return call
            run = await submit(self.runs, call)
            if view.input_first:
                return await self._task_after_questions(ctx, params)(run, 0)
            return self.tasks.created(ctx, run)

        def asker(run: Run) -> OnInterrupt:
            if modern:
                return self.asking.by_input_required(ctx, params, run)
            return self.asking.by_elicitation(ctx, run)

        return await self.run_tool(
            principal_in(ctx),
            request_id,
            view,
            params.name,
            params.arguments or {},
            self._relay(ctx, params.name),
            asker,
        )

    async def run_tool(
        self,
        principal: Principal,
        request_id: str,
        view: ToolView,
        name: str,
        arguments: Any,
        relay: Relay | None,
        asker: Callable[[Run], OnInterrupt],
    ) -> dict[str, Any]:
        """A ``tools/call`` that is neither a task nor a retry, to its ``CallToolResult`` (or the
        ``InputRequiredResult`` ``asker`` ends it with): ``_call_tool``'s, and the fast path's for a
        2026-07-28 call whose client receives no notification (``relay`` None), which builds the SDK's
        request context only if the run asks a question (``asker``, called once the run exists)."""
        call = self._tool_call(principal, request_id, view, name, arguments)
        if isinstance(call, dict):
            return call
        run = await submit(self.runs, call)
        ended = await finish_answering(self.runs, run, relay, asker(run), fresh=True)
        return ended if isinstance(ended, dict) else tool_result(view, ended)

    def _tool_call(
        self, principal: Principal, request_id: str, view: ToolView, name: str, arguments: Any
    ) -> Call | dict[str, Any]:
        """The call of a tool, or the ``isError`` result that refuses it (bad arguments, no worker)."""
        try:
            return self._call_as(principal, request_id, view.endpoint.info.kind, name, arguments)
        except (InvalidInput, NoWorker) as exc:
            return gateway_error_result(exc)
        except GatewayError as exc:
            raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc

    def _task_after_questions(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> Callable[[Run, int], Awaitable[dict[str, Any]]]:
        """SEP-2663 with SEP-2322: the questions an ``input_before_task`` run asks first are
        ``InputRequiredResult`` rounds of the call itself; once the run goes past them (from after
        ``after_seq``) the call answers its task (``CreateTaskResult``)."""

        async def go_on(run: Run, after_seq: int) -> dict[str, Any]:
            asking = self.asking.by_input_required(ctx, params, run)
            within = self.settings.mcp_questions_within
            asked = await questions_first(self.runs, run, asking, within=within, after_seq=after_seq)
            if asked is not None:
                return asked
            current = await self.runs.get(run.id, principal_in(ctx))
            return self.tasks.created(ctx, current or run)

        return go_on

    async def _shortcuts(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Answers the SDK's handler chain cannot give, or would give slowly:

        - the lists, already shaped for the request's revision (``Catalogue.wire``): a listing is checked
          and shaped once per registry change, not on every request;
        - a 2025-11-25 ``tools/call`` with ``params.task``: the task at once, not the result (the SDK
          holds ``tools/call`` results to the ``CallToolResult`` shape);
        - ``-32601`` for a method the gateway does not serve, in this revision or at all, whatever its
          params: the SDK reads the params of a method it has a handler for first, and would answer
          ``-32602`` for bad ones (``tasks/list`` in 2026-07-28).
        """
        method = ctx.method
        listing = _LISTINGS.get(method)
        if listing is not None:
            wire = self.catalogue.wire(listing, method, ctx.protocol_version, principal_in(ctx))
            if is_modern(ctx):
                return {**wire, "_meta": {SERVER_INFO_META_KEY: self._server_info}}
            return dict(wire)
        if ctx.request_id is not None:  # notifications go their own way
            absent = absent_method(ctx) or (_LEGACY_ONLY.get(method) if is_modern(ctx) else None)
            if absent is not None:
                raise MCPError(METHOD_NOT_FOUND, absent)
            if method in EXTENSION_METHODS and is_modern(ctx) and not declares_tasks(ctx):
                raise missing_tasks_extension()
            if method != "initialize" and self.server.get_request_handler(method) is None:
                raise MCPError(METHOD_NOT_FOUND, "Method not found", method)
        params = ctx.params
        if (
            method != "tools/call"
            or not isinstance(params, Mapping)
            or params.get("task") is None
            or is_modern(ctx)  # the 2026 extension ignores params.task: the server decides
        ):
            return await call_next(ctx)
        return await self._create_task(ctx, params)

    async def _create_task(
        self, ctx: ServerRequestContext[Any, Any], params: Mapping[str, Any]
    ) -> HandlerResult:
        request = types.CallToolRequestParams.model_validate(params, by_name=False)
        view = self.catalogue.tool(request.name)
        if view is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {request.name}")
        if not view.tasks:
            raise MCPError(
                METHOD_NOT_FOUND, f"{request.name} does not run as a task (taskSupport: forbidden)"
            )
        try:
            call = self._call(ctx, view.endpoint.info.kind, request.name, request.arguments or {})
        except GatewayError as exc:
            raise MCPError(error_code(exc), exc.message, error_data(exc)) from exc
        run = await submit(self.runs, call)
        self.tasks.request_ttl(run, request.task.ttl if request.task is not None else None)
        meta = ctx.meta
        relay = Relay(
            ctx.session,
            progress_token=meta.get("progress_token") if meta else None,
            levels=frozenset(),
            logger=request.name,
            meta={RELATED_TASK: {"taskId": run.id}},
        )
        self.tasks.watch(ctx.session, run, relay)
        return self.tasks.created(ctx, run)

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> HandlerResult:
        endpoint = self._endpoint(EndpointKind.PROMPT, params.name, "prompt")
        arguments = _coerce(endpoint.info.input_schema, params.arguments or {})
        ended = await self._run(ctx, EndpointKind.PROMPT, params.name, arguments, params)
        if isinstance(ended, dict):
            return ended  # an InputRequiredResult
        return prompt_result(endpoint.info.description, ended.output or b"{}")

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> HandlerResult:
        uri = str(params.uri)
        found = self.registry.resource_for(uri)
        if found is None:
            code = INVALID_PARAMS if is_modern(ctx) else RESOURCE_NOT_FOUND
            shown = uri if len(uri) <= 200 else uri[:200] + "…"  # never echo a huge URI whole
            raise MCPError(code, f"Resource not found: {shown}", {"uri": shown})
        endpoint, variables = found
        ended = await self._run(ctx, EndpointKind.RESOURCE, endpoint.name, variables, params)
        if isinstance(ended, dict):
            return ended  # an InputRequiredResult
        return resource_result(uri, ended.output or b"{}")

    def _readable(self, ctx: ServerRequestContext[Any, Any], uri: str) -> bool:
        """Whether ``uri`` is a resource's, one the caller may read (so subscribe to)."""
        found = self.registry.resource_for(uri)
        return found is not None and visible(principal_in(ctx), found[0].info)

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> HandlerResult:
        uri = str(params.uri)
        if not self._readable(ctx, uri):
            # An unknown URI and one the caller may not read answer alike, as resources/read does.
            shown = uri if len(uri) <= 200 else uri[:200] + "…"
            raise MCPError(RESOURCE_NOT_FOUND, f"Resource not found: {shown}", {"uri": shown})
        if not self.sessions.subscribe(ctx, uri):
            raise MCPError(INVALID_PARAMS, f"at most {MAX_SUBSCRIPTIONS} resource subscriptions per session")
        return {}

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> HandlerResult:
        self.sessions.unsubscribe(ctx, str(params.uri))  # idempotent: a URI not subscribed to is fine
        return {}

    def _endpoint(self, kind: EndpointKind, name: str, what: str) -> Endpoint:
        endpoint = self.registry.get(name)
        if endpoint is None or endpoint.info.kind is not kind:
            raise MCPError(INVALID_PARAMS, f"Unknown {what}: {name}")
        return endpoint

    async def _run(
        self,
        ctx: ServerRequestContext[Any, Any],
        kind: EndpointKind,
        name: str,
        value: Any,
        params: types.GetPromptRequestParams | types.ReadResourceRequestParams,
    ) -> Outcome | dict[str, Any]:
        """Run a prompt or resource endpoint to its end, its questions put to the client as a tool's are
        (``answering.py``); anything but success, or an ``InputRequiredResult``, is a JSON-RPC error."""
        what = "prompt" if kind is EndpointKind.PROMPT else "resource"
        try:
            if is_modern(ctx) and params.request_state is not None:
                # A retry answering the InputRequiredResult of an earlier request.
                ended = await self.asking.redeem(ctx, params, None)
            else:
                run = await submit(self.runs, self._call(ctx, kind, name, value))
                asker: OnInterrupt = (
                    self.asking.by_input_required(ctx, params, run)
                    if is_modern(ctx)
                    else self.asking.by_elicitation(ctx, run, what=what)
                )
                ended = await finish_answering(self.runs, run, None, asker)
        except GatewayError as exc:
            raise MCPError(error_code(exc), _with_details(exc), error_data(exc)) from exc
        if isinstance(ended, dict):
            return ended
        outcome = ended
        if outcome.status is RunStatus.SUCCEEDED:
            return outcome
        if outcome.error is not None:
            message = f"{outcome.error.type}: {outcome.error.message}"
            raise MCPError(INTERNAL_ERROR, message, {"type": outcome.error.type})
        raise MCPError(INTERNAL_ERROR, f"the run ended {outcome.status.value}")

    async def _complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> HandlerResult:
        ref = params.ref
        endpoint: Endpoint | None
        if isinstance(ref, types.PromptReference):
            endpoint = self.registry.get(ref.name)
            if endpoint is not None and endpoint.info.kind is not EndpointKind.PROMPT:
                endpoint = None
        else:
            endpoint = self.catalogue.template(ref.uri)
        if endpoint is None or not visible(principal_in(ctx), endpoint.info):
            return _completion([])  # an endpoint the caller may not use completes nothing, as an unknown one
        argument = params.argument
        arguments = params.context.arguments if params.context is not None else None
        answer = await self.completer.complete(endpoint, argument.name, argument.value, arguments or {})
        if answer is not None:
            return _completion(list(answer.values), answer.total, answer.has_more)
        values: list[str] = []
        if isinstance(endpoint.info.input_schema, dict):
            prop = endpoint.info.input_schema.get("properties", {}).get(argument.name)
            prefix = argument.value.lower()
            values = [v for v in _choices(prop, endpoint.info.input_schema) if v.lower().startswith(prefix)]
        return _completion(values)

    # ------------------------------------------------------------------ list changes

    def _registry_changed(self) -> None:
        served = self.catalogue.served()
        changed = {what for what, names in served.items() if self._served.get(what) != names}
        self._served = served
        if changed:
            task = asyncio.ensure_future(self._announce(changed))
            self._announcements.add(task)
            task.add_done_callback(self._announcements.discard)

    async def _announce(self, changed: set[str]) -> None:
        for what in sorted(changed):
            await self.bus.publish(_LIST_EVENTS[what])  # 2026-07-28 subscriptions/listen streams
        await self.sessions.announce(changed)  # 2025-11-25 sessions

    def _resource_changed(self, uri: str) -> None:
        task = asyncio.ensure_future(self._announce_update(uri))
        self._announcements.add(task)
        task.add_done_callback(self._announcements.discard)

    async def _announce_update(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))  # listen streams naming it
        await self.sessions.resource_updated(uri)  # 2025-11-25 sessions subscribed to it


def _completion(values: list[str], total: int = 0, has_more: bool = False) -> dict[str, Any]:
    """A ``completion/complete`` result: at most 100 values (the spec's limit), how many match in all."""
    total = max(total, len(values))
    completion = {
        "values": values[:MAX_COMPLETION_VALUES],
        "total": total,
        "hasMore": has_more or total > MAX_COMPLETION_VALUES,
    }
    return {"completion": completion, "resultType": "complete"}


def _with_details(exc: GatewayError) -> str:
    if not exc.errors:
        return exc.message
    return exc.message + ": " + "; ".join(f"{e.path}: {e.message}" for e in exc.errors)


_NOT_TEXT = frozenset({"boolean", "integer", "number", "array", "object", "null"})


def _coerce(schema: Any, arguments: Mapping[str, str]) -> dict[str, Any]:
    """Prompt arguments arrive as strings; a non-string parameter gets its JSON value (``"true"``, ``"3"``)."""
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    coerced: dict[str, Any] = {}
    for name, value in arguments.items():
        prop = properties.get(name)
        types_ = prop.get("type") if isinstance(prop, dict) else None
        wanted = set(types_) if isinstance(types_, list) else {types_}
        if isinstance(value, str) and wanted & _NOT_TEXT and "string" not in wanted:
            try:
                coerced[name] = msgspec.json.decode(value)
                continue
            except (msgspec.DecodeError, RecursionError, UnicodeError):
                pass  # not JSON (or no Unicode text): the string itself, for the schema to judge
        coerced[name] = value
    return coerced


def _choices(prop: Any, root: dict[str, Any]) -> list[str]:
    """Completion values a parameter's schema offers: its enum / const values, true and false for a boolean."""
    if not isinstance(prop, dict):
        return []
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        prop = root.get("$defs", {}).get(ref[len("#/$defs/") :], {})
    values: list[str] = []
    for option in [prop, *prop.get("anyOf", []), *prop.get("oneOf", [])]:
        if not isinstance(option, dict):
            continue
        values += [str(v) for v in option.get("enum", []) if v is not None]
        if "const" in option and option["const"] is not None:
            values.append(str(option["const"]))
        if option.get("type") == "boolean":
            values += ["false", "true"]
    return list(dict.fromkeys(values))


__all__ = ["McpFront"]
