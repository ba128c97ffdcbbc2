"""A worker whose agent answers with what no input may hold: integers beyond a double, deep nesting.

Inputs are held to the gateway's limits, but a worker's output is the worker's: the fronts must still
show such a run, and list it beside others."""

from __future__ import annotations

from typing import Any

import msgspec

from fastagentic import App, RunContext

app = App("odd")


class Shape(msgspec.Struct):
    depth: int = 0
    digits: int = 0


@app.agent_endpoint(description="Answers with a value nested `depth` deep and an integer of `digits` digits.")
async def odd(shape: Shape, ctx: RunContext) -> dict[str, Any]:
    nested: Any = "bottom"
    for _ in range(shape.depth):
        nested = {"down": nested}
    return {"nested": nested, "number": int("9" * shape.digits) if shape.digits else 0}
