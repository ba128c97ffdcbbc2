"""Concurrency limits for a cluster: slot claims in the shared NATS key-value bucket (two replicas' claim
stores against the real NATS: the sum of claims never exceeds max under concurrent claims, claims lapse
when not renewed, given back they go to the other replica, a waiting replica gets a fair share), and two
RunServices (replicas with their own stores and workers) holding one limit together through them,
including when the shared claims are unreachable (fail open or closed)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator

import msgspec
import nats.errors
import pytest

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.access.principal import Principal
from fastagentic_gateway.bus.inprocess import InProcessBus
from fastagentic_gateway.calls import make_call
from fastagentic_gateway.errors import ConcurrencyLimited, Unavailable
from fastagentic_gateway.limits.counters import DOWN_PAUSE, CounterUnavailable, SharedCounters
from fastagentic_gateway.limits.limiter import Limiter
from fastagentic_gateway.limits.rules import ConcurrencyRule
from fastagentic_gateway.limits.slots import ClaimStore, Grant
from fastagentic_gateway.runs.model import Run, RunStatus
from fastagentic_gateway.runs.service import RunService
from fastagentic_gateway.settings import Settings
from fastagentic_gateway.store.memory import MemoryRunStore
from fastagentic_gateway.workers.connection import WorkerConnection
from fastagentic_gateway.workers.registry import EndpointRegistry
from tests.services import delete_nats_state, require_nats


@pytest.fixture
async def nats_bucket() -> AsyncIterator[tuple[str, str]]:
    """The NATS URL and a bucket prefix of this test's own, deleted afterwards."""
    url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    yield url, prefix

    await delete_nats_state(url, buckets=(f"{prefix}_limits",))


@contextlib.asynccontextmanager
async def _stores(url: str, prefix: str, ttl: float = 30.0) -> AsyncIterator[tuple[ClaimStore, ClaimStore]]:
    """Two replicas' claim stores, each with a NATS connection of its own."""
    a, b = SharedCounters(url, prefix, "a"), SharedCounters(url, prefix, "b")
    await a.start()
    await b.start()
    try:
        yield ClaimStore(a, "a", ttl), ClaimStore(b, "b", ttl)
    finally:
        await a.close()
        await b.close()


# ------------------------------------------------------------------------------ the claim store


async def _claim_through_stalls(store: ClaimStore, key: str, target: int, floor: int, limit: int) -> Grant:
    """``store.claim``, asked again while the server does not answer (a loaded CI machine's NATS can stall
    for seconds): what these tests check is the sum of claims, not availability (test_limiter.py and the
    outage tests cover that). A claim that timed out may still have been stored: the caller keeps the
    smaller figure it had before, as ClusterSlots does, so the check stays sound."""
    async with asyncio.timeout(120):
        while True:
            try:
                return await store.claim(key, target, floor, limit)
            except CounterUnavailable:
                await asyncio.sleep(DOWN_PAUSE + 0.1)


async def test_concurrent_claims_of_three_replicas_never_add_up_to_more_than_max(
    nats_bucket: tuple[str, str],
) -> None:
    url, prefix = nats_bucket
    limit = 3
    async with _stores(url, prefix) as (a, b), _stores(url, prefix) as (c, _):
        c.replica = "c"
        # What each replica may start, as ClusterSlots keeps it (one write in flight per key and replica):
        # lowered before a smaller claim is written, raised only once a larger one is stored.
        granted = {"a": 0, "b": 0, "c": 0}
        worst = 0

        async def churn(store: ClaimStore, seed: int) -> None:
            nonlocal worst
            rng = random.Random(seed)
            for _ in range(30):
                target = rng.randint(0, limit)
                granted[store.replica] = min(granted[store.replica], target)
                grant = await _claim_through_stalls(store, "k", target, granted[store.replica], limit)
                assert grant.granted <= grant.claimed and grant.granted + grant.others <= limit
                granted[store.replica] = grant.granted
                worst = max(worst, sum(granted.values()))

        async def watch() -> None:
            nonlocal worst
            while True:
                try:
                    stored = await a.read("k")
                except (CounterUnavailable, nats.errors.Error, TimeoutError):
                    await asyncio.sleep(0.05)  # a sampler: a stalled server only means a missed sample
                    continue
                now = time.time()
                worst = max(worst, sum(claim[0] for claim in stored.values() if claim[1] > now))
                await asyncio.sleep(0.001)

        watcher = asyncio.create_task(watch())
        try:
            async with asyncio.timeout(120):
                await asyncio.gather(churn(a, 1), churn(b, 2), churn(c, 3))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        assert worst <= limit
        # All asking for everything at once: exactly max between them.
        everything = await asyncio.gather(
            *[_claim_through_stalls(s, "all", limit, 0, limit) for s in (a, b, c)]
        )
        assert sum(grant.granted for grant in everything) == limit, everything


async def test_a_claim_not_renewed_lapses_after_its_ttl(nats_bucket: tuple[str, str]) -> None:
    url, prefix = nats_bucket
    async with _stores(url, prefix, ttl=1.0) as (a, b):
        assert (await a.claim("k", 2, 0, 2)).granted == 2
        assert (await b.claim("k", 2, 0, 2)).granted == 0
        await asyncio.sleep(0.5)
        assert (await b.claim("k", 2, 0, 2)).granted == 0  # still live
        await asyncio.sleep(0.7)
        grant = await b.claim("k", 2, 0, 2)  # a's claim expired: it no longer counts
        assert grant.granted == 2 and grant.others == 0
        assert set(await b.read("k")) == {"b"}  # and the lapsed claim was dropped


async def test_a_claim_given_back_goes_to_the_other_replica_but_never_below_what_runs(
    nats_bucket: tuple[str, str],
) -> None:
    url, prefix = nats_bucket
    async with _stores(url, prefix) as (a, b):
        assert (await a.claim("k", 2, 0, 2)).granted == 2
        # a gives back what it does not use, but 1 run still runs there: its claim stays 1.
        grant = await a.claim("k", 0, 1, 2)
        assert (grant.granted, grant.claimed) == (0, 1)
        assert (await b.claim("k", 2, 0, 2)).granted == 1
        assert (await a.claim("k", 0, 0, 2)).claimed == 0
        assert (await b.claim("k", 2, 0, 2)).granted == 2
        assert (await a.read("k"))["b"][0] == 2 and "a" not in await a.read("k")


async def test_a_replica_that_others_wait_for_keeps_a_fair_share(nats_bucket: tuple[str, str]) -> None:
    url, prefix = nats_bucket
    async with _stores(url, prefix) as (a, b):
        assert (await a.claim("k", 3, 0, 3)).granted == 3
        refused = await b.claim("k", 2, 0, 3)  # b wants 2, gets none: it says so in its claim
        assert refused.granted == 0 and not refused.contended
        # a's next renewal (its 3 runs still running) sees b waiting: it may start no more than
        # ceil(3 / 2) = 2, and its claim shrinks as its runs end.
        renewed = await a.claim("k", 3, 3, 3)
        assert renewed.contended and (renewed.granted, renewed.claimed) == (2, 3)
        assert (await a.claim("k", 3, 2, 3)).claimed == 2  # one of a's runs ended
        assert (await b.claim("k", 2, 0, 3)).granted == 1


# ------------------------------------------------------------------------------ two replicas dispatching


_SPEC = pb.EndpointSpec(
    name="slow",
    kind=pb.ENDPOINT_KIND_AGENT,
    input_schema=msgspec.json.encode({"type": "object"}),
    output_schema=b"{}",
    durable=False,
)


def _rule(**fields: object) -> ConcurrencyRule:
    return msgspec.convert({"name": "r", "max": 2} | fields, ConcurrencyRule)


class _Replica:
    """A RunService with in-memory stores, one worker connection whose Assigns we read, and limits
    counted in the shared NATS bucket (as a gateway with ``limits_url`` or ``bus_url`` does)."""

    def __init__(
        self,
        name: str,
        url: str,
        prefix: str,
        rules: list[ConcurrencyRule],
        *,
        slots: int = 8,
        fail: str = "open",
    ) -> None:
        self.settings = Settings(
            concurrency=rules,
            limits_url=url,
            bus_prefix=prefix,
            limits_fail=fail,
            lease_ttl=3.0,
            heartbeat_interval=0.5,
        )
        self.registry = EndpointRegistry()
        self.service = RunService(
            self.settings, self.registry, MemoryRunStore(), MemoryRunStore(), InProcessBus(name)
        )
        self.service.limiter = Limiter(self.settings)
        self.worker = WorkerConnection(f"w-{name}", "app", slots, ["slow"])
        self.registry.register(self.worker, [_SPEC])
        self.service.workers[self.worker.worker_id] = self.worker

    async def start(self) -> None:
        assert self.service.limiter is not None
        await self.service.limiter.start()
        await self.service.start()

    async def close(self) -> None:
        await self.service.close()
        assert self.service.limiter is not None
        await self.service.limiter.close()

    async def submit(self, tenant: str = "acme") -> Run:
        endpoint = self.registry.get("slow")
        assert endpoint is not None
        principal = Principal(subject="alice", tenant=tenant)
        run, _ = await self.service.submit(make_call(endpoint, {}, principal=principal, protocol="rest"))
        return run

    def assigned(self) -> list[str]:
        """The runs assigned since the last call."""
        runs = []
        while not self.worker.outbox.empty():
            message = self.worker.outbox.get_nowait()
            if message is not None and message.HasField("assign"):
                runs.append(message.assign.run_id)
        return runs

    async def done(self, run_id: str) -> None:
        held = self.worker.runs[run_id]
        done = pb.Done(run_id=run_id, attempt=held.attempt, last_seq=held.last_seq, output=b"{}")
        await self.service.on_message(self.worker, pb.WorkerMessage(done=done))

    async def status(self, run: Run) -> RunStatus:
        current = await self.service.ephemeral.get(run.id)
        assert current is not None
        return current.status


@contextlib.asynccontextmanager
async def _replicas(
    url: str, prefix: str, rules: list[ConcurrencyRule], **options: object
) -> AsyncIterator[tuple[_Replica, _Replica]]:
    a = _Replica("a", url, prefix, rules, **options)  # type: ignore[arg-type]
    b = _Replica("b", url, prefix, rules, **options)  # type: ignore[arg-type]
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _until(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_two_replicas_hold_one_limit_together_and_every_run_finishes(
    nats_bucket: tuple[str, str],
) -> None:
    url, prefix = nats_bucket
    async with _replicas(url, prefix, [_rule(max=2)]) as (a, b):
        runs = {a: [await a.submit() for _ in range(6)], b: [await b.submit() for _ in range(6)]}
        finished = most = 0
        turn = 0
        while finished < 12:
            await asyncio.sleep(0.05)
            # Taken by a worker (being assigned or running) on either replica: never more than 2.
            now = len(a.worker.runs) + len(b.worker.runs)
            assert now <= 2, (list(a.worker.runs), list(b.worker.runs))
            most = max(most, now)
            a.assigned(), b.assigned()
            replicas = [r for r in (a, b) if r.worker.runs]
            if replicas:
                replica = replicas[turn % len(replicas)]
                turn += 1
                await replica.done(next(iter(replica.worker.runs)))
                finished += 1
        assert most == 2
        for replica, submitted in runs.items():
            assert [await replica.status(run) for run in submitted] == [RunStatus.SUCCEEDED] * 6
        await _until(lambda: not a.service.concurrency.running and not b.service.concurrency.running)
        # Nothing runs or waits: both give their claims back.
        claims = a.service.claims
        assert claims is not None
        await _until(lambda: all(c.claimed == 0 for c in claims.book.values()), within=5)


async def test_a_refuse_rule_counts_the_calls_of_every_replica(nats_bucket: tuple[str, str]) -> None:
    url, prefix = nats_bucket
    async with _replicas(url, prefix, [_rule(max=2, when_full="refuse")], slots=1) as (a, b):
        first = await a.submit()
        second = await b.submit()
        with pytest.raises(ConcurrencyLimited, match="at most 2 run"):
            await a.submit()
        with pytest.raises(ConcurrencyLimited):
            await b.submit()
        await b.submit("other")  # another tenant: a key of its own
        await _until(lambda: first.id in a.worker.runs and second.id in b.worker.runs)
        await a.done(first.id)
        # a's claim goes back once its run ended: b may accept one more.
        await _until(
            lambda: a.service.claims is not None and a.service.claims.book["r\x1ft:acme"].claimed == 0
        )
        third = await b.submit()
        assert await b.status(third) is RunStatus.QUEUED  # its worker's one slot is busy


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_when_the_claims_are_unreachable_limits_fail_as_configured(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"nats://127.0.0.1:{_closed_port()}"
    replica = _Replica(
        "a",
        down,
        "fatest",
        [_rule(max=2), _rule(name="one", max=1, when_full="refuse", endpoints=["slow"])],
        fail=mode,
    )
    await replica.start()
    claims = replica.service.claims
    assert claims is not None
    try:
        if mode == "open":
            run = await replica.submit()  # the refuse rule cannot be claimed: admitted on the local max
            await _until(lambda: run.id in replica.worker.runs)
            assert "unreachable" in claims.outage and claims.fail_open
            with pytest.raises(ConcurrencyLimited):
                await replica.submit()  # the local max of the refuse rule still holds
            assert "each replica allows up to max runs of a key on its own" in caplog.text
        else:
            with pytest.raises(Unavailable, match="concurrency limits cannot be checked"):
                await replica.submit()
            assert claims.outage and not claims.fail_open
            assert "no concurrency slot is claimed or renewed" in caplog.text
    finally:
        await replica.close()


async def test_the_claims_of_a_replica_that_stops_lapse_and_the_other_takes_the_slots(
    nats_bucket: tuple[str, str],
) -> None:
    url, prefix = nats_bucket
    async with _replicas(url, prefix, [_rule(max=2)]) as (a, b):
        held = [await a.submit() for _ in range(2)]
        await _until(lambda: all(run.id in a.worker.runs for run in held))
        waiting = await b.submit()
        await asyncio.sleep(0.5)
        assert await b.status(waiting) is RunStatus.QUEUED and not b.assigned()
        started = time.monotonic()
        await a.service.close()  # a stops renewing (as if it died): its claims lapse after lease_ttl (3 s)
        await _until(lambda: waiting.id in b.worker.runs, within=10)
        assert 1.0 <= time.monotonic() - started <= 6.0
