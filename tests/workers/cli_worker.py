"""A worker for the agent CLI tests: an assistant that streams markdown and calls a tool, one that asks a
question (an interrupt) and one that fails."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from fastagentic import App, RunContext

app = App("cli")


def lookup(city: str) -> dict[str, Any]:
    """A tool: the weather of a city."""
    return {"city": city, "sky": "sunny", "celsius": 21}


@app.agent_endpoint(description="Answers in markdown; asks the weather tool when the prompt names a city.")
async def assistant(prompt: str, ctx: RunContext) -> str:
    if "count" in prompt:  # slow: the tests watch it arrive
        parts = [f"word-{i:02d} " for i in range(1, 11)]
        for part in parts:
            await ctx.token(part)
            await asyncio.sleep(0.5)
        return "".join(parts)
    if "weather" in prompt:
        report = await ctx.tool(lookup, city="Paris")
        parts = [
            "# Weather\n\n",
            f"It is **{report['sky']}** in {report['city']}, ",
            f"{report['celsius']} °C.",
        ]
    else:
        parts = ["You said: ", f"*{prompt.strip()}*", "\n\n- one\n- two\n"]
    for part in parts:
        await ctx.token(part)
        await asyncio.sleep(0.05)
    return "".join(parts)


class Refund(msgspec.Struct):
    amount: int
    note: str = ""


@app.agent_endpoint(durable=False, description="Asks how much to refund, then says it.")
async def refund(question: str, ctx: RunContext) -> dict[str, Any]:
    await ctx.token("Checking the order. ")
    answer = await ctx.interrupt({"question": f"How much should I refund for {question}?"}, schema=Refund)
    await ctx.token(f"Refunded {answer.amount} EUR.")
    return {"amount": answer.amount, "note": answer.note}


class Numbers(msgspec.Struct):
    a: int
    b: int


@app.agent_endpoint(description="Adds two numbers (JSON input only).")
async def adder(numbers: Numbers, ctx: RunContext) -> int:
    return numbers.a + numbers.b


@app.agent_endpoint(description="Always fails.")
async def broken(prompt: str, ctx: RunContext) -> str:
    raise RuntimeError(f"cannot answer {prompt!r}")
