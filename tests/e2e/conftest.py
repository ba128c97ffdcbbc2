"""Fixtures of the end-to-end tests beyond the shared ones in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, Gateway
from tests.e2e.mcp_support import WORKER


@pytest.fixture(scope="module")
def served_mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway and one MCP worker, shared by a module's tests that change nothing they share."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("mcp")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker(WORKER)
        yield gateway
    finally:
        cluster.close()
