"""The LangChain adapter end to end, on langchain's own release: a real gateway, the example worker
(examples/langchain_agent.py: create_agent agents and an LCEL chain on a scripted chat model) and a worker
of test agents. Node, token and tool events reach SSE in order with usage on each llm_end and in the run's
totals; structured output in ``structured_response``; cancellation stops the running tool; a tool's
exception fails the run with its type and message; MCP tools/call and A2A SendMessage reach the agents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.a2a_support import a2a_client, collect, data_message, output_of, request, text_message
from tests.e2e.mcp_support import client as mcp_client
from tests.e2e.test_rest import assert_gap_free, sse_events

EXAMPLE = "examples.langchain_agent:app"
WORKER = "tests.workers.langchain_worker:app"
QUESTION = {"messages": [{"role": "user", "content": "add 2 and 40"}]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("langchain")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(EXAMPLE)
        cluster.start_worker(WORKER)
        wait_until(
            lambda: {"calculator", "quote", "explain", "ticker", "failing"} <= gateway.endpoints(),
            what="the agents",
        )
        yield gateway
    finally:
        cluster.close()


def _stream(gateway: Gateway, agent: str, body: Any) -> list[dict[str, Any]]:
    with gateway.client() as http:
        response = http.post(f"/v1/agents/{agent}/stream", json=body)
    assert response.status_code == 200, response.text
    return sse_events(response)


def _contents(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["type"], m["content"]) for m in messages]


def _lines(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def test_the_schemas_are_the_agents_and_the_chains_own(served: Gateway) -> None:
    endpoints = {
        e["name"]: e for e in httpx.get(f"{served.url}/v1/endpoints", timeout=10).json()["endpoints"]
    }
    calculator = endpoints["calculator"]
    assert calculator["input_schema"]["required"] == ["messages"]
    assert "messages" in calculator["output_schema"]["properties"]
    structured = endpoints["quote"]["output_schema"]["properties"]["structured_response"]
    assert structured["title"] == "Quote" and structured["required"] == ["item", "quantity", "total_cents"]
    assert endpoints["explain"]["input_schema"]["required"] == ["question"]
    assert endpoints["explain"]["output_schema"]["type"] == "string"


def test_the_stream_shows_tokens_and_tool_events_in_order_with_usage(served: Gateway) -> None:
    events = _stream(served, "calculator", QUESTION)
    assert_gap_free(events)
    shown = [
        (e["kind"], e["data"].get("node") or e["data"].get("name") or e["data"].get("text"))
        for e in events
        if e["kind"] not in ("checkpoint", "run.started", "run.completed", "llm_start", "llm_end", "message")
    ]
    assert shown == [
        ("node_enter", "model"),
        ("node_exit", "model"),
        ("node_enter", "tools"),
        ("tool_call", "add"),
        ("tool_result", "add"),
        ("node_exit", "tools"),
        ("node_enter", "model"),
        ("token", "The"),
        ("token", " sum"),
        ("token", " is"),
        ("token", " 42."),
        ("node_exit", "model"),
    ]
    kinds = [e["kind"] for e in events]
    first_model = kinds[kinds.index("node_enter") : kinds.index("node_exit")]
    assert [k for k in first_model if k.startswith("llm")] == ["llm_start", "llm_end"]
    usage = [e["data"] for e in events if e["kind"] == "llm_end"]
    assert usage == [
        {"model": "scripted-chat", "input_tokens": 40, "output_tokens": 6},
        {"model": "scripted-chat", "input_tokens": 80, "output_tokens": 6},
    ]
    call = next(e["data"] for e in events if e["kind"] == "tool_call")
    assert call == {"id": "call_add", "name": "add", "arguments": {"a": 2, "b": 40}}
    assert next(e["data"] for e in events if e["kind"] == "tool_result") == {
        "id": "call_add",
        "name": "add",
        "result": "42",
    }
    assert next(e["data"] for e in events if e["kind"] == "message") == {
        "role": "assistant",
        "text": "The sum is 42.",
    }
    assert _contents(events[-1]["data"]["output"]["messages"])[-1] == ("ai", "The sum is 42.")
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["calls"] == 2
    assert run["usage"]["input_tokens"] == 120 and run["usage"]["output_tokens"] == 12


def test_invoke_answers_the_structured_response(served: Gateway) -> None:
    body = {"messages": [{"role": "user", "content": "3 widgets"}]}
    with served.client() as http:
        answer = http.post("/v1/agents/quote/invoke", json=body).json()
    assert answer["status"] == "succeeded", answer
    assert answer["output"]["structured_response"] == {"item": "widget", "quantity": 3, "total_cents": 750}


def test_a_chain_streams_its_model_and_answers_with_its_output(served: Gateway) -> None:
    events = _stream(served, "explain", {"question": "why is the sky blue?"})
    kinds = [e["kind"] for e in events]
    assert kinds == ["run.started", "llm_start", *["token"] * 9, "message", "llm_end", "run.completed"]
    assert events[-1]["data"]["output"] == "You asked: why is the sky blue? Light scatters."


def test_cancel_stops_the_tool_the_agent_is_running(served: Gateway, tmp_path: Path) -> None:
    marks = tmp_path / "ticks"
    body = {"messages": [{"role": "user", "content": str(marks)}]}
    with served.client() as http:
        started = http.post("/v1/agents/ticker/runs", json=body)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: _lines(marks) >= 3, what="the tool to tick")
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled", what="cancelled")
    settled = _lines(marks)
    time.sleep(0.5)  # ten ticks' time: a tool still running would have written more
    assert _lines(marks) <= settled + 1


def test_a_tools_exception_fails_the_run_with_its_type_and_message(served: Gateway) -> None:
    events = _stream(served, "failing", {"messages": [{"role": "user", "content": "where is my order"}]})
    assert events[-1]["kind"] == "run.failed"
    error = {"type": "LookupError", "message": "no such order: 42"}
    assert events[-1]["data"]["error"] == error
    assert [e["data"] for e in events if e["kind"] == "tool_result"] == [
        {"id": "call_lookup", "name": "lookup", "error": error}
    ]
    assert [e["data"] for e in events if e["kind"] == "node_exit"][-1] == {
        "node": "tools",
        "step": 2,
        "error": error,
    }


async def test_mcp_tools_call_reaches_the_agent(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("calculator", {"messages": [{"role": "user", "content": "add 4 and 5"}]})
    assert not result.is_error, result
    assert _contents(result.structured_content["messages"])[-1] == ("ai", "The sum is 9.")


async def test_a2a_send_message_reaches_the_agent_and_the_chain(served: Gateway) -> None:
    async with a2a_client(served.url, "calculator", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(data_message(QUESTION))))
    task = next(item.task for item in items if item.HasField("task"))
    assert _contents(output_of(task)["messages"])[-1] == ("ai", "The sum is 42.")
    # The chain's input is one string field: a text message fills it.
    async with a2a_client(served.url, "explain", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("why?"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert output_of(task) == "You asked: why? Light scatters."
