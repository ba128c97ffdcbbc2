"""The PydanticAI adapter end to end, on pydantic-ai-slim's own release: a real gateway, the example worker
(examples/pydantic_ai_agent.py) and a worker of test agents, all on scripted FunctionModels. Tokens, tool
events and usage reach SSE in order; structured output; cancellation stops the tool; a tool's exception
fails the run with its type and message; MCP tools/call and A2A SendMessage reach the same agents; a run
budget's model hint switches the model of the next request mid-run; deferred tools (an approval, an external
call) are the run's interrupts, answered over REST in place or, handed back, on new attempts that do not ask
again nor call the model again."""

from __future__ import annotations

import json
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

EXAMPLE = "examples.pydantic_ai_agent:app"
WORKER = "tests.workers.pydantic_ai_worker:app"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("pydantic-ai")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(EXAMPLE)
        cluster.start_worker(WORKER)
        wait_until(
            lambda: {"calculator", "quote", "refunds", "ticker", "failing"} <= gateway.endpoints(),
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


def test_the_agents_schemas_are_the_frameworks_own(served: Gateway) -> None:
    endpoints = {
        e["name"]: e for e in httpx.get(f"{served.url}/v1/endpoints", timeout=10).json()["endpoints"]
    }
    assert endpoints["calculator"]["input_schema"]["required"] == ["prompt"]
    assert endpoints["calculator"]["output_schema"] == {"type": "string"}
    assert endpoints["calculator"]["description"].startswith("Adds the numbers in the prompt")
    quote = endpoints["quote"]["output_schema"]
    assert quote["title"] == "Quote" and quote["required"] == ["item", "quantity", "total_cents"]


def test_the_stream_shows_the_tool_call_then_the_tokens_with_usage_on_each_llm_end(served: Gateway) -> None:
    events = _stream(served, "calculator", {"prompt": "add 2 and 40"})
    assert_gap_free(events)
    kinds = [e["kind"] for e in events if e["kind"] != "checkpoint"]
    assert kinds == [
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
    data = [e["data"] for e in events]
    call = next(d for e, d in zip(events, data, strict=True) if e["kind"] == "tool_call")
    assert call == {"id": "call_add", "name": "add", "arguments": {"a": 2, "b": 40}}
    result = next(d for e, d in zip(events, data, strict=True) if e["kind"] == "tool_result")
    assert result == {"id": "call_add", "name": "add", "result": 42}
    tokens = "".join(e["data"]["text"] for e in events if e["kind"] == "token")
    assert tokens == "The sum is 42."
    usage = [e["data"] for e in events if e["kind"] == "llm_end"]
    assert [u["model"] for u in usage] == ["scripted-calculator"] * 2
    assert all(u["input_tokens"] > 0 and u["output_tokens"] > 0 for u in usage)
    assert events[-1]["data"]["output"] == "The sum is 42."
    # The usage reached the accounting: the run's totals are the llm_end events'.
    run = httpx.get(f"{served.url}/v1/runs/{events[0]['run_id']}", timeout=10).json()
    assert run["usage"]["calls"] == 2
    assert run["usage"]["input_tokens"] == sum(u["input_tokens"] for u in usage)
    # Checkpoints after each model response and each round of tool results.
    assert [e["kind"] for e in events].count("checkpoint") == 3


def test_invoke_answers_structured_output(served: Gateway) -> None:
    with served.client() as http:
        answer = http.post("/v1/agents/quote/invoke", json={"prompt": "3 widgets"}).json()
    assert answer["status"] == "succeeded", answer
    assert answer["output"] == {"item": "widget", "quantity": 3, "total_cents": 750}


def test_cancel_stops_the_tool_the_agent_is_running(served: Gateway, tmp_path: Path) -> None:
    marks = tmp_path / "ticks"
    with served.client() as http:
        started = http.post("/v1/agents/ticker/runs", json={"prompt": str(marks)})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: marks.exists() and len(marks.read_text().split()) >= 3, what="the tool to tick")
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code == 200
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled", what="cancelled")
    settled = len(marks.read_text().split())
    time.sleep(0.5)  # ten ticks' time: a tool still running would have written more
    assert len(marks.read_text().split()) <= settled + 1


def test_a_tools_exception_fails_the_run_with_its_type_and_message(served: Gateway) -> None:
    events = _stream(served, "failing", {"prompt": "where is my order"})
    assert events[-1]["kind"] == "run.failed"
    assert events[-1]["data"]["error"] == {"type": "LookupError", "message": "no such order: 42"}
    results = [e["data"] for e in events if e["kind"] == "tool_result"]
    assert results == [
        {
            "id": "call_lookup",
            "name": "lookup",
            "error": {"type": "LookupError", "message": "no such order: 42"},
        }
    ]


async def test_mcp_tools_call_reaches_the_agent(served: Gateway) -> None:
    async with mcp_client(served) as mcp:
        result = await mcp.call_tool("quote", {"prompt": "2 widgets"})
    assert not result.is_error, result
    assert result.structured_content == {"item": "widget", "quantity": 2, "total_cents": 500}


async def test_a2a_send_message_reaches_the_agent(served: Gateway) -> None:
    async with a2a_client(served.url, "calculator", streaming=False) as a2a:
        items = await collect(a2a.send_message(request(text_message("add 5 and 6"))))
    task = next(item.task for item in items if item.HasField("task"))
    assert output_of(task) == "The sum is 11."


def test_a_run_budgets_model_hint_switches_the_model_of_the_next_request(cluster: Cluster) -> None:
    # Each scripted request reports about 55 tokens: the hint comes after the second, well before the end.
    budgets = [
        {
            "name": "per-run",
            "period": "run",
            "tokens": 5000,
            "downgrade_at": 0.02,
            "downgrade_to": "small-model",
        }
    ]
    gateway = cluster.start_gateway(budgets=json.dumps(budgets))
    cluster.start_worker(WORKER)
    with gateway.client(timeout=60) as http:
        answer = http.post("/v1/agents/spender/invoke", json={"prompt": "6 steps"}).json()
        assert answer["status"] == "succeeded", answer
        events = sse_events(http.get(f"/v1/runs/{answer['run_id']}/events"))
    models = [e["data"]["model"] for e in events if e["kind"] == "llm_end"]
    assert len(models) == 7, models
    assert models[0] == "big-model" and models[-1] == "small-model", models
    switched = models.index("small-model")
    assert models[switched:] == ["small-model"] * (7 - switched), models  # one switch, mid-run


# ------------------------------------------------------------------------------- deferred tools

REFUND = {"prompt": "refund 30 on order A-17"}
APPROVE = "pydantic-ai-approve-call_refund"
PICKUP = "pydantic-ai-call-call_pickup"


def _run(gateway: Gateway, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = httpx.get(f"{gateway.url}/v1/runs/{run_id}", timeout=10).json()
    return run


def _answer_when_asked(gateway: Gateway, run_id: str, interrupt_id: str, answer: Any) -> dict[str, Any]:
    """Answer ``interrupt_id`` as soon as the run waits for it (409 until then)."""
    answered: list[httpx.Response] = []

    def answer_it() -> bool:
        response = httpx.post(
            f"{gateway.url}/v1/runs/{run_id}/resume",
            json={"answer": answer, "interrupt": interrupt_id},
            timeout=10,
        )
        assert response.status_code in (200, 409), response.text
        answered.append(response)
        return response.status_code == 200

    wait_until(answer_it, what=f"the run to wait for {interrupt_id}")
    result: dict[str, Any] = answered[-1].json()
    return result


def _all_events(gateway: Gateway, run_id: str) -> list[dict[str, Any]]:
    follower = Follower([gateway], run_id)
    follower.start()
    follower.join(timeout=60)
    assert not follower.is_alive(), "the run never ended"
    assert_gap_free(follower.events)
    return follower.events


def test_deferred_tools_are_the_runs_interrupts_answered_in_place(served: Gateway) -> None:
    with served.client() as http:
        started = http.post("/v1/agents/refunds/runs", json=REFUND)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_until(lambda: _run(served, run_id)["status"] == "waiting_input", what="the approval")
        # The approval's answer is checked by the gateway: an edit's payload must be an object of arguments.
        wrong = http.post(f"/v1/runs/{run_id}/resume", json={"answer": {"decision": "edit", "payload": 20}})
        assert wrong.status_code == 422, wrong.text
        assert [e["path"] for e in wrong.json()["errors"]] == ["$.payload"], wrong.json()
    edit = {"decision": "edit", "payload": {"amount": 20}}
    assert _answer_when_asked(served, run_id, APPROVE, edit)["attempt"] == 1  # in place
    with served.client() as http:
        wait_until(lambda: _run(served, run_id)["status"] == "waiting_input", what="the external call")
        both = http.post(f"/v1/runs/{run_id}/resume", json={"answer": {"result": 1, "error": "x"}})
        assert both.status_code == 422, both.text
    _answer_when_asked(served, run_id, PICKUP, {"result": "booked for 9:00"})
    events = _all_events(served, run_id)
    assert events[-1]["kind"] == "run.completed", events[-1]
    assert events[-1]["data"]["output"] == "Refund: refunded 20 on A-17. Pickup: booked for 9:00."
    asked = [e["data"] for e in events if e["kind"] == "interrupt"]
    assert [a["id"] for a in asked] == [APPROVE, PICKUP]
    assert asked[0]["request"] == {
        "approval": {"action": "refund", "details": {"order": "A-17", "amount": 30}}
    }
    assert asked[1]["request"]["tool_call"]["name"] == "pickup"
    kinds = [e["kind"] for e in events if e["kind"] not in ("checkpoint", "token", "message")]
    assert kinds == [
        "run.started",
        "llm_start",
        "llm_end",
        "tool_call",
        "tool_call",
        "interrupt",
        "input",
        "interrupt",
        "input",
        "tool_result",
        "tool_result",
        "llm_start",
        "llm_end",
        "run.completed",
    ], kinds


def test_a_handed_back_deferred_tool_run_resumes_without_asking_again(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(interrupt_hold="0.5")
    cluster.start_worker(EXAMPLE)
    wait_until(lambda: "refunds" in gateway.endpoints(), what="the example worker")
    started = httpx.post(f"{gateway.url}/v1/agents/refunds/runs", json=REFUND, timeout=10)
    run_id = started.json()["run_id"]
    # Past interrupt_hold the worker hands the run back: it waits with no worker, at attempt 2.
    wait_until(
        lambda: _run(gateway, run_id)["status"] == "waiting_input" and _run(gateway, run_id)["attempt"] == 2,
        what="the run to be handed back",
    )
    _answer_when_asked(gateway, run_id, APPROVE, {"decision": "approve"})
    # Attempt 2 meets the approval again (answered at once), then asks for the pickup, and is handed back.
    wait_until(lambda: _run(gateway, run_id)["attempt"] == 3, what="the second hand-back")
    _answer_when_asked(gateway, run_id, PICKUP, {"result": "booked"})
    events = _all_events(gateway, run_id)
    assert events[-1]["kind"] == "run.completed", events[-1]
    assert events[-1]["data"]["output"] == "Refund: refunded 30 on A-17. Pickup: booked."
    kinds = [e["kind"] for e in events]
    # Each call asked once and answered once across three attempts...
    assert [e["data"]["id"] for e in events if e["kind"] == "interrupt"] == [APPROVE, PICKUP]
    assert kinds.count("input") == 2 and kinds.count("run.started") == 3, kinds
    # ...and the model was asked once for the calls and once for the answer: the new attempts continued
    # from the checkpointed response, the refund ran once.
    assert kinds.count("llm_end") == 2, kinds
    refunds = [e["data"] for e in events if e["kind"] == "tool_result" and e["data"]["name"] == "refund"]
    assert refunds == [{"id": "call_refund", "name": "refund", "result": "refunded 30 on A-17"}]
