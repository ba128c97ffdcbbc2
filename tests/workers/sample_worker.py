"""A worker for the sampling tests: ``summarise`` asks the calling client's model (``ctx.sample``) and says
what came back, or why nothing could."""

from __future__ import annotations

from typing import Any

from fastagentic import App, RunContext
from fastagentic.context import SamplingUnavailable

app = App("samples")


@app.agent_endpoint(durable=False, description="Summarises a text with the calling client's model.")
async def summarise(text: str, ctx: RunContext) -> dict[str, Any]:
    try:
        sample = await ctx.sample(
            ["Summarise in five words.", {"role": "assistant", "content": "Send the text."}, text],
            system_prompt="Be brief.",
            max_tokens=40,
            temperature=0.0,
        )
    except SamplingUnavailable as exc:
        return {"protocol": ctx.protocol, "unavailable": str(exc)}
    return {
        "protocol": ctx.protocol,
        "summary": sample.text,
        "model": sample.model,
        "stop_reason": sample.stop_reason,
    }


@app.agent_endpoint(durable=False, description="Samples without catching SamplingUnavailable.")
async def strict(text: str, ctx: RunContext) -> str:
    return (await ctx.sample(text)).text
