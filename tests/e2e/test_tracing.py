"""Traces from the client to the worker and back, received by a real OTLP receiver (opentelemetry-proto
messages over gRPC, and once over HTTP); JSON logs carrying the ids; tracing off costs no span."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator

import grpc.aio
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from fastagentic.v1 import worker_pb2 as pb
from fastagentic.v1 import worker_pb2_grpc as pb_grpc
from tests.conftest import Cluster, wait_until
from tests.e2e.a2a_support import collect, request, text_message
from tests.e2e.follow import run_status
from tests.e2e.mcp_support import client as mcp_client
from tests.e2e.otlp_receiver import GrpcReceiver, HttpReceiver, Span

WORKER = "tests.workers.traced_worker:app"
_SERVER, _CLIENT, _INTERNAL = 2, 3, 1  # OTLP span kinds
_ERROR = 2  # OTLP status code


def _otel_env(monkeypatch: pytest.MonkeyPatch, endpoint: str, protocol: str = "grpc") -> None:
    """What the gateway and worker processes (started after this) read: export to ``endpoint``, fast."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")


@pytest.fixture
def receiver() -> Iterator[GrpcReceiver]:
    server = GrpcReceiver().start()
    try:
        yield server
    finally:
        server.stop()


def _client_ids() -> tuple[str, str]:
    """A trace id and span id, as a client's own span would have."""
    return secrets.token_hex(16), secrets.token_hex(8)


def _traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def _one(spans: list[Span], name: str, service: str | None = None) -> Span:
    found = [s for s in spans if s.name == name and (service is None or s.service == service)]
    assert len(found) == 1, f"{len(found)} spans named {name!r} ({service}): {[s.name for s in spans]}"
    return found[0]


def _assert_run_below(spans: list[Span], parent: Span, attempts: int = 1) -> None:
    """Below ``parent`` (the front's span): the run, its attempt(s), the worker's attempt span and, inside
    it, the model call, the tool call and the checkpoint, each with its GenAI attributes."""
    run = _one(spans, "invoke_agent ask", "fastagentic-gateway")
    assert run.parent_span_id == parent.span_id and run.kind == _SERVER
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.agent.name"] == "ask"
    assert run.attributes["fastagentic.run.status"] == "succeeded"
    tried = sorted(
        (s for s in spans if s.name == "attempt ask"), key=lambda s: s.attributes["fastagentic.run.attempt"]
    )
    assert [s.attributes["fastagentic.run.attempt"] for s in tried] == list(range(1, attempts + 1))
    assert all(s.parent_span_id == run.span_id and s.kind == _CLIENT for s in tried)
    last = tried[-1]
    worker = [s for s in spans if s.name == "invoke_agent ask" and s.service == "fastagentic-worker"]
    agent = next(s for s in worker if s.parent_span_id == last.span_id)
    assert agent.kind == _INTERNAL and agent.attributes["fastagentic.run.attempt"] == attempts
    chats = [s for s in spans if s.name == "chat test-model" and s.parent_span_id == agent.span_id]
    assert chats and chats[0].kind == _CLIENT
    assert chats[0].attributes["gen_ai.operation.name"] == "chat"
    assert chats[0].attributes["gen_ai.request.model"] == "test-model"
    assert chats[0].attributes["gen_ai.usage.input_tokens"] == 11
    assert chats[0].attributes["gen_ai.usage.output_tokens"] == 7
    tools = [s for s in spans if s.name == "execute_tool lookup" and s.parent_span_id == agent.span_id]
    assert tools and tools[0].attributes["gen_ai.tool.name"] == "lookup"
    assert tools[0].attributes["gen_ai.operation.name"] == "execute_tool"
    assert tools[0].attributes["gen_ai.tool.call.id"]
    assert any(s.name == "checkpoint" and s.parent_span_id == agent.span_id for s in spans)


#: The spans of a run, the gateway's run span named with its service (the worker makes one of that name too).
_RUN_SPANS = {
    "invoke_agent ask@fastagentic-gateway",
    "invoke_agent ask@fastagentic-worker",  # the (last) worker's, ended and exported after the run's end
    "attempt ask",
    "chat test-model",
    "execute_tool lookup",
    "checkpoint",
}


def test_rest_invoke_is_one_trace_from_the_client_to_the_workers_model_and_tool_calls(
    cluster: Cluster, receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _otel_env(monkeypatch, receiver.endpoint)
    gateway = cluster.start_gateway(tracing="true")
    cluster.start_worker(WORKER)
    trace_id, client_span = _client_ids()
    with gateway.client() as http:
        answer = http.post(
            "/v1/agents/ask/invoke",
            json={"question": "why"},
            headers={"traceparent": _traceparent(trace_id, client_span), "X-Request-ID": "req-trace-1"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == "req-trace-1"
    spans = receiver.received.wait_for(trace_id, {*_RUN_SPANS, "POST /v1/agents/{name:str}/invoke"})
    front = _one(spans, "POST /v1/agents/{name:str}/invoke")
    assert front.parent_span_id == client_span and front.kind == _SERVER
    assert front.attributes["http.response.status_code"] == 200
    assert front.attributes["fastagentic.request.id"] == "req-trace-1"
    assert front.attributes["fastagentic.run.id"] == answer.json()["run_id"]
    _assert_run_below(spans, front)


@pytest.mark.parametrize("revision", ["legacy", "2026-07-28"])
async def test_mcp_tool_call_continues_the_trace_in_its_meta(
    cluster: Cluster, receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch, revision: str
) -> None:
    _otel_env(monkeypatch, receiver.endpoint)
    gateway = cluster.start_gateway(tracing="true")
    cluster.start_worker(WORKER)
    trace_id, client_span = _client_ids()
    # The official client puts the current trace context in params._meta (its own spans are no-ops here).
    ids = SpanContext(int(trace_id, 16), int(client_span, 16), is_remote=False, trace_flags=TraceFlags(1))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(ids)))
    try:
        async with mcp_client(gateway, revision) as mcp:
            result = await mcp.call_tool("ask", {"question": "why"})
    finally:
        otel_context.detach(token)
    assert not result.is_error, result
    spans = await asyncio.to_thread(receiver.received.wait_for, trace_id, {*_RUN_SPANS, "tools/call ask"})
    front = _one(spans, "tools/call ask")
    assert front.parent_span_id == client_span and front.kind == _SERVER
    assert front.attributes["mcp.method.name"] == "tools/call"
    assert front.attributes["gen_ai.tool.name"] == "ask"
    assert front.attributes["jsonrpc.request.id"]
    if revision == "legacy":
        assert front.attributes["mcp.session.id"]
    _assert_run_below(spans, front)


async def test_a2a_message_is_one_trace_with_the_task_and_context_ids(
    cluster: Cluster, receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _otel_env(monkeypatch, receiver.endpoint)
    gateway = cluster.start_gateway(tracing="true")
    cluster.start_worker(WORKER)
    trace_id, client_span = _client_ids()
    headers = {"traceparent": _traceparent(trace_id, client_span), "A2A-Version": "1.0"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        card = await A2ACardResolver(http, gateway.url + "/a2a/ask").get_agent_card()
        config = ClientConfig(httpx_client=http, supported_protocol_bindings=["JSONRPC"], streaming=False)
        a2a = ClientFactory(config).create(card)
        try:
            (item,) = await collect(a2a.send_message(request(text_message("why"))))
        finally:
            await a2a.close()
    task = item.task
    assert task.id and task.context_id
    spans = await asyncio.to_thread(receiver.received.wait_for, trace_id, {*_RUN_SPANS, "POST /a2a*"})
    front = next(s for s in spans if s.name.startswith("POST /a2a") and s.attributes.get("a2a.task.id"))
    assert front.parent_span_id == client_span and front.kind == _SERVER
    assert front.attributes["a2a.task.id"] == task.id
    assert front.attributes["a2a.context.id"] == task.context_id
    _assert_run_below(spans, front)
    assert _one(spans, "invoke_agent ask", "fastagentic-gateway").attributes["a2a.task.id"] == task.id


def test_a_retried_runs_attempts_share_its_trace_across_a_worker_kill(
    cluster: Cluster, receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _otel_env(monkeypatch, receiver.endpoint)
    gateway = cluster.start_gateway(tracing="true")
    first = cluster.start_worker(WORKER)
    trace_id, client_span = _client_ids()
    with gateway.client() as http:
        run_id = http.post(
            "/v1/agents/ask/runs",
            json={"question": "why", "steps": 30, "delay": 0.2},  # 6 s: still running at the kill
            headers={"traceparent": _traceparent(trace_id, client_span)},
        ).json()["run_id"]
    wait_until(lambda: run_status(gateway, run_id).get("last_seq", 0) >= 8, what="two steps")
    first.kill()
    cluster.start_worker(WORKER)
    final = wait_until(
        lambda: (r := run_status(gateway, run_id)).get("status") in {"succeeded", "failed"} and r,
        timeout=40,
        what="the run to finish on the second worker",
    )
    assert final["status"] == "succeeded" and final["attempt"] == 2, final
    spans = receiver.received.wait_for(trace_id, {*_RUN_SPANS, "POST /v1/agents/{name:str}/runs"})
    front = _one(spans, "POST /v1/agents/{name:str}/runs")
    _assert_run_below(spans, front, attempts=2)
    lost, retry = sorted(
        (s for s in spans if s.name == "attempt ask"), key=lambda s: s.attributes["fastagentic.run.attempt"]
    )
    assert lost.status == _ERROR and lost.attributes["error.type"] == "AttemptLost"
    assert retry.links == [(trace_id, lost.span_id)]
    assert _one(spans, "invoke_agent ask", "fastagentic-gateway").attributes["fastagentic.run.attempts"] == 2


def test_otlp_over_http_receives_the_trace(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = HttpReceiver().start()
    try:
        _otel_env(monkeypatch, receiver.endpoint, protocol="http/protobuf")
        gateway = cluster.start_gateway(tracing="true")
        cluster.start_worker(WORKER)
        trace_id, client_span = _client_ids()
        with gateway.client() as http:
            answer = http.post(
                "/v1/agents/ask/invoke",
                json={"question": "why"},
                headers={"traceparent": _traceparent(trace_id, client_span)},
            )
        assert answer.status_code == 200, answer.text
        spans = receiver.received.wait_for(trace_id, {*_RUN_SPANS, "POST /v1/agents/{name:str}/invoke"})
        _assert_run_below(spans, _one(spans, "POST /v1/agents/{name:str}/invoke"))
    finally:
        receiver.stop()


def test_json_logs_carry_the_request_run_trace_and_span_ids(
    cluster: Cluster, receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _otel_env(monkeypatch, receiver.endpoint)
    gateway = cluster.start_gateway(tracing="true", log_format="json", log_level="debug")
    cluster.start_worker(WORKER)
    trace_id, client_span = _client_ids()
    with gateway.client() as http:
        answer = http.post(
            "/v1/agents/ask/invoke",
            json={"question": "why"},
            headers={"traceparent": _traceparent(trace_id, client_span), "X-Request-ID": "req-log-1"},
        )
    run_id = answer.json()["run_id"]
    lines = [line for line in gateway.output().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    accepted = [r for r in records if r.get("run_id") == run_id and r.get("request_id") == "req-log-1"]
    assert accepted, records[-10:]
    assert accepted[0]["trace_id"] == trace_id and len(accepted[0]["span_id"]) == 16
    # Nothing else the gateway wrote is unstructured (uvicorn's lines go through the same handler).
    other = [line for line in gateway.output().splitlines() if line.strip() and not line.startswith("{")]
    assert all(not line.startswith(("INFO", "WARNING", "ERROR")) for line in other), other[:5]


def _assign_of(gateway_url: str, grpc_address: str, headers: dict[str, str]) -> pb.Assign:
    """The Assign a raw worker (the protocol by hand) gets for one run started with ``headers``."""

    async def converse() -> pb.Assign:
        hello = pb.WorkerMessage(
            hello=pb.Hello(
                worker_id="raw",
                protocol_version=1,
                app_name="raw",
                slots=1,
                endpoints=[
                    pb.EndpointSpec(
                        name="raw_agent",
                        kind=pb.ENDPOINT_KIND_AGENT,
                        input_schema=b'{"type":"object"}',
                        output_schema=b"{}",
                    )
                ],
            )
        )
        async with grpc.aio.insecure_channel(grpc_address) as channel:
            stub = pb_grpc.WorkerGatewayStub(channel)
            stop = asyncio.Event()

            async def outgoing():  # type: ignore[no-untyped-def]
                yield pb.WorkerFrame(messages=[hello])
                await stop.wait()

            call = stub.Connect(outgoing())
            started = False
            async for frame in call:
                for message in frame.messages:
                    if message.HasField("welcome") and not started:
                        started = True
                        threading.Thread(
                            target=lambda: httpx.post(
                                f"{gateway_url}/v1/agents/raw_agent/runs",
                                json={},
                                headers=headers,
                                timeout=10,
                            ),
                            daemon=True,
                        ).start()
                    if message.HasField("assign"):
                        stop.set()
                        call.cancel()
                        return message.assign
            raise AssertionError("no Assign came")

    return asyncio.run(asyncio.wait_for(converse(), 20))


@pytest.mark.parametrize("tracing", ["false", "true"])
def test_assign_carries_the_trace_context_only_when_tracing_is_on(
    cluster: Cluster, receiver: GrpcReceiver, monkeypatch: pytest.MonkeyPatch, tracing: str
) -> None:
    _otel_env(monkeypatch, receiver.endpoint)
    gateway = cluster.start_gateway(tracing=tracing)
    trace_id, client_span = _client_ids()
    assign = _assign_of(
        gateway.url, gateway.grpc_address, {"traceparent": _traceparent(trace_id, client_span)}
    )
    response = httpx.get(f"{gateway.url}/healthz", timeout=5)
    assert response.headers["x-request-id"]  # echoed (made up) whether tracing is on or off
    if tracing == "false":
        assert dict(assign.trace_context) == {}
        time.sleep(1)  # ten export intervals (OTEL_BSP_SCHEDULE_DELAY): any span would have come
        assert receiver.received.spans == []
    else:
        parent = dict(assign.trace_context)["traceparent"]
        assert parent.startswith(f"00-{trace_id}-") and parent.endswith("-01")
