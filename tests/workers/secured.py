"""A worker for the identity tests: endpoints open to every authenticated caller, and endpoints that
require scopes, of every kind."""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec

from fastagentic import App, RunContext

app = App("secured")


class Question(msgspec.Struct):
    text: str
    steps: int = 0  # tokens to stream slowly first (a run that stays active for a while)


@app.agent_endpoint(description="Answers anyone who is authenticated.")
async def ask(question: Question, ctx: RunContext) -> dict[str, str]:
    for step in range(question.steps):
        await ctx.token(f"{step} ")
        await ctx.checkpoint({"step": step})
        await asyncio.sleep(0.2)
    return {"answer": f"you asked {question.text}"}


@app.agent_endpoint(description="Reads the reports: needs reports:read.", scopes=["reports:read"])
async def report(question: Question, ctx: RunContext) -> dict[str, str]:
    await ctx.checkpoint({"read": True})
    return {"report": f"report on {question.text}"}


@app.tool(scopes=["tools:admin"])
def purge(days: int) -> str:
    """Purges old data: needs tools:admin."""
    return f"purged {days} days"


@app.tool
def echo(text: str) -> str:
    """Echoes its text to anyone authenticated."""
    return text


@app.prompt(scopes=["reports:read"])
def summary(topic: Literal["sales", "costs"]) -> str:
    """A summary prompt: needs reports:read."""
    return f"Summarise {topic}."


@app.resource("secret://plans", scopes=["reports:read"])
def plans() -> str:
    """The plans: need reports:read."""
    return "the plans"
