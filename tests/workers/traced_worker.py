"""A worker for the tracing tests: an agent that calls a model (``llm_start``/``llm_end``), a tool, and
checkpoints between steps, so one trace shows each; ``slow`` for the kill -9 test."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from fastagentic import App, RunContext

app = App("traced")


class AskIn(msgspec.Struct):
    question: str
    steps: int = 1
    delay: float = 0.0


def lookup(term: str) -> str:
    return f"found {term}"


@app.agent_endpoint(durable=True, description="Asks a model, calls a tool, checkpoints each step.")
async def ask(inp: AskIn, ctx: RunContext) -> dict[str, Any]:
    done = (ctx.checkpoint_state or {}).get("done", 0)
    for step in range(done, inp.steps):
        await ctx.emit("llm_start", {"model": "test-model"})
        await asyncio.sleep(inp.delay)
        await ctx.usage("test-model", input_tokens=11, output_tokens=7)
        found = await ctx.tool(lookup, term=f"{inp.question} {step}")
        await ctx.checkpoint({"done": step + 1, "found": found})
    return {"answer": f"You asked: {inp.question}", "attempt": ctx.attempt}
