"""The DSPy adapter end to end, on dspy's own release: a real gateway, the example worker
(examples/dspy_agent.py, a scripted DummyLM) and a worker of test programs. A ReAct program's model calls
(with usage from DSPy's usage tracker) and tool events reach SSE in order, with the run's usage totals;
cancellation stops the running tool; a module's exception fails the run with its type and message; MCP
tools/call and A2A SendMessage reach the programs. DSPy streams no tokens here (see docs/adapters/dspy.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.a2a_support import a2a_client, collect, output_of, request, text_message
from tests.e2e.mcp_support import client as mcp_client
from tests.e2e.test_rest import assert_gap_free, sse_events

EXAMPLE = "examples.dspy_agent:app"
WORKER = "tests.workers.dspy_worker:app"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("dspy")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(EXAMPLE)
        cluster.start_worker(WORKER)
        wait_until(
            lambda: {"calculator", "qa", "ticker", "failing"} <= gateway.endpoints(), what="the programs"
        )
        yield gateway
    finally:
        cluster.close()


def _stream(gateway: Gateway, agent: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with gateway.client() as http:
        response = http.post(f"/v1/agents/{agent}/stream", json=body)
    assert response.status_code == 200, response.text
    return sse_events(response)


def _lines(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def test_the_schemas_are_the_signatures(served: Gateway) -> None:
    endpoints = {
        e["name"]: e for e in httpx.get(f"{served.url}/v1/endpoints", timeout=10).json()["endpoints"]
    }
    assert endpoints["calculator"]["input_schema"]["required"] == ["question"]
    assert endpoints["calculator"]["output_schema"]["properties"]["total"]["type"] == "integer"


def test_the_stream_shows_model_calls_and_tool_events_in_order_with_usage(served: Gateway) -> None:
    events = _stream(served, "calculator", {"question": "add 2 and 40"})
    assert_gap_free(events)
    assert [e["kind"] for e in events] == [
        "run.started",
        *["llm_start", "message", "llm_end", "tool_call", "tool_result"] * 2,
        "llm_start",
        "message",
        "llm_end",
        "run.completed",
    ]
    calls = [e["data"] for e in events if e["kind"] == "tool_call"]
    assert [(c["name"], c["arguments"]) for c in calls] == [("add", {"a": 2, "b": 40}), ("finish", {})]
    results = [e["data"] for e in events if e["kind"] == "tool_result"]
    assert results[0] == {"id": calls[0]["id"], "name": "add", "result": 42}
    usage = [e["data"] for e in events if e["kind"] == "llm_end"]
    assert usage == [{"model": "scripted-calculator", "input_tokens": 20, "output_tokens": 6}] * 3
    assert events[-1]["data"]["output"] == {"total": 42}
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["calls"] == 3
    assert run["usage"]["input_tokens"] == 60 and run["usage"]["output_tokens"] == 18
    with served.client() as http:
        answer = http.post("/v1/agents/calculator/invoke", json={"question": "add 5 and 6"}).json()
    assert answer["status"] == "succeeded" and answer["output"] == {"total": 11}, answer


def test_cancel_stops_the_tool_the_program_is_running(served: Gateway, tmp_path: Path) -> None:
    marks = tmp_path / "ticks"
    with served.client() as http:
        started = http.post("/v1/agents/ticker/runs", json={"question": str(marks)})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: _lines(marks) >= 3, what="the tool to tick")
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled", what="cancelled")
    settled = _lines(marks)
    time.sleep(0.5)  # ten ticks' time: a tool still running would have written more
    assert _lines(marks) <= settled + 1


def test_a_modules_exception_fails_the_run_with_its_type_and_message(served: Gateway) -> None:
    events = _stream(served, "failing", {"question": "why"})
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"] == {"type": "LookupError", "message": "no answer for 'why'"}
    assert [e["kind"] for e in events[1:-1]] == ["llm_start", "message", "llm_end"]


async def test_mcp_tools_call_reaches_the_program(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("calculator", {"question": "add 1 and 2"})
    assert not result.is_error, result
    assert result.structured_content == {"total": 3}


async def test_a2a_send_message_reaches_the_program(served: Gateway) -> None:
    async with a2a_client(served.url, "qa", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("sky?"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert output_of(task) == {"reasoning": "The question asks about the sky.", "answer": "You asked: sky?"}
