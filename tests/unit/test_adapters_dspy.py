"""The DSPy adapter in process, through the contract kit, on dspy's own release with its DummyLM (scripted
from the conversation, examples/dspy_agent.py, and the stock list-driven one): schemas from the signature,
event order with usage from DSPy's usage tracker, ReAct tool calls, a tool's exception (ReAct shows it to the
model), a module's exception failing the run, cancellation reaching the running tool, a custom module run in
a thread, and concurrent runs kept apart."""

from __future__ import annotations

import asyncio
from typing import Any

import dspy
import pytest
from dspy.utils.dummies import DummyLM
from dspy.utils.usage_tracker import UsageTracker

from examples.dspy_agent import (
    Calculate,
    ScriptedLM,
    add,
    calculator,
    calculator_lm,
    calculator_script,
    qa,
    qa_lm,
)
from fastagentic import App
from fastagentic.adapters import DSPyAdapter, adapter_for
from fastagentic.adapters.dspy import usage_since
from fastagentic.testing import check_adapter, check_cancellation, check_event_order, run_adapter

QUESTION = {"question": "add 2 and 40"}


def test_a_module_is_found_its_schemas_from_its_signature() -> None:
    assert isinstance(adapter_for(calculator), DSPyAdapter)
    app = App("t")
    app.agent(DSPyAdapter(calculator, lm=calculator_lm), name="calculator")
    endpoint = app.endpoint("calculator")
    assert endpoint.shape.input_schema["required"] == ["question"]
    assert endpoint.output_schema["properties"]["total"]["type"] == "integer"
    assert endpoint.output_schema["properties"]["total"]["description"] == "the sum"
    assert endpoint.description == Calculate.instructions


async def test_the_calculator_keeps_the_contract() -> None:
    recording = await check_adapter(DSPyAdapter(calculator, lm=calculator_lm), QUESTION)
    assert recording.output == {"total": 42}


async def test_react_events_come_in_order_with_usage_on_each_llm_end() -> None:
    recording = await run_adapter(DSPyAdapter(calculator, lm=calculator_lm), QUESTION)
    assert recording.kinds == [
        *["llm_start", "message", "llm_end", "tool_call", "tool_result"] * 2,
        "llm_start",
        "message",
        "llm_end",
    ]
    calls = recording.of("tool_call")
    assert [(c["name"], c["arguments"]) for c in calls] == [("add", {"a": 2, "b": 40}), ("finish", {})]
    assert recording.of("tool_result")[0] == {"id": calls[0]["id"], "name": "add", "result": 42}
    # The scripted LM reports 10 tokens a message in (system + user) and 6 out: DSPy's usage tracker has them.
    assert (
        recording.of("llm_end")
        == [{"model": "scripted-calculator", "input_tokens": 20, "output_tokens": 6}] * 3
    )


async def test_chain_of_thought_answers_with_its_reasoning() -> None:
    recording = await check_adapter(DSPyAdapter(qa, lm=qa_lm), {"question": "what color is the sky?"})
    assert recording.output == {
        "reasoning": "The question asks about the sky.",
        "answer": "You asked: what color is the sky?",
    }


async def test_the_stock_dummy_lm_reports_zero_usage() -> None:
    lm = DummyLM([{"answer": "blue"}])
    recording = await run_adapter(
        DSPyAdapter(dspy.Predict("question -> answer"), lm=lm), {"question": "sky?"}
    )
    assert recording.output == {"answer": "blue"}
    assert recording.of("llm_end") == [{"model": "dummy", "input_tokens": 0, "output_tokens": 0}]


def _calls(name: str, arguments: dict[str, Any]) -> Any:
    def script(text: str) -> dict[str, Any]:
        if "observation_1" in text:
            return {"reasoning": "done", "total": 0}
        if "observation_0" in text:
            return {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
        return {"next_thought": "call it", "next_tool_name": name, "next_tool_args": arguments}

    return script


async def test_a_tools_exception_is_its_tool_result_error_and_react_goes_on() -> None:
    def lookup(order: int) -> str:
        """Look an order up."""
        raise LookupError(f"no such order: {order}")

    program = dspy.ReAct(Calculate, tools=[lookup])
    recording = await run_adapter(
        DSPyAdapter(program, lm=ScriptedLM(_calls("lookup", {"order": 42}))), {"question": "where"}
    )
    assert recording.error is None, recording.error
    first = recording.of("tool_result")[0]
    assert first["name"] == "lookup"
    assert first["error"] == {"type": "LookupError", "message": "no such order: 42"}
    check_event_order(recording)


class Broken(dspy.Module):
    """A program whose second step fails."""

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        self.predict(question=question)
        raise ValueError(f"cannot answer {question!r}")


async def test_a_modules_exception_fails_the_run_with_its_type_and_message() -> None:
    adapter = DSPyAdapter(Broken(), lm=ScriptedLM(lambda text: {"answer": "x"}))
    assert adapter.input_type.model_json_schema()["required"] == ["question"]
    recording = await run_adapter(adapter, {"question": "why"})
    assert isinstance(recording.error, ValueError) and str(recording.error) == "cannot answer 'why'"
    assert recording.kinds == ["llm_start", "message", "llm_end"]  # the first step ran, in a thread
    check_event_order(recording, complete=True)


async def test_a_custom_module_answers_with_its_prediction() -> None:
    class Echo(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str, times: int = 1) -> dspy.Prediction:
            answer = self.predict(question=question).answer
            return dspy.Prediction(answer=answer * times)

    recording = await check_adapter(
        DSPyAdapter(Echo(), lm=ScriptedLM(lambda text: {"answer": "ab"})), {"question": "q", "times": 2}
    )
    assert recording.output == {"answer": "abab"}


async def test_cancelling_the_run_cancels_the_running_tool() -> None:
    ticks: list[int] = []

    async def tick() -> int:
        """Tick for a while."""
        for count in range(500):
            ticks.append(count)
            await asyncio.sleep(0.01)
        return 500

    program = dspy.ReAct(Calculate, tools=[tick])
    await check_cancellation(
        DSPyAdapter(program, lm=ScriptedLM(_calls("tick", {}))),
        QUESTION,
        started=lambda r: len(ticks) >= 3,
        progress=lambda: len(ticks),
    )


async def test_concurrent_runs_keep_their_own_events() -> None:
    adapter = DSPyAdapter(calculator, lm=ScriptedLM(calculator_script, "scripted-calculator"))
    first, second = await asyncio.gather(
        run_adapter(adapter, {"question": "add 1 and 2"}), run_adapter(adapter, {"question": "add 3 and 4"})
    )
    assert first.output == {"total": 3} and second.output == {"total": 7}
    for recording in (first, second):
        assert len(recording.of("llm_end")) == 3 and len(recording.of("tool_result")) == 2
        check_event_order(recording)


def test_usage_is_what_the_lm_reported_after_the_call_started() -> None:
    tracker = UsageTracker()
    tracker.add_usage("m", {"prompt_tokens": 3, "completion_tokens": 1})
    assert usage_since(tracker, "m", 1) == (None, None)
    tracker.add_usage("m", {"prompt_tokens": 5, "completion_tokens": 2})
    assert usage_since(tracker, "m", 1) == (5, 2)


def test_only_modules_are_run() -> None:
    with pytest.raises(TypeError, match=r"dspy\.Module"):
        DSPyAdapter(object())  # type: ignore[arg-type]
    assert add(1, 2) == 3
