"""A worker for the MCP change tests, written only against the public SDK surface.

``app`` keeps memos in memory: ``memo://index`` (a fixed resource) and ``memo://{name}`` (a template). The
tools ``write`` (sync, so it announces from a worker thread) and ``append`` (async) change a memo and say so
with ``app.resource_changed``. ``crunch`` (an agent) and ``archive`` (a durable tool) require a task.
"""

from __future__ import annotations

import asyncio

from fastagentic import App

app = App("changes")

MEMOS: dict[str, str] = {}


@app.resource("memo://index", mime_type="application/json")
def index() -> list[str]:
    return sorted(MEMOS)


@app.resource("memo://{name}", mime_type="text/plain")
def memo(name: str) -> str:
    return MEMOS.get(name, "")


@app.tool
def write(name: str, text: str) -> str:
    """Replace a memo; its resource (and the index, for a new one) changed."""
    new = name not in MEMOS
    MEMOS[name] = text
    app.resource_changed(f"memo://{name}")
    if new:
        app.resource_changed("memo://index")
    return text


@app.tool
async def append(name: str, text: str) -> str:
    """Add to a memo, from the event loop."""
    await asyncio.sleep(0)
    MEMOS[name] = MEMOS.get(name, "") + text
    app.resource_changed(f"memo://{name}")
    return MEMOS[name]


@app.agent_endpoint(task_required=True)
async def crunch(n: int) -> int:
    """A long computation: MCP clients must run it as a task."""
    await asyncio.sleep(0.2)
    return n * n


@app.tool(durable=True, task_required=True)
def archive(item: str) -> str:
    return f"archived {item}"
