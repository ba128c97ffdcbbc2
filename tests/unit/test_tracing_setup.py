"""Tracing and JSON logs, the parts without processes: where a run keeps its trace ids, the OTEL_*
settings the gateway refuses, the JSON log line, and that tracing off loads no OpenTelemetry SDK."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from fastagentic_gateway.fronts.a2a.mapping import encode_meta, meta_of
from fastagentic_gateway.runs.model import Caller, EndpointKind, Run
from fastagentic_gateway.telemetry.logging import REQUEST_ID, RUN_ID, JsonFormatter
from fastagentic_gateway.telemetry.tracing import Tracing, TracingConfigError, _exporter

ROOT = Path(__file__).resolve().parents[2]
TRACE, SPAN = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7


def _in_span() -> object:
    ids = SpanContext(TRACE, SPAN, is_remote=True, trace_flags=TraceFlags(1))
    return trace.use_span(NonRecordingSpan(ids))


def _run(meta: bytes | None) -> Run:
    return Run(
        id="run_1",
        endpoint="ask",
        kind=EndpointKind.AGENT,
        durable=True,
        caller=Caller(),
        input=b"{}",
        protocol_meta=meta,
        protocol="a2a",
        created_at=1.0,
    )


def test_a_runs_trace_ids_join_the_a2a_meta_without_changing_what_a2a_reads() -> None:
    tracing = Tracing()
    with _in_span():  # type: ignore[attr-defined]
        meta, (trace_id, span_id, parent) = tracing.with_trace(encode_meta("m1", "text:question"))
    assert trace_id == TRACE and parent == SPAN and span_id
    stored = json.loads(meta or b"")
    assert stored["traceparent"] == f"00-{TRACE:032x}-{span_id:016x}-01"
    assert stored["trace_parent_span"] == f"{SPAN:016x}"
    task = meta_of(_run(meta))
    assert task is not None and (task.message_id, task.mode) == ("m1", "text:question")


def test_a_run_accepted_elsewhere_is_traced_from_its_stored_ids() -> None:
    tracing = Tracing()
    with _in_span():  # type: ignore[attr-defined]
        meta, (_, span_id, _) = tracing.with_trace(None)
    other = Tracing()  # another process: nothing in memory
    assign = other.attempt_started(_run(meta), "w1")
    assert assign is not None and assign["traceparent"].startswith(f"00-{TRACE:032x}-")
    assert f"-{span_id:016x}-" not in assign["traceparent"]  # the attempt's own span, under the run's


def test_an_unsampled_request_leaves_the_run_untraced() -> None:
    ids = SpanContext(TRACE, SPAN, is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(ids)):
        meta, ids_ = Tracing().with_trace(None)
    assert meta is None and ids_ == (0, 0, 0)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "must be otlp, console or none"),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, "one exporter"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "grpc or http/protobuf"),
    ],
)
def test_otel_settings_the_gateway_cannot_use_are_refused_by_name(
    environ: dict[str, str], problem: str
) -> None:
    with pytest.raises(TracingConfigError, match=problem):
        _exporter(environ)


def test_none_exports_nothing() -> None:
    assert _exporter({"OTEL_TRACES_EXPORTER": "none"}) is None


def test_a_json_log_line_carries_the_ids_in_context() -> None:
    record = logging.LogRecord("fastagentic.runs", logging.INFO, __file__, 1, "run %s done", ("run_1",), None)
    tokens = REQUEST_ID.set("req-1"), RUN_ID.set("run_1")
    try:
        with _in_span():  # type: ignore[attr-defined]
            line = msgspec.json.decode(JsonFormatter().format(record))
    finally:
        RUN_ID.reset(tokens[1])
        REQUEST_ID.reset(tokens[0])
    assert line["message"] == "run run_1 done" and line["level"] == "info"
    assert line["request_id"] == "req-1" and line["run_id"] == "run_1"
    assert line["trace_id"] == f"{TRACE:032x}" and line["span_id"] == f"{SPAN:016x}"
    bare = msgspec.json.decode(JsonFormatter().format(record))
    assert "request_id" not in bare and "trace_id" not in bare and "run_id" not in bare


def test_tracing_off_loads_no_opentelemetry_sdk(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from fastagentic_gateway.server import Gateway\n"
        "from fastagentic_gateway.settings import load\n"
        f"gateway = Gateway(load(environ={{'FASTAGENTIC_DATA_DIR': {str(tmp_path)!r}}}))\n"
        "assert gateway.tracing is None and gateway.runs.tracing is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
