"""The fast path's task JSON (``taskjson.py``) is the protobuf fold's (``mapping.py``) rendered as the SDK
renders it: for generated runs and event sequences, every event, the task after each, and the answer with
its history limited, are the same JSON (fields, their order, number types), but for the order of a data
part's object members (a protobuf Struct's order is its hash table's: see the module's docstring)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from a2a.types.a2a_pb2 import SendMessageConfiguration
from a2a.utils import proto_utils
from a2a.utils.task import apply_history_length
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastagentic_gateway.fronts.a2a.mapping import EventMapper, _timestamp, apply, encode_meta, initial_task
from fastagentic_gateway.fronts.a2a.taskjson import (
    JsonEventMapper,
    apply_json,
    data_json,
    initial_task_json,
    limit_history,
    snapshot,
    timestamp_json,
)
from fastagentic_gateway.runs.model import Caller, EndpointKind, Event, Run
from tests.e2e.a2a_support import canonical as canon


def same(got: Any, expected: Any) -> None:
    assert canon(got) == canon(expected)
    # And it dumps (the answer's bytes are json.dumps of these dicts).
    json.dumps(got, ensure_ascii=False, allow_nan=False)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**1100), max_value=2**1100),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


def deep(levels: int) -> Any:
    value: Any = "leaf"
    for level in range(levels):
        value = {"k": value, "n": 1} if level % 2 else [value, 2.5]
    return value


DEEP = st.sampled_from([deep(30), deep(31), deep(32), deep(33), deep(40)])
ANY = values | DEEP


def _data(kind: str) -> st.SearchStrategy[Any]:
    if kind == "token":
        return st.fixed_dictionaries({"text": st.text(max_size=5)}) | st.just({})
    if kind == "progress":
        return (
            st.fixed_dictionaries({"message": st.text(max_size=5)})
            | st.fixed_dictionaries({"current": values}, optional={"total": values})
            | st.fixed_dictionaries({"pct": values})
            | ANY
        )
    if kind == "message":
        return (
            st.fixed_dictionaries({}, optional={"text": values, "content": values, "question": values}) | ANY
        )
    if kind == "interrupt":
        request = ANY | st.fixed_dictionaries({"question": st.text(max_size=5)})
        request |= st.fixed_dictionaries({"approval": st.fixed_dictionaries({"action": st.text(max_size=5)})})
        return (
            st.fixed_dictionaries({"id": st.text(max_size=4), "request": request}, optional={"schema": ANY})
            | ANY
        )
    if kind == "input":
        return st.fixed_dictionaries({"answer": values})
    if kind == "artifact":
        return st.fixed_dictionaries({}, optional={"name": st.text(max_size=4) | values, "x": ANY}) | ANY
    if kind == "run.completed":
        return st.fixed_dictionaries({"output": ANY})
    if kind == "run.failed":
        error = st.fixed_dictionaries(
            {}, optional={"type": st.text(max_size=4), "message": st.text(max_size=4)}
        )
        return st.fixed_dictionaries({}, optional={"error": error})
    if kind == "run.cancelled":
        return st.fixed_dictionaries({}, optional={"reason": st.text(max_size=6)})
    return ANY  # kinds with no A2A rendering


KINDS = [
    "token",
    "run.started",
    "progress",
    "message",
    "interrupt",
    "input",
    "artifact",
    "run.completed",
    "run.failed",
    "run.cancelled",
    "tool_call",
    "log",
]


@st.composite
def runs_and_events(draw: st.DrawFn) -> tuple[Run, list[Event]]:
    text_mode = draw(st.booleans())
    if text_mode:
        run_input = {"text": draw(st.text(max_size=6))}
        meta = encode_meta(draw(st.text(max_size=4)), "text:text")
    else:
        run_input = draw(st.dictionaries(st.text(max_size=4), values, max_size=3))
        meta = draw(st.sampled_from([encode_meta("m1", "data"), None]))
    run = Run(
        id=draw(st.sampled_from(["run_1", "run_ABC"])),
        endpoint="echo",
        kind=EndpointKind.AGENT,
        durable=False,
        caller=Caller(),
        input=msgspec.json.encode(run_input),
        context_id=draw(st.sampled_from(["ctx", None])),
        protocol_meta=meta,
        created_at=draw(st.floats(min_value=0, max_value=4e9)),
    )
    events = []
    for seq in range(1, draw(st.integers(min_value=0, max_value=8)) + 1):
        kind = draw(st.sampled_from(KINDS))
        data = draw(_data(kind))
        ts = draw(st.floats(min_value=0, max_value=4e9))
        events.append(Event(run_id=run.id, seq=seq, ts=ts, kind=kind, data=msgspec.json.encode(data)))
    return run, events


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:
        return "error", type(exc).__name__


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs_and_events(), st.sampled_from([None, 0, 1, 2, 5]))
def test_the_json_fold_is_the_protobuf_folds_rendering(
    case: tuple[Run, list[Event]], history: int | None
) -> None:
    run, events = case
    task, task_json = initial_task(run), initial_task_json(run)
    same(task_json, MessageToDict(task))
    mapper, json_mapper = EventMapper(run), JsonEventMapper(run)
    for event in events:
        kind, updates = _outcome(lambda event=event: list(mapper.map_one(event)))
        json_kind, json_updates = _outcome(lambda event=event: list(json_mapper.map_one(event)))
        assert (kind, json_kind) in (("ok", "ok"), ("error", "error")), event
        if kind == "error":
            assert updates == json_updates  # the same exception
            return
        assert len(updates) == len(json_updates)
        assert (mapper.state, mapper.streamed) == (json_mapper.state, json_mapper.streamed)
        for update, json_update in zip(updates, json_updates, strict=True):
            before = snapshot(task_json)
            same({json_update[0]: json_update[1]}, MessageToDict(proto_utils.to_stream_response(update)))
            proto = _outcome(lambda update=update: apply(task, update))
            by_json = _outcome(lambda json_update=json_update: apply_json(task_json, json_update))
            assert proto[0] == by_json[0] and (proto[0] == "ok" or proto[1] == by_json[1]), event
            if proto[0] == "error":
                return
            same(task_json, MessageToDict(task))
            assert canon(before) != canon(task_json) or canon(before) == canon(MessageToDict(task))
    config = (
        SendMessageConfiguration() if history is None else SendMessageConfiguration(history_length=history)
    )
    same(limit_history(snapshot(task_json), config), MessageToDict(apply_history_length(task, config)))


def test_a_snapshot_stays_as_it_was() -> None:
    run = Run(id="run_1", endpoint="e", kind=EndpointKind.AGENT, durable=False, caller=Caller(), input=b"{}")
    task = initial_task_json(run)
    mapper = JsonEventMapper(run)
    events = [
        ("token", {"text": "a"}),
        ("token", {"text": "b"}),
        ("message", {"text": "m"}),
        ("run.completed", {"output": 1}),
    ]
    taken = []
    for seq, (kind, data) in enumerate(events, 1):
        for update in mapper.map_one(
            Event(run_id=run.id, seq=seq, ts=1.0, kind=kind, data=msgspec.json.encode(data))
        ):
            apply_json(task, update)
            taken.append((json.dumps(snapshot(task)), snapshot(task), json.dumps(update[1]), update[1]))
    for dumped, taken_task, dumped_event, event in taken:
        assert json.dumps(taken_task) == dumped
        assert json.dumps(event) == dumped_event
    assert [part["text"] for part in task["artifacts"][0]["parts"]] == ["a", "b"]


def test_values_render_as_a_data_part_renders_them() -> None:
    assert data_json(42) == 42.0 and isinstance(data_json(42), float)
    assert data_json(2**1100) == str(2**1100)
    assert data_json(True) is True
    assert data_json({"b": 1, "a": [None, "x"]}) == {"b": 1.0, "a": [None, "x"]}
    rendered = data_json(deep(40))
    for _ in range(32):  # nested beyond MAX_VALUE_DEPTH: carried as JSON text
        rendered = rendered["k"] if isinstance(rendered, dict) else rendered[0]
    assert isinstance(rendered, str) and json.loads(rendered)


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(min_value=-2e9, max_value=5e10)
    | st.integers(min_value=0, max_value=4_000_000_000).map(lambda s: s + 0.9999995)
    | st.integers(min_value=0, max_value=4_000_000_000).map(lambda s: s + 0.0005)
)
def test_timestamps_render_as_protobuf_renders_them(ts: float) -> None:
    assert timestamp_json(ts) == _timestamp(ts).ToJsonString()
    assert timestamp_json(ts) == _timestamp(ts).ToJsonString()  # from the second's kept text
