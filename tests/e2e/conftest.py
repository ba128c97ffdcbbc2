"""Fixtures of the end-to-end tests beyond the shared ones in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, Gateway
from tests.e2e.a2a_support import WORKER as A2A_WORKER
from tests.e2e.mcp_support import WORKER as MCP_WORKER


def _shared_gateway(tmp_path_factory: pytest.TempPathFactory, worker: str) -> Iterator[Gateway]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("shared")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(worker)
        yield gateway
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def served_mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway and one MCP worker, shared by a module's tests that change nothing they share."""
    yield from _shared_gateway(tmp_path_factory, MCP_WORKER)


@pytest.fixture(scope="module")
def served_a2a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway and one A2A worker, shared by a module's tests that change nothing they share."""
    yield from _shared_gateway(tmp_path_factory, A2A_WORKER)
