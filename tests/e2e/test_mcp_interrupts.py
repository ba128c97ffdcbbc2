"""Runs that ask, answered over MCP with the official client, against real gateway and worker processes.

2025-11-25: the tool call's run interrupts, the gateway sends ``elicitation/create`` on the call's stream,
the client's ``elicitation_callback`` answers, the run goes on and the call returns its output. 2026-07-28:
the call answers an ``InputRequiredResult`` with a signed ``requestState``; the client retries with the
answer. Tasks: ``tasks/result`` elicits (2025-11-25), ``tasks/get`` / ``tasks/update`` (2026-07-28).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.mcp_support import (
    LEGACY,
    MODERN,
    CreatedTask,
    DetailedTask,
    GetTask,
    TaskIdParams,
    TasksExtension,
    call_as_task,
    client,
    eventually,
    get_task,
    legacy_session,
)
from tests.e2e.test_identity import cli

pytestmark = pytest.mark.e2e

WORKER_TOKEN = "interrupts-worker-secret-0123456789"

REFUND_SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}, "note": {"type": "string", "default": ""}},
    "required": ["amount"],
}


@pytest.fixture(scope="module")
def asking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway with the interrupt worker (``ask``, ``refund``) and the elicit worker (``signup``)."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("asking")))
    try:
        gateway = cluster.start_gateway(mcp_questions_within="1")
        for target, name in (
            ("tests.workers.interrupt_worker:app", "interrupts"),
            ("tests.workers.elicit_worker:app", "elicits"),
        ):
            worker = Worker(gateway, target, cluster.logs, name)
            worker.env["INTERRUPT_WORKER_LOG"] = str(cluster.tmp_path / "worker.log")
            worker.start()
            cluster.processes.append(worker)
            wait_until(lambda name=name: f"({name}) connected" in gateway.output(), what=f"the {name} worker")
        yield gateway
    finally:
        cluster.close()


class Answers:
    """An ``elicitation_callback`` giving the replies it was made with, in turn (the last one again when
    asked more often), and keeping what it was asked."""

    def __init__(self, *replies: types.ElicitResult) -> None:
        self.replies = list(replies)
        self.asked: list[types.ElicitRequestFormParams] = []
        self.meta: list[Any] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams), params
        self.asked.append(params)
        self.meta.append(params.meta)
        return self.replies[min(len(self.asked), len(self.replies)) - 1]

    @property
    def messages(self) -> list[str]:
        return [params.message for params in self.asked]


def accept(**content: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content=content)


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def run_of(gateway: Gateway, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def post(gateway: Gateway, path: str, body: Any = None) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body, timeout=10)


def list_runs(gateway: Gateway, status: str, endpoint: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{gateway.url}/v1/runs", params={"status": status, "endpoint": endpoint}, timeout=10
    )
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["runs"]
    return runs


def run_id_in(text: str) -> str:
    return next(word.strip(".,:;'\"") for word in text.split() if word.startswith("run_"))


# ---------------------------------------------------------------- 2025-11-25: elicitation/create


async def test_an_accepted_form_resumes_the_run_and_the_call_returns_its_output(asking: Gateway) -> None:
    answers = Answers(accept(amount=5, note="ok"))
    async with client(asking, "legacy", elicitation_callback=answers) as mcp:
        assert mcp.protocol_version == LEGACY
        result = await mcp.call_tool("ask", {"question": "how much?"})
    assert not result.is_error, result
    assert result.structured_content == {"amount": 5, "note": "ok", "attempt": 1}
    assert answers.messages == ["how much?"]
    assert answers.asked[0].requested_schema == REFUND_SCHEMA


async def test_a_refused_answer_is_asked_again_with_the_reasons(asking: Gateway) -> None:
    answers = Answers(accept(amount="five"), accept(amount=7))
    async with client(asking, "legacy", elicitation_callback=answers) as mcp:
        result = await mcp.call_tool("ask", {"question": "how much?"})
    assert result.structured_content == {"amount": 7, "note": "", "attempt": 1}
    first, second = answers.messages
    assert first == "how much?"
    assert second.startswith("how much?\n\nThe last answer was not accepted:")
    assert "$.amount: 'five' is not of type 'integer'" in second


async def test_three_refused_answers_cancel_the_run(asking: Gateway) -> None:
    answers = Answers(accept(amount="five"))
    async with client(asking, "legacy", elicitation_callback=answers) as mcp:
        result = await mcp.call_tool("ask", {"question": "how much?"})
    assert result.is_error
    text = text_of(result)
    assert text.startswith("invalid_answer: no acceptable answer to interrupt 'interrupt-1' after 3 tries"), (
        text
    )
    assert "$.amount: 'five' is not of type 'integer'" in text
    assert len(answers.asked) == 3
    assert run_of(asking, run_id_in(text))["status"] == "cancelled"


async def test_a_declined_form_cancels_the_run(asking: Gateway) -> None:
    answers = Answers(types.ElicitResult(action="decline"))
    async with client(asking, "legacy", elicitation_callback=answers) as mcp:
        result = await mcp.call_tool("ask", {"question": "how much?"})
    assert result.is_error
    text = text_of(result)
    assert text.startswith("declined: the MCP client declined the question of interrupt 'interrupt-1'"), text
    assert run_of(asking, run_id_in(text))["status"] == "cancelled"


async def test_a_client_without_elicitation_gets_an_error_and_the_run_waits_for_another_answer(
    asking: Gateway,
) -> None:
    async with client(asking, "legacy") as mcp:
        result = await mcp.call_tool("ask", {"question": "how much?"})
    assert result.is_error
    text = text_of(result)
    assert text.startswith("input_required: the tool waits for input this client cannot give"), text
    assert "how much?" in text
    run_id = run_id_in(text)
    assert run_of(asking, run_id)["status"] == "waiting_input"
    answered = post(asking, f"/v1/runs/{run_id}/resume", {"answer": {"amount": 3}})
    assert answered.status_code == 200, answered.text
    wait_until(lambda: run_of(asking, run_id)["status"] == "succeeded", what="the run to finish")


async def test_an_answer_from_elsewhere_withdraws_the_open_form(asking: Gateway) -> None:
    opened, withdrawn = anyio.Event(), anyio.Event()

    async def never_answers(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        opened.set()
        try:
            await anyio.sleep_forever()
        finally:
            withdrawn.set()
        raise AssertionError("unreachable")

    results: list[types.CallToolResult] = []
    async with client(asking, "legacy", elicitation_callback=never_answers) as mcp:

        async def call() -> None:
            results.append(await mcp.call_tool("ask", {"question": "how much now?"}))

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            with anyio.fail_after(20):
                await opened.wait()
            waiting = list_runs(asking, "waiting_input", "ask")  # newest first: this call's
            answered = post(asking, f"/v1/runs/{waiting[0]['run_id']}/resume", {"answer": {"amount": 11}})
            assert answered.status_code == 200, answered.text
        with anyio.fail_after(10):
            await withdrawn.wait()
    assert results[0].structured_content == {"amount": 11, "note": "", "attempt": 1}


async def test_a_run_that_asks_twice_is_answered_twice_and_a_plain_answer_is_one_field(
    asking: Gateway,
) -> None:
    answers = Answers(accept(name="Ada", age=36), accept(answer=True))
    async with client(asking, "legacy", elicitation_callback=answers) as mcp:
        result = await mcp.call_tool("signup", {"plan": "pro"})
    assert result.structured_content == {"plan": "pro", "name": "Ada", "age": 36, "newsletter": True}
    assert answers.messages == ["Who is signing up?", "Send Ada the newsletter?"]
    assert answers.asked[1].requested_schema == {
        "type": "object",
        "properties": {"answer": {"type": "boolean", "title": "Answer"}},
        "required": ["answer"],
    }


async def test_an_approval_is_a_choice_and_its_payload_a_json_field(asking: Gateway) -> None:
    answers = Answers(accept(decision="edit", payload='{"amount": 20}'))
    async with client(asking, "legacy", elicitation_callback=answers) as mcp:
        result = await mcp.call_tool("refund", {"amount": 30})
    assert result.structured_content == {"decision": "edit", "payload": {"amount": 20}, "attempt": 1}
    assert answers.messages == ['Approve refund?\n{"amount": 30}']
    fields = answers.asked[0].requested_schema["properties"]
    assert fields["decision"] == {"type": "string", "enum": ["approve", "edit", "reject"]}
    assert fields["payload"]["type"] == "string" and fields["payload"]["title"] == "payload (JSON)"


# ---------------------------------------------------------------- 2026-07-28: InputRequiredResult


async def test_input_required_results_are_answered_round_after_round(asking: Gateway) -> None:
    answers = Answers(accept(name="Grace", age=45), accept(answer=False))
    async with client(asking, MODERN, elicitation_callback=answers) as mcp:
        result = await mcp.call_tool("signup", {"plan": "team"})
    assert not result.is_error, result
    assert result.structured_content == {"plan": "team", "name": "Grace", "age": 45, "newsletter": False}
    assert answers.messages == ["Who is signing up?", "Send Grace the newsletter?"]


async def test_a_request_state_answers_once_and_only_for_its_call(asking: Gateway) -> None:
    async with client(asking, MODERN, elicitation_callback=Answers()) as mcp:
        arguments = {"question": "how much?"}
        first = await mcp.session.call_tool("ask", arguments, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult), first
        assert first.request_state is not None and first.input_requests is not None
        ((key, request),) = first.input_requests.items()
        assert key == "interrupt-1"
        assert isinstance(request, types.ElicitRequest)
        assert isinstance(request.params, types.ElicitRequestFormParams)
        assert request.params.message == "how much?"
        assert request.params.requested_schema == REFUND_SCHEMA
        state = first.request_state
        reply = {key: accept(amount=9)}

        async def retry(arguments: dict[str, Any], state: str) -> Any:
            return await mcp.session.call_tool(
                "ask", arguments, input_responses=reply, request_state=state, allow_input_required=True
            )

        tampered = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
        for bad_state, bad_arguments, reason in (
            (tampered, arguments, "invalid"),
            (state, {"question": "how much, really?"}, "invalid"),  # another call
        ):
            with pytest.raises(MCPError) as refused:
                await retry(bad_arguments, bad_state)
            assert refused.value.code == -32602
            assert refused.value.message == "Invalid or expired requestState"
            assert refused.value.data == {"reason": reason}

        answered = await retry(arguments, state)
        assert isinstance(answered, types.CallToolResult), answered
        assert answered.structured_content == {"amount": 9, "note": "", "attempt": 1}

        with pytest.raises(MCPError) as replayed:
            await retry(arguments, state)
        assert replayed.value.code == -32602
        assert replayed.value.data == {"reason": "answered"}


async def test_a_refused_answer_gets_another_input_required_result_then_a_declined_one_cancels(
    asking: Gateway,
) -> None:
    async with client(asking, MODERN, elicitation_callback=Answers()) as mcp:
        arguments = {"question": "how much?"}
        first = await mcp.session.call_tool("ask", arguments, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.request_state is not None
        again = await mcp.session.call_tool(
            "ask",
            arguments,
            input_responses={"interrupt-1": accept(amount="lots")},
            request_state=first.request_state,
            allow_input_required=True,
        )
        assert isinstance(again, types.InputRequiredResult) and again.input_requests is not None
        request = again.input_requests["interrupt-1"]
        assert isinstance(request, types.ElicitRequest)
        assert isinstance(request.params, types.ElicitRequestFormParams)
        assert "$.amount: 'lots' is not of type 'integer'" in request.params.message
        assert again.request_state is not None
        declined = await mcp.session.call_tool(
            "ask",
            arguments,
            input_responses={"interrupt-1": types.ElicitResult(action="decline")},
            request_state=again.request_state,
            allow_input_required=True,
        )
    assert isinstance(declined, types.CallToolResult) and declined.is_error
    assert run_of(asking, run_id_in(text_of(declined)))["status"] == "cancelled"


async def test_a_request_state_is_refused_to_another_principal(cluster: Cluster) -> None:
    data = cluster.tmp_path / "data"
    keys = {
        name: cli(data, "keys", "create", "--name", name, "--tenant", "acme") for name in ("alice", "bob")
    }
    gateway = cluster.start_gateway(auth="required", worker_token=WORKER_TOKEN)
    worker = Worker(gateway, "tests.workers.interrupt_worker:app", cluster.logs, "interrupts")
    worker.env |= {
        "FASTAGENTIC_WORKER_TOKEN": WORKER_TOKEN,
        "INTERRUPT_WORKER_LOG": str(cluster.tmp_path / "w"),
    }
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "(interrupts) connected" in gateway.output(), what="the interrupt worker")
    arguments = {"question": "how much?"}
    reply = {"interrupt-1": accept(amount=1)}
    async with as_principal(gateway, keys["alice"]) as alice, as_principal(gateway, keys["bob"]) as bob:
        first = await alice.session.call_tool("ask", arguments, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.request_state is not None
        with pytest.raises(MCPError) as refused:
            await bob.session.call_tool(
                "ask", arguments, input_responses=reply, request_state=first.request_state
            )
        assert (refused.value.code, refused.value.data) == (-32602, {"reason": "invalid"})
        answered = await alice.session.call_tool(
            "ask", arguments, input_responses=reply, request_state=first.request_state
        )
    assert answered.structured_content == {"amount": 1, "note": "", "attempt": 1}


async def test_an_abandoned_input_required_result_frees_the_slot_when_its_state_expires(
    cluster: Cluster,
) -> None:
    """A 2026-07-28 client that never comes back: the ephemeral run waiting in place (one worker slot)
    fails InterruptTimeout once its requestState expired, and the slot serves the next call. A durable run
    is handed back instead, and keeps waiting for an answer from elsewhere."""
    gateway = cluster.start_gateway(mcp_state_ttl="2", interrupt_hold="0.5")
    worker = Worker(gateway, "tests.workers.interrupt_worker:app", cluster.logs, "interrupts", "--slots", "1")
    worker.env["INTERRUPT_WORKER_LOG"] = str(cluster.tmp_path / "w")
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "(interrupts) connected" in gateway.output(), what="the interrupt worker")
    async with client(gateway, MODERN, elicitation_callback=Answers()) as mcp:
        first = await mcp.session.call_tool("ask", {"question": "how much?"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult), first
        (abandoned,) = list_runs(gateway, "waiting_input", "ask")
        # The one slot is held: a second call's run cannot start.
        second = post(gateway, "/v1/agents/ask/runs", {"question": "and now?"})
        assert second.status_code == 202, second.text
        second_id = second.json()["run_id"]
        await anyio.sleep(1.0)
        assert run_of(gateway, second_id)["status"] == "queued"
        ended = await eventually(
            lambda: run_of(gateway, abandoned["run_id"])["status"] == "failed", "the abandoned run to end", 15
        )
        assert ended
        error = run_of(gateway, abandoned["run_id"])["error"]
        assert error["type"] == "InterruptTimeout", error
        assert "requestState expired" in error["message"] and "mcp_state_ttl" in error["message"], error
        # The slot is free again: the second run reaches its own question.
        await eventually(
            lambda: run_of(gateway, second_id)["status"] == "waiting_input", "the second run to start", 15
        )
        url = f"{gateway.url}/v1/runs/{abandoned['run_id']}/events"
        events = (await anyio.to_thread.run_sync(lambda: httpx.get(url, timeout=10))).text
        assert "event: run.failed" in events and "requestState expired" in events
        # The retry after expiry cannot reach the run: the state is refused.
        with pytest.raises(MCPError) as late:
            await mcp.session.call_tool(
                "ask",
                {"question": "how much?"},
                input_responses={"interrupt-1": accept(amount=1)},
                request_state=first.request_state,
            )
        assert (late.value.code, late.value.data) == (-32602, {"reason": "expired"})
        assert post(gateway, f"/v1/runs/{second_id}/cancel").status_code == 200

        durable = await mcp.session.call_tool("refund", {"amount": 3}, allow_input_required=True)
        assert isinstance(durable, types.InputRequiredResult), durable
        (parked,) = list_runs(gateway, "waiting_input", "refund")
        await anyio.sleep(4.0)  # past the state's expiry
        assert run_of(gateway, parked["run_id"])["status"] == "waiting_input"
        resumed = post(gateway, f"/v1/runs/{parked['run_id']}/resume", {"answer": {"decision": "approve"}})
        assert resumed.status_code == 200, resumed.text
        done = await eventually(
            lambda: run_of(gateway, parked["run_id"])["status"] == "succeeded", "the durable run to finish"
        )
        assert done


@asynccontextmanager
async def as_principal(gateway: Gateway, key: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    transport = streamable_http_client(f"{gateway.url}/mcp", http_client=http)
    async with http, Client(transport, mode=MODERN, elicitation_callback=Answers()) as mcp:
        yield mcp


async def test_a_client_without_elicitation_gets_missing_capability(asking: Gateway) -> None:
    async with client(asking, MODERN) as mcp:
        with pytest.raises(MCPError) as missing:
            await mcp.call_tool("ask", {"question": "how much?"})
    assert missing.value.code == -32021
    assert missing.value.data == {"requiredCapabilities": {"elicitation": {"form": {}}}}
    run_id = run_id_in(missing.value.message)
    assert run_of(asking, run_id)["status"] == "waiting_input"
    assert post(asking, f"/v1/runs/{run_id}/cancel").status_code == 200


# ---------------------------------------------------------------- tasks


async def test_a_2025_task_is_answered_through_tasks_result(asking: Gateway) -> None:
    answers = Answers(accept(decision="approve"))
    async with legacy_session(asking, elicitation_callback=answers) as (session, dispatcher):
        created = await call_as_task(dispatcher, "refund", {"amount": 12})
        task_id = created["task"]["taskId"]

        async def status() -> str:
            task = await session.send_request(
                types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id)), types.GetTaskResult
            )
            return task.status

        await eventually(lambda: _is(status(), "input_required"), "the task to need input")
        request = types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id))
        result = await session.send_request(request, types.CallToolResult)
    assert result.structured_content == {"decision": "approve", "payload": None, "attempt": 1}
    assert answers.meta == [{"io.modelcontextprotocol/related-task": {"taskId": task_id}}]


class InputRequiredTask(DetailedTask):
    input_requests: dict[str, Any] | None = None


async def get_waiting(session: Any, task_id: str) -> InputRequiredTask:
    return await session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), InputRequiredTask)


class UpdateTaskParams(TaskIdParams):
    input_responses: dict[str, Any]


class UpdateTask(types.Request[UpdateTaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateTaskParams
    name_param = "taskId"


async def test_a_2026_task_lists_its_question_and_tasks_update_answers_it(asking: Gateway) -> None:
    async with client(asking, MODERN, elicitation_callback=Answers(), extensions=[TasksExtension()]) as mcp:
        created = await mcp.session.call_tool("ask", {"question": "how much?"}, allow_claimed=True)
        assert isinstance(created, CreatedTask), created
        task_id = created.task_id
        waiting = await eventually(
            lambda: _task_if(get_waiting(mcp.session, task_id), "input_required"), "the task to need input"
        )
        requests = waiting.input_requests
        assert requests is not None
        assert list(requests) == ["interrupt-1"]
        assert requests["interrupt-1"]["params"]["requestedSchema"] == REFUND_SCHEMA

        async def update(content: dict[str, Any]) -> types.Result:
            responses = {"interrupt-1": {"action": "accept", "content": content}}
            params = UpdateTaskParams(task_id=task_id, input_responses=responses)
            return await mcp.session.send_request(UpdateTask(params=params), types.Result)

        with pytest.raises(MCPError) as refused:
            await update({"amount": "none"})
        assert refused.value.code == -32602
        assert "$.amount: 'none' is not of type 'integer'" in refused.value.message
        await update({"amount": 4})
        done = await eventually(
            lambda: _task_if(get_task(mcp.session, task_id), "completed"), "the task to end"
        )
    assert done.result is not None
    assert done.result["structuredContent"] == {"amount": 4, "note": "", "attempt": 1}


async def _is(value: Any, wanted: str) -> bool:
    return bool(await value == wanted)


async def _task_if(task: Any, status: str) -> Any:
    found = await task
    return found if found.status == status else None


# ---------------------------------------------------------------- 2026-07-28: questions before the task


async def test_answers_sent_with_the_first_call_answer_its_first_question(asking: Gateway) -> None:
    """SEP-2322: a client may send what it knows with the call; keys that name no question are ignored."""
    before = _waiting(asking)
    async with client(asking, MODERN, elicitation_callback=Answers()) as mcp:
        ahead = {"interrupt-1": accept(amount=3), "unrelated": accept(anything=1)}
        result = await mcp.session.call_tool(
            "ask", {"question": "?"}, input_responses=ahead, allow_input_required=True
        )
        assert isinstance(result, types.CallToolResult), result
        assert result.structured_content == {"amount": 3, "note": "", "attempt": 1}
        # One of the wrong shape is asked again, saying why: it is an answer like any other.
        wrong = await mcp.session.call_tool(
            "ask",
            {"question": "?"},
            input_responses={"interrupt-1": accept(amount="three")},
            allow_input_required=True,
        )
        assert isinstance(wrong, types.InputRequiredResult), wrong
        assert wrong.input_requests is not None and list(wrong.input_requests) == ["interrupt-1"]
        request = wrong.input_requests["interrupt-1"]
        assert isinstance(request, types.ElicitRequest)
        assert isinstance(request.params, types.ElicitRequestFormParams)
        assert "'three' is not of type 'integer'" in request.params.message
        # They answer the first question only: signup's second one is asked, not taken from a key.
        two = await mcp.session.call_tool(
            "signup",
            {"plan": "solo"},
            input_responses={"interrupt-1": accept(name="Ada", age=36), "interrupt-2": accept(answer=True)},
            allow_input_required=True,
        )
        assert isinstance(two, types.InputRequiredResult), two
        assert two.input_requests is not None and list(two.input_requests) == ["interrupt-2"]
    left = _waiting(asking) - before
    assert len(left) == 2, left
    for run_id in left:
        assert post(asking, f"/v1/runs/{run_id}/cancel").status_code == 200


def _waiting(gateway: Gateway) -> set[str]:
    return {run["run_id"] for name in ("ask", "signup") for run in list_runs(gateway, "waiting_input", name)}


async def test_a_task_asks_its_first_questions_on_the_call_and_is_created_past_them(asking: Gateway) -> None:
    """SEP-2663 with SEP-2322: an ``input_before_task`` endpoint called as a task asks on the call itself
    (no task id yet), and the retry that answers gets the task, which asks within from then on."""
    tasks = TasksExtension()
    async with client(asking, MODERN, elicitation_callback=Answers(), extensions=[tasks]) as mcp:
        first = await mcp.session.call_tool(
            "enrol", {"course": "go"}, allow_input_required=True, allow_claimed=True
        )
        assert isinstance(first, types.InputRequiredResult), first
        assert first.request_state is not None and first.input_requests is not None
        assert list(first.input_requests) == ["interrupt-1"]
        assert "taskId" not in first.model_dump(by_alias=True)
        created = await mcp.session.call_tool(
            "enrol",
            {"course": "go"},
            input_responses={"interrupt-1": accept(name="Kim", age=12)},
            request_state=first.request_state,
            allow_input_required=True,
            allow_claimed=True,
        )
        assert isinstance(created, CreatedTask), created
        dumped = created.model_dump(by_alias=True, exclude_none=True)
        assert "requestState" not in dumped and "inputRequests" not in dumped
        # Its next question (Kim is 12) comes within the task, answered with tasks/update.
        waiting = await eventually(
            lambda: _task_if(get_waiting(mcp.session, created.task_id), "input_required"), "the task to ask"
        )
        assert waiting.input_requests is not None and list(waiting.input_requests) == ["interrupt-2"]
        responses = {"interrupt-2": {"action": "accept", "content": {"answer": True}}}
        params = UpdateTaskParams(task_id=created.task_id, input_responses=responses)
        await mcp.session.send_request(UpdateTask(params=params), types.Result)
        done = await eventually(
            lambda: _task_if(get_task(mcp.session, created.task_id), "completed"), "the task to end"
        )
    assert done.result is not None
    assert done.result["structuredContent"] == {"course": "go", "name": "Kim", "age": 12, "attempt": 1}


async def test_a_run_that_goes_straight_to_work_is_a_task_at_once(asking: Gateway) -> None:
    async with client(asking, MODERN, elicitation_callback=Answers(), extensions=[TasksExtension()]) as mcp:
        created = await mcp.session.call_tool(
            "enrol", {"course": "go", "ask": False}, allow_input_required=True, allow_claimed=True
        )
        assert isinstance(created, CreatedTask), created
        done = await eventually(
            lambda: _task_if(get_task(mcp.session, created.task_id), "completed"), "the task to end"
        )
    assert done.result is not None and done.result["structuredContent"]["name"] == "nobody"


async def test_without_the_tasks_extension_an_input_first_endpoint_answers_directly(asking: Gateway) -> None:
    async with client(asking, MODERN, elicitation_callback=Answers(accept(name="Lou", age=40))) as mcp:
        result = await mcp.call_tool("enrol", {"course": "go"})
    assert not result.is_error, result
    assert result.structured_content == {"course": "go", "name": "Lou", "age": 40, "attempt": 1}


async def test_a_run_that_asks_late_is_a_task_that_asks_within(asking: Gateway) -> None:
    """Nothing asked within mcp_questions_within (1 s here): the call answers with the task."""
    async with client(asking, MODERN, elicitation_callback=Answers(), extensions=[TasksExtension()]) as mcp:
        created = await mcp.session.call_tool(
            "enrol", {"course": "go", "delay": 2.5}, allow_input_required=True, allow_claimed=True
        )
        assert isinstance(created, CreatedTask), created
        waiting = await eventually(
            lambda: _task_if(get_waiting(mcp.session, created.task_id), "input_required"), "the task to ask"
        )
        assert waiting.input_requests is not None and list(waiting.input_requests) == ["interrupt-1"]
        responses = {"interrupt-1": {"action": "accept", "content": {"name": "Sam", "age": 30}}}
        params = UpdateTaskParams(task_id=created.task_id, input_responses=responses)
        await mcp.session.send_request(UpdateTask(params=params), types.Result)
        done = await eventually(
            lambda: _task_if(get_task(mcp.session, created.task_id), "completed"), "the task to end"
        )
    assert done.result is not None and done.result["structuredContent"]["name"] == "Sam"


async def test_a_client_that_cannot_answer_forms_gets_the_task_and_the_question_waits_in_it(
    asking: Gateway,
) -> None:
    async with client(asking, MODERN, extensions=[TasksExtension()]) as mcp:  # no elicitation capability
        created = await mcp.session.call_tool(
            "enrol", {"course": "go"}, allow_input_required=True, allow_claimed=True
        )
        assert isinstance(created, CreatedTask), created
        await eventually(
            lambda: _task_if(get_task(mcp.session, created.task_id), "input_required"), "the task to ask"
        )
    assert post(asking, f"/v1/runs/{created.task_id}/cancel").status_code == 200


async def test_answers_sent_ahead_by_a_client_that_cannot_answer_forms_are_not_taken(asking: Gateway) -> None:
    async with client(asking, MODERN) as mcp:  # no elicitation capability
        with pytest.raises(MCPError) as missing:
            await mcp.session.call_tool(
                "ask",
                {"question": "?"},
                input_responses={"interrupt-1": accept(amount=3)},
                allow_input_required=True,
            )
    assert missing.value.code == -32021
    run_id = run_id_in(missing.value.message)
    assert run_of(asking, run_id)["status"] == "waiting_input"
    assert post(asking, f"/v1/runs/{run_id}/cancel").status_code == 200
