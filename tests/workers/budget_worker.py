"""A worker for the budget tests: ``spend`` reports the tokens it is asked to (with the model the gateway
hints, if any) and returns the hint it started with; ``runaway`` spends 100 tokens a step until stopped,
and writes to ``$BUDGET_WORKER_LOG`` how it was stopped."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fastagentic import App, RunContext

app = App("budgets")


@app.agent_endpoint(durable=False, description="Reports `tokens` input tokens; answers the model hint.")
async def spend(tokens: int, ctx: RunContext) -> dict[str, str]:
    hint = ctx.model_hint
    await ctx.usage(hint or "big-model", input_tokens=tokens)
    return {"hint": hint}


@app.agent_endpoint(description="Spends 100 tokens a step, for ever, following the model hint.")
async def runaway(steps: int, ctx: RunContext) -> int:
    try:
        for step in range(steps):
            await ctx.token(f"step {step} ")
            await ctx.usage(ctx.model_hint or "big-model", input_tokens=60, output_tokens=40)
            await asyncio.sleep(0.05)
        return steps
    except asyncio.CancelledError as stopped:
        reason = stopped.args[0] if stopped.args else ""
        with Path(os.environ["BUDGET_WORKER_LOG"]).open("a") as log:  # noqa: ASYNC230 (a line, on the way out)
            log.write(f"{ctx.run_id} CancelledError {reason}\n")
        raise
