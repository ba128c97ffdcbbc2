"""The LangChain adapter in process, through the contract kit, on langchain's own release with a scripted
chat model (GenericFakeChatModel made to answer from the conversation): discovery (create_agent agents, other
graphs, chains, chat models), event order with usage, structured output and its schema, resume at the next
step from FastAgentic's checkpoints, cancellation reaching the running tool, a tool's exception failing the
run, chains and chat models run on their own, a middleware applying the budget's model hint."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, ModelResponse, wrap_model_call
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel
from typing_extensions import TypedDict

from examples.langchain_agent import Quote, ScriptedChatModel, calculator, explain, quote
from fastagentic import App
from fastagentic.adapters import LangChainAdapter, LangGraphAdapter, Schema, adapter_for, run_context
from fastagentic.testing import (
    Recording,
    check_adapter,
    check_cancellation,
    check_event_order,
    run_adapter,
)

QUESTION = {"messages": [{"role": "user", "content": "add 2 and 40"}]}


def _messages(output: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["type"], m["content"]) for m in output["messages"]]


def _calls_once(name: str, arguments: dict[str, Any]) -> Any:
    """A script that calls ``name`` once, then says it is done."""

    def script(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(content="done")
        call = {"name": name, "args": arguments, "id": f"call_{name}", "type": "tool_call"}
        return AIMessage(content="", tool_calls=[call])  # type: ignore[list-item]

    return script


def test_a_create_agent_agent_is_found_the_langchain_adapter_other_graphs_the_langgraph_one() -> None:
    adapter = adapter_for(calculator)
    assert isinstance(adapter, LangChainAdapter) and adapter.name == "calculator"
    assert isinstance(adapter.input_type, Schema)
    items = adapter.input_type.json_schema["properties"]["messages"]["items"]
    assert "anyOf" in items and "oneOf" not in items  # role-style messages validate

    class State(TypedDict):
        n: int

    plain = StateGraph(State)
    plain.add_node("one", lambda state: state)
    plain.add_edge(START, "one")
    plain.add_edge("one", END)
    assert type(adapter_for(plain.compile(name="plain"))) is LangGraphAdapter
    assert isinstance(adapter_for(explain), LangChainAdapter)
    assert isinstance(adapter_for(ScriptedChatModel(script=_calls_once("x", {}))), LangChainAdapter)


def test_structured_response_is_typed_by_the_agents_response_format() -> None:
    app = App("t")
    app.agent(quote)
    schema = app.endpoint("quote").output_schema
    assert schema["properties"]["structured_response"]["title"] == "Quote"
    assert schema["properties"]["structured_response"]["required"] == ["item", "quantity", "total_cents"]
    # Without a response_format it stays as LangGraph describes it; given one, it is typed by it.
    assert "title" not in adapter_for(calculator).output_type.json_schema["properties"][
        "structured_response"
    ].get("properties", {})
    given = LangChainAdapter(calculator, response_format=Quote).output_type
    assert given.json_schema["properties"]["structured_response"]["title"] == "Quote"


async def test_the_calculator_keeps_the_contract_and_resumes_at_the_next_step() -> None:
    def in_the_tools_node(recording: Recording) -> bool:
        return {"node": "tools", "step": 2} in recording.of("node_enter")

    recording = await check_adapter(
        calculator, QUESTION, stop_when=in_the_tools_node, compare=lambda output: _messages(output)
    )
    assert _messages(recording.output)[-1] == ("ai", "The sum is 42.")


async def test_models_tools_and_tokens_come_in_order_with_usage_on_each_llm_end() -> None:
    recording = await run_adapter(calculator, QUESTION)
    shown = [
        (e.kind, e.data.get("node") or e.data.get("name") or e.data.get("text") or e.data.get("model"))
        for e in recording.events
        if e.kind != "checkpoint"
    ]
    assert shown == [
        ("node_enter", "model"),
        ("llm_start", "scripted-chat"),
        ("llm_end", "scripted-chat"),
        ("node_exit", "model"),
        ("node_enter", "tools"),
        ("tool_call", "add"),
        ("tool_result", "add"),
        ("node_exit", "tools"),
        ("node_enter", "model"),
        ("llm_start", "scripted-chat"),
        ("token", "The"),
        ("token", " sum"),
        ("token", " is"),
        ("token", " 42."),
        ("message", "The sum is 42."),
        ("llm_end", "scripted-chat"),
        ("node_exit", "model"),
    ]
    assert recording.of("tool_call") == [{"id": "call_add", "name": "add", "arguments": {"a": 2, "b": 40}}]
    assert recording.of("tool_result") == [{"id": "call_add", "name": "add", "result": "42"}]
    assert recording.of("llm_end") == [
        {"model": "scripted-chat", "input_tokens": 40, "output_tokens": 6},
        {"model": "scripted-chat", "input_tokens": 80, "output_tokens": 6},
    ]


async def test_structured_output_is_the_structured_response() -> None:
    recording = await run_adapter(quote, {"messages": [{"role": "user", "content": "3 widgets"}]})
    assert recording.error is None
    assert recording.output["structured_response"] == {"item": "widget", "quantity": 3, "total_cents": 750}
    # The structured-output tool is the model's answer, not a tool run.
    assert [d["name"] for d in recording.of("tool_call")] == ["unit_price"]
    check_event_order(recording)


async def test_a_resumed_agent_does_not_call_the_tool_again() -> None:
    first = await run_adapter(calculator, QUESTION)
    kinds = first.kinds
    after_tools = next(
        e.checkpoint
        for e in first.events[kinds.index("tool_result") :]
        if e.kind == "checkpoint"  # the checkpoint of the tools step
    )
    second = await run_adapter(calculator, QUESTION, attempt=2, checkpoint_state=after_tools)
    assert _messages(second.output)[-1] == ("ai", "The sum is 42.")
    assert "tool_call" not in second.kinds and second.kinds.count("llm_start") == 1


async def test_a_tools_exception_fails_the_run_after_its_tool_result_error() -> None:
    @tool
    def lookup(order: int) -> str:
        """Look an order up."""
        raise LookupError(f"no such order: {order}")

    agent = create_agent(
        ScriptedChatModel(script=_calls_once("lookup", {"order": 42})), [lookup], name="orders"
    )
    recording = await run_adapter(agent, QUESTION)
    assert isinstance(recording.error, LookupError) and str(recording.error) == "no such order: 42"
    assert recording.of("tool_result") == [
        {
            "id": "call_lookup",
            "name": "lookup",
            "error": {"type": "LookupError", "message": "no such order: 42"},
        }
    ]
    check_event_order(recording, complete=True)


async def test_cancelling_the_run_cancels_the_running_tool() -> None:
    ticks: list[int] = []

    @tool
    async def tick() -> int:
        """Tick for a while."""
        for count in range(500):
            ticks.append(count)
            await asyncio.sleep(0.01)
        return 500

    agent = create_agent(ScriptedChatModel(script=_calls_once("tick", {})), [tick], name="ticker")
    await check_cancellation(agent, QUESTION, started=lambda r: len(ticks) >= 3, progress=lambda: len(ticks))


async def test_a_chain_runs_with_its_own_schemas_and_streams_its_model() -> None:
    adapter = adapter_for(explain)
    assert isinstance(adapter.input_type, Schema) and adapter.input_type.json_schema["required"] == [
        "question"
    ]
    assert isinstance(adapter.output_type, Schema) and adapter.output_type.json_schema["type"] == "string"
    recording = await check_adapter(LangChainAdapter(explain, name="explain"), {"question": "why?"})
    assert recording.output == "You asked: why? Light scatters."
    assert "".join(d["text"] for d in recording.of("token")) == recording.output
    assert recording.of("llm_end") == [{"model": "scripted-explain", "input_tokens": 40, "output_tokens": 6}]


async def test_a_chat_model_on_its_own_answers_with_its_message() -> None:
    model = ScriptedChatModel(script=lambda messages: AIMessage(content=f"echo {messages[-1].content}"))
    recording = await run_adapter(LangChainAdapter(model, name="echo"), [{"role": "user", "content": "hi"}])
    assert recording.error is None
    assert recording.output["type"] == "ai" and recording.output["content"] == "echo hi"
    assert recording.kinds == ["llm_start", "token", "token", "message", "llm_end"]


def test_only_runnables_and_compiled_graphs_are_run() -> None:
    with pytest.raises(TypeError, match="LangChain agent or runnable"):
        LangChainAdapter(object())

    class State(BaseModel):
        n: int = 0

    with pytest.raises(TypeError, match=r"graph.compile\(\)"):
        LangChainAdapter(StateGraph(State))


async def test_a_middleware_applies_the_model_hint_to_each_model_call() -> None:
    script = _calls_once("add", {"a": 1, "b": 2})
    big = ScriptedChatModel(script=script, model_name="big-model")
    small = ScriptedChatModel(script=script, model_name="small-model")

    @wrap_model_call
    async def hinted(request: ModelRequest, handler: Any) -> ModelResponse:
        if run_context().model_hint == "small-model":
            request = request.override(model=small)
        return await handler(request)

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = create_agent(big, [add], middleware=[hinted], name="hinted")
    plain = await run_adapter(agent, QUESTION)
    assert {d["model"] for d in plain.of("llm_end")} == {"big-model"}
    downgraded = await run_adapter(agent, QUESTION, model_hint="small-model")
    assert {d["model"] for d in downgraded.of("llm_end")} == {"small-model"}
