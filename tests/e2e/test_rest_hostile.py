"""Hostile input on REST and on MCP's resource reads: numbers beyond what a store holds, huge URIs."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Cluster, Gateway
from tests.e2e.mcp_support import open_legacy_session, session_headers, sse_messages


@pytest.fixture
def served(cluster: Cluster) -> Gateway:
    gateway = cluster.start_gateway()
    cluster.start_worker("tests.workers.basic:app")
    return gateway


def test_positions_and_checkpoints_beyond_63_bits_are_client_errors(served: Gateway) -> None:
    run = httpx.post(f"{served.url}/v1/agents/echo/invoke", json={"text": "x"}, timeout=30).json()
    events = f"{served.url}/v1/runs/{run['run_id']}/events"
    for huge in (str(2**63), str(2**64), "1" * 401):
        for response in (
            httpx.get(events, headers={"Last-Event-ID": huge}, timeout=10),
            httpx.get(events, params={"after": huge}, timeout=10),
        ):
            assert response.status_code == 400, response.text
            assert response.json()["type"] == "malformed_request"
    replay = f"{served.url}/v1/runs/{run['run_id']}/replay"
    for huge in (2**63, 10**19, 2**64):
        response = httpx.post(replay, json={"checkpoint": huge}, timeout=10)
        assert response.status_code == 422, response.text
    assert "Traceback" not in served.output()


def test_an_unknown_huge_resource_uri_is_not_echoed_whole(served: Gateway) -> None:
    uri = "nothing://" + "é" * 100_000
    with httpx.Client(base_url=served.url, timeout=30) as http:
        headers = session_headers(open_legacy_session(http))
        body = {"jsonrpc": "2.0", "id": 5, "method": "resources/read", "params": {"uri": uri}}
        response = http.post("/mcp", json=body, headers=headers)
    assert response.status_code == 200
    assert len(response.content) < 2048
    [message] = [m for _, m in sse_messages(response.text.splitlines()) if m is not None]
    assert message["error"]["message"].startswith("Resource not found: nothing://")


def test_an_unknown_huge_task_id_is_not_echoed_whole(served: Gateway) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        headers = session_headers(open_legacy_session(http))
        body = {"jsonrpc": "2.0", "id": 6, "method": "tasks/get", "params": {"taskId": "x" * 100_000}}
        response = http.post("/mcp", json=body, headers=headers)
    assert len(response.content) < 2048
    [message] = [m for _, m in sse_messages(response.text.splitlines()) if m is not None]
    assert message["error"]["message"] == "Failed to retrieve task: Task not found"
