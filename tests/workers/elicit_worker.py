"""A worker for the MCP elicitation tests: ``signup`` asks twice (an object, then a yes/no), so a call
needs two rounds of answers; ``enrol`` asks its first question before its task (``input_before_task``)."""

from __future__ import annotations

import asyncio
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


@app.agent_endpoint(
    input_before_task=True,
    description="Enrols someone: asks who (before its task, for MCP task callers), then works on.",
)
async def enrol(course: str, ctx: RunContext, ask: bool = True, delay: float = 0.0) -> dict[str, Any]:
    await asyncio.sleep(delay)  # silent work before the first question
    person = await ctx.elicit("Who is enrolling?", schema=Person) if ask else Person("nobody", 0)
    await ctx.progress(0.5, message="enrolling")
    if ask and person.age < 18:
        await ctx.elicit(f"Is {person.name} allowed by a guardian?", schema=bool)  # asked within the task
    return {"course": course, "name": person.name, "age": person.age, "attempt": ctx.attempt}
