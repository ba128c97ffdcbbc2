"""LangChain agents for the adapter's end-to-end tests, on the example's scripted chat model: ``ticker`` runs
a tool that writes a line every 50 ms to the file named in the question until cancelled, ``failing`` a tool
that raises."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from examples.langchain_agent import ScriptedChatModel
from fastagentic import App

app = App("langchain-tests")


def _calls_once(name: str, arguments: Any) -> Any:
    """A script that calls ``name`` once with ``arguments(question)``, then says it is done."""

    def script(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(content="done")
        question = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
        call = {"name": name, "args": arguments(question), "id": f"call_{name}", "type": "tool_call"}
        return AIMessage(content="", tool_calls=[call])  # type: ignore[list-item]

    return script


@tool
async def tick(path: str) -> int:
    """Write a line to ``path`` every 50 ms for a minute."""
    for count in range(1200):
        with Path(path).open("a") as marks:  # noqa: ASYNC230 (one short line)
            marks.write(f"{count}\n")
        await asyncio.sleep(0.05)
    return 1200


app.agent(
    create_agent(ScriptedChatModel(script=_calls_once("tick", lambda q: {"path": q})), [tick], name="ticker")
)


@tool
def lookup(order: int) -> str:
    """Look an order up."""
    raise LookupError(f"no such order: {order}")


app.agent(
    create_agent(
        ScriptedChatModel(script=_calls_once("lookup", lambda q: {"order": 42})), [lookup], name="failing"
    )
)
