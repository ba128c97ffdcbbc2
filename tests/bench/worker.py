"""The bench worker: echo endpoints (ephemeral and durable), a token streamer, and an idle agent."""

from __future__ import annotations

import asyncio

import msgspec

from fastagentic import App, RunContext

app = App("bench")


class Payload(msgspec.Struct):
    text: str
    n: int = 0


@app.agent_endpoint(durable=False)
async def echo(inp: Payload, ctx: RunContext) -> Payload:
    return inp


@app.agent_endpoint(durable=True)
async def echo_durable(inp: Payload, ctx: RunContext) -> Payload:
    return inp


class TokensIn(msgspec.Struct):
    count: int


@app.agent_endpoint(durable=False)
async def tokens(inp: TokensIn, ctx: RunContext) -> int:
    for _ in range(inp.count):
        await ctx.token("t")
    return inp.count


class IdleIn(msgspec.Struct):
    seconds: float


@app.agent_endpoint(durable=False)
async def idle(inp: IdleIn, ctx: RunContext) -> None:
    await asyncio.sleep(inp.seconds)
