"""Semantic Kernel agents for the adapter's tests (in the semantic-kernel environment only:
tests/framework_venvs.py), on the example's scripted chat service: ``ticker`` is an agent whose model calls
``Clock-tick`` (a line to the file named in the prompt, then 50 ms) over and over until cancelled;
``failing`` an agent whose service raises on its first call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from semantic_kernel.agents import ChatCompletionAgent
from semantic_kernel.connectors.ai import FunctionChoiceBehavior
from semantic_kernel.contents import ChatHistory
from semantic_kernel.functions import kernel_function

from examples.semantic_kernel_agent import Call, ScriptedChatService
from fastagentic import App

app = App("semantic-kernel-tests")


def _mark(path: str) -> None:
    with Path(path).open("a") as marks:
        marks.write("tick\n")


class Clock:
    @kernel_function(description="Write a line to path, then wait 50 ms.")
    async def tick(self, path: Annotated[str, "the file"], n: Annotated[int, "the call's number"]) -> str:
        _mark(path)  # one short line: the test reads how many calls ran
        await asyncio.sleep(0.05)
        return f"tick {n} done"


def ticker_script(history: ChatHistory) -> Call:
    path = str(history.messages[1].content).split("Tick into:", 1)[1].strip()
    done = sum(1 for m in history.messages if "tick " in str(m.items))
    return Call("Clock-tick", path=path, n=done + 1)


ticking = FunctionChoiceBehavior.Auto()
ticking.maximum_auto_invoke_attempts = 10_000
ticker = ChatCompletionAgent(
    name="ticker",
    instructions="Tick.",
    service=ScriptedChatService(ai_model_id="scripted-ticker", script=ticker_script),
    plugins=[Clock()],
    function_choice_behavior=ticking,
)
app.agent(ticker)


def refuse(history: ChatHistory) -> str:
    raise LookupError(f"no answer for {str(history.messages[-1].content)!r}")


failing = ChatCompletionAgent(
    name="failing",
    instructions="You never know.",
    service=ScriptedChatService(ai_model_id="scripted-failing", script=refuse),
)
app.agent(failing)
