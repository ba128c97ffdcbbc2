"""Interrupts over A2A, with real processes and the official a2a-sdk client on both HTTP bindings: a run
that calls ``ctx.interrupt`` shows as an ``input-required`` task carrying the interrupt as an agent
message; a blocking SendMessage answers there and a stream ends there; a follow-up message on the same
``taskId`` answers the interrupt (validated against its schema: invalid params with the field path
otherwise) and the task goes on from there, in place or, for a durable run its worker handed back, as a
new attempt; a finished task refuses follow-ups, and another tenant's task is not found."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.client import Client
from a2a.client.errors import A2AClientError
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InvalidParamsError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict

from fastagentic_gateway.fronts.a2a.mapping import (
    encode_meta,
    fold,
    interrupt_parts,
    message_answer,
    project,
    takes_text,
)
from fastagentic_gateway.runs.model import ANONYMOUS, EndpointKind, Event, Run, RunStatus
from tests.conftest import Cluster, Gateway, Worker, wait_until
from tests.e2e.a2a_support import (
    BINDINGS,
    Receiver,
    a2a_client,
    collect,
    data_message,
    legacy_card,
    output_of,
    request,
    rpc,
    streamed_text,
    text_message,
)
from tests.e2e.test_identity import cli

WORKER = "tests.workers.interrupt_worker:app"
INPUT_REQUIRED = TaskState.TASK_STATE_INPUT_REQUIRED
COMPLETED = TaskState.TASK_STATE_COMPLETED
WORKING = TaskState.TASK_STATE_WORKING


def _worker(cluster: Cluster, gateway: Gateway, log: Path, token: str = "") -> Worker:
    worker = Worker(gateway, WORKER, cluster.logs, f"interrupts{len(cluster.processes)}")
    worker.env["INTERRUPT_WORKER_LOG"] = str(log)
    if token:
        worker.env["FASTAGENTIC_WORKER_TOKEN"] = token
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "(interrupts) connected" in gateway.output(), what="the interrupt worker")
    return worker


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway and one interrupt worker, for the tests that only start tasks of their own."""
    root = Path(tmp_path_factory.mktemp("a2a-interrupts"))
    cluster = Cluster(root)
    try:
        gateway = cluster.start_gateway()
        _worker(cluster, gateway, root / "worker.log")
        yield gateway
    finally:
        cluster.close()


def answer(value: Any, task: Task, *, context: bool = True) -> Message:
    """A follow-up message on ``task``: a data part for an object, else a text part."""
    message = data_message(value) if isinstance(value, dict) else text_message(str(value))
    message.task_id = task.id
    if context:
        message.context_id = task.context_id
    return message


def interrupt_of(task: Task) -> tuple[list[str], dict[str, Any]]:
    """The texts and the data of the agent message an input-required task carries."""
    return interrupt_in(task.status.message)


def interrupt_in(message: Message) -> tuple[list[str], dict[str, Any]]:
    assert message.role == Role.ROLE_AGENT, message
    texts = [part.text for part in message.parts if part.HasField("text")]
    (data,) = [MessageToDict(part.data) for part in message.parts if part.HasField("data")]
    return texts, data


def states(items: list[StreamResponse]) -> list[int]:
    return [
        item.task.status.state if item.HasField("task") else item.status_update.status.state
        for item in items
        if item.HasField("task") or item.HasField("status_update")
    ]


def _run(gateway: Gateway, run_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/v1/runs/{run_id}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


# ------------------------------------------------------------------------------------- blocking


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_blocking_send_returns_input_required_and_a_follow_up_answers_it(
    served: Gateway, binding: str
) -> None:
    async with a2a_client(served.url, "ask", binding, streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("how much?"))))
        task = item.task
        assert task.status.state == INPUT_REQUIRED, task
        texts, data = interrupt_of(task)
        assert texts == ["how much?"]
        assert data["id"] == "interrupt-1" and data["request"] == {"question": "how much?"}
        assert data["schema"]["required"] == ["amount"], data
        # GetTask shows the same state and message; REST shows the run waiting.
        got = await client.get_task(GetTaskRequest(id=task.id))
        assert got.status == task.status
        assert _run(served, task.id)["status"] == "waiting_input"

        # Answers that do not fit the interrupt are refused, and change nothing.
        with pytest.raises(InvalidParamsError) as wrong:
            await collect(client.send_message(request(answer({"amount": "five"}, task))))
        assert [e["field"] for e in (wrong.value.data or {})["errors"]] == ["$.amount"], wrong.value.data
        assert "$.amount" in wrong.value.message
        with pytest.raises(ContentTypeNotSupportedError):  # text, to an interrupt that takes an object
            await collect(client.send_message(request(answer("5", task))))
        with pytest.raises(InvalidParamsError, match="does not match context"):
            mismatched = answer({"amount": 5}, task)
            mismatched.context_id = str(uuid.uuid4())
            await collect(client.send_message(request(mismatched)))
        with pytest.raises(TaskNotFoundError):
            missing = answer({"amount": 5}, task, context=False)
            missing.task_id = "run_00000000000000000000000000000000"
            await collect(client.send_message(request(missing)))
        with pytest.raises(InvalidParamsError, match="push notification URL"):  # checked before answering
            pushing = request(answer({"amount": 5}, task))
            pushing.configuration.task_push_notification_config.url = "http://127.0.0.1:9/hook"
            await collect(client.send_message(pushing))
        assert (await client.get_task(GetTaskRequest(id=task.id))).status.state == INPUT_REQUIRED

        # The right answer (without a contextId: the task's is taken) goes on to the end.
        (done,) = await collect(
            client.send_message(request(answer({"amount": 5, "note": "ok"}, task, context=False)))
        )
        finished = done.task
        assert finished.id == task.id and finished.status.state == COMPLETED, finished
        assert output_of(finished) == {"amount": 5, "note": "ok", "attempt": 1}
        # The history: the question asked, the interrupt, the answer (as the run stored it).
        roles = [m.role for m in finished.history]
        assert roles == [Role.ROLE_USER, Role.ROLE_AGENT, Role.ROLE_USER], finished.history
        assert finished.history[0].parts[0].text == "how much?"
        assert MessageToDict(finished.history[2].parts[0].data) == {"amount": 5, "note": "ok"}
        stored = await client.get_task(GetTaskRequest(id=task.id))
        assert stored.status.state == COMPLETED
        assert stored.history == finished.history and stored.artifacts == finished.artifacts
        assert "".join(p.text for p in stored.artifacts[0].parts) == "asking answered"

        # A finished task takes no further messages.
        with pytest.raises(UnsupportedOperationError, match="terminal state"):
            await collect(client.send_message(request(answer({"amount": 6}, task))))
    run = _run(served, task.id)
    assert run["status"] == "succeeded" and run["output"]["amount"] == 5


# ------------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_stream_ends_at_input_required_and_a_streamed_follow_up_goes_on(
    served: Gateway, binding: str
) -> None:
    async with a2a_client(served.url, "ask", binding) as client:
        first = await collect(client.send_message(request(text_message("how many?"))))
        assert first[0].HasField("task")
        task = first[0].task
        assert states(first)[-1] == INPUT_REQUIRED  # the stream closed there
        last = first[-1].status_update
        assert interrupt_in(last.status.message)[1]["request"] == {"question": "how many?"}
        assert streamed_text(first) == "asking "

        with pytest.raises(InvalidParamsError):
            await collect(client.send_message(request(answer({"note": "no amount"}, task))))

        rest = await collect(client.send_message(request(answer({"amount": 7}, task))))
        # The follow-up's stream: the task as of the answer, then what came after it (nothing before).
        assert rest[0].HasField("task") and rest[0].task.status.state == WORKING
        assert rest[0].task.history[-1].role == Role.ROLE_USER
        assert INPUT_REQUIRED not in states(rest)
        assert states(rest)[-1] == COMPLETED
        assert streamed_text(rest) == "asking answered"
        outputs = [
            i.artifact_update.artifact for i in rest if i.artifact_update.artifact.artifact_id == "output"
        ]
        assert MessageToDict(outputs[0].parts[0].data)["amount"] == 7
        with pytest.raises(UnsupportedOperationError):
            await collect(client.send_message(request(answer({"amount": 8}, task))))
        with pytest.raises(UnsupportedOperationError):  # a finished task cannot be subscribed to
            await collect(client.subscribe(SubscribeToTaskRequest(id=task.id)))


async def test_a_subscription_to_a_waiting_task_follows_it_to_its_next_stop(served: Gateway) -> None:
    async with a2a_client(served.url, "ask", streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("later?"))))
        task = item.task
        assert task.status.state == INPUT_REQUIRED
    async with a2a_client(served.url, "ask", "HTTP+JSON") as watcher:
        subscription = watcher.subscribe(SubscribeToTaskRequest(id=task.id))
        snapshot = await anext(subscription)
        assert snapshot.task.status.state == INPUT_REQUIRED  # a snapshot, then what comes next
        async with a2a_client(served.url, "ask", streaming=False) as client:
            (done,) = await collect(client.send_message(request(answer({"amount": 2}, task))))
            assert done.task.status.state == COMPLETED
        rest = [i async for i in subscription]
    assert states(rest)[-1] == COMPLETED and INPUT_REQUIRED not in states(rest)


async def test_a_waiting_task_can_be_cancelled_and_then_takes_no_answer(served: Gateway) -> None:
    async with a2a_client(served.url, "ask", "HTTP+JSON", streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("cancel me?"))))
        task = item.task
        assert task.status.state == INPUT_REQUIRED
        cancelled = await client.cancel_task(CancelTaskRequest(id=task.id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        with pytest.raises(UnsupportedOperationError, match="canceled"):
            await collect(client.send_message(request(answer({"amount": 1}, task))))
    assert _run(served, task.id)["status"] == "cancelled"


# ------------------------------------------------------------------------------------------ pushes


async def test_pushes_fire_at_input_required_and_after_the_answer(cluster: Cluster, tmp_path: Path) -> None:
    gateway = cluster.start_gateway(a2a_push_allow_private="true")
    _worker(cluster, gateway, tmp_path / "worker.log")

    def pushed(state: str) -> list[dict[str, Any]]:
        return [
            body["statusUpdate"]["status"]
            for _, body in receiver.received
            if body.get("statusUpdate", {}).get("status", {}).get("state") == state
        ]

    with Receiver().running() as receiver:
        async with a2a_client(gateway.url, "ask", streaming=False) as client:
            req = request(text_message("pushed?"))
            req.configuration.task_push_notification_config.url = receiver.url
            (item,) = await collect(client.send_message(req))
            task = item.task
            assert task.status.state == INPUT_REQUIRED
            wait_until(lambda: pushed("TASK_STATE_INPUT_REQUIRED"), what="input-required pushed")
            (status,) = pushed("TASK_STATE_INPUT_REQUIRED")
            assert status["message"]["parts"][0] == {"text": "pushed?"}
            assert status["message"]["parts"][1]["data"]["id"] == "interrupt-1"
            (done,) = await collect(client.send_message(request(answer({"amount": 4}, task))))
            assert done.task.status.state == COMPLETED
        wait_until(lambda: pushed("TASK_STATE_COMPLETED"), what="completed pushed after the answer")
        assert len(pushed("TASK_STATE_INPUT_REQUIRED")) == 1  # each update once


# -------------------------------------------------------------------------- durable, handed back


async def test_a_handed_back_durable_run_resumes_as_a_new_attempt(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    gateway = cluster.start_gateway(interrupt_hold="0.5")
    _worker(cluster, gateway, log)
    async with a2a_client(gateway.url, "refund", streaming=False) as client:
        (item,) = await collect(client.send_message(request(data_message({"amount": 30}))))
        task = item.task
        assert task.status.state == INPUT_REQUIRED
        texts, data = interrupt_of(task)
        assert texts == ["approval required: refund"]
        assert data["request"] == {"approval": {"action": "refund", "details": {"amount": 30}}}
        assert data["schema"]["required"] == ["decision"]
        # Past interrupt_hold the worker hands the run back: it waits with no worker, at attempt 2.
        wait_until(lambda: _run(gateway, task.id)["attempt"] == 2, what="the run to be handed back")
        assert (await client.get_task(GetTaskRequest(id=task.id))).status.state == INPUT_REQUIRED
        with pytest.raises(InvalidParamsError) as wrong:
            await collect(client.send_message(request(answer({"decision": "maybe"}, task))))
        assert [e["field"] for e in (wrong.value.data or {})["errors"]] == ["$.decision"]
        (done,) = await collect(client.send_message(request(answer({"decision": "approve"}, task))))
    assert done.task.status.state == COMPLETED, done.task
    assert output_of(done.task) == {"decision": "approve", "payload": None, "attempt": 2}
    # Prepared once (its checkpoint), decided once, by the new attempt the answer started.
    assert log.read_text().splitlines() == [f"prepare {task.id} 1", f"decided {task.id} 2 approve"]
    run = _run(gateway, task.id)
    assert run["status"] == "succeeded" and run["attempt"] == 2


# ---------------------------------------------------------------------------------------- tenants


@asynccontextmanager
async def client_as(base_url: str, agent: str, token: str, binding: str = "JSONRPC") -> AsyncIterator[Client]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        card = await A2ACardResolver(http, f"{base_url}/a2a/{agent}").get_agent_card()
        config = ClientConfig(httpx_client=http, supported_protocol_bindings=[binding], streaming=False)
        client = ClientFactory(config).create(card)
        try:
            yield client
        finally:
            await client.close()


async def test_another_tenants_task_is_not_found(cluster: Cluster, tmp_path: Path) -> None:
    data = cluster.tmp_path / "data"
    acme = cli(data, "keys", "create", "--name", "ann", "--tenant", "acme")
    globex = cli(data, "keys", "create", "--name", "gus", "--tenant", "globex")
    token = cli(data, "workers", "create-token", "--name", "interrupts", "--endpoint", "*")
    gateway = cluster.start_gateway(auth="required")
    _worker(cluster, gateway, tmp_path / "worker.log", token)
    async with client_as(gateway.url, "ask", acme) as ann:
        (item,) = await collect(ann.send_message(request(text_message("mine?"))))
        task = item.task
        assert task.status.state == INPUT_REQUIRED
        for binding in BINDINGS:
            async with client_as(gateway.url, "ask", globex, binding) as gus:
                with pytest.raises(TaskNotFoundError):
                    await collect(gus.send_message(request(answer({"amount": 1}, task))))
                with pytest.raises(TaskNotFoundError):
                    await gus.get_task(GetTaskRequest(id=task.id))
        assert (await ann.get_task(GetTaskRequest(id=task.id))).status.state == INPUT_REQUIRED
        (done,) = await collect(ann.send_message(request(answer({"amount": 1}, task))))
    assert done.task.status.state == COMPLETED
    assert output_of(done.task)["amount"] == 1


# ----------------------------------------------------------------------------------- A2A 0.3


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a2a_0_3_clients_answer_too(served: Gateway, binding: str) -> None:
    async with httpx.AsyncClient() as http:
        card = legacy_card(await A2ACardResolver(http, f"{served.url}/a2a/ask").get_agent_card())
    async with a2a_client(served.url, binding=binding, card=card, streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("old client?"))))
        task = item.task
        assert task.status.state == INPUT_REQUIRED
        texts, data = interrupt_of(task)
        assert texts == ["old client?"] and data["id"] == "interrupt-1"
        # (The SDK's 0.3 HTTP+JSON client does not read the error its server writes, 1.0's shape: it
        # raises its own error with the status, 400.)
        with pytest.raises((InvalidParamsError, A2AClientError)) as wrong:
            await collect(client.send_message(request(answer({"amount": "x"}, task))))
        assert isinstance(wrong.value, InvalidParamsError) or "HTTP Error 400" in str(wrong.value)
    async with a2a_client(served.url, binding=binding, card=card) as client:
        rest = await collect(client.send_message(request(answer({"amount": 3}, task))))
        assert states(rest)[-1] == COMPLETED
        assert streamed_text(rest) == "asking answered"


def test_a2a_0_3_json_rpc_on_the_wire(served: Gateway) -> None:
    message = {
        "kind": "message",
        "messageId": str(uuid.uuid4()),
        "role": "user",
        "parts": [{"kind": "text", "text": "wire?"}],
    }
    with httpx.stream(
        "POST",
        f"{served.url}/a2a/ask",
        json={"jsonrpc": "2.0", "id": 2, "method": "message/stream", "params": {"message": message}},
        timeout=30,
    ) as stream:
        events = [json.loads(line[5:])["result"] for line in stream.iter_lines() if line.startswith("data:")]
    task_id = events[0]["id"]
    last = events[-1]
    # 0.3 marks the update that ends the stream at input-required final.
    assert last["kind"] == "status-update" and last["status"]["state"] == "input-required"
    assert last["final"] is True
    kinds = [part["kind"] for part in last["status"]["message"]["parts"]]
    assert kinds == ["text", "data"] and last["status"]["message"]["role"] == "agent"
    assert last["status"]["message"]["parts"][1]["data"]["request"] == {"question": "wire?"}
    got = rpc(served.url, "/a2a/ask", "tasks/get", {"id": task_id}, version=None).json()["result"]
    assert got["status"]["state"] == "input-required"

    follow_up = {
        "kind": "message",
        "messageId": str(uuid.uuid4()),
        "role": "user",
        "taskId": task_id,
        "parts": [{"kind": "data", "data": {"amount": "lots"}}],
    }
    wrong = rpc(served.url, "/a2a/ask", "message/send", {"message": follow_up}, version=None).json()
    assert wrong["error"]["code"] == -32602, wrong
    follow_up["parts"] = [{"kind": "data", "data": {"amount": 9}}]
    sent = rpc(served.url, "/a2a/ask", "message/send", {"message": follow_up}, version=None).json()
    assert sent["result"]["status"]["state"] == "completed", sent
    again = rpc(served.url, "/a2a/ask", "message/send", {"message": follow_up}, version=None).json()
    assert again["error"]["code"] == -32004, again  # unsupported operation: the task finished


def test_json_rpc_1_0_on_the_wire(served: Gateway) -> None:
    """The fast path answers a new message at input-required; the follow-up takes the SDK's path."""
    params = {"message": {"messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "raw?"}]}}
    task = rpc(served.url, "/a2a/ask", "SendMessage", params).json()["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    parts = task["status"]["message"]["parts"]
    assert parts[0] == {"text": "raw?"} and parts[1]["data"]["id"] == "interrupt-1"
    follow_up = {
        "messageId": "m-2",
        "role": "ROLE_USER",
        "taskId": task["id"],
        "parts": [{"data": {"amount": "x"}}],
    }
    wrong = rpc(served.url, "/a2a/ask", "SendMessage", {"message": follow_up}).json()["error"]
    assert wrong["code"] == -32602
    (info, bad_request) = wrong["data"]
    assert info["metadata"]["errors"][0]["field"] == "$.amount"
    assert bad_request["fieldViolations"][0]["field"] == "$.amount"
    follow_up["parts"] = [{"data": {"amount": 4}}]
    # Through the gateway's own agent: a follow-up names its task, not its skill.
    done = rpc(served.url, "/a2a", "SendMessage", {"message": follow_up}).json()["result"]["task"]
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    assert rpc(served.url, "/a2a/ask", "GetTask", {"id": task["id"]}).json()["result"] == done


# ----------------------------------------------------------------------- the rules, without processes


def test_an_answer_is_the_data_part_or_the_text_when_the_interrupt_takes_text() -> None:
    refund = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}

    def message(*parts: Part) -> Message:
        return Message(message_id="m", role=Role.ROLE_USER, parts=list(parts))

    number = Part()
    number.data.number_value = 5
    obj = Part()
    obj.data.struct_value.update({"amount": 5})
    assert message_answer("i", refund, message(obj, Part(text="ignored"))) == {"amount": 5}  # 5.0 -> 5
    assert message_answer("i", None, message(number)) == 5  # any JSON, not only objects
    for takes in (
        None,
        {},
        {"type": "string"},
        {"enum": ["yes", "no"]},
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
    ):
        assert message_answer("i", takes, message(Part(text="ye"), Part(text="s"))) == "yes", takes
    with pytest.raises(ContentTypeNotSupportedError, match="takes structured input"):
        message_answer("i", refund, message(Part(text="5")))
    with pytest.raises(ContentTypeNotSupportedError):
        message_answer("i", None, message(Part(url="https://example.com/f.pdf")))
    with pytest.raises(InvalidParamsError, match="one data part"):
        message_answer("i", None, message(obj, obj))
    with pytest.raises(InvalidParamsError, match="no parts"):
        message_answer("i", None, message())
    assert not takes_text({"type": "integer"}) and takes_text({"type": ["string", "null"]})


def test_the_interrupt_message_and_the_answer_in_the_tasks_history() -> None:
    assert [p.text for p in interrupt_parts({"id": "a", "request": "Sure?"}) if p.HasField("text")] == [
        "Sure?"
    ]
    approval = interrupt_parts({"id": "r", "request": {"approval": {"action": "refund"}}, "schema": None})
    assert approval[0].text == "approval required: refund"
    silent = interrupt_parts({"id": "x", "request": {"n": 1}})
    assert len(silent) == 1 and MessageToDict(silent[0].data) == {
        "id": "x",
        "request": {"n": 1},
        "schema": None,
    }

    run = Run(
        id="run_1", endpoint="ask", kind=EndpointKind.AGENT, durable=False, caller=ANONYMOUS,
        input=b'{"question":"q"}', status=RunStatus.SUCCEEDED, context_id="c",
        protocol_meta=encode_meta("m-1", "text:question"),
    )  # fmt: skip

    def event(seq: int, kind: str, data: object) -> Event:
        return Event(run_id="run_1", seq=seq, ts=float(seq), kind=kind, data=msgspec.json.encode(data))

    log = [
        event(1, "run.started", {"attempt": 1}),
        event(2, "interrupt", {"id": "interrupt-1", "request": {"question": "how much?"}, "schema": None}),
        event(3, "input", {"id": "interrupt-1", "answer": "five"}),
        event(4, "run.completed", {"output": 5}),
    ]
    task = project(run, log)
    assert [m.role for m in task.history] == [Role.ROLE_USER, Role.ROLE_AGENT, Role.ROLE_USER]
    assert task.history[2].message_id == "run_1-3" and task.history[2].parts[0].text == "five"
    assert task.status.state == COMPLETED
    # As of the answer (what a follow-up's stream starts with): working, the answer in the history.
    held, _ = fold(run, log[:3])
    assert held.status.state == WORKING and held.history == task.history
