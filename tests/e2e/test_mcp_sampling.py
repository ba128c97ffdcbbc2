"""``ctx.sample`` asks the calling client's model, over MCP with the official client in both revisions,
against real gateway and worker processes; over REST (and any other front) it fails clearly at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.mcp_support import LEGACY, MODERN, CreatedTask, TasksExtension, client, eventually, get_task
from tests.e2e.test_mcp_interrupts import UpdateTask, UpdateTaskParams, _task_if, get_waiting

pytestmark = pytest.mark.e2e

TEXT = "FastAgentic deploys agents behind REST, MCP and A2A with auth, limits and durable runs."


@pytest.fixture(scope="module")
def sampling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("sampling")))
    try:
        gateway = cluster.start_gateway()
        worker = Worker(gateway, "tests.workers.sample_worker:app", cluster.logs, "samples")
        worker.start()
        cluster.processes.append(worker)
        wait_until(lambda: "(samples) connected" in gateway.output(), what="the samples worker")
        yield gateway
    finally:
        cluster.close()


class Model:
    """A ``sampling_callback``: answers each request with ``reply`` and keeps what it was asked."""

    def __init__(self, reply: types.CreateMessageResult | types.ErrorData) -> None:
        self.reply = reply
        self.asked: list[types.CreateMessageRequestParams] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        self.asked.append(params)
        return self.reply


def answer(text: str = "Agents shipped, safely, everywhere.") -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=text),
        model="test-model-1",
        stop_reason="endTurn",
    )


def events_of(gateway: Gateway, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10)
    assert response.status_code == 200, response.text
    return [
        {"kind": line.split(":", 1)[1].strip()}
        for line in response.text.splitlines()
        if line.startswith("event:")
    ]


def last_run(gateway: Gateway, endpoint: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs", params={"endpoint": endpoint, "limit": 1}, timeout=10)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["runs"][0]
    return run


def assert_asked(params: types.CreateMessageRequestParams) -> None:
    assert params.max_tokens == 40
    assert params.system_prompt == "Be brief."
    assert params.temperature == 0.0
    roles_and_texts = [
        (message.role, message.content.text if isinstance(message.content, types.TextContent) else None)
        for message in params.messages
    ]
    assert roles_and_texts == [
        ("user", "Summarise in five words."),
        ("assistant", "Send the text."),
        ("user", TEXT),
    ]


@pytest.mark.parametrize(("mode", "revision"), [("legacy", LEGACY), (MODERN, MODERN)])
async def test_the_clients_model_answers_and_the_run_goes_on(
    sampling: Gateway, mode: str, revision: str
) -> None:
    model = Model(answer())
    async with client(sampling, mode, sampling_callback=model) as mcp:
        assert mcp.protocol_version == revision
        result = await mcp.call_tool("summarise", {"text": TEXT})
    assert not result.is_error, result
    assert result.structured_content == {
        "protocol": "mcp",
        "summary": "Agents shipped, safely, everywhere.",
        "model": "test-model-1",
        "stop_reason": "endTurn",
    }
    (asked,) = model.asked
    assert_asked(asked)
    run = last_run(sampling, "summarise")
    assert run["protocol"] == "mcp" and run["status"] == "succeeded"
    kinds = [event["kind"] for event in events_of(sampling, run["run_id"])]
    assert kinds[kinds.index("interrupt") + 1] == "input", kinds  # the question and its answer, in the log


async def test_a_client_without_sampling_makes_the_agent_go_on_without_it(sampling: Gateway) -> None:
    # 2025-11-25; a 2026-07-28 request without sampling gets -32021 (test_mcp_prompt_interrupts.py).
    async with client(sampling, "legacy") as mcp:
        result = await mcp.call_tool("summarise", {"text": TEXT})
    assert not result.is_error, result
    assert result.structured_content == {
        "protocol": "mcp",
        "unavailable": "the MCP client did not declare the sampling capability",
    }


async def test_a_refusal_by_the_client_reaches_the_agent_with_its_reason(sampling: Gateway) -> None:
    model = Model(types.ErrorData(code=-1, message="User rejected sampling request"))
    async with client(sampling, "legacy", sampling_callback=model) as mcp:
        result = await mcp.call_tool("summarise", {"text": TEXT})
    assert result.structured_content == {
        "protocol": "mcp",
        "unavailable": "the MCP client refused sampling/createMessage: User rejected sampling request",
    }


async def test_the_2026_input_required_result_asks_for_a_create_message_and_takes_it(
    sampling: Gateway,
) -> None:
    async with client(sampling, MODERN, sampling_callback=Model(answer())) as mcp:
        first = await mcp.session.call_tool("summarise", {"text": TEXT}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult), first
        assert first.input_requests is not None and first.request_state is not None
        ((key, request),) = first.input_requests.items()
        assert isinstance(request, types.CreateMessageRequest), request
        assert_asked(request.params)
        # An answer of the wrong kind (an elicitation result) is asked for again, not taken.
        again = await mcp.session.call_tool(
            "summarise",
            {"text": TEXT},
            input_responses={key: types.ElicitResult(action="accept", content={"answer": "x"})},
            request_state=first.request_state,
            allow_input_required=True,
        )
        assert isinstance(again, types.InputRequiredResult), again
        assert again.request_state is not None
        done = await mcp.session.call_tool(
            "summarise",
            {"text": TEXT},
            input_responses={key: answer("Short.")},
            request_state=again.request_state,
            allow_input_required=True,
        )
    assert isinstance(done, types.CallToolResult), done
    assert done.structured_content is not None and done.structured_content["summary"] == "Short."


def test_over_rest_sampling_fails_at_once_without_pausing_the_run(sampling: Gateway) -> None:
    response = httpx.post(f"{sampling.url}/v1/agents/summarise/invoke", json={"text": TEXT}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == {
        "protocol": "rest",
        "unavailable": "the run was called over rest: only an MCP client that declares the sampling "
        "capability can be asked to sample",
    }
    kinds = [event["kind"] for event in events_of(sampling, body["run_id"])]
    assert "interrupt" not in kinds and "input" not in kinds, kinds


def test_an_uncaught_sampling_unavailable_fails_the_run_with_its_type(sampling: Gateway) -> None:
    response = httpx.post(f"{sampling.url}/v1/agents/strict/invoke", json={"text": TEXT}, timeout=30)
    body = response.json()
    assert body["status"] == "failed", body
    assert body["error"]["type"] == "SamplingUnavailable"
    assert "called over rest" in body["error"]["message"]


async def test_a_2026_task_lists_its_sampling_request_and_tasks_update_answers_it(sampling: Gateway) -> None:
    async with client(
        sampling, MODERN, sampling_callback=Model(answer()), extensions=[TasksExtension()]
    ) as mcp:
        created = await mcp.session.call_tool("summarise", {"text": TEXT}, allow_claimed=True)
        assert isinstance(created, CreatedTask), created
        task_id = created.task_id
        waiting = await eventually(
            lambda: _task_if(get_waiting(mcp.session, task_id), "input_required"), "the task to need input"
        )
        requests = waiting.input_requests
        assert requests is not None and list(requests) == ["interrupt-1"]
        assert requests["interrupt-1"]["method"] == "sampling/createMessage"
        assert requests["interrupt-1"]["params"]["maxTokens"] == 40

        async def update(response: Any) -> types.Result:
            params = UpdateTaskParams(task_id=task_id, input_responses={"interrupt-1": response})
            return await mcp.session.send_request(UpdateTask(params=params), types.Result)

        with pytest.raises(MCPError) as refused:
            await update({"action": "accept", "content": {}})
        assert refused.value.code == -32602 and "not a CreateMessageResult" in refused.value.message
        await update(answer("From a task.").model_dump(by_alias=True, exclude_none=True, mode="json"))
        done = await eventually(
            lambda: _task_if(get_task(mcp.session, task_id), "completed"), "the task to end"
        )
    assert done.result is not None
    assert done.result["structuredContent"]["summary"] == "From a task."
