"""The OpenAI Agents SDK adapter in process, through the contract kit, on openai-agents' own release with a
scripted ``Model`` subclass (tracing off): discovery and schemas (output types across handoffs), event
order with usage, handoffs, structured output, tool errors (the SDK's default message, or raised), a
model's exception, cancellation reaching the running tool, and the model hint choosing the run's model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import Agent, RunContextWrapper, function_tool

from examples.openai_agents_agent import (
    ScriptedModel,
    add,
    calculator,
    calculator_script,
    call,
    outputs_of,
    say,
    triage,
)
from fastagentic import App
from fastagentic.adapters import OpenAIAgentsAdapter, adapter_for
from fastagentic.adapters.openai_agents import Prompt
from fastagentic.testing import check_adapter, check_cancellation, check_event_order, run_adapter

QUESTION = {"prompt": "add 2 and 40"}


def _calls_once(name: str, arguments: dict[str, Any]) -> Any:
    """A script that calls ``name`` once, then repeats the tool's output."""

    def script(items: list[Any]) -> list[Any]:
        results = outputs_of(items)
        if results:
            return [say(f"got {results[-1]}")]
        return [call(name, arguments, f"call_{name}")]

    return script


def test_an_agent_is_found_its_adapter_named_and_described_after_it() -> None:
    adapter = adapter_for(calculator)
    assert isinstance(adapter, OpenAIAgentsAdapter)
    assert adapter.name == "calculator" and adapter.description.startswith("Adds the numbers")
    assert adapter.input_type is Prompt and adapter.output_type is str


def test_the_output_schema_covers_every_agent_a_handoff_reaches() -> None:
    app = App("t")
    app.agent(triage)
    schema = app.endpoint("triage").output_schema
    assert schema["anyOf"][0] == {"type": "string"}
    assert schema["$defs"]["Quote"]["required"] == ["item", "quantity", "total_cents"]
    assert app.endpoint("triage").shape.input_schema["required"] == ["prompt"]


async def test_the_calculator_keeps_the_contract() -> None:
    recording = await check_adapter(calculator, QUESTION)
    assert recording.output == "The sum is 42."


async def test_events_come_in_order_with_usage_on_each_llm_end() -> None:
    recording = await run_adapter(calculator, QUESTION)
    assert recording.kinds == [
        "llm_start",
        "llm_end",
        "tool_call",
        "tool_result",
        "llm_start",
        "token",
        "token",
        "token",
        "token",
        "message",
        "llm_end",
    ]
    assert recording.of("tool_call") == [{"id": "call_add", "name": "add", "arguments": {"a": 2, "b": 40}}]
    assert recording.of("tool_result") == [{"id": "call_add", "name": "add", "result": 42}]
    assert recording.of("llm_end") == [
        {"model": "scripted-calculator", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-calculator", "input_tokens": 60, "output_tokens": 6},
    ]
    assert recording.of("message") == [{"role": "assistant", "text": "The sum is 42."}]


async def test_a_handoff_is_a_handoff_event_and_the_last_agent_answers_with_its_output_type() -> None:
    recording = await run_adapter(triage, {"prompt": "3 widgets"})
    assert recording.error is None
    assert recording.output == {"item": "widget", "quantity": 3, "total_cents": 750}
    assert recording.of("handoff") == [{"id": "call_handoff", "from": "triage", "to": "billing"}]
    models = [d["model"] for d in recording.of("llm_start")]
    assert models == ["scripted-triage", "scripted-billing", "scripted-billing"]
    handoff = recording.kinds.index("handoff")
    assert recording.kinds[handoff - 1] == "llm_end" and recording.kinds[handoff + 1] == "llm_start"
    check_event_order(recording)


async def test_a_tool_error_the_sdk_handles_is_the_tools_result_and_the_run_goes_on() -> None:
    @function_tool
    def lookup(order: int) -> str:
        """Look an order up."""
        raise LookupError(f"no such order: {order}")

    agent = Agent(name="soft", model=ScriptedModel(_calls_once("lookup", {"order": 42})), tools=[lookup])
    recording = await run_adapter(agent, {"prompt": "where is it"})
    assert recording.error is None
    (result,) = recording.of("tool_result")
    assert result["id"] == "call_lookup" and "error occurred" in result["result"]
    assert recording.output.startswith("got An error occurred")


async def test_a_tools_exception_fails_the_run_with_it_after_its_tool_result_error() -> None:
    @function_tool(failure_error_function=None)
    def lookup(order: int) -> str:
        """Look an order up."""
        raise LookupError(f"no such order: {order}")

    agent = Agent(name="orders", model=ScriptedModel(_calls_once("lookup", {"order": 42})), tools=[lookup])
    recording = await run_adapter(agent, {"prompt": "where is it"})
    assert isinstance(recording.error, LookupError) and str(recording.error) == "no such order: 42"
    assert recording.of("tool_result") == [
        {
            "id": "call_lookup",
            "name": "lookup",
            "error": {"type": "LookupError", "message": "no such order: 42"},
        }
    ]
    check_event_order(recording, complete=True)


async def test_a_models_exception_fails_the_run() -> None:
    def broken(items: list[Any]) -> list[Any]:
        raise ConnectionError("the model is down")

    recording = await run_adapter(Agent(name="down", model=ScriptedModel(broken)), {"prompt": "hi"})
    assert isinstance(recording.error, ConnectionError) and str(recording.error) == "the model is down"
    check_event_order(recording, complete=True)


async def test_cancelling_the_run_cancels_the_running_tool() -> None:
    ticks: list[int] = []

    @function_tool
    async def tick() -> int:
        """Tick for a while."""
        for count in range(500):
            ticks.append(count)
            await asyncio.sleep(0.01)
        return 500

    agent = Agent(name="ticker", model=ScriptedModel(_calls_once("tick", {})), tools=[tick])
    await check_cancellation(
        agent, {"prompt": "tick"}, started=lambda r: len(ticks) >= 3, progress=lambda: len(ticks)
    )


async def test_the_model_hint_picks_the_runs_model() -> None:
    small = ScriptedModel(calculator_script, "small-model")
    adapter = OpenAIAgentsAdapter(calculator, models={"small-model": small})
    hinted = await run_adapter(adapter, QUESTION, model_hint="small-model")
    assert {d["model"] for d in hinted.of("llm_end")} == {"small-model"}
    unknown = await run_adapter(adapter, QUESTION, model_hint="other")
    assert {d["model"] for d in unknown.of("llm_end")} == {"scripted-calculator"}
    plain = await run_adapter(adapter, QUESTION)
    assert {d["model"] for d in plain.of("llm_end")} == {"scripted-calculator"}


async def test_context_reaches_the_tools() -> None:
    @function_tool
    def tenant(wrapper: RunContextWrapper[dict[str, str]]) -> str:
        """The caller's tenant."""
        return wrapper.context["tenant"]

    agent = Agent(name="who", model=ScriptedModel(_calls_once("tenant", {})), tools=[tenant])
    adapter = OpenAIAgentsAdapter(agent, context=lambda ctx: {"tenant": ctx.caller.tenant})
    recording = await run_adapter(adapter, {"prompt": "who am I"})
    assert recording.output == "got default"


def test_only_agents_are_run() -> None:
    with pytest.raises(TypeError, match=r"agents\.Agent"):
        OpenAIAgentsAdapter(object())  # type: ignore[arg-type]
    assert add.name == "add"
