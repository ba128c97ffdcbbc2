"""DSPy programs served through FastAgentic, with no API key: a scripted DummyLM plays the model.

    pip install "fastagentic[dspy]"
    fastagentic dev examples.dspy_agent:app                      # a local gateway and this worker
    fastagentic run examples.dspy_agent:app --gateway HOST:PORT  # against a running gateway

    curl -sN -X POST localhost:8000/v1/agents/calculator/stream -d '{"question": "add 2 and 40"}'
    curl -s -X POST localhost:8000/v1/agents/qa/invoke -d '{"question": "what color is the sky?"}'

``calculator`` is a ``dspy.ReAct`` program with an ``add`` tool (signature ``question -> total: int``);
``qa`` a ``dspy.ChainOfThought`` (``question -> answer``). ``ScriptedLM`` is DSPy's own ``DummyLM`` with its
answers computed from the conversation (the stock one takes a fixed list, used up after one run) and token
usage reported like a provider's (10 tokens a message in, 6 out), which reaches DSPy's usage tracker; swap
it for a real LM (``dspy.LM("openai/gpt-4o-mini")``) and nothing else changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its model map from GitHub

import dspy
from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy.utils.dummies import DummyLM

from fastagentic import App
from fastagentic.adapters import DSPyAdapter

app = App("dspy-example", description="DSPy programs on a scripted DummyLM")

#: ``script(last_message)`` -> the output field values of the answer.
Script = Callable[[str], dict[str, Any]]


class _ScriptedEngine(DummyEngine):
    def _complete_messages(self, messages: list[dict[str, Any]]) -> Any:
        owner = self.owner
        output = owner._format_answer_fields(owner.script(str(messages[-1].get("content") or "")))
        usage = Usage(input_tokens=10 * len(messages), output_tokens=6, total_tokens=10 * len(messages) + 6)
        return Response(
            id=None,
            model=owner.model,
            message=Message.assistant([TextPart(output)]),
            finish_reason="stop",
            usage=usage,
        )


class ScriptedLM(DummyLM):
    """DSPy's DummyLM, answering ``script(last message)`` for every call (any number of runs)."""

    def __init__(self, script: Script, name: str = "scripted-lm") -> None:
        super().__init__([])
        self.model = name
        self.script = script
        self._engine_spec = _ScriptedEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs: Any) -> ScriptedLM:
        return ScriptedLM(self.script, self.model)


def field_of(text: str, name: str) -> str:
    """The value of the field ``name`` in a message DSPy's ChatAdapter wrote."""
    found = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?:\n\n|\Z)", text, re.S)
    return found.group(1).strip() if found else ""


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)] or [0]


# ----------------------------------------------------------------------------------- calculator


def calculator_script(text: str) -> dict[str, Any]:
    """ReAct: call ``add`` with the question's numbers, then ``finish``, then extract the total."""
    if "observation_1" in text:  # the extract step: the trajectory is complete
        total = numbers(field_of(text, "observation_0"))[0]
        return {"reasoning": f"add returned {total}", "total": total}
    if "observation_0" in text:
        return {"next_thought": "I have the sum.", "next_tool_name": "finish", "next_tool_args": {}}
    a, b = [*numbers(field_of(text, "question")), 0][:2]
    return {"next_thought": "Add the numbers.", "next_tool_name": "add", "next_tool_args": {"a": a, "b": b}}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Calculate(dspy.Signature):
    """Add the numbers in the question with the add tool."""

    question: str = dspy.InputField()
    total: int = dspy.OutputField(desc="the sum")


calculator = dspy.ReAct(Calculate, tools=[add])
calculator_lm = ScriptedLM(calculator_script, "scripted-calculator")
app.agent(DSPyAdapter(calculator, lm=calculator_lm), name="calculator")  # the run's LM: an option


# ------------------------------------------------------------------------------------------- qa

qa = dspy.ChainOfThought("question -> answer")
qa_lm = ScriptedLM(
    lambda text: {
        "reasoning": "The question asks about the sky.",
        "answer": f"You asked: {field_of(text, 'question')}",
    },
    "scripted-qa",
)
app.agent(DSPyAdapter(qa, lm=qa_lm), name="qa", description="Answers a question, with its reasoning.")
