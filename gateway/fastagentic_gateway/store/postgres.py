"""PostgresRunStore: durable runs in PostgreSQL, safe to share between gateway processes (psycopg 3, async pool).

The contract and the rules are those of the other stores: the decisions are made in Python by the helpers
``SQLiteRunStore`` uses too (``admits``, ``applied``, ``stamped``, ``trimmed``, ``checkpoints_of``).

Every write is one transaction, and in the usual case one statement in one round trip (autocommit): a
``transition`` is an UPDATE of the run row conditional on its status and attempt (fencing), advancing
``last_seq``, with the INSERT of its events at the seqs below the new ``last_seq`` in the same statement
(``_transition_sql``); an ``append_events`` batch that starts right after the run's last event is the
same (``_APPEND_NEXT``). Two replicas sharing the database serialize on the row: the second UPDATE waits
for the first to commit, then checks its conditions again on the row the first wrote, so it either
follows it (seqs after the first's) or loses. What needs the run as it is before deciding (a batch that
repeats events, skips seqs or is fenced; events carrying checkpoints, numbered after the run's last
one) takes the locking path: BEGIN, ``SELECT ... FOR UPDATE``, decide in Python with the helpers above,
one conditional write, COMMIT. A durable run costs two round trips when a worker is free as it arrives:
its create, which stores it started (``_INSERT_RUN_EVENTS``), and its finish; three when it has to wait for
a claim (docs/guides/postgresql.md). A pooled connection is checked without one (``_check``).

Those one-statement writes (``create``, ``transition``, ``append_events``) go through ``GroupCommit``
(``pg_group.py``): what the runs of the moment queued is sent as one pipelined transaction and committed
once, each caller answered after the commit; a write alone is sent as it is. Reads of a run by id are
grouped the same way (``GroupLookup``: one ``= ANY`` statement for the ids asked meanwhile).

The access tables (credentials, the audit log) share the database and the pool; a credential's tuples of
strings are ``text[]``.

Schema changes are the numbered SQL files in ``migrations/postgres``: see ``apply_migrations``.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import re
import select
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Any, NamedTuple, TypeVar

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..access.model import AuditQuery, AuditRecord, CredentialKind, StoredCredential
from ..errors import Conflict, StoreUnavailable
from ..runs.model import (
    ACTIVE,
    ALLOWED,
    ANONYMOUS,
    TERMINAL,
    Checkpoint,
    EndpointKind,
    Event,
    NewEvent,
    PushConfig,
    Run,
    RunQuery,
    RunStatus,
    RunUpdate,
)
from ..telemetry.metrics import operation
from ..usage.model import TOKEN_CAP, ModelUsage, UsageQuery, UsageReport, UsageRow, totals_of
from .base import RunTimes
from .memory import admits, applied, checkpoints_of, stamped, trimmed
from .pg_group import GroupCommit, GroupLookup, Written

# The row <-> Run mapping is the SQLite store's: same columns, in the same order.
from .sqlite import (
    _PUT_PUSH_CONFIG,
    AUDIT_COLUMNS,
    AUDIT_INSERT_COLUMNS,
    CREDENTIAL_COLUMNS,
    RUN_COLUMN_COUNT,
    USAGE_COLUMNS,
    _checkpoint_from_row,
    _event_from_row,
    _push_config_from_row,
    _run_from_row,
    _run_values,
    audit_from_row,
    audit_sql,
    audit_values,
    count_sql,
    credential_from_row,
    credential_values,
    credentials_sql,
    list_sql,
    run_times_of,
    run_times_sql,
    usage_row,
    usage_sql,
    usage_values,
)

T = TypeVar("T")
Conn = AsyncConnection[tuple[Any, ...]]

# ---------------------------------------------------------------------------------------------- migrations

MIGRATIONS_TABLE = "fastagentic_schema_migrations"
# The key of the transaction-level advisory lock every migration runs under: any fixed 64-bit number, the
# same in every replica and every version ("famigrat" in ASCII).
MIGRATION_LOCK = 0x66616D6967726174
_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class Migration(NamedTuple):
    version: int
    name: str  # the file name without ".sql", e.g. "0001_initial"
    sql: str


class SchemaError(RuntimeError):
    """The database's run store schema is not the one this gateway can use."""


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The migrations shipped with this code, in order; versions run 1, 2, ... without gaps."""
    folder = resources.files("fastagentic_gateway.store") / "migrations" / "postgres"
    found = sorted(
        Migration(int(match[1]), entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if (match := _MIGRATION_FILE.fullmatch(entry.name))
    )
    versions = [migration.version for migration in found]
    if versions != builtins.list(range(1, len(found) + 1)):
        raise RuntimeError(f"PostgreSQL migrations must be numbered 1, 2, ... without gaps; found {versions}")
    return tuple(found)


def latest_version() -> int:
    return len(migrations())


async def schema_version(conn: Conn) -> int:
    """The schema version recorded in the database; 0 when it was never migrated."""
    row = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,))).fetchone()
    if row is None or not row[0]:
        return 0
    row = await (await conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {MIGRATIONS_TABLE}")).fetchone()
    return 0 if row is None else int(row[0])


async def apply_migrations(conn: Conn) -> builtins.list[Migration]:
    """Apply the migrations the database lacks, in order, and return them (empty when up to date).

    All of it is one transaction holding ``pg_advisory_xact_lock(MIGRATION_LOCK)``: replicas starting
    together queue on the lock, and each one after the first finds nothing left to do. A failing migration
    rolls back whole. A database whose schema is newer than this code raises SchemaError."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = await schema_version(conn)
        _refuse_newer(conn, current)
        pending = migrations()[current:]
        for migration in pending:
            # No parameters: psycopg sends the file as one simple query, several statements allowed.
            await conn.execute(migration.sql.encode())
            await conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at) VALUES (%s, now())",
                (migration.version,),
            )
    return builtins.list(pending)


async def check_schema(conn: Conn) -> None:
    """Raise SchemaError unless the database's schema is exactly the latest this code knows."""
    current = await schema_version(conn)
    _refuse_newer(conn, current)
    if current < latest_version():
        raise SchemaError(
            f"PostgreSQL database {_where_connected(conn)} has run store schema version {current}; this "
            f"gateway needs version {latest_version()}. Run `fastagentic-gateway migrate`, or set "
            "migrate_on_start = true"
        )


def _refuse_newer(conn: Conn, current: int) -> None:
    if current > latest_version():
        raise SchemaError(
            f"PostgreSQL database {_where_connected(conn)} has run store schema version {current}; this "
            f"gateway knows versions up to {latest_version()}. Upgrade the gateway, or point it at "
            "another database"
        )


def _where_connected(conn: Conn) -> str:
    return f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"


def describe(url: str) -> str:
    """``host:port/dbname`` of a connection URL, for messages: never the password."""
    info = conninfo_to_dict(url)
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or info.get('user') or ''}"


# ---------------------------------------------------------------------------------------------- SQL

_RUN_COLUMNS = (
    "id, endpoint, kind, durable, principal, tenant, input, status, attempt, max_attempts, output, "
    "error_type, error_message, idempotency_key, request_hash, worker_id, lease_expires_at, deadline_at, "
    "last_seq, created_at, updated_at, started_at, finished_at, replay_of, replay_checkpoint, context_id, "
    "protocol_meta, budget, protocol"
)
_SELECT_RUN = f"SELECT {_RUN_COLUMNS} FROM fastagentic_runs"
_LAST_CHECKPOINT_ID = "(SELECT COALESCE(MAX(c.id), 0) FROM fastagentic_checkpoints c WHERE c.run_id = r.id)"
_INSERT_RUN = f"""
    INSERT INTO fastagentic_runs ({_RUN_COLUMNS}) VALUES ({", ".join(["%s"] * RUN_COLUMN_COUNT)})
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
"""
# A run created with its first events (``create(run, events)``): one statement, the events inserted only if
# the run was (not when an idempotency key named another run). It answers 1 or 0.
_INSERT_RUN_EVENTS = f"""
    WITH run AS ({_INSERT_RUN} RETURNING id),
    new_events AS (
        INSERT INTO fastagentic_events (run_id, seq, ts, kind, data)
        SELECT run.id, e.n, e.ts, e.kind, e.data
        FROM run, unnest(%s::float8[], %s::text[], %s::bytea[]) WITH ORDINALITY AS e (ts, kind, data, n)
    )
    SELECT count(*) FROM run
"""
_UPDATE_RUN = """
    UPDATE fastagentic_runs SET status = %s, attempt = %s, max_attempts = %s, worker_id = %s, lease_expires_at = %s,
        output = %s, error_type = %s, error_message = %s, started_at = %s, finished_at = %s,
        updated_at = %s, last_seq = %s, input = COALESCE(%s, input)
    WHERE id = %s AND status = ANY(%s) AND attempt = %s
"""
_UPDATE_LAST_SEQ = """
    UPDATE fastagentic_runs SET last_seq = %s WHERE id = %s AND status = %s AND attempt = %s
"""
_SELECT_EVENTS = "SELECT run_id, seq, ts, kind, data FROM fastagentic_events"
_SELECT_CHECKPOINTS = "SELECT run_id, id, seq, attempt, ts, state FROM fastagentic_checkpoints"
_SELECT_PUSH_CONFIGS = "SELECT run_id, config_id, tenant, config, updated_at FROM fastagentic_push_configs"
_PUT_PUSH_CONFIG_PG = _PUT_PUSH_CONFIG.replace("push_configs", "fastagentic_push_configs").format(
    mark="%s", runs="fastagentic_runs"
)
_SELECT_CREDENTIAL = f"SELECT {CREDENTIAL_COLUMNS} FROM fastagentic_credentials"
# The three tuples of strings (scopes, roles, endpoints) are text[]: cast, so that an empty list is one too.
_INSERT_CREDENTIAL = f"""
    INSERT INTO fastagentic_credentials ({CREDENTIAL_COLUMNS})
    VALUES (%s, %s, %s, %s, %s::text[], %s::text[], %s::text[], %s, %s, %s, %s, %s, %s)
"""
# The first revocation stays: a second one writes the value it finds. Under a concurrent revocation the
# update waits for it and then keeps its time.
_REVOKE_CREDENTIAL = f"""
    UPDATE fastagentic_credentials SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s
    RETURNING {CREDENTIAL_COLUMNS}
"""
# Rows are locked in id order first, so replicas touching overlapping batches cannot deadlock.
_LOCK_CREDENTIALS = "SELECT 1 FROM fastagentic_credentials WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE"
_TOUCH_CREDENTIALS = """
    UPDATE fastagentic_credentials c SET last_used_at = u.at
    FROM unnest(%s::text[], %s::float8[]) AS u (id, at)
    WHERE c.id = u.id AND (c.last_used_at IS NULL OR c.last_used_at < u.at)
"""
# One statement for the batch; ids are drawn in the order given (ORDER BY the position in the arrays).
_INSERT_AUDIT = f"""
    INSERT INTO fastagentic_audit ({AUDIT_INSERT_COLUMNS})
    SELECT {AUDIT_INSERT_COLUMNS}
    FROM unnest(%s::float8[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
        %s::text[], %s::text[]) WITH ORDINALITY AS a ({AUDIT_INSERT_COLUMNS}, n)
    ORDER BY n
"""
_SELECT_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM fastagentic_audit"
# Usage rows: added to what is stored, token counts saturating at TOKEN_CAP (the sum is taken as numeric, so
# it cannot overflow bigint on the way). Rows are written in model order, so concurrent reports of one key
# lock its rows in the same order.
_ADD_USAGE_PG = f"""
    input_tokens = LEAST(t.input_tokens::numeric + excluded.input_tokens, {TOKEN_CAP})::bigint,
    output_tokens = LEAST(t.output_tokens::numeric + excluded.output_tokens, {TOKEN_CAP})::bigint,
    cost = t.cost + excluded.cost, calls = t.calls + excluded.calls,
    unpriced_calls = t.unpriced_calls + excluded.unpriced_calls
"""
_USAGE_UNNEST = (
    "unnest(%s::text[], %s::bigint[], %s::bigint[], %s::float8[], %s::bigint[], %s::bigint[]) "
    f"AS u (model, {USAGE_COLUMNS})"
)
_INSERT_RUN_USAGE = f"""
    INSERT INTO fastagentic_run_usage AS t (run_id, model, {USAGE_COLUMNS})
    SELECT %s, u.model, {USAGE_COLUMNS} FROM {_USAGE_UNNEST} ORDER BY u.model
    ON CONFLICT (run_id, model) DO UPDATE SET {_ADD_USAGE_PG}
"""
_INSERT_USAGE_DAILY = f"""
    INSERT INTO fastagentic_usage_daily AS t (tenant, day, principal, endpoint, model, {USAGE_COLUMNS})
    SELECT %s, %s::date, %s, %s, u.model, {USAGE_COLUMNS} FROM {_USAGE_UNNEST} ORDER BY u.model
    ON CONFLICT (tenant, day, principal, endpoint, model) DO UPDATE SET {_ADD_USAGE_PG}
"""
_TERMINAL = sorted(str(status) for status in TERMINAL)
_ACTIVE = sorted(str(status) for status in ACTIVE)


@functools.cache
def _write(update: str, events: bool, checkpoints: bool) -> str:
    """One statement: the conditional ``update`` of the run row and, only if it matched, the inserts of the
    events and checkpoints given as arrays. It answers how many run rows matched (0 or 1)."""
    sql = f"WITH run AS ({update} RETURNING id)"
    if events:
        sql += """,
        new_events AS (
            INSERT INTO fastagentic_events (run_id, seq, ts, kind, data)
            SELECT run.id, e.seq, e.ts, e.kind, e.data
            FROM run, unnest(%s::bigint[], %s::float8[], %s::text[], %s::bytea[]) AS e (seq, ts, kind, data)
        )"""
    if checkpoints:
        sql += """,
        new_checkpoints AS (
            INSERT INTO fastagentic_checkpoints (run_id, id, seq, attempt, ts, state)
            SELECT run.id, c.id, c.seq, c.attempt, c.ts, c.state
            FROM run, unnest(%s::int[], %s::bigint[], %s::int[], %s::float8[], %s::bytea[])
                AS c (id, seq, attempt, ts, state)
        )"""
    return sql + " SELECT count(*) FROM run"


# One statement per transition (no checkpoint among its events): the conditional UPDATE of the run row, which
# is its own fencing (status and attempt in the WHERE clause) and takes the row lock, and, only if it
# matched, the INSERT of the events at the seqs following the run's last one. The seqs come from the row
# the UPDATE wrote: ``last_seq = last_seq + n`` is evaluated on the latest committed version of the row (a
# concurrent writer's commit is waited for, then the WHERE clause is checked again on what it wrote), and
# RETURNING gives the new value, so the events take the n seqs just below it. Autocommit makes the statement
# its own transaction: the run and its events commit together or not at all. It answers the run as stored.
#
# The SET clause names only what the update changes (``_transition_sql``): an update that leaves a field as
# it is sends no parameter for it. A handful of shapes occur, each prepared by psycopg on every connection.
# The events of a transition: one (the usual case: a run's started or ended event) as plain parameters, more
# as arrays. Either way they take the seqs just below the run's new ``last_seq``.
_TRANSITION_EVENT = """,
    new_events AS (
        INSERT INTO fastagentic_events (run_id, seq, ts, kind, data)
        SELECT run.id, run.last_seq, %s, %s, %s FROM run
    )"""
_TRANSITION_EVENTS = """,
    new_events AS (
        INSERT INTO fastagentic_events (run_id, seq, ts, kind, data)
        SELECT run.id, run.last_seq - %s + e.n, e.ts, e.kind, e.data
        FROM run, unnest(%s::float8[], %s::text[], %s::bytea[]) WITH ORDINALITY AS e (ts, kind, data, n)
    )"""


@functools.cache
def _transition_sql(changed: tuple[str, ...], fenced: bool, events: int) -> str:
    """The single statement of ``transition`` setting the columns ``changed`` (each one ``%s``, in that order,
    after ``status`` and ``updated_at``), then ``last_seq = last_seq + %s`` when there are events; its WHERE
    takes the run id, the statuses it may leave and, when ``fenced``, the attempt; then the parameters of
    the events (``_TRANSITION_EVENT`` when ``events`` is 1, ``_TRANSITION_EVENTS`` when it is 2: more)."""
    sets = ["status = %s", "updated_at = %s", *(f"{column} = %s" for column in changed)]
    if events:
        sets.append("last_seq = last_seq + %s")
    where = "id = %s AND status = ANY(%s)" + (" AND attempt = %s" if fenced else "")
    sql = (
        f"WITH run AS (UPDATE fastagentic_runs SET {', '.join(sets)} WHERE {where} RETURNING {_RUN_COLUMNS})"
    )
    if events:
        sql += _TRANSITION_EVENT if events == 1 else _TRANSITION_EVENTS
    return f"{sql} SELECT {_RUN_COLUMNS} FROM run"


# ``append_events`` in one statement, for the usual batch: the one that starts right after the run's last
# event (``last_seq = first_seq - 1``), from the worker holding the run (running, at its attempt). Any other
# batch (a repeat, a gap, a fenced worker, a checkpoint) matches no row and takes the locking path, which
# tells them apart; this one writes exactly what that path would.
_APPEND_NEXT = """
    WITH run AS (
        UPDATE fastagentic_runs SET last_seq = %s
        WHERE id = %s AND status = %s AND attempt = %s AND last_seq = %s
        RETURNING id
    ),
    new_events AS (
        INSERT INTO fastagentic_events (run_id, seq, ts, kind, data)
        SELECT run.id, e.seq, e.ts, e.kind, e.data
        FROM run, unnest(%s::bigint[], %s::float8[], %s::text[], %s::bytea[]) AS e (seq, ts, kind, data)
    )
    SELECT count(*) FROM run
"""


def _changes(update: RunUpdate, now: float) -> tuple[tuple[str, ...], builtins.list[Any]]:
    """The columns ``update`` sets besides status and updated_at, and their values: what ``applied`` does
    to a Run, as SQL (same fields, clearing the worker last, a terminal status stamping ``finished_at``)."""
    columns: builtins.list[str] = []
    values: builtins.list[Any] = []
    for column, value in (
        ("input", update.input),
        ("attempt", update.attempt),
        ("max_attempts", update.max_attempts),
        ("worker_id", None if update.clear_worker else update.worker_id),
        ("lease_expires_at", None if update.clear_worker else update.lease_expires_at),
        ("output", update.output),
        ("started_at", update.started_at),
        (
            "finished_at",
            now if update.finished_at is None and update.status in TERMINAL else update.finished_at,
        ),
    ):
        if value is not None:
            columns.append(column)
            values.append(value)
    if update.error is not None:
        columns += ["error_type", "error_message"]
        values += [update.error.type, update.error.message]
    if update.clear_worker:
        columns += ["worker_id", "lease_expires_at"]
        values += [None, None]
    return tuple(columns), values


def _carries_checkpoint(events: Sequence[NewEvent]) -> bool:
    return any(new.kind == "checkpoint" and new.checkpoint is not None for new in events)


def _rows(
    placed: Sequence[Event], sent: Sequence[NewEvent], attempt: int, last_checkpoint_id: int
) -> tuple[builtins.list[Any], bool]:
    """The parameters ``_write`` takes after the update's own: event columns, then checkpoint columns
    (when there are checkpoints: the second value says so)."""
    if not placed:
        return [], False
    params: builtins.list[Any] = [
        [event.seq for event in placed],
        [event.ts for event in placed],
        [event.kind for event in placed],
        [event.data for event in placed],
    ]
    found = checkpoints_of(placed, sent, attempt, last_checkpoint_id)
    if found:
        params += [
            [cp.id for cp in found],
            [cp.seq for cp in found],
            [cp.attempt for cp in found],
            [cp.ts for cp in found],
            [cp.state for cp in found],
        ]
    return params, bool(found)


async def _check(conn: Conn) -> None:
    """The pool's check of a connection it is about to hand out, without a round trip in the usual case. An
    idle connection has nothing to read: when its socket is readable, the server has closed it (a restart,
    ``pg_terminate_backend``, an idle timeout: it sends an error, then EOF) or sent something unasked, and
    only then is it checked with a round trip (psycopg_pool's own check, which raises for a dead one: the
    pool drops it and tries another). One ``poll`` system call otherwise, where the full check cost a round
    trip for every operation."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


def _retrieve(task: asyncio.Future[Any]) -> None:
    # A job whose caller was cancelled still finishes; retrieve its outcome so asyncio does not warn.
    if not task.cancelled():
        task.exception()


# ---------------------------------------------------------------------------------------------- the store


class PostgresRunStore:
    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        migrate: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        try:
            info = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"PostgreSQL URL: {exc}") from exc
        if min_size < 0 or max_size < max(min_size, 1):
            raise ValueError(
                f"PostgreSQL pool: need 0 <= min_size <= max_size >= 1, got {min_size}, {max_size}"
            )
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.migrate_on_start = migrate
        self.connect_timeout = connect_timeout
        # The URL's own connect_timeout (whole seconds) wins over ours.
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in info:
            self._connect_kwargs["connect_timeout"] = max(1, round(connect_timeout))
        self.applied: builtins.list[Migration] = []  # what the last start() applied
        self._pool: AsyncConnectionPool[Conn] | None = None
        #: the one-statement writes of runs (create, transition, event batches), committed in groups
        self._group: GroupCommit | None = None
        #: runs read by id, the reads of the moment in one statement
        self._lookup: GroupLookup | None = None
        #: told each operation's name, seconds and whether the database failed (the gateway's metrics)
        self.observe: Callable[[str, float, bool], None] | None = None

    @property
    def where(self) -> str:
        """``host:port/dbname``: where the runs live, without credentials."""
        return describe(self.url)

    async def migrate(self) -> builtins.list[Migration]:
        """Apply pending migrations over a connection of its own; works whether or not the store is started."""
        async with await self._connect() as conn:
            return await apply_migrations(conn)

    async def start(self) -> None:
        """Connect (a clear error when PostgreSQL is unreachable), migrate or check the schema, open the pool."""
        if self._pool is not None:
            return
        async with await self._connect() as conn:
            if self.migrate_on_start:
                self.applied = await apply_migrations(conn)
            else:
                await check_schema(conn)
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            kwargs=self._connect_kwargs,
            open=False,
            name="fastagentic-runs",
            # A connection is checked before it is handed out (``_check``, without a round trip): after
            # PostgreSQL restarts, dead ones are replaced instead of failing the next statement. Waiting for
            # one is bounded, so requests get a 503 during an outage rather than hanging.
            check=_check,
            timeout=min(self.connect_timeout, 5.0),
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._group = GroupCommit(pool.connection)
        self._lookup = GroupLookup(pool.connection, f"{_SELECT_RUN} WHERE id = ANY(%s::text[])")

    async def close(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            await group.close()
        lookup, self._lookup = self._lookup, None
        if lookup is not None:
            await lookup.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def create(self, run: Run, events: Sequence[NewEvent] = ()) -> tuple[Run, bool]:
        values = _run_values(msgspec.structs.replace(run, last_seq=len(events)))
        if events:
            now = time.time()
            sql: str = _INSERT_RUN_EVENTS
            params = [
                *values,
                [event.ts or now for event in events],
                [event.kind for event in events],
                [event.data for event in events],
            ]
        else:
            sql, params = _INSERT_RUN, list(values)

        async def holding_key(conn: Conn) -> tuple[Any, ...] | None:
            cur = await conn.execute(
                f"{_SELECT_RUN} WHERE tenant = %s AND idempotency_key = %s",
                (run.caller.tenant, run.idempotency_key),
                binary=True,
            )
            return await cur.fetchone()

        while True:
            try:
                written = await self._write("create", sql, params, key=run.id)
            except pg_errors.UniqueViolation as exc:
                # ON CONFLICT absorbs a clash of idempotency keys, so only the id can clash here.
                raise ValueError(f"run {run.id} already exists") from exc
            inserted = (written.row or (0,))[0] if events else written.rowcount
            if inserted == 1:
                return _run_from_row(values), True
            row = await self._call(holding_key)
            if row is not None:
                return _run_from_row(row), False
            # The run holding the key was deleted between the two statements: insert again.

    async def get(self, run_id: str, tenant: str | None = None) -> Run | None:
        if "\x00" in run_id or (tenant is not None and "\x00" in tenant):
            return None  # no run has such an id (PostgreSQL text holds no NUL): not a store error
        lookup = self._lookup
        if lookup is None:
            raise RuntimeError("PostgresRunStore is not started")
        row = await self._grouped("get", lookup.get(run_id))  # read with the others asked meanwhile
        if row is None:
            return None
        run = _run_from_row(row)
        return run if tenant is None or run.caller.tenant == tenant else None

    async def transition(
        self,
        run_id: str,
        *,
        expect: frozenset[RunStatus],
        attempt: int | None,
        update: RunUpdate,
        events: Sequence[NewEvent] = (),
    ) -> tuple[Run, builtins.list[Event]] | None:
        # The statuses the run may be in: expected, and allowed to move to the new one (``admits``).
        leaving = [str(status) for status in expect if update.status in ALLOWED[status]]
        if not leaving:
            return None
        if _carries_checkpoint(events):
            # A checkpoint's id follows the run's last one, read under the row lock first.
            return await self._transition_locked(run_id, expect, attempt, update, events)
        now = time.time()
        changed, values = _changes(update, now)
        params: builtins.list[Any] = [str(update.status), now, *values]
        if events:
            params.append(len(events))
        params += [run_id, leaving]
        if attempt is not None:
            params.append(attempt)
        if len(events) == 1:
            params += [events[0].ts or now, events[0].kind, events[0].data]
        elif events:
            params += [
                len(events),
                [new.ts or now for new in events],
                [new.kind for new in events],
                [new.data for new in events],
            ]
        sql = _transition_sql(changed, attempt is not None, min(len(events), 2))
        row = (await self._write("transition", sql, params, key=run_id, binary=True)).row
        if row is None:
            return None
        run = _run_from_row(row)
        return run, stamped(run_id, run.last_seq - len(events), events, now)

    async def _transition_locked(
        self,
        run_id: str,
        expect: frozenset[RunStatus],
        attempt: int | None,
        update: RunUpdate,
        events: Sequence[NewEvent],
    ) -> tuple[Run, builtins.list[Event]] | None:
        """``transition`` reading the run under its row lock first (four round trips: BEGIN, lock and read,
        write, COMMIT): for events carrying checkpoints, numbered after the run's last one."""
        lock = (
            f"SELECT {_RUN_COLUMNS}, {_LAST_CHECKPOINT_ID} FROM fastagentic_runs r WHERE id = %s FOR UPDATE"
        )

        async def transition(conn: Conn) -> tuple[Run, builtins.list[Event]] | None:
            async with conn.transaction():
                row = await (await conn.execute(lock, (run_id,), binary=True)).fetchone()
                if row is None:
                    return None
                run = _run_from_row(row[:RUN_COLUMN_COUNT])
                if not admits(run, expect, attempt, update):
                    return None
                now = time.time()
                placed = stamped(run_id, run.last_seq, events, now)
                new = applied(run, update, now)
                new.last_seq = run.last_seq + len(placed)
                last_checkpoint_id = row[RUN_COLUMN_COUNT] if len(row) > RUN_COLUMN_COUNT else 0
                rows, with_checkpoints = _rows(placed, events, run.attempt, last_checkpoint_id)
                cur = await conn.execute(
                    _write(_UPDATE_RUN, bool(placed), with_checkpoints),
                    [
                        str(new.status),
                        new.attempt,
                        new.max_attempts,
                        new.worker_id,
                        new.lease_expires_at,
                        new.output,
                        None if new.error is None else new.error.type,
                        None if new.error is None else new.error.message,
                        new.started_at,
                        new.finished_at,
                        new.updated_at,
                        new.last_seq,
                        update.input,
                        run_id,
                        [str(status) for status in expect],
                        run.attempt,
                        *rows,
                    ],
                )
                matched = await cur.fetchone()
            # The row is locked, so the conditional update matches; if it did not, nothing was written.
            return (new, placed) if matched is not None and matched[0] == 1 else None

        return await self._call(transition)

    async def append_events(
        self, run_id: str, attempt: int, first_seq: int, events: Sequence[NewEvent]
    ) -> builtins.list[Event] | None:
        if events and not _carries_checkpoint(events):
            # The usual batch, in one statement (``_APPEND_NEXT``); anything else matches no row.
            now = time.time()
            placed = stamped(run_id, first_seq - 1, events, now)
            params = [
                placed[-1].seq,
                run_id,
                str(RunStatus.RUNNING),
                attempt,
                first_seq - 1,
                [event.seq for event in placed],
                [event.ts for event in placed],
                [event.kind for event in placed],
                [event.data for event in placed],
            ]

            if first_seq >= 1:
                row = (await self._write("append_events", _APPEND_NEXT, params, key=run_id)).row
                if row is not None and row[0] == 1:
                    return placed
        return await self._append_locked(run_id, attempt, first_seq, events)

    async def _append_locked(
        self, run_id: str, attempt: int, first_seq: int, events: Sequence[NewEvent]
    ) -> builtins.list[Event] | None:
        """``append_events`` reading the run under its row lock first: a batch that repeats events already
        in the log, skips seqs, comes from a fenced worker or carries checkpoints."""
        lock = "SELECT status, attempt, last_seq"
        if _carries_checkpoint(events):
            lock += f", {_LAST_CHECKPOINT_ID}"
        lock += " FROM fastagentic_runs r WHERE id = %s FOR UPDATE"

        async def append(conn: Conn) -> builtins.list[Event] | None:
            async with conn.transaction():
                row = await (await conn.execute(lock, (run_id,), binary=True)).fetchone()
                if row is None or row[0] != RunStatus.RUNNING or row[1] != attempt:
                    return None
                # Only what trimmed() reads: the id and the last seq.
                head = Run(
                    id=run_id,
                    endpoint="",
                    kind=EndpointKind.AGENT,
                    durable=True,
                    caller=ANONYMOUS,
                    input=b"",
                    status=RunStatus.RUNNING,
                    attempt=attempt,
                    last_seq=row[2],
                )
                fresh = trimmed(head, first_seq, events)
                placed = stamped(run_id, head.last_seq, fresh, time.time())
                if not placed:
                    return placed
                rows, with_checkpoints = _rows(placed, fresh, attempt, row[3] if len(row) > 3 else 0)
                cur = await conn.execute(
                    _write(_UPDATE_LAST_SEQ, True, with_checkpoints),
                    [head.last_seq + len(placed), run_id, str(RunStatus.RUNNING), attempt, *rows],
                )
                matched = await cur.fetchone()
            return placed if matched is not None and matched[0] == 1 else None

        return await self._call(append)

    async def events(self, run_id: str, after_seq: int = 0, limit: int | None = None) -> builtins.list[Event]:
        async def events(conn: Conn) -> builtins.list[Event]:
            cur = await conn.execute(
                f"{_SELECT_EVENTS} WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (run_id, after_seq, None if limit is None else max(limit, 0)),
                binary=True,
            )
            return [_event_from_row(row) for row in await cur.fetchall()]

        return await self._call(events)

    async def checkpoints(self, run_id: str) -> builtins.list[Checkpoint]:
        async def checkpoints(conn: Conn) -> builtins.list[Checkpoint]:
            cur = await conn.execute(
                f"{_SELECT_CHECKPOINTS} WHERE run_id = %s ORDER BY id", (run_id,), binary=True
            )
            return [_checkpoint_from_row(row) for row in await cur.fetchall()]

        return await self._call(checkpoints)

    async def checkpoint(self, run_id: str, checkpoint_id: int) -> Checkpoint | None:
        async def one(conn: Conn) -> Checkpoint | None:
            cur = await conn.execute(
                f"{_SELECT_CHECKPOINTS} WHERE run_id = %s AND id = %s", (run_id, checkpoint_id), binary=True
            )
            row = await cur.fetchone()
            return None if row is None else _checkpoint_from_row(row)

        return await self._call(one)

    async def last_checkpoint(self, run_id: str) -> Checkpoint | None:
        async def last(conn: Conn) -> Checkpoint | None:
            cur = await conn.execute(
                f"{_SELECT_CHECKPOINTS} WHERE run_id = %s ORDER BY id DESC LIMIT 1", (run_id,), binary=True
            )
            row = await cur.fetchone()
            return None if row is None else _checkpoint_from_row(row)

        return await self._call(last)

    async def renew_leases(self, worker_id: str, until: float) -> int:
        async def renew(conn: Conn) -> int:
            # The rows locked in id order, as group commit's batches lock theirs: the two cannot deadlock.
            cur = await conn.execute(
                "UPDATE fastagentic_runs SET lease_expires_at = %s WHERE id IN (SELECT id FROM fastagentic_runs "
                "WHERE worker_id = %s AND status = %s ORDER BY id FOR UPDATE)",
                (until, worker_id, str(RunStatus.RUNNING)),
            )
            return cur.rowcount

        return await self._call(renew)

    async def expired(self, now: float, limit: int = 100) -> builtins.list[Run]:
        return await self._select_runs(
            f"{_SELECT_RUN} WHERE status = %s AND lease_expires_at < %s ORDER BY lease_expires_at, id LIMIT %s",
            (str(RunStatus.RUNNING), now, max(limit, 0)),
        )

    async def overdue(self, now: float, limit: int = 100) -> builtins.list[Run]:
        return await self._select_runs(
            f"{_SELECT_RUN} WHERE status = ANY(%s) AND deadline_at < %s ORDER BY deadline_at, id LIMIT %s",
            (_ACTIVE, now, max(limit, 0)),
        )

    async def queued(self, limit: int = 1000) -> builtins.list[Run]:
        return await self._select_runs(
            f"{_SELECT_RUN} WHERE status = %s ORDER BY id LIMIT %s", (str(RunStatus.QUEUED), max(limit, 0))
        )

    async def delete_finished(self, before: float, limit: int = 1000) -> int:
        # Events and checkpoints go with their run through ON DELETE CASCADE. SKIP LOCKED: replicas
        # deleting at the same time split the work instead of waiting for each other.
        async def delete(conn: Conn) -> int:
            cur = await conn.execute(
                "DELETE FROM fastagentic_runs WHERE id IN (SELECT id FROM fastagentic_runs "
                "WHERE status = ANY(%s) AND finished_at < %s ORDER BY finished_at LIMIT %s "
                "FOR UPDATE SKIP LOCKED)",
                (_TERMINAL, before, max(limit, 0)),
            )
            return cur.rowcount

        return await self._call(delete)

    async def waiting(self, limit: int) -> builtins.list[Run]:
        async def waiting(conn: Conn) -> builtins.list[Run]:
            cur = await conn.execute(
                f"{_SELECT_RUN} WHERE status = %s ORDER BY updated_at, id LIMIT %s",
                (str(RunStatus.WAITING_INPUT), max(limit, 0)),
                binary=True,
            )
            return [_run_from_row(row) for row in await cur.fetchall()]

        return await self._call(waiting)

    async def run_times(self, tenant: str, since: float, limit: int) -> builtins.list[RunTimes]:
        sql, params = run_times_sql("fastagentic_runs", tenant, since, limit, "%s")

        async def select(conn: Conn) -> builtins.list[RunTimes]:
            return run_times_of(await (await conn.execute(sql, params, binary=True)).fetchall())

        return await self._call(select)

    async def count(self, query: RunQuery) -> int:
        sql, params = count_sql("fastagentic_runs", query, "%s")

        async def count(conn: Conn) -> int:
            row = await (await conn.execute(sql, params)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._call(count)

    async def put_push_config(self, run_id: str, config_id: str, config: bytes) -> bool:
        async def put(conn: Conn) -> bool:
            cur = await conn.execute(_PUT_PUSH_CONFIG_PG, (config_id, config, time.time(), run_id))
            return cur.rowcount == 1

        return await self._call(put)

    async def push_configs(self, run_id: str) -> builtins.list[PushConfig]:
        async def select(conn: Conn) -> builtins.list[PushConfig]:
            cur = await conn.execute(
                f"{_SELECT_PUSH_CONFIGS} WHERE run_id = %s ORDER BY updated_at, config_id",
                (run_id,),
                binary=True,
            )
            return [_push_config_from_row(row) for row in await cur.fetchall()]

        return await self._call(select)

    async def delete_push_config(self, run_id: str, config_id: str | None = None) -> int:
        async def delete(conn: Conn) -> int:
            if config_id is None:
                cur = await conn.execute("DELETE FROM fastagentic_push_configs WHERE run_id = %s", (run_id,))
            else:
                cur = await conn.execute(
                    "DELETE FROM fastagentic_push_configs WHERE run_id = %s AND config_id = %s",
                    (run_id, config_id),
                )
            return cur.rowcount

        return await self._call(delete)

    async def pushing(self, limit: int = 1000) -> builtins.list[Run]:
        return await self._select_runs(
            f"{_SELECT_RUN} r WHERE status = ANY(%s) AND EXISTS "
            "(SELECT 1 FROM fastagentic_push_configs p WHERE p.run_id = r.id) ORDER BY id LIMIT %s",
            (_ACTIVE, max(limit, 0)),
        )

    # usage

    async def add_usage(self, report: UsageReport, *, run: bool = True, aggregate: bool = True) -> bool:
        columns = [builtins.list(column) for column in zip(*map(usage_values, report.models), strict=True)]
        models = [entry.model for entry in report.models]

        async def add(conn: Conn) -> bool:
            async with conn.transaction():
                if run:
                    # Counted once per seq: the run's marker moves forward (locking its row), or nothing is.
                    cur = await conn.execute(
                        "UPDATE fastagentic_runs SET usage_seq = %s WHERE id = %s AND usage_seq < %s",
                        (report.seq, report.run_id, report.seq),
                    )
                    if cur.rowcount != 1:
                        return False
                    await conn.execute(_INSERT_RUN_USAGE, [report.run_id, models, *columns])
                if aggregate:
                    key = [report.tenant, report.day, report.principal, report.endpoint]
                    await conn.execute(_INSERT_USAGE_DAILY, [*key, models, *columns])
            return True

        return await self._call(add)

    async def run_usage(self, run_id: str) -> builtins.list[ModelUsage]:
        async def select(conn: Conn) -> builtins.list[ModelUsage]:
            cur = await conn.execute(
                f"SELECT model, {USAGE_COLUMNS} FROM fastagentic_run_usage WHERE run_id = %s ORDER BY model",
                (run_id,),
            )
            return [ModelUsage(model=row[0], totals=totals_of(*row[1:])) for row in await cur.fetchall()]

        return await self._call(select)

    async def usage(self, query: UsageQuery) -> builtins.list[UsageRow]:
        sql, params, fields = usage_sql(
            "fastagentic_usage_daily",
            query,
            "%s",
            day="to_char(day, 'YYYY-MM-DD')",
            day_mark="%s::date",
            total="COALESCE(SUM({}), 0)",
        )

        async def select(conn: Conn) -> builtins.list[UsageRow]:
            cur = await conn.execute(sql, params)
            return [usage_row(fields, row) for row in await cur.fetchall()]

        return await self._call(select)

    # access: credentials and the audit log

    async def put_credential(self, credential: StoredCredential) -> None:
        values = credential_values(credential, builtins.list)

        async def put(conn: Conn) -> None:
            try:
                await conn.execute(_INSERT_CREDENTIAL, values)
            except pg_errors.UniqueViolation as exc:
                raise Conflict(f"credential {credential.id} already exists") from exc

        await self._call(put)

    async def credential(self, credential_id: str) -> StoredCredential | None:
        async def one(conn: Conn) -> StoredCredential | None:
            cur = await conn.execute(f"{_SELECT_CREDENTIAL} WHERE id = %s", (credential_id,), binary=True)
            row = await cur.fetchone()
            return None if row is None else credential_from_row(row)

        return await self._call(one)

    async def credentials(
        self, kind: CredentialKind | None = None, tenant: str | None = None
    ) -> builtins.list[StoredCredential]:
        sql, params = credentials_sql(_SELECT_CREDENTIAL, kind, tenant, "%s")

        async def select(conn: Conn) -> builtins.list[StoredCredential]:
            cur = await conn.execute(sql, params, binary=True)
            return [credential_from_row(row) for row in await cur.fetchall()]

        return await self._call(select)

    async def revoke_credential(self, credential_id: str, at: float) -> StoredCredential | None:
        async def revoke(conn: Conn) -> StoredCredential | None:
            cur = await conn.execute(_REVOKE_CREDENTIAL, (at, credential_id), binary=True)
            row = await cur.fetchone()
            return None if row is None else credential_from_row(row)

        return await self._call(revoke)

    async def touch_credentials(self, used: Mapping[str, float]) -> None:
        if not used:
            return
        ids = builtins.list(used)
        ats = [used[credential_id] for credential_id in ids]

        async def touch(conn: Conn) -> None:
            async with conn.transaction():
                await conn.execute(_LOCK_CREDENTIALS, (ids,))
                await conn.execute(_TOUCH_CREDENTIALS, (ids, ats))

        await self._call(touch)

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        columns = [builtins.list(column) for column in zip(*map(audit_values, records), strict=True)]

        async def append(conn: Conn) -> None:
            await conn.execute(_INSERT_AUDIT, columns)

        await self._call(append)

    async def audit(self, query: AuditQuery) -> builtins.list[AuditRecord]:
        sql, params = audit_sql(_SELECT_AUDIT, query, "%s")

        async def select(conn: Conn) -> builtins.list[AuditRecord]:
            cur = await conn.execute(sql, params, binary=True)
            return [audit_from_row(row) for row in await cur.fetchall()]

        return await self._call(select)

    async def delete_audit(self, before: float, limit: int = 1000) -> int:
        # SKIP LOCKED, as in delete_finished: replicas deleting at the same time split the work.
        async def delete(conn: Conn) -> int:
            cur = await conn.execute(
                "DELETE FROM fastagentic_audit WHERE id IN (SELECT id FROM fastagentic_audit "
                "WHERE ts < %s ORDER BY ts, id LIMIT %s FOR UPDATE SKIP LOCKED)",
                (before, max(limit, 0)),
            )
            return cur.rowcount

        return await self._call(delete)

    # Defined last: inside the class body the name ``list`` is this method from here on.
    async def list(self, query: RunQuery) -> builtins.list[Run]:
        sql, params = list_sql(_SELECT_RUN, query, "%s")
        return await self._select_runs(sql, params)

    async def _select_runs(self, sql: str, params: Sequence[Any]) -> builtins.list[Run]:
        async def select(conn: Conn) -> builtins.list[Run]:
            cur = await conn.execute(sql, params, binary=True)
            return [_run_from_row(row) for row in await cur.fetchall()]

        return await self._call(select)

    async def _connect(self) -> Conn:
        try:
            return await AsyncConnection.connect(self.url, **self._connect_kwargs)
        except psycopg.OperationalError as exc:
            raise ConnectionError(f"cannot connect to PostgreSQL at {self.where}: {exc}") from exc

    async def _write(
        self, name: str, sql: str, params: Sequence[Any], *, key: str, binary: bool = False
    ) -> Written:
        """One statement writing the run ``key``, committed with the others queued (``GroupCommit``).
        Like ``_call``, a caller that stops waiting does not withdraw it."""
        group = self._group
        if group is None:
            raise RuntimeError("PostgresRunStore is not started")
        return await self._grouped(name, group.write(sql, params, key=key, binary=binary))

    async def _grouped(self, name: str, answer: asyncio.Future[T]) -> T:
        """The answer of a grouped statement (``pg_group``), timed for the metrics, an unreachable server
        as ``StoreUnavailable``, as ``_call`` does."""
        began = time.perf_counter()
        observe = self.observe
        try:
            result = await answer
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if observe is not None:
                observe(name, time.perf_counter() - began, True)
            raise StoreUnavailable(
                f"the run store (PostgreSQL at {self.where}) is unreachable: {_first_line(exc)}"
            ) from exc
        except psycopg.Error:
            if observe is not None:
                observe(name, time.perf_counter() - began, True)
            raise
        if observe is not None:
            observe(name, time.perf_counter() - began, False)
        return result

    async def _call(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise RuntimeError("PostgresRunStore is not started")

        async def job() -> T:
            try:
                async with pool.connection() as conn:
                    return await fn(conn)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                raise StoreUnavailable(
                    f"the run store (PostgreSQL at {self.where}) is unreachable: {_first_line(exc)}"
                ) from exc

        # If the caller is cancelled the job still runs to the end: a write commits or rolls back whole,
        # and the connection goes back to the pool clean.
        task = asyncio.ensure_future(job())
        task.add_done_callback(_retrieve)
        observe = self.observe
        if observe is None:
            return await asyncio.shield(task)
        began = time.perf_counter()
        try:
            result = await asyncio.shield(task)
        except (StoreUnavailable, psycopg.Error):
            observe(operation(fn), time.perf_counter() - began, True)
            raise
        observe(operation(fn), time.perf_counter() - began, False)
        return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
