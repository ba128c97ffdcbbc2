"""A worker for the A2A end-to-end tests, written only against the public SDK surface."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from fastagentic import App, RunContext

app = App("a2a")


class AskIn(msgspec.Struct):
    question: str


class AskOut(msgspec.Struct):
    answer: str
    words: int


@app.agent_endpoint(description="Answers a question, streaming the answer word by word.", tags=["qa"])
async def ask(inp: AskIn, ctx: RunContext) -> AskOut:
    words = f"You asked: {inp.question}".split(" ")
    for index, word in enumerate(words):
        await ctx.token(word if index == 0 else " " + word)
    await ctx.progress(len(words), len(words), message="answered")
    return AskOut(answer=" ".join(words), words=len(words))


class SumIn(msgspec.Struct):
    numbers: list[int]
    label: str = "sum"


class SumOut(msgspec.Struct):
    label: str
    total: int


@app.agent_endpoint(description="Adds numbers.", examples=[{"numbers": [1, 2, 3]}])
async def total(inp: SumIn, ctx: RunContext) -> SumOut:
    return SumOut(label=inp.label, total=sum(inp.numbers))


class SlowIn(msgspec.Struct):
    steps: int = 5
    delay: float = 0.2
    marker: str = ""  # a file the function writes "cancelled" to when the gateway cancels it


@app.agent_endpoint(description="Counts steps slowly, one token per step.")
async def slow(inp: SlowIn, ctx: RunContext) -> dict[str, int]:
    try:
        for step in range(inp.steps):
            await ctx.token(f"step {step + 1};")
            await asyncio.sleep(inp.delay)
    except asyncio.CancelledError:
        if inp.marker:
            Path(inp.marker).write_text("cancelled")  # noqa: ASYNC240 (a test marker)
        raise
    return {"steps": inp.steps}


class FailIn(msgspec.Struct):
    message: str


@app.agent_endpoint(description="Always fails with the given message.")
async def broken(inp: FailIn, ctx: RunContext) -> str:
    raise ValueError(inp.message)
