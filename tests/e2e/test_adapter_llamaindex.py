"""The LlamaIndex adapter end to end, on llama-index-core's own release: a real gateway, the example worker
(examples/llamaindex_agent.py, a scripted MockFunctionCallingLLM) and a worker of test agents. A FunctionAgent's
tool events, tokens and usage reach SSE in order, with the run's usage totals; a streaming query engine's
answer streams; cancellation stops the running tool; an LLM's exception fails the run with its type and
message; MCP tools/call and A2A SendMessage reach the agents; a tool's InputRequiredEvent is the run's
interrupt, answered over REST in place or, handed back, on a new attempt that does not ask again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.a2a_support import a2a_client, collect, output_of, request, text_message
from tests.e2e.follow import Follower
from tests.e2e.mcp_support import client as mcp_client
from tests.e2e.test_rest import assert_gap_free, sse_events

EXAMPLE = "examples.llamaindex_agent:app"
WORKER = "tests.workers.llamaindex_worker:app"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("llamaindex")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(EXAMPLE)
        cluster.start_worker(WORKER)
        wait_until(
            lambda: {"calculator", "docs", "chat", "cleanup", "ticker", "failing"} <= gateway.endpoints(),
            what="the agents",
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
        {"model": "scripted-calculator", "input_tokens": 40, "output_tokens": 6},
    ]
    assert events[-1]["data"]["output"] == "The sum is 42."
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["calls"] == 2
    assert run["usage"]["input_tokens"] == 60 and run["usage"]["output_tokens"] == 12


def test_invoke_answers_and_a_query_engine_streams_its_answer(served: Gateway) -> None:
    with served.client() as http:
        answer = http.post("/v1/agents/calculator/invoke", json={"prompt": "add 5 and 6"}).json()
    assert answer["status"] == "succeeded" and answer["output"] == "The sum is 11.", answer
    events = _stream(served, "docs", {"prompt": "what does it serve?"})
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["run.started", "llm_start"] and kinds[-3:] == ["message", "llm_end", "run.completed"]
    tokens = "".join(e["data"]["text"] for e in events if e["kind"] == "token")
    assert (
        tokens
        == events[-1]["data"]["output"]
        == "From the documents: FastAgentic serves agents over REST, MCP and A2A."
    )


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


def test_an_llms_exception_fails_the_run_with_its_type_and_message(served: Gateway) -> None:
    events = _stream(served, "failing", {"prompt": "hello"})
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"] == {"type": "ConnectionError", "message": "the model is down"}
    assert [e["kind"] for e in events[1:-1]] == ["llm_start", "llm_end"]


async def test_mcp_tools_call_reaches_the_agent(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("calculator", {"prompt": "add 1 and 2"})
    assert not result.is_error, result
    assert result.structured_content == {"result": "The sum is 3."}


async def test_a2a_send_message_reaches_the_agent(served: Gateway) -> None:
    async with a2a_client(served.url, "chat", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("hello there"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert output_of(task) == "You said: hello there"


# ---------------------------------------------------------------------------- human in the loop

CLEAN = {"prompt": "clean /tmp/scratch"}
QUESTION = "Delete everything in /tmp/scratch? (yes/no)"


def _run(gateway: Gateway, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = httpx.get(f"{gateway.url}/v1/runs/{run_id}", timeout=10).json()
    return run


def _all_events(gateway: Gateway, run_id: str) -> list[dict[str, Any]]:
    follower = Follower([gateway], run_id)
    follower.start()
    follower.join(timeout=60)
    assert not follower.is_alive(), "the run never ended"
    assert_gap_free(follower.events)
    return follower.events


def test_an_input_required_event_is_the_runs_interrupt_answered_in_place(served: Gateway) -> None:
    started = httpx.post(f"{served.url}/v1/agents/cleanup/runs", json=CLEAN, timeout=10)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    wait_until(lambda: _run(served, run_id)["status"] == "waiting_input", what="the question")
    answered = httpx.post(f"{served.url}/v1/runs/{run_id}/resume", json={"answer": "yes"}, timeout=10)
    assert answered.status_code == 200, answered.text
    assert answered.json()["attempt"] == 1  # in place
    events = _all_events(served, run_id)
    assert events[-1]["kind"] == "run.completed", events[-1]
    assert events[-1]["data"]["output"] == "Cleanup: /tmp/scratch deleted."
    (asked,) = [e["data"] for e in events if e["kind"] == "interrupt"]
    assert asked["request"] == {
        "message": QUESTION,
        "input_required": {"prefix": QUESTION, "user_name": "operator"},
    }
    kinds = [e["kind"] for e in events if e["kind"] not in ("token", "message")]
    assert kinds == [
        "run.started",
        "llm_start",
        "llm_end",
        "tool_call",
        "interrupt",
        "input",
        "tool_result",
        "llm_start",
        "llm_end",
        "run.completed",
    ], kinds


def test_a_handed_back_question_is_answered_at_once_on_the_new_attempt(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(interrupt_hold="0.5")
    cluster.start_worker(EXAMPLE)
    wait_until(lambda: "cleanup" in gateway.endpoints(), what="the example worker")
    run_id = httpx.post(f"{gateway.url}/v1/agents/cleanup/runs", json=CLEAN, timeout=10).json()["run_id"]
    wait_until(
        lambda: _run(gateway, run_id)["status"] == "waiting_input" and _run(gateway, run_id)["attempt"] == 2,
        what="the run to be handed back",
    )
    answered = httpx.post(f"{gateway.url}/v1/runs/{run_id}/resume", json={"answer": "no"}, timeout=10)
    assert answered.status_code == 200, answered.text
    events = _all_events(gateway, run_id)
    assert events[-1]["kind"] == "run.completed", events[-1]
    assert events[-1]["data"]["output"] == "Cleanup: /tmp/scratch kept."
    kinds = [e["kind"] for e in events]
    # Asked once: the new attempt starts the agent over (LlamaIndex runs are not checkpointed) and meets
    # the same question, which gets its answer at once.
    assert kinds.count("interrupt") == 1 and kinds.count("input") == 1, kinds
    assert kinds.count("run.started") == 2 and kinds.count("llm_end") == 3, kinds
