"""A worker for the approval channel tests: ``refund`` and ``ship`` ask for approval (``ctx.approve``),
``ask`` and ``quiz`` ask a question; each returns what it was told."""

from __future__ import annotations

from typing import Any

import msgspec

from fastagentic import App, RunContext

app = App("approvals")


class Amount(msgspec.Struct):
    amount: int


@app.agent_endpoint(description="Asks for approval of a refund, then says what was decided.")
async def refund(amount: int, ctx: RunContext) -> dict[str, Any]:
    decision = await ctx.approve("refund", {"amount": amount}, id="refund")
    return {"decision": decision.decision, "payload": decision.payload, "reason": decision.reason}


@app.agent_endpoint(durable=False, description="Asks for approval of a shipment (waits in place).")
async def ship(order: str, ctx: RunContext) -> dict[str, Any]:
    decision = await ctx.approve("ship", {"order": order}, id="ship")
    return {"decision": decision.decision, "reason": decision.reason}


@app.agent_endpoint(description="Asks how much, then says it.")
async def ask(question: str, ctx: RunContext) -> dict[str, Any]:
    answer = await ctx.interrupt({"question": question}, schema=Amount, id="how-much")
    return {"amount": answer.amount}


@app.agent_endpoint(description="Asks a question nobody answers in the tests.")
async def quiz(question: str, ctx: RunContext) -> dict[str, Any]:
    answer = await ctx.interrupt({"question": question}, schema=Amount, id="quiz")
    return {"amount": answer.amount}
