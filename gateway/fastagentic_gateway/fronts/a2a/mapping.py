"""Runs as A2A tasks: a message to an endpoint's input, a run's events to task updates, a run to a Task.

One fold serves both the live stream and the stored view: ``task_events`` turns a run's events into A2A
events and ``project`` applies them to the task the run started as, the way the SDK's TaskManager does,
so GetTask after the fact shows exactly what a streaming client accumulated.
"""

from __future__ import annotations

import math
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import NULL_VALUE, Value
from google.protobuf.timestamp_pb2 import Timestamp

from a2a.server.tasks.task_manager import append_artifact_to_task
from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError

from ...runs.model import Event, Run, RunStatus
from ...workers.registry import EndpointInfo
from .protojson import value_json

_decode = msgspec.json.decode
_encode = msgspec.json.encode

TEXT = "text/plain"
JSON = "application/json"
STREAM_ARTIFACT = "response"  # the token stream, appended chunk by chunk
OUTPUT_ARTIFACT = "output"  # the run's output, once it succeeded
LEGACY_KEY_PREFIX = "a2a:"
MAX_CONTEXT_ID = 200
MAX_MESSAGE_ID = 200

STATE_OF: dict[RunStatus, int] = {
    RunStatus.QUEUED: TaskState.TASK_STATE_SUBMITTED,
    RunStatus.RUNNING: TaskState.TASK_STATE_WORKING,
    RunStatus.WAITING_INPUT: TaskState.TASK_STATE_INPUT_REQUIRED,
    RunStatus.SUCCEEDED: TaskState.TASK_STATE_COMPLETED,
    RunStatus.FAILED: TaskState.TASK_STATE_FAILED,
    RunStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
    RunStatus.TIMED_OUT: TaskState.TASK_STATE_FAILED,
}
# ListTasks' status filter: which run statuses a task state covers.
STATUSES_OF: dict[int, tuple[RunStatus, ...]] = {
    TaskState.TASK_STATE_SUBMITTED: (RunStatus.QUEUED,),
    TaskState.TASK_STATE_WORKING: (RunStatus.RUNNING,),
    TaskState.TASK_STATE_INPUT_REQUIRED: (RunStatus.WAITING_INPUT,),
    TaskState.TASK_STATE_COMPLETED: (RunStatus.SUCCEEDED,),
    TaskState.TASK_STATE_FAILED: (RunStatus.FAILED, RunStatus.TIMED_OUT),
    TaskState.TASK_STATE_CANCELED: (RunStatus.CANCELLED,),
    TaskState.TASK_STATE_REJECTED: (),
    TaskState.TASK_STATE_AUTH_REQUIRED: (),
}
TERMINAL_STATES = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)

# Where a request's stream ends and a blocking SendMessage answers: the task finished, or waits for the
# client (spec 3.2.2: "a terminal or interrupted state").
INTERRUPTED_STATES = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED})
RETURN_STATES = TERMINAL_STATES | INTERRUPTED_STATES

A2AEvent = Task | TaskStatusUpdateEvent | TaskArtifactUpdateEvent


# ---------------------------------------------------------------------------------------------- input


def text_field(info: EndpointInfo) -> str | None:
    """The one string property of an endpoint's input that a text-only message fills, if there is one:
    exactly one property is a string and no other property is required."""
    schema = info.input_schema
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    strings = [name for name, prop in properties.items() if _is_string(prop)]
    if len(strings) != 1:
        return None
    required = set(schema.get("required") or ())
    return strings[0] if required <= {strings[0]} else None


def _integral(value: Any) -> Any:
    """A data part's numbers are doubles (protobuf's Struct); whole ones become ints again, so integer
    fields decode on the worker (beyond 2^53 a double has already rounded the client's integer: A2A
    cannot carry it exactly)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**64:
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


def _is_string(prop: Any) -> bool:
    if not isinstance(prop, dict):
        return False
    kind = prop.get("type")
    return kind == "string" or (isinstance(kind, list) and "string" in kind and len(kind) == 1)


def input_modes(info: EndpointInfo) -> list[str]:
    return [TEXT, JSON] if text_field(info) is not None else [JSON]


OUTPUT_MODES = [JSON, TEXT]


def message_input(info: EndpointInfo, message: Message) -> tuple[Any, str]:
    """The endpoint input a message carries, and how it carried it (``data`` or ``text:<field>``).

    One data part: its object is the input (text parts beside it are ignored). Only text parts: their
    text fills the endpoint's one string field. Anything else is ContentTypeNotSupportedError."""
    data_parts = [part for part in message.parts if part.HasField("data")]
    other = [part for part in message.parts if not part.HasField("data") and not part.HasField("text")]
    if not message.parts:
        raise InvalidParamsError(message="the message has no parts")
    if other:
        kinds = sorted({part.WhichOneof("content") or "empty" for part in other})
        raise ContentTypeNotSupportedError(
            message=f"agent {info.name!r} accepts text and data parts, not {', '.join(kinds)} parts",
        )
    if data_parts:
        if len(data_parts) > 1:
            raise InvalidParamsError(message="send the input as one data part, not several")
        value = _integral(value_json(data_parts[0].data))
        if not isinstance(value, dict):
            raise InvalidParamsError(
                message=f"the data part must be a JSON object matching the input schema of {info.name!r}"
            )
        return value, "data"
    field = text_field(info)
    if field is None:
        raise ContentTypeNotSupportedError(
            message=f"agent {info.name!r} takes structured input: send one data part (application/json) "
            "matching its input schema",
        )
    return {field: "".join(part.text for part in message.parts)}, f"text:{field}"


# ----------------------------------------------------------------------------------- task metadata


class TaskMeta(msgspec.Struct, omit_defaults=True):
    """What A2A remembers about a run beside its input, in the run's ``protocol_meta`` (the contextId is
    the run's ``context_id``): the id of the message that started it and how it carried the input."""

    message_id: str
    mode: str  # "data" or "text:<field>"


class _LegacyMeta(msgspec.Struct, array_like=True):
    # Runs an earlier gateway stored carried their A2A metadata in the idempotency key (``a2a:`` + JSON).
    context_id: str
    message_id: str
    mode: str
    nonce: str


def new_context(context_id: str | None) -> str:
    """The task's contextId: the message's, or a new one."""
    context = context_id or str(uuid.uuid4())
    if len(context) > MAX_CONTEXT_ID:
        raise InvalidParamsError(message=f"contextId is longer than {MAX_CONTEXT_ID} characters")
    if "\x00" in context:  # stored as text: PostgreSQL holds no NUL
        raise InvalidParamsError(message="contextId must not contain NUL")
    return context


def encode_meta(message_id: str, mode: str) -> bytes:
    return _encode(TaskMeta(message_id=message_id[:MAX_MESSAGE_ID], mode=mode))


def _legacy(run: Run) -> _LegacyMeta | None:
    key = run.idempotency_key
    if run.context_id is not None or key is None or not key.startswith(LEGACY_KEY_PREFIX):
        return None
    try:
        return msgspec.json.decode(key[len(LEGACY_KEY_PREFIX) :], type=_LegacyMeta)
    except msgspec.DecodeError:
        return None


def meta_of(run: Run) -> TaskMeta | None:
    if run.protocol_meta is not None:
        try:
            return msgspec.json.decode(run.protocol_meta, type=TaskMeta)
        except msgspec.DecodeError:
            return None
    legacy = _legacy(run)
    return None if legacy is None else TaskMeta(message_id=legacy.message_id, mode=legacy.mode)


def context_of(run: Run) -> str:
    """The task's contextId: the run's context (a run started elsewhere, say REST, has none: its id)."""
    if run.context_id is not None:
        return run.context_id
    legacy = _legacy(run)
    return legacy.context_id if legacy is not None else run.id


# --------------------------------------------------------------------------------------- messages


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def _timestamp(ts: float) -> Timestamp:
    """``Timestamp.FromDatetime(datetime.fromtimestamp(ts, UTC))`` without its ``calendar.timegm``: the
    same seconds (whole seconds since the epoch, floored) and nanos (the datetime's microseconds)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return Timestamp(seconds=(moment - _EPOCH) // _SECOND, nanos=moment.microsecond * 1000)


def _data_part(value: Any) -> Part:
    part = Part(media_type=JSON)
    part.data.CopyFrom(_value(value))
    return part


#: How deep a data part's value may nest inside a task and still be a protobuf message (upb refuses
#: deeper ones). Any input the gateway accepts fits (``validation.MAX_DEPTH``); a deeper worker output, or
#: a run stored before the limit, has its deeper parts carried as JSON text.
MAX_VALUE_DEPTH = 32
_DOUBLE_MAX = sys.float_info.max


def _value(value: Any, depth: int = 0) -> Value:
    """Any JSON value as a protobuf ``Value``, whatever it holds: numbers a double cannot hold (or NaN)
    and parts nested beyond ``MAX_VALUE_DEPTH`` become their JSON text instead of failing the task."""
    out = Value()
    if value is None:
        out.null_value = NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        if -_DOUBLE_MAX <= value <= _DOUBLE_MAX:
            out.number_value = value
        else:
            out.string_value = str(value)
    elif isinstance(value, float):
        if math.isfinite(value):
            out.number_value = value
        else:
            out.string_value = str(value)
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list | dict) and depth >= MAX_VALUE_DEPTH:
        try:
            out.string_value = _encode(value).decode()
        except RecursionError:
            out.string_value = "(nested too deeply to show)"
    elif isinstance(value, list):
        out.list_value.SetInParent()  # an empty list is an empty list, not an unset value (null)
        out.list_value.values.extend(_value(item, depth + 1) for item in value)
    elif isinstance(value, dict):
        out.struct_value.SetInParent()
        for key, item in value.items():
            out.struct_value.fields[str(key)].CopyFrom(_value(item, depth + 1))
    else:
        out.string_value = str(value)
    return out


def _agent_message(run: Run, seq: int, parts: list[Part]) -> Message:
    return Message(
        message_id=f"{run.id}-{seq}",
        context_id=context_of(run),
        task_id=run.id,
        role=Role.ROLE_AGENT,
        parts=parts,
    )


def user_input(run: Run) -> tuple[str, str | None, Any]:
    """What the message that started the run carried: its id, and its text (when the input came as text)
    or else the input's value (a data part)."""
    meta = meta_of(run)
    value = _decode(run.input) if run.input else {}
    message_id = meta.message_id if meta is not None else f"{run.id}-input"
    if meta is not None and meta.mode.startswith("text:") and isinstance(value, dict):
        return message_id, str(value.get(meta.mode[5:], "")), None
    return message_id, None, value


def user_message(run: Run) -> Message:
    """The message that started the run, rebuilt from its input."""
    message_id, text, value = user_input(run)
    parts = [Part(text=text)] if text is not None else [_data_part(value)]
    return Message(
        message_id=message_id,
        context_id=context_of(run),
        task_id=run.id,
        role=Role.ROLE_USER,
        parts=parts,
    )


def output_text(output: Any) -> str:
    return output if isinstance(output, str) else _encode(output).decode()


# ------------------------------------------------------------------------------------------ events


def initial_task(run: Run) -> Task:
    """The task as a run starts: submitted, with the user's message as its history."""
    return Task(
        id=run.id,
        context_id=context_of(run),
        status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED, timestamp=_timestamp(run.created_at)),
        history=[user_message(run)],
    )


# The states as plain ints (each ``TaskState.X`` goes through the enum wrapper's ``__getattr__``).
_CANCELED = TaskState.TASK_STATE_CANCELED
_COMPLETED = TaskState.TASK_STATE_COMPLETED
_FAILED = TaskState.TASK_STATE_FAILED
_INPUT_REQUIRED = TaskState.TASK_STATE_INPUT_REQUIRED
_SUBMITTED = TaskState.TASK_STATE_SUBMITTED
_WORKING = TaskState.TASK_STATE_WORKING


class EventMapper:
    """Turns one run's events into A2A events, in order. Keeps the little state the mapping needs (has
    the token artifact started, which state was last announced)."""

    def __init__(self, run: Run, state: int = _SUBMITTED, streamed: bool = False) -> None:
        self.run = run
        self.context_id = context_of(run)
        self.state = state
        self.streamed = streamed

    def status(
        self, state: int, ts: float, message: Message | None = None, final: bool = False
    ) -> TaskStatusUpdateEvent:
        self.state = state
        status = TaskStatus(state=state, timestamp=_timestamp(ts))  # type: ignore[arg-type]
        if message is not None:
            status.message.CopyFrom(message)
        return TaskStatusUpdateEvent(task_id=self.run.id, context_id=self.context_id, status=status)

    def _artifact(self, artifact: Artifact, append: bool, last: bool) -> TaskArtifactUpdateEvent:
        return TaskArtifactUpdateEvent(
            task_id=self.run.id, context_id=self.context_id, artifact=artifact, append=append, last_chunk=last
        )

    def map(self, events: Iterable[Event]) -> Iterator[A2AEvent]:
        for event in events:
            yield from self.map_one(event)

    def map_one(self, event: Event) -> Iterator[A2AEvent]:
        kind = event.kind
        if kind == "token":
            text = _decode(event.data).get("text", "")
            artifact = Artifact(artifact_id=STREAM_ARTIFACT, name=STREAM_ARTIFACT, parts=[Part(text=text)])
            if self.state != _WORKING:
                yield self.status(_WORKING, event.ts)
            yield self._artifact(artifact, append=self.streamed, last=False)
            self.streamed = True
        elif kind == "run.started":
            if self.state != _WORKING:
                yield self.status(_WORKING, event.ts)
        elif kind in ("progress", "message"):
            data = _decode(event.data)
            text = update_text(kind, data)
            parts = [Part(text=text)] if text else []
            parts.append(_data_part(data))
            message = _agent_message(self.run, event.seq, parts)
            yield self.status(_WORKING, event.ts, message)
        elif kind == "interrupt":
            message = _agent_message(self.run, event.seq, interrupt_parts(_decode(event.data)))
            yield self.status(_INPUT_REQUIRED, event.ts, message)
        elif kind == "input":
            # Answered: the run goes on (in place, or queued for its next attempt). The answer itself is
            # the user's message in the task's history (``fold``), as the SDK's TaskManager keeps one.
            if self.state != _WORKING:
                yield self.status(_WORKING, event.ts)
        elif kind == "artifact":
            data = _decode(event.data)
            artifact_id = artifact_id_of(data, event.seq)
            artifact = Artifact(artifact_id=artifact_id, name=artifact_id, parts=[_data_part(data)])
            yield self._artifact(artifact, append=False, last=True)
        elif kind == "run.completed":
            output = _decode(event.data).get("output")
            artifact = Artifact(
                artifact_id=OUTPUT_ARTIFACT,
                name=OUTPUT_ARTIFACT,
                parts=[_data_part(output), Part(text=output_text(output), media_type=TEXT)],
            )
            yield self._artifact(artifact, append=False, last=True)
            yield self.status(_COMPLETED, event.ts, final=True)
        elif kind == "run.failed":
            text, error = failure_content(_decode(event.data))
            message = _agent_message(self.run, event.seq, [Part(text=text), _data_part(error)])
            yield self.status(_FAILED, event.ts, message, final=True)
        elif kind == "run.cancelled":
            message = _agent_message(self.run, event.seq, [Part(text=cancel_text(_decode(event.data)))])
            yield self.status(_CANCELED, event.ts, message, final=True)
        # tool_call, tool_result, llm_*, node_*, checkpoint, log and custom kinds have no A2A rendering.


# What an event's data says, for both renderings of the mapping (these protobuf messages, and the fast
# path's JSON in ``taskjson.py``).


def update_text(kind: str, data: Any) -> str:
    """The text part of a ``progress`` or ``message`` event's agent message ("" when none)."""
    return _progress_text(data) if kind == "progress" else _message_text(data)


def artifact_id_of(data: Any, seq: int) -> str:
    """An ``artifact`` event's artifact id (and name): its ``name``, else one from its seq."""
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else f"artifact-{seq}"


def failure_content(data: Any) -> tuple[str, Any]:
    """A ``run.failed`` event's text and the error its data part carries."""
    error = data.get("error") or {}
    return f"{error.get('type', 'Error')}: {error.get('message', '')}", error


def cancel_text(data: Any) -> str:
    """A ``run.cancelled`` event's text: its reason."""
    return str(data.get("reason") or "cancelled")


def _progress_text(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("message"), str):
        return str(data["message"])
    if "current" in data:
        total = data.get("total")
        return f"{data['current']}/{total}" if total is not None else f"{data['current']}"
    if "pct" in data:
        return f"{data['pct']}%"
    return ""


def interrupt_parts(data: Any) -> list[Part]:
    """The parts of the agent message an ``interrupt`` event becomes: a text part when its request reads
    as text (a string, or an object with a ``message`` or ``question`` string, or an approval's action),
    then the interrupt as a data part, ``{"id", "request", "schema"}``."""
    text, data = interrupt_content(data)
    return ([Part(text=text)] if text else []) + [_data_part(data)]


def interrupt_content(data: Any) -> tuple[str, Any]:
    """An ``interrupt`` event's text ("" when none) and the value its data part carries."""
    if isinstance(data, dict) and "id" in data:
        data = {"id": data["id"], "request": data.get("request"), "schema": data.get("schema")}
        return interrupt_text(data["request"]), data
    return interrupt_text(data), data  # an interrupt event from before interrupts were built: the request


def interrupt_text(request: Any) -> str:
    """What an interrupt asks, as text for a text-only client ("" when its request has no such text)."""
    if isinstance(request, str):
        return request
    if isinstance(request, dict):
        for key in ("message", "question"):
            if isinstance(request.get(key), str):
                return str(request[key])
        approval = request.get("approval")
        if isinstance(approval, dict) and isinstance(approval.get("action"), str):
            return f"approval required: {approval['action']}"
    return ""


def takes_text(schema: Any, root: Any = None, depth: int = 0) -> bool:
    """Whether an interrupt whose answer has JSON Schema ``schema`` takes a text-only message as its
    answer: no schema (any JSON), or one a string can satisfy at its top level (``type`` ``string`` or a
    list holding it, a string ``enum`` value or ``const``, or such an ``anyOf`` / ``oneOf`` branch or
    local ``$ref``)."""
    root = schema if root is None else root
    if schema is None or schema is True or schema == {}:
        return True
    if not isinstance(schema, dict) or depth > 8:
        return False
    kind = schema.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return True
    if isinstance(schema.get("const"), str) or any(isinstance(v, str) for v in schema.get("enum") or ()):
        return True
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(root, dict):
        target = (root.get("$defs") or {}).get(ref[len("#/$defs/") :])
        if target is not None and takes_text(target, root, depth + 1):
            return True
    branches = [*(schema.get("anyOf") or ()), *(schema.get("oneOf") or ())]
    return any(takes_text(branch, root, depth + 1) for branch in branches)


def message_answer(interrupt_id: str, schema: Any, message: Message) -> Any:
    """The answer a follow-up message gives to interrupt ``interrupt_id`` (whose answer's JSON Schema is
    ``schema``): its one data part's value (any JSON; text parts beside it are ignored), or, with only
    text parts, their text joined, when the interrupt takes text (``takes_text``). Anything else is
    refused as a new message's input is."""
    if not message.parts:
        raise InvalidParamsError(message="the message has no parts")
    data_parts = [part for part in message.parts if part.HasField("data")]
    other = [part for part in message.parts if not part.HasField("data") and not part.HasField("text")]
    if other:
        kinds = sorted({part.WhichOneof("content") or "empty" for part in other})
        raise ContentTypeNotSupportedError(
            message=f"an answer is text or data parts, not {', '.join(kinds)} parts"
        )
    if data_parts:
        if len(data_parts) > 1:
            raise InvalidParamsError(message="send the answer as one data part, not several")
        return _integral(MessageToDict(data_parts[0].data))
    if not takes_text(schema):
        raise ContentTypeNotSupportedError(
            message=f"interrupt {interrupt_id!r} takes structured input: send the answer as one data part "
            "(application/json) matching its schema (the data part of the input-required message)"
        )
    return "".join(part.text for part in message.parts)


def _message_text(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in ("text", "content", "message", "question", "prompt"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return ""


# The SDK's TaskManager fold, without its tracing decorator (a span per artifact chunk).
_append_artifact = getattr(append_artifact_to_task, "__wrapped__", append_artifact_to_task)


def apply(task: Task, event: A2AEvent) -> None:
    """Apply one event to ``task`` as the SDK's TaskManager does."""
    if isinstance(event, TaskStatusUpdateEvent):
        if task.status.HasField("message"):
            task.history.append(task.status.message)
        task.status.CopyFrom(event.status)
    elif isinstance(event, TaskArtifactUpdateEvent):
        _append_artifact(task, event)


def bare_task(run: Run) -> Task:
    """The task with only its id, context and state (and no history or artifacts)."""
    return Task(
        id=run.id,
        context_id=context_of(run),
        status=TaskStatus(state=STATE_OF[run.status], timestamp=_timestamp(run.updated_at)),  # type: ignore[arg-type]
    )


def answer_message(run: Run, event: Event) -> Message:
    """The user's message an ``input`` event (an answer to an interrupt) stands for in the task's
    history: a text part for a string answer, else a data part. Its id is ``<task id>-<seq>``: the
    run keeps the answer, not the message that carried it."""
    answer = _decode(event.data)
    value = answer.get("answer") if isinstance(answer, dict) else answer
    part = Part(text=value) if isinstance(value, str) else _data_part(value)
    return Message(
        message_id=f"{run.id}-{event.seq}",
        context_id=context_of(run),
        task_id=run.id,
        role=Role.ROLE_USER,
        parts=[part],
    )


def add_message(task: Task, message: Message) -> None:
    """Add a user's message to the task's history as the SDK's TaskManager does (the status message
    moves to the history first)."""
    if task.status.HasField("message"):
        task.history.append(task.status.message)
        task.status.ClearField("message")
    task.history.append(message)


def fold(run: Run, events: Iterable[Event]) -> tuple[Task, EventMapper]:
    """The task after ``events`` (the run's log, or its start), and the mapper as it stands after them
    (to map the events that follow as the live stream does)."""
    task = initial_task(run)
    mapper = EventMapper(run)
    for event in events:
        if event.kind == "input":
            add_message(task, answer_message(run, event))
        for update in mapper.map_one(event):
            apply(task, update)
    return task, mapper


def project(run: Run, events: Iterable[Event]) -> Task:
    """The task a run is, after ``events`` (its whole log)."""
    task, mapper = fold(run, events)
    # The log and the run's status agree once a run ended; before that, a queued run requeued after a
    # lost worker shows as submitted again.
    state = STATE_OF[run.status]
    if state != task.status.state and (state in TERMINAL_STATES or run.status is RunStatus.QUEUED):
        apply(task, mapper.status(state, run.updated_at))
    return task


__all__ = [
    "INTERRUPTED_STATES",
    "JSON",
    "OUTPUT_ARTIFACT",
    "OUTPUT_MODES",
    "RETURN_STATES",
    "STATE_OF",
    "STATUSES_OF",
    "STREAM_ARTIFACT",
    "TERMINAL_STATES",
    "TEXT",
    "EventMapper",
    "TaskMeta",
    "add_message",
    "answer_message",
    "apply",
    "artifact_id_of",
    "bare_task",
    "cancel_text",
    "context_of",
    "encode_meta",
    "failure_content",
    "fold",
    "initial_task",
    "input_modes",
    "interrupt_parts",
    "interrupt_text",
    "message_answer",
    "message_input",
    "meta_of",
    "new_context",
    "project",
    "takes_text",
    "text_field",
    "update_text",
]
