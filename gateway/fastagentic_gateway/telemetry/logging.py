"""Structured logs: with ``log_format = "json"``, one JSON object per line, carrying the ids of what was
going on when the line was written, where known: the request id (``X-Request-ID``), the run id, and the
trace and span ids of the current span (with tracing on), so a log line leads to its trace and back.

The ids come from context variables: the request edge sets the request id for everything a request does,
the run service the run id while it handles a worker's message for that run.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar

import msgspec

#: The id of the HTTP request being handled ("" outside one).
REQUEST_ID: ContextVar[str] = ContextVar("fastagentic_request_id", default="")
#: The id of the run being handled ("" outside one).
RUN_ID: ContextVar[str] = ContextVar("fastagentic_run_id", default="")

_encode = msgspec.json.encode


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", "run_id", "trace_id", "span_id", "exception"}``,
    each id only when known."""

    def __init__(self, with_trace: bool = True) -> None:
        super().__init__()
        self.with_trace = with_trace

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        run_id = getattr(record, "run_id", "") or RUN_ID.get()
        if run_id:
            line["run_id"] = run_id
        if self.with_trace:
            from opentelemetry import trace

            ids = trace.get_current_span().get_span_context()
            if ids.is_valid:
                line["trace_id"] = f"{ids.trace_id:032x}"
                line["span_id"] = f"{ids.span_id:016x}"
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


def configure(level: str, log_format: str, with_trace: bool) -> None:
    """The root logger's one handler (stderr): text, or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(with_trace))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())


__all__ = ["REQUEST_ID", "RUN_ID", "JsonFormatter", "configure"]
