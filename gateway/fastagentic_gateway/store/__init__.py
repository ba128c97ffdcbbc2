"""Run stores, ``open_store`` to pick one from the configured URL, and ``migrate`` to bring its schema up."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import RunStore
from .memory import MemoryRunStore
from .postgres import PostgresRunStore, latest_version
from .sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from .sqlite import SQLiteRunStore

__all__ = [
    "MemoryRunStore",
    "MigrationReport",
    "PostgresRunStore",
    "RunStore",
    "SQLiteRunStore",
    "migrate",
    "open_store",
]

_SUPPORTED = (
    "sqlite:// (default: <data_dir>/runs.sqlite3), sqlite:///abs/path.db, sqlite://relative.db, memory://, "
    "postgresql://user:password@host:port/dbname (or postgres://)"
)
# Query parameters of a postgresql:// URL that size the connection pool; psycopg never sees them.
_POOL_PARAMETERS = {"pool_min_size": "min_size", "pool_max_size": "max_size"}


def open_store(url: str, data_dir: str, *, migrate: bool = True) -> RunStore:
    """The store ``url`` names; ``""`` and ``"sqlite://"`` mean ``<data_dir>/runs.sqlite3``.

    ``sqlite://`` is followed by a file path as is: ``sqlite:///abs/path.db`` is absolute, and
    ``sqlite://relative.db`` is relative to the working directory.

    ``postgresql://`` and ``postgres://`` URLs are libpq connection URLs, passed to psycopg as they are,
    except two optional query parameters that size the store's connection pool: ``pool_min_size``
    (default 1) and ``pool_max_size`` (default 10).

    ``migrate``: whether ``start()`` applies pending schema migrations. When False a PostgreSQL store
    refuses to start on a schema that is behind (run ``fastagentic-gateway migrate``); a SQLite file is
    always migrated when opened. Nothing connects until ``start()``.
    """
    if url in ("", "sqlite://"):
        return SQLiteRunStore(os.path.join(data_dir, "runs.sqlite3"))
    if url.startswith("sqlite://"):
        return SQLiteRunStore(url.removeprefix("sqlite://"))
    if url == "memory://":
        return MemoryRunStore()
    if url.startswith("memory://"):
        raise ValueError(f"run store URL {url!r}: memory:// takes no path")
    scheme = url.partition("://")[0] if "://" in url else url
    if scheme in ("postgresql", "postgres"):
        conninfo, sizes = _pool_sizes(url)
        try:
            return PostgresRunStore(conninfo, migrate=migrate, **sizes)
        except ValueError as exc:
            # Not the URL itself in the message: it may carry a password.
            raise ValueError(f"run store URL ({scheme}://...): {exc}") from exc
    raise ValueError(f"run store URL {_redacted(url)!r}: unknown scheme {scheme!r}; supported: {_SUPPORTED}")


def _pool_sizes(url: str) -> tuple[str, dict[str, int]]:
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    sizes: dict[str, int] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _POOL_PARAMETERS:
            kept.append((key, value))
            continue
        try:
            sizes[_POOL_PARAMETERS[key]] = int(value)
        except ValueError:
            raise ValueError(f"run store URL: {key} must be an integer, not {value!r}") from None
    if not sizes:
        return url, sizes
    return urlunsplit(parts._replace(query=urlencode(kept))), sizes


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class MigrationReport(NamedTuple):
    store: str  # what was migrated, without credentials
    applied: list[str]  # the migrations applied now, in order; empty when it was up to date
    version: int  # the schema version after


async def migrate(url: str, data_dir: str) -> MigrationReport:
    """Bring the schema of the store ``url`` names up to the latest version (``fastagentic-gateway migrate``).

    Raises what opening the store raises: ValueError for a bad URL, ConnectionError when the database is
    unreachable, ``postgres.SchemaError`` when its schema is newer than this code."""
    store = open_store(url, data_dir)
    if isinstance(store, PostgresRunStore):
        applied = await store.migrate()
        return MigrationReport(f"PostgreSQL {store.where}", [m.name for m in applied], latest_version())
    if isinstance(store, SQLiteRunStore):
        path, before = await asyncio.to_thread(_sqlite_version, store.path)
        await store.start()
        await store.close()
        return MigrationReport(
            f"SQLite {path}",
            [f"SQLite schema version {v}" for v in range(before + 1, SQLITE_SCHEMA_VERSION + 1)],
            SQLITE_SCHEMA_VERSION,
        )
    return MigrationReport("memory:// (nothing persisted)", [], 0)


def _sqlite_version(path: str) -> tuple[str, int]:
    """The file's absolute path and schema version (0 when it does not exist yet)."""
    if not os.path.exists(path):
        return os.path.abspath(path), 0
    conn = sqlite3.connect(path)
    try:
        return os.path.abspath(path), int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
