"""Prompts and resources whose runs ask, 2026-07-28 sampling without the capability, and 2025-11-25 task
status notifications while a task waits for input: over MCP with the official client, against a real
gateway and the conformance worker (``tests/workers/conformance_worker.py``, written on the SDK only).

2025-11-25: the ``prompts/get`` / ``resources/read`` run's question goes to the client as
``elicitation/create`` on that request's stream. 2026-07-28: the request answers an ``InputRequiredResult``
whose signed ``requestState`` is bound to the prompt (or resource URI) and its arguments; the official
client's ``get_prompt`` / ``read_resource`` retry with the answers by themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.extension import NotificationBinding
from mcp.shared.exceptions import MCPError

from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.mcp_support import LEGACY, MODERN, call_as_task, client, eventually, legacy_session
from tests.e2e.test_mcp_interrupts import Answers, accept, post, run_id_in, run_of

pytestmark = pytest.mark.e2e

PROMPT = "test_input_required_result_prompt"
RESOURCE = "test://asking/{topic}"


@pytest.fixture(scope="module")
def asking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("prompt-interrupts")))
    try:
        gateway = cluster.start_gateway()
        worker = Worker(gateway, "tests.workers.conformance_worker:app", cluster.logs, "conformance")
        worker.start()
        cluster.processes.append(worker)
        wait_until(lambda: "(conformance) connected" in gateway.output(), what="the conformance worker")
        yield gateway
    finally:
        cluster.close()


def responses(**replies: types.ElicitResult) -> types.InputResponses:
    return dict(replies)


def prompt_text(result: types.GetPromptResult) -> str:
    content = result.messages[0].content
    assert isinstance(content, types.TextContent), content
    return content.text


def resource_text(result: types.ReadResourceResult) -> str:
    (content,) = result.contents
    assert isinstance(content, types.TextResourceContents), content
    return content.text


# ---------------------------------------------------------------- prompts/get and resources/read that ask


@pytest.mark.parametrize(("mode", "revision"), [("legacy", LEGACY), (MODERN, MODERN)])
async def test_a_prompt_that_asks_is_answered_by_the_client(
    asking: Gateway, mode: str, revision: str
) -> None:
    answers = Answers(accept(context="release notes"))
    async with client(asking, mode, elicitation_callback=answers) as mcp:
        assert mcp.protocol_version == revision
        result = await mcp.get_prompt(PROMPT)
    assert prompt_text(result) == "Prompt with context: release notes"
    assert answers.messages == ["What context should the prompt use?"]
    assert answers.asked[0].requested_schema == {
        "type": "object",
        "properties": {"context": {"type": "string"}},
        "required": ["context"],
    }


@pytest.mark.parametrize(("mode", "revision"), [("legacy", LEGACY), (MODERN, MODERN)])
async def test_a_resource_read_that_asks_is_answered_by_the_client(
    asking: Gateway, mode: str, revision: str
) -> None:
    answers = Answers(accept(value="b"), accept(value="intro"))
    async with client(asking, mode, elicitation_callback=answers) as mcp:
        assert mcp.protocol_version == revision
        first = await mcp.read_resource("test://asking/moles")
        second = await mcp.read_resource("test://asking/voles")
    assert resource_text(first) == "moles: section b"
    assert resource_text(second) == "voles: section intro"
    assert answers.messages == ["Which section of moles?", "Which section of voles?"]


async def test_a_prompt_request_state_answers_once_and_only_that_prompt(asking: Gateway) -> None:
    async with client(asking, MODERN, elicitation_callback=Answers()) as mcp:
        first = await mcp.session.get_prompt(PROMPT, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult), first
        assert first.request_state is not None and first.input_requests is not None
        ((key, request),) = first.input_requests.items()
        assert key == "user_context"  # the interrupt's id, as the worker named it
        assert isinstance(request, types.ElicitRequest)
        reply: types.InputResponses = {key: accept(context="x")}
        with pytest.raises(MCPError) as elsewhere:  # the state of a prompt does not answer a resource read
            await mcp.session.read_resource(
                "test://asking/x", input_responses=reply, request_state=first.request_state
            )
        assert (elsewhere.value.code, elsewhere.value.data) == (-32602, {"reason": "invalid"})
        with pytest.raises(MCPError) as other_arguments:
            await mcp.session.get_prompt(
                PROMPT, {"extra": "1"}, input_responses=reply, request_state=first.request_state
            )
        assert (other_arguments.value.code, other_arguments.value.data) == (-32602, {"reason": "invalid"})

        answered = await mcp.session.get_prompt(
            PROMPT, input_responses=reply, request_state=first.request_state
        )
        assert isinstance(answered, types.GetPromptResult), answered
        assert prompt_text(answered) == "Prompt with context: x"
        with pytest.raises(MCPError) as replayed:
            await mcp.session.get_prompt(PROMPT, input_responses=reply, request_state=first.request_state)
    assert (replayed.value.code, replayed.value.data) == (-32602, {"reason": "answered"})


async def test_a_refused_answer_is_asked_again_then_a_declined_one_is_an_error(asking: Gateway) -> None:
    uri = "test://asking/newts"
    async with client(asking, MODERN, elicitation_callback=Answers()) as mcp:
        first = await mcp.session.read_resource(uri, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.request_state is not None
        again = await mcp.session.read_resource(
            uri,
            input_responses=responses(section=accept(value=7)),
            request_state=first.request_state,
            allow_input_required=True,
        )
        assert isinstance(again, types.InputRequiredResult) and again.input_requests is not None
        request = again.input_requests["section"]
        assert isinstance(request, types.ElicitRequest)
        assert isinstance(request.params, types.ElicitRequestFormParams)
        assert "$.value: 7 is not of type 'string'" in request.params.message
        assert again.request_state is not None
        with pytest.raises(MCPError) as declined:
            await mcp.session.read_resource(
                uri,
                input_responses=responses(section=types.ElicitResult(action="decline")),
                request_state=again.request_state,
            )
    assert declined.value.code == -32603
    assert declined.value.message.startswith(
        "declined: the MCP client declined the question of interrupt 'section'"
    ), declined.value.message
    assert declined.value.data == {"type": "declined"}
    assert run_of(asking, run_id_in(declined.value.message))["status"] == "cancelled"


async def test_a_2025_client_without_elicitation_gets_an_error_and_the_prompt_run_waits(
    asking: Gateway,
) -> None:
    async with client(asking, "legacy") as mcp:
        with pytest.raises(MCPError) as refused:
            await mcp.get_prompt(PROMPT)
    assert refused.value.code == -32603
    assert refused.value.message.startswith(
        "input_required: the prompt waits for input this client cannot give"
    )
    data: Any = refused.value.data
    assert data["type"] == "input_required"
    run_id = run_id_in(data["errors"][0])
    assert run_of(asking, run_id)["status"] == "waiting_input"
    answered = post(asking, f"/v1/runs/{run_id}/resume", {"answer": {"context": "from REST"}})
    assert answered.status_code == 200, answered.text
    wait_until(lambda: run_of(asking, run_id)["status"] == "succeeded", what="the prompt run to finish")


async def test_a_2026_client_without_form_elicitation_gets_missing_capability_for_a_resource(
    asking: Gateway,
) -> None:
    async with client(asking, MODERN) as mcp:
        with pytest.raises(MCPError) as missing:
            await mcp.read_resource("test://asking/owls")
    assert missing.value.code == -32021
    assert missing.value.data == {"requiredCapabilities": {"elicitation": {"form": {}}}}
    assert "the resource asks for input" in missing.value.message
    run_id = run_id_in(missing.value.message)
    # A form can be answered elsewhere (REST, another client): the run keeps waiting.
    assert run_of(asking, run_id)["status"] == "waiting_input"
    assert post(asking, f"/v1/runs/{run_id}/cancel").status_code == 200


# ---------------------------------------------------------------- 2026-07-28 sampling needs the capability


async def test_a_2026_request_without_sampling_gets_missing_capability(asking: Gateway) -> None:
    async with client(asking, MODERN) as mcp:
        with pytest.raises(MCPError) as missing:
            await mcp.call_tool("test_missing_capability", {})
    assert missing.value.code == -32021
    assert missing.value.data == {"requiredCapabilities": {"sampling": {}}}
    assert "the tool asks the client's model (sampling)" in missing.value.message
    run_id = run_id_in(missing.value.message)
    # Nobody else could answer: the run is not left waiting, the agent gets SamplingUnavailable.
    wait_until(lambda: run_of(asking, run_id)["status"] == "failed", what="the run to go on and fail")
    error = run_of(asking, run_id)["error"]
    assert error == {
        "type": "SamplingUnavailable",
        "message": "the MCP client did not declare the sampling capability",
    }


# ---------------------------------------------------------------- 2025-11-25 task status notifications


async def test_a_task_session_hears_input_required_then_working_then_completed(asking: Gateway) -> None:
    heard: list[types.TaskStatusNotificationParams] = []

    async def on_status(params: types.TaskStatusNotificationParams) -> None:
        heard.append(params)

    binding = NotificationBinding(
        method="notifications/tasks/status", params_type=types.TaskStatusNotificationParams, handler=on_status
    )
    async with legacy_session(asking, notification_bindings=[binding]) as (_, dispatcher):
        await anyio.sleep(0.3)  # the GET stream, which carries the notifications, opens after initialization
        created = await call_as_task(dispatcher, "confirm_delete", {"filename": "notes.txt"})
        task_id = created["task"]["taskId"]
        await eventually(lambda: heard, "the input_required notification")
        assert (heard[0].task_id, heard[0].status, heard[0].status_message) == (
            task_id,
            "input_required",
            "waiting for input",
        )
        answered = post(asking, f"/v1/runs/{task_id}/resume", {"answer": {"confirm": True}})
        assert answered.status_code == 200, answered.text
        await eventually(lambda: heard[-1].status == "completed", "the completed notification")
    assert [params.status for params in heard] == ["input_required", "working", "completed"]
    assert {params.task_id for params in heard} == {task_id}
