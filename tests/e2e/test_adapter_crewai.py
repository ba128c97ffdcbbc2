"""The CrewAI adapter end to end, as a user deploys it: a real gateway from the main environment, and workers
run by the python of a crewai environment of their own (the SDK and ``fastagentic[crewai]``: crewai cannot
sit beside the gateway; tests/framework_venvs.py builds it, skipped when it cannot be built). The example
crew's task, agent, LLM and tool events reach SSE in order with usage on each ``llm_end`` and in the run's
totals; a crew whose LLM raises gives a failed run with the type and message; MCP tools/call reaches the crew."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.types import TaskState

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.a2a_support import a2a_client, collect, output_of, request, text_message
from tests.e2e.mcp_support import client as mcp_client
from tests.e2e.test_rest import assert_gap_free, sse_events
from tests.framework_venvs import framework_venv, report, start_worker

FACT = "Owls hunt at night and can turn their heads 270 degrees."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    venv = framework_venv("crewai")
    report(request.config, venv)
    cluster = Cluster(Path(tmp_path_factory.mktemp("crewai")))
    try:
        gateway = cluster.start_gateway()
        start_worker(cluster, venv, "examples.crewai_agent:app")
        start_worker(cluster, venv, "tests.workers.crewai_worker:app")
        wait_until(lambda: {"research", "ticker", "failing"} <= gateway.endpoints(), what="the crews")
        yield gateway
    except BaseException:
        print(cluster.dump())
        raise
    finally:
        cluster.close()


def _stream(gateway: Gateway, agent: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with gateway.client() as http:
        response = http.post(f"/v1/agents/{agent}/stream", json=body)
    assert response.status_code == 200, response.text
    return sse_events(response)


def test_the_input_schema_is_the_crews_placeholders(served: Gateway) -> None:
    endpoints = {
        e["name"]: e for e in httpx.get(f"{served.url}/v1/endpoints", timeout=10).json()["endpoints"]
    }
    assert endpoints["research"]["input_schema"]["required"] == ["topic"]
    assert endpoints["research"]["output_schema"]["type"] == "string"


def test_the_stream_shows_tasks_agents_llm_calls_and_tools_in_order_with_usage(served: Gateway) -> None:
    events = _stream(served, "research", {"topic": "owls"})
    assert_gap_free(events)
    kinds = [e["kind"] for e in events if e["kind"] != "token"]
    assert kinds == [
        "run.started",
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
        "run.completed",
    ]
    nodes = [e["data"]["node"] for e in events if e["kind"] == "node_enter"]
    assert nodes == ["task:research", "agent:Researcher", "task:write", "agent:Writer"]
    call = next(e["data"] for e in events if e["kind"] == "tool_call")
    assert call["name"] == "lookup" and call["arguments"] == {"topic": "owls"}
    result = next(e["data"] for e in events if e["kind"] == "tool_result")
    assert result == {"id": call["id"], "name": "lookup", "result": FACT}
    usage = [e["data"] for e in events if e["kind"] == "llm_end"]
    assert usage == [
        {"model": "scripted-researcher", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-researcher", "input_tokens": 40, "output_tokens": 6},
        {"model": "scripted-writer", "input_tokens": 20, "output_tokens": 6},
    ]
    tokens = "".join(e["data"]["text"] for e in events if e["kind"] == "token")
    assert tokens.endswith(f"Final Answer: In one line: {FACT}")
    assert events[-1]["data"]["output"] == f"In one line: {FACT}"
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["calls"] == 3
    assert run["usage"]["input_tokens"] == 80 and run["usage"]["output_tokens"] == 18
    with served.client() as http:
        answer = http.post("/v1/agents/research/invoke", json={"topic": "owls"}).json()
    assert answer["status"] == "succeeded" and answer["output"] == f"In one line: {FACT}", answer


def test_a_crew_whose_llm_raises_fails_the_run_with_its_type_and_message(served: Gateway) -> None:
    events = _stream(served, "failing", {"question": "why"})
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"] == {"type": "LookupError", "message": "no answer for 'why'"}
    assert [e["kind"] for e in events[1:-1]] == [
        "node_enter",
        "node_enter",
        "llm_start",
        "llm_end",
        "node_exit",
        "node_exit",
    ]


def test_cancel_stops_the_crew(served: Gateway, tmp_path: Path) -> None:
    marks = tmp_path / "ticks"

    def lines() -> int:
        return len(marks.read_text().split()) if marks.exists() else 0

    with served.client() as http:
        started = http.post("/v1/agents/ticker/runs", json={"path": str(marks)})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: lines() >= 3, what="the tool to tick")
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled", what="cancelled")
    settled = lines()
    time.sleep(0.5)  # ten ticks' time: a crew still running would have written more
    assert lines() <= settled + 1


async def test_mcp_tools_call_reaches_the_crew(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("research", {"topic": "owls"})
    assert not result.is_error, result
    assert FACT in str(result.structured_content or result.content)


async def test_a2a_send_message_reaches_the_crew(served: Gateway) -> None:
    async with a2a_client(served.url, "research", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("owls"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
    assert FACT in str(output_of(task))
