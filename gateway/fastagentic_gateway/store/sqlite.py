"""SQLiteRunStore: durable runs on one machine, with the stdlib sqlite3 module.

One connection, and every operation a function run on it in order, never two at once, without locks
(``_Connection``): the event loop runs the short ones itself, batched per loop iteration, and a thread
runs those that may take long or wait for another process's lock, so the event loop never waits for the
disk's sync or a lock. Each batch of writes is one ``BEGIN IMMEDIATE`` transaction (group commit), which
also fences other processes that open the same file; the WAL is checkpointed by a thread of its own.

The access tables (credentials, the audit log) live in the same file; a credential's tuples of strings
(scopes, roles, endpoints) are JSON arrays in TEXT columns.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from ..access.model import AuditQuery, AuditRecord, CredentialKind, StoredCredential
from ..errors import Conflict
from ..runs.model import (
    ACTIVE,
    TERMINAL,
    Caller,
    Checkpoint,
    EndpointKind,
    Event,
    NewEvent,
    PushConfig,
    Run,
    RunBudget,
    RunError,
    RunQuery,
    RunStatus,
    RunUpdate,
)
from ..telemetry.metrics import operation
from ..usage.model import (
    TOKEN_CAP,
    ModelUsage,
    UsageQuery,
    UsageReport,
    UsageRow,
    group_by,
    totals_of,
    usage_limit,
)
from .base import RunTimes, run_id_floor
from .memory import admits, applied, audit_limit, audit_stored, checkpoints_of, stamped, trimmed

T = TypeVar("T")
log = logging.getLogger("fastagentic.store")

# Migration n (1-based) brings the schema from version n - 1 to n; PRAGMA user_version records it.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            endpoint TEXT NOT NULL,
            kind TEXT NOT NULL,
            durable INTEGER NOT NULL,
            principal TEXT NOT NULL,
            tenant TEXT NOT NULL,
            input BLOB NOT NULL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            output BLOB,
            error_type TEXT,
            error_message TEXT,
            idempotency_key TEXT,
            request_hash TEXT,
            worker_id TEXT,
            lease_expires_at REAL,
            deadline_at REAL,
            last_seq INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        )
        """,
        "CREATE INDEX runs_tenant_id ON runs (tenant, id DESC)",
        "CREATE INDEX runs_status_lease ON runs (status, lease_expires_at)",
        "CREATE INDEX runs_worker ON runs (worker_id) WHERE worker_id IS NOT NULL",
        "CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL",
        """
        CREATE UNIQUE INDEX runs_idempotency ON runs (tenant, idempotency_key)
        WHERE idempotency_key IS NOT NULL
        """,
        """
        CREATE TABLE events (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE checkpoints (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            ts REAL NOT NULL,
            state BLOB NOT NULL,
            PRIMARY KEY (run_id, id)
        ) WITHOUT ROWID
        """,
    ),
    # 2: replays record their origin; overdue() finds active runs past their deadline.
    (
        "ALTER TABLE runs ADD COLUMN replay_of TEXT",
        "ALTER TABLE runs ADD COLUMN replay_checkpoint INTEGER",
        "CREATE INDEX runs_status_deadline ON runs (status, deadline_at) WHERE deadline_at IS NOT NULL",
    ),
    # 3: a run's context (A2A contextId) and what its front remembers about it; push configs (A2A webhooks).
    (
        "ALTER TABLE runs ADD COLUMN context_id TEXT",
        "ALTER TABLE runs ADD COLUMN protocol_meta BLOB",
        "CREATE INDEX runs_tenant_context ON runs (tenant, context_id, id DESC) WHERE context_id IS NOT NULL",
        """
        CREATE TABLE push_configs (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            config_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            config BLOB NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (run_id, config_id)
        ) WITHOUT ROWID
        """,
    ),
    # 4: identity and access: API keys and worker tokens (only the hash of a secret), and the audit log.
    # Neither table refers to runs: run retention never touches them.
    (
        """
        CREATE TABLE credentials (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            tenant TEXT NOT NULL,
            scopes TEXT NOT NULL,
            roles TEXT NOT NULL,
            endpoints TEXT NOT NULL,
            secret_hash BLOB NOT NULL,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL,
            expires_at REAL,
            revoked_at REAL,
            last_used_at REAL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX credentials_kind_tenant ON credentials (kind, tenant)",
        # AUTOINCREMENT: ids keep increasing even after retention deleted the newest records.
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            principal TEXT NOT NULL,
            tenant TEXT NOT NULL,
            protocol TEXT NOT NULL,
            request_id TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL
        )
        """,
        "CREATE INDEX audit_tenant_id ON audit (tenant, id DESC)",
        "CREATE INDEX audit_ts ON audit (ts)",
    ),
    # 5: usage (usage/): a run's totals per model (gone with the run), the seq of the last report counted
    # for the run, and aggregates per tenant, UTC day ("YYYY-MM-DD"), principal, endpoint and model.
    (
        "ALTER TABLE runs ADD COLUMN usage_seq INTEGER NOT NULL DEFAULT 0",
        """
        CREATE TABLE run_usage (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost REAL NOT NULL,
            calls INTEGER NOT NULL,
            unpriced_calls INTEGER NOT NULL,
            PRIMARY KEY (run_id, model)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE usage_daily (
            tenant TEXT NOT NULL,
            day TEXT NOT NULL,
            principal TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost REAL NOT NULL,
            calls INTEGER NOT NULL,
            unpriced_calls INTEGER NOT NULL,
            PRIMARY KEY (tenant, day, principal, endpoint, model)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX usage_daily_day ON usage_daily (day)",
    ),
    # 6: a run's budget and starting model hint (limits/budgets.py), JSON, fixed when it is accepted.
    ("ALTER TABLE runs ADD COLUMN budget BLOB",),
    # 7: the protocol (front) a run was created through: rest, mcp, a2a ("" for runs older than this).
    ("ALTER TABLE runs ADD COLUMN protocol TEXT NOT NULL DEFAULT ''",),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_RUN_COLUMNS = (
    "id, endpoint, kind, durable, principal, tenant, input, status, attempt, max_attempts, output, "
    "error_type, error_message, idempotency_key, request_hash, worker_id, lease_expires_at, deadline_at, "
    "last_seq, created_at, updated_at, started_at, finished_at, replay_of, replay_checkpoint, context_id, "
    "protocol_meta, budget, protocol"
)
# How many columns a run row has (_run_values, _run_from_row); postgres.py reads what follows them.
RUN_COLUMN_COUNT = 29
_SELECT_RUN = f"SELECT {_RUN_COLUMNS} FROM runs"
_INSERT_RUN = f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * RUN_COLUMN_COUNT)})"
_UPDATE_RUN = """
    UPDATE runs SET status = ?, attempt = ?, max_attempts = ?, worker_id = ?, lease_expires_at = ?, output = ?,
        error_type = ?, error_message = ?, started_at = ?, finished_at = ?, updated_at = ?, last_seq = ?,
        input = COALESCE(?, input)
    WHERE id = ? AND status = ? AND attempt = ?
"""
_SELECT_EVENTS = "SELECT run_id, seq, ts, kind, data FROM events"
_SELECT_CHECKPOINTS = "SELECT run_id, id, seq, attempt, ts, state FROM checkpoints"
_SELECT_PUSH_CONFIGS = "SELECT run_id, config_id, tenant, config, updated_at FROM push_configs"
# Takes the run's tenant; inserts nothing when there is no such run.
_PUT_PUSH_CONFIG = """
    INSERT INTO push_configs (run_id, config_id, tenant, config, updated_at)
    SELECT id, {mark}, tenant, {mark}, {mark} FROM {runs} WHERE id = {mark}
    ON CONFLICT (run_id, config_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at
"""
# Credentials and audit records: the same columns, in the same order, in SQLite and PostgreSQL.
CREDENTIAL_COLUMNS = (
    "id, kind, name, tenant, scopes, roles, endpoints, secret_hash, created_at, created_by, expires_at, "
    "revoked_at, last_used_at"
)
AUDIT_COLUMNS = "id, ts, action, outcome, principal, tenant, protocol, request_id, target, detail"
# Every column but the id, which the store assigns.
AUDIT_INSERT_COLUMNS = AUDIT_COLUMNS.removeprefix("id, ")
_SELECT_CREDENTIAL = f"SELECT {CREDENTIAL_COLUMNS} FROM credentials"
CREDENTIAL_COLUMN_COUNT = CREDENTIAL_COLUMNS.count(",") + 1
AUDIT_INSERT_COLUMN_COUNT = AUDIT_INSERT_COLUMNS.count(",") + 1
_INSERT_CREDENTIAL = (
    f"INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ({', '.join('?' * CREDENTIAL_COLUMN_COUNT)})"
)
_AUDIT_ROW = f"({', '.join('?' * AUDIT_INSERT_COLUMN_COUNT)})"
#: Audit rows per INSERT statement (x 9 parameters: far under SQLite's 32,766).
_AUDIT_CHUNK = 100


@functools.lru_cache(maxsize=8)
def _insert_audit(rows: int) -> str:
    return f"INSERT INTO audit ({AUDIT_INSERT_COLUMNS}) VALUES {', '.join([_AUDIT_ROW] * rows)}"


_ACTIVE_IN = "status IN ({})".format(", ".join(f"'{status}'" for status in sorted(ACTIVE)))
_TERMINAL_IN = "status IN ({})".format(", ".join(f"'{status}'" for status in sorted(TERMINAL)))


def _run_values(run: Run) -> tuple[Any, ...]:
    return (
        run.id,
        run.endpoint,
        str(run.kind),
        run.durable,
        run.caller.principal,
        run.caller.tenant,
        run.input,
        str(run.status),
        run.attempt,
        run.max_attempts,
        run.output,
        None if run.error is None else run.error.type,
        None if run.error is None else run.error.message,
        run.idempotency_key,
        run.request_hash,
        run.worker_id,
        run.lease_expires_at,
        run.deadline_at,
        run.last_seq,
        run.created_at,
        run.updated_at,
        run.started_at,
        run.finished_at,
        run.replay_of,
        run.replay_checkpoint,
        run.context_id,
        run.protocol_meta,
        None if run.budget is None else _encode_budget(run.budget),
        run.protocol,
    )


_encode_budget = msgspec.json.encode
_decode_budget = msgspec.json.Decoder(RunBudget).decode


def _run_from_row(row: tuple[Any, ...]) -> Run:
    (
        run_id,
        endpoint,
        kind,
        durable,
        principal,
        tenant,
        input_,
        status,
        attempt,
        max_attempts,
        output,
        error_type,
        error_message,
        idempotency_key,
        request_hash,
        worker_id,
        lease_expires_at,
        deadline_at,
        last_seq,
        created_at,
        updated_at,
        started_at,
        finished_at,
        replay_of,
        replay_checkpoint,
        context_id,
        protocol_meta,
        budget,
        protocol,
    ) = row
    return Run(
        id=run_id,
        endpoint=endpoint,
        kind=EndpointKind(kind),
        durable=bool(durable),
        caller=Caller(principal=principal, tenant=tenant),
        input=input_,
        status=RunStatus(status),
        attempt=attempt,
        max_attempts=max_attempts,
        output=output,
        error=None if error_type is None else RunError(type=error_type, message=error_message),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        worker_id=worker_id,
        lease_expires_at=lease_expires_at,
        deadline_at=deadline_at,
        last_seq=last_seq,
        created_at=created_at,
        updated_at=updated_at,
        started_at=started_at,
        finished_at=finished_at,
        replay_of=replay_of,
        replay_checkpoint=replay_checkpoint,
        context_id=context_id,
        protocol_meta=protocol_meta,
        budget=None if budget is None else _decode_budget(bytes(budget)),
        protocol=protocol,
    )


def _event_from_row(row: tuple[Any, ...]) -> Event:
    run_id, seq, ts, kind, data = row
    return Event(run_id=run_id, seq=seq, ts=ts, kind=kind, data=data)


def _checkpoint_from_row(row: tuple[Any, ...]) -> Checkpoint:
    run_id, checkpoint_id, seq, attempt, ts, state = row
    return Checkpoint(run_id=run_id, id=checkpoint_id, seq=seq, attempt=attempt, ts=ts, state=state)


def _push_config_from_row(row: tuple[Any, ...]) -> PushConfig:
    run_id, config_id, tenant, config, updated_at = row
    return PushConfig(run_id=run_id, id=config_id, tenant=tenant, config=config, updated_at=updated_at)


_strings = msgspec.json.Decoder(tuple[str, ...])


def credential_values(
    credential: StoredCredential, strings: Callable[[tuple[str, ...]], Any]
) -> tuple[Any, ...]:
    """The row of ``credential`` (``CREDENTIAL_COLUMNS``); ``strings`` stores a tuple of strings."""
    return (
        credential.id,
        str(credential.kind),
        credential.name,
        credential.tenant,
        strings(credential.scopes),
        strings(credential.roles),
        strings(credential.endpoints),
        credential.secret_hash,
        credential.created_at,
        credential.created_by,
        credential.expires_at,
        credential.revoked_at,
        credential.last_used_at,
    )


def _json_strings(values: tuple[str, ...]) -> str:
    return msgspec.json.encode(values).decode()


def credential_from_row(row: Sequence[Any]) -> StoredCredential:
    """A credential from its row: tuples of strings as JSON text (SQLite) or a list (PostgreSQL text[])."""
    (
        credential_id,
        kind,
        name,
        tenant,
        scopes,
        roles,
        endpoints,
        secret_hash,
        created_at,
        created_by,
        expires_at,
        revoked_at,
        last_used_at,
    ) = row
    return StoredCredential(
        id=credential_id,
        kind=CredentialKind(kind),
        name=name,
        tenant=tenant,
        scopes=_tuple(scopes),
        roles=_tuple(roles),
        endpoints=_tuple(endpoints),
        secret_hash=bytes(secret_hash),
        created_at=created_at,
        created_by=created_by,
        expires_at=expires_at,
        revoked_at=revoked_at,
        last_used_at=last_used_at,
    )


def _tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    return _strings.decode(value) if isinstance(value, str) else tuple(value)


def audit_values(record: AuditRecord) -> tuple[Any, ...]:
    """The row of ``record`` without its id (``AUDIT_INSERT_COLUMNS``)."""
    record = audit_stored(record, 0)
    return (
        record.ts,
        record.action,
        record.outcome,
        record.principal,
        record.tenant,
        record.protocol,
        record.request_id,
        record.target,
        record.detail,
    )


def audit_from_row(row: Sequence[Any]) -> AuditRecord:
    record_id, ts, action, outcome, principal, tenant, protocol, request_id, target, detail = row
    return AuditRecord(
        id=record_id,
        ts=ts,
        action=action,
        outcome=outcome,
        principal=principal,
        tenant=tenant,
        protocol=protocol,
        request_id=request_id,
        target=target,
        detail=detail,
    )


def credentials_sql(
    select: str, kind: CredentialKind | None, tenant: str | None, mark: str
) -> tuple[str, list[Any]]:
    """The SQL of ``AccessStore.credentials``: oldest first."""
    clauses: list[str] = []
    params: list[Any] = []
    if kind is not None:
        clauses.append(f"kind = {mark}")
        params.append(str(kind))
    if tenant is not None:
        clauses.append(f"tenant = {mark}")
        params.append(tenant)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return f"{select}{where} ORDER BY created_at, id", params


def audit_sql(select: str, query: AuditQuery, mark: str) -> tuple[str, list[Any]]:
    """The SQL of ``AccessStore.audit`` for ``query``; ``mark`` is the driver's placeholder (``?``, ``%s``)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("tenant", query.tenant),
        ("principal", query.principal),
        ("outcome", query.outcome),
    ):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if query.action is not None:
        if query.action.endswith("."):
            # A prefix. Not LIKE: "_" (worker_token.) would be a wildcard there.
            clauses.append(f"substr(action, 1, {len(query.action)}) = {mark}")
        else:
            clauses.append(f"action = {mark}")
        params.append(query.action)
    if query.since is not None:
        clauses.append(f"ts >= {mark}")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"ts < {mark}")
        params.append(query.until)
    if query.before_id is not None:
        clauses.append(f"id < {mark}")
        params.append(query.before_id)
    sql = select
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += f" ORDER BY id DESC LIMIT {mark}"
    params.append(audit_limit(query))
    return sql, params


USAGE_COLUMNS = "input_tokens, output_tokens, cost, calls, unpriced_calls"
# Added to a stored row: token counts saturate at TOKEN_CAP (usage.model).
_ADD_USAGE = f"""
    input_tokens = MIN(input_tokens + excluded.input_tokens, {TOKEN_CAP}),
    output_tokens = MIN(output_tokens + excluded.output_tokens, {TOKEN_CAP}),
    cost = cost + excluded.cost, calls = calls + excluded.calls,
    unpriced_calls = unpriced_calls + excluded.unpriced_calls
"""
_INSERT_RUN_USAGE = f"""
    INSERT INTO run_usage (run_id, model, {USAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (run_id, model) DO UPDATE SET {_ADD_USAGE}
"""
_INSERT_USAGE_DAILY = f"""
    INSERT INTO usage_daily (tenant, day, principal, endpoint, model, {USAGE_COLUMNS})
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (tenant, day, principal, endpoint, model) DO UPDATE SET {_ADD_USAGE}
"""


def usage_values(entry: ModelUsage) -> tuple[Any, ...]:
    """The ``USAGE_COLUMNS`` of ``entry``."""
    t = entry.totals
    return (t.input_tokens, t.output_tokens, t.cost, t.calls, t.unpriced_calls)


def usage_sql(
    table: str, query: UsageQuery, mark: str, *, day: str, day_mark: str, total: str
) -> tuple[str, list[Any], tuple[str, ...]]:
    """The SQL of ``RunStore.usage`` for ``query``, its parameters and the grouped fields (selected first,
    in that order, then the five sums). ``day``: the select expression of the day as ``YYYY-MM-DD``;
    ``day_mark``: the placeholder of a day parameter; ``total``: the sum of a column (``{}``), 0 when none."""
    fields = group_by(query)
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("tenant", "principal", "endpoint", "model"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if query.since is not None:
        clauses.append(f"day >= {day_mark}")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"day <= {day_mark}")
        params.append(query.until)
    selected = [day if name == "day" else name for name in fields]
    sums = [total.format(column) for column in USAGE_COLUMNS.split(", ")]
    sql = f"SELECT {', '.join([*selected, *sums])} FROM {table}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if fields:
        sql += f" GROUP BY {', '.join(fields)} ORDER BY {', '.join(fields)}"
    sql += f" LIMIT {mark}"
    params.append(usage_limit(query))
    return sql, params, fields


def usage_row(fields: tuple[str, ...], row: Sequence[Any]) -> UsageRow:
    keys = dict(zip(fields, row[: len(fields)], strict=True))
    return UsageRow(**keys, totals=totals_of(*row[len(fields) :]))


def where_sql(query: RunQuery, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause of ``query``'s filters (all but ``before`` and ``limit``) and its parameters."""
    sql = f" WHERE tenant = {mark}"
    params: list[Any] = [query.tenant]
    if query.context_id is not None:
        sql += f" AND context_id = {mark}"
        params.append(query.context_id)
    if query.status is not None:
        sql += f" AND status = {mark}"
        params.append(str(query.status))
    if query.statuses is not None:
        if not query.statuses:
            sql += " AND 1 = 0"
        else:
            sql += f" AND status IN ({', '.join([mark] * len(query.statuses))})"
            params.extend(sorted(str(status) for status in query.statuses))
    if query.endpoint is not None:
        sql += f" AND endpoint = {mark}"
        params.append(query.endpoint)
    if query.kind is not None:
        sql += f" AND kind = {mark}"
        params.append(str(query.kind))
    if query.updated_after is not None:
        sql += f" AND updated_at >= {mark}"
        params.append(query.updated_after)
    return sql, params


def list_sql(select: str, query: RunQuery, mark: str) -> tuple[str, list[Any]]:
    """The SQL of ``RunStore.list`` for ``query``; ``mark`` is the driver's placeholder (``?``, ``%s``)."""
    where, params = where_sql(query, mark)
    sql = select + where
    if query.before is not None:
        sql += f" AND id < {mark}"
        params.append(query.before)
    sql += f" ORDER BY id DESC LIMIT {mark}"
    params.append(max(query.limit, 0))
    return sql, params


def run_times_sql(table: str, tenant: str, since: float, limit: int, mark: str) -> tuple[str, list[Any]]:
    """The SQL of ``RunStore.run_times``: a range of the (tenant, id DESC) index from ``run_id_floor``."""
    sql = (
        f"SELECT endpoint, status, created_at, started_at, finished_at FROM {table} "
        f"WHERE tenant = {mark} AND id >= {mark} AND created_at >= {mark} ORDER BY id DESC LIMIT {mark}"
    )
    return sql, [tenant, run_id_floor(since), since, max(limit, 0)]


def run_times_of(rows: Iterable[Sequence[Any]]) -> list[RunTimes]:
    """``run_times`` rows as RunTimes."""
    return [RunTimes(row[0], RunStatus(row[1]), row[2], row[3], row[4]) for row in rows]


def count_sql(table: str, query: RunQuery, mark: str) -> tuple[str, list[Any]]:
    """The SQL of ``RunStore.count`` for ``query``."""
    where, params = where_sql(query, mark)
    return f"SELECT count(*) FROM {table}{where}", params


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # IMMEDIATE takes the write lock up front, so what a transaction reads cannot change before it writes.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"{path} has run store schema version {version}; this gateway knows up to {SCHEMA_VERSION}"
        )
    for migration in _MIGRATIONS[version:]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _store_events(
    conn: sqlite3.Connection, run: Run, placed: builtins.list[Event], sent: Sequence[NewEvent]
) -> None:
    if not placed:
        return
    conn.executemany(
        "INSERT INTO events (run_id, seq, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
        [(event.run_id, event.seq, event.ts, event.kind, event.data) for event in placed],
    )
    if not any(new.kind == "checkpoint" and new.checkpoint is not None for new in sent):
        return
    last_id: int = conn.execute(
        "SELECT COALESCE(MAX(id), 0) FROM checkpoints WHERE run_id = ?", (run.id,)
    ).fetchone()[0]
    conn.executemany(
        "INSERT INTO checkpoints (run_id, id, seq, attempt, ts, state) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (cp.run_id, cp.id, cp.seq, cp.attempt, cp.ts, cp.state)
            for cp in checkpoints_of(placed, sent, run.attempt, last_id)
        ],
    )


def _events_after(conn: sqlite3.Connection, run_id: str, after_seq: int, limit: int) -> builtins.list[Event]:
    """The run's events after ``after_seq``, at most ``limit`` (-1: all; SQLite's "no limit")."""
    return [
        _event_from_row(row)
        for row in conn.execute(
            f"{_SELECT_EVENTS} WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?", (run_id, after_seq, limit)
        )
    ]


def _select_run(conn: sqlite3.Connection, run_id: str) -> Run | None:
    row = conn.execute(f"{_SELECT_RUN} WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else _run_from_row(row)


_Job = tuple[Callable[[], Any], bool, "asyncio.Future[Any]"]
#: Handed to the connection's thread instead of jobs: restart the WAL (``_Connection.restart_wal``).
_RESTART = object()
MAX_BATCH = 256
#: The most events one read on the event loop returns; the rest of a longer log is read by the thread.
INLINE_EVENTS = 256
#: Seconds between the checkpointer's passes (and write batches between them, at most, when busy).
CHECKPOINT_EVERY = 1.0
CHECKPOINT_BATCHES = 200
#: WAL frames (pages) past which the checkpointer restarts the log (see ``_Checkpointer``): about 64 MB.
WAL_RESTART_FRAMES = 16_384
#: How long a restarting checkpoint may wait for the write lock and for readers, in milliseconds.
_RESTART_BUSY_MS = 200
#: ``PRAGMA busy_timeout`` of each lane: the thread waits for another process's write lock, the loop never.
_THREAD_BUSY_MS = 5000


class _Connection:
    """The store's one connection, and who runs the operations on it: two lanes, one at a time.

    - **The loop** runs the short operations (a run's create, get, transitions and events; point reads;
      appends to the audit log, up to 500 rows) itself: jobs submitted while it runs other callbacks
      wait for one ``call_soon``, then run as one batch. Going through a thread costs two thread
      hand-offs per operation and a GIL convoy with the event loop, more than the operation itself
      (tests/bench: about 85 µs an operation alone, and a third of a durable run's CPU under load).
    - **The thread** runs what may take long: scans (lists, counts, sweeps, usage, audit queries),
      deletions, long event logs, opening and closing, and a batch the loop could not start because
      another process holds the write lock (the loop's ``busy_timeout`` is 0: it never waits for a lock).

    Order is kept, and the connection is never used by two threads at once: once a job is handed to the
    thread, every later job follows it there until the thread has settled them all. Either lane runs its
    batch as one transaction: the writes share it, each inside its own savepoint (a failing write undoes
    only itself), and one commit; callers hear back only after that commit, so what they were told is
    durable. The loop does not checkpoint the WAL (``wal_autocheckpoint = 0``; a checkpoint syncs the
    file): ``_Checkpointer`` does, on a connection of its own, beside the writes.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[list[_Job] | object | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="fastagentic-sqlite", daemon=True)
        self.conn: sqlite3.Connection | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._inline: list[_Job] = []
        self._flushing = False
        self._handed = 0  # jobs handed to the thread and not yet settled
        self._restarting = False  # a WAL restart is handed to the thread
        self._waits = True  # the connection's busy_timeout is the thread's
        #: write batches committed by the loop since the checkpointer last looked
        self.batches = 0

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def submit(self, fn: Callable[[], T], write: bool, quick: bool) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            raise RuntimeError("a SQLiteRunStore is used from the event loop that started it, and only that")
        future: asyncio.Future[T] = loop.create_future()
        job = (fn, write, future)
        if quick and not self._handed and self.conn is not None:
            self._inline.append(job)
            if not self._flushing:
                self._flushing = True
                loop.call_soon(self._flush)
        else:
            # Whatever the loop has not run yet goes first: the thread runs jobs in the order submitted.
            jobs, self._inline = [*self._inline, job], []
            self._hand(jobs)
        return future

    def _hand(self, jobs: list[_Job]) -> None:
        self._handed += len(jobs)
        self._jobs.put(jobs)

    def _flush(self) -> None:
        self._flushing = False
        batch, self._inline = self._inline, []
        if not batch:
            return
        if self._waits:
            self._set_busy_timeout(0)
        outcomes = self._run(batch)
        if outcomes is None:  # another process holds the write lock: the thread waits for it
            self._hand(batch)
            return
        _settle([(future, *outcome) for (_, _, future), outcome in zip(batch, outcomes, strict=True)])

    def _serve(self) -> None:
        carried: list[_Job] | object | None = None
        while True:
            jobs = carried if carried is not None else self._jobs.get()
            carried = None
            if jobs is None:
                return
            if jobs is _RESTART:
                self._restart_wal()
                continue
            assert isinstance(jobs, list)
            batch = list(jobs)
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if more is _RESTART:
                    carried = more  # after this batch, alone
                    break
                assert isinstance(more, list)
                batch += more
            if not self._waits and self.conn is not None:
                self._set_busy_timeout(_THREAD_BUSY_MS)
            outcomes = self._run(batch) or []
            settled = [(future, *outcome) for (_, _, future), outcome in zip(batch, outcomes, strict=True)]
            loop = self.loop
            if loop is not None and not loop.is_closed():
                # One wake-up of the event loop per batch, not one per job.
                loop.call_soon_threadsafe(self._settle_handed, settled)
            if stop:
                return

    def restart_wal(self) -> None:
        """Have the thread restart the WAL (``_Checkpointer``), between batches: the jobs submitted
        meanwhile follow it there. On the event loop; a request already pending is not repeated."""
        if self._restarting or self.conn is None:
            return
        self._restarting = True
        jobs, self._inline = self._inline, []
        if jobs:
            self._hand(jobs)
        self._handed += 1
        self._jobs.put(_RESTART)

    def _restart_wal(self) -> None:
        conn = self.conn
        try:
            if conn is not None:
                # Not long: the writer is this thread, the passive pass copied most; only readers may keep it.
                self._set_busy_timeout(_RESTART_BUSY_MS)
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                self._set_busy_timeout(_THREAD_BUSY_MS)
                if busy:
                    log.debug("WAL restart waits for a reader; the next pass tries again")
        except sqlite3.Error as exc:
            log.debug("WAL restart skipped: %s", exc)
        finally:
            loop = self.loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._restarted)

    def _restarted(self) -> None:
        self._handed -= 1
        self._restarting = False

    def _settle_handed(self, settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
        self._handed -= len(settled)
        _settle(settled)

    def _set_busy_timeout(self, ms: int) -> None:
        if self.conn is not None:
            self.conn.execute(f"PRAGMA busy_timeout = {ms}")
            self._waits = ms > 0

    def _run(self, batch: list[_Job]) -> list[tuple[bool, Any]] | None:
        """Each job's outcome; None when the write lock was busy and the loop (which does not wait) ran
        nothing."""
        conn = self.conn
        if conn is None or not any(write for _, write, _ in batch):
            return [_attempt(fn) for fn, _, _ in batch]
        outcomes: list[tuple[bool, Any]] = []
        try:
            # IMMEDIATE takes the write lock up front, so what a job reads cannot change before it writes.
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not self._waits and exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return None
            return [(False, exc)] * len(batch)
        try:
            for fn, write, _ in batch:
                if not write:
                    outcomes.append(_attempt(fn))
                    continue
                conn.execute("SAVEPOINT job")
                ok, value = _attempt(fn)
                if not ok:
                    conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((ok, value))
            conn.execute("COMMIT")
            self.batches += 1
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # The commit (or the transaction around them) failed: no write of the batch happened.
            failed = (False, exc)
            return [
                outcomes[i] if i < len(outcomes) and not write else failed
                for i, (_, write, _) in enumerate(batch)
            ]
        return outcomes


class _Checkpointer:
    """Moves the WAL's pages into the database file, off the event loop: a thread with a connection of
    its own running ``PRAGMA wal_checkpoint(PASSIVE)``, which never blocks the writer, every
    ``CHECKPOINT_EVERY`` seconds, sooner after ``CHECKPOINT_BATCHES`` write batches. A complete pass lets
    the next write start the WAL over, so the file stays small.

    Under writes that never pause, no passive pass is ever complete (frames keep arriving while it copies)
    and the WAL would grow without end. Once it holds more than ``WAL_RESTART_FRAMES`` frames the pass is
    ``RESTART``: it copies what the passive pass left (little) and waits for the readers to be done with
    the log (``_RESTART_BUSY_MS`` at most), and the next write starts the log over (``journal_size_limit`` then
    truncates the file). The store's own connection runs it, in its thread, between two batches: our
    writes wait behind it in order (a few milliseconds) instead of racing it for the lock."""

    def __init__(self, path: str, connection: _Connection) -> None:
        self.path = path
        self.connection = connection
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fastagentic-sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _serve(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            waited = 0.0
            while not self._stop.wait(0.05):
                waited += 0.05
                if waited < CHECKPOINT_EVERY and self.connection.batches < CHECKPOINT_BATCHES:
                    continue
                waited, self.connection.batches = 0.0, 0
                try:
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # busy or unreadable now: the next pass tries again
                    log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)
                    continue
                loop = self.connection.loop
                if frames > WAL_RESTART_FRAMES and loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(self.connection.restart_wal)
        finally:
            conn.close()


def _attempt(fn: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, fn()
    except Exception as exc:
        return False, exc


def _settle(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class SQLiteRunStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._thread: _Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        #: told each operation's name, seconds and whether the database failed (the gateway's metrics)
        self.observe: Callable[[str, float, bool], None] | None = None

    @property
    def _conn(self) -> sqlite3.Connection | None:
        return self._thread.conn if self._thread is not None else None

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = _Connection()
        self._thread.start()
        try:
            await self._submit(self._open, quick=False)
        except BaseException:
            self._thread.stop()
            self._thread = None
            raise
        if self.path != ":memory:":
            self._checkpointer = _Checkpointer(self.path, self._thread)
            self._checkpointer.start()

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
        try:
            await self._submit(self._close_connection, quick=False)
        finally:
            self._thread = None
            await asyncio.to_thread(thread.stop)

    async def create(self, run: Run, events: Sequence[NewEvent] = ()) -> tuple[Run, bool]:
        values = _run_values(msgspec.structs.replace(run, last_seq=len(events)))

        def create(conn: sqlite3.Connection) -> tuple[Run, bool]:
            if run.idempotency_key is not None:
                row = conn.execute(
                    f"{_SELECT_RUN} WHERE tenant = ? AND idempotency_key = ?",
                    (run.caller.tenant, run.idempotency_key),
                ).fetchone()
                if row is not None:
                    return _run_from_row(row), False
            try:
                conn.execute(_INSERT_RUN, values)
            except sqlite3.IntegrityError as exc:
                # The idempotency key was checked above under the write lock, so only the id can clash.
                raise ValueError(f"run {run.id} already exists") from exc
            _store_events(conn, run, stamped(run.id, 0, events, time.time()), events)
            return _run_from_row(values), True

        return await self._write(create)

    async def get(self, run_id: str, tenant: str | None = None) -> Run | None:
        def get(conn: sqlite3.Connection) -> Run | None:
            if tenant is None:
                return _select_run(conn, run_id)
            row = conn.execute(f"{_SELECT_RUN} WHERE id = ? AND tenant = ?", (run_id, tenant)).fetchone()
            return None if row is None else _run_from_row(row)

        return await self._read(get)

    async def transition(
        self,
        run_id: str,
        *,
        expect: frozenset[RunStatus],
        attempt: int | None,
        update: RunUpdate,
        events: Sequence[NewEvent] = (),
    ) -> tuple[Run, builtins.list[Event]] | None:
        def transition(conn: sqlite3.Connection) -> tuple[Run, builtins.list[Event]] | None:
            run = _select_run(conn, run_id)
            if run is None or not admits(run, expect, attempt, update):
                return None
            now = time.time()
            placed = stamped(run_id, run.last_seq, events, now)
            new = applied(run, update, now)
            new.last_seq = run.last_seq + len(placed)
            changed = conn.execute(
                _UPDATE_RUN,
                (
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
                    str(run.status),
                    run.attempt,
                ),
            ).rowcount
            if changed != 1:
                return None
            _store_events(conn, run, placed, events)
            return new, placed

        return await self._write(transition)

    async def append_events(
        self, run_id: str, attempt: int, first_seq: int, events: Sequence[NewEvent]
    ) -> builtins.list[Event] | None:
        def append(conn: sqlite3.Connection) -> builtins.list[Event] | None:
            run = _select_run(conn, run_id)
            if run is None or run.status != RunStatus.RUNNING or run.attempt != attempt:
                return None
            fresh = trimmed(run, first_seq, events)
            placed = stamped(run_id, run.last_seq, fresh, time.time())
            if not placed:
                return placed
            conn.execute(
                "UPDATE runs SET last_seq = ? WHERE id = ? AND status = ? AND attempt = ?",
                (run.last_seq + len(placed), run_id, str(RunStatus.RUNNING), attempt),
            )
            _store_events(conn, run, placed, fresh)
            return placed

        return await self._write(append)

    async def events(self, run_id: str, after_seq: int = 0, limit: int | None = None) -> builtins.list[Event]:
        # The event loop reads up to INLINE_EVENTS (a follower's next few); the thread reads the rest of a
        # longer log, from where the first read stopped (seqs only grow, so nothing is missed or repeated).
        first = INLINE_EVENTS if limit is None else min(max(limit, 0), INLINE_EVENTS)
        head = await self._read(lambda conn: _events_after(conn, run_id, after_seq, first))
        rest = (-1 if limit is None else max(limit, 0) - first) if len(head) == first else 0
        if not rest:
            return head
        after = head[-1].seq if head else after_seq
        return head + await self._read(lambda conn: _events_after(conn, run_id, after, rest), quick=False)

    async def checkpoints(self, run_id: str) -> builtins.list[Checkpoint]:
        return await self._read(
            lambda conn: [
                _checkpoint_from_row(row)
                for row in conn.execute(f"{_SELECT_CHECKPOINTS} WHERE run_id = ? ORDER BY id", (run_id,))
            ],
            quick=False,
        )

    async def checkpoint(self, run_id: str, checkpoint_id: int) -> Checkpoint | None:
        def one(conn: sqlite3.Connection) -> Checkpoint | None:
            row = conn.execute(
                f"{_SELECT_CHECKPOINTS} WHERE run_id = ? AND id = ?", (run_id, checkpoint_id)
            ).fetchone()
            return None if row is None else _checkpoint_from_row(row)

        return await self._read(one)

    async def last_checkpoint(self, run_id: str) -> Checkpoint | None:
        def last(conn: sqlite3.Connection) -> Checkpoint | None:
            row = conn.execute(
                f"{_SELECT_CHECKPOINTS} WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)
            ).fetchone()
            return None if row is None else _checkpoint_from_row(row)

        return await self._read(last)

    async def renew_leases(self, worker_id: str, until: float) -> int:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE runs SET lease_expires_at = ? WHERE worker_id = ? AND status = ?",
                    (until, worker_id, str(RunStatus.RUNNING)),
                ).rowcount
            )
        )

    async def expired(self, now: float, limit: int = 100) -> builtins.list[Run]:
        return await self._read(
            lambda conn: [
                _run_from_row(row)
                for row in conn.execute(
                    f"{_SELECT_RUN} WHERE status = ? AND lease_expires_at < ? "
                    "ORDER BY lease_expires_at, id LIMIT ?",
                    (str(RunStatus.RUNNING), now, max(limit, 0)),
                )
            ],
            quick=False,
        )

    async def overdue(self, now: float, limit: int = 100) -> builtins.list[Run]:
        return await self._read(
            lambda conn: [
                _run_from_row(row)
                for row in conn.execute(
                    f"{_SELECT_RUN} WHERE {_ACTIVE_IN} AND deadline_at < ? ORDER BY deadline_at, id LIMIT ?",
                    (now, max(limit, 0)),
                )
            ],
            quick=False,
        )

    async def queued(self, limit: int = 1000) -> builtins.list[Run]:
        return await self._read(
            lambda conn: [
                _run_from_row(row)
                for row in conn.execute(
                    f"{_SELECT_RUN} WHERE status = ? ORDER BY id LIMIT ?",
                    (str(RunStatus.QUEUED), max(limit, 0)),
                )
            ],
            quick=False,
        )

    async def delete_finished(self, before: float, limit: int = 1000) -> int:
        # Events and checkpoints go with their run through ON DELETE CASCADE.
        return await self._write(
            lambda conn: (
                conn.execute(
                    f"DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE {_TERMINAL_IN} AND finished_at < ? "
                    "ORDER BY finished_at LIMIT ?)",
                    (before, max(limit, 0)),
                ).rowcount
            ),
            quick=False,
        )

    async def count(self, query: RunQuery) -> int:
        sql, params = count_sql("runs", query, "?")
        return await self._read(lambda conn: int(conn.execute(sql, params).fetchone()[0]), quick=False)

    async def run_times(self, tenant: str, since: float, limit: int) -> builtins.list[RunTimes]:
        sql, params = run_times_sql("runs", tenant, since, limit, "?")
        return await self._read(lambda conn: run_times_of(conn.execute(sql, params)), quick=False)

    async def waiting(self, limit: int) -> builtins.list[Run]:
        sql = f"{_SELECT_RUN} WHERE status = ? ORDER BY updated_at, id LIMIT ?"
        params = (str(RunStatus.WAITING_INPUT), max(limit, 0))
        return await self._read(
            lambda conn: [_run_from_row(row) for row in conn.execute(sql, params)], quick=False
        )

    async def put_push_config(self, run_id: str, config_id: str, config: bytes) -> bool:
        sql = _PUT_PUSH_CONFIG.format(mark="?", runs="runs")
        return await self._write(
            lambda conn: conn.execute(sql, (config_id, config, time.time(), run_id)).rowcount == 1
        )

    async def push_configs(self, run_id: str) -> builtins.list[PushConfig]:
        return await self._read(
            lambda conn: [
                _push_config_from_row(row)
                for row in conn.execute(
                    f"{_SELECT_PUSH_CONFIGS} WHERE run_id = ? ORDER BY updated_at, config_id", (run_id,)
                )
            ]
        )

    async def delete_push_config(self, run_id: str, config_id: str | None = None) -> int:
        sql = "DELETE FROM push_configs WHERE run_id = ?"
        params: tuple[str, ...] = (run_id,)
        if config_id is not None:
            sql, params = sql + " AND config_id = ?", (run_id, config_id)
        return await self._write(lambda conn: conn.execute(sql, params).rowcount)

    async def pushing(self, limit: int = 1000) -> builtins.list[Run]:
        return await self._read(
            lambda conn: [
                _run_from_row(row)
                for row in conn.execute(
                    f"{_SELECT_RUN} WHERE {_ACTIVE_IN} AND EXISTS "
                    "(SELECT 1 FROM push_configs p WHERE p.run_id = runs.id) ORDER BY id LIMIT ?",
                    (max(limit, 0),),
                )
            ],
            quick=False,
        )

    # usage

    async def add_usage(self, report: UsageReport, *, run: bool = True, aggregate: bool = True) -> bool:
        def add(conn: sqlite3.Connection) -> bool:
            if run:
                # Counted once per seq: the run's marker moves forward, or nothing is counted.
                moved = conn.execute(
                    "UPDATE runs SET usage_seq = ? WHERE id = ? AND usage_seq < ?",
                    (report.seq, report.run_id, report.seq),
                ).rowcount
                if moved != 1:
                    return False
                conn.executemany(
                    _INSERT_RUN_USAGE,
                    [(report.run_id, entry.model, *usage_values(entry)) for entry in report.models],
                )
            if aggregate:
                key = (report.tenant, report.day, report.principal, report.endpoint)
                conn.executemany(
                    _INSERT_USAGE_DAILY,
                    [(*key, entry.model, *usage_values(entry)) for entry in report.models],
                )
            return True

        return await self._write(add)

    async def run_usage(self, run_id: str) -> builtins.list[ModelUsage]:
        return await self._read(
            lambda conn: [
                ModelUsage(model=row[0], totals=totals_of(*row[1:]))
                for row in conn.execute(
                    f"SELECT model, {USAGE_COLUMNS} FROM run_usage WHERE run_id = ? ORDER BY model", (run_id,)
                )
            ]
        )

    async def usage(self, query: UsageQuery) -> builtins.list[UsageRow]:
        # total(): a float sum, which (unlike sum()) cannot overflow; totals_of() makes integers again.
        sql, params, fields = usage_sql("usage_daily", query, "?", day="day", day_mark="?", total="total({})")
        return await self._read(
            lambda conn: [usage_row(fields, row) for row in conn.execute(sql, params)], quick=False
        )

    # access: credentials and the audit log

    async def put_credential(self, credential: StoredCredential) -> None:
        values = credential_values(credential, _json_strings)

        def put(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_CREDENTIAL, values)
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"credential {credential.id} already exists") from exc

        await self._write(put)

    async def credential(self, credential_id: str) -> StoredCredential | None:
        def one(conn: sqlite3.Connection) -> StoredCredential | None:
            row = conn.execute(f"{_SELECT_CREDENTIAL} WHERE id = ?", (credential_id,)).fetchone()
            return None if row is None else credential_from_row(row)

        return await self._read(one)

    async def credentials(
        self, kind: CredentialKind | None = None, tenant: str | None = None
    ) -> builtins.list[StoredCredential]:
        sql, params = credentials_sql(_SELECT_CREDENTIAL, kind, tenant, "?")
        return await self._read(
            lambda conn: [credential_from_row(row) for row in conn.execute(sql, params)], quick=False
        )

    async def revoke_credential(self, credential_id: str, at: float) -> StoredCredential | None:
        def revoke(conn: sqlite3.Connection) -> StoredCredential | None:
            conn.execute(
                "UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, credential_id),
            )
            row = conn.execute(f"{_SELECT_CREDENTIAL} WHERE id = ?", (credential_id,)).fetchone()
            return None if row is None else credential_from_row(row)

        return await self._write(revoke)

    async def touch_credentials(self, used: Mapping[str, float]) -> None:
        if not used:
            return
        rows = [(at, credential_id, at) for credential_id, at in used.items()]

        def touch(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE credentials SET last_used_at = ? "
                "WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                rows,
            )

        await self._write(touch)

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        values = [value for record in records for value in audit_values(record)]

        def append(conn: sqlite3.Connection) -> None:
            # Multi-row INSERTs, in order, in one transaction: the rowids increase in the order given.
            width = AUDIT_INSERT_COLUMN_COUNT * _AUDIT_CHUNK
            for start in range(0, len(values), width):
                chunk = values[start : start + width]
                conn.execute(_insert_audit(len(chunk) // AUDIT_INSERT_COLUMN_COUNT), chunk)

        # On the loop's lane, not the thread's: about 3 µs a record (a batch of 500 holds the loop ~2 ms).
        # In the thread, each SQLite call gives the GIL up and takes it back from a busy event loop, which
        # waits up to the switch interval and makes the loop hand it over: under load (REST invoke, c=32,
        # every run audited) that cost 22 µs of the thread's CPU and some 30 µs of the loop's per record.
        await self._write(append)

    async def audit(self, query: AuditQuery) -> builtins.list[AuditRecord]:
        sql, params = audit_sql(f"SELECT {AUDIT_COLUMNS} FROM audit", query, "?")
        return await self._read(
            lambda conn: [audit_from_row(row) for row in conn.execute(sql, params)], quick=False
        )

    async def delete_audit(self, before: float, limit: int = 1000) -> int:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE ts < ? ORDER BY ts, id LIMIT ?)",
                    (before, max(limit, 0)),
                ).rowcount
            ),
            quick=False,
        )

    # Defined last: inside the class body the name ``list`` is this method from here on.
    async def list(self, query: RunQuery) -> builtins.list[Run]:
        sql, params = list_sql(_SELECT_RUN, query, "?")
        return await self._read(
            lambda conn: [_run_from_row(row) for row in conn.execute(sql, params)], quick=False
        )

    def _open(self) -> None:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # _Checkpointer's, off the event loop
            conn.execute(f"PRAGMA journal_size_limit = {WAL_RESTART_FRAMES * 4096}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            _in_transaction(conn, lambda conn: _migrate(conn, self.path))
        except BaseException:
            conn.close()
            raise
        assert self._thread is not None
        self._thread.conn = conn

    def _close_connection(self) -> None:
        if self._thread is not None and self._thread.conn is not None:
            conn, self._thread.conn = self._thread.conn, None
            try:
                if self.path != ":memory:":
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                log.debug("final WAL checkpoint of %s skipped: %s", self.path, exc)
            finally:
                conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("SQLiteRunStore is not started")
        return self._conn

    async def _submit(self, fn: Callable[[], T], write: bool = False, quick: bool = True) -> T:
        """``fn`` run on the connection: by the event loop when ``quick``, else by the connection's thread
        (see ``_Connection``: a long scan, a deletion)."""
        if self._thread is None:
            raise RuntimeError("SQLiteRunStore is not started")
        # If the caller is cancelled the job still runs to the end: a write commits or rolls back whole.
        return await self._thread.submit(fn, write, quick)

    async def _read(self, fn: Callable[[sqlite3.Connection], T], quick: bool = True) -> T:
        if self.observe is not None:
            return await self._timed(fn, write=False, quick=quick)
        return await self._submit(lambda: fn(self._connection()), quick=quick)

    async def _write(self, fn: Callable[[sqlite3.Connection], T], quick: bool = True) -> T:
        if self.observe is not None:
            return await self._timed(fn, write=True, quick=quick)
        return await self._submit(lambda: fn(self._connection()), write=True, quick=quick)

    async def _timed(self, fn: Callable[[sqlite3.Connection], T], write: bool, quick: bool) -> T:
        """``fn`` as ``_read`` / ``_write`` run it, its time and database failures told to ``observe``."""
        observe, began = self.observe, time.perf_counter()
        assert observe is not None
        try:
            result = await self._submit(lambda: fn(self._connection()), write=write, quick=quick)
        except (sqlite3.Error, OSError):
            observe(operation(fn), time.perf_counter() - began, True)
            raise
        observe(operation(fn), time.perf_counter() - began, False)
        return result
