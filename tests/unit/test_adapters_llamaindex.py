"""The LlamaIndex adapter in process, through the contract kit, on llama-index-core's own release with a
scripted ``MockFunctionCallingLLM`` subclass (examples/llamaindex_agent.py): discovery and schemas, event
order with usage for a FunctionAgent, a query engine and a chat engine, structured output (``output_cls``),
a multi-agent AgentWorkflow, a tool's exception (LlamaIndex shows it to the model), an LLM's exception
failing the run, and cancellation reaching the running tool."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from pydantic import BaseModel

from examples.llamaindex_agent import (
    ScriptedLLM,
    calculator,
    call,
    chat,
    docs,
    prompt_of,
    tool_outputs,
)
from fastagentic import App
from fastagentic.adapters import LlamaIndexAdapter, adapter_for
from fastagentic.adapters.llamaindex import Prompt, usage_of
from fastagentic.testing import check_adapter, check_cancellation, check_event_order, run_adapter

QUESTION = {"prompt": "add 2 and 40"}


def _calls_once(name: str, arguments: dict[str, Any]) -> Any:
    def script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
        results = tool_outputs(messages)
        if results:
            return f"got {results[-1]}"
        return call(name, arguments, f"call_{name}")

    return script


def test_an_agent_is_found_its_adapter_named_and_described_after_it() -> None:
    adapter = adapter_for(calculator)
    assert isinstance(adapter, LlamaIndexAdapter)
    assert adapter.name == "calculator" and adapter.description.startswith("Adds the numbers")
    assert adapter.input_type is Prompt and adapter.output_type is str
    assert isinstance(adapter_for(docs), LlamaIndexAdapter) and isinstance(
        adapter_for(chat), LlamaIndexAdapter
    )


async def test_the_calculator_keeps_the_contract() -> None:
    recording = await check_adapter(calculator, QUESTION)
    assert recording.output == "The sum is 42."


async def test_agent_events_come_in_order_with_usage_on_each_llm_end() -> None:
    recording = await run_adapter(calculator, QUESTION)
    assert recording.kinds == [
        "llm_start",
        "llm_end",
        "tool_call",
        "tool_result",
        "llm_start",
        *["token"] * 4,
        "message",
        "llm_end",
    ]
    assert recording.of("tool_call") == [{"id": "call_add", "name": "add", "arguments": {"a": 2, "b": 40}}]
    assert recording.of("tool_result") == [{"id": "call_add", "name": "add", "result": 42}]
    assert recording.of("llm_end") == [
        {"model": "scripted-calculator", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-calculator", "input_tokens": 40, "output_tokens": 6},
    ]
    assert [d["text"] for d in recording.of("token")] == ["The", " sum", " is", " 42."]


async def test_a_query_engine_streams_its_answer_between_llm_start_and_llm_end() -> None:
    recording = await run_adapter(LlamaIndexAdapter(docs, name="docs"), {"prompt": "what is it?"})
    assert recording.error is None
    assert recording.output == "From the documents: FastAgentic serves agents over REST, MCP and A2A."
    kinds = recording.kinds
    assert kinds[0] == "llm_start" and kinds[-2:] == ["message", "llm_end"]
    assert set(kinds[1:-2]) == {"token"}
    assert "".join(d["text"] for d in recording.of("token")) == recording.output
    assert recording.of("llm_end") == [{"model": "scripted-docs", "input_tokens": 20, "output_tokens": 6}]
    check_event_order(recording)


async def test_a_chat_engine_streams_its_reply() -> None:
    recording = await check_adapter(LlamaIndexAdapter(chat, name="chat"), {"prompt": "hello there"})
    assert recording.output == "You said: hello there"
    assert "".join(d["text"] for d in recording.of("token")) == "You said: hello there"
    assert recording.of("llm_end") == [{"model": "scripted-chat", "input_tokens": 10, "output_tokens": 6}]


class Sum(BaseModel):
    a: int
    b: int
    total: int


def _structured_script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
    # The structured output call: the conversation so far, in one user message, to be formatted.
    if "<current_conversation>" in prompt_of(messages):
        return call("Sum", {"a": 2, "b": 40, "total": 42}, "call_sum")
    results = tool_outputs(messages)
    if results:
        return f"The sum is {results[-1]}."
    return call("add", {"a": 2, "b": 40}, "call_add")


async def test_an_agent_with_output_cls_answers_with_its_structured_response() -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = FunctionAgent(
        name="summer", tools=[add], llm=ScriptedLLM(_structured_script, "scripted-sum"), output_cls=Sum
    )
    app = App("t")
    app.agent(agent)
    assert app.endpoint("summer").output_schema["required"] == ["a", "b", "total"]
    recording = await run_adapter(agent, QUESTION)
    assert recording.error is None, recording.error
    assert recording.output == {"a": 2, "b": 40, "total": 42}
    # The structured output call is a model call of its own, after the agent's answer.
    assert recording.kinds[-2:] == ["llm_start", "llm_end"] and len(recording.of("llm_end")) == 3
    check_event_order(recording)


async def test_an_agent_workflow_hands_off_between_agents() -> None:
    def handoff_script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
        if tool_outputs(messages):
            return "handed over"
        return call("handoff", {"to_agent": "adder", "reason": "sums"}, "call_handoff")

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    front = FunctionAgent(
        name="front",
        description="routes",
        llm=ScriptedLLM(handoff_script, "scripted-front"),
        can_handoff_to=["adder"],
    )

    def adder_script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
        sums = [r for r in tool_outputs(messages) if r.isdigit()]  # the handoff's own output is text
        return f"got {sums[-1]}" if sums else call("add", {"a": 1, "b": 2}, "call_add")

    adder = FunctionAgent(
        name="adder", description="adds", tools=[add], llm=ScriptedLLM(adder_script, "scripted-adder")
    )
    workflow = AgentWorkflow(agents=[front, adder], root_agent="front")
    recording = await run_adapter(LlamaIndexAdapter(workflow, name="desk"), {"prompt": "add 1 and 2"})
    assert recording.error is None, recording.error
    assert recording.output == "got 3"
    assert [d["name"] for d in recording.of("tool_call")] == ["handoff", "add"]
    assert [d["model"] for d in recording.of("llm_start")] == [
        "scripted-front",
        "scripted-adder",
        "scripted-adder",
    ]
    check_event_order(recording)


async def test_a_tools_exception_is_its_tool_result_error_and_the_model_sees_it() -> None:
    def lookup(order: int) -> str:
        """Look an order up."""
        raise LookupError(f"no such order: {order}")

    agent = FunctionAgent(
        name="orders",
        tools=[lookup],
        llm=ScriptedLLM(_calls_once("lookup", {"order": 42}), "scripted-orders"),
    )
    recording = await run_adapter(agent, {"prompt": "where is it"})
    assert recording.error is None
    assert recording.of("tool_result") == [
        {
            "id": "call_lookup",
            "name": "lookup",
            "error": {"type": "LookupError", "message": "no such order: 42"},
        }
    ]
    assert recording.output == "got no such order: 42"
    check_event_order(recording)


async def test_an_llms_exception_fails_the_run_with_its_type_and_message() -> None:
    def broken(messages: Sequence[ChatMessage]) -> str:
        raise ConnectionError("the model is down")

    agent = FunctionAgent(name="down", llm=ScriptedLLM(broken, "scripted-down"))
    recording = await run_adapter(agent, {"prompt": "hi"})
    assert isinstance(recording.error, ConnectionError) and str(recording.error) == "the model is down"
    check_event_order(recording, complete=True)


async def test_cancelling_the_run_cancels_the_running_tool() -> None:
    ticks: list[int] = []

    async def tick() -> int:
        """Tick for a while."""
        for count in range(500):
            ticks.append(count)
            await asyncio.sleep(0.01)
        return 500

    agent = FunctionAgent(
        name="ticker", tools=[tick], llm=ScriptedLLM(_calls_once("tick", {}), "scripted-ticker")
    )
    await check_cancellation(
        agent, {"prompt": "tick"}, started=lambda r: len(ticks) >= 3, progress=lambda: len(ticks)
    )


async def test_concurrent_runs_keep_their_own_model_calls() -> None:
    first, second = await asyncio.gather(
        run_adapter(calculator, {"prompt": "add 1 and 2"}), run_adapter(calculator, {"prompt": "add 3 and 4"})
    )
    for recording, answer in ((first, "The sum is 3."), (second, "The sum is 7.")):
        assert recording.output == answer
        assert len(recording.of("llm_end")) == 2
        check_event_order(recording)


def test_usage_is_read_where_the_integrations_put_it() -> None:
    class Response:
        def __init__(self, additional_kwargs: Any = None, raw: Any = None) -> None:
            self.additional_kwargs = additional_kwargs or {}
            self.raw = raw

    assert usage_of(Response({"prompt_tokens": 3, "completion_tokens": 4})) == (3, 4)
    assert usage_of(Response(raw={"usage": {"input_tokens": 5, "output_tokens": 6}})) == (5, 6)
    assert usage_of(Response()) == (None, None)
    assert prompt_of([ChatMessage(role="user", content="x")]) == "x"


def test_only_llamaindex_objects_are_run() -> None:
    with pytest.raises(TypeError, match="LlamaIndex agent"):
        LlamaIndexAdapter(object())
