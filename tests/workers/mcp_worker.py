"""A worker for the MCP end-to-end tests, written only against the public SDK surface.

``app`` serves tools (structured, content, failing, streaming, logging, slow), agents (for tasks),
resources and prompts; ``late`` is a second app with one more tool, started later to change the lists.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Literal, TypedDict

import msgspec

from fastagentic import App, RunContext
from fastagentic.content import EmbeddedResource, Image, ResourceLink, Text

app = App("mcp")

PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"


@app.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Profile(msgspec.Struct):
    name: str
    letters: int
    tags: list[str]


@app.tool
def profile(name: str, tags: list[str] | None = None) -> Profile:
    """Describe a name."""
    return Profile(name=name, letters=len(name), tags=tags or [])


@app.tool
def shout(text: str) -> str:
    return text.upper()


class Point(TypedDict):
    x: int
    y: int


@app.tool
def locate(points: list[Point]) -> Point:
    """The last point of a path."""
    return points[-1]


@app.tool
def picture(caption: str) -> list[Text | Image]:
    """A caption and an image."""
    return [Text(caption), Image(PNG, "image/png")]


@app.tool
def references() -> list[EmbeddedResource | ResourceLink]:
    return [
        EmbeddedResource.of_text("notes://inline", "inline note", "text/plain"),
        ResourceLink(uri="notes://linked", name="linked", mime_type="text/plain"),
    ]


@app.tool
def explode(message: str = "kaboom") -> int:
    """Always fails."""
    raise ValueError(message)


@app.tool
async def count(n: int, ctx: RunContext, delay: float = 0.0) -> int:
    """Reports progress at each step, then streams a few tokens."""
    for step in range(1, n + 1):
        await ctx.progress(step, total=n, message=f"step {step} of {n}")
        if delay:
            await asyncio.sleep(delay)
    for word in ("done", " counting"):
        await ctx.token(word)
    return n


@app.tool
async def chatty(ctx: RunContext) -> str:
    """Logs at three levels."""
    await ctx.log("just so you know", level="debug")
    await ctx.log("halfway", level="info")
    await ctx.log("careful now", level="warning")
    return "said it all"


class SlowIn(msgspec.Struct):
    seconds: float
    marker: str | None = None  # the function writes what happened to this file


@app.tool
async def slow(inp: SlowIn, ctx: RunContext) -> str:
    """Sleeps; writes ``cancelled`` to the marker file if cancelled."""
    if inp.marker:
        Path(inp.marker).write_text("started")  # noqa: ASYNC240 (a test marker)
    try:
        await asyncio.sleep(inp.seconds)
    except asyncio.CancelledError:
        if inp.marker:
            Path(inp.marker).write_text(f"cancelled ctx.cancelled={ctx.cancelled}")  # noqa: ASYNC240
        raise
    return "slept"


class ResearchIn(msgspec.Struct):
    topic: str
    steps: int = 3
    delay: float = 0.05


class Findings(msgspec.Struct):
    topic: str
    notes: list[str]
    worker_pid: int


@app.agent_endpoint
async def research(inp: ResearchIn, ctx: RunContext) -> Findings:
    """Researches a topic in steps (a durable agent)."""
    notes = []
    for step in range(inp.steps):
        await ctx.progress(step + 1, total=inp.steps, message=f"reading about {inp.topic}")
        await asyncio.sleep(inp.delay)
        notes.append(f"{inp.topic} #{step + 1}")
    return Findings(topic=inp.topic, notes=notes, worker_pid=os.getpid())


@app.agent_endpoint
async def dawdle(inp: SlowIn, ctx: RunContext) -> str:
    """A slow agent; writes ``cancelled`` to the marker file if cancelled."""
    return await slow(inp, ctx)


@app.agent_endpoint
async def fragile(inp: ResearchIn, ctx: RunContext) -> Findings:
    """An agent that fails."""
    raise RuntimeError(f"no sources on {inp.topic}")


@app.tool(durable=True)
def archive(item: str) -> str:
    """A durable tool: it may run as a task."""
    return f"archived {item}"


@app.resource("config://app", mime_type="application/json", description="The app configuration.")
def config() -> dict[str, str | int]:
    return {"mode": "test", "retries": 3}


NOTE_NAMES = ["groceries", "garden", "goals", "travel"]


async def note_names(value: str) -> list[str]:
    """An async completer that looks only at the typed value."""
    await asyncio.sleep(0)
    return [name for name in NOTE_NAMES if name.startswith(value)]


@app.resource(
    "notes://{name}", mime_type="text/plain", description="A note by name.", complete={"name": note_names}
)
async def note(name: str) -> str:
    if name == "missing":
        raise FileNotFoundError(f"no note {name}")
    return f"note {name}"


@app.resource("blobs://{name}")
def blob(name: str) -> bytes:
    return name.encode() * 2


@app.prompt(description="Ask for a code review.")
def review(code: str, language: Literal["python", "rust", "go"] = "python", strict: bool = False) -> str:
    return f"Review this {language} code{' strictly' if strict else ''}:\n{code}"


@app.prompt
def conversation(topic: str) -> list[dict[str, str]]:
    """A two-message prompt."""
    return [
        {"role": "user", "content": f"Tell me about {topic}."},
        {"role": "assistant", "content": f"What about {topic}?"},
    ]


CITIES = {"Paris": ["Marais", "Montmartre"], "Porto": ["Ribeira", "Foz"], "Prague": ["Mala Strana"]}


def cities(value: str) -> list[str]:
    """A sync completer."""
    return [city for city in CITIES if city.lower().startswith(value.lower())]


async def districts(value: str, arguments: dict[str, str]) -> list[str]:
    """Completes from another argument the client already chose."""
    return [d for d in CITIES.get(arguments.get("city", ""), []) if d.startswith(value)]


def many(value: str) -> list[str]:
    return [f"{value}{n:03d}" for n in range(150)]


def broken(value: str) -> list[str]:
    raise RuntimeError("the catalogue is down")


def sluggish(value: str) -> list[str]:
    """Blocks its thread for a while (a completer doing slow I/O)."""
    import time

    time.sleep(float(value or "2"))
    return ["finally"]


@app.prompt(
    complete={"city": cities, "district": districts, "code": many, "mood": broken, "wait": sluggish},
    description="Plan a trip.",
)
def trip(
    city: str,
    district: str = "",
    code: str = "",
    mood: Literal["calm", "busy"] = "calm",
    wait: str = "",
) -> str:
    return f"Plan a {mood} trip to {district or 'anywhere in'} {city}"


late = App("mcp-late")


@late.tool
def late_tool(x: int) -> int:
    """Arrives with a second worker."""
    return x * 2


@late.prompt
def late_prompt(name: str) -> str:
    return f"Hello {name}"
