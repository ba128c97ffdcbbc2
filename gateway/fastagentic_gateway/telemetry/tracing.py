"""Traces: OpenTelemetry spans from the client's request to the worker's LLM and tool calls, exported with OTLP.

Off unless the ``tracing`` setting is on; then the exporter is configured by the standard ``OTEL_*``
environment variables (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``,
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` and headers, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``). Off, nothing here is imported by the hot paths: the fronts and the
run service hold ``None`` instead of a ``Tracing`` and pay one ``is None`` check.

The gateway's provider is its own, not the global one: the ``mcp`` package wraps every message it handles in
a span of the global tracer, which would duplicate the MCP span ``fronts/mcp/asgi.py`` makes (with the
session id the SDK's lacks). The SDK's span stays non-recording and only carries our context into the
handler.

A run outlives the request that created it, and may outlive the gateway process (a restart) or be finished
by another replica. So its spans are not held open: the run's trace id and span id are chosen when it is
accepted and kept with the run (``protocol_meta``, see ``with_trace``), and the run span (``invoke_agent``)
and each attempt's span are emitted, with those ids, when they end: whichever gateway process sees the end
emits them. The worker's spans are children of the attempt's span id, sent in ``Assign.trace_context``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from ..runs.model import Run

log = logging.getLogger("fastagentic.tracing")

_PROPAGATOR = TraceContextTextMapPropagator()
_UNTRACED = (0, 0, 0)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
#: Runs whose spans this process may emit, remembered at most (oldest forgotten: a run another replica
#: finished never ends here).
MAX_TRACKED_RUNS = 100_000


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable names an exporter or protocol this gateway cannot use."""


class _ChosenIds(RandomIdGenerator):
    """Random ids, except the next span id (and trace id of a root) when one is chosen: how a span whose
    ids were decided earlier (and stored with the run) is emitted through the public tracer API."""

    def __init__(self) -> None:
        self.span_id = 0
        self.trace_id = 0

    def generate_span_id(self) -> int:
        chosen, self.span_id = self.span_id, 0
        return chosen or super().generate_span_id()

    def generate_trace_id(self) -> int:
        chosen, self.trace_id = self.trace_id, 0
        return chosen or super().generate_trace_id()


def _exporter(environ: dict[str, str] | os._Environ[str]) -> SpanExporter | None:
    """The span exporter the ``OTEL_*`` variables ask for (OTLP by default), None for ``none``."""
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    if not names or names == ["none"]:
        return None
    if len(names) > 1:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER: one exporter, not {len(names)} ({', '.join(names)})")
    name = names[0]
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, not {name!r}")
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    # The exporters read the endpoint, headers, timeout, compression and certificates from the environment.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be grpc or http/protobuf, not {protocol!r}")


def parent_from_headers(headers: Any) -> Context | None:
    """The W3C trace context of ASGI ``headers`` (``traceparent``, ``tracestate``), None when absent."""
    carrier: dict[str, str] = {}
    for name, value in headers:
        if name == b"traceparent" or name == b"tracestate":
            carrier[name.decode()] = value.decode("latin-1")
    return context_of(carrier) if carrier else None


def context_of(carrier: dict[str, str]) -> Context | None:
    """The context of a W3C carrier, None when it holds no valid ``traceparent``."""
    context = _PROPAGATOR.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


class _RunTrace:
    """A run's trace ids in this process, and its open attempt (span id, start, worker)."""

    __slots__ = (
        "attempt",
        "attempt_span",
        "attempt_start",
        "endpoint",
        "parent_span",
        "previous_attempt",
        "protocol",
        "span_id",
        "start",
        "trace_id",
        "worker",
    )

    def __init__(
        self, trace_id: int, span_id: int, parent_span: int, start: int, endpoint: str, protocol: str
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span = parent_span  # 0: the run span is the trace's root
        self.start = start  # ns
        self.endpoint = endpoint
        self.protocol = protocol
        self.attempt = 0
        self.attempt_span = 0
        self.attempt_start = 0
        self.worker = ""
        self.previous_attempt = 0  # span id of the attempt before the open one (a retry links to it)


class _StoredTrace(msgspec.Struct, omit_defaults=True):
    """The keys ``with_trace`` adds to a run's ``protocol_meta``."""

    traceparent: str = ""
    trace_parent_span: str = ""


_decode_stored = msgspec.json.Decoder(_StoredTrace).decode


class Tracing:
    """The gateway's tracer and what it remembers of runs in flight."""

    def __init__(
        self, service_name: str = "fastagentic-gateway", exporter: SpanExporter | None = None
    ) -> None:
        self._ids = _ChosenIds()
        resource = Resource.create(
            {} if "OTEL_SERVICE_NAME" in os.environ else {"service.name": service_name}
        )
        self.provider = TracerProvider(resource=resource, id_generator=self._ids, shutdown_on_exit=False)
        if exporter is not None:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("fastagentic_gateway")
        self._runs: OrderedDict[str, _RunTrace] = OrderedDict()

    @classmethod
    def from_environment(cls) -> Tracing | None:
        """Tracing as the ``OTEL_*`` variables configure it; None when ``OTEL_SDK_DISABLED`` is true."""
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        return cls(exporter=_exporter(os.environ))

    def close(self) -> None:
        """Export what is buffered, then stop."""
        self.provider.shutdown()

    # ------------------------------------------------------------------ requests

    def server_span(
        self, name: str, parent: Context | None, attributes: dict[str, Any], kind: SpanKind = SpanKind.SERVER
    ) -> Any:
        """A span for a request, made current by ``with``; ``parent`` None: a new trace."""
        return self.tracer.start_as_current_span(
            name, context=parent or Context(), kind=kind, attributes=attributes, end_on_exit=True
        )

    def message_span(
        self, name: str, carrier: dict[str, str] | None, headers: Any, attributes: dict[str, Any]
    ) -> tuple[Any, dict[str, str]]:
        """A JSON-RPC message's server span (MCP), started but not current: its parent is the trace context
        the message carries (``params._meta``: ``carrier``), else the HTTP request's ``traceparent``.
        Returns the span and its own context as a W3C carrier, for the message to carry on to the handler
        (which may run in another task, the session's)."""
        parent = context_of(carrier) if carrier else None
        if parent is None:
            parent = parent_from_headers(headers)
        span = self.tracer.start_span(
            name, context=parent or Context(), kind=SpanKind.SERVER, attributes=attributes
        )
        own: dict[str, str] = {}
        _PROPAGATOR.inject(own, context=trace.set_span_in_context(span))
        return span, own

    # ------------------------------------------------------------------ runs

    def with_trace(self, meta: bytes | None) -> tuple[bytes | None, tuple[int, int, int]]:
        """A new run's ``protocol_meta`` with its trace ids added, from the current span (the request's):
        ``(meta, (trace_id, run span id, parent span id))``; meta unchanged (and zeros) when the request is
        not sampled. The ids are kept with the run so that any gateway process, after any restart, puts its
        attempts and its end in the same trace."""
        parent = trace.get_current_span().get_span_context()
        if parent.is_valid and not parent.trace_flags.sampled:
            return meta, _UNTRACED
        trace_id = parent.trace_id if parent.is_valid else RandomIdGenerator().generate_trace_id()
        span_id = RandomIdGenerator().generate_span_id()
        parent_span = parent.span_id if parent.is_valid else 0
        keys = b'"traceparent":"' + traceparent(trace_id, span_id).encode() + b'"'
        if parent_span:
            keys += b',"trace_parent_span":"' + f"{parent_span:016x}".encode() + b'"'
        if meta is None or meta.strip() in (b"", b"{}"):
            return b"{" + keys + b"}", (trace_id, span_id, parent_span)
        if not meta.lstrip().startswith(b"{"):
            return meta, _UNTRACED  # a front's meta that is not an object: left alone, the run untraced
        return b"{" + keys + b"," + meta.lstrip()[1:], (trace_id, span_id, parent_span)

    def run_created(self, run: Run, ids: tuple[int, int, int]) -> None:
        """Remember an accepted run's ids (``with_trace``), and name the run on the request's span."""
        trace_id, span_id, parent_span = ids
        if not trace_id:
            return
        self._track(
            run.id,
            _RunTrace(trace_id, span_id, parent_span, int(run.created_at * 1e9), run.endpoint, run.protocol),
        )
        current = trace.get_current_span()
        if current.is_recording():
            current.set_attribute("fastagentic.run.id", run.id)
            if run.protocol == "a2a":
                current.set_attribute("a2a.task.id", run.id)
                if run.context_id:
                    current.set_attribute("a2a.context.id", run.context_id)

    def _track(self, run_id: str, record: _RunTrace) -> None:
        self._runs[run_id] = record
        if len(self._runs) > MAX_TRACKED_RUNS:
            self._runs.popitem(last=False)

    def _record_of(self, run: Run) -> _RunTrace | None:
        record = self._runs.get(run.id)
        if record is not None or run.protocol_meta is None:
            return record
        # Accepted by another process (or this one before a restart): the ids kept with the run.
        try:
            stored = _decode_stored(run.protocol_meta)
        except msgspec.DecodeError:
            return None
        context = context_of({"traceparent": stored.traceparent}) if stored.traceparent else None
        if context is None:
            return None
        ids = trace.get_current_span(context).get_span_context()
        try:
            parent_span = int(stored.trace_parent_span, 16) if stored.trace_parent_span else 0
        except ValueError:
            parent_span = 0
        record = _RunTrace(
            ids.trace_id, ids.span_id, parent_span, int(run.created_at * 1e9), run.endpoint, run.protocol
        )
        self._track(run.id, record)
        return record

    def attempt_started(self, run: Run, worker_id: str) -> dict[str, str] | None:
        """An attempt goes to a worker: the ``Assign.trace_context`` its spans continue, None when the run
        is not traced."""
        record = self._record_of(run)
        if record is None:
            return None
        if record.attempt_span and record.attempt != run.attempt:
            self._end_attempt(run.id, record, "superseded by a new attempt")
        if record.attempt != run.attempt or not record.attempt_span:
            record.attempt = run.attempt
            record.attempt_span = RandomIdGenerator().generate_span_id()
            record.attempt_start = time.time_ns()
            record.worker = worker_id
        return {"traceparent": traceparent(record.trace_id, record.attempt_span)}

    def attempt_ended(self, run_id: str, attempt: int, reason: str) -> None:
        """The attempt is over without ending the run (its worker was lost, or handed it back)."""
        record = self._runs.get(run_id)
        if record is not None and record.attempt == attempt and record.attempt_span:
            self._end_attempt(run_id, record, reason)

    def run_ended(self, run: Run) -> None:
        """The run was just stored ended: its open attempt's span and the run's span are emitted."""
        record = self._record_of(run)
        if record is None:
            return
        self._runs.pop(run.id, None)
        status = run.status.value
        failed = run.error is not None and status != "cancelled"
        error = run.error.message if failed and run.error is not None else ""
        error_type = (run.error.type or "RunFailed") if failed and run.error is not None else ""
        if record.attempt_span:
            self._end_attempt(run.id, record, error, error_type=error_type, status=status)
        record.attempt = max(record.attempt, run.attempt)
        self._emit_run(run.id, record, status, error, error_type)

    def _parent(self, trace_id: int, span_id: int) -> Context:
        return trace.set_span_in_context(
            NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED))
        )

    def _end_attempt(
        self, run_id: str, record: _RunTrace, reason: str, *, error_type: str = "", status: str = ""
    ) -> None:
        links = []
        if record.previous_attempt:
            previous = SpanContext(
                record.trace_id, record.previous_attempt, is_remote=True, trace_flags=_SAMPLED
            )
            links.append(Link(previous, {"fastagentic.link": "previous_attempt"}))
        self._ids.span_id = record.attempt_span
        span = self.tracer.start_span(
            f"attempt {record.endpoint}",
            context=self._parent(record.trace_id, record.span_id),
            kind=SpanKind.CLIENT,
            attributes={
                "fastagentic.run.id": run_id,
                "fastagentic.run.attempt": record.attempt,
                "fastagentic.worker.id": record.worker,
                "gen_ai.agent.name": record.endpoint,
            },
            links=links,
            start_time=record.attempt_start,
        )
        if error_type or (not status and reason):
            span.set_status(Status(StatusCode.ERROR, reason or error_type))
            span.set_attribute("error.type", error_type or "AttemptLost")
        if status:
            span.set_attribute("fastagentic.run.status", status)
        span.end()
        record.previous_attempt = record.attempt_span
        record.attempt_span = 0

    def _emit_run(self, run_id: str, record: _RunTrace, status: str, error: str, error_type: str) -> None:
        if record.parent_span:
            context = self._parent(record.trace_id, record.parent_span)
        else:
            context = Context()
            self._ids.trace_id = record.trace_id
        self._ids.span_id = record.span_id
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": record.endpoint,
            "fastagentic.run.id": run_id,
            "fastagentic.run.status": status,
            "fastagentic.run.attempts": record.attempt,
            "fastagentic.protocol": record.protocol,
        }
        if record.protocol == "a2a":
            attributes["a2a.task.id"] = run_id
        span = self.tracer.start_span(
            f"invoke_agent {record.endpoint}",
            context=context,
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=record.start,
        )
        if error_type:
            span.set_status(Status(StatusCode.ERROR, error))
            span.set_attribute("error.type", error_type)
        span.end()


class McpTraceContext:
    """MCP server middleware: the handler of a message runs in the trace context its ``params._meta``
    carries (the MCP span ``fronts/mcp/asgi.py`` put there), so the run it starts joins the request's
    trace, whichever task (the session's) handles it."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        meta = getattr(ctx, "meta", None)
        carrier = (
            {k: v for k, v in meta.items() if k in ("traceparent", "tracestate") and isinstance(v, str)}
            if isinstance(meta, dict)
            else None
        )
        parent = context_of(carrier) if carrier else None
        if parent is None:
            return await call_next(ctx)
        token = otel_context.attach(parent)
        try:
            return await call_next(ctx)
        finally:
            otel_context.detach(token)


__all__ = [
    "McpTraceContext",
    "Tracing",
    "TracingConfigError",
    "context_of",
    "parent_from_headers",
    "traceparent",
]
