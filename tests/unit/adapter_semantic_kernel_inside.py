"""The Semantic Kernel adapter in process, on semantic-kernel's own release, with the example's scripted chat
service (a ChatCompletionClientBase subclass). Runs INSIDE the semantic-kernel environment
(tests/framework_venvs.py builds it; test_adapters_semantic_kernel.py starts this file there): semantic-kernel
cannot be installed beside the gateway. The name is outside pytest's ``test_*.py`` pattern so the main suite
never collects it.

Schemas from the agent and from a function's parameters, LLM calls in order with usage on each ``llm_end``
and streamed tokens, function calls through the central checks (a refused call never runs, a result is
masked before the model sees it), a function's error shown to the model, a service's exception failing the
run, cancellation reaching the agent's function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import msgspec
import pytest
from semantic_kernel import Kernel
from semantic_kernel.agents import ChatCompletionAgent
from semantic_kernel.connectors.ai import FunctionChoiceBehavior
from semantic_kernel.contents import ChatHistory
from semantic_kernel.functions import KernelFunctionFromMethod, kernel_function

from examples.semantic_kernel_agent import (
    Call,
    Facts,
    ScriptedChatService,
    facts,
    kernel,
    last_result,
    summarize,
)
from fastagentic import App
from fastagentic.adapters import SemanticKernelAdapter, adapter_for
from fastagentic.hooks import Verdict
from fastagentic.schema import InputError
from fastagentic.testing import check_adapter, check_cancellation, check_event_order, run_adapter
from tests.workers.semantic_kernel_worker import failing, ticker

SECRET = "4111-1111-1111-1111"
FACT = "Owls hunt at night and can turn their heads 270 degrees."
ANSWER = f"In one line: {FACT}"


def test_an_agent_is_found_and_a_function_s_input_is_its_parameters() -> None:
    adapter = adapter_for(facts)
    assert isinstance(adapter, SemanticKernelAdapter) and adapter.name == "facts"
    app = App("t")
    app.agent(facts)
    app.agent(SemanticKernelAdapter(summarize, kernel=kernel))
    shape = app.endpoint("facts").shape
    assert shape.input_schema["required"] == ["prompt"]
    assert app.endpoint("facts").output_schema["type"] == "string"
    summary = app.endpoint("summarize")
    assert summary.shape.input_schema["required"] == ["topic"]
    assert summary.output_schema["type"] == "string"


async def test_a_native_function_keeps_its_parameter_and_return_types() -> None:
    @kernel_function(name="add", description="Add two numbers")
    def add(a: Annotated[int, "first"], b: Annotated[int, "second"] = 2) -> int:
        return a + b

    adapter = SemanticKernelAdapter(KernelFunctionFromMethod(add, plugin_name="Math"))
    assert adapter.name == "add" and adapter.output_type is int
    app = App("t")
    app.agent(adapter)
    schema = app.endpoint("add").shape.input_schema
    assert schema["required"] == ["a"] and schema["properties"]["a"]["type"] == "integer"
    recording = await run_adapter(adapter, {"a": 40})
    assert recording.error is None, recording.error
    assert recording.output == 42 and recording.kinds == []  # the endpoint itself is not a tool call


async def test_the_agent_keeps_the_contract() -> None:
    recording = await check_adapter(SemanticKernelAdapter(facts), {"prompt": "owls"})
    assert recording.output == ANSWER


async def test_agent_llm_calls_and_tools_come_in_order_with_usage_and_tokens() -> None:
    recording = await run_adapter(facts, {"prompt": "owls"})
    assert recording.error is None, recording.error
    kinds = [k for k in recording.kinds if k != "token"]
    assert kinds == ["llm_start", "llm_end", "tool_call", "tool_result", "llm_start", "message", "llm_end"]
    call = recording.of("tool_call")[
        0
    ]  # the id of the model's FunctionCallContent (the service counts calls)
    assert call == {"id": call["id"], "name": "Facts-lookup", "arguments": {"topic": "owls"}}
    assert call["id"].startswith("call-")
    assert recording.of("tool_result") == [{"id": call["id"], "name": "Facts-lookup", "result": FACT}]
    # 10 tokens a message in (system + user, then + the call and its result), 6 out: what the service reported.
    assert recording.of("llm_end") == [
        {"model": "scripted-facts", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-facts", "input_tokens": 40, "output_tokens": 6},
    ]
    streamed = "".join(data["text"] for data in recording.of("token"))
    assert streamed == recording.of("message")[-1]["text"] == ANSWER
    last_start = max(i for i, e in enumerate(recording.events) if e.kind == "llm_start")
    first_token = min(i for i, e in enumerate(recording.events) if e.kind == "token")
    assert first_token > last_start
    assert recording.output == ANSWER


async def test_without_streaming_the_agent_gives_messages_and_no_tokens() -> None:
    recording = await run_adapter(
        SemanticKernelAdapter(facts, name="plain", stream=False), {"prompt": "owls"}
    )
    assert recording.error is None, recording.error
    assert recording.kinds == [
        "llm_start",
        "llm_end",
        "tool_call",
        "tool_result",
        "llm_start",
        "message",
        "llm_end",
    ]
    assert recording.output == ANSWER


async def test_a_prompt_function_calls_its_functions_with_usage() -> None:
    recording = await run_adapter(SemanticKernelAdapter(summarize, kernel=kernel), {"topic": "owls"})
    assert recording.error is None, recording.error
    assert recording.kinds == [
        "llm_start",
        "llm_end",
        "tool_call",
        "tool_result",
        "llm_start",
        "message",
        "llm_end",
    ]
    assert recording.of("llm_end")[1] == {"model": "scripted-summary", "input_tokens": 30, "output_tokens": 6}
    assert recording.output == ANSWER


async def test_unknown_input_is_refused_before_the_agent_runs() -> None:
    with pytest.raises(InputError, match="extra"):
        await run_adapter(facts, {"prompt": "owls", "extra": 1})
    with pytest.raises(InputError, match="topic"):
        await run_adapter(SemanticKernelAdapter(summarize, kernel=kernel), {})


def test_other_objects_are_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match="ChatCompletionAgent or KernelFunction, not Kernel"):
        SemanticKernelAdapter(Kernel())  # type: ignore[arg-type]


class Policy:
    """The gateway's tool chains as a worker's checks see them: ``Desk-shell`` refused by hook ``policy``,
    every result with ``SECRET`` masked by hook ``pii``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, point: str, name: str, data: bytes) -> Verdict | None:
        payload = msgspec.json.decode(data)
        self.asked.append((point, name))
        if point == "on_tool_call":
            if name == "Desk-shell":
                return Verdict("reject", reason="no shell commands", hook="policy")
            return Verdict("proceed")
        text = json.dumps(payload.get("result"))
        if SECRET in text:
            masked = {**payload, "result": json.loads(text.replace(SECRET, "[card]"))}
            return Verdict("modify", data=msgspec.json.encode(masked), hook="pii")
        return Verdict("proceed")


def _desk(ran: list[str]) -> ChatCompletionAgent:
    class Desk:
        @kernel_function(description="Run a shell command.")
        def shell(self, command: str) -> str:
            ran.append(f"shell {command}")
            return "done"

        @kernel_function(description="Look a customer's card up.")
        def card(self, key: str) -> str:
            ran.append(f"card {key}")
            return f"card of {key}: {SECRET}"

    seen: list[str] = []

    def script(history: ChatHistory) -> str | Call:
        found = last_result(history)
        if found is not None:
            seen.append(str(found))
        if len(seen) >= 2:
            return " | ".join(seen)
        if seen:
            return Call("Desk-card", key="ada")
        return Call("Desk-shell", command="rm -rf /")

    return ChatCompletionAgent(
        name="desk",
        instructions="Help.",
        service=ScriptedChatService(ai_model_id="m", script=script),
        plugins=[Desk()],
        function_choice_behavior=FunctionChoiceBehavior.Auto(),
    )


async def test_function_calls_go_through_the_central_checks() -> None:
    ran: list[str] = []
    policy = Policy()
    recording = await run_adapter(_desk(ran), {"prompt": "help"}, checker=policy)
    assert recording.error is None, recording.error
    assert ran == ["card ada"]  # shell never ran
    results = {data["name"]: data for data in recording.of("tool_result")}
    assert results["Desk-shell"]["error"]["type"] == "ToolRejected"
    assert "call rejected by hook 'policy': no shell commands" in results["Desk-shell"]["error"]["message"]
    assert results["Desk-card"]["result"] == "card of ada: [card]"
    # The model saw the refusal (SK's error text) and the masked result, never the card.
    assert "no shell commands" in recording.output and "card of ada: [card]" in recording.output
    for event in recording.events:
        assert SECRET not in json.dumps(event.data), (event.kind, event.data)
    assert policy.asked == [
        ("on_tool_call", "Desk-shell"),
        ("on_tool_call", "Desk-card"),
        ("on_tool_result", "Desk-card"),
    ]
    calls = [data["id"] for data in recording.of("tool_call")]
    assert calls == ["call-1", "call-2"] and [d["id"] for d in recording.of("tool_result")] == calls


async def test_without_checks_every_function_runs_unchanged() -> None:
    ran: list[str] = []
    recording = await run_adapter(_desk(ran), {"prompt": "help"})
    assert ran == ["shell rm -rf /", "card ada"]
    assert SECRET in recording.output


async def test_a_functions_error_is_shown_to_the_model_and_the_run_goes_on() -> None:
    class Broken:
        @kernel_function(description="Always fails.")
        def broken(self, x: int) -> str:
            raise ValueError(f"cannot do {x}")

    def script(history: ChatHistory) -> str | Call:
        found = last_result(history)
        return f"saw {found}" if found is not None else Call("Broken-broken", x=3)

    agent = ChatCompletionAgent(
        name="b",
        service=ScriptedChatService(ai_model_id="m", script=script),
        plugins=[Broken()],
        function_choice_behavior=FunctionChoiceBehavior.Auto(),
    )
    recording = await run_adapter(agent, {"prompt": "go"})
    assert recording.error is None, recording.error
    check_event_order(recording)
    result = recording.of("tool_result")[0]
    assert result["name"] == "Broken-broken" and result["error"] == {
        "type": "ValueError",
        "message": "cannot do 3",
    }
    assert "cannot do 3" in recording.output


async def test_a_service_exception_fails_the_run_with_its_type_and_message() -> None:
    recording = await run_adapter(failing, {"prompt": "why"})
    assert isinstance(recording.error, LookupError) and str(recording.error) == "no answer for 'why'"
    check_event_order(recording, complete=False)
    assert recording.kinds == ["llm_start", "llm_end"]


async def test_cancellation_stops_the_agent(tmp_path: Path) -> None:
    marks = tmp_path / "ticks"

    def lines() -> int:
        return len(marks.read_text().split()) if marks.exists() else 0

    await check_cancellation(
        ticker, {"prompt": f"Tick into: {marks}"}, started=lambda r: lines() >= 3, progress=lines
    )


def test_outside_a_run_the_agent_runs_as_before() -> None:
    # The adapter's wrappers and filters (installed above) pass through outside a FastAgentic run.
    import asyncio

    async def direct() -> str:
        reply = await facts.get_response(messages="owls")
        return str(reply.message.content)

    assert asyncio.run(direct()) == ANSWER
    assert Facts().lookup("owls") == FACT


def test_the_sdk_alone_is_installed_here() -> None:
    # This environment is a worker's: the SDK and semantic-kernel, not the gateway's stack.
    import importlib.util

    assert importlib.util.find_spec("litestar") is None
    assert importlib.util.find_spec("semantic_kernel") is not None
