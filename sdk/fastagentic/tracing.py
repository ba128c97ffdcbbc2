"""Spans of a run inside the worker, continuing the gateway's trace (``Assign.trace_context``).

The worker derives them from the events the run emits, in one place (the worker's event sink), so every
adapter gets them: ``invoke_agent {endpoint}`` for the attempt, and under it ``chat {model}`` from each
``llm_start`` to its ``llm_end`` (with the ``gen_ai.usage.*`` tokens), ``execute_tool {name}`` from each
``tool_call`` to its ``tool_result``, and a ``checkpoint`` span per checkpoint. Names and attributes follow
the OpenTelemetry GenAI semantic conventions.

Only ``opentelemetry-api`` is needed (the ``otel`` extra); spans go to the process's global tracer
provider, which the worker's own code configures, or ``configure_from_environment`` from the standard
``OTEL_*`` variables when ``opentelemetry-sdk`` and an OTLP exporter are installed. Without the API, or
when the gateway traces nothing (an empty ``trace_context``), nothing here runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import msgspec

log = logging.getLogger("fastagentic.tracing")

_decode = msgspec.json.decode
_tracer: Any = None
_unavailable = False


def _get_tracer() -> Any:
    """The tracer of the global provider; None when ``opentelemetry-api`` is not installed."""
    global _tracer, _unavailable
    if _tracer is None and not _unavailable:
        try:
            from opentelemetry import trace
        except ImportError:
            _unavailable = True
            log.info("the gateway traces runs, but opentelemetry-api is not installed: no worker spans")
            return None
        from . import __version__

        _tracer = trace.get_tracer("fastagentic", __version__)
    return _tracer


def configure_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Install an OTLP-exporting tracer provider as the global one when ``OTEL_TRACES_EXPORTER`` asks for
    ``otlp`` (or ``console``), ``opentelemetry-sdk`` and the exporter are installed, and no provider is
    set yet. Protocol ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``: ``http/protobuf`` (default) or ``grpc``;
    endpoint, headers and the rest as the exporters read them. True when it installed one."""
    env = os.environ if environ is None else environ
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if exporter_name in ("", "none") or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER is set but opentelemetry-sdk is not installed: no worker spans exported"
        )
        return False
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # the application configured its own
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        protocol = env.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        )
        try:
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                    OTLPSpanExporter,
                )
        except ImportError:
            log.warning("no OTLP exporter for protocol %s is installed: no worker spans exported", protocol)
            return False
        exporter = OTLPSpanExporter()
    else:
        log.warning(
            "OTEL_TRACES_EXPORTER=%s is not otlp, console or none: no worker spans exported", exporter_name
        )
        return False
    attributes = {} if "OTEL_SERVICE_NAME" in env else {"service.name": "fastagentic-worker"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def run_spans(trace_context: Mapping[str, str], endpoint: str, run_id: str, attempt: int) -> RunSpans | None:
    """The spans of one attempt, children of the gateway's attempt span; None without the API."""
    tracer = _get_tracer()
    if tracer is None:
        return None
    return RunSpans(tracer, trace_context, endpoint, run_id, attempt)


class RunSpans:
    """One attempt's spans: its ``invoke_agent`` span, and the LLM and tool calls derived from its events."""

    __slots__ = ("_context", "_llm", "_tools", "root", "tracer")

    def __init__(
        self, tracer: Any, trace_context: Mapping[str, str], endpoint: str, run_id: str, attempt: int
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(dict(trace_context))
        self.tracer = tracer
        self.root = tracer.start_span(
            f"invoke_agent {endpoint}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": endpoint,
                "fastagentic.run.id": run_id,
                "fastagentic.run.attempt": attempt,
            },
        )
        self._context = trace.set_span_in_context(self.root)
        self._llm: list[tuple[str, Any]] = []  # (model, span) of LLM calls started and not ended
        self._tools: dict[str, Any] = {}  # tool call id -> its span

    def attach(self) -> object:
        """Make the attempt's span current (in the run's task): the application's own spans nest in it."""
        from opentelemetry import context

        return context.attach(self._context)

    def event(self, kind: str, data: bytes, checkpoint: bytes | None) -> None:
        if kind == "llm_start":
            self._llm_start(_object(data))
        elif kind == "llm_end":
            self._llm_end(_object(data))
        elif kind == "tool_call":
            self._tool_call(_object(data))
        elif kind == "tool_result":
            self._tool_result(_object(data))
        elif kind == "checkpoint":
            span = self._start("checkpoint", {"fastagentic.checkpoint.bytes": len(checkpoint or b"")})
            span.end()

    def _start(self, name: str, attributes: dict[str, Any], client: bool = False) -> Any:
        from opentelemetry.trace import SpanKind

        kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
        return self.tracer.start_span(name, context=self._context, kind=kind, attributes=attributes)

    def _llm_start(self, data: dict[str, Any]) -> None:
        model = str(data.get("model") or "unknown")
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        self._llm.append((model, self._start(f"chat {model}", attributes, client=True)))

    def _llm_end(self, data: dict[str, Any]) -> None:
        model = str(data.get("model") or "unknown")
        found = next((i for i in range(len(self._llm) - 1, -1, -1) if self._llm[i][0] == model), None)
        if found is None and self._llm:
            found = len(self._llm) - 1
        if found is not None:
            span = self._llm.pop(found)[1]
        else:  # usage reported without an llm_start (ctx.usage alone): the call, as a point in time
            span = self._start(
                f"chat {model}", {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}, client=True
            )
        span.set_attribute("gen_ai.response.model", model)
        for key in ("input_tokens", "output_tokens"):
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                span.set_attribute(f"gen_ai.usage.{key}", value)
        cost = data.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            span.set_attribute("fastagentic.usage.cost", float(cost))
        span.end()

    def _tool_call(self, data: dict[str, Any]) -> None:
        name = str(data.get("name") or "tool")
        call_id = str(data.get("id") or "")
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
        if call_id:
            attributes["gen_ai.tool.call.id"] = call_id
        span = self._start(f"execute_tool {name}", attributes)
        previous = self._tools.pop(call_id, None)
        if previous is not None:
            previous.end()
        self._tools[call_id] = span

    def _tool_result(self, data: dict[str, Any]) -> None:
        span = self._tools.pop(str(data.get("id") or ""), None)
        if span is None:
            return
        error = data.get("error")
        if error:
            from opentelemetry.trace import StatusCode

            kind = error.get("type") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            span.set_attribute("error.type", str(kind or "ToolError"))
            span.set_status(StatusCode.ERROR, str(message or ""))
        span.end()

    def end(self, done: Any = None, reason: str = "") -> None:
        """The attempt is over: ``done`` the pb.Done sent (None: dropped for ``reason``); open calls end."""
        from opentelemetry.trace import StatusCode

        for _, span in self._llm:
            span.end()
        for span in self._tools.values():
            span.end()
        self._llm.clear()
        self._tools.clear()
        if done is None:
            self.root.set_attribute("fastagentic.run.outcome", "dropped")
            self.root.set_status(StatusCode.ERROR, reason)
            self.root.set_attribute("error.type", "Dropped")
        elif done.HasField("error"):
            self.root.set_attribute("fastagentic.run.outcome", "failed")
            self.root.set_attribute("error.type", done.error.type)
            self.root.set_status(StatusCode.ERROR, done.error.message)
        else:
            self.root.set_attribute("fastagentic.run.outcome", "cancelled" if done.cancelled else "succeeded")
        self.root.end()


def _object(data: bytes) -> dict[str, Any]:
    try:
        value = _decode(data)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["RunSpans", "configure_from_environment", "run_spans"]
