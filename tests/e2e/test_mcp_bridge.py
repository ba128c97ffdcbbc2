"""``fastagentic mcp stdio`` end to end: the official client's stdio transport launches the bridge, which
relays to a real gateway serving a real worker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ROOT, Cluster, Gateway, base_env, wait_until
from tests.e2e.mcp_support import LATE_WORKER, LEGACY, MODERN, WORKER, eventually, mcp_url, method_recorder

pytestmark = pytest.mark.e2e


def bridged(gateway: Gateway, mode: str, **options: Any) -> Client:
    command = StdioServerParameters(
        command=sys.executable,
        args=["-m", "fastagentic", "mcp", "stdio", "--url", mcp_url(gateway)],
        env=base_env(),
        cwd=ROOT,
    )
    return Client(command, mode=mode, read_timeout_seconds=60, **options)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_client_lists_and_calls_tools_through_the_bridge(served_mcp: Gateway, mode: str) -> None:
    async with bridged(served_mcp, mode) as mcp:
        version = mcp.protocol_version
        tools = {tool.name for tool in (await mcp.list_tools()).tools}
        result = await mcp.call_tool("add", {"a": 40, "b": 2})
    assert version == (LEGACY if mode == "legacy" else MODERN)
    assert {"add", "research", "picture"} <= tools
    assert result.structured_content == {"result": 42}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_bridge_relays_progress_notifications(served_mcp: Gateway, mode: str) -> None:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    async with bridged(served_mcp, mode) as mcp:
        await mcp.call_tool("count", {"n": 2}, progress_callback=progress)
    assert seen == [1.0, 2.0, 4.0]


async def test_bridge_relays_errors_and_resources(served_mcp: Gateway) -> None:
    async with bridged(served_mcp, "legacy") as mcp:
        failed = await mcp.call_tool("explode", {})
        note = (await mcp.read_resource("notes://bridge")).contents[0]
    assert failed.is_error
    assert isinstance(failed.content[0], types.TextContent) and failed.content[0].text == "ValueError: kaboom"
    assert isinstance(note, types.TextResourceContents) and note.text == "note bridge"


async def test_bridge_relays_list_changes_from_the_session_stream(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker(WORKER)
    heard, on_message = method_recorder()

    async with bridged(gateway, "legacy", message_handler=on_message) as mcp:
        await anyio.sleep(1.0)  # the bridge opens the session's GET stream after initialization
        await anyio.to_thread.run_sync(lambda: cluster.start_worker(LATE_WORKER))
        await eventually(lambda: "notifications/tools/list_changed" in heard, "the tools list change")
        assert "late_tool" in {tool.name for tool in (await mcp.list_tools()).tools}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_cancelling_through_the_bridge_cancels_the_run(
    served_mcp: Gateway, mode: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    async with bridged(served_mcp, mode) as mcp, anyio.create_task_group() as group:
        group.start_soon(mcp.call_tool, "slow", {"seconds": 60, "marker": str(marker)})
        await anyio.to_thread.run_sync(lambda: wait_until(marker.exists, what="the tool to start"))
        group.cancel_scope.cancel()
    wait_until(lambda: marker.read_text().startswith("cancelled"), what="the worker to see the cancellation")
    assert marker.read_text() == "cancelled ctx.cancelled=True"


def test_piped_requests_are_answered_and_closing_stdin_ends_the_session(served_mcp: Gateway) -> None:
    import json
    import subprocess

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "pipe", "version": "1"},
        },
    }
    lines = [json.dumps(init), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})]
    lines.append(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "shout", "arguments": {"text": "bye"}},
            }
        )
    )
    ended = served_mcp.output().count("Terminating session")
    done = subprocess.run(
        [sys.executable, "-m", "fastagentic", "mcp", "stdio", "--url", mcp_url(served_mcp)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=base_env(),
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    by_id = {answer["id"]: answer for answer in answers if "id" in answer}
    assert by_id[1]["result"]["protocolVersion"] == LEGACY
    assert by_id[2]["result"]["content"] == [{"type": "text", "text": "BYE"}]
    wait_until(lambda: served_mcp.output().count("Terminating session") > ended, what="the session to end")
