"""A worker stream's messages (workers/lanes.py): durable runs' reports are handled side by side, so they
share the store's commits; a run's own messages never change order; ephemeral runs and messages naming no
run are handled where they are read; a failure stops the stream once; a full set of lanes holds the reader."""

from __future__ import annotations

import asyncio

import pytest

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.workers.connection import ProtocolViolation, WorkerConnection
from fastagentic_gateway.workers.lanes import LaneFailed, RunLanes, run_of


def events(run_id: str, seq: int) -> pb.WorkerMessage:
    return pb.WorkerMessage(
        events=pb.Events(
            run_id=run_id, attempt=1, first_seq=seq, events=[pb.Event(kind="token", data=b'"t"')]
        )
    )


def done(run_id: str) -> pb.WorkerMessage:
    return pb.WorkerMessage(done=pb.Done(run_id=run_id, attempt=1, last_seq=1, output=b"1"))


def worker(durable: dict[str, bool]) -> WorkerConnection:
    connection = WorkerConnection("w1", "app", 64, ["echo"])
    for run_id, is_durable in durable.items():
        connection.take(run_id, 1, is_durable)
    return connection


def test_run_of_names_the_run_a_message_reports_on() -> None:
    assert run_of(events("r1", 1)) == "r1"
    assert run_of(done("r2")) == "r2"
    assert run_of(pb.WorkerMessage(release=pb.Release(run_id="r3", attempt=1))) == "r3"
    assert run_of(pb.WorkerMessage(heartbeat=pb.Heartbeat())) == ""
    assert run_of(pb.WorkerMessage(tool_check=pb.ToolCheck(run_id="r4", attempt=1, check_id="c"))) == "r4"


async def test_durable_runs_are_handled_side_by_side() -> None:
    # Run a's Done waits for run b's: handled one after the other, this would never finish.
    b_handled = asyncio.Event()
    order: list[str] = []

    async def handle(message: pb.WorkerMessage) -> None:
        run_id = run_of(message)
        if run_id == "a":
            await b_handled.wait()
        else:
            b_handled.set()
        order.append(run_id)

    lanes = RunLanes(worker({"a": True, "b": True}), handle, fail=lambda exc: None)
    await asyncio.wait_for(lanes.put([done("a")]), 5)
    await asyncio.wait_for(lanes.put([done("b")]), 5)
    await asyncio.wait_for(lanes.drain(), 5)
    assert order == ["b", "a"]


async def test_a_runs_messages_keep_their_order() -> None:
    seen: list[tuple[str, str]] = []

    async def handle(message: pb.WorkerMessage) -> None:
        # The first message of each run takes longest: a lane that did not wait would overtake it.
        kind = message.WhichOneof("body")
        await asyncio.sleep(0.05 if kind == "events" and message.events.first_seq == 1 else 0)
        seen.append((run_of(message), kind if kind != "events" else f"events{message.events.first_seq}"))

    lanes = RunLanes(worker({"a": True, "b": True}), handle, fail=lambda exc: None)
    for message in (events("a", 1), events("b", 1), events("a", 2), done("b"), done("a")):
        await lanes.put([message])
    await asyncio.wait_for(lanes.drain(), 5)
    assert [kind for run, kind in seen if run == "a"] == ["events1", "events2", "done"]
    assert [kind for run, kind in seen if run == "b"] == ["events1", "done"]


async def test_ephemeral_runs_and_messages_naming_no_run_are_handled_where_read() -> None:
    handled: list[str] = []

    async def handle(message: pb.WorkerMessage) -> None:
        handled.append(run_of(message) or message.WhichOneof("body") or "")

    lanes = RunLanes(worker({"e": False}), handle, fail=lambda exc: None)
    await lanes.put([done("e")])
    assert handled == ["e"]  # before put returned: no task
    await lanes.put([pb.WorkerMessage(heartbeat=pb.Heartbeat())])
    assert handled == ["e", "heartbeat"]
    await lanes.put([done("unknown")])  # not held: the handler refuses or ignores it, in order
    assert handled == ["e", "heartbeat", "unknown"]


async def test_a_message_joins_its_runs_busy_lane_even_once_the_run_is_no_longer_held() -> None:
    release = asyncio.Event()
    handled: list[str] = []
    connection = worker({"a": True})

    async def handle(message: pb.WorkerMessage) -> None:
        kind = message.WhichOneof("body") or ""
        if kind == "done":
            connection.finish("a")  # as _on_done does, before it waits for the store
            await release.wait()
        handled.append(kind)

    lanes = RunLanes(connection, handle, fail=lambda exc: None)
    await lanes.put([done("a")])
    await asyncio.sleep(0)
    await lanes.put([events("a", 2)])  # a rogue report after Done: still after it, never before
    assert handled == []
    release.set()
    await asyncio.wait_for(lanes.drain(), 5)
    assert handled == ["done", "events"]


async def test_the_first_failure_is_told_once_and_stops_the_stream() -> None:
    told: list[BaseException] = []
    handled: list[str] = []
    gate = asyncio.Event()

    async def handle(message: pb.WorkerMessage) -> None:
        run_id = run_of(message)
        if message.WhichOneof("body") == "events":
            await gate.wait()
            raise ProtocolViolation(f"bad events for {run_id}")
        handled.append(run_id)

    lanes = RunLanes(worker({"a": True, "b": True}), handle, fail=told.append)
    await lanes.put([events("a", 1)])
    await lanes.put([events("b", 1)])
    await lanes.put([done("a")])  # waits behind a's failing lane: never handled
    gate.set()
    with pytest.raises(LaneFailed):
        await asyncio.wait_for(lanes.drain(), 5)
    assert len(told) == 1 and isinstance(told[0], ProtocolViolation)
    assert handled == []
    with pytest.raises(LaneFailed):
        await lanes.put([done("b")])


async def test_a_full_set_of_lanes_holds_the_reader() -> None:
    gate = asyncio.Event()
    started: list[str] = []

    async def handle(message: pb.WorkerMessage) -> None:
        started.append(run_of(message))
        await gate.wait()

    lanes = RunLanes(worker({f"r{i}": True for i in range(3)}), handle, fail=lambda exc: None, limit=2)
    await lanes.put([done("r0")])
    await lanes.put([done("r1")])
    third = asyncio.ensure_future(lanes.put([done("r2")]))
    await asyncio.sleep(0.05)
    assert not third.done()  # the reader waits for a lane
    gate.set()
    await asyncio.wait_for(third, 5)
    await asyncio.wait_for(lanes.drain(), 5)
    assert sorted(started) == ["r0", "r1", "r2"]


@pytest.mark.parametrize("in_order", [False, True])
async def test_a_frames_tool_checks_go_first_unless_hooks_observe_events(in_order: bool) -> None:
    # The worker's run is stopped until the verdict: the check must not wait for the commit of the reports
    # sent just before it (the run's tool_call event, say).
    stored = asyncio.Event()
    handled: list[str] = []

    async def handle(message: pb.WorkerMessage) -> None:
        kind = message.WhichOneof("body") or ""
        if kind == "events":
            await stored.wait()
        handled.append(kind)

    lanes = RunLanes(worker({"a": True}), handle, fail=lambda exc: None, checks_in_order=lambda: in_order)
    check = pb.WorkerMessage(
        tool_check=pb.ToolCheck(run_id="a", attempt=1, check_id="c1", point="on_tool_call")
    )
    await asyncio.wait_for(lanes.put([events("a", 1), check]), 5)
    await asyncio.wait_for(lanes.put([events("a", 2), check]), 5)  # the run's lane is busy
    if in_order:
        # Gateway hooks observe events: their points and the tool points fire in the run's order.
        assert handled == []
    else:
        assert handled == ["tool_check", "tool_check"]  # answered while the events wait for their commit
    stored.set()
    await asyncio.wait_for(lanes.drain(), 5)
    if in_order:
        assert handled == ["events", "tool_check", "events", "tool_check"]
    else:
        assert handled == ["tool_check", "tool_check", "events", "events"]
