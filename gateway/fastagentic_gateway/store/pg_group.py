"""Grouped statements for PostgreSQL: the one-statement writes of many callers committed together
(``GroupCommit``), and their lookups of rows by key answered together (``GroupLookup``).

Each run costs the PostgreSQL store a few writes (created, finished, its event batches), each one statement.
Sent one by one, every write pays a round trip, a transaction and a WAL flush of its own, and the gateway
pays the client library's send and receive for each: at a few thousand writes a second that is most of its
CPU. ``GroupCommit`` queues the writes and a flusher sends what is queued as one pipelined transaction
(``BEGIN``, the statements in order, ``COMMIT``: one network write, one commit); the next batch gathers
while one is in flight. A write is answered only once its transaction committed, so nothing is
acknowledged that a crash could lose.

Rules:

- One flusher at a time: batches never wait on each other's row locks. A write alone in the queue is
  sent as it is (autocommit, no pipeline): at low load nothing changes.
- A batch's statements keep the order of their keys (a run's writes stay in the order they were made)
  and are sorted by key, so concurrent transactions elsewhere lock rows in one order.
- A statement that fails (a constraint, a deadlock) rolls the batch back: each of its writes is then sent
  on its own, and each caller gets its own result or error. A broken connection fails the whole batch
  with that error (what a single statement would get; whether it committed is not known).
- A caller that stops waiting does not withdraw its write: it is committed or rolled back with its batch.
- The price of one flusher: a write that waits (on a row lock another process holds, say) delays the
  writes queued behind it; each is still answered once committed.

``GroupLookup`` does the same for reads of one row by key (a run by its id): the keys queued while one
lookup is in flight are read by the next, in one ``= ANY`` statement. A lookup sees everything committed
before it was queued.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, NamedTuple, TypeVar

import psycopg
from psycopg import AsyncConnection

Conn = AsyncConnection[tuple[Any, ...]]
T = TypeVar("T")

#: Most statements in one transaction: beyond it a batch holds its row locks longer for little gain.
MAX_BATCH = 256


class Written(NamedTuple):
    """What a write did: rows affected, and the first row it returned (None when it returned none)."""

    rowcount: int
    row: tuple[Any, ...] | None


class _Write:
    __slots__ = ("binary", "future", "key", "params", "sql")

    def __init__(
        self, sql: str, params: Sequence[Any], key: str, binary: bool, future: asyncio.Future[Written]
    ) -> None:
        self.sql = sql
        self.params = params
        self.key = key
        self.binary = binary
        self.future = future


class _Lookup(NamedTuple):
    key: str
    future: asyncio.Future[tuple[Any, ...] | None]


Item = TypeVar("Item", _Write, _Lookup)


class _Flushing(ABC, Generic[Item]):
    """Items queued, and one task that sends them in batches (``_send``) while there are any."""

    def __init__(self, connection: Callable[[], AbstractAsyncContextManager[Conn]], max_batch: int) -> None:
        self._connection = connection
        self._max_batch = max_batch
        self._queue: deque[Item] = deque()
        self._flusher: asyncio.Task[None] | None = None

    def _enqueue(self, item: Item) -> None:
        self._queue.append(item)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())

    async def close(self) -> None:
        """Wait for what is queued so far to be sent (or to fail)."""
        flusher = self._flusher
        if flusher is not None:
            await asyncio.wait({flusher})

    async def _flush(self) -> None:
        batch: list[Item] = []
        try:
            while self._queue:
                count = min(len(self._queue), self._max_batch)
                batch = [self._queue.popleft() for _ in range(count)]
                try:
                    await self._send(batch)
                except Exception as exc:  # the connection, the pool, or the one item's own error
                    for item in batch:
                        _fail(item.future, exc)
                batch = []
        finally:
            self._flusher = None
            self._abandon(batch + list(self._queue))  # only when cancelled: the gateway is stopping
            self._queue.clear()

    @abstractmethod
    async def _send(self, batch: list[Item]) -> None:
        """Send ``batch`` and answer each item's future (an exception fails every item)."""

    @abstractmethod
    def _abandon(self, items: list[Item]) -> None:
        """Answer the items the flusher will not send (it was cancelled: the gateway is stopping)."""


class GroupCommit(_Flushing[_Write]):
    """Writes queued by ``write`` and committed in batches over connections from ``connection``."""

    def __init__(
        self, connection: Callable[[], AbstractAsyncContextManager[Conn]], *, max_batch: int = MAX_BATCH
    ) -> None:
        super().__init__(connection, max_batch)

    def write(
        self, sql: str, params: Sequence[Any], *, key: str, binary: bool = False
    ) -> asyncio.Future[Written]:
        """Queue one statement; its future is answered once its transaction committed (or failed)."""
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._enqueue(_Write(sql, params, key, binary, future))
        return future

    async def _send(self, batch: list[_Write]) -> None:
        if len(batch) == 1:
            async with self._connection() as conn:
                _answer(batch[0].future, await _execute(conn, batch[0]))
            return
        batch.sort(key=_key)  # stable: a key's writes keep their order
        await self._together(batch)

    def _abandon(self, items: list[_Write]) -> None:
        # Whether the batch in flight committed is not known, and nobody will send the rest: their callers
        # hear so, as from a lost connection.
        unknown = psycopg.OperationalError("the gateway stopped before this write was confirmed")
        for write in items:
            _fail(write.future, unknown)

    async def _together(self, batch: list[_Write]) -> None:
        async with self._connection() as conn:
            cursors = []
            try:
                async with conn.pipeline(), conn.transaction():
                    for write in batch:
                        cursor = conn.cursor(binary=write.binary)
                        await cursor.execute(write.sql, write.params)
                        cursors.append(cursor)
            except Exception:
                if conn.broken or conn.closed:
                    raise  # whether it committed is not known: every write gets the error
                # A statement failed (a constraint, a deadlock, a value it could not send) and the batch
                # rolled back whole: each write again, on its own, with its own outcome.
                for write in batch:
                    try:
                        _answer(write.future, await _execute(conn, write))
                    except Exception as exc:
                        if conn.broken or conn.closed:
                            raise
                        _fail(write.future, exc)
                return
        # Committed: each caller gets its result (reading one that fails fails that write only).
        for write, cursor in zip(batch, cursors, strict=True):
            try:
                _answer(write.future, await _written(cursor))
            except Exception as exc:
                _fail(write.future, exc)


def _key(write: _Write) -> str:
    return write.key


async def _execute(conn: Conn, write: _Write) -> Written:
    cursor = conn.cursor(binary=write.binary)
    await cursor.execute(write.sql, write.params)
    return await _written(cursor)


async def _written(cursor: psycopg.AsyncCursor[tuple[Any, ...]]) -> Written:
    row = await cursor.fetchone() if cursor.description is not None else None
    return Written(cursor.rowcount, row)


def _answer(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: a caller that stopped waiting leaves no warning behind


class GroupLookup(_Flushing[_Lookup]):
    """Rows looked up by key: ``sql`` takes one array of keys and returns rows whose first column is the key.
    What is queued while one statement is in flight goes in the next."""

    def __init__(
        self, connection: Callable[[], AbstractAsyncContextManager[Conn]], sql: str, *, max_batch: int = 1000
    ) -> None:
        super().__init__(connection, max_batch)
        self._sql = sql

    def get(self, key: str) -> asyncio.Future[tuple[Any, ...] | None]:
        future: asyncio.Future[tuple[Any, ...] | None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Lookup(key, future))
        return future

    async def _send(self, batch: list[_Lookup]) -> None:
        keys = list(dict.fromkeys(lookup.key for lookup in batch))
        async with self._connection() as conn:
            cursor = await conn.execute(self._sql, (keys,), binary=True)
            rows = {row[0]: row for row in await cursor.fetchall()}
        for lookup in batch:
            _answer(lookup.future, rows.get(lookup.key))

    def _abandon(self, items: list[_Lookup]) -> None:
        for lookup in items:
            lookup.future.cancel()  # a read has nothing to confirm
