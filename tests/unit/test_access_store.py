"""The AccessStore contract (credentials and the audit log): every test runs against MemoryRunStore,
SQLiteRunStore and PostgresRunStore alike, on the fixtures of the RunStore contract (a fresh SQLite file, a
fresh PostgreSQL database per test; tests/unit/test_store_contract.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from fastagentic_gateway.access.model import AuditQuery, AuditRecord, CredentialKind, StoredCredential
from fastagentic_gateway.errors import Conflict
from fastagentic_gateway.runs.model import RunQuery, RunStatus, RunUpdate
from fastagentic_gateway.store import MemoryRunStore, PostgresRunStore, RunStore, SQLiteRunStore
from fastagentic_gateway.store import postgres as pg
from fastagentic_gateway.store import sqlite as sqlite_store
from fastagentic_gateway.store.base import MAX_AUDIT_LIMIT, AccessStore
from tests.unit import test_store_contract as contract
from tests.unit.test_store_contract import QUEUED, applied_versions, create_finished, make_run

# The contract's fixtures, under their own names, so that pytest finds them here too.
store = contract.store
pg_url = contract.pg_url
reopen = contract.reopen

API_KEY = CredentialKind.API_KEY
WORKER_TOKEN = CredentialKind.WORKER_TOKEN
SECRET = "s3cr3t-never-stored-7f1e9c2a"


def make_credential(credential_id: str = "key_0000000000000001", **fields: Any) -> StoredCredential:
    fields.setdefault("kind", API_KEY)
    fields.setdefault("name", "ci")
    fields.setdefault("tenant", "acme")
    fields.setdefault("secret_hash", hashlib.sha256(f"secret-of-{credential_id}".encode()).digest())
    fields.setdefault("created_at", 1700000000.0)
    return StoredCredential(id=credential_id, **fields)


def make_record(**fields: Any) -> AuditRecord:
    fields.setdefault("ts", 1700000000.0)
    fields.setdefault("action", "run.create")
    fields.setdefault("outcome", "ok")
    fields.setdefault("principal", "alice")
    fields.setdefault("tenant", "acme")
    fields.setdefault("protocol", "rest")
    return AuditRecord(**fields)


def ids(records: list[AuditRecord]) -> list[int]:
    return [record.id for record in records]


def details(records: list[AuditRecord]) -> list[str]:
    return [record.detail for record in records]


# credentials: put / get


async def test_put_then_get_returns_every_field(store: AccessStore) -> None:
    credential = StoredCredential(
        id="key_3f9a0c1d2e3f4a5b",
        kind=API_KEY,
        name="deploy bot — ünïcode",
        tenant="globex",
        scopes=("runs:create", "runs:read"),
        roles=("operator", "viewer"),
        endpoints=(),
        secret_hash=bytes(range(256)),  # every byte value, NUL included
        created_at=1700000000.125,
        created_by="admin@globex",
        expires_at=1800000000.5,
        revoked_at=None,
        last_used_at=1700000100.25,
    )
    token = StoredCredential(
        id="wtk_0123456789abcdef",
        kind=WORKER_TOKEN,
        name="workers",
        tenant="globex",
        endpoints=("echo", "summarize"),
        secret_hash=hashlib.sha256(SECRET.encode()).digest(),
        created_at=1700000001.0,
    )

    await store.put_credential(credential)
    await store.put_credential(token)

    assert await store.credential(credential.id) == credential
    assert await store.credential(token.id) == token
    stored = await store.credential(token.id)
    assert stored is not None and (stored.scopes, stored.roles, stored.created_by) == ((), (), "")
    assert (stored.expires_at, stored.revoked_at, stored.last_used_at) == (None, None, None)
    assert type(stored.kind) is CredentialKind and type(stored.scopes) is tuple


async def test_credential_of_an_unknown_id_is_none(store: AccessStore) -> None:
    assert await store.credential("key_missing") is None


async def test_put_credential_with_an_existing_id_raises_conflict(store: AccessStore) -> None:
    first = make_credential(name="first")
    await store.put_credential(first)

    with pytest.raises(Conflict, match="already exists"):
        await store.put_credential(make_credential(name="second", kind=WORKER_TOKEN, tenant="globex"))
    assert await store.credential(first.id) == first
    assert await store.credentials() == [first]


async def test_credentials_are_listed_oldest_first_filtered_by_kind_and_tenant(store: AccessStore) -> None:
    # Stored in another order than they were created.
    c3 = make_credential("key_0000000000000003", created_at=3.0, tenant="globex")
    c1 = make_credential("key_0000000000000001", created_at=1.0)
    w2 = make_credential("wtk_0000000000000002", created_at=2.0, kind=WORKER_TOKEN, endpoints=("echo",))
    w4 = make_credential("wtk_0000000000000004", created_at=4.0, kind=WORKER_TOKEN, tenant="globex")
    c5 = make_credential("key_0000000000000005", created_at=4.0)  # same time as w4: by id
    for credential in (c3, c1, w2, w4, c5):
        await store.put_credential(credential)
    await store.revoke_credential(c1.id, at=10.0)
    revoked_c1 = msgspec.structs.replace(c1, revoked_at=10.0)

    assert await store.credentials() == [revoked_c1, w2, c3, c5, w4]
    assert await store.credentials(kind=API_KEY) == [revoked_c1, c3, c5]
    assert await store.credentials(kind=WORKER_TOKEN) == [w2, w4]
    assert await store.credentials(tenant="globex") == [c3, w4]
    assert await store.credentials(kind=API_KEY, tenant="acme") == [revoked_c1, c5]
    assert await store.credentials(kind=WORKER_TOKEN, tenant="initech") == []


async def test_credentials_of_an_empty_store_are_empty(store: AccessStore) -> None:
    assert await store.credentials() == []


# credentials: revoke


async def test_revoke_sets_revoked_at_and_returns_the_credential_as_it_now_is(store: AccessStore) -> None:
    credential = make_credential(last_used_at=5.0, expires_at=99.0)
    await store.put_credential(credential)

    revoked = await store.revoke_credential(credential.id, at=42.5)

    assert revoked == msgspec.structs.replace(credential, revoked_at=42.5)
    assert await store.credential(credential.id) == revoked


async def test_revoking_twice_keeps_the_first_revoked_at(store: AccessStore) -> None:
    credential = make_credential()
    await store.put_credential(credential)
    first = await store.revoke_credential(credential.id, at=10.0)

    second = await store.revoke_credential(credential.id, at=20.0)
    earlier = await store.revoke_credential(credential.id, at=5.0)

    assert first is not None and first.revoked_at == 10.0
    assert second == first and earlier == first
    assert await store.credential(credential.id) == first


async def test_revoke_of_an_unknown_credential_is_none(store: AccessStore) -> None:
    await store.put_credential(make_credential())

    assert await store.revoke_credential("key_missing", at=1.0) is None
    assert [c.revoked_at for c in await store.credentials()] == [None]


async def test_revoke_changes_only_that_credential(store: AccessStore) -> None:
    a, b = make_credential("key_000000000000000a"), make_credential("key_000000000000000b")
    await store.put_credential(a)
    await store.put_credential(b)

    await store.revoke_credential(a.id, at=3.0)

    assert await store.credential(b.id) == b


# credentials: touch


async def test_touch_sets_last_used_at_to_the_latest_time(store: AccessStore) -> None:
    a = make_credential("key_000000000000000a")
    b = make_credential("key_000000000000000b", last_used_at=50.0)
    c = make_credential("key_000000000000000c", last_used_at=50.0)
    untouched = make_credential("key_000000000000000d", last_used_at=7.0)
    for credential in (a, b, c, untouched):
        await store.put_credential(credential)

    await store.touch_credentials({a.id: 10.0, b.id: 60.0, c.id: 40.0})

    assert [(x.id, x.last_used_at) for x in await store.credentials()] == [
        (a.id, 10.0),  # was never used: set
        (b.id, 60.0),  # later: moved on
        (c.id, 50.0),  # earlier than what is stored: kept
        (untouched.id, 7.0),
    ]
    await store.touch_credentials({a.id: 5.0, b.id: 60.0, c.id: 50.5})
    assert [x.last_used_at for x in await store.credentials()] == [10.0, 60.0, 50.5, 7.0]


async def test_touch_ignores_unknown_ids_and_empty_batches(store: AccessStore) -> None:
    a = make_credential("key_000000000000000a")
    await store.put_credential(a)

    await store.touch_credentials({})
    await store.touch_credentials({"key_missing": 9.0, a.id: 3.0, "wtk_missing": 1.0})

    assert await store.credentials() == [msgspec.structs.replace(a, last_used_at=3.0)]


async def test_touch_leaves_every_other_field_and_revoked_credentials_still_record_use(
    store: AccessStore,
) -> None:
    a = make_credential("key_000000000000000a", scopes=("runs:read",), expires_at=100.0)
    await store.put_credential(a)
    await store.revoke_credential(a.id, at=8.0)

    await store.touch_credentials({a.id: 9.0})

    assert await store.credential(a.id) == msgspec.structs.replace(a, revoked_at=8.0, last_used_at=9.0)


async def test_touch_of_a_large_batch(store: AccessStore) -> None:
    for i in range(300):
        await store.put_credential(make_credential(f"key_{i:016x}", created_at=float(i)))

    await store.touch_credentials({f"key_{i:016x}": 1000.0 + i for i in range(0, 300, 2)})

    assert [c.last_used_at for c in await store.credentials()] == [
        1000.0 + i if i % 2 == 0 else None for i in range(300)
    ]


# audit: append / query


async def test_append_audit_assigns_increasing_ids_in_the_order_given(store: AccessStore) -> None:
    first = [make_record(detail=f"a{i}", ts=100.0 - i, id=77) for i in range(3)]  # ids given are ignored
    second = [make_record(detail=f"b{i}") for i in range(2)]

    await store.append_audit(first)
    await store.append_audit([])
    await store.append_audit(second)

    found = await store.audit(AuditQuery())
    assert details(found) == ["b1", "b0", "a2", "a1", "a0"]  # newest (highest id) first, whatever the ts
    assert ids(found) == sorted(ids(found), reverse=True) and len(set(ids(found))) == 5
    assert all(record.id > 0 for record in found)
    assert [msgspec.structs.replace(record, id=0) for record in reversed(found)] == [
        msgspec.structs.replace(record, id=0) for record in (*first, *second)
    ]


async def test_audit_records_round_trip_every_field(store: AccessStore) -> None:
    record = AuditRecord(
        ts=1700000000.125,
        action="worker_token.revoke",
        outcome="denied",
        principal="user:bob",
        tenant="globex",
        protocol="grpc",
        request_id="req-1",
        target="wtk_0123456789abcdef",
        detail="scope runs:admin missing — ünïcode",
    )

    await store.append_audit([record])

    [stored] = await store.audit(AuditQuery())
    assert stored.id > 0
    assert stored == msgspec.structs.replace(record, id=stored.id)


async def test_audit_nul_characters_are_stored_as_replacement_characters(store: AccessStore) -> None:
    await store.append_audit([make_record(principal="ev\x00il", detail="a\x00b", target="\x00")])

    [stored] = await store.audit(AuditQuery())
    assert (stored.principal, stored.detail, stored.target) == ("ev\ufffdil", "a\ufffdb", "\ufffd")


async def audit_fixture(store: AccessStore) -> None:
    await store.append_audit(
        [
            make_record(detail="1", ts=10.0, action="run.create"),
            make_record(detail="2", ts=20.0, action="run.cancel", tenant="globex", principal="bob"),
            make_record(detail="3", ts=30.0, action="auth.failed", outcome="failed", principal=""),
            make_record(detail="4", ts=40.0, action="key.create", principal="admin"),
            make_record(detail="5", ts=50.0, action="worker_token.create", principal="admin"),
            make_record(detail="6", ts=60.0, action="workerXtoken.create", principal="admin"),
            make_record(detail="7", ts=70.0, action="run.replay", outcome="denied", tenant="globex"),
            make_record(detail="8", ts=80.0, action="run", outcome="ok"),
            make_record(detail="9", ts=90.0, action="access.denied", outcome="denied", principal="bob"),
        ]
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (AuditQuery(), ["9", "8", "7", "6", "5", "4", "3", "2", "1"]),
        (AuditQuery(tenant="globex"), ["7", "2"]),
        (AuditQuery(tenant="initech"), []),
        (AuditQuery(principal="bob"), ["9", "2"]),
        (AuditQuery(principal=""), ["3"]),
        (AuditQuery(action="run.create"), ["1"]),
        (AuditQuery(action="run"), ["8"]),  # exact: not a prefix without the dot
        (AuditQuery(action="run."), ["7", "2", "1"]),
        (AuditQuery(action="worker_token."), ["5"]),  # "_" is no wildcard
        (AuditQuery(action="key."), ["4"]),
        (AuditQuery(action="nothing."), []),
        (AuditQuery(outcome="denied"), ["9", "7"]),
        (AuditQuery(outcome="failed"), ["3"]),
        (AuditQuery(since=70.0), ["9", "8", "7"]),  # inclusive
        (AuditQuery(until=30.0), ["2", "1"]),  # exclusive
        (AuditQuery(since=20.0, until=40.0), ["3", "2"]),
        (AuditQuery(tenant="acme", action="run.", outcome="ok"), ["1"]),
        (AuditQuery(tenant="acme", principal="admin", since=45.0), ["6", "5"]),
        (AuditQuery(limit=2), ["9", "8"]),
        (AuditQuery(tenant="globex", limit=1), ["7"]),
        (AuditQuery(limit=0), []),
        (AuditQuery(limit=-5), []),
    ],
)
async def test_audit_filters(store: AccessStore, query: AuditQuery, expected: list[str]) -> None:
    await audit_fixture(store)

    assert details(await store.audit(query)) == expected


async def test_audit_pages_with_before_id(store: AccessStore) -> None:
    await store.append_audit(
        [make_record(detail=str(i), tenant="acme" if i % 3 else "globex") for i in range(25)]
    )

    pages: list[list[str]] = []
    before: int | None = None
    while page := await store.audit(AuditQuery(tenant="acme", before_id=before, limit=7)):
        pages.append(details(page))
        before = page[-1].id
    all_ids = ids(await store.audit(AuditQuery()))

    expected = [str(i) for i in reversed(range(25)) if i % 3]
    assert [len(page) for page in pages] == [7, 7, 2]
    assert [detail for page in pages for detail in page] == expected
    assert details(await store.audit(AuditQuery(before_id=all_ids[-1]))) == []
    assert details(await store.audit(AuditQuery(before_id=all_ids[0] + 1000, limit=1))) == ["24"]
    assert ids(await store.audit(AuditQuery(before_id=all_ids[3]))) == all_ids[4:]


async def test_audit_limit_is_capped(store: AccessStore) -> None:
    await store.append_audit([make_record(ts=float(i)) for i in range(MAX_AUDIT_LIMIT + 5)])

    found = await store.audit(AuditQuery(limit=MAX_AUDIT_LIMIT * 10))

    assert MAX_AUDIT_LIMIT == 1000
    assert len(found) == MAX_AUDIT_LIMIT
    assert [record.ts for record in found] == [float(i) for i in reversed(range(5, MAX_AUDIT_LIMIT + 5))]


# audit: retention


async def test_delete_audit_deletes_records_before_a_time(store: AccessStore) -> None:
    await store.append_audit([make_record(detail=str(i), ts=float(i)) for i in range(10)])

    assert await store.delete_audit(before=4.0) == 4  # ts 0, 1, 2, 3: strictly before
    assert details(await store.audit(AuditQuery())) == ["9", "8", "7", "6", "5", "4"]
    assert await store.delete_audit(before=4.0) == 0


async def test_delete_audit_deletes_at_most_limit_oldest_first(store: AccessStore) -> None:
    # Appended out of time order: the oldest by ts go first, not the lowest ids.
    await store.append_audit([make_record(detail=str(ts), ts=float(ts)) for ts in (5, 1, 4, 2, 3, 9)])

    assert await store.delete_audit(before=6.0, limit=2) == 2
    assert sorted(details(await store.audit(AuditQuery()))) == ["3", "4", "5", "9"]
    assert await store.delete_audit(before=6.0, limit=0) == 0
    assert await store.delete_audit(before=6.0, limit=10) == 3
    assert details(await store.audit(AuditQuery())) == ["9"]


async def test_audit_ids_keep_increasing_after_retention_deleted_everything(store: AccessStore) -> None:
    await store.append_audit([make_record(ts=1.0), make_record(ts=2.0)])
    highest = ids(await store.audit(AuditQuery()))[0]

    assert await store.delete_audit(before=10.0) == 2
    await store.append_audit([make_record(ts=3.0)])

    [record] = await store.audit(AuditQuery())
    assert record.id > highest


async def test_run_retention_never_touches_credentials_or_the_audit_log(store: RunStore) -> None:
    access: AccessStore = store  # type: ignore[assignment]
    credential = make_credential(created_at=1.0, expires_at=2.0)
    await access.put_credential(credential)
    await access.revoke_credential(credential.id, at=3.0)
    await access.append_audit([make_record(ts=1.0, target="run_x")])
    run = await create_finished(store, finished_at=5.0)

    assert await store.delete_finished(before=time.time() + 3600) == 1

    assert await store.get(run.id) is None
    assert await access.credentials() == [msgspec.structs.replace(credential, revoked_at=3.0)]
    assert details(await access.audit(AuditQuery())) == [""]


async def test_audit_retention_never_touches_runs_or_credentials(store: RunStore) -> None:
    access: AccessStore = store  # type: ignore[assignment]
    credential = make_credential(created_at=1.0)
    await access.put_credential(credential)
    run, _ = await store.create(make_run())
    await access.append_audit([make_record(ts=1.0)])

    assert await access.delete_audit(before=time.time() + 3600) == 1

    assert await store.get(run.id) == run
    assert await access.credentials() == [credential]


# secrets


async def test_only_the_hash_of_a_secret_is_stored_and_it_round_trips_exactly(store: AccessStore) -> None:
    digest = hashlib.sha256(SECRET.encode()).digest()
    credential = make_credential(secret_hash=digest)
    await store.put_credential(credential)

    stored = await store.credential(credential.id)

    assert stored is not None and stored.secret_hash == digest and type(stored.secret_hash) is bytes
    assert not any(SECRET in str(value) for value in msgspec.structs.asdict(stored).values())
    assert "secret" not in {field.lower() for field in StoredCredential.__struct_fields__} - {"secret_hash"}


async def test_durable_access_data_survives_close_and_reopen_and_holds_no_secret(
    reopen: Callable[[], RunStore], tmp_path: Path
) -> None:
    digest = hashlib.sha256(SECRET.encode()).digest()
    first: Any = reopen()
    await first.start()
    credential = make_credential(secret_hash=digest, scopes=("runs:read",), roles=("viewer",), created_at=1.0)
    token = make_credential("wtk_0000000000000001", kind=WORKER_TOKEN, endpoints=("echo",), created_at=2.0)
    await first.put_credential(credential)
    await first.put_credential(token)
    await first.revoke_credential(token.id, at=5.0)
    await first.touch_credentials({credential.id: 6.0})
    await first.append_audit([make_record(detail="one"), make_record(detail="two")])
    credentials = await first.credentials()
    records = await first.audit(AuditQuery())
    await first.close()

    second: Any = reopen()
    await second.start()
    try:
        assert await second.credentials() == credentials
        assert [(c.revoked_at, c.last_used_at) for c in credentials] == [(None, 6.0), (5.0, None)]
        assert await second.audit(AuditQuery()) == records
        await second.append_audit([make_record(detail="three")])
        newest = await second.audit(AuditQuery(limit=1))
        assert details(newest) == ["three"] and newest[0].id > records[0].id
    finally:
        await second.close()

    assert SECRET.encode() not in raw_storage(second)
    assert digest in raw_storage(second)


def raw_storage(store: Any) -> bytes:
    """Every byte the durable store holds for the access tables."""
    if isinstance(store, SQLiteRunStore):
        return b"".join(
            path.read_bytes() for path in Path(store.path).parent.glob(Path(store.path).name + "*")
        )
    assert isinstance(store, PostgresRunStore)
    with psycopg.connect(store.url) as conn:
        rows = conn.execute(
            "SELECT c::text, c.secret_hash FROM fastagentic_credentials c "
            "UNION ALL SELECT a::text, NULL FROM fastagentic_audit a"
        ).fetchall()
    return b"".join(text.encode() + (bytes(blob) if blob else b"") for text, blob in rows)


# the memory store's own bound


async def test_memory_store_keeps_at_most_max_audit_records_dropping_the_oldest() -> None:
    memory = MemoryRunStore(max_audit=3)
    await memory.append_audit([make_record(detail=str(i)) for i in range(2)])
    await memory.append_audit([make_record(detail=str(i)) for i in range(2, 5)])

    assert details(await memory.audit(AuditQuery())) == ["4", "3", "2"]
    assert ids(await memory.audit(AuditQuery())) == [5, 4, 3]


def test_memory_store_rejects_negative_max_audit() -> None:
    with pytest.raises(ValueError, match="max_audit"):
        MemoryRunStore(max_audit=-1)


def test_every_store_implements_the_access_store_protocol_with_its_signatures() -> None:
    methods = [name for name in vars(AccessStore) if not name.startswith("_")]
    assert len(methods) == 8
    for cls in (MemoryRunStore, SQLiteRunStore, PostgresRunStore):
        for name in methods:
            implementation = getattr(cls, name)
            assert asyncio.iscoroutinefunction(implementation), (cls, name)
            assert inspect.signature(implementation) == inspect.signature(getattr(AccessStore, name)), (
                cls,
                name,
            )


# schema upgrades: a store at the previous version gets the access tables and keeps its runs


async def assert_upgraded(store: Any) -> None:
    old = await store.get("run_old")
    assert old is not None and (old.context_id, old.endpoint) == ("ctx", "echo")
    assert await store.list(RunQuery(tenant="acme", context_id="ctx")) == [old]
    assert await store.push_configs("run_old") != []
    credential = make_credential()
    await store.put_credential(credential)
    assert await store.credentials() == [credential]
    await store.append_audit([make_record()])
    assert len(await store.audit(AuditQuery())) == 1
    result = await store.transition(
        "run_old", expect=QUEUED, attempt=1, update=RunUpdate(status=RunStatus.CANCELLED, finished_at=2.0)
    )
    assert result is not None
    assert await store.delete_finished(before=3.0) == 1
    assert await store.credentials() == [credential]


OLD_RUN = (
    "INSERT INTO {runs} (id, endpoint, kind, durable, principal, tenant, input, status, attempt, max_attempts, "
    "last_seq, created_at, updated_at, context_id) "
    "VALUES ('run_old', 'echo', 'agent', {true}, 'alice', 'acme', {input}, 'queued', 1, 3, 0, 1.0, 1.0, 'ctx')"
)
OLD_PUSH_CONFIG = "INSERT INTO {table} (run_id, config_id, tenant, config, updated_at) VALUES ('run_old', 'a', 'acme', {config}, 1.0)"


async def test_sqlite_file_of_schema_version_3_is_migrated_keeping_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    conn = sqlite3.connect(path)
    for migration in sqlite_store._MIGRATIONS[:3]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(OLD_RUN.format(runs="runs", true=1, input="x'7b7d'"))
    conn.execute(OLD_PUSH_CONFIG.format(table="push_configs", config="x'7b7d'"))
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()

    store = SQLiteRunStore(str(path))
    await store.start()
    try:
        await assert_upgraded(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7 == sqlite_store.SCHEMA_VERSION
    conn.close()


async def test_postgres_database_of_schema_version_3_is_migrated_keeping_its_runs(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for migration in pg.migrations()[:3]:
            conn.execute(migration.sql.encode())
        conn.execute(
            "CREATE TABLE fastagentic_schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
        )
        conn.execute("INSERT INTO fastagentic_schema_migrations VALUES (1, now()), (2, now()), (3, now())")
        conn.execute(OLD_RUN.format(runs="fastagentic_runs", true="true", input="'{}'"))
        conn.execute(OLD_PUSH_CONFIG.format(table="fastagentic_push_configs", config="'{}'"))

    store = PostgresRunStore(pg_url)
    await store.start()
    try:
        assert [m.name for m in store.applied] == [
            "0004_credentials_and_audit",
            "0005_usage",
            "0006_run_budget",
            "0007_run_protocol",
        ]
        await assert_upgraded(store)
    finally:
        await store.close()
    assert applied_versions(pg_url) == [1, 2, 3, 4, 5, 6, 7]
    assert pg.latest_version() == 7


# PostgreSQL: replicas sharing one database


async def test_postgres_replicas_touching_overlapping_batches_do_not_deadlock(pg_url: str) -> None:
    replica_a, replica_b = PostgresRunStore(pg_url), PostgresRunStore(pg_url)
    await replica_a.start()
    await replica_b.start()
    try:
        names = [f"key_{i:016x}" for i in range(50)]
        for name in names:
            await replica_a.put_credential(make_credential(name))

        # Opposite orders, many times at once: without a lock order these would deadlock.
        await asyncio.gather(
            *(
                touch
                for round_ in range(10)
                for touch in (
                    replica_a.touch_credentials({name: 100.0 + round_ for name in names}),
                    replica_b.touch_credentials({name: 200.0 - round_ for name in reversed(names)}),
                )
            )
        )

        assert {c.last_used_at for c in await replica_b.credentials()} == {200.0}
    finally:
        await replica_a.close()
        await replica_b.close()


async def test_postgres_replicas_revoking_at_once_agree_on_one_revocation(pg_url: str) -> None:
    replica_a, replica_b = PostgresRunStore(pg_url), PostgresRunStore(pg_url)
    await replica_a.start()
    await replica_b.start()
    try:
        names = [f"key_{i:016x}" for i in range(20)]
        for name in names:
            await replica_a.put_credential(make_credential(name))

        outcomes = await asyncio.gather(
            *(
                asyncio.gather(
                    replica_a.revoke_credential(name, at=1.0), replica_b.revoke_credential(name, at=2.0)
                )
                for name in names
            )
        )

        for name, (a, b) in zip(names, outcomes, strict=True):
            assert a is not None and b is not None
            assert a.revoked_at == b.revoked_at, name
            assert (await replica_a.credential(name)) == a
    finally:
        await replica_a.close()
        await replica_b.close()


async def test_postgres_replicas_appending_at_once_get_distinct_increasing_ids(pg_url: str) -> None:
    replica_a, replica_b = PostgresRunStore(pg_url), PostgresRunStore(pg_url)
    await replica_a.start()
    await replica_b.start()
    try:
        await asyncio.gather(
            *(
                replica.append_audit([make_record(target=f"{name}{batch}", detail=str(i)) for i in range(5)])
                for replica, name in ((replica_a, "a"), (replica_b, "b"))
                for batch in range(10)
            )
        )

        found = await replica_a.audit(AuditQuery(limit=1000))
        assert len(found) == 100 and len(set(ids(found))) == 100
        batches: dict[str, list[AuditRecord]] = {}
        for record in reversed(found):
            batches.setdefault(record.target, []).append(record)
        assert len(batches) == 20
        for batch in batches.values():
            # Within each batch the ids follow the order given.
            assert details(batch) == ["0", "1", "2", "3", "4"]
    finally:
        await replica_a.close()
        await replica_b.close()
