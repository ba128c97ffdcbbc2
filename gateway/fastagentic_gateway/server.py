"""Gateway: the parts wired together, and serving HTTP and worker gRPC on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sqlite3
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, cast

import psycopg
import uvicorn
from litestar import Litestar, MediaType, Request, Response, asgi, get
from litestar.exceptions import HTTPException

from .access.edge import AccessEdge, protocol_of
from .access.gate import Gate
from .access.principal import principal_of
from .approvals.routes import approvals_router
from .approvals.service import Approvals
from .bus import CancelNotice, open_bus
from .bus.base import BusUnavailable
from .errors import Forbidden, GatewayError
from .fronts.a2a import A2aFront
from .fronts.mcp import McpFront
from .fronts.openapi import DOCS_PAGE, OpenAPIDocument
from .fronts.rest import error_body, json_response, rest_router
from .fronts.session import FRAME_ENVELOPE, session_router
from .hooks.stage import HookConfigError, HookStage
from .limits.budgets import Budgets
from .limits.limiter import Limiter
from .runs.service import RunService
from .settings import Settings
from .store import MemoryRunStore, open_store
from .store.base import AccessStore
from .telemetry import logging as telemetry_logging
from .telemetry.edge import RequestEdge
from .telemetry.metrics import GatewayMetrics, RequestMetrics
from .usage.accounting import UsageAccounting
from .workers.completion import Completer, Completion, CompletionRequest
from .workers.registry import EndpointInfo, EndpointRegistry
from .workers.servicer import WorkerGateway, build_server, server_credentials

log = logging.getLogger("fastagentic.gateway")

_HTTP_TYPES = {
    400: "malformed_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class Gateway:
    """Everything one gateway process runs. ``asgi`` is the HTTP app; ``serve()`` runs it all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._started = False  # start() ran (in serve, before the server, or as the start-up hook)
        self.registry = EndpointRegistry()
        self.durable = open_store(settings.store_url, settings.data_dir, migrate=settings.migrate_on_start)
        self.ephemeral = MemoryRunStore(max_finished=settings.ephemeral_retention)
        self.bus = open_bus(settings)
        self.runs = RunService(settings, self.registry, self.durable, self.ephemeral, self.bus)
        self.openapi = OpenAPIDocument(self.registry)
        self.completer = Completer(self.registry, self.bus, settings.mcp_completion_timeout)
        self.gate = Gate(settings, cast(AccessStore, self.durable))  # the durable stores are both
        audit = self.gate.audit if self.gate.required else None
        self.mcp = McpFront(settings, self.registry, self.runs, self.completer, audit)
        self.a2a = A2aFront(settings, self.registry, self.runs, audit)
        self.workers = WorkerGateway(
            settings, self.registry, self.runs, self.gate.credentials, self.gate.audit
        )
        self.runs.audit = audit
        #: token and cost accounting: counts workers' llm_end usage; the budgets read it
        self.usage = UsageAccounting(settings.prices, self.durable, self.ephemeral)
        self.runs.usage = self.usage
        self.limiter = Limiter(settings)
        self.runs.limiter = self.limiter
        self.budgets = Budgets(
            settings.budgets,
            self.usage,
            self.limiter.counters,
            refresh=settings.budget_refresh,
            webhook=settings.budget_webhook,
            fail_open=settings.limits_fail == "open",
        )
        self.budgets.audit = self.gate.audit
        #: Prometheus metrics, served on metrics_port when set
        self.metrics = GatewayMetrics(settings.metrics_label_values)
        self.limiter.metrics = self.budgets.metrics = self.metrics
        if settings.metrics_port:  # the rest only counts when something reads it
            self.metrics.watch(self.runs, self.registry, self.bus)
            self.runs.metrics = self.workers.metrics = self.metrics
            self.metrics.instrument(self.durable)
        self.runs.budgets = self.budgets if settings.budgets else None
        #: the hook stage (hooks/): gateway hooks by point, None when none is configured
        self.hooks = HookStage.build(settings.hooks, self.metrics)
        self.runs.hooks = self.hooks
        #: approval channels: notifications when a run waits, answer links, timeouts (approvals/)
        self.approvals = (
            Approvals(settings, self.runs, self.limiter.counters, audit=audit)
            if settings.approval_channels
            else None
        )
        self.runs.approvals = self.approvals
        #: reads the settings again (SIGHUP), when the process was started from a configuration
        self.reload_settings: Callable[[], Settings] | None = None
        self.app = self._build_asgi()
        self.asgi = self.gate.guard(self.app)
        if settings.metrics_port:
            if isinstance(self.asgi, AccessEdge):
                self.asgi.metrics = self.metrics
            self.asgi = RequestMetrics(self.asgi, self.metrics, protocol_of)
        #: OpenTelemetry traces (telemetry/tracing.py), None when off: nothing on the hot path then
        self.tracing = _tracing(settings)
        self.runs.tracing = self.mcp.asgi.tracing = self.tracing
        if self.tracing is not None:
            _mcp_trace_context(self.mcp.server)
        # Outermost: the request id (echoed in X-Request-ID), the request's log context, its server span.
        self.asgi = RequestEdge(self.asgi, self.tracing, log_context=settings.log_format == "json")

    async def _on_startup(self) -> None:
        """The application's start-up hook: ``start``, unless ``serve`` did it before the server started (an
        application served another way, a test client say, starts here)."""
        if not self._started:
            await self.start()

    async def start(self) -> None:
        self._started = True
        await self.durable.start()
        await self.gate.start()
        await self.limiter.start()
        await self.budgets.start()
        await self.bus.start(_Peers(self.runs, self.registry, self.completer))
        if self.bus.clustered:
            # This replica's catalogue goes to its peers whenever its own workers change it.
            advertised: list[Any] = [None]

            def advertise() -> None:
                local = (self.registry.local(), self.registry.local_completions())
                if local != advertised[0]:
                    advertised[0] = local
                    self.bus.advertise(*local)

            self.registry.on_change(advertise)
        await self.runs.start()
        if self.approvals is not None:
            await self.approvals.start()

    async def close(self) -> None:
        await self.a2a.close()
        if self.approvals is not None:
            await self.approvals.close()
        await self.runs.close()
        if self.hooks is not None:
            await self.hooks.close()
        await self.bus.close()
        await self.limiter.close()
        await self.budgets.close()
        self.metrics.close()
        await self.gate.close()
        await self.durable.close()
        if self.tracing is not None:
            self.tracing.close()  # exports what is buffered

    async def ready(self) -> dict[str, str]:
        """What is not ready, by component; empty when ready."""
        problems: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.durable.get("readiness-probe"), timeout=2.0)
        except TimeoutError:
            problems["store"] = "run store did not answer within 2 s"
        except Exception as exc:
            # Public route: the reason (hosts, users) goes to the log, not to whoever asks.
            log.warning("readiness: run store unreachable: %s", exc)
            problems["store"] = "run store unreachable (see the gateway's log)"
        if not self.bus.connected:
            problems["bus"] = "cluster bus (NATS) unreachable"
        if not self.registry.served():
            problems["workers"] = "no worker serves any endpoint, here or on another replica"
        if self.limiter.outage and not self.limiter.fail_open:
            problems["limits"] = "shared limit counter unreachable: calls with a rate limit are refused"
        claims = self.runs.claims
        if claims is not None and claims.outage and not claims.fail_open:
            problems["concurrency"] = (
                "shared concurrency claims unreachable: runs under a concurrency rule start only within the "
                "claims still held, refuse rules answer 503"
            )
        return problems

    def reload(self) -> None:
        """SIGHUP: read the settings again and apply what applies without a restart: the limit rules, the
        hooks and the approval gate (``approval_required``, ``approver_scope``). Settings that do not load,
        or hooks that cannot be made, change nothing (logged)."""
        if self.reload_settings is None:
            return
        try:
            settings = self.reload_settings()
            # Made before anything is applied: a hook that cannot be made refuses the whole reload.
            hooks = (
                self.hooks
                if settings.hooks == self.settings.hooks
                else HookStage.build(settings.hooks, self.metrics)
            )
        except Exception as exc:
            log.error("reload refused, the settings in force stay: %s", exc)
            return
        self.limiter.reload(settings.limits)
        self.runs.reload_concurrency(settings.concurrency)
        log.info("reloaded: %d concurrency rule(s)", len(settings.concurrency))
        self.budgets.reload(settings.budgets)
        self.runs.budgets = self.budgets if settings.budgets else None
        log.info("reloaded: %d limit rule(s), %d budget(s)", len(settings.limits), len(settings.budgets))
        if hooks is not self.hooks:
            # One swap: every point reached from now on runs the new chains; the old stage is closed once
            # the chains running on it are done (HookStage.retire).
            old = self.runs.reload_hooks(hooks)
            self.hooks = hooks
            self.settings.hooks = settings.hooks
            if old is not None:
                old.retire_later()
            log.info("reloaded: %d hook(s)", len(settings.hooks))
        # Read per call (runs/service.py): the next call is gated, or not, by the new patterns.
        if (settings.approval_required, settings.approver_scope) != (
            self.settings.approval_required,
            self.settings.approver_scope,
        ):
            self.settings.approval_required = settings.approval_required
            self.settings.approver_scope = settings.approver_scope
            log.info(
                "reloaded: approval required for %s (approver scope %s)",
                ", ".join(settings.approval_required) or "no endpoint",
                settings.approver_scope,
            )

    def degraded(self) -> dict[str, str]:
        """What works but not as configured, by component (shown by ``/readyz``, still ready)."""
        degraded = {}
        if self.limiter.outage and self.limiter.fail_open:
            degraded["limits"] = "shared limit counter unreachable: rate limits are not enforced"
        claims = self.runs.claims
        if claims is not None and claims.outage and claims.fail_open:
            degraded["concurrency"] = (
                "shared concurrency claims unreachable: each replica allows up to max runs of a key on its own"
            )
        return degraded

    def _build_asgi(self) -> Litestar:
        gateway = self

        @get("/healthz", media_type=MediaType.JSON)
        async def healthz() -> Response[bytes]:
            return json_response({"status": "ok"})

        @get("/readyz")
        async def readyz() -> Response[bytes]:
            problems = await gateway.ready()
            if problems:
                return json_response({"status": "unavailable", "problems": problems}, status=503)
            body: dict[str, Any] = {"status": "ready", "workers": len(gateway.runs.workers)}
            degraded = gateway.degraded()
            if degraded:
                body["degraded"] = degraded
            return json_response(body)

        @get("/openapi.json")
        async def openapi(request: Request[Any, Any, Any]) -> Response[bytes]:
            return Response(gateway.openapi.render(principal_of(request.scope)), media_type=MediaType.JSON)

        @get(["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"])
        async def protected_resource(request: Request[Any, Any, Any]) -> Response[bytes]:
            return json_response(gateway.gate.resource_metadata(request.scope))

        @get("/docs", media_type=MediaType.HTML)
        async def docs() -> Response[bytes]:
            return Response(DOCS_PAGE, media_type=MediaType.HTML)

        mcp_app = self.mcp.asgi

        @asgi("/mcp", is_mount=True, copy_scope=True)
        async def mcp(scope: Any, receive: Any, send: Any) -> None:
            await mcp_app(scope, receive, send)

        a2a_app = self.a2a.asgi

        @asgi("/a2a", is_mount=True, copy_scope=True)
        async def a2a(scope: Any, receive: Any, send: Any) -> None:
            await a2a_app(scope, receive, send)

        @asgi("/.well-known/agent-card.json", copy_scope=True)
        async def agent_card(scope: Any, receive: Any, send: Any) -> None:
            await a2a_app(scope, receive, send)

        debug = self.settings.debug

        def on_gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[bytes]:
            if isinstance(exc, Forbidden) and gateway.runs.audit is not None:
                gateway.runs.audit.denied(request.scope, "rest", request.url.path, exc.message)
            return json_response(error_body(exc), status=exc.status, headers=exc.headers)

        def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
            status = exc.status_code
            message = exc.detail if status < 500 else "internal error"
            if status == 413:
                message = f"request body is larger than {self.settings.max_body_bytes} bytes"
            body = {
                "type": _HTTP_TYPES.get(status, "internal" if status >= 500 else "http_error"),
                "message": message,
            }
            return json_response(body, status=status, headers=exc.headers)

        def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
            log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
            body: dict[str, Any] = {"type": "internal", "message": "internal error"}
            if debug:
                body["traceback"] = traceback.format_exception(exc)
            return json_response(body, status=500)

        return Litestar(
            route_handlers=[
                rest_router(self.settings, self.registry, self.runs, self.gate),
                session_router(self.settings, self.registry, self.runs),
                healthz,
                readyz,
                openapi,
                protected_resource,
                docs,
                mcp,
                a2a,
                agent_card,
                *([approvals_router(self.approvals)] if self.approvals is not None else []),
            ],
            exception_handlers={
                GatewayError: on_gateway_error,
                HTTPException: on_http_error,
                Exception: on_unexpected,
            },
            openapi_config=None,
            logging_config=None,
            request_max_body_size=self.settings.max_body_bytes,
            debug=False,
            on_startup=[self._on_startup],
            on_shutdown=[self.close],
            lifespan=[self.mcp.lifespan],
        )

    def addresses(self, http_port: int, grpc_port: int) -> dict[str, str]:
        scheme = "https" if self.settings.tls_cert_file else "http"
        base = f"{scheme}://{self.settings.http_host}:{http_port}"
        return {
            "REST": f"{base}/v1  (docs: {base}/docs, OpenAPI: {base}/openapi.json)",
            "MCP": f"{base}/mcp  (Streamable HTTP: 2025-11-25 sessions, 2026-07-28 stateless)",
            "A2A": f"{base}/a2a/{{name}}  (JSON-RPC and HTTP+JSON, A2A 1.0 and 0.3; "
            f"card: {base}/.well-known/agent-card.json)",
            "workers (gRPC)": f"{self.settings.grpc_host}:{grpc_port}",
        } | (
            {"metrics": f"http://{self.settings.metrics_host}:{self.settings.metrics_port}/metrics"}
            if self.settings.metrics_port
            else {}
        )

    async def serve(self) -> None:
        """Serve until SIGTERM / SIGINT, then stop taking requests and close in order."""
        settings = self.settings
        os.makedirs(settings.data_dir, exist_ok=True)
        http_socket = _listen(settings.http_host, settings.http_port)
        grpc_server = build_server(settings, self.workers)
        try:
            address = f"{settings.grpc_host}:{settings.grpc_port}"
            credentials = server_credentials(settings)
            if credentials is None:
                grpc_port = grpc_server.add_insecure_port(address)
            else:
                grpc_port = grpc_server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            http_socket.close()
            raise StartupError(
                f"cannot listen on {settings.grpc_host}:{settings.grpc_port} (worker gRPC): {exc}"
            ) from exc
        if settings.metrics_port:
            # Bound before anything starts, as the other two: a port taken is one line, not a traceback.
            try:
                self.metrics.serve(settings.metrics_host, settings.metrics_port)
            except OSError as exc:
                http_socket.close()
                await grpc_server.stop(0)
                raise StartupError(
                    f"cannot listen on {settings.metrics_host}:{settings.metrics_port} (metrics): {exc.strerror}"
                ) from exc
        config = uvicorn.Config(
            self.asgi,
            host=settings.http_host,
            port=settings.http_port,
            http="httptools",
            lifespan="on",
            access_log=False,
            ws_max_size=settings.max_body_bytes + FRAME_ENVELOPE,  # session frames (fronts/session.py)
            log_level=settings.log_level.lower(),
            # JSON logs: uvicorn's loggers go through the root logger's JSON handler, not their own.
            log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
            ssl_certfile=settings.tls_cert_file or None,
            ssl_keyfile=settings.tls_key_file or None,
            timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
        )
        # The stores and the bus open before the server starts: one that cannot is one line, not a traceback
        # out of the application's lifespan.
        try:
            await self.start()
        except _CANNOT_START as exc:
            http_socket.close()
            await grpc_server.stop(0)
            with contextlib.suppress(Exception):
                await self.close()  # what did open
            raise StartupError(exc.message if isinstance(exc, GatewayError) else str(exc)) from exc
        http_server = uvicorn.Server(config)
        # The gateway owns SIGTERM / SIGINT: it stops gRPC first, then HTTP.
        http_server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        http_task = asyncio.create_task(http_server.serve(sockets=[http_socket]))
        while not http_server.started:  # start-up hooks done: the stores and the bus are open
            if http_task.done():
                await grpc_server.stop(0)
                raise StartupError("the HTTP server stopped while starting (see the log above)")
            await asyncio.sleep(0.02)
        # Workers only once the run store is open: a worker's Hello reads the runs it still holds.
        await grpc_server.start()
        http_port = http_socket.getsockname()[1]
        # Everything loaded so far lives as long as the process: keep it out of the collector's way, so
        # full collections under load stay short (they otherwise walk every imported module's objects).
        gc.collect()
        gc.freeze()
        lines = [f"  {name:<15} {address}" for name, address in self.addresses(http_port, grpc_port).items()]
        sys.stdout.write("FastAgentic gateway ready\n" + "\n".join(lines) + "\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if self.reload_settings is not None:
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, http_task}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        await grpc_server.stop(grace=1.0)
        http_server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await http_task
        waiter.cancel()


class _Peers:
    """What other replicas ask of this one, through the bus."""

    def __init__(self, runs: RunService, registry: EndpointRegistry, completer: Completer) -> None:
        self.runs = runs
        self.registry = registry
        self.completer = completer

    def on_cancel(self, notice: CancelNotice) -> bool:
        return self.runs.on_cancel(notice)

    def on_catalogue(
        self, replica: str, endpoints: list[EndpointInfo], completions: dict[str, list[str]]
    ) -> None:
        self.registry.set_remote(replica, endpoints, completions)

    async def on_complete(self, request: CompletionRequest) -> Completion | None:
        return await self.completer.complete_here(request)


#: What opening the stores and the bus raises when they cannot be used (unreachable, refused, a schema newer
#: than this gateway, a data directory it cannot write): reported in one line. Anything else is a bug and
#: keeps its traceback.
_CANNOT_START = (
    GatewayError,
    BusUnavailable,
    OSError,
    RuntimeError,
    ValueError,
    sqlite3.Error,
    psycopg.Error,
)


class StartupError(Exception):
    """The gateway cannot start (e.g. a port is taken); the message says why."""


def _tracing(settings: Settings) -> Any:
    """The gateway's Tracing when the ``tracing`` setting is on, else None (the SDK is not even imported)."""
    if not settings.tracing:
        return None
    from .telemetry.tracing import Tracing

    return Tracing.from_environment()


def _mcp_trace_context(server: Any) -> None:
    """The MCP handlers run in the trace context of their message's ``_meta`` (tracing on)."""
    from .telemetry.tracing import McpTraceContext

    server.middleware.insert(0, McpTraceContext())


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port} (HTTP): {exc.strerror}") from exc
    return sock


def run(settings: Settings, reload: Callable[[], Settings] | None = None) -> int:
    """Serve with ``settings``; ``reload`` reads them again on SIGHUP (the limit rules are applied)."""
    telemetry_logging.configure(settings.log_level, settings.log_format, with_trace=settings.tracing)
    # The store thread and gRPC's poller hand work to the event loop constantly; at the default 5 ms switch
    # interval each handoff can wait that long for the GIL (measured: durable invoke p50 40 ms at c=32).
    sys.setswitchinterval(0.0005)
    try:
        gateway = Gateway(settings)
    except (HookConfigError, ValueError) as exc:  # ValueError: an OTEL_* variable tracing cannot use
        sys.stderr.write(f"fastagentic-gateway: {exc}\n")
        return 2
    gateway.reload_settings = reload
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    try:
        runner(gateway.serve())
    except StartupError as exc:
        sys.stderr.write(f"fastagentic-gateway: {exc}\n")
        return 1
    return 0


__all__ = ["Gateway", "run"]
