"""The MCP front's pure parts: the catalogue's schemas, result rendering, Origin patterns, resumable events."""

from __future__ import annotations

from typing import Any

import msgspec
from mcp.server.streamable_http import EventMessage
from mcp_types import JSONRPCNotification

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.fronts.mcp.asgi import LOOPBACK_ORIGINS, Patterns
from fastagentic_gateway.fronts.mcp.catalogue import ToolView
from fastagentic_gateway.fronts.mcp.front import _choices, _coerce
from fastagentic_gateway.fronts.mcp.results import Outcome, outcome_of_event, tool_result
from fastagentic_gateway.fronts.mcp.resumption import REQUEST_SCOPE, RequestScope, SessionEvents
from fastagentic_gateway.runs.model import RunError, RunStatus
from fastagentic_gateway.workers.registry import endpoint_from_spec


def tool(
    output_schema: dict[str, Any], *, kind: int = pb.ENDPOINT_KIND_TOOL, durable: bool = False
) -> ToolView:
    spec = pb.EndpointSpec(
        name="t",
        kind=kind,
        input_schema=msgspec.json.encode({"type": "object", "properties": {"x": {"type": "integer"}}}),
        output_schema=msgspec.json.encode(output_schema),
        durable=durable,
    )
    return ToolView(endpoint_from_spec(spec))


# ---------------------------------------------------------------- catalogue


def test_object_output_is_the_output_schema_itself() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    view = tool(schema)
    assert view.tool()["outputSchema"] == schema
    assert not view.wrapped


def test_other_output_is_wrapped_in_result_with_its_defs_at_the_root() -> None:
    schema = {"type": "array", "items": {"$ref": "#/$defs/Item"}, "$defs": {"Item": {"type": "object"}}}
    assert tool(schema).tool()["outputSchema"] == {
        "type": "object",
        "properties": {"result": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "required": ["result"],
        "$defs": {"Item": {"type": "object"}},
    }


def test_untyped_output_advertises_no_output_schema() -> None:
    assert "outputSchema" not in tool({}).tool()


def test_task_support_follows_the_kind_and_durability() -> None:
    assert tool({}, kind=pb.ENDPOINT_KIND_AGENT).tool()["execution"] == {"taskSupport": "optional"}
    assert tool({}, durable=True).tool()["execution"] == {"taskSupport": "optional"}
    assert tool({}).tool()["execution"] == {"taskSupport": "forbidden"}


# ---------------------------------------------------------------- results


def test_success_has_a_text_block_and_structured_content() -> None:
    result = tool_result(tool({"type": "integer"}), Outcome(RunStatus.SUCCEEDED, b"7"))
    assert result == {
        "content": [{"type": "text", "text": "7"}],
        "structuredContent": {"result": 7},
        "resultType": "complete",
    }


def test_content_output_passes_through_as_blocks() -> None:
    view = tool({"x-fastagentic-content": True})
    output = b'[{"type":"text","text":"a"},{"type":"image","data":"AA==","mimeType":"image/png"}]'
    result = tool_result(view, Outcome(RunStatus.SUCCEEDED, output))
    assert result["content"] == msgspec.json.decode(output)
    assert "structuredContent" not in result


def test_failure_is_an_error_result_with_type_and_message() -> None:
    outcome = Outcome(RunStatus.FAILED, error=RunError(type="KeyError", message="'k'"))
    assert tool_result(None, outcome) == {
        "content": [{"type": "text", "text": "KeyError: 'k'"}],
        "isError": True,
        "resultType": "complete",
    }


def test_terminal_events_tell_the_outcome() -> None:
    assert outcome_of_event("run.completed", b'{"output":{"a":[1,2]}}') == Outcome(
        RunStatus.SUCCEEDED, output=b'{"a":[1,2]}'
    )
    assert outcome_of_event("run.failed", b'{"error":{"type":"E","message":"m"}}').error == RunError("E", "m")
    assert outcome_of_event("run.cancelled", b'{"reason":"x"}').status is RunStatus.CANCELLED


# ---------------------------------------------------------------- prompts and completion


def test_prompt_arguments_are_converted_for_non_string_parameters() -> None:
    schema = {
        "properties": {
            "code": {"type": "string"},
            "strict": {"type": "boolean"},
            "n": {"type": "integer"},
            "tags": {"type": "array"},
        }
    }
    arguments = {"code": "true", "strict": "true", "n": "3", "tags": '["a"]'}
    assert _coerce(schema, arguments) == {"code": "true", "strict": True, "n": 3, "tags": ["a"]}
    assert _coerce(schema, {"n": "three"}) == {"n": "three"}  # left for validation to name


def test_completion_values_come_from_enums_consts_and_booleans() -> None:
    root = {"$defs": {"Color": {"enum": ["red", "green"]}}}
    assert _choices({"enum": ["a", "b"]}, root) == ["a", "b"]
    assert _choices({"$ref": "#/$defs/Color"}, root) == ["red", "green"]
    assert _choices({"anyOf": [{"const": "x"}, {"type": "null"}]}, root) == ["x"]
    assert _choices({"type": "boolean"}, root) == ["false", "true"]
    assert _choices({"type": "string"}, root) == []


# ---------------------------------------------------------------- Origin and Host patterns


def test_patterns_match_exact_values_and_any_port() -> None:
    origins = Patterns(LOOPBACK_ORIGINS)
    assert origins.allows("http://localhost:5173")
    assert origins.allows("http://127.0.0.1")
    assert origins.allows("HTTPS://LOCALHOST:8443")
    assert not origins.allows("http://localhost.evil.example")
    assert not origins.allows("http://localhost:80x")
    assert not origins.allows("http://evil.example")


def test_star_allows_anything() -> None:
    assert Patterns(["*"]).allows("https://anything.example")
    assert not Patterns([]).allows("https://anything.example")


# ---------------------------------------------------------------- resumable events


async def test_events_replay_after_an_id_within_its_session_and_stream() -> None:
    store = SessionEvents()
    REQUEST_SCOPE.set(RequestScope("s1"))
    note = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progress": 1})
    first = await store.store_event("7", note)
    await store.store_event("8", note)  # another stream of the same session
    second = await store.store_event("7", note)
    replayed: list[EventMessage] = []

    async def collect(event: EventMessage) -> None:
        replayed.append(event)

    assert await store.replay_events_after(first, collect) == "7"
    assert [event.event_id for event in replayed] == [second]


async def test_another_session_cannot_replay_events() -> None:
    store = SessionEvents()
    REQUEST_SCOPE.set(RequestScope("owner"))
    note = JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={})
    first = await store.store_event("1", note)
    await store.store_event("1", note)
    REQUEST_SCOPE.set(RequestScope("intruder"))
    replayed: list[EventMessage] = []

    async def collect(event: EventMessage) -> None:
        replayed.append(event)

    assert await store.replay_events_after(first, collect) is None
    assert replayed == []


async def test_a_session_keeps_only_its_latest_events_and_forgets_them_when_it_ends() -> None:
    store = SessionEvents(limit=2)
    REQUEST_SCOPE.set(RequestScope("s"))
    note = JSONRPCNotification(jsonrpc="2.0", method="m", params={})
    oldest = await store.store_event("1", note)
    newer = await store.store_event("1", note)
    await store.store_event("1", note)

    async def ignore(event: EventMessage) -> None:
        pass

    assert await store.replay_events_after(oldest, ignore) is None  # dropped
    assert await store.replay_events_after(newer, ignore) == "1"
    store.forget("s")
    assert await store.replay_events_after(newer, ignore) is None
