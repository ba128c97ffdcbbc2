"""MCP ``completion/complete`` answered by the worker's completers, end to end.

The official client against real gateway and worker processes; the rogue worker speaks raw gRPC.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import grpc.aio
import mcp_types as types
import pytest

from fastagentic.v1 import worker_pb2 as pb
from fastagentic.v1 import worker_pb2_grpc as pb_grpc
from tests.conftest import Cluster, Gateway
from tests.e2e.mcp_support import MODERN, MODES, WORKER, client

pytestmark = pytest.mark.e2e

TRIP = types.PromptReference(type="ref/prompt", name="trip")


@pytest.mark.parametrize("mode", MODES)
async def test_worker_completes_a_prompt_argument(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        result = await mcp.complete(TRIP, {"name": "city", "value": "p"})
    assert result.completion.values == ["Paris", "Porto", "Prague"]
    assert (result.completion.total, result.completion.has_more) == (3, False)


@pytest.mark.parametrize("mode", MODES)
async def test_completer_sees_the_arguments_already_chosen(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        porto = await mcp.complete(TRIP, {"name": "district", "value": ""}, {"city": "Porto"})
        paris = await mcp.complete(TRIP, {"name": "district", "value": "M"}, {"city": "Paris"})
    assert porto.completion.values == ["Ribeira", "Foz"]
    assert paris.completion.values == ["Marais", "Montmartre"]


@pytest.mark.parametrize("mode", MODES)
async def test_worker_completes_a_resource_template_variable(served_mcp: Gateway, mode: str) -> None:
    ref = types.ResourceTemplateReference(type="ref/resource", uri="notes://{name}")
    async with client(served_mcp, mode) as mcp:
        result = await mcp.complete(ref, {"name": "name", "value": "g"})
    assert result.completion.values == ["groceries", "garden", "goals"]


async def test_a_long_completion_keeps_100_values_and_says_how_many_match(served_mcp: Gateway) -> None:
    async with client(served_mcp) as mcp:
        result = await mcp.complete(TRIP, {"name": "code", "value": "x"})
    assert len(result.completion.values) == 100
    assert result.completion.values[:2] == ["x000", "x001"]
    assert (result.completion.total, result.completion.has_more) == (150, True)


async def test_a_failing_completer_falls_back_to_the_values_the_schema_allows(served_mcp: Gateway) -> None:
    async with client(served_mcp) as mcp:
        result = await mcp.complete(TRIP, {"name": "mood", "value": "b"})
    assert result.completion.values == ["busy"]  # the Literal, since the worker's completer raised


async def test_arguments_without_a_completer_still_complete_from_the_schema(served_mcp: Gateway) -> None:
    ref = types.PromptReference(type="ref/prompt", name="review")
    async with client(served_mcp) as mcp:
        languages = await mcp.complete(ref, {"name": "language", "value": "g"})
        free = await mcp.complete(ref, {"name": "code", "value": "x"})
    assert languages.completion.values == ["go"]
    assert free.completion.values == []


async def test_a_slow_completer_does_not_hold_up_the_workers_runs(served_mcp: Gateway) -> None:
    async with client(served_mcp) as mcp:
        started = time.monotonic()
        completing = asyncio.create_task(mcp.complete(TRIP, {"name": "wait", "value": "3"}))
        await asyncio.sleep(0.3)  # the worker is now inside the completer's time.sleep
        added = await mcp.call_tool("add", {"a": 2, "b": 3})
        added_after = time.monotonic() - started
        assert not completing.done()
        completed = await completing
    assert added.structured_content == {"result": 5}
    assert added_after < 2.5
    assert completed.completion.values == ["finally"]


async def test_a_completer_slower_than_the_timeout_falls_back(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(mcp_completion_timeout="0.5")
    cluster.start_worker(WORKER)
    async with client(gateway) as mcp:
        started = time.monotonic()
        result = await mcp.complete(TRIP, {"name": "wait", "value": "3"})
        waited = time.monotonic() - started
    assert result.completion.values == []
    assert waited < 2.5
    assert "no answer in time" in gateway.output()


# ---------------------------------------------------------------- a rogue worker, over raw gRPC


def _prompt_hello(
    worker_id: str, completions: list[str], kind: pb.EndpointKind = pb.ENDPOINT_KIND_PROMPT
) -> pb.WorkerMessage:
    spec = pb.EndpointSpec(
        name="rogue_prompt",
        kind=kind,
        input_schema=b'{"type":"object","properties":{"q":{"type":"string"}}}',
        output_schema=b"{}",
        completions=completions,
    )
    hello = pb.Hello(worker_id=worker_id, protocol_version=1, app_name="rogue", endpoints=[spec], slots=1)
    return pb.WorkerMessage(hello=hello)


class RogueWorker:
    """One raw Connect stream: what it sends is up to the test."""

    def __init__(self, call: Any, queue: asyncio.Queue[pb.WorkerMessage]) -> None:
        self.call = call
        self.queue = queue

    async def read(self) -> pb.GatewayMessage:
        while True:
            frame = await asyncio.wait_for(self.call.read(), 10)
            assert frame is not grpc.aio.EOF, "the gateway closed the stream"
            for message in frame.messages:
                return message  # the tests expect one message per frame here

    async def send(self, message: pb.WorkerMessage) -> None:
        await self.queue.put(message)


async def _connect(channel: grpc.aio.Channel, hello: pb.WorkerMessage) -> RogueWorker:
    queue: asyncio.Queue[pb.WorkerMessage] = asyncio.Queue()
    await queue.put(hello)

    async def outgoing():  # type: ignore[no-untyped-def]
        while True:
            yield pb.WorkerFrame(messages=[await queue.get()])

    return RogueWorker(pb_grpc.WorkerGatewayStub(channel).Connect(outgoing()), queue)


async def test_rogue_completion_answers_are_bounded(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    ref = types.PromptReference(type="ref/prompt", name="rogue_prompt")
    async with grpc.aio.insecure_channel(gateway.grpc_address) as channel:
        rogue = await _connect(channel, _prompt_hello("rogue-c", ["q"]))
        assert (await rogue.read()).HasField("welcome")
        async with client(gateway, MODERN) as mcp:
            # An answer to a request the gateway is not waiting for is ignored; the real one is used.
            pending = asyncio.create_task(mcp.complete(ref, {"name": "q", "value": "a"}, {"x": "1"}))
            request = (await rogue.read()).complete
            assert (request.endpoint, request.argument, request.value) == ("rogue_prompt", "q", "a")
            assert dict(request.arguments) == {}  # "x" is not an argument of the prompt: not passed on
            await rogue.send(pb.WorkerMessage(completion=pb.Completion(request_id="made-up", values=["x"])))
            await rogue.send(
                pb.WorkerMessage(
                    completion=pb.Completion(request_id=request.request_id, values=["alpha", "apex"], total=2)
                )
            )
            answered = await pending
            assert answered.completion.values == ["alpha", "apex"]

            # More than 100 values breaks the protocol: the worker is disconnected, the client still answered.
            pending = asyncio.create_task(mcp.complete(ref, {"name": "q", "value": ""}))
            request = (await rogue.read()).complete
            flood = pb.Completion(request_id=request.request_id, values=[str(n) for n in range(101)])
            await rogue.send(pb.WorkerMessage(completion=flood))
            fallback = await pending
            reject = await rogue.read()
    assert fallback.completion.values == []
    assert reject.reject.code == "protocol_violation"
    assert "101 values" in reject.reject.message


async def test_rogue_completion_with_an_overlong_value_is_a_violation(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    ref = types.PromptReference(type="ref/prompt", name="rogue_prompt")
    async with grpc.aio.insecure_channel(gateway.grpc_address) as channel:
        rogue = await _connect(channel, _prompt_hello("rogue-d", ["q"]))
        assert (await rogue.read()).HasField("welcome")
        async with client(gateway, MODERN) as mcp:
            pending = asyncio.create_task(mcp.complete(ref, {"name": "q", "value": ""}))
            request = (await rogue.read()).complete
            long = pb.Completion(request_id=request.request_id, values=["ok", "y" * 1001])
            await rogue.send(pb.WorkerMessage(completion=long))
            fallback = await pending
            reject = await rogue.read()
    assert fallback.completion.values == []
    assert reject.reject.code == "protocol_violation"


@pytest.mark.parametrize(
    ("completions", "kind", "reason"),
    [
        (["nope"], pb.ENDPOINT_KIND_PROMPT, "not arguments of the endpoint"),
        (["q"], pb.ENDPOINT_KIND_TOOL, "only prompts and resources"),
    ],
)
async def test_completions_that_cannot_be_made_are_refused_at_registration(
    gateway: Gateway, completions: list[str], kind: pb.EndpointKind, reason: str
) -> None:
    async with grpc.aio.insecure_channel(gateway.grpc_address) as channel:
        rogue = await _connect(channel, _prompt_hello("rogue-e", completions, kind))
        refused = await rogue.read()
    assert refused.reject.code == "invalid_registration"
    assert reason in refused.reject.message
