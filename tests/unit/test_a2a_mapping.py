"""The A2A front's mapping: messages to endpoint input, run events to task updates, and the stored
projection agreeing with the live fold."""

from __future__ import annotations

import msgspec
import pytest
from a2a.types.a2a_pb2 import Message, Part, Role, TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError

from fastagentic_gateway.fronts.a2a.mapping import (
    EventMapper,
    apply,
    context_of,
    encode_meta,
    initial_task,
    message_input,
    meta_of,
    new_context,
    project,
    text_field,
    user_message,
)
from fastagentic_gateway.runs.model import ANONYMOUS, EndpointKind, Event, Run, RunStatus
from fastagentic_gateway.workers.registry import EndpointInfo


def info(schema: dict[str, object], name: str = "agent") -> EndpointInfo:
    return EndpointInfo(
        name=name,
        kind=EndpointKind.AGENT,
        description="",
        input_schema=schema,
        output_schema={},
        streams=True,
        durable=True,
        scopes=[],
        tags=[],
        examples=[],
    )


ONE_STRING = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["text"],
}
TWO_STRINGS = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
REQUIRED_INT = {
    "type": "object",
    "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["n"],
}


def test_text_field_is_the_one_string_with_nothing_else_required() -> None:
    assert text_field(info(ONE_STRING)) == "text"
    assert text_field(info(TWO_STRINGS)) is None
    assert text_field(info(REQUIRED_INT)) is None


def message(*parts: Part) -> Message:
    return Message(message_id="m", role=Role.ROLE_USER, parts=list(parts))


def test_message_input() -> None:
    assert message_input(info(ONE_STRING), message(Part(text="hi "), Part(text="there"))) == (
        {"text": "hi there"},
        "text:text",
    )
    data = Part()
    data.data.struct_value.update({"numbers": [1, 2.5], "n": 3})
    assert message_input(info(TWO_STRINGS), message(data)) == ({"numbers": [1, 2.5], "n": 3}, "data")
    with pytest.raises(ContentTypeNotSupportedError):
        message_input(info(TWO_STRINGS), message(Part(text="x")))
    with pytest.raises(ContentTypeNotSupportedError):
        message_input(info(ONE_STRING), message(Part(url="https://example.com/f.pdf")))
    with pytest.raises(InvalidParamsError):
        message_input(info(ONE_STRING), message(data, data))
    with pytest.raises(InvalidParamsError):
        message_input(info(ONE_STRING), message())


def run(status: RunStatus = RunStatus.RUNNING, **fields: object) -> Run:
    fields.setdefault("context_id", "ctx-1")
    fields.setdefault("protocol_meta", encode_meta("m-1", "text:text"))
    return Run(
        id="run_1",
        endpoint="agent",
        kind=EndpointKind.AGENT,
        durable=True,
        caller=ANONYMOUS,
        input=b'{"text":"hello"}',
        status=status,
        **fields,  # type: ignore[arg-type]
    )


def event(seq: int, kind: str, data: object) -> Event:
    return Event(run_id="run_1", seq=seq, ts=1.0, kind=kind, data=msgspec.json.encode(data))


EVENTS = [
    event(1, "run.started", {"attempt": 1}),
    event(2, "token", {"text": "a"}),
    event(3, "token", {"text": "b"}),
    event(4, "progress", {"current": 1, "total": 2}),
    event(5, "interrupt", {"question": "sure?"}),
    event(6, "log", {"message": "hidden"}),
    event(7, "run.completed", {"output": {"x": 1}}),
]


def test_metadata_is_the_runs_context_and_protocol_meta() -> None:
    meta = meta_of(run())
    assert meta is not None and (meta.message_id, meta.mode) == ("m-1", "text:text")
    assert context_of(run()) == "ctx-1"
    message = user_message(run())
    assert (message.message_id, message.context_id, message.parts[0].text) == ("m-1", "ctx-1", "hello")
    # A run started on another front (REST) has neither: its id is its context, its input a data part.
    bare = run(context_id=None, protocol_meta=None)
    assert (meta_of(bare), context_of(bare)) == (None, "run_1")
    assert user_message(bare).parts[0].HasField("data")


def test_metadata_of_runs_stored_by_an_earlier_gateway_is_read_from_their_idempotency_key() -> None:
    legacy = run(context_id=None, protocol_meta=None, idempotency_key='a2a:["ctx-0","m-0","text:text","f00"]')
    meta = meta_of(legacy)
    assert meta is not None and (meta.message_id, meta.mode) == ("m-0", "text:text")
    assert context_of(legacy) == "ctx-0"


def test_new_context_keeps_the_messages_or_makes_one() -> None:
    assert new_context("ctx-9") == "ctx-9"
    made = new_context(None)
    assert made and made != new_context(None)
    with pytest.raises(InvalidParamsError, match="contextId is longer"):
        new_context("x" * 201)


def test_events_map_to_task_updates() -> None:
    out = list(EventMapper(run()).map(EVENTS))
    states = [e.status.state for e in out if isinstance(e, TaskStatusUpdateEvent)]
    assert states == [
        TaskState.TASK_STATE_WORKING,
        TaskState.TASK_STATE_WORKING,
        TaskState.TASK_STATE_INPUT_REQUIRED,
        TaskState.TASK_STATE_COMPLETED,
    ]
    artifacts = [(e.artifact.artifact_id, e.append) for e in out if isinstance(e, TaskArtifactUpdateEvent)]
    assert artifacts == [("response", False), ("response", True), ("output", False)]


def test_projection_is_the_live_fold() -> None:
    live = initial_task(run())
    for update in EventMapper(run()).map(EVENTS):
        apply(live, update)
    stored = project(run(RunStatus.SUCCEEDED), EVENTS)
    assert stored == live
    assert [p.text for p in stored.artifacts[0].parts] == ["a", "b"]
    assert stored.history[0].parts[0].text == "hello" and stored.history[0].message_id == "m-1"
    assert stored.status.state == TaskState.TASK_STATE_COMPLETED


def test_a_cancelled_run_without_its_event_yet_shows_cancelled() -> None:
    assert project(run(RunStatus.CANCELLED), EVENTS[:2]).status.state == TaskState.TASK_STATE_CANCELED


def test_empty_objects_and_arrays_in_data_parts_stay_empty() -> None:
    """An empty object or array is carried as one (a protobuf Value left unset would render as null)."""
    from google.protobuf.json_format import MessageToDict

    from fastagentic_gateway.fronts.a2a.mapping import _value

    assert MessageToDict(_value({})) == {}
    assert MessageToDict(_value([])) == []
    assert MessageToDict(_value({"a": [], "b": [{}]})) == {"a": [], "b": [{}]}
