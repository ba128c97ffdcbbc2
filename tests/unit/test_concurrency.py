"""Concurrency limits: the rule's validation, the gate's exact counts (a slot is released exactly once,
whichever way a run stops running), ``refuse`` with its reservations, the fair queue (tenants take turns,
runs at their limit keep their place) and the RunService dispatching through them with in-memory stores
and a worker that is only its connection."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.access.principal import Principal
from fastagentic_gateway.bus.inprocess import InProcessBus
from fastagentic_gateway.calls import make_call
from fastagentic_gateway.errors import ConcurrencyLimited
from fastagentic_gateway.limits.concurrency import ConcurrencyGate, FairQueue
from fastagentic_gateway.limits.rules import ConcurrencyRule
from fastagentic_gateway.runs.model import Caller, EndpointKind, Run, RunStatus, new_run_id
from fastagentic_gateway.runs.service import RunService
from fastagentic_gateway.settings import Settings, SettingsError, load
from fastagentic_gateway.store.memory import MemoryRunStore
from fastagentic_gateway.workers.connection import WorkerConnection
from fastagentic_gateway.workers.registry import EndpointRegistry


def _rule(**fields: object) -> ConcurrencyRule:
    return msgspec.convert({"name": "r", "max": 2} | fields, ConcurrencyRule)


def _run(tenant: str = "acme", principal: str = "alice", endpoint: str = "slow", attempt: int = 1) -> Run:
    return Run(
        id=new_run_id(),
        endpoint=endpoint,
        kind=EndpointKind.AGENT,
        durable=False,
        caller=Caller(principal, tenant),
        input=b"{}",
        attempt=attempt,
    )


def _principal(tenant: str = "acme", subject: str = "alice", roles: tuple[str, ...] = ()) -> Principal:
    return Principal(subject=subject, tenant=tenant, roles=frozenset(roles))


# ------------------------------------------------------------------------------ the rule


def test_the_rule_defaults_to_a_queue_per_tenant() -> None:
    rule = _rule()
    assert (rule.per, rule.when_full, rule.endpoints, rule.roles) == (["tenant"], "queue", [], [])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "bad name"}, "concurrency rule name 'bad name'"),
        ({"max": 0}, ">= 1"),
        ({"per": ["team"]}, "per must list some of principal, tenant, endpoint"),
        ({"per": []}, "per must list"),
        ({"per": ["tenant", "tenant"]}, "each once"),
        ({"when_full": "drop"}, 'when_full must be "queue" or "refuse"'),
        ({"maximum": 3}, "unknown field"),
    ],
)
def test_a_bad_rule_is_refused_with_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises((msgspec.ValidationError, ValueError), match=message):
        _rule(**fields)


def test_the_setting_loads_from_the_environment_and_names_must_be_unique() -> None:
    rules = [{"name": "per-tenant", "max": 2}, {"name": "refusing", "max": 5, "when_full": "refuse"}]
    settings = load(environ={"FASTAGENTIC_CONCURRENCY": json.dumps(rules)})
    assert [(r.name, r.max, r.when_full) for r in settings.concurrency] == [
        ("per-tenant", 2, "queue"),
        ("refusing", 5, "refuse"),
    ]
    with pytest.raises(SettingsError, match="concurrency: each rule name may be used once"):
        load(environ={"FASTAGENTIC_CONCURRENCY": json.dumps([rules[0], rules[0]])})
    with pytest.raises(SettingsError, match="max"):
        load(environ={"FASTAGENTIC_CONCURRENCY": json.dumps([{"name": "x", "max": 0}])})


# ------------------------------------------------------------------------------ the gate


def test_the_gate_counts_each_slot_and_a_hold_releases_exactly_once() -> None:
    released: list[int] = []
    gate = ConcurrencyGate([_rule(max=2)])
    gate.on_release = lambda: released.append(1)
    first, second, third = _run(), _run(), _run()
    a, b = gate.acquire(first), gate.acquire(second)
    assert a is not None and b is not None
    assert gate.acquire(third) is None  # full: nothing taken
    assert gate.running == {"r\x1ft:acme": 2}
    assert gate.acquire(_run(tenant="other")) is not None  # another tenant, another slot
    a.release()
    a.release()  # again: nothing more
    assert gate.running["r\x1ft:acme"] == 1 and released == [1]
    assert gate.acquire(third) is not None


def test_a_run_held_already_counts_even_past_the_max() -> None:
    gate = ConcurrencyGate([_rule(max=1)])
    gate.hold(_run())
    gate.hold(_run())
    assert gate.running == {"r\x1ft:acme": 2}
    assert gate.acquire(_run()) is None


def test_rules_apply_by_endpoint_and_key_parts() -> None:
    gate = ConcurrencyGate(
        [
            _rule(name="one", max=1, per=["principal", "endpoint"], endpoints=["slow"]),
            _rule(name="all", max=3),
        ]
    )
    assert [s.key for s in gate.slots("slow", "acme", "alice")] == [
        "one\x1fp:acme/alice\x1fe:slow",
        "all\x1ft:acme",
    ]
    assert [s.rule for s in gate.slots("fast", "acme", "alice")] == ["all"]


def test_a_plan_applies_by_role_and_to_an_unknown_principal() -> None:
    gate = ConcurrencyGate([_rule(name="free", max=1, roles=["free"])])
    assert gate.by_principal and gate.grouping
    # Never seen: its roles are unknown, so the rule holds it (a limit is never looser than configured).
    assert [s.rule for s in gate.slots_of(_run(principal="paid"))] == ["free"]
    gate.note(_principal(subject="paid", roles=("paid",)))
    gate.note(_principal(subject="cheap", roles=("free",)))
    assert gate.slots_of(_run(principal="paid")) == ()
    assert [s.rule for s in gate.slots_of(_run(principal="cheap"))] == ["free"]


def test_reload_counts_the_running_runs_again_under_the_new_rules() -> None:
    gate = ConcurrencyGate([_rule(max=1)])
    hold = gate.acquire(_run())
    assert hold is not None and gate.acquire(_run()) is None
    gate.reload([_rule(max=3)])  # same name, larger max: the running run still counts
    assert gate.running == {"r\x1ft:acme": 1}
    assert gate.acquire(_run()) is not None
    gate.reload([_rule(name="per-principal", max=1, per=["principal"])])
    assert gate.running == {"per-principal\x1fp:acme/alice": 2}
    assert gate.acquire(_run(principal="bob")) is not None
    hold.release()
    assert gate.running == {"per-principal\x1fp:acme/alice": 1, "per-principal\x1fp:acme/bob": 1}
    gate.reload([])
    assert not gate.active and gate.running == {}


def test_refuse_counts_accepted_runs_and_reservations() -> None:
    gate = ConcurrencyGate([_rule(max=2, when_full="refuse")])
    alice = _principal()
    first = gate.reserve(alice, "slow")
    second = gate.reserve(alice, "slow")  # both being accepted at once: each counts
    with pytest.raises(ConcurrencyLimited) as refused:
        gate.reserve(alice, "slow")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    assert refused.value.extra == {"rule": "r", "limit": 2, "retry_after": 1}
    assert "concurrency limit 'r' reached: at most 2 run(s) at once per tenant" in refused.value.message
    assert first is not None and second is not None
    queue = FairQueue(gate)
    queue.push(_run())  # the first call's run waits: it counts itself ...
    first.release()  # ... and its reservation goes
    assert gate.waiting == {"r\x1ft:acme": 2}
    second.release()
    assert gate.waiting == {"r\x1ft:acme": 1}
    assert gate.reserve(alice, "slow") is not None
    assert gate.reserve(_principal(tenant="other"), "slow") is not None


# ------------------------------------------------------------------------------ the fair queue


def test_tenants_take_turns_whatever_their_backlog() -> None:
    queue = FairQueue()
    big = [_run(tenant="big") for _ in range(1000)]
    for run in big:
        queue.push(run)
    small = _run(tenant="small")
    queue.push(small)
    assert queue.pop() is big[0]
    assert queue.pop() is small  # not after the other 999
    assert [queue.pop() for _ in range(3)] == big[1:4]
    assert len(queue) == 996


def test_a_tenant_keeps_its_fifo_and_its_turn() -> None:
    queue = FairQueue()
    a1, b1, a2, c1, b2 = (_run(tenant=t) for t in "abacb")
    for run in (a1, b1, a2, c1, b2):
        queue.push(run)
    assert [queue.pop() for _ in range(5)] == [a1, b1, c1, a2, b2]
    assert queue.pop() is None and len(queue) == 0


def test_runs_at_their_limit_are_skipped_and_keep_their_place() -> None:
    gate = ConcurrencyGate([_rule(max=1, per=["principal"])])
    queue = FairQueue(gate)
    alice1, alice2, bob1 = _run(principal="alice"), _run(principal="alice"), _run(principal="bob")
    for run in (alice1, alice2, bob1):
        queue.push(run)
    holds = []

    def take(run: Run) -> bool:
        hold = gate.acquire(run)
        if hold is not None:
            holds.append(hold)
        return hold is not None

    assert queue.pop(take) is alice1
    assert queue.pop(take) is bob1  # alice is at her limit: her next run waits, bob's goes past it
    assert queue.pop(take) is None and len(queue) == 1
    holds[0].release()  # alice's run ended
    assert queue.pop(take) is alice2


def test_a_run_is_queued_once_and_a_later_attempt_replaces_it() -> None:
    queue = FairQueue()
    run = _run()
    assert queue.push(run) and not queue.push(run)
    again = msgspec.structs.replace(run, attempt=2)
    assert not queue.push(again)
    assert queue.pop() is again and queue.pop() is None


def test_remove_and_front() -> None:
    gate = ConcurrencyGate([_rule(max=5, when_full="refuse")])
    queue = FairQueue(gate)
    first, second, third = _run(), _run(), _run()
    for run in (first, second, third):
        queue.push(run)
    assert gate.waiting == {"r\x1ft:acme": 3}
    assert queue.remove(second.id) is second and queue.remove(second.id) is None
    assert gate.waiting == {"r\x1ft:acme": 2} and second.id not in queue
    assert queue.pop() is first
    queue.push(first, front=True)  # taken, could not start: back at the head
    assert list(queue) == [first, third]
    assert [queue.pop(), queue.pop(), queue.pop()] == [first, third, None]
    assert gate.waiting == {}


def test_rebuild_regroups_and_recounts_in_order() -> None:
    gate = ConcurrencyGate([_rule(max=5)])
    queue = FairQueue(gate)
    runs = [_run(principal=p) for p in ("alice", "bob", "alice")]
    for run in runs:
        queue.push(run)
    gate.reload([_rule(max=1, per=["principal"], when_full="refuse")])
    queue.rebuild()
    assert gate.waiting == {"r\x1fp:acme/alice": 2, "r\x1fp:acme/bob": 1}
    assert list(queue) == runs
    held = gate.acquire(runs[0])
    assert held is not None
    assert queue.pop(lambda run: gate.acquire(run) is not None) is runs[1]  # alice is full: bob's goes


# ------------------------------------------------------------------------------ the worker's side


def test_a_worker_releases_what_its_runs_hold_when_it_lets_go_of_them() -> None:
    gate = ConcurrencyGate([_rule(max=10)])
    worker = WorkerConnection("w", "app", 8, ["slow"])
    runs = [_run() for _ in range(4)]
    for run in runs:
        worker.take(run.id, 1, False, hold=gate.acquire(run))
    assert gate.running == {"r\x1ft:acme": 4}
    worker.finish(runs[0].id)
    worker.fence(runs[1].id)
    worker.finish(runs[0].id)  # a late second report: nothing more
    assert gate.running == {"r\x1ft:acme": 2}
    worker.take(runs[2].id, 1, False, hold=gate.acquire(runs[2]))  # taken again: the first hold goes
    assert gate.running == {"r\x1ft:acme": 2}
    worker.close()
    assert gate.running == {}
    worker.finish(runs[3].id)  # after the stream ended: still nothing more
    assert gate.running == {} and gate.holds == 0


# ------------------------------------------------------------------------------ dispatch


_SPEC = pb.EndpointSpec(
    name="slow",
    kind=pb.ENDPOINT_KIND_AGENT,
    input_schema=msgspec.json.encode({"type": "object"}),
    output_schema=b"{}",
    durable=False,
)


class _Dispatch:
    """A RunService with in-memory stores and one worker connection whose Assigns we read."""

    def __init__(self, rules: list[ConcurrencyRule], slots: int = 8) -> None:
        self.settings = Settings(concurrency=rules)
        self.registry = EndpointRegistry()
        self.service = RunService(
            self.settings, self.registry, MemoryRunStore(), MemoryRunStore(), InProcessBus("r")
        )
        self.worker = WorkerConnection("w", "app", slots, ["slow"])
        self.registry.register(self.worker, [_SPEC])
        self.service.workers["w"] = self.worker
        self.running: list[str] = []  # assigned, in order

    async def submit(self, tenant: str, subject: str = "alice") -> Run:
        endpoint = self.registry.get("slow")
        assert endpoint is not None
        call = make_call(endpoint, {}, principal=_principal(tenant, subject), protocol="rest")
        run, _ = await self.service.submit(call)
        return run

    async def settle(self) -> list[str]:
        """Let spawned assignments run; the runs assigned since the last call."""
        for _ in range(20):
            await asyncio.sleep(0)
        assigned = []
        while not self.worker.outbox.empty():
            message = self.worker.outbox.get_nowait()
            if message is not None and message.HasField("assign"):
                assigned.append(message.assign.run_id)
        self.running += assigned
        return assigned

    async def done(self, run_id: str) -> None:
        held = self.worker.runs[run_id]
        done = pb.Done(run_id=run_id, attempt=held.attempt, last_seq=held.last_seq, output=b"{}")
        await self.service.on_message(self.worker, pb.WorkerMessage(done=done))

    async def status(self, run: Run) -> RunStatus:
        current = await self.service.ephemeral.get(run.id)
        assert current is not None
        return current.status


async def test_dispatch_holds_each_tenant_to_its_limit_and_serves_tenants_in_turn() -> None:
    dispatch = _Dispatch([_rule(max=2)], slots=3)
    gate = dispatch.service.concurrency
    a = [await dispatch.submit("a") for _ in range(10)]
    assert await dispatch.settle() == [a[0].id, a[1].id]  # two of a's, though a third slot is free
    b = [await dispatch.submit("b") for _ in range(2)]
    assert await dispatch.settle() == [b[0].id]  # b's first takes the free slot at once
    await dispatch.done(a[0].id)
    assert await dispatch.settle() == [a[2].id]  # a was first in the turn
    await dispatch.done(b[0].id)
    assert await dispatch.settle() == [b[1].id]  # b's second goes before a's other seven
    while len(dispatch.running) < 12:
        running = [run_id for run_id in dispatch.running if run_id in dispatch.worker.runs]
        assert sum(1 for run in a if run.id in running) <= 2
        await dispatch.done(running[0])
        await dispatch.settle()
    for run_id in list(dispatch.worker.runs):
        await dispatch.done(run_id)
    assert [await dispatch.status(run) for run in a + b] == [RunStatus.SUCCEEDED] * 12
    assert gate.running == {} and gate.holds == 0


async def test_every_way_a_run_stops_running_releases_its_slot_once() -> None:
    dispatch = _Dispatch([_rule(max=1)])
    service, worker, gate = dispatch.service, dispatch.worker, dispatch.service.concurrency
    runs = [await dispatch.submit("a") for _ in range(5)]
    await dispatch.settle()
    # cancelled while running: the next one starts
    await service.cancel(runs[0].id, "a")
    assert await dispatch.settle() == [runs[1].id]
    # handed back by the worker (draining): requeued behind the others, the next one starts
    release = pb.Release(run_id=runs[1].id, attempt=1, reason="draining")
    await service.on_message(worker, pb.WorkerMessage(release=release))
    assert await dispatch.settle() == [runs[2].id]
    # a queued run cancelled: it no longer waits
    await service.cancel(runs[3].id, "a")
    # the lease expired (the worker went silent): requeued, and the next one starts
    current = await service.ephemeral.get(runs[2].id)
    assert current is not None
    await service.ephemeral.renew_leases("w", 0.0)
    await service.reap()
    started = await dispatch.settle()
    assert started == [runs[4].id], started
    assert gate.running == {"r\x1ft:a": 1}
    # the worker's stream ends: what it held is released, nothing runs here any more
    service.detach(worker)
    assert gate.running == {} and gate.holds == 0


async def test_refuse_answers_429_at_submit_and_accepts_again_once_a_run_ends() -> None:
    dispatch = _Dispatch([_rule(max=2, when_full="refuse")], slots=1)
    first, second = await dispatch.submit("a"), await dispatch.submit("a")
    assert await dispatch.settle() == [first.id]  # the second waits for a worker slot: it still counts
    with pytest.raises(ConcurrencyLimited, match="at most 2 run"):
        await dispatch.submit("a")
    other = await dispatch.submit("b")  # another tenant
    await dispatch.done(first.id)
    assert await dispatch.settle() == [second.id]
    third = await dispatch.submit("a")  # one running, one (b's) before it: it waits
    assert await dispatch.status(third) is RunStatus.QUEUED
    with pytest.raises(ConcurrencyLimited):
        await dispatch.submit("a")
    await dispatch.service.cancel(third.id, "a")  # cancelled while it waited: it no longer counts
    assert await dispatch.status(await dispatch.submit("a")) is RunStatus.QUEUED
    assert await dispatch.status(other) is RunStatus.QUEUED


async def test_a_reload_applies_a_new_max_to_what_waits() -> None:
    dispatch = _Dispatch([_rule(max=1)])
    runs = [await dispatch.submit("a") for _ in range(4)]
    assert await dispatch.settle() == [runs[0].id]
    dispatch.service.reload_concurrency([_rule(max=3)])
    assert await dispatch.settle() == [runs[1].id, runs[2].id]
    dispatch.service.reload_concurrency([])
    assert await dispatch.settle() == [runs[3].id]


async def test_runs_running_before_the_first_rule_are_counted_after_a_reload() -> None:
    dispatch = _Dispatch([])
    runs = [await dispatch.submit("a") for _ in range(3)]
    assert len(await dispatch.settle()) == 3
    dispatch.service.reload_concurrency([_rule(max=3)])
    await dispatch.settle()
    assert dispatch.service.concurrency.running == {"r\x1ft:a": 3}
    late = await dispatch.submit("a")
    assert await dispatch.settle() == []
    await dispatch.done(runs[0].id)
    assert await dispatch.settle() == [late.id]
