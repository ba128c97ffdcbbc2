"""The bench worker: echo endpoints (ephemeral and durable), a token streamer, a paced token streamer
(``drip``, for the scale rows), and an idle agent."""

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


class DripIn(msgspec.Struct):
    count: int = 10
    interval: float = 0.1


@app.agent_endpoint(durable=False)
async def drip(inp: DripIn, ctx: RunContext) -> int:
    """``count`` tokens, one every ``interval`` seconds: a run that streams a few events over some time."""
    for _ in range(inp.count):
        await asyncio.sleep(inp.interval)
        await ctx.token("t")
    return inp.count
