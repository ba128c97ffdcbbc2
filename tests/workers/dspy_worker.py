"""DSPy programs for the adapter's end-to-end tests, on the example's scripted DummyLM: ``ticker`` is a ReAct
program whose tool writes a line every 50 ms to the file named in the question until cancelled, ``failing`` a
module that raises after its first LM call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import dspy

from examples.dspy_agent import ScriptedLM, field_of
from fastagentic import App
from fastagentic.adapters import DSPyAdapter

app = App("dspy-tests")


async def tick(path: str) -> int:
    """Write a line to ``path`` every 50 ms for a minute."""
    for count in range(1200):
        with Path(path).open("a") as marks:  # noqa: ASYNC230 (one short line)
            marks.write(f"{count}\n")
        await asyncio.sleep(0.05)
    return 1200


def ticker_script(text: str) -> dict[str, Any]:
    if "observation_0" in text:
        return {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
    path = field_of(text, "question")
    return {"next_thought": "tick", "next_tool_name": "tick", "next_tool_args": {"path": path}}


ticker = dspy.ReAct("question -> answer", tools=[tick])
app.agent(DSPyAdapter(ticker, lm=ScriptedLM(ticker_script, "scripted-ticker")), name="ticker")


class Failing(dspy.Module):
    """Answers once, then fails."""

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    async def aforward(self, question: str) -> dspy.Prediction:
        await self.predict.acall(question=question)
        raise LookupError(f"no answer for {question!r}")

    def forward(self, question: str) -> dspy.Prediction:  # the sync spelling, failing the same way
        self.predict(question=question)
        raise LookupError(f"no answer for {question!r}")


app.agent(
    DSPyAdapter(Failing(), lm=ScriptedLM(lambda text: {"answer": "x"}, "scripted-failing")), name="failing"
)
