"""A worker for the roots tests: ``workspace`` asks the calling client for its roots (``ctx.roots``) and says
what came back, or why nothing could; ``strict_workspace`` does not catch ``RootsUnavailable``;
``durable_workspace`` is the same question in a durable run (a task of the 2026-07-28 extension)."""

from __future__ import annotations

from typing import Any

from fastagentic import App, RunContext
from fastagentic.context import RootsUnavailable

app = App("roots")


async def _roots(ctx: RunContext) -> dict[str, Any]:
    try:
        roots = await ctx.roots(id="client_roots")
    except RootsUnavailable as exc:
        return {"protocol": ctx.protocol, "unavailable": str(exc)}
    return {"protocol": ctx.protocol, "roots": [{"uri": root.uri, "name": root.name} for root in roots]}


@app.agent_endpoint(durable=False, description="Lists the roots the calling client lets it work on.")
async def workspace(ctx: RunContext) -> dict[str, Any]:
    return await _roots(ctx)


@app.agent_endpoint(durable=True, description="Lists the client's roots in a durable run.")
async def durable_workspace(ctx: RunContext) -> dict[str, Any]:
    return await _roots(ctx)


@app.agent_endpoint(durable=False, description="Asks for roots without catching RootsUnavailable.")
async def strict_workspace(ctx: RunContext) -> int:
    return len(await ctx.roots())
