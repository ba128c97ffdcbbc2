"""The OpenAI Agents SDK adapter end to end, on openai-agents' own release with tracing off: a real gateway,
the example worker (examples/openai_agents_agent.py, a scripted ``Model``) and a worker of test agents.
Tokens, tool events and usage reach SSE in order, with the run's usage totals; a handoff is a ``handoff``
event and the last agent's structured output the run's; cancellation stops the running tool; a tool's
exception fails the run with its type and message; MCP tools/call and A2A SendMessage reach the agents."""

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

EXAMPLE = "examples.openai_agents_agent:app"
WORKER = "tests.workers.openai_agents_worker:app"
QUOTE = {"item": "widget", "quantity": 3, "total_cents": 750}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("openai-agents")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(EXAMPLE)
        cluster.start_worker(WORKER)
        wait_until(
            lambda: {"calculator", "triage", "ticker", "failing"} <= gateway.endpoints(), what="the agents"
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


def test_the_agents_schemas_are_their_own(served: Gateway) -> None:
    endpoints = {
        e["name"]: e for e in httpx.get(f"{served.url}/v1/endpoints", timeout=10).json()["endpoints"]
    }
    assert endpoints["calculator"]["input_schema"]["required"] == ["prompt"]
    assert endpoints["calculator"]["output_schema"] == {"type": "string"}
    assert endpoints["calculator"]["description"].startswith("Adds the numbers")
    triage = endpoints["triage"]["output_schema"]  # triage or billing may answer: text or a Quote
    assert triage["anyOf"][0] == {"type": "string"}
    assert triage["$defs"]["Quote"]["required"] == ["item", "quantity", "total_cents"]


def test_the_stream_shows_the_tool_call_then_the_tokens_with_usage_on_each_llm_end(served: Gateway) -> None:
    events = _stream(served, "calculator", {"prompt": "add 2 and 40"})
    assert_gap_free(events)
    assert [e["kind"] for e in events] == [
        "run.started",
        "llm_start",
        "llm_end",
        "tool_call",
        "tool_result",
        "llm_start",
        *["token"] * 4,
        "message",
        "llm_end",
        "run.completed",
    ]
    data = {e["kind"]: e["data"] for e in events}
    assert data["tool_call"] == {"id": "call_add", "name": "add", "arguments": {"a": 2, "b": 40}}
    assert data["tool_result"] == {"id": "call_add", "name": "add", "result": 42}
    assert "".join(e["data"]["text"] for e in events if e["kind"] == "token") == "The sum is 42."
    usage = [e["data"] for e in events if e["kind"] == "llm_end"]
    assert usage == [
        {"model": "scripted-calculator", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-calculator", "input_tokens": 60, "output_tokens": 6},
    ]
    assert events[-1]["data"]["output"] == "The sum is 42."
    # The usage reached the accounting: the run's totals are the llm_end events' (the SDK's own total,
    # result.context_wrapper.usage, adds up the same responses).
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["calls"] == 2
    assert run["usage"]["input_tokens"] == 80 and run["usage"]["output_tokens"] == 12


def test_a_handoff_is_an_event_and_the_last_agent_answers_with_structured_output(served: Gateway) -> None:
    events = _stream(served, "triage", {"prompt": "3 widgets"})
    assert events[-1]["kind"] == "run.completed", events[-1]
    assert events[-1]["data"]["output"] == QUOTE
    assert [e["data"] for e in events if e["kind"] == "handoff"] == [
        {"id": "call_handoff", "from": "triage", "to": "billing"}
    ]
    models = [e["data"]["model"] for e in events if e["kind"] == "llm_end"]
    assert models == ["scripted-triage", "scripted-billing", "scripted-billing"]
    with served.client() as http:
        answer = http.post("/v1/agents/triage/invoke", json={"prompt": "3 widgets"}).json()
    assert answer["status"] == "succeeded" and answer["output"] == QUOTE, answer


def test_cancel_stops_the_tool_the_agent_is_running(served: Gateway, tmp_path: Path) -> None:
    marks = tmp_path / "ticks"
    with served.client() as http:
        started = http.post("/v1/agents/ticker/runs", json={"prompt": str(marks)})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: _lines(marks) >= 3, what="the tool to tick")
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled", what="cancelled")
    settled = _lines(marks)
    time.sleep(0.5)  # ten ticks' time: a tool still running would have written more
    assert _lines(marks) <= settled + 1


def test_a_tools_exception_fails_the_run_with_its_type_and_message(served: Gateway) -> None:
    events = _stream(served, "failing", {"prompt": "where is my order"})
    assert events[-1]["kind"] == "run.failed"
    error = {"type": "LookupError", "message": "no such order: 42"}
    assert events[-1]["data"]["error"] == error
    assert [e["data"] for e in events if e["kind"] == "tool_result"] == [
        {"id": "call_lookup", "name": "lookup", "error": error}
    ]


async def test_mcp_tools_call_reaches_the_agent(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("triage", {"prompt": "2 widgets"})
    assert not result.is_error, result
    assert result.structured_content == {"result": {"item": "widget", "quantity": 2, "total_cents": 500}}


async def test_a2a_send_message_reaches_the_agent(served: Gateway) -> None:
    async with a2a_client(served.url, "calculator", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("add 5 and 6"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert output_of(task) == "The sum is 11."
