"""Following a run on the NATS bus (bus/nats.py ``subscribe``): a run whose worker is local does not wait
for a round trip to the cluster, an ephemeral run subscribes nowhere else, and a run that is requeued
elsewhere still reaches its follower here. Two real ``NatsBus`` replicas on the local NATS server, a
prefix of their own (their JetStream stream is deleted afterwards)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import pytest_asyncio

from fastagentic_gateway.bus.base import CancelNotice
from fastagentic_gateway.bus.nats import NatsBus
from fastagentic_gateway.runs.model import Event
from fastagentic_gateway.workers.completion import Completion, CompletionRequest
from fastagentic_gateway.workers.registry import EndpointInfo
from tests.services import delete_nats_state, require_nats


class Quiet:
    """A replica's peers that take no part: these tests only follow runs."""

    def on_cancel(self, notice: CancelNotice) -> bool:
        return False

    def on_catalogue(
        self, replica: str, endpoints: list[EndpointInfo], completions: dict[str, list[str]]
    ) -> None:
        return None

    async def on_complete(self, request: CompletionRequest) -> Completion | None:
        return None


@pytest_asyncio.fixture
async def replicas() -> AsyncIterator[tuple[NatsBus, NatsBus]]:
    async with replica_pair() as pair:
        yield pair


@contextlib.asynccontextmanager
async def replica_pair() -> AsyncIterator[tuple[NatsBus, NatsBus]]:
    url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    here, there = (
        NatsBus(url, prefix=prefix, replica=name, advertise_every=60, forget_after=180) for name in ("a", "b")
    )
    await here.start(Quiet())
    await there.start(Quiet())
    try:
        yield here, there
    finally:
        await here.close()
        await there.close()
        await delete_nats_state(url, streams=(f"{prefix}_dispatch",))


def event(run_id: str, seq: int) -> Event:
    return Event(run_id=run_id, seq=seq, ts=time.time(), kind="token", data=b'{"text":"x"}')


async def test_wait_is_subscribed_everywhere_on_return() -> None:
    # Fresh replicas each round: the race showed on a connection's first subscription (nats-py's flush
    # overtook its own SUB, and the event published right after was lost about one time in twenty).
    for n in range(150):
        async with replica_pair() as (here, there):
            subscription = await here.subscribe("run_wait", elsewhere="wait")
            assert here._remote["run_wait"].done()
            there.publish("run_wait", [event("run_wait", 1)])
            assert [e.seq for e in await subscription.next(within=5)] == [1], f"lost in round {n}"
            subscription.close()


async def test_a_run_held_here_returns_before_the_round_trip_and_still_hears_other_replicas(
    replicas: tuple[NatsBus, NatsBus],
) -> None:
    here, there = replicas
    subscription = await here.subscribe("run_here", elsewhere="later")
    # Returned at once: the subscription elsewhere is still on its way to the server.
    assert not here._remote["run_here"].done()
    # Events published here reach the follower without NATS.
    here.publish("run_here", [event("run_here", 1)])
    assert [e.seq for e in await subscription.next(within=1)] == [1]
    # Requeued elsewhere: once the subscription lands, what the other replica publishes arrives too.
    await here._remote["run_here"]
    there.publish("run_here", [event("run_here", 2)])
    assert [e.seq for e in await subscription.next(within=5)] == [2]
    subscription.close()


async def test_an_ephemeral_run_subscribes_nowhere_else(replicas: tuple[NatsBus, NatsBus]) -> None:
    here, _ = replicas
    subscription = await here.subscribe("run_ephemeral", elsewhere="never")
    assert "run_ephemeral" not in here._remote
    here.publish("run_ephemeral", [event("run_ephemeral", 1)])
    assert [e.seq for e in await subscription.next(within=1)] == [1]
    subscription.close()
