"""The CrewAI adapter in process, on crewai's own release, with the example's scripted LLM (a BaseLLM
subclass). Runs INSIDE the crewai environment (tests/framework_venvs.py builds it; test_adapter_crewai.py
starts this file there): crewai cannot be installed beside the gateway. The name is outside pytest's
``test_*.py`` pattern so the main suite never collects it.

Schemas from the crew's placeholders and final task, per-task and per-agent events in order with usage on
each ``llm_end`` and streamed tokens, tool calls through the central checks (a refused call never runs, a
result is masked before the agent sees it), a tool's error shown to the agent, an LLM's exception failing
the run with nodes closed, cancellation reaching the crew's thread."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
from crewai import Agent, Crew, Task
from crewai.tools import tool

from examples.crewai_agent import ScriptedLLM, crew, observed, react_call
from fastagentic import App
from fastagentic.adapters import CrewAIAdapter, adapter_for
from fastagentic.adapters.crewai import placeholders
from fastagentic.hooks import Verdict
from fastagentic.schema import InputError
from fastagentic.testing import check_adapter, check_cancellation, check_event_order, run_adapter
from tests.workers.crewai_worker import failing, ticker

SECRET = "4111-1111-1111-1111"
FACT = "Owls hunt at night and can turn their heads 270 degrees."


def test_a_crew_is_found_its_input_its_placeholders() -> None:
    adapter = adapter_for(crew)
    assert isinstance(adapter, CrewAIAdapter) and adapter.name == "research"
    assert placeholders(crew) == ["topic"]
    app = App("t")
    app.agent(crew)
    endpoint = app.endpoint("research")
    assert endpoint.shape.input_schema["required"] == ["topic"]
    assert endpoint.shape.input_schema["properties"]["topic"]["type"] == "string"
    assert endpoint.output_schema["type"] == "string"


async def test_the_research_crew_keeps_the_contract() -> None:
    recording = await check_adapter(CrewAIAdapter(crew), {"topic": "owls"})
    assert recording.output == f"In one line: {FACT}"


async def test_tasks_agents_llm_calls_and_tools_come_in_order_with_usage() -> None:
    recording = await run_adapter(crew, {"topic": "owls"})
    kinds = [k for k in recording.kinds if k != "token"]
    assert kinds == [
        "node_enter",
        "node_enter",
        *["llm_start", "message", "llm_end"],
        "tool_call",
        "tool_result",
        *["llm_start", "message", "llm_end"],
        "node_exit",
        "node_exit",
        "node_enter",
        "node_enter",
        *["llm_start", "message", "llm_end"],
        "node_exit",
        "node_exit",
    ]
    nodes = [(e.kind, e.data) for e in recording.events if e.kind.startswith("node_")]
    assert nodes == [
        ("node_enter", {"node": "task:research", "step": 1}),
        ("node_enter", {"node": "agent:Researcher", "step": 1}),
        ("node_exit", {"node": "agent:Researcher", "step": 1}),
        ("node_exit", {"node": "task:research", "step": 1}),
        ("node_enter", {"node": "task:write", "step": 2}),
        ("node_enter", {"node": "agent:Writer", "step": 2}),
        ("node_exit", {"node": "agent:Writer", "step": 2}),
        ("node_exit", {"node": "task:write", "step": 2}),
    ]
    call = recording.of("tool_call")[0]
    assert call["name"] == "lookup" and call["arguments"] == {"topic": "owls"}
    assert recording.of("tool_result") == [{"id": call["id"], "name": "lookup", "result": FACT}]
    # 10 tokens a message in (system + task, then + the tool round), 6 out: what the LLM reported.
    assert recording.of("llm_end") == [
        {"model": "scripted-researcher", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-researcher", "input_tokens": 40, "output_tokens": 6},
        {"model": "scripted-writer", "input_tokens": 20, "output_tokens": 6},
    ]
    # The writer's LLM streams: its chunks are the tokens, between its llm_start and llm_end.
    streamed = "".join(data["text"] for data in recording.of("token"))
    assert streamed == recording.of("message")[-1]["text"]
    last_start = max(i for i, e in enumerate(recording.events) if e.kind == "llm_start")
    first_token = min(i for i, e in enumerate(recording.events) if e.kind == "token")
    assert first_token > last_start


async def test_a_final_task_with_output_pydantic_gives_that_model() -> None:
    class Fact(pydantic.BaseModel):
        fact: str

    agent = Agent(
        role="Teller",
        goal="Tell",
        backstory="b",
        llm=ScriptedLLM(model="m", script=lambda m: 'Thought: done\nFinal Answer: {"fact": "owls"}'),
    )
    task = Task(
        description="Tell a fact about {topic}", expected_output="a fact", agent=agent, output_pydantic=Fact
    )
    adapter = CrewAIAdapter(Crew(agents=[agent], tasks=[task]), name="facts")
    assert adapter.output_type is Fact
    recording = await run_adapter(adapter, {"topic": "owls"})
    assert recording.error is None, recording.error
    assert recording.output == {"fact": "owls"}


async def test_unknown_input_is_refused_before_the_crew_runs() -> None:
    with pytest.raises(InputError, match=r"\$\.extra: Extra inputs are not permitted"):
        await run_adapter(crew, {"topic": "owls", "extra": 1})
    with pytest.raises(InputError, match=r"topic"):
        await run_adapter(crew, {})


class Policy:
    """The gateway's tool chains as a worker's checks see them: ``shell`` refused by hook ``policy``, every
    result with ``SECRET`` masked by hook ``pii``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, point: str, name: str, data: bytes) -> Verdict | None:
        payload = msgspec.json.decode(data)
        self.asked.append((point, name))
        if point == "on_tool_call":
            if name == "shell":
                return Verdict("reject", reason="no shell commands", hook="policy")
            return Verdict("proceed")
        text = json.dumps(payload.get("result"))
        if SECRET in text:
            masked = {**payload, "result": json.loads(text.replace(SECRET, "[card]"))}
            return Verdict("modify", data=msgspec.json.encode(masked), hook="pii")
        return Verdict("proceed")


def _desk(ran: list[str]) -> Crew:
    @tool("shell")
    def shell(command: str) -> str:
        """Run a shell command."""
        ran.append(f"shell {command}")
        return "done"

    @tool("card")
    def card(key: str) -> str:
        """Look a customer's card up."""
        ran.append(f"card {key}")
        return f"card of {key}: {SECRET}"

    def script(messages: list[dict[str, Any]]) -> str:
        seen = [observed([{}, {}, m]) for m in messages[2:] if "Observation:" in str(m.get("content"))]
        if len(seen) >= 2:
            return f"Thought: done\nFinal Answer: {' | '.join(str(s) for s in seen)}"
        if seen:
            return react_call("card", {"key": "ada"})
        return react_call("shell", {"command": "rm -rf /"})

    agent = Agent(
        role="Desk", goal="g", backstory="b", llm=ScriptedLLM(model="m", script=script), tools=[shell, card]
    )
    return Crew(
        name="desk", agents=[agent], tasks=[Task(description="Help", expected_output="help", agent=agent)]
    )


async def test_tool_calls_go_through_the_central_checks() -> None:
    ran: list[str] = []
    policy = Policy()
    recording = await run_adapter(_desk(ran), {}, checker=policy)
    assert recording.error is None, recording.error
    assert ran == ["card ada"]  # shell never ran
    results = {data["name"]: data for data in recording.of("tool_result")}
    assert results["shell"]["error"]["type"] in ("ToolRejected", "ToolError")
    assert "call rejected by hook 'policy': no shell commands" in results["shell"]["error"]["message"]
    assert results["card"]["result"] == "card of ada: [card]"
    assert "no shell commands" in recording.output and "card of ada: [card]" in recording.output
    for event in recording.events:
        assert SECRET not in json.dumps(event.data), (event.kind, event.data)
    # CrewAI tries a failed tool call again (each try is checked, and refused); the card call once.
    assert set(policy.asked) == {
        ("on_tool_call", "shell"),
        ("on_tool_call", "card"),
        ("on_tool_result", "card"),
    }
    assert policy.asked[-2:] == [("on_tool_call", "card"), ("on_tool_result", "card")]


async def test_without_checks_every_tool_runs_unchanged() -> None:
    ran: list[str] = []
    recording = await run_adapter(_desk(ran), {})
    assert ran == ["shell rm -rf /", "card ada"]
    assert SECRET in recording.output


async def test_a_tools_error_is_shown_to_the_agent_and_the_run_goes_on() -> None:
    @tool("broken")
    def broken(x: int) -> str:
        """Always fails."""
        raise ValueError(f"cannot do {x}")

    def script(messages: list[dict[str, Any]]) -> str:
        seen = observed(messages)
        return f"Thought: ok\nFinal Answer: saw {seen}" if seen else react_call("broken", {"x": 3})

    agent = Agent(
        role="R", goal="g", backstory="b", llm=ScriptedLLM(model="m", script=script), tools=[broken]
    )
    recording = await run_adapter(
        Crew(name="b", agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)]), {}
    )
    assert recording.error is None, recording.error
    check_event_order(recording)
    result = recording.of("tool_result")[0]
    assert result["name"] == "broken" and "cannot do 3" in result["error"]["message"]
    assert "cannot do 3" in recording.output


async def test_an_llm_exception_fails_the_run_with_nodes_closed() -> None:
    recording = await run_adapter(failing, {"question": "why"})
    assert isinstance(recording.error, LookupError) and str(recording.error) == "no answer for 'why'"
    check_event_order(recording, complete=False)
    assert recording.kinds == ["node_enter", "node_enter", "llm_start", "llm_end", "node_exit", "node_exit"]
    exits = recording.of("node_exit")
    assert exits[0]["error"]["message"] == "no answer for 'why'"
    assert exits[1]["error"] == {"type": "LookupError", "message": "no answer for 'why'"}


async def test_cancellation_stops_the_crew(tmp_path: Path) -> None:
    marks = tmp_path / "ticks"

    def lines() -> int:
        return len(marks.read_text().split()) if marks.exists() else 0

    await check_cancellation(ticker, {"path": str(marks)}, started=lambda r: lines() >= 3, progress=lines)


def test_the_sdk_alone_is_installed_here() -> None:
    # This environment is a worker's: the SDK and crewai, not the gateway's stack.
    import importlib.util

    assert importlib.util.find_spec("litestar") is None
    assert os.environ.get("CREWAI_DISABLE_TELEMETRY") == "true"
