"""A worker whose tools run through ``ctx.tool``: the gateway's guardrails (tests/hook_policies.py) govern
them without this code knowing of any policy. ``GUARD_SIDE_EFFECTS`` names a file each tool that really
runs appends a line to; ``GUARD_OLD_WORKER=1`` makes the worker an older SDK's (no "tool_checks")."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

import fastagentic.worker
from fastagentic import App, RunContext
from fastagentic.hooks import Modify, ToolRejected, WorkerHookContext

if os.environ.get("GUARD_OLD_WORKER") == "1":
    fastagentic.worker.FEATURES = tuple(f for f in fastagentic.worker.FEATURES if f != "tool_checks")

app = App("guarded")


def _side_effect(what: str) -> None:
    path = os.environ.get("GUARD_SIDE_EFFECTS")
    if path:
        with Path(path).open("a") as handle:
            handle.write(what + "\n")


class Ask(msgspec.Struct):
    text: str
    tool: str = "lookup"


class Answer(msgspec.Struct):
    text: str
    seen: str = ""


def lookup(query: str) -> str:
    """A sync tool (runs in a thread): its result carries an email address the policy masks."""
    _side_effect(f"lookup {query}")
    return f"{query}: write to alice@example.com"


async def delete_everything(query: str) -> str:
    _side_effect(f"delete_everything {query}")
    return "deleted"


async def cached_lookup(query: str) -> str:
    _side_effect(f"cached_lookup {query}")
    return "fresh"


async def flaky(query: str, tries: int = 0) -> str:
    _side_effect(f"flaky {query}")
    return "done"


TOOLS = {f.__name__: f for f in (lookup, delete_everything, cached_lookup, flaky)}


@app.hook("on_tool_call")
def strip_arguments(call: WorkerHookContext) -> Modify | None:
    """A worker-side hook: runs before the gateway's (the gateway sees the stripped query)."""
    arguments = call.payload["arguments"]
    query = arguments.get("query")
    if isinstance(query, str) and query != query.strip():
        return Modify({**call.payload, "arguments": {**arguments, "query": query.strip()}})
    return None


@app.agent_endpoint
async def guarded(inp: Ask, ctx: RunContext) -> Answer:
    """Goes through every observable point, then calls a tool through the guardrails."""
    await ctx.emit("node_enter", {"node": "plan"})
    await ctx.emit("llm_start", {"model": "test-model"})
    await ctx.usage("test-model", input_tokens=3, output_tokens=2)
    result = await ctx.tool(TOOLS[inp.tool], query=inp.text)
    await ctx.checkpoint({"result": result})
    await ctx.emit("node_exit", {"node": "plan"})
    return Answer(text=str(result))


@app.agent_endpoint
async def careful(inp: Ask, ctx: RunContext) -> Answer:
    """Catches a refusal and answers with what the model would be told."""
    try:
        result = await ctx.tool(TOOLS[inp.tool], query=inp.text)
    except ToolRejected as exc:
        return Answer(text="refused", seen=str(exc))
    return Answer(text=str(result))


@app.agent_endpoint
async def plain(inp: Ask) -> Answer:
    """No tools: the output is the input (for on_request / on_response)."""
    _side_effect(f"plain {inp.text}")
    return Answer(text=inp.text)


class Timing(msgspec.Struct):
    calls: int = 200


class Timed(msgspec.Struct):
    p50_us: float
    p90_us: float


async def noop() -> None:
    return None


@app.agent_endpoint
async def timed(inp: Timing, ctx: RunContext) -> Timed:
    """What a tool call through ``ctx.tool`` costs, measured in the worker (the guardrails' latency)."""
    import time

    took = []
    for _ in range(inp.calls):
        started = time.perf_counter()
        await ctx.tool(noop)
        took.append((time.perf_counter() - started) * 1e6)
    took.sort()
    return Timed(p50_us=took[len(took) // 2], p90_us=took[int(len(took) * 0.9)])
