"""The SQLite store's two lanes (store/sqlite.py ``_Connection``): the event loop runs short operations
itself, the connection's thread runs long ones and any batch that would wait for another process's lock.
The contract tests (test_store_contract.py) hold for both; these check what the lanes add: the loop never
waits for a lock, order holds across lanes, long logs are read whole, the WAL is checkpointed off the
loop, and a store is used from the loop that started it only."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from fastagentic_gateway.runs.model import (
    Caller,
    EndpointKind,
    NewEvent,
    Run,
    RunStatus,
    RunUpdate,
    new_run_id,
)
from fastagentic_gateway.store import sqlite as sqlite_store
from fastagentic_gateway.store.sqlite import SQLiteRunStore

QUEUED = frozenset({RunStatus.QUEUED})
RUNNING = frozenset({RunStatus.RUNNING})


def a_run() -> Run:
    now = time.time()
    return Run(
        id=new_run_id(),
        endpoint="echo",
        kind=EndpointKind.AGENT,
        durable=True,
        caller=Caller(),
        input=b"{}",
        created_at=now,
        updated_at=now,
    )


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteRunStore]:
    opened = SQLiteRunStore(str(tmp_path / "runs.db"))
    await opened.start()
    yield opened
    await opened.close()


async def running(store: SQLiteRunStore) -> Run:
    run, _ = await store.create(a_run())
    claimed = await store.transition(
        run.id, expect=QUEUED, attempt=1, update=RunUpdate(status=RunStatus.RUNNING, worker_id="w")
    )
    assert claimed is not None
    return claimed[0]


async def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(
    store: SQLiteRunStore, tmp_path: Path
) -> None:
    other = sqlite3.connect(str(tmp_path / "runs.db"), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    try:
        created = asyncio.ensure_future(store.create(a_run()))
        # The loop keeps turning: ten 10 ms sleeps take about 100 ms, not the lock's hold.
        began = time.monotonic()
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert time.monotonic() - began < 1.0
        assert not created.done()  # it waits for the lock, on the thread
        # Later operations queue behind it: in order, even the short ones.
        got = asyncio.ensure_future(store.get("run_missing"))
        await asyncio.sleep(0.05)
        assert not got.done()
        threading.Timer(0.2, lambda: other.execute("COMMIT")).start()
        run, fresh = await asyncio.wait_for(created, 10)
        assert fresh and await got is None
        assert (await store.get(run.id)) == run
    finally:
        other.close()
    # Back on the loop once the thread has settled everything: the next operations run inline again.
    for _ in range(3):
        await store.create(a_run())
    assert store._thread is not None and store._thread._handed == 0


async def test_order_holds_when_a_long_operation_goes_to_the_thread(store: SQLiteRunStore) -> None:
    run = await running(store)
    appended = [
        store.append_events(run.id, 1, run.last_seq + 1 + i, [NewEvent("token", f'{{"i":{i}}}'.encode())])
        for i in range(5)
    ]
    listed = store.queued()  # a scan: the thread's
    after = store.append_events(run.id, 1, run.last_seq + 6, [NewEvent("token", b'{"i":5}')])
    results = await asyncio.gather(*appended, listed, after)
    assert [len(r) for r in results[:5]] == [1] * 5 and len(results[6] or []) == 1
    events = await store.events(run.id)
    assert [e.seq for e in events] == list(range(1, run.last_seq + 7))


@pytest.mark.parametrize("limit", [None, 10, sqlite_store.INLINE_EVENTS, sqlite_store.INLINE_EVENTS + 7])
async def test_a_long_log_is_read_whole_across_both_lanes(store: SQLiteRunStore, limit: int | None) -> None:
    run = await running(store)
    count = sqlite_store.INLINE_EVENTS * 2 + 3
    stored = await store.append_events(
        run.id, 1, run.last_seq + 1, [NewEvent("token", f'{{"i":{i}}}'.encode()) for i in range(count)]
    )
    assert stored is not None and len(stored) == count
    total = run.last_seq + count
    events = await store.events(run.id, limit=limit)
    expected = total if limit is None else min(limit, total)
    assert [e.seq for e in events] == list(range(1, expected + 1))
    tail = await store.events(run.id, after_seq=5, limit=limit)
    assert [e.seq for e in tail] == list(range(6, (total if limit is None else min(5 + limit, total)) + 1))


async def test_the_wal_is_checkpointed_off_the_loop(store: SQLiteRunStore, tmp_path: Path) -> None:
    database, wal = tmp_path / "runs.db", tmp_path / "runs.db-wal"
    # No automatic checkpoint on the loop's connection: only the checkpointer moves pages.
    assert store._thread is not None and store._thread.conn is not None
    assert store._thread.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    before = database.stat().st_size
    rounds = []
    for _ in range(4):
        await asyncio.gather(*(store.create(a_run()) for _ in range(500)))
        rounds.append(wal.stat().st_size)
        # The rows reach the database file, moved there by the checkpointer's pass (within its period).
        grown = database.stat().st_size
        for _ in range(100):  # ten seconds at most
            if database.stat().st_size > grown:
                break
            await asyncio.sleep(0.1)
        assert database.stat().st_size > grown
    assert database.stat().st_size > before
    # A complete pass lets the next writes start the WAL over: it stops growing.
    assert rounds[-1] <= max(rounds[:2]), rounds


async def test_a_store_is_used_from_the_loop_that_started_it(store: SQLiteRunStore) -> None:
    def elsewhere() -> None:
        asyncio.run(store.get("run_x"))

    failure: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(elsewhere, failure))
    thread.start()
    thread.join(10)
    assert failure and "event loop that started it" in str(failure[0])


def _catch(fn: object, into: list[BaseException]) -> None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        into.append(exc)


@pytest.mark.parametrize("restart", [True, False])
async def test_the_wal_stays_bounded_under_writes_that_never_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restart: bool
) -> None:
    # Writes keep coming while the checkpointer copies: no passive pass is ever complete, so without the
    # restarting pass the log would grow for as long as the load lasts.
    frames = 1_000
    monkeypatch.setattr(sqlite_store, "WAL_RESTART_FRAMES", frames if restart else 10**9)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 0.1)
    wal = tmp_path / "runs.db-wal"
    store = SQLiteRunStore(str(tmp_path / "runs.db"))
    await store.start()
    try:
        sizes = []
        until = time.monotonic() + 4.0
        while time.monotonic() < until:
            await asyncio.gather(*(running(store) for _ in range(50)))
            sizes.append(wal.stat().st_size)
    finally:
        await store.close()
    page = 4096 + 24  # a WAL frame: the page and its header
    peak = max(sizes[len(sizes) // 2 :])
    if restart:
        assert peak < 4 * frames * page, sizes[-20:]
    else:
        assert peak > 4 * frames * page  # the case the restart is for: shown to arise here
