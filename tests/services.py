"""The real local services tests talk to (never mocks): PostgreSQL and NATS.

Tests that need one call ``require_postgres()`` / ``require_nats()``: when the service is unreachable the
test is skipped, saying why, unless ``FASTAGENTIC_REQUIRE_SERVICES=1``, in which case it fails (CI sets it
so a missing service cannot pass silently). Each test gets a database of its own from
``postgres_database()``, dropped afterwards.

The defaults are the local development services: PostgreSQL at 127.0.0.1:5432 as user ``postgres`` with
trust authentication, NATS at 127.0.0.1:4222. ``FASTAGENTIC_TEST_POSTGRES`` (an admin URL of the
``postgres`` database) and ``FASTAGENTIC_TEST_NATS`` (``host:port``) point elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_NATS = "127.0.0.1:4222"


def services_required() -> bool:
    return os.environ.get("FASTAGENTIC_REQUIRE_SERVICES") == "1"


def _unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (FASTAGENTIC_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def postgres_dsn(database: str = "postgres") -> str:
    """The URL of ``database`` on the test server (by default the admin database ``postgres``)."""
    admin = urlsplit(os.environ.get("FASTAGENTIC_TEST_POSTGRES", DEFAULT_POSTGRES))
    return urlunsplit(admin._replace(path=f"/{database}"))


@functools.cache
def _postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None. Asked once per test session."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed: {exc}"
    try:
        with psycopg.connect(postgres_dsn(), autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable at {_where(postgres_dsn())}: {str(exc).strip().splitlines()[0]}"
    return None


def require_postgres() -> str:
    """The admin URL of the test PostgreSQL server; skips the test (or fails it) when it is unreachable."""
    problem = _postgres_problem()
    if problem is not None:
        _unavailable(problem)
    return postgres_dsn()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A freshly created, empty database (``fa_test_<random>``) for one test: yields its URL, then drops it."""
    import psycopg

    admin = require_postgres()
    name = f"fa_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_dsn(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            # FORCE ends sessions still connected to it (a killed gateway's, a pool not yet closed).
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


@functools.cache
def _nats_problem() -> str | None:
    address = os.environ.get("FASTAGENTIC_TEST_NATS", DEFAULT_NATS)
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return None
    except OSError as exc:
        return f"NATS unreachable at {address}: {exc}"


def require_nats() -> str:
    """The URL of the test NATS server; skips the test (or fails it) when nothing listens there."""
    problem = _nats_problem()
    if problem is not None:
        _unavailable(problem)
    return f"nats://{os.environ.get('FASTAGENTIC_TEST_NATS', DEFAULT_NATS)}"


def require_nats_server() -> str:
    """The nats-server binary, for a test that runs a NATS of its own (to take it down)."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None
    )
    if found is None:
        _unavailable("the nats-server binary is not installed (PATH or /usr/sbin/nats-server)")
    assert found is not None
    return found


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def _run_service_command(args: list[str], what: str) -> None:
    import subprocess

    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"cannot {what}: {exc}")
        return
    if result.returncode != 0:
        _unavailable(f"cannot {what}: {(result.stderr or result.stdout).strip()[:300]}")


def _postgres_cluster() -> list[str]:
    import subprocess

    try:
        line = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        _unavailable(f"cannot find the local PostgreSQL cluster (pg_lsclusters): {exc}")
    version, name = line.split()[:2]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, name]


@contextmanager
def postgres_outage() -> Iterator[None]:
    """Stop the local PostgreSQL server (fast shutdown: sessions are cut) and start it again on exit.
    Only for the local server this machine runs; the test is skipped (or failed) when that is not possible."""
    require_postgres()
    if os.environ.get("FASTAGENTIC_TEST_POSTGRES"):
        _unavailable("FASTAGENTIC_TEST_POSTGRES points at a server these tests must not stop")
    cluster = _postgres_cluster()
    _run_service_command([*cluster, "stop", "--", "-m", "fast"], "stop PostgreSQL")
    try:
        yield
    finally:
        _run_service_command([*cluster, "start"], "start PostgreSQL")
        _postgres_problem.cache_clear()
        deadline = time.monotonic() + 30
        while _postgres_problem() is not None and time.monotonic() < deadline:
            _postgres_problem.cache_clear()
            time.sleep(0.2)


async def delete_nats_state(
    url: str, *, streams: tuple[str, ...] = (), buckets: tuple[str, ...] = ()
) -> None:
    """Delete a test's JetStream streams and key-value buckets, bounded: nats-py's own connect retries a
    stalled server about 60 times (five minutes), which would hang the test's teardown instead of failing it.
    A server that does not answer within the bound leaves the names behind, with a warning naming them."""
    import nats
    import nats.js.errors

    async def quiet(exc: Exception) -> None:
        return None

    async def delete() -> None:
        nc = await nats.connect(
            url, connect_timeout=3, max_reconnect_attempts=3, reconnect_time_wait=1, error_cb=quiet
        )
        try:
            js = nc.jetstream(timeout=5)
            for name, remove in [
                *((s, js.delete_stream) for s in streams),
                *((b, js.delete_key_value) for b in buckets),
            ]:
                try:
                    await remove(name)
                except nats.js.errors.NotFoundError:
                    pass
                except nats.errors.Error as exc:  # the others still go
                    warnings.warn(f"NATS did not delete {name}: {exc!r}", stacklevel=1)
        finally:
            await nc.close()

    try:
        await asyncio.wait_for(delete(), timeout=20)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        warnings.warn(
            f"NATS at {url} did not let this test delete {streams + buckets}: {exc!r}", stacklevel=2
        )


NATS_START = [
    "start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/nats-server", "--",
    "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server", "-l", "/var/log/nats-server.log",
]  # fmt: skip


@contextmanager
def nats_outage() -> Iterator[None]:
    """Stop the local NATS server and start it again (same JetStream directory) on exit."""
    require_nats()
    if os.environ.get("FASTAGENTIC_TEST_NATS"):
        _unavailable("FASTAGENTIC_TEST_NATS points at a server these tests must not stop")
    _run_service_command(
        ["start-stop-daemon", "--stop", "--retry", "10", "--exec", "/usr/sbin/nats-server"], "stop NATS"
    )
    try:
        yield
    finally:
        _run_service_command(NATS_START, "start NATS")
        _nats_problem.cache_clear()
        deadline = time.monotonic() + 30
        while _nats_problem() is not None and time.monotonic() < deadline:
            _nats_problem.cache_clear()
            time.sleep(0.2)
