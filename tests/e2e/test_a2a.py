"""The A2A front against real gateway and worker processes, through the official a2a-sdk client on both
HTTP bindings (JSON-RPC and HTTP+JSON), and raw HTTP where a test needs to see the wire."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client.card_resolver import A2ACardResolver
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Part,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.a2a_support import (
    BINDINGS,
    WORKER,
    Receiver,
    a2a_client,
    canonical,
    collect,
    data_message,
    get,
    legacy_card,
    output_of,
    request,
    rpc,
    streamed_text,
    text_message,
    wait_state,
)

COMPLETED = TaskState.TASK_STATE_COMPLETED


@pytest.fixture
def served(served_a2a: Gateway) -> Gateway:
    return served_a2a


# ------------------------------------------------------------------------------------------ cards


def test_agent_card_is_generated_from_the_endpoint_spec(served: Gateway) -> None:
    response = httpx.get(f"{served.url}/a2a/total/.well-known/agent-card.json")
    assert response.status_code == 200
    card = response.json()
    assert card["name"] == "total"
    assert card["description"] == "Adds numbers."
    assert card["capabilities"]["streaming"] is True
    assert card["capabilities"]["pushNotifications"] is True
    assert card["defaultInputModes"] == ["application/json"]  # no single string field: data only
    interfaces = {(i["protocolBinding"], i["protocolVersion"]): i["url"] for i in card["supportedInterfaces"]}
    assert interfaces[("JSONRPC", "1.0")] == f"{served.url}/a2a/total"
    assert interfaces[("HTTP+JSON", "1.0")] == f"{served.url}/a2a/total"
    assert ("JSONRPC", "0.3") in interfaces
    (skill,) = card["skills"]
    assert skill["id"] == "total" and skill["examples"] == ['{"numbers":[1,2,3]}']
    (extension,) = card["capabilities"]["extensions"]
    schemas = extension["params"]["skills"]["total"]
    assert schemas["inputSchema"]["required"] == ["numbers"]
    assert set(schemas["outputSchema"]["properties"]) == {"label", "total"}
    assert "securitySchemes" not in card  # no authentication is configured
    ask = httpx.get(f"{served.url}/a2a/ask/.well-known/agent-card.json").json()
    assert ask["defaultInputModes"] == ["text/plain", "application/json"]


def test_cards_carry_validators_and_answer_304(served: Gateway) -> None:
    url = f"{served.url}/a2a/ask/.well-known/agent-card.json"
    first = httpx.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"] == "public, max-age=60"
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert httpx.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert httpx.get(f"{served.url}/a2a/nope/.well-known/agent-card.json").status_code == 404


def test_gateway_card_lists_every_agent_as_a_skill(served: Gateway) -> None:
    card = httpx.get(f"{served.url}/.well-known/agent-card.json").json()
    assert {s["id"] for s in card["skills"]} == {"ask", "total", "slow", "broken"}
    assert {i["url"] for i in card["supportedInterfaces"]} == {f"{served.url}/a2a"}


async def test_gateway_agent_routes_by_skill(served: Gateway) -> None:
    async with a2a_client(served.url, streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("hi", skill="ask"))))
        assert item.task.status.state == COMPLETED
        assert output_of(item.task)["answer"] == "You asked: hi"
        with pytest.raises(InvalidParamsError, match="skill"):
            await collect(client.send_message(request(text_message("hi"))))


# ----------------------------------------------------------------------------------- messages


@pytest.mark.parametrize("binding", BINDINGS)
async def test_streaming_message_becomes_task_updates(served: Gateway, binding: str) -> None:
    async with a2a_client(served.url, "ask", binding) as client:
        items = await collect(client.send_message(request(text_message("what is up"))))
    assert items[0].HasField("task")  # the stream starts with the task
    task_id = items[0].task.id
    assert task_id.startswith("run_")
    assert items[0].task.history[0].parts[0].text == "what is up"
    assert streamed_text(items) == "You asked: what is up"
    appended = [
        i.artifact_update.append for i in items if i.artifact_update.artifact.artifact_id == "response"
    ]
    assert appended[0] is False and all(appended[1:])
    progress = [i for i in items if i.status_update.status.message.parts]
    assert progress[0].status_update.status.message.parts[0].text == "answered"
    assert items[-1].status_update.status.state == COMPLETED
    outputs = [
        i.artifact_update.artifact for i in items if i.artifact_update.artifact.artifact_id == "output"
    ]
    (output,) = outputs
    assert output.parts[1].text == '{"answer":"You asked: what is up","words":5}'
    # The same task through REST: tasks are runs.
    run = (await get(f"{served.url}/v1/runs/{task_id}")).json()
    assert run["status"] == "succeeded" and run["output"]["answer"] == "You asked: what is up"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_blocking_message_returns_the_finished_task(served: Gateway, binding: str) -> None:
    async with a2a_client(served.url, "total", binding, streaming=False) as client:
        context = str(uuid.uuid4())
        (item,) = await collect(client.send_message(request(data_message({"numbers": [1, 2, 39]}, context))))
        task = item.task
        assert task.status.state == COMPLETED and task.context_id == context
        assert output_of(task) == {"label": "sum", "total": 42.0}
        again = await client.get_task(GetTaskRequest(id=task.id))
        assert again.artifacts == task.artifacts and again.status.state == COMPLETED
        short = await client.get_task(GetTaskRequest(id=task.id, history_length=0))
        assert len(short.history) == 0 and len(again.history) == 1
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id="run_00000000000000000000000000000000"))


@pytest.mark.parametrize("binding", BINDINGS)
async def test_input_that_does_not_fit_is_a_precise_error(served: Gateway, binding: str) -> None:
    async with a2a_client(served.url, "total", binding, streaming=False) as client:
        with pytest.raises(ContentTypeNotSupportedError):
            await collect(client.send_message(request(text_message("1 2 3"))))
        with pytest.raises(InvalidParamsError, match="numbers"):
            await collect(client.send_message(request(data_message({"numbers": "nope"}))))
        file_message = text_message("x")
        file_message.parts[0].CopyFrom(Part(url="https://example.com/a.pdf", media_type="application/pdf"))
        with pytest.raises(ContentTypeNotSupportedError):
            await collect(client.send_message(request(file_message)))
        bad_modes = request(data_message({"numbers": [1]}))
        bad_modes.configuration.accepted_output_modes.append("image/png")
        with pytest.raises(ContentTypeNotSupportedError):
            await collect(client.send_message(bad_modes))


async def test_failure_carries_the_message(served: Gateway) -> None:
    async with a2a_client(served.url, "broken", streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("boom"))))
    assert item.task.status.state == TaskState.TASK_STATE_FAILED
    assert item.task.status.message.parts[0].text == "ValueError: boom"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_non_blocking_send_then_get_and_list_by_context(served: Gateway, binding: str) -> None:
    context = str(uuid.uuid4())
    async with a2a_client(served.url, "slow", binding, streaming=False) as client:
        message = data_message({"steps": 3, "delay": 0.1}, context)
        (item,) = await collect(client.send_message(request(message, blocking=False)))
        assert item.task.status.state in (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)
        second = data_message({"steps": 1, "delay": 0.0}, context)
        (other,) = await collect(client.send_message(request(second)))
        done = await wait_state(client, item.task.id, COMPLETED)
        assert streamed_text([]) == "" and output_of(done) == {"steps": 3.0}
        listed = await client.list_tasks(ListTasksRequest(context_id=context, include_artifacts=True))
        assert [t.id for t in listed.tasks] == [other.task.id, item.task.id]  # newest first
        assert listed.total_size == 2 and listed.tasks[1].artifacts
        paged = await client.list_tasks(ListTasksRequest(context_id=context, page_size=1))
        assert [t.id for t in paged.tasks] == [other.task.id] and paged.next_page_token
        rest = await client.list_tasks(
            ListTasksRequest(context_id=context, page_size=1, page_token=paged.next_page_token)
        )
        assert [t.id for t in rest.tasks] == [item.task.id]
        completed = await client.list_tasks(ListTasksRequest(context_id=context, status=COMPLETED))
        assert len(completed.tasks) == 2


@pytest.mark.parametrize("binding", BINDINGS)
async def test_cancel_reaches_the_worker(served: Gateway, binding: str, tmp_path: Path) -> None:
    marker = tmp_path / f"cancelled-{binding.replace('+', '')}"
    async with a2a_client(served.url, "slow", binding) as client:
        message = data_message({"steps": 200, "delay": 0.05, "marker": str(marker)})
        stream = client.send_message(request(message))
        items = await collect(stream, limit=4)  # task, working, first tokens
        task_id = items[0].task.id
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        await stream.aclose()
        # (the file exists a moment before its text is written)
        wait_until(lambda: marker.exists() and marker.read_text() != "", what="the worker to see the cancel")
        assert marker.read_text() == "cancelled"
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=task_id))
    assert (await get(f"{served.url}/v1/runs/{task_id}")).json()["status"] == "cancelled"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_resubscribe_loses_no_events(served: Gateway, binding: str) -> None:
    async with a2a_client(served.url, "slow", binding) as client:
        stream = client.send_message(request(data_message({"steps": 8, "delay": 0.1})))
        first = await collect(stream, limit=4)
        await stream.aclose()  # the client lost its stream
        task_id = first[0].task.id
        await asyncio.sleep(0.3)
        rest = await collect(client.subscribe(SubscribeToTaskRequest(id=task_id)))
    assert rest[0].HasField("task")  # a snapshot first, then what came after it
    assert rest[-1].status_update.status.state == COMPLETED
    expected = "".join(f"step {n};" for n in range(1, 9))
    assert streamed_text(rest) == expected
    assert streamed_text(first + rest) == expected


async def test_subscribe_to_a_finished_task_is_unsupported(served: Gateway) -> None:
    async with a2a_client(served.url, "ask") as client:
        items = await collect(client.send_message(request(text_message("x"))))
        with pytest.raises(UnsupportedOperationError):
            await collect(client.subscribe(SubscribeToTaskRequest(id=items[0].task.id)))


async def test_follow_up_message_to_a_task_is_refused_clearly(served: Gateway) -> None:
    async with a2a_client(served.url, "ask", streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("x"))))
        follow_up = text_message("more", context_id=item.task.context_id)
        follow_up.task_id = item.task.id
        with pytest.raises(UnsupportedOperationError):
            await collect(client.send_message(request(follow_up)))


async def test_extended_card_is_not_offered_without_authentication(served: Gateway) -> None:
    async with a2a_client(served.url, "ask") as client:
        # The card says there is none, so the SDK client answers with the public card...
        card = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
        assert card.name == "ask" and not card.capabilities.extended_agent_card
    # ... and asking anyway is an unsupported operation on both bindings.
    response = rpc(served.url, "/a2a/ask", "GetExtendedAgentCard", {})
    assert response.json()["error"]["code"] == -32004
    rest = await get(f"{served.url}/a2a/ask/extendedAgentCard", **{"A2A-Version": "1.0"})
    assert rest.status_code == 400


async def test_tasks_of_one_agent_are_not_visible_through_another(served: Gateway) -> None:
    async with a2a_client(served.url, "ask", streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("x"))))
    async with a2a_client(served.url, "total", streaming=False) as client:
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=item.task.id))


# ------------------------------------------------------------------------------------- errors


def test_bad_json_rpc_never_yields_a_5xx(served: Gateway) -> None:
    url = f"{served.url}/a2a/ask"
    cases = {
        b"{not json": -32700,
        b'{"jsonrpc": "2.0", "id": 1}': -32600,
        b'{"jsonrpc": "1.0", "id": 1, "method": "GetTask", "params": {}}': -32600,
        b'[{"jsonrpc": "2.0", "id": 1, "method": "GetTask"}]': -32600,
        b'{"jsonrpc": "2.0", "id": 1, "method": "NoSuchMethod", "params": {}}': -32601,
        b'{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": 5, "historyLength": "x"}}': -32602,
        b'{"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "run_x"}}': -32001,
        b'{"jsonrpc": "2.0", "id": 1, "method": "CancelTask", "params": {"id": "run_x"}}': -32001,
        b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {}}}': -32602,
    }
    for body, code in cases.items():
        response = httpx.post(
            url, content=body, headers={"A2A-Version": "1.0", "Content-Type": "application/json"}
        )
        assert response.status_code == 200, body
        assert response.json()["error"]["code"] == code, (body, response.json())


def test_version_not_supported(served: Gateway) -> None:
    response = rpc(served.url, "/a2a/ask", "GetTask", {"id": "run_x"}, version="2.0")
    assert response.json()["error"]["code"] == -32009


def test_http_json_errors_are_4xx(served: Gateway) -> None:
    headers = {"A2A-Version": "1.0"}
    missing = httpx.get(f"{served.url}/a2a/ask/tasks/run_x", headers=headers)
    assert missing.status_code == 404
    bad = httpx.post(
        f"{served.url}/a2a/ask/message:send",
        content=b"{nope",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert 400 <= bad.status_code < 500


def test_oversized_body_is_refused(served: Gateway) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"x":"' + b"a" * 1_100_000 + b'"}}'
    response = httpx.post(f"{served.url}/a2a/ask", content=body, headers={"A2A-Version": "1.0"})
    assert response.status_code == 200
    assert response.json()["error"]["code"] == -32600
    rest = httpx.post(f"{served.url}/a2a/ask/message:send", content=body, headers={"A2A-Version": "1.0"})
    assert rest.status_code == 413


# ---------------------------------------------------------------------------------- 0.3 clients


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a2a_0_3_clients_keep_working(served: Gateway, binding: str) -> None:
    card = (await get(f"{served.url}/a2a/ask/.well-known/agent-card.json")).json()
    assert card["protocolVersion"] == "0.3" and card["url"] == f"{served.url}/a2a/ask"  # 0.3 card fields
    async with httpx.AsyncClient() as http:
        full = await A2ACardResolver(http, f"{served.url}/a2a/ask").get_agent_card()
    async with a2a_client(served.url, binding=binding, card=legacy_card(full)) as client:
        items = await collect(client.send_message(request(text_message("old"))))
        assert streamed_text(items) == "You asked: old"
        task_id = next(i.task.id for i in items if i.HasField("task"))
        task = await client.get_task(GetTaskRequest(id=task_id))
        assert task.status.state == COMPLETED
    async with a2a_client(served.url, binding=binding, card=legacy_card(full), streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("blocking"))))
        assert output_of(item.task)["answer"] == "You asked: blocking"


def test_a2a_0_3_json_rpc_methods_on_the_wire(served: Gateway) -> None:
    message = {
        "kind": "message",
        "messageId": str(uuid.uuid4()),
        "role": "user",
        "parts": [{"kind": "text", "text": "hey"}],
    }
    sent = rpc(served.url, "/a2a/ask", "message/send", {"message": message}, version=None).json()
    task = sent["result"]
    assert task["kind"] == "task" and task["status"]["state"] == "completed"
    got = rpc(served.url, "/a2a/ask", "tasks/get", {"id": task["id"]}, version=None).json()
    assert got["result"]["id"] == task["id"]
    cancel = rpc(served.url, "/a2a/ask", "tasks/cancel", {"id": task["id"]}, version=None).json()
    assert cancel["error"]["code"] == -32002  # not cancelable: it finished
    missing = rpc(served.url, "/a2a/ask", "tasks/resubscribe", {"id": "run_x"}, version=None)
    assert missing.status_code == 200 and "-32001" in missing.text
    with httpx.stream(
        "POST",
        f"{served.url}/a2a/ask",
        json={"jsonrpc": "2.0", "id": 2, "method": "message/stream", "params": {"message": message}},
    ) as stream:
        text = "".join(stream.iter_text())
    assert '"state":"completed"' in text.replace(" ", "")


# ------------------------------------------------------------------------------- push and restart


async def test_push_config_refuses_loopback_by_default(served: Gateway) -> None:
    async with a2a_client(served.url, "slow", streaming=False) as client:
        (item,) = await collect(client.send_message(request(data_message({"steps": 1, "delay": 0}))))
        config = TaskPushNotificationConfig(task_id=item.task.id, url="http://127.0.0.1:9/hook")
        with pytest.raises(InvalidParamsError):
            await client.create_task_push_notification_config(config)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_push_notifications_reach_a_local_receiver(cluster: Cluster, binding: str) -> None:
    gateway = cluster.start_gateway(a2a_push_allow_private="true", a2a_push_backoff="0.05")
    cluster.start_worker(WORKER)
    with Receiver(fail_first=1).running() as receiver:
        async with a2a_client(gateway.url, "slow", binding, streaming=False) as client:
            message = data_message({"steps": 2, "delay": 0.3})
            (item,) = await collect(client.send_message(request(message, blocking=False)))
            task_id = item.task.id
            config = TaskPushNotificationConfig(task_id=task_id, id="hook1", url=receiver.url, token="secret")
            config.authentication.scheme = "Bearer"
            config.authentication.credentials = "push-token"
            created = await client.create_task_push_notification_config(config)
            assert created.id == "hook1" and created.url == receiver.url
            got = await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=task_id, id="hook1")
            )
            assert got.token == "secret"
            listed = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            assert [c.id for c in listed.configs] == ["hook1"]
            await wait_state(client, task_id, COMPLETED)

            def final_received() -> bool:
                return any(
                    body.get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED"
                    for _, body in receiver.received
                )

            wait_until(final_received, what="the completed status pushed")
            headers, _ = receiver.received[-1]
            assert headers["X-A2A-Notification-Token"] == "secret"
            assert headers["Authorization"] == "Bearer push-token"
            assert receiver.attempts > len(receiver.received)  # the first delivery failed and was retried
            outputs = [
                b
                for _, b in receiver.received
                if b.get("artifactUpdate", {}).get("artifact", {}).get("artifactId") == "output"
            ]
            assert outputs and outputs[0]["artifactUpdate"]["artifact"]["parts"][0]["data"] == {"steps": 2}
            await client.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="hook1")
            )
            listed = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            assert not listed.configs


async def test_push_configs_survive_a_gateway_restart_and_pushes_go_on(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(a2a_push_allow_private="true")
    cluster.start_worker(WORKER)
    with Receiver().running() as receiver:
        async with a2a_client(gateway.url, "slow", streaming=False) as client:
            # Outlasts the restart by far, even on a loaded machine. Its first push may well be its last
            # (a config created after the run started misses the "working" status; token chunks are not
            # pushed), so nothing is awaited here but the stored config.
            message = data_message({"steps": 150, "delay": 0.1})
            (item,) = await collect(client.send_message(request(message, blocking=False)))
            task_id = item.task.id
            config = TaskPushNotificationConfig(task_id=task_id, id="hook1", url=receiver.url, token="t1")
            await client.create_task_push_notification_config(config)
        gateway.kill()
        cluster.restart_gateway(gateway)  # the worker keeps the run and reconnects within its lease
        wait_until(lambda: gateway.output().count("(a2a) connected") == 2, what="the worker to reconnect")
        assert (
            "1 run(s) kept" in gateway.output()
        )  # still running: what comes now is pushed after the restart
        async with a2a_client(gateway.url, "slow", streaming=False) as client:
            listed = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            assert [(c.id, c.url, c.token) for c in listed.configs] == [("hook1", receiver.url, "t1")]
            await wait_state(client, task_id, COMPLETED, within=30)
        wait_until(
            lambda: any(
                b.get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED"
                for _, b in receiver.received
            ),
            what="the completed status pushed after the restart",
        )
        assert all(headers["X-A2A-Notification-Token"] == "t1" for headers, _ in receiver.received)
        # The config goes with its run: retention deletes both (checked in the store contract tests).


async def test_push_config_in_the_message_configuration(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(a2a_push_allow_private="true")
    cluster.start_worker(WORKER)
    with Receiver().running() as receiver:
        async with a2a_client(gateway.url, "ask", streaming=False) as client:
            req = request(text_message("pushed"), blocking=False)
            req.configuration.task_push_notification_config.url = receiver.url
            (item,) = await collect(client.send_message(req))
            await wait_state(client, item.task.id, COMPLETED)
        wait_until(
            lambda: any(
                "statusUpdate" in b and b["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
                for _, b in receiver.received
            ),
            what="push",
        )


async def test_tasks_survive_a_gateway_restart(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker(WORKER)
    context = str(uuid.uuid4())
    async with a2a_client(gateway.url, "ask", streaming=False) as client:
        (item,) = await collect(client.send_message(request(text_message("durable", context))))
    gateway.stop()
    cluster.restart_gateway(gateway)
    wait_until(lambda: "ask" in gateway.endpoints(), what="the worker to reconnect")
    async with a2a_client(gateway.url, "ask", streaming=False) as client:
        task = await client.get_task(GetTaskRequest(id=item.task.id))
        assert task.status.state == COMPLETED and task.context_id == context
        assert output_of(task)["answer"] == "You asked: durable"
        assert task.history[0].parts[0].text == "durable"
        listed = await client.list_tasks(ListTasksRequest(context_id=context))
        assert [t.id for t in listed.tasks] == [item.task.id]


async def test_resubscribe_after_a_gateway_restart(cluster: Cluster) -> None:
    # A lease long enough for a restart on a busy machine (the worker's reconnect backs off up to 5 s): the
    # run must stay with its worker, not be retried from the start.
    gateway = cluster.start_gateway(lease_ttl="20")
    cluster.start_worker(WORKER)
    async with a2a_client(gateway.url, "slow", streaming=False) as client:
        message = data_message({"steps": 80, "delay": 0.1})  # outlasts the restart, even on a busy machine
        (item,) = await collect(client.send_message(request(message, blocking=False)))
    gateway.stop()
    cluster.restart_gateway(gateway)  # the worker keeps the run and reconnects within its lease
    wait_until(lambda: "slow" in gateway.endpoints(), what="the worker to reconnect")
    async with a2a_client(gateway.url, "slow") as client:
        items = await collect(client.subscribe(SubscribeToTaskRequest(id=item.task.id)))
    assert items[0].HasField("task")
    assert items[-1].status_update.status.state == COMPLETED
    assert streamed_text(items) == "".join(f"step {n};" for n in range(1, 81))


# ------------------------------------------------------------------------------------ the fast path
# A new message over JSON-RPC with "A2A-Version: 1.0" is served by the front's fast path (fast.py);
# "1.0.0" is the same version to the SDK but not a request the fast path takes, so it goes through the
# SDK's handler. Both must answer the same, once the run id and the timestamps are set aside: errors byte
# for byte, results as the same JSON (the members of a data part's object may come in another order).

RUN_ID = re.compile(r"run_[0-9A-Za-z]{32}")
STAMP = re.compile(r'"timestamp": ?"[^"]*"')


def _both_ways(url: str, method: str, params: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    body = {"jsonrpc": "2.0", "id": "req-1", "method": method, "params": params}
    fast, sdk = (
        httpx.post(url, json=body, headers={"A2A-Version": version}, timeout=30)
        for version in ("1.0", "1.0.0")
    )
    return fast, sdk


def _normal(response: httpx.Response) -> Any:
    """The answer with run ids and timestamps set aside, as JSON (``canonical``: the members of a data
    part's object may come in another order), an SSE stream's events line by line."""
    text = STAMP.sub('"timestamp":"T"', RUN_ID.sub("RUN", response.text))
    if not response.headers["content-type"].startswith("text/event-stream"):
        answer = json.loads(text)
        return text if "error" in answer else canonical(answer)  # an error: its bytes
    return [
        ("data", canonical(json.loads(line[5:]))) if line.startswith("data:") else line
        for line in text.splitlines()
    ]


def _assert_same(fast: httpx.Response, sdk: httpx.Response) -> None:
    assert fast.status_code == sdk.status_code
    assert fast.headers["content-type"] == sdk.headers["content-type"]
    assert _normal(fast) == _normal(sdk)


def _message(parts: list[dict[str, Any]], context: str, **metadata: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"messageId": "m-1", "contextId": context, "role": "ROLE_USER", "parts": parts}
    if metadata:
        message["metadata"] = metadata
    return message


@pytest.mark.parametrize("method", ["SendMessage", "SendStreamingMessage"])
def test_fast_path_answers_what_the_sdk_answers(served: Gateway, method: str) -> None:
    context = str(uuid.uuid4())
    cases = [
        # tokens, a progress message (so a history), the output
        ("/a2a/ask", {"message": _message([{"text": "what is up"}], context)}),
        (
            "/a2a/ask",
            {"message": _message([{"text": "short"}], context), "configuration": {"historyLength": 1}},
        ),
        (
            "/a2a/ask",
            {"message": _message([{"text": "none"}], context), "configuration": {"historyLength": 0}},
        ),
        ("/a2a/total", {"message": _message([{"data": {"numbers": [1, 2, 39]}}], context)}),
        ("/a2a", {"message": _message([{"data": {"numbers": [4]}}], context, skill="total")}),
        ("/a2a/broken", {"message": _message([{"data": {"message": "boom"}}], context)}),
    ]
    for path, params in cases:
        fast, sdk = _both_ways(served.url + path, method, params)
        _assert_same(fast, sdk)
        assert "result" in fast.text and "TASK_STATE_" in fast.text, (path, fast.text)


@pytest.mark.parametrize("method", ["SendMessage", "SendStreamingMessage"])
def test_fast_path_errors_are_the_sdks(served: Gateway, method: str) -> None:
    cases = [
        ("/a2a/total", {"message": _message([{"text": "1 2 3"}], "c")}, -32005),
        ("/a2a/total", {"message": _message([{"data": {"numbers": "nope"}}], "c")}, -32602),
        ("/a2a/total", {"message": _message([{"data": {"numbers": [1]}}, {"data": {}}], "c")}, -32602),
        ("/a2a/total", {"message": _message([{"url": "https://example.com/a.pdf"}], "c")}, -32005),
        (
            "/a2a/total",
            {
                "message": _message([{"data": {"numbers": [1]}}], "c"),
                "configuration": {"acceptedOutputModes": ["image/png"]},
            },
            -32005,
        ),
        ("/a2a", {"message": _message([{"data": {"numbers": [1]}}], "c", skill="nobody")}, -32602),
        ("/a2a", {"message": _message([{"data": {"numbers": [1]}}], "c")}, -32602),  # no skill named
        ("/a2a/nobody", {"message": _message([{"text": "hi"}], "c")}, -32602),
        ("/a2a/ask", {"message": _message([{"text": "hi"}], "x" * 201)}, -32602),
    ]
    for path, params, code in cases:
        fast, sdk = _both_ways(served.url + path, method, params)
        _assert_same(fast, sdk)
        assert fast.json()["error"]["code"] == code, (path, fast.json())
        assert fast.json()["id"] == "req-1"


async def test_fast_path_tasks_are_tasks_like_any_other(served: Gateway) -> None:
    """A task the fast path served is seen, listed, subscribed to and cancelled like the SDK's."""
    context = str(uuid.uuid4())
    answer = rpc(
        served.url, "/a2a/ask", "SendMessage", {"message": _message([{"text": "hi"}], context)}
    ).json()
    task = answer["result"]["task"]
    got = rpc(served.url, "/a2a/ask", "GetTask", {"id": task["id"]}).json()["result"]
    assert got == task
    listed = rpc(served.url, "/a2a/ask", "ListTasks", {"contextId": context, "includeArtifacts": True}).json()
    assert [(t["id"], t["status"]) for t in listed["result"]["tasks"]] == [(task["id"], task["status"])]
    # a stream being served by the fast path, cancelled from another client
    async with a2a_client(served.url, "slow", "JSONRPC") as client:
        stream = client.send_message(request(data_message({"steps": 50, "delay": 0.1})))
        first = await anext(stream)
        task_id = first.task.id
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        rest = [item async for item in stream]
    assert rest[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED
    assert (await get(f"{served.url}/v1/runs/{task_id}")).json()["status"] == "cancelled"


def test_a_tasks_run_carries_its_context_and_a_resent_message_id_starts_another_task(served: Gateway) -> None:
    context = str(uuid.uuid4())
    params = {"message": _message([{"text": "hi"}], context)}
    first = rpc(served.url, "/a2a/ask", "SendMessage", params).json()["result"]["task"]
    # A2A leaves deduplicating by messageId optional (spec 3.3.1): the same message id is a new task.
    again = rpc(served.url, "/a2a/ask", "SendMessage", params).json()["result"]["task"]
    assert first["id"] != again["id"] and first["contextId"] == again["contextId"] == context
    assert first["history"][0]["messageId"] == "m-1"
    run = httpx.get(f"{served.url}/v1/runs/{first['id']}", timeout=10).json()
    assert run["context_id"] == context
    rest_run = httpx.post(f"{served.url}/v1/agents/ask/runs", json={"question": "hi"}, timeout=10).json()
    assert "context_id" not in httpx.get(f"{served.url}/v1/runs/{rest_run['run_id']}", timeout=10).json()
    listed = rpc(served.url, "/a2a/ask", "ListTasks", {"contextId": context}).json()["result"]
    assert [t["id"] for t in listed["tasks"]] == [again["id"], first["id"]]
    assert listed["totalSize"] == 2
    # On the gateway's agent too (every agent endpoint), and nothing in another context.
    assert rpc(served.url, "/a2a", "ListTasks", {"contextId": context}).json()["result"]["totalSize"] == 2
    other = rpc(served.url, "/a2a/ask", "ListTasks", {"contextId": str(uuid.uuid4())}).json()["result"]
    assert other.get("tasks", []) == [] and other.get("totalSize", 0) == 0


def test_cards_name_the_public_url_when_one_is_set(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(public_url="https://agents.example.com")
    cluster.start_worker(WORKER)
    card = httpx.get(f"{gateway.url}/a2a/ask/.well-known/agent-card.json", timeout=10).json()
    assert {i["url"] for i in card["supportedInterfaces"]} == {"https://agents.example.com/a2a/ask"}
