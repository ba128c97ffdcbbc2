"""GroupCommit against the real local PostgreSQL (a fresh database per test): concurrent writes share
transactions, each caller still gets its own outcome, and nothing is answered that did not commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg
import pytest_asyncio
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from fastagentic_gateway.store.pg_group import Conn, GroupCommit, GroupLookup
from tests.services import postgres_database

INSERT = "INSERT INTO t (id, n) VALUES (%s, %s)"
BUMP = "UPDATE t SET n = n + 1 WHERE id = %s RETURNING n"


class Counting:
    """The pool's connections, counted: one checkout per batch."""

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        self.pool = pool
        self.checkouts = 0

    def __call__(self) -> AbstractAsyncContextManager[Conn]:
        self.checkouts += 1
        return self.pool.connection()


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[AsyncConnectionPool[Conn]]:
    with postgres_database() as url:
        async with AsyncConnectionPool(url, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
            async with pool.connection() as conn:
                await conn.execute("CREATE TABLE t (id text PRIMARY KEY, n int NOT NULL)")
            yield pool


async def rows(pool: AsyncConnectionPool[Conn]) -> dict[str, int]:
    async with pool.connection() as conn:
        return dict(await (await conn.execute("SELECT id, n FROM t")).fetchall())


async def test_concurrent_writes_share_transactions_and_each_gets_its_result(
    pool: AsyncConnectionPool[Conn],
) -> None:
    connection = Counting(pool)
    group = GroupCommit(connection)
    inserted = await asyncio.gather(*(group.write(INSERT, (f"r{i}", i), key=f"r{i}") for i in range(100)))
    assert [written.rowcount for written in inserted] == [1] * 100
    # A key's writes keep their order within a batch: the insert, then two bumps returning 1, 2.
    bumped = await asyncio.gather(
        group.write(INSERT, ("k", 0), key="k"),
        group.write(BUMP, ("k",), key="k"),
        group.write(BUMP, ("k",), key="k"),
        group.write(BUMP, ("nobody",), key="nobody"),
    )
    assert [b.row for b in bumped] == [None, (1,), (2,), None]
    assert [b.rowcount for b in bumped] == [1, 1, 1, 0]
    await group.close()
    assert len(await rows(pool)) == 101
    assert connection.checkouts < 20, connection.checkouts  # 104 writes, a handful of transactions


async def test_a_failing_write_fails_alone_and_the_rest_of_its_batch_commits(
    pool: AsyncConnectionPool[Conn],
) -> None:
    group = GroupCommit(Counting(pool))
    await group.write(INSERT, ("taken", 0), key="taken")
    writes = [group.write(INSERT, (f"r{i}", i), key=f"r{i}") for i in range(10)]
    writes.insert(5, group.write(INSERT, ("taken", 1), key="taken"))  # in the middle of one batch
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(outcomes[5], pg_errors.UniqueViolation)
    assert all(not isinstance(outcome, BaseException) for i, outcome in enumerate(outcomes) if i != 5)
    stored = await rows(pool)
    assert stored["taken"] == 0 and len(stored) == 11


async def test_a_caller_that_stops_waiting_still_has_its_write_committed(
    pool: AsyncConnectionPool[Conn],
) -> None:
    group = GroupCommit(Counting(pool))

    async def write(i: int) -> Any:
        return await group.write(INSERT, (f"r{i}", i), key=f"r{i}")

    callers = [asyncio.create_task(write(i)) for i in range(5)]
    await asyncio.sleep(0)  # queued
    callers[2].cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await group.close()
    assert len(await rows(pool)) == 5


async def test_a_broken_connection_fails_every_write_of_its_batch_and_the_next_ones_go_on(
    pool: AsyncConnectionPool[Conn],
) -> None:
    group = GroupCommit(Counting(pool))
    writes = [group.write(INSERT, (f"r{i}", i), key=f"r{i}") for i in range(3)]
    writes.append(group.write("SELECT pg_terminate_backend(pg_backend_pid())", (), key="zz"))
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(outcome, psycopg.OperationalError) for outcome in outcomes), outcomes
    assert await rows(pool) == {}  # the transaction never committed
    assert (await group.write(INSERT, ("after", 1), key="after")).rowcount == 1


async def test_a_value_that_cannot_be_sent_fails_its_write_alone(pool: AsyncConnectionPool[Conn]) -> None:
    group = GroupCommit(Counting(pool))
    writes = [group.write(INSERT, (f"r{i}", i), key=f"r{i}") for i in range(4)]
    writes.append(group.write(INSERT, ("bad", object()), key="bad"))  # psycopg cannot adapt it
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert all(not isinstance(outcome, BaseException) for outcome in outcomes[:4]), outcomes
    assert isinstance(outcomes[4], Exception)
    assert len(await rows(pool)) == 4


async def test_stopping_mid_batch_fails_its_writes_as_unconfirmed_not_cancelled(
    pool: AsyncConnectionPool[Conn],
) -> None:
    group = GroupCommit(Counting(pool))
    writes = [group.write("SELECT pg_sleep(5)", (), key="slow"), group.write(INSERT, ("r", 1), key="r")]
    await asyncio.sleep(0.2)  # the batch is in flight
    flusher = group._flusher
    assert flusher is not None
    flusher.cancel()
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(outcome, psycopg.OperationalError) for outcome in outcomes), outcomes
    assert "before this write was confirmed" in str(outcomes[0])
    await group.close()


async def test_lookups_queued_together_are_one_statement_each_answered(
    pool: AsyncConnectionPool[Conn],
) -> None:
    group = GroupCommit(Counting(pool))
    await asyncio.gather(*(group.write(INSERT, (f"r{i}", i), key=f"r{i}") for i in range(50)))
    connection = Counting(pool)
    lookup = GroupLookup(connection, "SELECT id, n FROM t WHERE id = ANY(%s::text[])")
    keys = [f"r{i}" for i in range(50)] + ["r7", "missing"]
    found = await asyncio.gather(*(lookup.get(key) for key in keys))
    assert found[:50] == [(f"r{i}", i) for i in range(50)]
    assert found[50] == ("r7", 7) and found[51] is None
    assert connection.checkouts <= 2, connection.checkouts  # the first key alone, then the rest together
    # A lookup sees what was committed before it was queued.
    await group.write(BUMP, ("r7",), key="r7")
    assert await lookup.get("r7") == ("r7", 8)
    await lookup.close()
