"""The example worker: an agent that streams and checkpoints, a tool, a resource and a prompt.

No API key needed: the "agent" plays a language model by streaming the words of its answer.

    fastagentic dev examples.demo:app        # gateway + this worker, for local work
    fastagentic run examples.demo:app        # this worker, against a running gateway
"""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec

from fastagentic import App, RunContext

app = App("demo", description="FastAgentic's example worker")


class Question(msgspec.Struct):
    text: str
    style: Literal["plain", "shout"] = "plain"
    delay: float = msgspec.field(default=0.05)


class Answer(msgspec.Struct):
    text: str
    words: int


@app.agent_endpoint(
    description="Answers a question word by word, checkpointing as it goes.",
    examples=[{"text": "what is FastAgentic?"}],
)
async def answer(question: Question, ctx: RunContext) -> Answer:
    words = f"You asked: {question.text}. FastAgentic deploys agents built with anything.".split()
    if question.style == "shout":
        words = [w.upper() for w in words]
    # Resume where an earlier attempt left off (after a worker was lost mid-run).
    done = (ctx.checkpoint_state or {}).get("words_sent", 0)
    for index in range(done, len(words)):
        await ctx.token(words[index] + " ")
        await ctx.progress(index + 1, total=len(words))
        await ctx.checkpoint({"words_sent": index + 1})
        await asyncio.sleep(max(0.0, min(question.delay, 5.0)))
    return Answer(text=" ".join(words), words=len(words))


@app.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


DOCS = {
    "intro": "FastAgentic: build agents with anything, ship them with FastAgentic.",
    "gateway": "The gateway speaks REST, MCP and A2A and owns auth, limits, durability and telemetry.",
}


@app.resource("docs://{name}", mime_type="text/markdown")
async def doc(name: str) -> str:
    """A short document by name."""
    if name not in DOCS:
        raise KeyError(f"no document {name!r}; try one of {sorted(DOCS)}")
    return DOCS[name]


@app.prompt
def greet(name: str, tone: Literal["warm", "formal"] = "warm") -> str:
    """A greeting prompt."""
    if tone == "formal":
        return f"Write a formal greeting addressed to {name}."
    return f"Write a warm, friendly greeting for {name}."
