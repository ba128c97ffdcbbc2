"""A worker written only against the public SDK surface, used by the end-to-end tests."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import os
import threading
import time
from pathlib import Path
from typing import Literal, TypedDict

import msgspec
import pydantic

from fastagentic import App, RunContext

app = App("basic")


class EchoIn(msgspec.Struct):
    text: str
    repeat: int = 1


class EchoOut(msgspec.Struct):
    text: str
    run_id: str
    attempt: int


@app.agent_endpoint
async def echo(inp: EchoIn, ctx: RunContext) -> EchoOut:
    """Echo the text back, streaming it first."""
    for _ in range(inp.repeat):
        await ctx.token(inp.text)
    await ctx.emit("progress", {"pct": 50})
    await ctx.checkpoint({"step": 1})
    return EchoOut(text=inp.text * inp.repeat, run_id=ctx.run_id, attempt=ctx.attempt)


class StepsIn(msgspec.Struct):
    steps: int
    delay: float = 0.2
    marker: str | None = None  # a file the function writes what happened to


class StepsOut(msgspec.Struct):
    completed: int
    resumed_from: int
    attempt: int
    worker_pid: int


@app.agent_endpoint(name="steps", description="Counts steps, checkpointing after each one.")
async def steps(inp: StepsIn, ctx: RunContext) -> StepsOut:
    start = (ctx.checkpoint_state or {}).get("done", 0)
    try:
        for step in range(start, inp.steps):
            await ctx.token(f"step {step + 1} ")
            await ctx.checkpoint({"done": step + 1})
            await asyncio.sleep(inp.delay)
    except asyncio.CancelledError:
        if inp.marker:
            Path(inp.marker).write_text(f"cancelled ctx.cancelled={ctx.cancelled}")  # noqa: ASYNC240 (a test marker)
        raise
    return StepsOut(completed=inp.steps, resumed_from=start, attempt=ctx.attempt, worker_pid=os.getpid())


class FailIn(msgspec.Struct):
    message: str = "boom"


@app.agent_endpoint
async def fail(inp: FailIn, ctx: RunContext) -> EchoOut:
    raise ValueError(inp.message)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Item:
    name: str
    quantity: int = 1


class Order(pydantic.BaseModel):
    customer: str
    items: list[Item]
    color: Color | None = None
    priority: Literal["low", "high"] = "low"


class Receipt(TypedDict):
    customer: str
    total_items: int


@app.agent_endpoint(durable=False, scopes=["orders:write"], tags=["shop"])
async def order(order: Order, ctx: RunContext) -> Receipt:
    return {"customer": order.customer, "total_items": sum(i.quantity for i in order.items)}


@app.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool
def where_am_i(pause: float = 0.0) -> dict[str, object]:
    """A sync tool: reports the thread it ran on."""
    time.sleep(pause)
    return {
        "thread": threading.current_thread().name,
        "main": threading.current_thread() is threading.main_thread(),
    }


@app.tool(name="maybe")
async def maybe_tool(value: int | None = None) -> int | None:
    return value


@app.resource("notes://{name}", mime_type="text/plain")
async def note(name: str) -> str:
    if name == "missing":
        raise FileNotFoundError(f"no note {name}")
    return f"note {name}"


@app.resource("blobs://{name}")
def blob(name: str) -> bytes:
    return name.encode() * 2


@app.prompt
def greet(name: str, formal: bool = False) -> str:
    return f"Dear {name}," if formal else f"Hi {name}!"


class BigCheckpointIn(msgspec.Struct):
    size: int  # characters of padding in the checkpoint state
    after: float = 10.0  # seconds it keeps going after the checkpoint
    marker: str | None = None  # a file the function writes to when it is told to stop


@app.agent_endpoint(
    name="big_checkpoint", description="Checkpoints a state of about `size` bytes, then waits."
)
async def big_checkpoint(inp: BigCheckpointIn, ctx: RunContext) -> dict[str, int]:
    await ctx.token("before")
    await ctx.checkpoint({"pad": "x" * inp.size})
    try:
        await asyncio.sleep(inp.after)
    except asyncio.CancelledError:
        if inp.marker:
            Path(inp.marker).write_text(f"cancelled ctx.cancelled={ctx.cancelled}")  # noqa: ASYNC240 (a test marker)
        raise
    return {"size": inp.size}
