"""The MCP front end to end: the official ``mcp`` client against real gateway and worker processes.

Most behaviours are checked in each of the client's modes: ``auto`` (probes ``server/discover``, so it
lands on 2026-07-28), ``legacy`` (the 2025-11-25 handshake and session) and ``2026-07-28`` (adopted
directly).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.client.subscriptions import ToolsListChanged
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from tests.conftest import Cluster, Gateway, wait_until
from tests.e2e.mcp_support import (
    HEADERS,
    LATE_WORKER,
    LEGACY,
    LEGACY_INITIALIZE,
    MODERN,
    MODES,
    TASKS,
    WORKER,
    client,
    eventually,
    method_recorder,
    modern_headers,
    modern_request,
    open_legacy_session,
    session_headers,
    sse_messages,
)
from tests.workers.mcp_worker import PNG

pytestmark = pytest.mark.e2e


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def read_until(stream: Any, needle: str) -> list[str]:
    """The lines of an SSE response up to the first data line containing ``needle``; then hang up."""
    lines: list[str] = []
    with stream as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data:") and needle in line:
                break
    return lines


# ---------------------------------------------------------------- the catalogue


@pytest.mark.parametrize("mode", MODES)
async def test_mode_negotiates_its_protocol_revision(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        assert mcp.protocol_version == (LEGACY if mode == "legacy" else MODERN)


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_the_registered_tools_and_agents(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert {"add", "profile", "explode", "count", "research", "fragile", "archive"} <= set(tools)
    assert tools["research"].meta == {"dev.fastagentic/kind": "agent"}
    assert tools["add"].meta == {"dev.fastagentic/kind": "tool"}
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema["required"] == ["a", "b"]
    assert tools["research"].input_schema["properties"]["topic"] == {"type": "string"}


@pytest.mark.parametrize("mode", MODES)
async def test_output_schema_is_the_object_or_wraps_other_outputs_in_result(
    served_mcp: Gateway, mode: str
) -> None:
    async with client(served_mcp, mode) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert tools["profile"].output_schema is not None
    assert tools["profile"].output_schema["type"] == "object"
    assert set(tools["profile"].output_schema["properties"]) == {"name", "letters", "tags"}
    assert tools["add"].output_schema == {
        "type": "object",
        "properties": {"result": {"type": "integer"}},
        "required": ["result"],
    }
    assert tools["picture"].output_schema is None  # MCP content, not structured data


async def test_agents_and_durable_tools_declare_task_support(served_mcp: Gateway) -> None:
    async with client(served_mcp, "legacy") as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    support = {name: tool.execution.task_support for name, tool in tools.items() if tool.execution}
    assert support["research"] == "optional"
    assert support["archive"] == "optional"
    assert support["add"] == "forbidden"


@pytest.mark.parametrize("mode", MODES)
async def test_resources_and_resource_templates_are_listed(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        resources = (await mcp.list_resources()).resources
        templates = (await mcp.list_resource_templates()).resource_templates
    assert [(r.uri, r.name, r.mime_type, r.description) for r in resources] == [
        ("config://app", "config", "application/json", "The app configuration.")
    ]
    assert {t.uri_template: t.name for t in templates} == {"notes://{name}": "note", "blobs://{name}": "blob"}


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_list_their_arguments(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        prompts = {prompt.name: prompt for prompt in (await mcp.list_prompts()).prompts}
    review = prompts["review"]
    assert review.description == "Ask for a code review."
    assert [(a.name, a.required) for a in review.arguments or []] == [
        ("code", True),
        ("language", False),
        ("strict", False),
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_completion_offers_the_values_a_prompt_argument_allows(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        ref = types.PromptReference(type="ref/prompt", name="review")
        languages = await mcp.complete(ref, {"name": "language", "value": "r"})
        flags = await mcp.complete(ref, {"name": "strict", "value": ""})
        free = await mcp.complete(ref, {"name": "code", "value": "x"})
    assert languages.completion.values == ["rust"]
    assert flags.completion.values == ["false", "true"]
    assert free.completion.values == []


# ---------------------------------------------------------------- tool calls


@pytest.mark.parametrize("mode", MODES)
async def test_tool_answers_structured_content_and_its_json_as_text(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        added = await mcp.call_tool("add", {"a": 2, "b": 3})
        described = await mcp.call_tool("profile", {"name": "ada", "tags": ["math"]})
    assert not added.is_error
    assert added.structured_content == {"result": 5}
    assert text_of(added) == "5"
    assert described.structured_content == {"name": "ada", "letters": 3, "tags": ["math"]}
    assert json.loads(text_of(described)) == described.structured_content


async def test_string_result_is_its_own_text(served_mcp: Gateway) -> None:
    async with client(served_mcp) as mcp:
        result = await mcp.call_tool("shout", {"text": "hi"})
    assert text_of(result) == "HI"
    assert result.structured_content == {"result": "HI"}


@pytest.mark.parametrize("mode", MODES)
async def test_agent_is_called_as_a_tool(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        result = await mcp.call_tool("research", {"topic": "owls", "steps": 2, "delay": 0})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["notes"] == ["owls #1", "owls #2"]


@pytest.mark.parametrize("mode", MODES)
async def test_bad_arguments_give_an_error_result_naming_the_field(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        wrong_type = await mcp.call_tool("add", {"a": "two", "b": 3})
        missing = await mcp.call_tool("add", {"a": 2})
        nested = await mcp.call_tool("locate", {"points": [{"x": 1, "y": "north"}]})
    assert wrong_type.is_error and missing.is_error and nested.is_error
    assert "validation_error" in text_of(wrong_type)
    assert "$.a: 'two' is not of type 'integer'" in text_of(wrong_type)
    assert "$.b: 'b' is a required property" in text_of(missing)
    assert "$.points[0].y" in text_of(nested)


@pytest.mark.parametrize("mode", MODES)
async def test_failing_tool_is_an_error_result_with_the_worker_error(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        result = await mcp.call_tool("explode", {"message": "out of fuel"})
    assert result.is_error
    assert text_of(result) == "ValueError: out of fuel"
    assert result.structured_content is None


async def test_failing_agent_is_an_error_result_with_the_worker_error(served_mcp: Gateway) -> None:
    async with client(served_mcp) as mcp:
        result = await mcp.call_tool("fragile", {"topic": "unicorns"})
    assert result.is_error
    assert text_of(result) == "RuntimeError: no sources on unicorns"


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_tool_is_a_protocol_error(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.session.call_tool("no_such_tool", {})
    assert caught.value.error.code == types.INVALID_PARAMS
    assert "no_such_tool" in caught.value.error.message


@pytest.mark.parametrize("mode", MODES)
async def test_tool_returning_content_answers_mcp_content_blocks(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        picture = await mcp.call_tool("picture", {"caption": "a cat"})
        references = await mcp.call_tool("references", {})
    text, image = picture.content
    assert isinstance(text, types.TextContent) and text.text == "a cat"
    assert isinstance(image, types.ImageContent)
    assert (base64.b64decode(image.data), image.mime_type) == (PNG, "image/png")
    embedded, link = references.content
    assert isinstance(embedded, types.EmbeddedResource)
    assert isinstance(embedded.resource, types.TextResourceContents)
    assert (str(embedded.resource.uri), embedded.resource.text) == ("notes://inline", "inline note")
    assert isinstance(link, types.ResourceLink)
    assert (str(link.uri), link.name, link.mime_type) == ("notes://linked", "linked", "text/plain")


def test_rest_sees_the_same_content_as_json(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        output = http.post("/v1/tools/picture", json={"caption": "a cat"}).json()["output"]
    assert output == [
        {"type": "text", "text": "a cat"},
        {"type": "image", "data": base64.b64encode(PNG).decode(), "mimeType": "image/png"},
    ]


# ---------------------------------------------------------------- resources and prompts


@pytest.mark.parametrize("mode", MODES)
async def test_resources_are_read_by_fixed_uri_and_by_template(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        config = (await mcp.read_resource("config://app")).contents[0]
        note = (await mcp.read_resource("notes://groceries")).contents[0]
        blob = (await mcp.read_resource("blobs://ab")).contents[0]
    assert isinstance(config, types.TextResourceContents)
    assert (config.mime_type, json.loads(config.text)) == ("application/json", {"mode": "test", "retries": 3})
    assert isinstance(note, types.TextResourceContents)
    assert (str(note.uri), note.text, note.mime_type) == ("notes://groceries", "note groceries", "text/plain")
    assert isinstance(blob, types.BlobResourceContents)
    assert base64.b64decode(blob.blob) == b"abab"


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_resource_is_an_error(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.read_resource("nowhere://at-all")
    # 2025-11-25 has a code for it; 2026-07-28 retired that code: invalid params.
    assert caught.value.error.code == (-32002 if mode == "legacy" else types.INVALID_PARAMS)


async def test_failing_resource_is_an_error_with_the_worker_error(served_mcp: Gateway) -> None:
    async with client(served_mcp) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.read_resource("notes://missing")
    assert caught.value.error.message == "FileNotFoundError: no note missing"


@pytest.mark.parametrize("mode", MODES)
async def test_prompt_renders_with_its_string_arguments_converted(served_mcp: Gateway, mode: str) -> None:
    async with client(served_mcp, mode) as mcp:
        rendered = await mcp.get_prompt("review", {"code": "x = 1", "language": "go", "strict": "true"})
        conversation = await mcp.get_prompt("conversation", {"topic": "tea"})
    (message,) = rendered.messages
    assert message.role == "user"
    assert isinstance(message.content, types.TextContent)
    assert message.content.text == "Review this go code strictly:\nx = 1"
    assert [(m.role, getattr(m.content, "text", None)) for m in conversation.messages] == [
        ("user", "Tell me about tea."),
        ("assistant", "What about tea?"),
    ]


async def test_prompt_with_a_bad_argument_is_an_error_naming_the_field(served_mcp: Gateway) -> None:
    async with client(served_mcp) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.get_prompt("review", {"code": "x", "language": "cobol"})
    assert caught.value.error.code == types.INVALID_PARAMS
    assert "$.language" in caught.value.error.message


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("mode", MODES)
async def test_progress_and_tokens_arrive_as_progress_notifications(served_mcp: Gateway, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with client(served_mcp, mode) as mcp:
        result = await mcp.call_tool("count", {"n": 3}, progress_callback=progress)
    assert result.structured_content == {"result": 3}
    assert seen == [
        (1.0, 3.0, "step 1 of 3"),
        (2.0, 3.0, "step 2 of 3"),
        (3.0, 3.0, "step 3 of 3"),
        (5.0, None, "done counting"),  # two tokens in one batch: progress counts on by one per token
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_worker_logs_arrive_as_log_notifications_at_the_level_asked(
    served_mcp: Gateway, mode: str
) -> None:
    logs: list[tuple[str, Any, str | None]] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append((params.level, params.data, params.logger))

    options: dict[str, Any] = {"logging_callback": on_log}
    if mode != "legacy":
        options["log_level"] = "info"  # 2026-07-28: a per-request opt-in
    async with client(served_mcp, mode, **options) as mcp:
        if mode == "legacy":
            with pytest.warns(MCPDeprecationWarning):  # deprecated by 2026-07-28, current in 2025-11-25
                await mcp.set_logging_level("info")
        result = await mcp.call_tool("chatty", {})
    assert text_of(result) == "said it all"
    assert logs == [("info", "halfway", "chatty"), ("warning", "careful now", "chatty")]


async def test_2026_request_without_a_log_level_gets_no_log_notifications(served_mcp: Gateway) -> None:
    logs: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.level)

    async with client(served_mcp, MODERN, logging_callback=on_log) as mcp:
        result = await mcp.call_tool("chatty", {})
    assert text_of(result) == "said it all"
    assert logs == []


# ---------------------------------------------------------------- cancellation


@pytest.mark.parametrize("mode", MODES)
async def test_abandoned_call_cancels_the_run_on_the_worker(
    served_mcp: Gateway, mode: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    async with client(served_mcp, mode) as mcp:
        with anyio.move_on_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(mcp.call_tool, "slow", {"seconds": 60, "marker": str(marker)})
                await anyio.to_thread.run_sync(lambda: wait_until(marker.exists, what="the tool to start"))
                group.cancel_scope.cancel()  # legacy: notifications/cancelled; 2026: the stream closes
    wait_until(lambda: marker.read_text().startswith("cancelled"), what="the worker to see the cancellation")
    assert marker.read_text() == "cancelled ctx.cancelled=True"
    with served_mcp.client() as http:
        runs = http.get("/v1/runs", params={"endpoint": "slow", "limit": 200}).json()["runs"]
    assert [r["status"] for r in runs if r["status"] != "cancelled"] == []


# ---------------------------------------------------------------- 2025-11-25 sessions


def test_legacy_session_is_named_by_the_server_and_ended_by_delete(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        session_id = open_legacy_session(http)
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        assert http.post("/mcp", json=ping, headers=session_headers(session_id)).status_code == 200
        assert http.delete("/mcp", headers=session_headers(session_id)).status_code == 200
        after = http.post("/mcp", json=ping, headers=session_headers(session_id))
    assert after.status_code == 404


def test_dropped_stream_resumes_after_last_event_id(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        session_id = open_legacy_session(http)
        headers = session_headers(session_id)
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "count", "arguments": {"n": 4, "delay": 0.3}, "_meta": {"progressToken": "p"}},
        }
        seen = read_until(http.stream("POST", "/mcp", json=call, headers=headers), '"progress":1.0')
        last_id = sse_messages(seen)[-1][0]  # hang up after the first progress notification
        assert last_id is not None
        resumed = read_until(
            http.stream("GET", "/mcp", headers={**headers, "Last-Event-ID": last_id}), '"id":7'
        )
    after = [message for _, message in sse_messages(resumed) if message is not None]
    progress = [m["params"]["progress"] for m in after if m.get("method") == "notifications/progress"]
    assert progress == [2.0, 3.0, 4.0, 6.0]  # what was sent after the last event seen, nothing before
    assert after[-1]["id"] == 7
    assert after[-1]["result"]["structuredContent"] == {"result": 4}


def test_another_sessions_event_id_replays_nothing(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        owner = open_legacy_session(http)
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 1, "b": 2}},
        }
        events = sse_messages(http.post("/mcp", json=call, headers=session_headers(owner)).text.splitlines())
        event_id = next(event_id for event_id, message in events if message is not None)
        other = open_legacy_session(http)
        replay = http.get("/mcp", headers={**session_headers(other), "Last-Event-ID": event_id})
    assert [message for _, message in sse_messages(replay.text.splitlines()) if message] == []


async def test_legacy_session_hears_list_changes_when_workers_come_and_go(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker(WORKER)
    heard, on_message = method_recorder()

    async with client(gateway, "legacy", message_handler=on_message) as mcp:
        await anyio.sleep(0.5)  # the GET stream opens after initialization
        late = cluster.start_worker(LATE_WORKER)
        changes = {"notifications/tools/list_changed", "notifications/prompts/list_changed"}
        await eventually(lambda: changes <= set(heard), "the tools and prompts list changes")
        assert "late_tool" in {tool.name for tool in (await mcp.list_tools()).tools}
        assert "notifications/resources/list_changed" not in heard  # the resources did not change
        heard.clear()
        late.stop()
        await eventually(lambda: "notifications/tools/list_changed" in heard, "the tools list change")
        assert "late_tool" not in {tool.name for tool in (await mcp.list_tools()).tools}


async def test_2026_listen_stream_hears_list_changes(cluster: Cluster) -> None:
    gateway = cluster.start_gateway()
    cluster.start_worker(WORKER)
    async with client(gateway, MODERN) as mcp, mcp.listen(tools_list_changed=True) as subscription:
        cluster.start_worker(LATE_WORKER)
        with anyio.fail_after(20):
            event = await anext(aiter(subscription))
        assert isinstance(event, ToolsListChanged)
        assert "late_tool" in {tool.name for tool in (await mcp.list_tools()).tools}


# ---------------------------------------------------------------- the 2026-07-28 wire


async def test_discover_names_the_revisions_and_the_tasks_extension(served_mcp: Gateway) -> None:
    async with client(served_mcp, "auto") as mcp:
        discovered = mcp.session.discover_result
    assert discovered is not None
    assert MODERN in discovered.supported_versions
    assert discovered.capabilities.extensions is not None and TASKS in discovered.capabilities.extensions
    assert discovered.capabilities.tools is not None and discovered.capabilities.tools.list_changed


def test_2026_request_whose_headers_disagree_with_its_body_is_refused(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        response = http.post(
            "/mcp", json=modern_request("tools/list"), headers=modern_headers("prompts/list")
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == types.HEADER_MISMATCH


def test_2026_request_with_an_unknown_revision_is_refused(served_mcp: Gateway) -> None:
    body = modern_request("tools/list")
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    with served_mcp.client() as http:
        response = http.post(
            "/mcp", json=body, headers={**modern_headers("tools/list"), "MCP-Protocol-Version": "2099-01-01"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == types.UNSUPPORTED_PROTOCOL_VERSION
    assert MODERN in error["data"]["supported"]


def test_2026_tool_call_is_one_stateless_post(served_mcp: Gateway) -> None:
    body = modern_request("tools/call", {"name": "add", "arguments": {"a": 20, "b": 22}})
    with served_mcp.client() as http:
        response = http.post("/mcp", json=body, headers=modern_headers("tools/call", "add"))
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    assert response.json()["result"]["structuredContent"] == {"result": 42}


# ---------------------------------------------------------------- Origin and Host


def test_request_from_a_foreign_origin_is_refused(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        refused = http.post(
            "/mcp",
            json=modern_request("tools/list"),
            headers={**modern_headers("tools/list"), "Origin": "http://evil.example"},
        )
        local = http.post(
            "/mcp",
            json=modern_request("tools/list"),
            headers={**modern_headers("tools/list"), "Origin": "http://localhost:5173"},
        )
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Origin http://evil.example is not allowed"
    assert local.status_code == 200


def test_request_for_a_foreign_host_is_refused(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        response = http.post(
            "/mcp",
            json=modern_request("tools/list"),
            headers={**modern_headers("tools/list"), "Host": "rebound.example:8000"},
        )
    assert response.status_code == 421


def test_allowed_origins_are_configurable(cluster: Cluster) -> None:
    gateway = cluster.start_gateway(mcp_allowed_origins="https://app.example, https://tools.example:*")
    with httpx.Client(base_url=gateway.url, timeout=30) as http:

        def status(origin: str) -> int:
            headers = {**modern_headers("tools/list"), "Origin": origin}
            return http.post("/mcp", json=modern_request("tools/list"), headers=headers).status_code

        assert status("https://app.example") == 200
        assert status("https://tools.example:8443") == 200
        assert status("http://localhost:5173") == 403  # the configured list replaces the local default


def test_legacy_initialize_answers_with_session_and_capabilities(served_mcp: Gateway) -> None:
    with served_mcp.client() as http:
        response = http.post("/mcp", json=LEGACY_INITIALIZE, headers=HEADERS)
    result = next(message for _, message in sse_messages(response.text.splitlines()) if message)["result"]
    assert response.headers["mcp-session-id"]
    assert result["protocolVersion"] == LEGACY
    capabilities = result["capabilities"]
    assert capabilities["tools"] == {"listChanged": True}
    assert capabilities["tasks"]["requests"] == {"tools": {"call": {}}}
    assert "logging" in capabilities and "completions" in capabilities
