"""The PydanticAI adapter in process, through the contract kit, on pydantic-ai-slim's TestModel and
FunctionModel: event order, structured output, tool errors and retries, cancellation reaching the tool,
resume from the checkpointed message history, and the model hint choosing the model of each request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.models.test import TestModel

from examples.pydantic_ai_agent import calculator, small
from fastagentic import App
from fastagentic.adapters import PydanticAIAdapter, adapter_for
from fastagentic.adapters.pydantic_ai import Prompt
from fastagentic.testing import (
    Recording,
    check_adapter,
    check_event_order,
    check_resume,
    run_adapter,
    start_adapter,
)

QUESTION = {"prompt": "add 2 and 40"}


def test_an_agent_is_found_its_adapter_named_and_described_after_it() -> None:
    adapter = adapter_for(calculator)
    assert isinstance(adapter, PydanticAIAdapter)
    assert adapter.name == "calculator" and adapter.description.startswith("Adds the numbers")
    assert adapter.input_type is Prompt and adapter.output_type is str


def test_the_output_schema_is_the_agents_output_type() -> None:
    class Verdict(BaseModel):
        ok: bool
        reason: str

    app = App("t")
    app.agent(Agent(TestModel(), output_type=Verdict), name="judge")
    assert app.endpoint("judge").output_schema["required"] == ["ok", "reason"]
    assert app.endpoint("judge").shape.input_schema["required"] == ["prompt"]


async def test_the_calculator_keeps_the_contract_and_resumes_after_its_tool_round() -> None:
    def after_tools(recording: Any) -> bool:
        return len(recording.checkpoints) == 2

    await check_adapter(PydanticAIAdapter(calculator), QUESTION, stop_when=after_tools)


async def test_events_come_in_order_with_usage_on_each_llm_end() -> None:
    recording = await run_adapter(calculator, QUESTION)
    assert recording.output == "The sum is 42."
    assert [k for k in recording.kinds if k != "checkpoint"] == [
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
    assert all(u["input_tokens"] > 0 and u["output_tokens"] > 0 for u in recording.of("llm_end"))


async def test_a_resumed_run_continues_from_the_history_without_calling_the_tool_again() -> None:
    first = await run_adapter(calculator, QUESTION)
    after_tools = first.checkpoints[1]
    assert after_tools["format"] == "pydantic_ai.messages/1"
    second = await run_adapter(calculator, QUESTION, attempt=2, checkpoint_state=after_tools)
    assert second.output == "The sum is 42."
    assert "tool_call" not in second.kinds and second.kinds.count("llm_start") == 1


async def test_a_tools_exception_fails_the_run_after_its_tool_result_error() -> None:
    agent = Agent(TestModel(), name="orders")

    @agent.tool_plain
    def lookup(order: int) -> str:
        raise LookupError(f"no such order: {order}")

    recording = await run_adapter(agent, {"prompt": "where is it"})
    assert isinstance(recording.error, LookupError) and str(recording.error) == "no such order: 0"
    (result,) = recording.of("tool_result")
    assert result["error"] == {"type": "LookupError", "message": "no such order: 0"}
    check_event_order(recording, complete=True)


async def test_a_retry_is_a_tool_result_error_and_the_run_goes_on() -> None:
    agent = Agent(TestModel(), name="retrying")
    calls: list[int] = []

    @agent.tool_plain
    def flaky(n: int) -> str:
        calls.append(n)
        if len(calls) == 1:
            raise ModelRetry("try again")
        return "fine"

    recording = await run_adapter(agent, {"prompt": "go"})
    assert recording.error is None
    first, second = recording.of("tool_result")
    assert first["error"] == {"type": "retried", "message": "try again"}
    assert second["result"] == "fine"
    check_event_order(recording)


async def test_cancelling_the_run_cancels_the_running_tool() -> None:
    agent = Agent(TestModel(), name="slow")
    ticks: list[int] = []
    stopped = asyncio.Event()

    @agent.tool_plain
    async def wait(seconds: int) -> str:
        try:
            for tick in range(200):
                ticks.append(tick)
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "done"

    from fastagentic.testing import check_cancellation

    await check_cancellation(
        agent, {"prompt": "wait"}, started=lambda r: len(ticks) >= 3, progress=lambda: len(ticks)
    )
    assert stopped.is_set()


async def test_the_model_hint_chooses_the_model_of_each_request_even_mid_run() -> None:
    adapter = PydanticAIAdapter(calculator, models={"small-model": small})

    def hint_after_the_first_request(recording: Recording) -> None:
        if recording.kinds[-1] == "llm_end" and recording.context is not None:
            recording.context.model_hint = "small-model"  # as a Hint from the gateway sets it

    running = start_adapter(adapter, QUESTION, on_event=hint_after_the_first_request)
    await running.task
    assert [u["model"] for u in running.recording.of("llm_end")] == ["scripted-calculator", "small-model"]
    hinted = await run_adapter(adapter, QUESTION, model_hint="small-model")
    assert [u["model"] for u in hinted.of("llm_start")] == ["small-model", "small-model"]


async def test_a_hint_the_mapping_does_not_know_keeps_the_agents_model() -> None:
    adapter = PydanticAIAdapter(calculator, models={"small-model": small})
    recording = await run_adapter(adapter, QUESTION, model_hint="unknown-model")
    assert {u["model"] for u in recording.of("llm_end")} == {"scripted-calculator"}


async def test_without_a_mapping_the_hint_is_the_model_name() -> None:
    recording = await run_adapter(PydanticAIAdapter(calculator), QUESTION, model_hint="test")
    assert {u["model"] for u in recording.of("llm_end")} == {"test"}  # "test" is PydanticAI's TestModel


def test_only_agents_are_run() -> None:
    with pytest.raises(TypeError, match=r"pydantic_ai\.Agent"):
        PydanticAIAdapter(object())  # type: ignore[arg-type]


async def test_the_kit_resume_check_holds_from_a_model_response_too() -> None:
    # Stopped right after the first model response: the resumed run runs the pending tool call.
    await check_resume(calculator, QUESTION, stop_when=lambda r: len(r.checkpoints) == 1)
