"""OpenAI Agents SDK agents for the adapter's end-to-end tests, on the example's scripted model (tracing off):
``ticker`` runs a tool that writes a line every 50 ms to the file named in the prompt until cancelled,
``failing`` a tool that raises (``failure_error_function=None``: the exception fails the run, instead of
becoming a message to the model)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents import Agent, function_tool, set_tracing_disabled

from examples.openai_agents_agent import ScriptedModel, call, outputs_of, prompt_of, say
from fastagentic import App

set_tracing_disabled(True)

app = App("openai-agents-tests")


def _calls_once(name: str, arguments: Any) -> Any:
    """A script that calls ``name`` once with ``arguments(prompt)``, then says it is done."""

    def script(items: list[Any]) -> list[Any]:
        if outputs_of(items):
            return [say("done")]
        return [call(name, arguments(prompt_of(items)), f"call_{name}")]

    return script


@function_tool
async def tick(path: str) -> int:
    """Write a line to ``path`` every 50 ms for a minute."""
    for count in range(1200):
        with Path(path).open("a") as marks:  # noqa: ASYNC230 (one short line)
            marks.write(f"{count}\n")
        await asyncio.sleep(0.05)
    return 1200


app.agent(Agent(name="ticker", model=ScriptedModel(_calls_once("tick", lambda p: {"path": p})), tools=[tick]))


@function_tool(failure_error_function=None)
def lookup(order: int) -> str:
    """Look an order up."""
    raise LookupError(f"no such order: {order}")


app.agent(
    Agent(name="failing", model=ScriptedModel(_calls_once("lookup", lambda p: {"order": 42})), tools=[lookup])
)
