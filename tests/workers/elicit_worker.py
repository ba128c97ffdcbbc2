"""A worker for the MCP elicitation tests: ``signup`` asks twice (an object, then a yes/no), so a call
needs two rounds of answers."""

from __future__ import annotations

from typing import Any

import msgspec

from fastagentic import App, RunContext

app = App("elicits")


class Person(msgspec.Struct):
    name: str
    age: int


@app.agent_endpoint(
    durable=False, description="Signs someone up: asks who, then whether to send the newsletter."
)
async def signup(plan: str, ctx: RunContext) -> dict[str, Any]:
    person = await ctx.elicit("Who is signing up?", schema=Person)
    newsletter = await ctx.elicit(f"Send {person.name} the newsletter?", schema=bool)
    return {"plan": plan, "name": person.name, "age": person.age, "newsletter": newsletter}
