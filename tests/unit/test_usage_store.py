"""Usage in the stores: a run's totals per model, the aggregates per (tenant, principal, endpoint, model, UTC
day), counted once per report. Every test runs against MemoryRunStore, SQLiteRunStore and PostgresRunStore
alike (a fresh SQLite file, a fresh PostgreSQL database per test: the RunStore contract's fixtures)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from fastagentic_gateway.runs.model import Event, NewEvent, RunStatus, RunUpdate
from fastagentic_gateway.store import MemoryRunStore, RunStore, SQLiteRunStore
from fastagentic_gateway.store import sqlite as sqlite_store
from fastagentic_gateway.usage.accounting import UsageAccounting
from fastagentic_gateway.usage.model import (
    TOKEN_CAP,
    ModelUsage,
    Totals,
    UsageQuery,
    UsageReport,
    UsageRow,
    utc_day,
)
from tests.unit import test_store_contract as contract
from tests.unit.test_store_contract import RUNNING, create_running

store = contract.store
pg_url = contract.pg_url

DAY1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY2 = DAY1 + 86_400 + 5


def totals(i: int = 0, o: int = 0, cost: float = 0.0, calls: int = 1, unpriced: int = 0) -> Totals:
    return Totals(input_tokens=i, output_tokens=o, cost=cost, calls=calls, unpriced_calls=unpriced)


def report(
    run_id: str,
    seq: int,
    *models: tuple[str, Totals],
    ts: float = DAY1,
    tenant: str = "acme",
    principal: str = "alice",
    endpoint: str = "echo",
) -> UsageReport:
    return UsageReport(
        run_id=run_id,
        seq=seq,
        ts=ts,
        tenant=tenant,
        principal=principal,
        endpoint=endpoint,
        models=tuple(ModelUsage(model=m, totals=t) for m, t in sorted(models)),
    )


def llm_end(model: str, i: int, o: int, cost: float | None = None) -> NewEvent:
    data: dict[str, object] = {"model": model, "input_tokens": i, "output_tokens": o}
    if cost is not None:
        data["cost"] = cost
    return NewEvent(kind="llm_end", data=msgspec.json.encode(data))


async def test_a_run_adds_up_per_model_and_per_day(store: RunStore) -> None:
    run = await create_running(store)
    assert await store.run_usage(run.id) == []
    assert await store.add_usage(report(run.id, 2, ("gpt-a", totals(10, 5, 0.5))))
    assert await store.add_usage(
        report(run.id, 4, ("gpt-a", totals(1, 2, 0.25)), ("mödel-ü", totals(7, 0, unpriced=1)))
    )
    assert await store.run_usage(run.id) == [
        ModelUsage(model="gpt-a", totals=totals(11, 7, 0.75, calls=2)),
        ModelUsage(model="mödel-ü", totals=totals(7, 0, unpriced=1)),
    ]
    rows = await store.usage(UsageQuery(group_by=("day", "model")))
    assert rows == [
        UsageRow(day="2026-01-01", model="gpt-a", totals=totals(11, 7, 0.75, calls=2)),
        UsageRow(day="2026-01-01", model="mödel-ü", totals=totals(7, 0, unpriced=1)),
    ]


async def test_a_report_is_counted_once_per_run_and_seq(store: RunStore) -> None:
    run = await create_running(store)
    first = report(run.id, 3, ("m", totals(100, 10, 1.0)))
    assert await store.add_usage(first)
    assert not await store.add_usage(first)  # repeated (a retry after an outage)
    assert not await store.add_usage(report(run.id, 2, ("m", totals(5))))  # older
    assert await store.run_usage(run.id) == [ModelUsage(model="m", totals=totals(100, 10, 1.0))]
    assert (await store.usage(UsageQuery(group_by=())))[0].totals == totals(100, 10, 1.0)
    assert await store.add_usage(report(run.id, 4, ("m", totals(1))))
    assert (await store.usage(UsageQuery(group_by=())))[0].totals == totals(101, 10, 1.0, calls=2)


async def test_a_run_that_is_not_in_the_store_counts_only_as_an_aggregate(store: RunStore) -> None:
    assert not await store.add_usage(report("run_elsewhere", 1, ("m", totals(3))))
    assert await store.usage(UsageQuery()) == []
    assert await store.add_usage(report("run_elsewhere", 1, ("m", totals(3))), run=False)
    assert await store.run_usage("run_elsewhere") == []
    assert await store.usage(UsageQuery()) == [UsageRow(day="2026-01-01", totals=totals(3))]


async def test_usage_filters_groups_and_sorts(store: RunStore) -> None:
    a = await create_running(store, tenant="acme")
    b = await create_running(store, tenant="globex")
    await store.add_usage(report(a.id, 1, ("m1", totals(1)), ts=DAY1))
    await store.add_usage(report(a.id, 2, ("m2", totals(2)), ts=DAY2, principal="bob", endpoint="ask"))
    await store.add_usage(report(b.id, 1, ("m1", totals(4)), ts=DAY2, tenant="globex"))

    assert await store.usage(UsageQuery()) == [
        UsageRow(day="2026-01-01", totals=totals(1)),
        UsageRow(day="2026-01-02", totals=totals(6, calls=2)),
    ]
    assert await store.usage(UsageQuery(group_by=("model", "tenant"))) == [
        UsageRow(tenant="acme", model="m1", totals=totals(1)),
        UsageRow(tenant="acme", model="m2", totals=totals(2)),
        UsageRow(tenant="globex", model="m1", totals=totals(4)),
    ]
    assert await store.usage(UsageQuery(tenant="acme", group_by=("principal", "endpoint"))) == [
        UsageRow(principal="alice", endpoint="echo", totals=totals(1)),
        UsageRow(principal="bob", endpoint="ask", totals=totals(2)),
    ]
    only = UsageQuery(tenant="acme", principal="bob", endpoint="ask", model="m2", group_by=())
    assert await store.usage(only) == [UsageRow(totals=totals(2))]
    assert await store.usage(UsageQuery(since="2026-01-02", group_by=("tenant",))) == [
        UsageRow(tenant="acme", totals=totals(2)),
        UsageRow(tenant="globex", totals=totals(4)),
    ]
    assert await store.usage(UsageQuery(until="2026-01-01", group_by=())) == [UsageRow(totals=totals(1))]
    assert await store.usage(UsageQuery(since="2026-01-03", group_by=())) == [UsageRow(totals=Totals())]
    assert await store.usage(UsageQuery(tenant="nobody")) == []
    assert len(await store.usage(UsageQuery(group_by=("day", "tenant", "model"), limit=2))) == 2
    with pytest.raises(ValueError, match="cannot group usage by 'color'"):
        await store.usage(UsageQuery(group_by=("color",)))


async def test_token_counts_saturate_instead_of_overflowing(store: RunStore) -> None:
    run = await create_running(store)
    huge = totals(TOKEN_CAP, TOKEN_CAP)
    assert await store.add_usage(report(run.id, 1, ("m", huge)))
    assert await store.add_usage(report(run.id, 2, ("m", huge)))
    for model in ("x1", "x2", "x3"):  # several rows at the cap, summed by a query
        await store.add_usage(report("run_other", 1, (model, huge)), run=False)
    assert (await store.run_usage(run.id))[0].totals.input_tokens == TOKEN_CAP
    summed = (await store.usage(UsageQuery(group_by=())))[0].totals
    assert summed.input_tokens == summed.output_tokens == TOKEN_CAP
    assert summed.calls == 5


async def test_a_runs_usage_goes_with_the_run_and_the_aggregates_stay(store: RunStore) -> None:
    run = await create_running(store)
    await store.add_usage(report(run.id, 1, ("m", totals(9))))
    finished = await store.transition(
        run.id,
        expect=RUNNING,
        attempt=1,
        update=RunUpdate(status=RunStatus.SUCCEEDED, finished_at=time.time() - 100, clear_worker=True),
    )
    assert finished is not None
    assert await store.delete_finished(time.time()) == 1
    assert await store.run_usage(run.id) == []
    assert (await store.usage(UsageQuery(group_by=())))[0].totals == totals(9)


async def test_a_resent_batch_is_not_counted_twice(store: RunStore) -> None:
    """The gateway's path: parse the batch, append it, count what the store newly stored."""
    accounting = UsageAccounting(
        {"m": {"input_per_million": 2.0, "output_per_million": 4.0}}, store, MemoryRunStore()
    )
    run = await create_running(store)
    batch = [NewEvent(kind="token", data=b'{"text": "a"}'), llm_end("m", 1_000_000, 500_000)]
    reported = accounting.parse(run.id, 1, batch)
    assert reported is not None
    for _ in range(2):  # the second time: resent after a reconnect
        stored = await store.append_events(run.id, 1, 1, batch)
        assert stored is not None
        await accounting.count(run.id, True, reported, stored)
    # Overlapping: the gateway has seq 1-2, the worker resends 2 (stored) and 3 (new).
    overlap = [llm_end("m", 1_000_000, 500_000), llm_end("m", 10, 20, cost=0.5)]
    reported = accounting.parse(run.id, 2, overlap)
    assert reported is not None
    stored = await store.append_events(run.id, 1, 2, overlap)
    assert [event.seq for event in stored or []] == [3]
    assert await accounting.count(run.id, True, reported, stored or [])
    expected = totals(1_000_010, 500_020, 4.5, calls=2)  # 2.0 + 2.0 priced, 0.5 reported
    assert await accounting.run_usage(run) == [ModelUsage(model="m", totals=expected)]
    assert await accounting.usage_since("acme", None, DAY1) == expected
    assert await accounting.usage_since("acme", "alice", time.time()) == expected
    assert await accounting.usage_since("acme", "bob", DAY1) == Totals()
    assert await accounting.usage_since("globex", None, DAY1) == Totals()


async def test_an_ephemeral_runs_usage_is_aggregated_in_the_durable_store(store: RunStore) -> None:
    memory = MemoryRunStore()
    accounting = UsageAccounting({}, store, memory)
    run = await create_running(memory, endpoint="tool")
    batch = [llm_end("m", 5, 6)]
    reported = accounting.parse(run.id, 1, batch)
    stored = await memory.append_events(run.id, 1, 1, batch)
    assert reported is not None and stored is not None
    assert await accounting.count(run.id, False, reported, stored)
    unpriced = totals(5, 6, unpriced=1)
    assert await memory.run_usage(run.id) == [ModelUsage(model="m", totals=unpriced)]
    assert await store.run_usage(run.id) == []
    today = utc_day(time.time())
    assert await store.usage(UsageQuery(group_by=("day", "endpoint"))) == [
        UsageRow(day=today, endpoint="tool", totals=unpriced)
    ]
    assert await memory.usage(UsageQuery()) == []


def test_nothing_stored_is_nothing_counted() -> None:
    accounting = UsageAccounting({}, MemoryRunStore(), MemoryRunStore())
    reported = accounting.parse("run_x", 1, [llm_end("m", 1, 1)])
    assert reported is not None
    run = contract.make_run()
    assert accounting.report(run, reported, []) is None
    stored = [Event(run_id=run.id, seq=1, ts=0.0, kind="llm_end")]
    made = accounting.report(run, reported, stored)
    assert made is not None and made.seq == 1 and made.tenant == "acme" and made.endpoint == "echo"


async def test_sqlite_migrates_a_version_4_file_to_usage(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path)
    for migration in sqlite_store._MIGRATIONS[:4]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    migrated = SQLiteRunStore(str(path))
    await migrated.start()
    try:
        run = await create_running(migrated)
        assert await migrated.add_usage(report(run.id, 1, ("m", totals(1))))
        assert await migrated.run_usage(run.id) == [ModelUsage(model="m", totals=totals(1))]
    finally:
        await migrated.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_store.SCHEMA_VERSION == 7
