"""The Semantic Kernel adapter end to end, as a user deploys it: a real gateway from the main environment, and
workers run by the python of a semantic-kernel environment of their own (the SDK and
``fastagentic[semantic-kernel]``: semantic-kernel cannot sit beside the gateway; tests/framework_venvs.py builds
it, skipped when it cannot be built). The example agent's LLM calls, tokens and function calls reach SSE in
order with usage on each ``llm_end`` and in the run's totals; a kernel function is an endpoint with its
parameters as input; an agent whose service raises gives a failed run with the type and message; cancel stops
the agent; MCP tools/call reaches the agent."""

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
ANSWER = f"In one line: {FACT}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    venv = framework_venv("semantic-kernel")
    report(request.config, venv)
    cluster = Cluster(Path(tmp_path_factory.mktemp("semantic-kernel")))
    try:
        gateway = cluster.start_gateway()
        start_worker(cluster, venv, "examples.semantic_kernel_agent:app")
        start_worker(cluster, venv, "tests.workers.semantic_kernel_worker:app")
        wait_until(
            lambda: {"facts", "summarize", "ticker", "failing"} <= gateway.endpoints(), what="the agents"
        )
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


def test_the_input_schemas_are_the_prompt_and_the_functions_parameters(served: Gateway) -> None:
    endpoints = {
        e["name"]: e for e in httpx.get(f"{served.url}/v1/endpoints", timeout=10).json()["endpoints"]
    }
    assert endpoints["facts"]["input_schema"]["required"] == ["prompt"]
    assert endpoints["summarize"]["input_schema"]["required"] == ["topic"]
    assert endpoints["facts"]["output_schema"]["type"] == "string"


def test_the_stream_shows_llm_calls_tokens_and_function_calls_in_order_with_usage(served: Gateway) -> None:
    events = _stream(served, "facts", {"prompt": "owls"})
    assert_gap_free(events)
    kinds = [e["kind"] for e in events if e["kind"] != "token"]
    assert kinds == [
        "run.started",
        *["llm_start", "llm_end"],
        "tool_call",
        "tool_result",
        *["llm_start", "message", "llm_end"],
        "run.completed",
    ]
    call = next(e["data"] for e in events if e["kind"] == "tool_call")
    assert call["name"] == "Facts-lookup" and call["arguments"] == {"topic": "owls"}
    result = next(e["data"] for e in events if e["kind"] == "tool_result")
    assert result == {"id": call["id"], "name": "Facts-lookup", "result": FACT}
    usage = [e["data"] for e in events if e["kind"] == "llm_end"]
    assert usage == [
        {"model": "scripted-facts", "input_tokens": 20, "output_tokens": 6},
        {"model": "scripted-facts", "input_tokens": 40, "output_tokens": 6},
    ]
    assert "".join(e["data"]["text"] for e in events if e["kind"] == "token") == ANSWER
    assert events[-1]["data"]["output"] == ANSWER
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["calls"] == 2
    assert run["usage"]["input_tokens"] == 60 and run["usage"]["output_tokens"] == 12


def test_a_kernel_function_is_invoked_with_its_parameters(served: Gateway) -> None:
    with served.client() as http:
        answer = http.post("/v1/agents/summarize/invoke", json={"topic": "owls"}).json()
        refused = http.post("/v1/agents/summarize/invoke", json={"subject": "owls"})
    assert answer["status"] == "succeeded" and answer["output"] == ANSWER, answer
    assert refused.status_code in (400, 422), refused.text


def test_an_agent_whose_service_raises_fails_the_run_with_its_type_and_message(served: Gateway) -> None:
    events = _stream(served, "failing", {"prompt": "why"})
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"] == {"type": "LookupError", "message": "no answer for 'why'"}
    assert [e["kind"] for e in events[1:-1]] == ["llm_start", "llm_end"]


def test_cancel_stops_the_agent(served: Gateway, tmp_path: Path) -> None:
    marks = tmp_path / "ticks"

    def lines() -> int:
        return len(marks.read_text().split()) if marks.exists() else 0

    with served.client() as http:
        started = http.post("/v1/agents/ticker/runs", json={"prompt": f"Tick into: {marks}"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: lines() >= 3, what="the function to tick")
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled", what="cancelled")
    settled = lines()
    time.sleep(0.5)  # ten ticks' time: an agent still running would have written more
    assert lines() <= settled + 1


async def test_mcp_tools_call_reaches_the_agent(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("facts", {"prompt": "owls"})
    assert not result.is_error, result
    assert FACT in str(result.structured_content or result.content)


async def test_a2a_send_message_reaches_the_agent(served: Gateway) -> None:
    async with a2a_client(served.url, "facts", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("owls"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
    assert FACT in str(output_of(task))
