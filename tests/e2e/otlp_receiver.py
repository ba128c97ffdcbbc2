"""An OTLP trace receiver for the tracing tests: the official opentelemetry-proto messages, served over
gRPC (a TraceService servicer) and over HTTP (``POST /v1/traces``, protobuf), keeping every span."""

from __future__ import annotations

import http.server
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.conftest import free_port


@dataclass
class Span:
    """One received span, flattened: ids as hex, attributes as Python values."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    status: int
    start: int
    end: int


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, which) if which else None


def _span(service: str, span: Any) -> Span:
    return Span(
        service=service,
        name=span.name,
        kind=span.kind,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        attributes={a.key: _value(a.value) for a in span.attributes},
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        status=span.status.code,
        start=span.start_time_unix_nano,
        end=span.end_time_unix_nano,
    )


@dataclass
class Received:
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        got: list[Span] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                got.extend(_span(str(resource.get("service.name", "")), span) for span in scope_spans.spans)
        with self.lock:
            self.spans.extend(got)

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, names: set[str], timeout: float = 20.0) -> list[Span]:
        """The trace's spans once spans of every name in ``names`` arrived (a name may be a prefix + ``*``,
        and ``name@service`` wants the span of that name from that service: the gateway and the worker both
        make an ``invoke_agent`` span)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.trace(trace_id)
            present = {s.name for s in spans} | {f"{s.name}@{s.service}" for s in spans}
            missing = {
                n
                for n in names
                if not (any(p.startswith(n[:-1]) for p in present) if n.endswith("*") else n in present)
            }
            if not missing:
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"trace {trace_id}: no span {sorted(missing)}; got {sorted(present)}")
            time.sleep(0.1)


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class GrpcReceiver:
    """OTLP/gRPC on a free loopback port: ``endpoint`` is what OTEL_EXPORTER_OTLP_ENDPOINT takes."""

    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        self.port = port or free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self.received), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GrpcReceiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(0)


class HttpReceiver:
    """OTLP/HTTP (protobuf) on a free loopback port: ``POST /v1/traces``."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.add(request)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """``python -m tests.e2e.otlp_receiver PORT``: an OTLP/gRPC receiver in a process of its own (the
    bench's, so that decoding spans takes no CPU from the load generator); on SIGTERM it prints how many
    spans it received and exits."""
    import signal
    import sys

    receiver = GrpcReceiver(int(sys.argv[1])).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    receiver.stop()
    print(len(receiver.received.spans), flush=True)


if __name__ == "__main__":
    main()
