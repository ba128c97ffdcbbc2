"""A worker for the interrupt tests: ``ask`` (ephemeral) waits in place for an answer of a typed shape;
``refund`` (durable) prepares once (checkpointed), asks for approval, and records in
``$INTERRUPT_WORKER_LOG`` what it did at each attempt, so the tests can count side effects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from fastagentic import App, RunContext

app = App("interrupts")


class Refund(msgspec.Struct):
    amount: int
    note: str = ""


def _record(line: str) -> None:
    with Path(os.environ["INTERRUPT_WORKER_LOG"]).open("a") as log:
        log.write(line + "\n")


@app.agent_endpoint(durable=False, description="Asks how much to refund, then says it.")
async def ask(question: str, ctx: RunContext) -> dict[str, Any]:
    await ctx.token("asking ")
    answer = await ctx.interrupt({"question": question}, schema=Refund)
    await ctx.token("answered")
    return {"amount": answer.amount, "note": answer.note, "attempt": ctx.attempt}


@app.agent_endpoint(description="Prepares a refund once, asks for approval, then acts on the decision.")
async def refund(amount: int, ctx: RunContext) -> dict[str, Any]:
    if not (ctx.checkpoint_state or {}).get("prepared"):
        _record(f"prepare {ctx.run_id} {ctx.attempt}")
        await ctx.checkpoint({"prepared": True})
    decision = await ctx.approve("refund", {"amount": amount}, id="refund")
    _record(f"decided {ctx.run_id} {ctx.attempt} {decision.decision}")
    return {"decision": decision.decision, "payload": decision.payload, "attempt": ctx.attempt}
