"""The fast path's task JSON (``taskjson.py``) is the protobuf fold's (``mapping.py``) rendered as the SDK
renders it: for generated runs and event sequences, every event, the task after each, and the answer with
its history limited, are the same JSON (fields, their order, number types), but for the order of a data
part's object members (a protobuf Struct's order is its hash table's: see the module's docstring)."""

from __future__ import annotations

import asyncio
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
from fastagentic_gateway.fronts.a2a.push import PushSender, RunPushConfigStore
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
from fastagentic_gateway.settings import Settings
from fastagentic_gateway.store.memory import MemoryRunStore
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
        text = st.text(max_size=5) | st.none() | values  # not a string: refused alike (None: an empty part)
        return st.fixed_dictionaries({"text": text}) | st.just({}) | values
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
        # Named like the token stream's or the output's artifact: it replaces that one, and may be appended to.
        name = st.sampled_from(["response", "output"]) | st.text(max_size=4) | values
        return st.fixed_dictionaries({}, optional={"name": name, "x": ANY}) | ANY
    if kind == "run.completed":
        return st.fixed_dictionaries({"output": ANY}) | values
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


def _mapped(mapper: Any, event: Event) -> tuple[list[Any], str | None]:
    """What a mapper yields for ``event`` before it ends or raises, and the exception's name if it raised."""
    out: list[Any] = []
    try:
        out.extend(mapper.map_one(event))  # extend keeps what came before an exception
    except Exception as exc:
        return out, type(exc).__name__
    return out, None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs_and_events(), st.sampled_from([None, 0, 1, 2, 5]))
def test_the_json_fold_is_the_protobuf_folds_rendering(
    case: tuple[Run, list[Event]], history: int | None
) -> None:
    run, events = case
    task, task_json = initial_task(run), initial_task_json(run)
    same(task_json, MessageToDict(task))
    mapper, json_mapper = EventMapper(run), JsonEventMapper(run)
    handed_on: list[tuple[str, Any]] = []  # every snapshot and event as it was then: none may change later
    for event in events:
        updates, error = _mapped(mapper, event)
        json_updates, json_error = _mapped(json_mapper, event)
        assert json_error == error, event
        assert len(json_updates) == len(updates), event
        assert (json_mapper.state, json_mapper.streamed) == (mapper.state, mapper.streamed)
        for update, json_update in zip(updates, json_updates, strict=True):
            same({json_update[0]: json_update[1]}, MessageToDict(proto_utils.to_stream_response(update)))
            handed_on.append((json.dumps(json_update[1]), json_update[1]))
            proto_error = _outcome(lambda update=update: apply(task, update))
            json_outcome = _outcome(lambda json_update=json_update: apply_json(task_json, json_update))
            assert json_outcome[0] == proto_error[0], event
            if proto_error[0] == "error":
                assert json_outcome[1] == proto_error[1]
                return
            same(task_json, MessageToDict(task))
            taken = snapshot(task_json)
            handed_on.append((json.dumps(taken), taken))
        if error is not None:
            return
    config = (
        SendMessageConfiguration() if history is None else SendMessageConfiguration(history_length=history)
    )
    same(limit_history(snapshot(task_json), config), MessageToDict(apply_history_length(task, config)))
    for dumped, value in handed_on:
        assert json.dumps(value) == dumped


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


class _Captured(PushSender):
    """A push sender whose deliveries are recorded instead of sent."""

    def __init__(self, configs: RunPushConfigStore) -> None:
        super().__init__(Settings(), configs)
        self.payloads: list[Any] = []

    async def deliver(self, config: Any, payload: dict[str, Any]) -> bool:
        self.payloads.append(json.loads(json.dumps(payload)))  # as sent, the moment it is sent
        return True


async def test_pushes_of_json_events_are_the_pushes_of_protobuf_events() -> None:
    store = MemoryRunStore()
    run, _ = await store.create(
        Run(
            id="run_1",
            endpoint="e",
            kind=EndpointKind.AGENT,
            durable=False,
            caller=Caller(),
            input=b'{"a":1}',
        )
    )
    config = {"taskId": "run_1", "id": "hook", "url": "https://example.com/hook"}
    assert await store.put_push_config("run_1", "hook", msgspec.json.encode(config))
    configs = RunPushConfigStore(store, store)
    by_proto, by_json = _Captured(configs), _Captured(configs)
    items = [
        ("run.started", {}),
        ("token", {"text": "a"}),  # token chunks are not pushed
        ("token", {"text": "b"}),
        ("message", {"text": "m", "n": 2}),
        ("artifact", {"name": "chart", "b": [], "a": {}}),
        ("run.completed", {"output": {"z": 1, "y": [1.5]}}),
    ]
    events = [
        Event(run_id=run.id, seq=seq, ts=1_765_000_000.25 + seq, kind=kind, data=msgspec.json.encode(data))
        for seq, (kind, data) in enumerate(items, 1)
    ]
    await by_proto.send_notification(run.id, initial_task(run))
    await by_json.send_json_for_run(run, "task", initial_task_json(run))
    mapper, json_mapper = EventMapper(run), JsonEventMapper(run)
    for event in events:
        for update in mapper.map_one(event):
            await by_proto.send_notification(run.id, update)
        for kind, body in json_mapper.map_one(event):
            await by_json.send_json_for_run(run, kind, body)
    for sender in (by_proto, by_json):
        await asyncio.sleep(0.05)  # the delivery task takes what was queued
        await sender.close()
    assert len(by_json.payloads) == len(by_proto.payloads) == 6  # the task, 3 statuses, 2 artifacts
    same(by_json.payloads, by_proto.payloads)
