"""CrewAI crews for the adapter's tests (in the crewai environment only: tests/framework_venvs.py), on the
example's scripted LLM: ``ticker`` is a crew whose agent calls ``tick`` (a line to the file named in the
input, then 50 ms) over and over until cancelled; ``failing`` a crew whose LLM raises on its first call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool

from examples.crewai_agent import ScriptedLLM, between, react_call
from fastagentic import App

app = App("crewai-tests")


@tool("tick")
def tick(path: str, n: int) -> str:
    """Write a line to ``path``, then wait 50 ms (``n``: the call's number, so no two calls are alike)."""
    with Path(path).open("a") as marks:
        marks.write("tick\n")
    time.sleep(0.05)
    return f"tick {n} done"


def ticker_script(messages: list[dict[str, Any]]) -> str:
    path = between(str(messages[1].get("content") or ""), "Tick into:", "\n")
    done = sum("tick " in str(m.get("content") or "") for m in messages[2:])
    return react_call("tick", {"path": path, "n": done + 1})


ticking = Agent(
    role="Ticker",
    goal="Tick",
    backstory="You tick.",
    llm=ScriptedLLM(model="scripted-ticker", script=ticker_script),
    tools=[tick],
    cache=False,  # every call runs the tool
    max_iter=10_000,
)
ticker = Crew(
    name="ticker",
    agents=[ticking],
    tasks=[Task(name="tick", description="Tick into: {path}\n", expected_output="ticks", agent=ticking)],
)
app.agent(ticker)


def refuse(messages: list[dict[str, Any]]) -> str:
    question = between(str(messages[1].get("content") or ""), "Answer:", "\n")
    raise LookupError(f"no answer for {question!r}")


failing_agent = Agent(
    role="Oracle",
    goal="Answer",
    backstory="You never know.",
    llm=ScriptedLLM(model="scripted-failing", script=refuse),
    max_retry_limit=0,
)
failing = Crew(
    name="failing",
    agents=[failing_agent],
    tasks=[
        Task(
            name="answer",
            description="Answer: {question}\n",
            expected_output="an answer",
            agent=failing_agent,
        )
    ],
)
app.agent(failing)
