"""LlamaIndex agents for the adapter's end-to-end tests, on the example's scripted LLM: ``ticker`` runs a tool
that writes a line every 50 ms to the file named in the prompt until cancelled, ``failing`` has an LLM that
raises (LlamaIndex shows a tool's exception to the model, so a failed run comes from the model)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage

from examples.llamaindex_agent import ScriptedLLM, call, prompt_of, tool_outputs
from fastagentic import App

app = App("llamaindex-tests")


async def tick(path: str) -> int:
    """Write a line to ``path`` every 50 ms for a minute."""
    for count in range(1200):
        with Path(path).open("a") as marks:  # noqa: ASYNC230 (one short line)
            marks.write(f"{count}\n")
        await asyncio.sleep(0.05)
    return 1200


def ticker_script(messages: Sequence[ChatMessage]) -> ChatMessage | str:
    if tool_outputs(messages):
        return "done"
    return call("tick", {"path": prompt_of(messages)}, "call_tick")


app.agent(FunctionAgent(name="ticker", tools=[tick], llm=ScriptedLLM(ticker_script, "scripted-ticker")))


def broken(messages: Sequence[ChatMessage]) -> str:
    raise ConnectionError("the model is down")


app.agent(FunctionAgent(name="failing", llm=ScriptedLLM(broken, "scripted-down")))
