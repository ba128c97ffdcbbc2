"""The RunStore contract: every test runs against MemoryRunStore, SQLiteRunStore and PostgresRunStore alike.

The PostgreSQL runs use the real local server, a fresh database per test (tests/services.py); they are
skipped when it is unreachable, and fail instead when FASTAGENTIC_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
import pytest_asyncio

from fastagentic_gateway import cli
from fastagentic_gateway.runs.model import (
    ALLOWED,
    Caller,
    EndpointKind,
    NewEvent,
    Run,
    RunBudget,
    RunError,
    RunQuery,
    RunStatus,
    RunUpdate,
    SequenceGap,
    new_run_id,
)
from fastagentic_gateway.store import (
    MemoryRunStore,
    PostgresRunStore,
    RunStore,
    SQLiteRunStore,
    open_store,
)
from fastagentic_gateway.store import postgres as pg
from fastagentic_gateway.store import sqlite as sqlite_store
from fastagentic_gateway.store.base import RunTimes
from tests.services import postgres_database

ALL_STATUSES = frozenset(RunStatus)
QUEUED = frozenset({RunStatus.QUEUED})
RUNNING = frozenset({RunStatus.RUNNING})


@pytest_asyncio.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    impl: RunStore
    if request.param == "postgres":
        with postgres_database() as url:
            impl = PostgresRunStore(url)
            await impl.start()
            try:
                yield impl
            finally:
                await impl.close()
        return
    if request.param == "memory":
        impl = MemoryRunStore()
    else:
        impl = SQLiteRunStore(str(tmp_path / "data" / "runs.sqlite3"))
    await impl.start()
    yield impl
    await impl.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with postgres_database() as url:
        yield url


def make_run(tenant: str = "acme", endpoint: str = "echo", **fields: Any) -> Run:
    now = time.time()
    fields.setdefault("id", new_run_id())
    fields.setdefault("created_at", now)
    fields.setdefault("updated_at", now)
    fields.setdefault("kind", EndpointKind.AGENT)
    return Run(
        endpoint=endpoint,
        durable=True,
        caller=Caller(principal="alice", tenant=tenant),
        input=b'{"text": "hi"}',
        **fields,
    )


async def create_running(
    store: RunStore, worker: str = "w1", lease: float | None = None, **fields: Any
) -> Run:
    run, _ = await store.create(make_run(**fields))
    result = await store.transition(
        run.id,
        expect=QUEUED,
        attempt=run.attempt,
        update=RunUpdate(
            status=RunStatus.RUNNING,
            worker_id=worker,
            lease_expires_at=time.time() + 30 if lease is None else lease,
            started_at=time.time(),
        ),
    )
    assert result is not None
    return result[0]


async def create_finished(store: RunStore, finished_at: float, **fields: Any) -> Run:
    run = await create_running(store, **fields)
    result = await store.transition(
        run.id,
        expect=RUNNING,
        attempt=run.attempt,
        update=RunUpdate(status=RunStatus.SUCCEEDED, finished_at=finished_at, clear_worker=True),
    )
    assert result is not None
    return result[0]


def events(*kinds: str) -> list[NewEvent]:
    return [NewEvent(kind=kind, data=f'{{"n": {i}}}'.encode()) for i, kind in enumerate(kinds)]


# create / get


async def test_create_then_get_returns_every_field(store: RunStore) -> None:
    run = Run(
        id=new_run_id(),
        endpoint="summarize",
        kind=EndpointKind.TOOL,
        durable=False,
        caller=Caller(principal="bob", tenant="globex"),
        input=b'{"doc": "\x00\xff"}',
        status=RunStatus.WAITING_INPUT,
        attempt=2,
        max_attempts=5,
        output=b'{"partial": true}',
        error=RunError(type="Timeout", message="took too long"),
        idempotency_key="key-1",
        request_hash="sha256:abc",
        worker_id="w9",
        lease_expires_at=1700000100.25,
        deadline_at=1700000900.5,
        last_seq=0,
        created_at=1700000000.125,
        updated_at=1700000050.75,
        started_at=1700000010.0,
        finished_at=None,
        replay_of="run_origin",
        replay_checkpoint=7,
        context_id="ctx-1",
        protocol_meta=b'{"message_id": "m-1"}',
        budget=RunBudget(
            name="per-run", tokens=1000, cost=0.5, downgrade_at=0.8, downgrade_to="mini", hint="h"
        ),
        protocol="mcp",
    )

    stored, created = await store.create(run)

    assert created is True
    assert stored == run
    assert await store.get(run.id) == run


async def test_waiting_lists_every_tenants_waiting_runs_longest_waiting_first(store: RunStore) -> None:
    first = await create_running(store, tenant="acme")
    second = await create_running(store, tenant="other")
    await create_running(store, tenant="acme")  # running: not listed
    for run in (first, second):
        waiting = await store.transition(
            run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.WAITING_INPUT)
        )
        assert waiting is not None
    gated, _ = await store.create(make_run(tenant="third", status=RunStatus.WAITING_INPUT))

    listed = await store.waiting(10)
    assert [run.id for run in listed] == [first.id, second.id, gated.id]
    assert [run.caller.tenant for run in listed] == ["acme", "other", "third"]
    assert [run.id for run in await store.waiting(2)] == [first.id, second.id]
    assert await store.waiting(0) == []


async def test_get_of_unknown_run_is_none(store: RunStore) -> None:
    assert await store.get("run_missing") is None


async def test_create_with_an_existing_id_raises(store: RunStore) -> None:
    run, _ = await store.create(make_run())

    with pytest.raises(ValueError, match="already exists"):
        await store.create(make_run(id=run.id, endpoint="other"))
    assert await store.get(run.id) == run


async def test_mutating_runs_given_or_returned_does_not_change_the_store(store: RunStore) -> None:
    given = make_run()
    snapshot = msgspec.structs.replace(given)
    returned, _ = await store.create(given)
    fetched = await store.get(given.id)
    assert fetched is not None

    given.endpoint = "changed"
    returned.attempt = 7
    fetched.status = RunStatus.FAILED

    assert await store.get(given.id) == snapshot


# tenant scoping


async def test_get_with_another_tenant_is_none(store: RunStore) -> None:
    run, _ = await store.create(make_run(tenant="acme"))

    assert await store.get(run.id, tenant="globex") is None
    assert await store.get(run.id, tenant="acme") == run


async def test_list_returns_only_the_tenants_runs(store: RunStore) -> None:
    mine, _ = await store.create(make_run(tenant="acme"))
    await store.create(make_run(tenant="globex"))

    assert await store.list(RunQuery(tenant="acme")) == [mine]


# idempotency


async def test_same_idempotency_key_returns_the_existing_run(store: RunStore) -> None:
    first, created = await store.create(make_run(idempotency_key="k"))
    assert created is True

    again, created = await store.create(make_run(idempotency_key="k", endpoint="other"))

    assert created is False
    assert again == first
    assert await store.get(again.id) == first
    assert await store.list(RunQuery(tenant="acme")) == [first]


async def test_same_idempotency_key_in_another_tenant_creates_a_new_run(store: RunStore) -> None:
    await store.create(make_run(tenant="acme", idempotency_key="k"))

    other, created = await store.create(make_run(tenant="globex", idempotency_key="k"))

    assert created is True
    assert await store.get(other.id, tenant="globex") == other


async def test_runs_without_idempotency_key_are_all_created(store: RunStore) -> None:
    results = [await store.create(make_run()) for _ in range(3)]

    assert [created for _, created in results] == [True, True, True]
    assert len(await store.list(RunQuery(tenant="acme"))) == 3


# list


async def test_list_is_newest_first_and_stops_at_limit(store: RunStore) -> None:
    runs = [(await store.create(make_run()))[0] for _ in range(5)]

    listed = await store.list(RunQuery(tenant="acme", limit=3))

    assert [run.id for run in listed] == [run.id for run in reversed(runs)][:3]


async def test_list_filters_by_status(store: RunStore) -> None:
    queued, _ = await store.create(make_run())
    running = await create_running(store)

    assert await store.list(RunQuery(tenant="acme", status=RunStatus.RUNNING)) == [running]
    assert await store.list(RunQuery(tenant="acme", status=RunStatus.QUEUED)) == [queued]


async def test_list_filters_by_endpoint(store: RunStore) -> None:
    echo, _ = await store.create(make_run(endpoint="echo"))
    await store.create(make_run(endpoint="summarize"))

    assert await store.list(RunQuery(tenant="acme", endpoint="echo")) == [echo]


async def test_list_pages_with_the_before_cursor(store: RunStore) -> None:
    ids = [(await store.create(make_run()))[0].id for _ in range(5)]
    newest_first = ids[::-1]

    page1 = await store.list(RunQuery(tenant="acme", limit=2))
    page2 = await store.list(RunQuery(tenant="acme", limit=2, before=page1[-1].id))
    page3 = await store.list(RunQuery(tenant="acme", limit=2, before=page2[-1].id))

    assert [run.id for run in page1 + page2 + page3] == newest_first
    assert await store.list(RunQuery(tenant="acme", before=page3[-1].id)) == []


async def test_list_filters_by_context_and_pages_within_it(store: RunStore) -> None:
    in_context = [(await store.create(make_run(context_id="ctx-1")))[0] for _ in range(3)]
    await store.create(make_run(context_id="ctx-2"))
    await store.create(make_run())
    await store.create(make_run(tenant="globex", context_id="ctx-1"))
    newest_first = in_context[::-1]

    page1 = await store.list(RunQuery(tenant="acme", context_id="ctx-1", limit=2))
    page2 = await store.list(RunQuery(tenant="acme", context_id="ctx-1", limit=2, before=page1[-1].id))

    assert page1 + page2 == newest_first
    assert await store.list(RunQuery(tenant="acme", context_id="ctx-none")) == []
    assert await store.count(RunQuery(tenant="acme", context_id="ctx-1", limit=1, before=page1[0].id)) == 3
    assert await store.count(RunQuery(tenant="acme")) == 5


async def test_list_and_count_filter_by_kind_statuses_and_update_time(store: RunStore) -> None:
    queued, _ = await store.create(make_run(updated_at=100.0))
    running = await create_running(store)  # updated now
    tool, _ = await store.create(make_run(updated_at=100.0, kind=EndpointKind.TOOL))

    agents = RunQuery(tenant="acme", kind=EndpointKind.AGENT)
    active = RunQuery(tenant="acme", statuses=frozenset({RunStatus.QUEUED, RunStatus.RUNNING}))
    recent = RunQuery(tenant="acme", updated_after=running.updated_at)
    nothing = RunQuery(tenant="acme", statuses=frozenset())

    assert await store.list(agents) == [running, queued]
    assert await store.list(RunQuery(tenant="acme", kind=EndpointKind.TOOL)) == [tool]
    assert await store.list(active) == [tool, running, queued]
    assert await store.list(recent) == [running]
    assert await store.list(nothing) == []
    assert [await store.count(q) for q in (agents, active, recent, nothing)] == [2, 3, 1, 0]
    both = RunQuery(tenant="acme", kind=EndpointKind.AGENT, statuses=frozenset({RunStatus.QUEUED}))
    assert await store.list(both) == [queued]
    assert await store.count(both) == 1


# run_times (GET /v1/stats)


def run_id_at(ts: float) -> str:
    """A run id as ``new_run_id`` makes it at Unix time ``ts``."""
    return f"run_{int(ts * 1000):012x}0000{os.urandom(8).hex()}"


async def created_at(store: RunStore, ts: float, tenant: str = "acme", endpoint: str = "echo") -> Run:
    run, _ = await store.create(
        make_run(tenant=tenant, endpoint=endpoint, id=run_id_at(ts), created_at=ts, updated_at=ts)
    )
    return run


async def ended(store: RunStore, run: Run, started: float, status: RunStatus, finished: float) -> None:
    assert await store.transition(
        run.id, expect=QUEUED, attempt=1, update=RunUpdate(status=RunStatus.RUNNING, started_at=started)
    )
    assert await store.transition(
        run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=status, finished_at=finished)
    )


async def test_run_times_are_the_tenants_runs_since_a_time_newest_first(store: RunStore) -> None:
    now = time.time()
    since = now - 3600
    await ended(store, await created_at(store, now - 7200), now - 7199, RunStatus.SUCCEEDED, now - 7190)
    await created_at(store, since - 0.5)  # within run_id_floor's second, before since: not counted
    ok = await created_at(store, now - 600)
    await ended(store, ok, now - 599.5, RunStatus.SUCCEEDED, now - 590)
    failed = await created_at(store, now - 500)
    await ended(store, failed, now - 499, RunStatus.FAILED, now - 480)
    running = await created_at(store, now - 400, endpoint="summarize")
    assert await store.transition(
        running.id, expect=QUEUED, attempt=1, update=RunUpdate(status=RunStatus.RUNNING, started_at=now - 300)
    )
    await created_at(store, now - 200, endpoint="summarize")  # still queued
    await created_at(store, now - 100, tenant="globex")

    found = await store.run_times("acme", since, 100)

    assert found == [
        RunTimes("summarize", RunStatus.QUEUED, now - 200, None, None),
        RunTimes("summarize", RunStatus.RUNNING, now - 400, now - 300, None),
        RunTimes("echo", RunStatus.FAILED, now - 500, now - 499, now - 480),
        RunTimes("echo", RunStatus.SUCCEEDED, now - 600, now - 599.5, now - 590),
    ]
    assert await store.run_times("acme", since, 2) == found[:2]
    assert await store.run_times("acme", since, 0) == []
    assert await store.run_times("acme", now - 450, 100) == found[:2]
    assert [t.created_at for t in await store.run_times("globex", since, 100)] == [now - 100]
    assert await store.run_times("initech", since, 100) == []
    assert len(await store.run_times("acme", now - 8000, 100)) == 6


async def test_run_times_read_the_tenant_id_index_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SQLiteRunStore(str(path))
    await store.start()
    await store.close()
    sql, params = sqlite_store.run_times_sql("runs", "acme", time.time() - 3600, 100_000, "?")
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    conn.close()

    assert "USING INDEX runs_tenant_id (tenant=? AND id>?)" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index gives the order


async def test_run_times_read_the_tenant_id_index_on_postgres(pg_url: str) -> None:
    store = PostgresRunStore(pg_url)
    await store.start()
    await store.close()
    sql, params = sqlite_store.run_times_sql("fastagentic_runs", "acme", time.time() - 3600, 100_000, "%s")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # an empty table: make the planner show the index it can use
        plan = "\n".join(str(row[0]) for row in conn.execute(f"EXPLAIN {sql}", params))

    assert "fastagentic_runs_tenant_id" in plan, plan
    assert "Index Cond: ((tenant = 'acme'::text) AND (id >= " in plan, plan
    assert "Sort" not in plan, plan


# transition


async def test_a_run_created_started_has_its_first_events_in_the_same_write(store: RunStore) -> None:
    now = time.time()
    run = make_run(status=RunStatus.RUNNING, worker_id="w1", lease_expires_at=now + 30, started_at=now)
    started = NewEvent("run.started", b'{"attempt": 1}', ts=now)
    stored, created = await store.create(run, [started, NewEvent("progress", b"{}", ts=now + 1)])
    assert created and stored.last_seq == 2 and stored.status is RunStatus.RUNNING
    assert await store.get(run.id) == stored
    log = await store.events(run.id)
    assert [(e.seq, e.kind, e.ts, e.data) for e in log] == [
        (1, "run.started", now, b'{"attempt": 1}'),
        (2, "progress", now + 1, b"{}"),
    ]
    # The worker's own events follow them, and the run ends as any other.
    assert await store.append_events(run.id, 1, 3, events("token"))
    ended = await store.transition(
        run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.SUCCEEDED, output=b"1")
    )
    assert ended is not None and ended[0].last_seq == 3


async def test_a_run_created_started_under_a_used_idempotency_key_stores_no_events(store: RunStore) -> None:
    first, _ = await store.create(make_run(idempotency_key="k"))
    again, created = await store.create(
        make_run(idempotency_key="k", status=RunStatus.RUNNING, worker_id="w1"),
        [NewEvent("run.started", b"{}", ts=time.time())],
    )
    assert created is False and again == first
    assert await store.events(first.id) == []
    assert (await store.get(first.id)) == first


async def test_transition_queued_running_succeeded_numbers_events_from_one(store: RunStore) -> None:
    run, _ = await store.create(make_run())
    before = time.time()

    started = await store.transition(
        run.id,
        expect=QUEUED,
        attempt=1,
        update=RunUpdate(
            status=RunStatus.RUNNING, worker_id="w1", lease_expires_at=before + 30, started_at=before
        ),
        events=events("run.started"),
    )
    assert started is not None
    running, started_events = started
    finished = await store.transition(
        run.id,
        expect=RUNNING,
        attempt=1,
        update=RunUpdate(status=RunStatus.SUCCEEDED, output=b'{"ok": true}', clear_worker=True),
        events=events("message", "run.completed"),
    )
    assert finished is not None
    done, done_events = finished

    assert (running.status, running.worker_id, running.started_at) == (RunStatus.RUNNING, "w1", before)
    assert running.updated_at >= before
    assert (done.status, done.output, done.last_seq) == (RunStatus.SUCCEEDED, b'{"ok": true}', 3)
    assert [(e.seq, e.kind) for e in started_events + done_events] == [
        (1, "run.started"),
        (2, "message"),
        (3, "run.completed"),
    ]
    assert await store.events(run.id) == started_events + done_events
    assert await store.get(run.id) == done


async def test_transition_leaves_fields_the_update_does_not_set(store: RunStore) -> None:
    run = await create_running(store, worker="w1", lease=5000.0)

    result = await store.transition(
        run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.WAITING_INPUT)
    )

    assert result is not None
    assert (result[0].worker_id, result[0].lease_expires_at) == ("w1", 5000.0)
    assert (result[0].started_at, result[0].attempt, result[0].input) == (run.started_at, 1, run.input)


async def test_transition_can_raise_max_attempts_with_the_attempt(store: RunStore) -> None:
    run = await create_running(store, max_attempts=3)

    result = await store.transition(
        run.id,
        expect=RUNNING,
        attempt=1,
        update=RunUpdate(status=RunStatus.QUEUED, attempt=2, max_attempts=4, clear_worker=True),
    )

    assert result is not None
    assert (result[0].attempt, result[0].max_attempts) == (2, 4)
    stored = await store.get(run.id)
    assert stored is not None and (stored.attempt, stored.max_attempts) == (2, 4)
    # Left as it is when the update does not set it.
    again = await store.transition(
        run.id, expect=QUEUED, attempt=2, update=RunUpdate(status=RunStatus.RUNNING, worker_id="w2")
    )
    assert again is not None and again[0].max_attempts == 4
    assert await store.get(run.id) == again[0]


async def test_transition_clear_worker_clears_worker_and_lease(store: RunStore) -> None:
    run = await create_running(store)

    result = await store.transition(
        run.id,
        expect=RUNNING,
        attempt=1,
        update=RunUpdate(status=RunStatus.QUEUED, attempt=2, clear_worker=True),
    )

    assert result is not None
    assert (result[0].worker_id, result[0].lease_expires_at, result[0].attempt) == (None, None, 2)
    assert await store.get(run.id) == result[0]


async def test_transition_to_terminal_sets_finished_at(store: RunStore) -> None:
    run = await create_running(store)
    before = time.time()

    result = await store.transition(
        run.id,
        expect=RUNNING,
        attempt=1,
        update=RunUpdate(status=RunStatus.FAILED, error=RunError(type="Boom", message="it broke")),
    )

    assert result is not None
    assert result[0].finished_at is not None and result[0].finished_at >= before
    assert result[0].error == RunError(type="Boom", message="it broke")


async def test_transition_to_terminal_keeps_a_given_finished_at(store: RunStore) -> None:
    run = await create_running(store)

    result = await store.transition(
        run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.CANCELLED, finished_at=123.5)
    )

    assert result is not None
    assert result[0].finished_at == 123.5


async def test_non_terminal_transition_leaves_finished_at_unset(store: RunStore) -> None:
    run = await create_running(store)

    result = await store.transition(
        run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.WAITING_INPUT)
    )

    assert result is not None
    assert result[0].finished_at is None


async def test_transition_events_keep_their_ts_or_get_now(store: RunStore) -> None:
    run, _ = await store.create(make_run())
    before = time.time()

    result = await store.transition(
        run.id,
        expect=QUEUED,
        attempt=1,
        update=RunUpdate(status=RunStatus.RUNNING),
        events=[NewEvent(kind="a", ts=42.0), NewEvent(kind="b")],
    )

    assert result is not None
    stamped = result[1]
    assert stamped[0].ts == 42.0
    assert before <= stamped[1].ts <= time.time()


async def test_transition_with_wrong_attempt_returns_none_and_changes_nothing(store: RunStore) -> None:
    run = await create_running(store)

    result = await store.transition(
        run.id,
        expect=RUNNING,
        attempt=2,
        update=RunUpdate(status=RunStatus.SUCCEEDED, output=b"{}"),
        events=events("run.completed"),
    )

    assert result is None
    assert await store.get(run.id) == run
    assert await store.events(run.id) == []


async def test_transition_from_unexpected_status_returns_none(store: RunStore) -> None:
    run, _ = await store.create(make_run())

    result = await store.transition(
        run.id, expect=RUNNING, attempt=None, update=RunUpdate(status=RunStatus.SUCCEEDED)
    )

    assert result is None
    assert await store.get(run.id) == run


async def test_disallowed_transition_returns_none(store: RunStore) -> None:
    run, _ = await store.create(make_run())
    assert RunStatus.SUCCEEDED not in ALLOWED[RunStatus.QUEUED]

    result = await store.transition(
        run.id,
        expect=QUEUED,
        attempt=None,
        update=RunUpdate(status=RunStatus.SUCCEEDED),
        events=events("run.completed"),
    )

    assert result is None
    assert await store.get(run.id) == run
    assert await store.events(run.id) == []


async def test_terminal_run_never_changes(store: RunStore) -> None:
    run = await create_finished(store, finished_at=time.time())
    log = await store.events(run.id)

    for status in RunStatus:
        result = await store.transition(
            run.id, expect=ALL_STATUSES, attempt=None, update=RunUpdate(status=status), events=events("x")
        )
        assert result is None, status
    assert await store.append_events(run.id, run.attempt, run.last_seq + 1, events("x")) is None
    assert await store.get(run.id) == run
    assert await store.events(run.id) == log


async def test_transition_of_unknown_run_returns_none(store: RunStore) -> None:
    result = await store.transition(
        "run_missing", expect=ALL_STATUSES, attempt=None, update=RunUpdate(status=RunStatus.CANCELLED)
    )

    assert result is None


# append_events


async def test_append_events_continues_the_log_contiguously(store: RunStore) -> None:
    run = await create_running(store)

    first = await store.append_events(run.id, 1, 1, events("a", "b"))
    second = await store.append_events(run.id, 1, 3, events("c"))

    assert first is not None and second is not None
    assert [(e.seq, e.kind) for e in first + second] == [(1, "a"), (2, "b"), (3, "c")]
    assert await store.events(run.id) == first + second
    stored = await store.get(run.id)
    assert stored is not None and stored.last_seq == 3


async def test_append_events_drops_events_already_accepted(store: RunStore) -> None:
    run = await create_running(store)
    await store.append_events(run.id, 1, 1, events("a", "b"))

    appended = await store.append_events(run.id, 1, 2, events("b", "c", "d"))

    assert appended is not None
    assert [(e.seq, e.kind) for e in appended] == [(3, "c"), (4, "d")]
    assert [e.kind for e in await store.events(run.id)] == ["a", "b", "c", "d"]


async def test_append_events_of_a_fully_accepted_batch_appends_nothing(store: RunStore) -> None:
    run = await create_running(store)
    await store.append_events(run.id, 1, 1, events("a", "b"))

    assert await store.append_events(run.id, 1, 1, events("a", "b")) == []
    stored = await store.get(run.id)
    assert stored is not None and stored.last_seq == 2


async def test_append_events_with_a_gap_raises_sequence_gap(store: RunStore) -> None:
    run = await create_running(store)
    await store.append_events(run.id, 1, 1, events("a"))

    with pytest.raises(SequenceGap) as gap:
        await store.append_events(run.id, 1, 3, events("c"))

    assert (gap.value.expected, gap.value.got) == (2, 3)
    assert [e.seq for e in await store.events(run.id)] == [1]


async def test_append_events_rejects_a_first_seq_below_one(store: RunStore) -> None:
    run = await create_running(store)

    with pytest.raises(ValueError, match="start at 1"):
        await store.append_events(run.id, 1, 0, events("a"))


async def test_append_events_is_fenced_when_the_run_is_not_running(store: RunStore) -> None:
    run, _ = await store.create(make_run())

    assert await store.append_events(run.id, 1, 1, events("a")) is None
    assert await store.events(run.id) == []


async def test_append_events_is_fenced_for_another_attempt(store: RunStore) -> None:
    run = await create_running(store)

    assert await store.append_events(run.id, 2, 1, events("a")) is None
    assert await store.events(run.id) == []


async def test_append_events_to_an_unknown_run_is_none(store: RunStore) -> None:
    assert await store.append_events("run_missing", 1, 1, events("a")) is None


async def test_events_after_seq_with_limit(store: RunStore) -> None:
    run = await create_running(store)
    await store.append_events(run.id, 1, 1, events("a", "b", "c", "d"))

    assert [e.kind for e in await store.events(run.id, after_seq=1, limit=2)] == ["b", "c"]
    assert [e.kind for e in await store.events(run.id, after_seq=2)] == ["c", "d"]
    assert await store.events(run.id, after_seq=4) == []


# checkpoints


async def test_checkpoint_events_store_numbered_checkpoints_at_their_seq(store: RunStore) -> None:
    run = await create_running(store)
    batch = [
        NewEvent(kind="message"),
        NewEvent(kind="checkpoint", checkpoint=b"state-1"),
        NewEvent(kind="checkpoint", checkpoint=b"state-2"),
    ]

    appended = await store.append_events(run.id, 1, 1, batch)
    await store.append_events(run.id, 1, 4, [NewEvent(kind="checkpoint", checkpoint=b"state-3")])

    assert appended is not None
    saved = await store.checkpoints(run.id)
    assert [(cp.id, cp.seq, cp.attempt, cp.state) for cp in saved] == [
        (1, 2, 1, b"state-1"),
        (2, 3, 1, b"state-2"),
        (3, 4, 1, b"state-3"),
    ]
    assert saved[0].ts == appended[1].ts
    assert await store.last_checkpoint(run.id) == saved[-1]


async def test_checkpoint_event_without_state_stores_no_checkpoint(store: RunStore) -> None:
    run = await create_running(store)

    await store.append_events(
        run.id, 1, 1, [NewEvent(kind="checkpoint"), NewEvent(kind="message", checkpoint=b"ignored")]
    )

    assert await store.checkpoints(run.id) == []
    assert await store.last_checkpoint(run.id) is None


async def test_checkpoint_event_in_a_transition_stores_a_checkpoint_of_the_old_attempt(
    store: RunStore,
) -> None:
    run = await create_running(store)
    await store.append_events(run.id, 1, 1, events("a"))

    await store.transition(
        run.id,
        expect=RUNNING,
        attempt=1,
        update=RunUpdate(status=RunStatus.QUEUED, attempt=2, clear_worker=True),
        events=[NewEvent(kind="checkpoint", checkpoint=b"resume-here")],
    )

    saved = await store.last_checkpoint(run.id)
    assert saved is not None
    assert (saved.id, saved.seq, saved.attempt, saved.state) == (1, 2, 1, b"resume-here")


async def test_checkpoint_by_id(store: RunStore) -> None:
    run = await create_running(store)
    other = await create_running(store)
    await store.append_events(
        run.id,
        1,
        1,
        [NewEvent(kind="checkpoint", checkpoint=b"s1"), NewEvent(kind="checkpoint", checkpoint=b"s2")],
    )
    await store.append_events(other.id, 1, 1, [NewEvent(kind="checkpoint", checkpoint=b"o1")])

    second = await store.checkpoint(run.id, 2)
    assert second is not None and (second.id, second.seq, second.state) == (2, 2, b"s2")
    first = await store.checkpoint(run.id, 1)
    assert first is not None and first.state == b"s1"
    assert await store.checkpoint(run.id, 3) is None
    assert await store.checkpoint(run.id, 0) is None
    assert await store.checkpoint("run_missing", 1) is None


async def test_context_and_protocol_meta_survive_transitions(store: RunStore) -> None:
    budget = RunBudget(name="b", cost=1.0)
    run = await create_running(
        store, context_id="ctx", protocol_meta=b'{"m": 1}', budget=budget, protocol="a2a"
    )

    result = await store.transition(
        run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.SUCCEEDED, output=b"1")
    )

    assert result is not None
    assert (result[0].context_id, result[0].protocol_meta, result[0].budget, result[0].protocol) == (
        "ctx",
        b'{"m": 1}',
        budget,
        "a2a",
    )
    assert await store.get(run.id) == result[0]
    assert await store.list(RunQuery(tenant="acme", context_id="ctx")) == [result[0]]


async def test_replay_fields_survive_transitions(store: RunStore) -> None:
    run = await create_running(store, replay_of="run_origin", replay_checkpoint=2)

    result = await store.transition(
        run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.SUCCEEDED, output=b"1")
    )

    assert result is not None
    stored = await store.get(run.id)
    assert stored is not None and (stored.replay_of, stored.replay_checkpoint) == ("run_origin", 2)
    assert result[0] == stored
    listed = await store.list(RunQuery(tenant="acme"))
    assert [(r.replay_of, r.replay_checkpoint) for r in listed] == [("run_origin", 2)]


async def test_duplicate_checkpoint_events_are_not_stored_twice(store: RunStore) -> None:
    run = await create_running(store)
    batch = [NewEvent(kind="checkpoint", checkpoint=b"s1")]
    await store.append_events(run.id, 1, 1, batch)

    await store.append_events(run.id, 1, 1, batch)

    assert len(await store.checkpoints(run.id)) == 1


# leases and recovery


async def test_renew_leases_extends_running_runs_of_that_worker_only(store: RunStore) -> None:
    mine = await create_running(store, worker="w1", lease=100.0)
    theirs = await create_running(store, worker="w2", lease=100.0)
    paused = await create_running(store, worker="w1", lease=100.0)
    await store.transition(
        paused.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.WAITING_INPUT)
    )

    assert await store.renew_leases("w1", 500.0) == 1

    leases = {run.id: run.lease_expires_at for run in await store.list(RunQuery(tenant="acme"))}
    assert leases == {mine.id: 500.0, theirs.id: 100.0, paused.id: 100.0}


async def test_expired_returns_running_runs_with_lease_before_now_oldest_first(store: RunStore) -> None:
    later = await create_running(store, lease=200.0)
    earlier = await create_running(store, lease=100.0)
    await create_running(store, lease=400.0)
    await store.create(make_run())

    assert [run.id for run in await store.expired(now=300.0)] == [earlier.id, later.id]
    assert [run.id for run in await store.expired(now=300.0, limit=1)] == [earlier.id]
    assert await store.expired(now=100.0) == []


async def test_overdue_returns_active_runs_past_their_deadline_earliest_first(store: RunStore) -> None:
    queued, _ = await store.create(make_run(deadline_at=200.0))
    running = await create_running(store, deadline_at=100.0)
    waiting = await create_running(store, deadline_at=150.0)
    await store.transition(
        waiting.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.WAITING_INPUT)
    )
    await create_finished(store, finished_at=10.0, deadline_at=50.0)  # finished: never overdue
    await create_running(store, deadline_at=400.0)  # not yet
    await create_running(store)  # no deadline

    assert [run.id for run in await store.overdue(now=300.0)] == [running.id, waiting.id, queued.id]
    assert [run.id for run in await store.overdue(now=300.0, limit=2)] == [running.id, waiting.id]
    assert await store.overdue(now=100.0) == []


async def test_queued_returns_queued_runs_oldest_first(store: RunStore) -> None:
    first, _ = await store.create(make_run())
    await create_running(store)
    second, _ = await store.create(make_run(tenant="globex"))
    third, _ = await store.create(make_run())

    assert await store.queued() == [first, second, third]
    assert await store.queued(limit=2) == [first, second]


# push configs


def config_ids(found: list[Any]) -> list[str]:
    return [config.id for config in found]


async def test_push_configs_are_stored_per_run_in_the_order_stored(store: RunStore) -> None:
    run, _ = await store.create(make_run(tenant="globex"))
    other, _ = await store.create(make_run())

    assert await store.put_push_config(run.id, "b", b'{"url": "http://b"}') is True
    assert await store.put_push_config(run.id, "a", b'{"url": "http://a"}') is True
    assert await store.put_push_config(other.id, "a", b'{"url": "http://other"}') is True

    found = await store.push_configs(run.id)
    assert config_ids(found) == ["b", "a"]
    assert [(c.run_id, c.tenant, c.config) for c in found] == [
        (run.id, "globex", b'{"url": "http://b"}'),
        (run.id, "globex", b'{"url": "http://a"}'),
    ]
    assert [c.config for c in await store.push_configs(other.id)] == [b'{"url": "http://other"}']
    assert await store.push_configs("run_missing") == []


async def test_storing_a_push_config_again_replaces_it(store: RunStore) -> None:
    run, _ = await store.create(make_run())
    await store.put_push_config(run.id, "a", b"1")
    await store.put_push_config(run.id, "b", b"2")

    assert await store.put_push_config(run.id, "a", b"3") is True

    found = await store.push_configs(run.id)
    assert [(c.id, c.config) for c in found] == [("b", b"2"), ("a", b"3")]


async def test_push_config_of_an_unknown_run_is_not_stored(store: RunStore) -> None:
    assert await store.put_push_config("run_missing", "a", b"1") is False
    assert await store.push_configs("run_missing") == []


async def test_delete_push_config_one_or_all(store: RunStore) -> None:
    run, _ = await store.create(make_run())
    for config_id in ("a", "b", "c"):
        await store.put_push_config(run.id, config_id, b"{}")

    assert await store.delete_push_config(run.id, "b") == 1
    assert await store.delete_push_config(run.id, "b") == 0
    assert config_ids(await store.push_configs(run.id)) == ["a", "c"]
    assert await store.delete_push_config(run.id) == 2
    assert await store.push_configs(run.id) == []
    assert await store.delete_push_config(run.id) == 0
    assert await store.delete_push_config("run_missing", "a") == 0


async def test_pushing_lists_active_runs_with_push_configs_oldest_first(store: RunStore) -> None:
    running = await create_running(store)
    queued, _ = await store.create(make_run())
    finished = await create_finished(store, finished_at=1.0)
    await store.create(make_run())  # no config
    for run in (queued, finished, running):
        await store.put_push_config(run.id, "a", b"{}")
        await store.put_push_config(run.id, "b", b"{}")

    assert await store.pushing() == [running, queued]
    assert await store.pushing(limit=1) == [running]
    await store.delete_push_config(running.id)
    assert await store.pushing() == [queued]


# retention


async def test_delete_finished_removes_old_terminal_runs_with_events_and_checkpoints(store: RunStore) -> None:
    run = await create_running(store)
    await store.append_events(run.id, 1, 1, [NewEvent(kind="checkpoint", checkpoint=b"s")])
    await store.put_push_config(run.id, "a", b"{}")
    await store.transition(run.id, expect=RUNNING, attempt=1, update=RunUpdate(status=RunStatus.FAILED))

    assert await store.delete_finished(before=time.time() + 1) == 1

    assert await store.get(run.id) is None
    assert await store.events(run.id) == []
    assert await store.checkpoints(run.id) == []
    assert await store.last_checkpoint(run.id) is None
    assert await store.push_configs(run.id) == []


async def test_delete_finished_keeps_active_and_recently_finished_runs(store: RunStore) -> None:
    old = await create_finished(store, finished_at=100.0)
    recent = await create_finished(store, finished_at=900.0)
    active = await create_running(store)

    assert await store.delete_finished(before=500.0) == 1

    assert await store.get(old.id) is None
    assert await store.get(recent.id) == recent
    assert await store.get(active.id) == active


async def test_delete_finished_deletes_at_most_limit_oldest_first(store: RunStore) -> None:
    newest = await create_finished(store, finished_at=300.0)
    oldest = await create_finished(store, finished_at=100.0)
    middle = await create_finished(store, finished_at=200.0)

    assert await store.delete_finished(before=1000.0, limit=2) == 2

    assert await store.get(oldest.id) is None
    assert await store.get(middle.id) is None
    assert await store.get(newest.id) == newest


async def test_deleting_a_run_frees_its_idempotency_key(store: RunStore) -> None:
    old = await create_finished(store, finished_at=100.0, idempotency_key="k")
    await store.delete_finished(before=500.0)

    fresh, created = await store.create(make_run(idempotency_key="k"))

    assert created is True
    assert fresh.id != old.id


# implementation specifics


async def test_memory_store_evicts_the_oldest_finished_runs_beyond_max_finished() -> None:
    store = MemoryRunStore(max_finished=2)
    first = await create_finished(store, finished_at=1.0, idempotency_key="k")
    await store.append_events(first.id, 1, 1, events("a"))
    await store.put_push_config(first.id, "a", b"{}")
    second = await create_finished(store, finished_at=2.0)
    active = await create_running(store)

    third = await create_finished(store, finished_at=3.0)

    assert await store.get(first.id) is None
    assert await store.events(first.id) == []
    assert await store.push_configs(first.id) == []
    assert [await store.get(run.id) for run in (second, third, active)] == [second, third, active]
    assert (await store.create(make_run(idempotency_key="k")))[1] is True


async def test_memory_store_rejects_negative_max_finished() -> None:
    with pytest.raises(ValueError, match="max_finished"):
        MemoryRunStore(max_finished=-1)


@pytest.fixture(params=["sqlite", "postgres"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], RunStore]:
    """Makes a new durable store object on the same file or database each time it is called."""
    if request.param == "sqlite":
        path = str(tmp_path / "runs.sqlite3")
        return lambda: SQLiteRunStore(path)
    url = request.getfixturevalue("pg_url")
    return lambda: PostgresRunStore(url)


async def test_durable_data_survives_close_and_reopen(reopen: Callable[[], RunStore]) -> None:
    first = reopen()
    await first.start()
    run = await create_running(first, context_id="ctx", protocol_meta=b'{"m": 1}')
    await first.append_events(run.id, 1, 1, [NewEvent(kind="checkpoint", checkpoint=b"s")])
    await first.put_push_config(run.id, "a", b'{"url": "http://a"}')
    stored = await first.get(run.id)
    log = await first.events(run.id)
    configs = await first.push_configs(run.id)
    await first.close()

    second = reopen()
    await second.start()
    try:
        assert await second.get(run.id) == stored
        assert stored is not None and (stored.context_id, stored.protocol_meta) == ("ctx", b'{"m": 1}')
        assert await second.list(RunQuery(tenant="acme", context_id="ctx")) == [stored]
        assert await second.events(run.id) == log
        assert [cp.state for cp in await second.checkpoints(run.id)] == [b"s"]
        assert await second.push_configs(run.id) == configs and config_ids(configs) == ["a"]
    finally:
        await second.close()


async def test_sqlite_schema_is_versioned_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    store = SQLiteRunStore(str(path))
    await store.start()
    await store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_sqlite_file_of_schema_version_1_is_migrated_keeping_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path)
    for statement in sqlite_store._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO runs (id, endpoint, kind, durable, principal, tenant, input, status, attempt, "
        "max_attempts, last_seq, created_at, updated_at, deadline_at) "
        "VALUES ('run_old', 'echo', 'agent', 1, 'alice', 'acme', x'7b7d', 'queued', 1, 3, 0, 1.0, 1.0, 5.0)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    store = SQLiteRunStore(str(path))
    await store.start()
    try:
        old = await store.get("run_old")
        assert old is not None and (old.replay_of, old.replay_checkpoint, old.deadline_at) == (
            None,
            None,
            5.0,
        )
        assert [run.id for run in await store.overdue(now=10.0)] == ["run_old"]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()


OLD_RUN_COLUMNS = (
    "id, endpoint, kind, durable, principal, tenant, input, status, attempt, max_attempts, last_seq, "
    "created_at, updated_at, replay_of"
)


async def test_sqlite_file_of_schema_version_2_is_migrated_keeping_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path)
    for migration in sqlite_store._MIGRATIONS[:2]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(
        f"INSERT INTO runs ({OLD_RUN_COLUMNS}) "
        "VALUES ('run_old', 'echo', 'agent', 1, 'alice', 'acme', x'7b7d', 'queued', 1, 3, 0, 1.0, 1.0, 'run_x')"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()

    store = SQLiteRunStore(str(path))
    await store.start()
    try:
        await assert_schema_2_run_migrated(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()


async def assert_schema_2_run_migrated(store: RunStore) -> None:
    """A run written by schema version 2, read by the current one: no context, no push configs, and
    both work from now on (the push config table cascades with the run)."""
    old = await store.get("run_old")
    assert old is not None and (old.replay_of, old.context_id, old.protocol_meta) == ("run_x", None, None)
    assert await store.list(RunQuery(tenant="acme", context_id="ctx")) == []
    assert await store.list(RunQuery(tenant="acme")) == [old]
    new, _ = await store.create(make_run(context_id="ctx"))
    assert await store.list(RunQuery(tenant="acme", context_id="ctx")) == [new]
    assert await store.put_push_config("run_old", "a", b"{}") is True
    assert config_ids(await store.push_configs("run_old")) == ["a"]
    result = await store.transition(
        "run_old", expect=QUEUED, attempt=1, update=RunUpdate(status=RunStatus.CANCELLED, finished_at=2.0)
    )
    assert result is not None
    assert await store.delete_finished(before=3.0) == 1
    assert await store.push_configs("run_old") == []


async def test_postgres_database_of_schema_version_1_is_migrated_keeping_its_runs(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(pg.migrations()[0].sql.encode())
        conn.execute(
            "CREATE TABLE fastagentic_schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
        )
        conn.execute("INSERT INTO fastagentic_schema_migrations VALUES (1, now())")
        conn.execute(
            "INSERT INTO fastagentic_runs (id, endpoint, kind, durable, principal, tenant, input, status, "
            "attempt, max_attempts, last_seq, created_at, updated_at, deadline_at) "
            "VALUES ('run_old', 'echo', 'agent', true, 'alice', 'acme', '{}', 'queued', 1, 3, 0, 1.0, 1.0, 5.0)"
        )

    store = PostgresRunStore(pg_url)
    await store.start()
    try:
        assert [m.name for m in store.applied] == [
            "0002_replay_and_deadlines",
            "0003_context_and_push_configs",
            "0004_credentials_and_audit",
            "0005_usage",
            "0006_run_budget",
            "0007_run_protocol",
        ]
        old = await store.get("run_old")
        assert old is not None and (old.replay_of, old.replay_checkpoint, old.deadline_at) == (
            None,
            None,
            5.0,
        )
        assert [run.id for run in await store.overdue(now=10.0)] == ["run_old"]
    finally:
        await store.close()


async def test_postgres_database_of_schema_version_2_is_migrated_keeping_its_runs(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for migration in pg.migrations()[:2]:
            conn.execute(migration.sql.encode())
        conn.execute(
            "CREATE TABLE fastagentic_schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
        )
        conn.execute("INSERT INTO fastagentic_schema_migrations VALUES (1, now()), (2, now())")
        conn.execute(
            f"INSERT INTO fastagentic_runs ({OLD_RUN_COLUMNS}) "
            "VALUES ('run_old', 'echo', 'agent', true, 'alice', 'acme', '{}', 'queued', 1, 3, 0, 1.0, 1.0, 'run_x')"
        )

    store = PostgresRunStore(pg_url)
    await store.start()
    try:
        assert [m.name for m in store.applied] == [
            "0003_context_and_push_configs",
            "0004_credentials_and_audit",
            "0005_usage",
            "0006_run_budget",
            "0007_run_protocol",
        ]
        await assert_schema_2_run_migrated(store)
    finally:
        await store.close()
    assert applied_versions(pg_url) == [1, 2, 3, 4, 5, 6, 7]


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()

    store = SQLiteRunStore(str(path))
    with pytest.raises(RuntimeError, match="schema version 99"):
        await store.start()


async def test_sqlite_store_used_before_start_raises(tmp_path: Path) -> None:
    store = SQLiteRunStore(str(tmp_path / "runs.sqlite3"))

    with pytest.raises(RuntimeError, match="not started"):
        await store.get("run_x")


# open_store


def test_open_store_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    for url in ("", "sqlite://"):
        store = open_store(url, str(tmp_path))
        assert isinstance(store, SQLiteRunStore)
        assert store.path == str(tmp_path / "runs.sqlite3")


def test_open_store_takes_a_sqlite_file_path(tmp_path: Path) -> None:
    absolute = open_store("sqlite:///var/lib/fa/runs.db", str(tmp_path))
    relative = open_store("sqlite://runs.db", str(tmp_path))

    assert isinstance(absolute, SQLiteRunStore) and absolute.path == "/var/lib/fa/runs.db"
    assert isinstance(relative, SQLiteRunStore) and relative.path == "runs.db"


def test_open_store_memory(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://", str(tmp_path)), MemoryRunStore)


def test_open_store_postgresql_urls(tmp_path: Path) -> None:
    for url in ("postgresql://fa:secret@db.internal:5433/runs", "postgres://fa@db.internal/runs"):
        store = open_store(url, str(tmp_path))
        assert isinstance(store, PostgresRunStore)
        assert (store.url, store.min_size, store.max_size, store.migrate_on_start) == (url, 1, 10, True)
    manual = open_store("postgresql://db/runs", str(tmp_path), migrate=False)
    assert isinstance(manual, PostgresRunStore) and manual.migrate_on_start is False


def test_open_store_takes_pool_sizes_from_the_postgresql_url(tmp_path: Path) -> None:
    store = open_store(
        "postgresql://fa@db/runs?application_name=gw&pool_min_size=2&pool_max_size=30", str(tmp_path)
    )

    assert isinstance(store, PostgresRunStore)
    assert (store.min_size, store.max_size) == (2, 30)
    assert store.url == "postgresql://fa@db/runs?application_name=gw"


def test_open_store_rejects_bad_postgresql_urls_without_echoing_the_password(tmp_path: Path) -> None:
    for url, problem in (
        ("postgresql://fa:hunter2@db/runs?pool_max_size=many", "pool_max_size must be an integer"),
        ("postgresql://fa:hunter2@db/runs?pool_min_size=5&pool_max_size=2", "min_size <= max_size"),
        ("postgresql://fa:hunter2@db/runs?no_such_option=1", "no_such_option"),
    ):
        with pytest.raises(ValueError, match=problem) as error:
            open_store(url, str(tmp_path))
        assert "hunter2" not in str(error.value)


def test_open_store_rejects_unknown_schemes_listing_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown scheme 'redis'.*sqlite://.*memory://"):
        open_store("redis://localhost", str(tmp_path))


# PostgreSQL specifics: migrations, and replicas (separate pools) sharing one database


def applied_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT version FROM fastagentic_schema_migrations WHERE applied_at IS NOT NULL ORDER BY version"
        ).fetchall()
    return [version for (version,) in rows]


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


async def test_postgres_migrations_are_versioned_and_idempotent(pg_url: str) -> None:
    store = PostgresRunStore(pg_url)

    first = await store.migrate()
    second = await store.migrate()

    assert [(m.version, m.name) for m in first] == [
        (1, "0001_initial"),
        (2, "0002_replay_and_deadlines"),
        (3, "0003_context_and_push_configs"),
        (4, "0004_credentials_and_audit"),
        (5, "0005_usage"),
        (6, "0006_run_budget"),
        (7, "0007_run_protocol"),
    ]
    assert second == []
    assert applied_versions(pg_url) == [1, 2, 3, 4, 5, 6, 7]
    assert tables(pg_url) == {
        "fastagentic_schema_migrations",
        "fastagentic_runs",
        "fastagentic_events",
        "fastagentic_checkpoints",
        "fastagentic_push_configs",
        "fastagentic_credentials",
        "fastagentic_audit",
        "fastagentic_run_usage",
        "fastagentic_usage_daily",
    }


async def test_postgres_start_migrates_once_and_records_what_it_applied(pg_url: str) -> None:
    first, second = PostgresRunStore(pg_url), PostgresRunStore(pg_url)
    await first.start()
    await first.close()
    await second.start()
    await second.close()

    assert [m.name for m in first.applied] == [
        "0001_initial",
        "0002_replay_and_deadlines",
        "0003_context_and_push_configs",
        "0004_credentials_and_audit",
        "0005_usage",
        "0006_run_budget",
        "0007_run_protocol",
    ]
    assert second.applied == []
    assert applied_versions(pg_url) == [1, 2, 3, 4, 5, 6, 7]


async def test_postgres_refuses_a_newer_schema(pg_url: str) -> None:
    await PostgresRunStore(pg_url).migrate()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO fastagentic_schema_migrations (version, applied_at) VALUES (99, now())")

    for migrate in (True, False):
        store = PostgresRunStore(pg_url, migrate=migrate)
        with pytest.raises(pg.SchemaError, match=r"schema version 99; this gateway knows versions up to 7"):
            await store.start()
        with pytest.raises(RuntimeError, match="not started"):
            await store.get("run_x")
    with pytest.raises(pg.SchemaError, match="schema version 99"):
        await PostgresRunStore(pg_url).migrate()
    assert applied_versions(pg_url) == [1, 2, 3, 4, 5, 6, 7, 99]


async def test_postgres_without_migrate_on_start_refuses_an_old_schema_until_migrated(pg_url: str) -> None:
    store = PostgresRunStore(pg_url, migrate=False)

    with pytest.raises(
        pg.SchemaError, match=r"schema version 0; .* needs version 7.*fastagentic-gateway migrate"
    ):
        await store.start()
    assert "fastagentic_runs" not in tables(pg_url)

    await PostgresRunStore(pg_url).migrate()
    await store.start()
    try:
        assert store.applied == []
        assert (await store.create(make_run()))[1] is True
    finally:
        await store.close()


async def test_postgres_a_failing_migration_rolls_back_every_pending_one(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = pg.migrations()
    broken = pg.Migration(len(shipped) + 1, "0099_broken", "CREATE TABLE fa_half_done (x int); SELECT nope;")
    monkeypatch.setattr(pg, "migrations", lambda: (*shipped, broken))

    with pytest.raises(psycopg.errors.UndefinedColumn):
        await PostgresRunStore(pg_url).migrate()

    assert tables(pg_url) == set()  # not even the migrations table: one transaction, rolled back
    monkeypatch.setattr(pg, "migrations", lambda: shipped)
    assert [m.version for m in await PostgresRunStore(pg_url).migrate()] == [m.version for m in shipped]


async def test_postgres_replicas_starting_together_on_an_empty_database_all_start(pg_url: str) -> None:
    stores = [PostgresRunStore(pg_url) for _ in range(4)]

    await asyncio.gather(*(store.start() for store in stores))
    try:
        assert sorted(len(store.applied) for store in stores) == [0, 0, 0, 7]
        assert applied_versions(pg_url) == [1, 2, 3, 4, 5, 6, 7]
        run, _ = await stores[0].create(make_run())
        assert await stores[3].get(run.id) == run
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_postgres_two_replicas_racing_on_one_transition_exactly_one_wins(pg_url: str) -> None:
    replica_a, replica_b = PostgresRunStore(pg_url), PostgresRunStore(pg_url)
    await replica_a.start()
    await replica_b.start()
    try:
        runs = [(await replica_a.create(make_run()))[0] for _ in range(30)]

        async def claim(store: RunStore, run: Run, worker: str) -> str | None:
            result = await store.transition(
                run.id,
                expect=QUEUED,
                attempt=1,
                update=RunUpdate(
                    status=RunStatus.RUNNING, worker_id=worker, lease_expires_at=time.time() + 30
                ),
                events=[NewEvent(kind="run.started", data=f'{{"worker": "{worker}"}}'.encode())],
            )
            return None if result is None else worker

        outcomes = await asyncio.gather(
            *(asyncio.gather(claim(replica_a, run, "wa"), claim(replica_b, run, "wb")) for run in runs)
        )

        for run, pair in zip(runs, outcomes, strict=True):
            winners = [worker for worker in pair if worker is not None]
            assert len(winners) == 1, (run.id, pair)
            stored = await replica_b.get(run.id)
            assert stored is not None
            assert (stored.status, stored.worker_id, stored.last_seq) == (RunStatus.RUNNING, winners[0], 1)
            log = await replica_a.events(run.id)
            assert [(e.seq, e.data) for e in log] == [(1, f'{{"worker": "{winners[0]}"}}'.encode())]
    finally:
        await replica_a.close()
        await replica_b.close()


async def test_postgres_two_replicas_appending_the_same_batch_store_it_once(pg_url: str) -> None:
    replica_a, replica_b = PostgresRunStore(pg_url), PostgresRunStore(pg_url)
    await replica_a.start()
    await replica_b.start()
    try:
        runs = [await create_running(replica_a) for _ in range(20)]
        batch = [NewEvent(kind="token"), NewEvent(kind="checkpoint", checkpoint=b"s1")]

        outcomes = await asyncio.gather(
            *(
                asyncio.gather(
                    replica_a.append_events(run.id, 1, 1, batch), replica_b.append_events(run.id, 1, 1, batch)
                )
                for run in runs
            )
        )

        for run, (a, b) in zip(runs, outcomes, strict=True):
            assert a is not None and b is not None
            assert sorted([len(a), len(b)]) == [0, 2], (run.id, a, b)
            assert [(e.seq, e.kind) for e in await replica_b.events(run.id)] == [
                (1, "token"),
                (2, "checkpoint"),
            ]
            assert [(cp.id, cp.seq) for cp in await replica_a.checkpoints(run.id)] == [(1, 2)]
    finally:
        await replica_a.close()
        await replica_b.close()


async def test_postgres_a_cancelled_caller_does_not_cut_a_write_in_half(pg_url: str) -> None:
    store = PostgresRunStore(pg_url, max_size=1)
    await store.start()
    try:
        for _ in range(5):
            run, _ = await store.create(make_run())
            # Another session holds the run's row, so the write waits inside its transaction, however
            # fast the machine is.
            async with await psycopg.AsyncConnection.connect(pg_url, autocommit=False) as holder:
                await holder.execute("SELECT 1 FROM fastagentic_runs WHERE id = %s FOR UPDATE", (run.id,))
                claim = asyncio.create_task(
                    store.transition(
                        run.id,
                        expect=QUEUED,
                        attempt=1,
                        update=RunUpdate(status=RunStatus.RUNNING, worker_id="w1"),
                        events=events("run.started", "progress"),
                    )
                )
                await asyncio.sleep(0.05)
                assert not claim.done()
                claim.cancel()
                await holder.rollback()
            with pytest.raises(asyncio.CancelledError):
                await claim

            # The write runs to its end all the same: applied whole, never half.
            stored = await store.get(run.id)  # queued behind it on the one pooled connection
            assert stored is not None and (stored.status, stored.last_seq) == (RunStatus.RUNNING, 2)
            assert [e.kind for e in await store.events(run.id)] == ["run.started", "progress"]
    finally:
        await store.close()


async def test_postgres_unreachable_server_is_a_clear_error_without_the_password() -> None:
    store = PostgresRunStore("postgresql://fa:hunter2@127.0.0.1:1/runs", connect_timeout=2)

    with pytest.raises(ConnectionError, match=r"cannot connect to PostgreSQL at 127.0.0.1:1/runs") as error:
        await store.start()
    assert "hunter2" not in str(error.value)


def test_postgres_migrations_ship_inside_the_package() -> None:
    shipped = pg.migrations()

    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert "CREATE TABLE fastagentic_runs" in shipped[0].sql


# fastagentic-gateway migrate


def test_migrate_command_on_postgresql_applies_then_has_nothing_to_apply(
    pg_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["migrate", "--store-url", pg_url, "--data-dir", str(tmp_path)]

    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert cli.main(argv) == 0
    second = capsys.readouterr().out

    assert first.splitlines()[:7] == [
        "applied 0001_initial",
        "applied 0002_replay_and_deadlines",
        "applied 0003_context_and_push_configs",
        "applied 0004_credentials_and_audit",
        "applied 0005_usage",
        "applied 0006_run_budget",
        "applied 0007_run_protocol",
    ]
    assert "schema now at version 7" in first
    assert "schema already at version 7; nothing to apply" in second
    assert applied_versions(pg_url) == [1, 2, 3, 4, 5, 6, 7]


def test_migrate_command_on_sqlite_creates_and_migrates_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["migrate", "--data-dir", str(tmp_path / "data"), "--store-url", ""]

    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert cli.main(argv) == 0
    second = capsys.readouterr().out

    assert first.splitlines()[:7] == [
        "applied SQLite schema version 1",
        "applied SQLite schema version 2",
        "applied SQLite schema version 3",
        "applied SQLite schema version 4",
        "applied SQLite schema version 5",
        "applied SQLite schema version 6",
        "applied SQLite schema version 7",
    ]
    assert "nothing to apply" in second
    with sqlite3.connect(tmp_path / "data" / "runs.sqlite3") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()


def test_migrate_command_reports_an_unreachable_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["migrate", "--store-url", "postgresql://fa:hunter2@127.0.0.1:1/runs", "--data-dir", str(tmp_path)]

    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/runs" in err
    assert "hunter2" not in err


async def test_postgres_an_id_with_nul_is_no_run(pg_url: str) -> None:
    store = PostgresRunStore(pg_url)
    await store.start()
    try:
        assert await store.get("run_\x00x") is None
        assert await store.get("run_x", "ten\x00ant") is None
    finally:
        await store.close()
