"""Shared pieces of the agent CLI tests: a gateway serving tests/workers/cli_worker.py, and `fastagentic` run
as a user runs it (a subprocess, HOME in a temporary directory)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Cluster, base_env

WORKER = "tests.workers.cli_worker:app"


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("cli")))
    try:
        cluster.start_gateway()
        cluster.start_worker(WORKER)
        yield cluster
    except BaseException:
        sys.stderr.write(cluster.dump())
        raise
    finally:
        cluster.close()


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = base_env()  # no FASTAGENTIC_* from the caller's environment
    env["HOME"] = str(home)
    env.update(extra)
    return env


def fastagentic(
    *args: str, home: Path, stdin: str | None = None, timeout: float = 60, cwd: Path = ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastagentic", *args],
        input=stdin,
        env=cli_env(home, **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
