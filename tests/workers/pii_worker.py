"""A worker whose runs put personal data in every kind of event it can send: tokens, a message, progress, a
log line, an artifact, a custom kind, a checkpoint and an interrupt. It knows of no policy: the gateway's
``on_event`` hooks (tests/e2e/test_pii_events.py) decide what is stored and what followers see."""

from __future__ import annotations

from typing import Any

import msgspec

from fastagentic import App, RunContext

app = App("pii")

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"


class Ask(msgspec.Struct):
    text: str = ""


class Answer(msgspec.Struct):
    text: str


class Reply(msgspec.Struct):
    ok: bool


@app.agent_endpoint(description="Streams personal data in every kind of event, then answers.")
async def chatty(inp: Ask, ctx: RunContext) -> Answer:
    await ctx.token(f"write to {EMAIL} ")
    await ctx.token(f"and charge {CARD}")
    await ctx.emit("message", {"role": "assistant", "content": f"I will mail {EMAIL} and charge {CARD}"})
    await ctx.progress(1, 2, message=f"charging {CARD}")
    await ctx.log(f"contacted {EMAIL}", level="info")
    await ctx.emit("artifact", {"name": "receipt", "card": CARD})
    await ctx.emit("lead.found", {"contact": {"email": EMAIL}})
    await ctx.checkpoint({"contact": EMAIL})
    await ctx.progress(2, 2, message="done")
    return Answer(text="done")


@app.agent_endpoint(description="Streams an email address cut across two tokens, and answers with it whole.")
async def split(inp: Ask, ctx: RunContext) -> Answer:
    head, tail = EMAIL[:9], EMAIL[9:]
    await ctx.token(f"write to {head}")
    await ctx.token(f"{tail} today")
    return Answer(text=f"write to {EMAIL} today")


@app.agent_endpoint(durable=False, description="Asks a question that holds an email address.")
async def confirm(inp: Ask, ctx: RunContext) -> dict[str, Any]:
    answer = await ctx.interrupt({"question": f"may I write to {EMAIL}?"}, schema=Reply)
    return {"ok": answer.ok}
