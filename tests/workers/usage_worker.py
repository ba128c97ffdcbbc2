"""A worker that reports LLM usage, for the usage accounting tests: ``spend`` through ``ctx.usage`` (and one
``llm_end`` by hand), ``priced`` as an ephemeral tool, and ``rogue``, which reports negative tokens."""

from __future__ import annotations

import msgspec

from fastagentic import App, RunContext

app = App("usage")


class LlmCall(msgspec.Struct):
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None


class Spend(msgspec.Struct):
    calls: list[LlmCall]
    by_hand: bool = False  # the last call as a hand-made llm_end event instead of ctx.usage


@app.agent_endpoint(description="Reports the usage of each of `calls`.")
async def spend(spend: Spend, ctx: RunContext) -> int:
    for i, call in enumerate(spend.calls):
        await ctx.token(f"call {i} ")
        if spend.by_hand and i == len(spend.calls) - 1:
            data = {
                "model": call.model,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
            }
            if call.cost is not None:
                data["cost"] = call.cost
            await ctx.emit("llm_end", data)
        else:
            await ctx.usage(
                call.model, input_tokens=call.input_tokens, output_tokens=call.output_tokens, cost=call.cost
            )
    await ctx.emit("llm_end", {"note": "an llm_end without usage fields counts nothing"})
    return len(spend.calls)


@app.tool
async def priced(model: str, tokens: int, ctx: RunContext) -> str:
    """An ephemeral call that reports usage: it lives in memory, its usage in the durable aggregates."""
    await ctx.usage(model, input_tokens=tokens, output_tokens=tokens)
    return model


@app.agent_endpoint(description="Reports valid usage, then negative tokens in the same batch.")
async def rogue(text: str, ctx: RunContext) -> str:
    await ctx.usage("gpt-rogue", input_tokens=100, output_tokens=100)
    # By hand, past ctx.usage's checks: what a buggy or hostile worker could send.
    await ctx.emit("llm_end", {"model": "gpt-rogue", "input_tokens": -1000, "output_tokens": 5})
    return text
