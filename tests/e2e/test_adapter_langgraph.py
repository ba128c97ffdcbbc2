"""The LangGraph adapter end to end, on langgraph's own release: a real gateway, the example worker
(examples/langgraph_graph.py, a scripted chat model) and a worker of test graphs. Node events, tokens, tool
events and usage reach SSE in order; cancellation stops the running node; a node's exception fails the run
with its type and message; MCP tools/call and A2A SendMessage reach the same graphs; and a graph whose
worker is killed (kill -9) resumes at the node after its last checkpoint, on another worker, without
running the nodes before it again."""

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

EXAMPLE = "examples.langgraph_graph:app"
WORKER = "tests.workers.langgraph_worker:app"
QUESTION = {"messages": [{"role": "user", "content": "add 2 and 40"}]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("langgraph")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(EXAMPLE)
        cluster.start_worker(WORKER)
        wait_until(
            lambda: {"calculator_graph", "ask", "ticker", "broken"} <= gateway.endpoints(), what="graphs"
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


def _contents(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["type"], m["content"]) for m in messages]


def test_the_graphs_schemas_are_its_own(served: Gateway) -> None:
    endpoints = {
        e["name"]: e for e in httpx.get(f"{served.url}/v1/endpoints", timeout=10).json()["endpoints"]
    }
    graph = endpoints["calculator_graph"]
    assert "messages" in graph["input_schema"]["properties"]
    assert "messages" in graph["output_schema"]["properties"]
    # The mapped endpoint: its own input, the graph's output.
    assert endpoints["ask"]["input_schema"]["required"] == ["question"]
    assert endpoints["ask"]["output_schema"] == graph["output_schema"]


def test_the_stream_shows_nodes_tools_and_tokens_in_order_with_usage(served: Gateway) -> None:
    events = _stream(served, "calculator_graph", QUESTION)
    assert_gap_free(events)
    shown = [
        (e["kind"], e["data"].get("node") or e["data"].get("name") or e["data"].get("text"))
        for e in events
        if e["kind"] not in ("checkpoint", "run.started", "run.completed", "llm_start", "llm_end", "message")
    ]
    assert shown == [
        ("node_enter", "agent"),
        ("node_exit", "agent"),
        ("node_enter", "tools"),
        ("tool_call", "add"),
        ("tool_result", "add"),
        ("node_exit", "tools"),
        ("node_enter", "agent"),
        ("token", "The"),
        ("token", " sum"),
        ("token", " is"),
        ("token", " 42."),
        ("node_exit", "agent"),
    ]
    kinds = [e["kind"] for e in events]
    # Each model call sits inside its node, its usage on its llm_end.
    first_agent = kinds[kinds.index("node_enter") : kinds.index("node_exit")]
    assert [k for k in first_agent if k.startswith("llm")] == ["llm_start", "llm_end"]
    usage = [e["data"] for e in events if e["kind"] == "llm_end"]
    assert usage == [
        {"model": "scripted-chat", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-chat", "input_tokens": 60, "output_tokens": 6},
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
    output = events[-1]["data"]["output"]
    assert _contents(output["messages"])[-1] == ("ai", "The sum is 42.")
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["input_tokens"] == 80 and run["usage"]["output_tokens"] == 12


def test_an_endpoint_with_its_own_input_runs_the_graph(served: Gateway) -> None:
    with served.client() as http:
        answer = http.post("/v1/agents/ask/invoke", json={"question": "add 1 and 2"}).json()
    assert answer["status"] == "succeeded", answer
    assert _contents(answer["output"]["messages"])[-1] == ("ai", "The sum is 3.")


def test_cancel_stops_the_running_node(served: Gateway, tmp_path: Path) -> None:
    with served.client() as http:
        started = http.post("/v1/agents/ticker/runs", json={"marks": str(tmp_path)})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: _lines(tmp_path / "tick") >= 3, what="the node to tick")
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled", what="cancelled")
    settled = _lines(tmp_path / "tick")
    time.sleep(0.5)  # ten ticks' time: a node still running would have written more
    assert _lines(tmp_path / "tick") <= settled + 1


def test_a_nodes_exception_fails_the_run_with_its_type_and_message(served: Gateway, tmp_path: Path) -> None:
    events = _stream(served, "broken", {"marks": str(tmp_path)})
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"] == {"type": "LookupError", "message": "no such ticket: 7"}
    exits = [e["data"] for e in events if e["kind"] == "node_exit"]
    assert exits == [
        {"node": "triage", "step": 1, "error": {"type": "LookupError", "message": "no such ticket: 7"}}
    ]


async def test_mcp_tools_call_reaches_the_graph(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("ask", {"question": "add 4 and 5"})
    assert not result.is_error, result
    assert _contents(result.structured_content["messages"])[-1] == ("ai", "The sum is 9.")


async def test_a2a_send_message_reaches_the_graph(served: Gateway) -> None:
    async with a2a_client(served.url, "ask", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("add 7 and 8"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert _contents(output_of(task)["messages"])[-1] == ("ai", "The sum is 15.")
    async with a2a_client(served.url, "calculator_graph", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(data_message(QUESTION))))
    task = next(item.task for item in items if item.HasField("task"))
    assert _contents(output_of(task)["messages"])[-1] == ("ai", "The sum is 42.")


def test_a_killed_workers_graph_resumes_at_the_node_after_its_checkpoint(
    cluster: Cluster, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    gateway = cluster.start_gateway()
    first = cluster.start_worker(WORKER)
    http = gateway.client()
    started = http.post("/v1/agents/pipeline/runs", json={"marks": str(marks)})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    def checkpointed_after_fetch() -> bool:
        checkpoints = http.get(f"/v1/runs/{run_id}/checkpoints").json()["checkpoints"]
        return any("fetch" in str(c["state"]) for c in checkpoints)

    # fetch ran and its step is checkpointed; enrich is running (waiting for "go").
    wait_until(lambda: _lines(marks / "enrich") == 1, what="enrich to start")
    wait_until(checkpointed_after_fetch, what="the checkpoint after fetch")
    first.kill()
    cluster.start_worker(WORKER)
    (marks / "go").touch()
    wait_until(
        lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded", timeout=60, what="success"
    )

    run = http.get(f"/v1/runs/{run_id}").json()
    assert run["attempt"] == 2, run
    assert run["output"] == {"marks": str(marks), "done": ["fetch", "enrich", "publish"]}
    # The side effects: fetch once (before the checkpoint), enrich twice (it was running), publish once.
    assert (_lines(marks / "fetch"), _lines(marks / "enrich"), _lines(marks / "publish")) == (1, 2, 1)
    events = sse_events(http.get(f"/v1/runs/{run_id}/events"))
    assert_gap_free(events)
    entered = [(e["data"]["node"], e["data"]["step"]) for e in events if e["kind"] == "node_enter"]
    assert entered == [("fetch", 1), ("enrich", 2), ("enrich", 2), ("publish", 3)]
    http.close()
