"""Losing processes: kill -9 of a worker mid-run, gateway restarts, draining, and rogue workers."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import grpc
import grpc.aio
import httpx

from fastagentic.v1 import worker_pb2 as pb
from fastagentic.v1 import worker_pb2_grpc as pb_grpc
from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.follow import Follower, run_status
from tests.e2e.test_rest import assert_gap_free, sse_events


def test_worker_killed_mid_run_resumes_on_another_worker_from_its_checkpoint(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    first = cluster.start_worker()
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 8, "delay": 0.15}).json()["run_id"]
        follower = Follower([gateway], run_id)
        follower.start()
        wait_until(lambda: run_status(gateway, run_id).get("last_seq", 0) >= 7, what="3 checkpoints")
        first.kill()
        second = cluster.start_worker()
        final = wait_until(
            lambda: (r := run_status(gateway, run_id)).get("status") in {"succeeded", "failed"} and r,
            timeout=30,
            what="the run to finish on the second worker",
        )
        follower.join(15)
    assert final["status"] == "succeeded", final
    assert final["attempt"] == 2
    output = final["output"]
    assert output["attempt"] == 2 and output["resumed_from"] >= 3 and output["completed"] == 8
    assert output["worker_pid"] == second.proc.pid  # type: ignore[union-attr]
    events = follower.events
    assert_gap_free(events)
    assert [e["data"]["attempt"] for e in events if e["kind"] == "run.started"] == [1, 2]
    assert events[-1]["kind"] == "run.completed"
    assert sse_events(httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10)) == events


def test_run_fails_after_max_attempts_when_workers_keep_dying(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(max_attempts="1")
    worker = cluster.start_worker()
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 50, "delay": 0.1}).json()["run_id"]
        wait_until(lambda: run_status(gateway, run_id).get("status") == "running", what="running")
        worker.kill()
        final = wait_until(
            lambda: (r := run_status(gateway, run_id)).get("status") == "failed" and r,
            timeout=15,
            what="failure",
        )
    assert final["error"]["type"] == "WorkerLost"
    assert "1 attempt" in final["error"]["message"]


def test_gateway_restart_loses_no_accepted_durable_run(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker()
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 10, "delay": 0.2}).json()["run_id"]
        follower = Follower([gateway], run_id)
        follower.start()
        wait_until(lambda: run_status(gateway, run_id).get("last_seq", 0) >= 4, what="progress")
    gateway.kill()
    cluster.restart_gateway(gateway)
    final = wait_until(
        lambda: (r := run_status(gateway, run_id)).get("status") in {"succeeded", "failed"} and r,
        timeout=40,
        what="the run to finish after the restart",
    )
    follower.join(15)
    assert final["status"] == "succeeded", final
    assert final["output"]["completed"] == 10
    events = follower.events
    assert_gap_free(events)
    assert events[-1]["kind"] == "run.completed"
    assert sse_events(httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10)) == events


def test_after_a_restart_with_runs_in_flight_unknown_endpoints_answer_503_until_workers_are_due(
    cluster: Cluster,
) -> None:
    gateway = cluster.start_gateway()
    worker = cluster.start_worker()
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 50, "delay": 0.2}).json()["run_id"]
        wait_until(lambda: run_status(gateway, run_id).get("status") == "running", what="the run to start")
    worker.kill()  # its worker will not come back...
    gateway.kill()
    cluster.restart_gateway(gateway)
    with gateway.client() as client:
        # ...but the gateway cannot know that yet: the endpoint may just not have re-registered.
        early = client.post("/v1/agents/steps/runs", json={"steps": 1})
        assert early.status_code == 503, early.text
        assert early.json()["type"] == "no_worker"
        assert "workers are reconnecting" in early.json()["message"]
        assert early.headers["Retry-After"]
        # Once the workers had their lease to come back, an unknown endpoint is unknown.
        late = wait_until(
            lambda: (r := client.post("/v1/agents/steps/runs", json={"steps": 1})).status_code == 404 and r,
            timeout=15,
            what="404 once the lease passed",
        )
        assert late.json()["type"] == "not_found"


def test_queued_runs_survive_a_gateway_restart(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    worker = cluster.start_worker("tests.workers.basic:app", "--slots", "1")
    with gateway.client() as client:
        busy = client.post("/v1/agents/steps/runs", json={"steps": 30, "delay": 0.1}).json()["run_id"]
        waiting = client.post("/v1/agents/steps/runs", json={"steps": 1, "delay": 0}).json()["run_id"]
        wait_until(lambda: run_status(gateway, busy).get("status") == "running", what="first run")
        assert run_status(gateway, waiting)["status"] == "queued"
    worker.kill()
    gateway.stop()
    cluster.restart_gateway(gateway)
    cluster.start_worker()
    for run_id in (busy, waiting):
        final = wait_until(
            lambda run_id=run_id: (r := run_status(gateway, run_id)).get("status") == "succeeded" and r,
            timeout=40,
            what=f"{run_id} to finish",
        )
        assert final["output"]["completed"] in {30, 1}


def test_sigterm_drains_a_worker_finishing_its_runs(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    worker = cluster.start_worker()
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 5, "delay": 0.1}).json()["run_id"]
        wait_until(lambda: run_status(gateway, run_id).get("status") == "running", what="running")
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        final = client.get(f"/v1/runs/{run_id}").json()
    assert final["status"] == "succeeded" and final["attempt"] == 1


def test_sigterm_hands_back_runs_that_outlast_the_grace_period(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    draining = cluster.start_worker("tests.workers.basic:app", "--grace", "0.5")
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 12, "delay": 0.2}).json()["run_id"]
        wait_until(lambda: run_status(gateway, run_id).get("last_seq", 0) >= 4, what="progress")
        draining.signal(signal.SIGTERM)
        assert draining.wait(20) == 0
        handed_back = client.get(f"/v1/runs/{run_id}").json()
        assert handed_back["status"] == "queued" and handed_back["attempt"] == 2
        cluster.start_worker()
        final = wait_until(
            lambda: (r := run_status(gateway, run_id)).get("status") == "succeeded" and r,
            timeout=30,
            what="finish",
        )
    assert final["output"]["resumed_from"] >= 1


def test_a_run_handed_back_by_a_draining_worker_keeps_all_its_retries(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(max_attempts="2")
    draining = cluster.start_worker("tests.workers.basic:app", "--grace", "0.3")
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 40, "delay": 0.2}).json()["run_id"]
        wait_until(lambda: run_status(gateway, run_id).get("last_seq", 0) >= 3, what="progress")
        draining.signal(signal.SIGTERM)
        assert draining.wait(20) == 0
        assert client.get(f"/v1/runs/{run_id}").json()["attempt"] == 2  # handed back, not counted
        lost = cluster.start_worker()
        wait_until(
            lambda: (r := run_status(gateway, run_id)).get("attempt") == 2 and r.get("status") == "running",
            what="attempt 2 running",
        )
        lost.kill()
        # Attempt 2 is the run's first counted failure: with max_attempts 2 it gets one more attempt.
        wait_until(
            lambda: run_status(gateway, run_id).get("attempt") == 3, timeout=20, what="requeued as attempt 3"
        )
        cluster.start_worker()
        final = wait_until(
            lambda: (r := run_status(gateway, run_id)).get("status") in {"succeeded", "failed"} and r,
            timeout=40,
            what="finish",
        )
    assert final["status"] == "succeeded", final
    assert final["attempt"] == 3


def test_worker_reconnects_and_keeps_its_run_when_the_gateway_comes_back_in_time(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(lease_ttl="8", heartbeat_interval="0.3")
    worker = cluster.start_worker()
    with gateway.client() as client:
        run_id = client.post("/v1/agents/steps/runs", json={"steps": 12, "delay": 0.2}).json()["run_id"]
        wait_until(lambda: run_status(gateway, run_id).get("last_seq", 0) >= 3, what="progress")
    gateway.kill()
    cluster.restart_gateway(gateway)
    final = wait_until(
        lambda: (r := run_status(gateway, run_id)).get("status") == "succeeded" and r,
        timeout=30,
        what="finish",
    )
    assert final["attempt"] == 1  # kept, not requeued
    assert worker.alive
    events = sse_events(httpx.get(f"{gateway.url}/v1/runs/{run_id}/events", timeout=10))
    assert_gap_free(events)
    assert [e["data"]["text"] for e in events if e["kind"] == "token"] == [f"step {i} " for i in range(1, 13)]


# ---------------------------------------------------------------------------- rogue workers


def _hello(worker_id: str = "rogue", **spec: Any) -> pb.WorkerMessage:
    endpoint = pb.EndpointSpec(
        name=spec.get("name", "add"),
        kind=pb.ENDPOINT_KIND_TOOL,
        input_schema=spec.get("input_schema", b'{"type":"object"}'),
        output_schema=b"{}",
    )
    return pb.WorkerMessage(
        hello=pb.Hello(
            worker_id=worker_id, protocol_version=1, app_name="rogue", endpoints=[endpoint], slots=1
        )
    )


async def _converse(
    address: str, messages: list[pb.WorkerMessage], pause: float = 0.3
) -> list[pb.GatewayMessage]:
    """Send ``messages`` on one Connect stream and collect what the gateway answers until it closes."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.WorkerGatewayStub(channel)

        async def outgoing():  # type: ignore[no-untyped-def]
            for message in messages:
                yield pb.WorkerFrame(messages=[message])
                await asyncio.sleep(pause)
            await asyncio.sleep(5)

        received: list[pb.GatewayMessage] = []
        call = stub.Connect(outgoing())
        try:
            async for frame in call:
                received.extend(frame.messages)
                if any(message.HasField("reject") for message in frame.messages):
                    break
        except grpc.aio.AioRpcError:
            pass
        call.cancel()
        return received


def test_first_message_other_than_hello_is_rejected(gateway: Gateway) -> None:
    answers = asyncio.run(_converse(gateway.grpc_address, [pb.WorkerMessage(heartbeat=pb.Heartbeat())]))
    assert answers[-1].reject.code == "protocol_violation"


def test_events_for_a_run_never_assigned_disconnect_the_worker(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker()
    bogus = pb.WorkerMessage(
        events=pb.Events(run_id="run_x", attempt=1, first_seq=1, events=[pb.Event(kind="token", data=b"{}")])
    )
    answers = asyncio.run(_converse(gateway.grpc_address, [_hello("rogue-1", name="rogue_tool"), bogus]))
    assert answers[0].HasField("welcome")
    assert answers[-1].reject.code == "protocol_violation"
    assert "never assigned" in answers[-1].reject.message
    assert "broke the protocol" in gateway.output()
    with gateway.client() as client:  # everyone else is still served
        assert client.post("/v1/tools/add", json={"a": 1, "b": 1}).json() == {"output": 2}
        assert "rogue_tool" not in {e["name"] for e in client.get("/v1/endpoints").json()["endpoints"]}


def test_conflicting_registration_is_refused_with_the_reason(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker()
    conflicting = _hello("rogue-2", name="add", input_schema=b'{"type":"object","properties":{"x":{}}}')
    answers = asyncio.run(_converse(gateway.grpc_address, [conflicting]))
    assert answers[-1].reject.code == "invalid_registration"
    assert "already served" in answers[-1].reject.message


def test_invalid_schema_and_bad_protocol_version_are_refused(gateway: Gateway) -> None:
    invalid = _hello("rogue-3", name="x", input_schema=b'{"type": 12}')
    assert asyncio.run(_converse(gateway.grpc_address, [invalid]))[-1].reject.code == "invalid_registration"
    old = _hello("rogue-4")
    old.hello.protocol_version = 99
    assert asyncio.run(_converse(gateway.grpc_address, [old]))[-1].reject.code == "unsupported_protocol"


def test_worker_token_is_required_when_configured(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(worker_token="s3cret")
    answers = asyncio.run(_converse(gateway.grpc_address, [_hello("rogue-5")]))
    assert answers[-1].reject.code == "unauthenticated"
    worker = cluster.start_worker(wait=False)
    assert worker.wait(20) == 3  # refused: the CLI exits with a clear message instead of retrying
    assert "refused this worker" in worker.output()


def test_a_worker_sending_a_sequence_gap_is_disconnected_and_its_run_requeued(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()

    async def rogue() -> tuple[list[pb.GatewayMessage], str]:
        async with grpc.aio.insecure_channel(gateway.grpc_address) as channel:
            stub = pb_grpc.WorkerGatewayStub(channel)
            queue: asyncio.Queue[pb.WorkerMessage] = asyncio.Queue()
            await queue.put(_hello("rogue-6", name="gappy"))

            async def outgoing():  # type: ignore[no-untyped-def]
                while True:
                    yield pb.WorkerFrame(messages=[await queue.get()])

            call = stub.Connect(outgoing())
            received = list((await call.read()).messages)  # welcome
            async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
                asyncio.get_running_loop().create_task(client.post("/v1/tools/gappy", json={}))
                assign = (await call.read()).messages[0]
                received.append(assign)
                gap = pb.Events(
                    run_id=assign.assign.run_id,
                    attempt=assign.assign.attempt,
                    first_seq=assign.assign.next_seq + 5,
                    events=[pb.Event(kind="token", data=b'{"text":"x"}')],
                )
                await queue.put(pb.WorkerMessage(events=gap))
                received.extend((await call.read()).messages)
                call.cancel()
                return received, assign.assign.run_id

    answers, run_id = asyncio.run(rogue())
    assert answers[-1].reject.code == "protocol_violation"
    assert "expected event seq" in answers[-1].reject.message
    run = wait_until(lambda: (r := run_status(gateway, run_id)).get("attempt", 1) >= 2 and r, what="requeue")
    assert run["status"] in {"queued", "failed"}
