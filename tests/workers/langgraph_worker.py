"""LangGraph graphs for the adapter's end-to-end tests. Nodes count their runs in files of the directory
``marks`` of the state (one line per run of a node), so a test sees which nodes ran again after a worker
was killed: ``pipeline`` (fetch -> enrich -> publish; enrich waits for a file ``go``), ``ticker`` (one
node writing a line every 50 ms), ``broken`` (a node that raises)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from fastagentic import App

app = App("langgraph-tests")


class Job(TypedDict, total=False):
    marks: str
    done: list[str]


def _mark(state: Job, node: str) -> dict[str, list[str]]:
    with (Path(state["marks"]) / node).open("a") as marks:
        marks.write("ran\n")
    return {"done": [*state.get("done", []), node]}


def fetch(state: Job) -> dict[str, list[str]]:
    return _mark(state, "fetch")


async def enrich(state: Job) -> dict[str, list[str]]:
    update = _mark(state, "enrich")
    for _ in range(1200):
        if (Path(state["marks"]) / "go").exists():
            return update
        await asyncio.sleep(0.05)
    raise TimeoutError("nobody said go")


def publish(state: Job) -> dict[str, list[str]]:
    return _mark(state, "publish")


pipeline = StateGraph(Job)
pipeline.add_node("fetch", fetch)
pipeline.add_node("enrich", enrich)
pipeline.add_node("publish", publish)
pipeline.add_edge(START, "fetch")
pipeline.add_edge("fetch", "enrich")
pipeline.add_edge("enrich", "publish")
pipeline.add_edge("publish", END)
app.agent(pipeline.compile(name="pipeline"))


async def tick(state: Job) -> dict[str, list[str]]:
    for count in range(1200):
        with (Path(state["marks"]) / "tick").open("a") as marks:
            marks.write(f"{count}\n")
        await asyncio.sleep(0.05)
    return {"done": ["tick"]}


ticker = StateGraph(Job)
ticker.add_node("tick", tick)
ticker.add_edge(START, "tick")
ticker.add_edge("tick", END)
app.agent(ticker.compile(name="ticker"))


def triage(state: Job) -> dict[str, list[str]]:
    raise LookupError("no such ticket: 7")


broken = StateGraph(Job)
broken.add_node("triage", triage)
broken.add_edge(START, "triage")
broken.add_edge("triage", END)
app.agent(broken.compile(name="broken"))
