"""A run's events as A2A JSON, folded into the task's JSON directly: for the fast path (``fast.py``).

``mapping.py`` maps a run's events to the SDK's protobuf messages (``EventMapper``) and folds them into a
``Task`` (``apply``); the fast path then rendered each as ``MessageToDict`` does. For a blocking
``SendMessage`` on the echo agent that was 84 µs of about 580 (measured in isolation): the task and each update built as protobuf messages,
copied into the task, copied again for the answer, then walked back into a dict. This module builds the
same dicts from the run's events (``JsonEventMapper``, ``apply_json``), and the answer is dumped from
them: the same JSON values as ``MessageToDict`` of the protobuf fold, field for field (which fields are
present, their order, enum names, timestamps, a data part's numbers as doubles, big integers and
non-finite numbers as text, parts nested too deep as JSON text), proven by the unit tests over generated
event sequences.

One difference, by design: the members of a data part's object keep the order the agent gave them. A
protobuf ``Struct`` is a map, and the SDK renders its members in the order of its hash table (not the
agent's, and it can change when the task is copied); JSON objects are unordered (RFC 8259), and no
client can rely on that order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from a2a.types.a2a_pb2 import SendMessageConfiguration, TaskState
from a2a.utils.errors import InvalidAgentResponseError

from ...runs.model import Event, Run
from .mapping import (
    _DOUBLE_MAX,
    JSON,
    MAX_VALUE_DEPTH,
    OUTPUT_ARTIFACT,
    STREAM_ARTIFACT,
    TEXT,
    artifact_id_of,
    cancel_text,
    context_of,
    failure_content,
    interrupt_content,
    output_text,
    update_text,
    user_input,
)

_decode = msgspec.json.decode
_encode = msgspec.json.encode

STATUS = "statusUpdate"  # a StreamResponse's key for a TaskStatusUpdateEvent
ARTIFACT = "artifactUpdate"  # and for a TaskArtifactUpdateEvent
JsonEvent = tuple[str, dict[str, Any]]  # (STATUS or ARTIFACT, the event's JSON)

_CANCELED = TaskState.TASK_STATE_CANCELED
_COMPLETED = TaskState.TASK_STATE_COMPLETED
_FAILED = TaskState.TASK_STATE_FAILED
_INPUT_REQUIRED = TaskState.TASK_STATE_INPUT_REQUIRED
_SUBMITTED = TaskState.TASK_STATE_SUBMITTED
_WORKING = TaskState.TASK_STATE_WORKING
_STATE_NAMES = {number: TaskState.Name(number) for number in TaskState.values()}


def data_json(value: Any, depth: int = 0) -> Any:
    """``MessageToDict(mapping._value(value))``: any JSON value as a data part carries it."""
    if value is None or value is True or value is False or type(value) is str:
        return value
    if isinstance(value, int):
        return float(value) if -_DOUBLE_MAX <= value <= _DOUBLE_MAX else str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | dict) and depth >= MAX_VALUE_DEPTH:
        try:
            return _encode(value).decode()
        except RecursionError:
            return "(nested too deeply to show)"
    if isinstance(value, list):
        return [data_json(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): data_json(item, depth + 1) for key, item in value.items()}
    return str(value)


_second: list[Any] = [None, ""]  # the last whole second rendered, and its text


def timestamp_json(ts: float) -> str:
    """``mapping._timestamp(ts).ToJsonString()``: the time as the datetime of ``ts`` (to the microsecond,
    rounded half to even) in RFC 3339, its fraction in 0, 3 or 6 digits. A second's text is kept for the
    next timestamp in the same second (most of them, under load)."""
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1.0, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1.0, micros + 1_000_000
    if _second[0] != whole:
        text = datetime.fromtimestamp(whole, UTC).replace(tzinfo=None).isoformat()
        _second[0], _second[1] = whole, text
    text = _second[1]
    if micros == 0:
        return f"{text}Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def _data_part(value: Any) -> dict[str, Any]:
    return {"data": data_json(value), "mediaType": JSON}


def _text_part(text: str | None, media_type: str = "") -> dict[str, Any]:
    """``Part(text=text, media_type=media_type)``: a text of None leaves the part without one (protobuf
    takes None as unset); any other text that is not a string is refused, as protobuf refuses it."""
    part: dict[str, Any] = {}
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"a text part's text must be a string, not {type(text).__name__}")
        part["text"] = text
    if media_type:
        part["mediaType"] = media_type
    return part


def _message(
    message_id: str, context_id: str, task_id: str, role: str, parts: list[dict[str, Any]]
) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if message_id:
        message["messageId"] = message_id
    if context_id:
        message["contextId"] = context_id
    if task_id:
        message["taskId"] = task_id
    message["role"] = role
    if parts:
        message["parts"] = parts
    return message


def initial_task_json(run: Run) -> dict[str, Any]:
    """``MessageToDict(mapping.initial_task(run))``."""
    message_id, text, value = user_input(run)
    part = _text_part(text) if text is not None else _data_part(value)
    context_id = context_of(run)
    task: dict[str, Any] = {}
    if run.id:
        task["id"] = run.id
    if context_id:
        task["contextId"] = context_id
    task["status"] = {"state": _STATE_NAMES[_SUBMITTED], "timestamp": timestamp_json(run.created_at)}
    task["history"] = [_message(message_id, context_id, run.id, "ROLE_USER", [part])]
    return task


class JsonEventMapper:
    """``mapping.EventMapper``, each A2A event as its JSON (``MessageToDict`` of it) with its
    StreamResponse key: the same events, in the same order, from the same state."""

    def __init__(self, run: Run, state: int = _SUBMITTED, streamed: bool = False) -> None:
        self.run = run
        self.context_id = context_of(run)
        self.state = state
        self.streamed = streamed

    def _ids(self) -> dict[str, Any]:
        ids: dict[str, Any] = {}
        if self.run.id:
            ids["taskId"] = self.run.id
        if self.context_id:
            ids["contextId"] = self.context_id
        return ids

    def status(self, state: int, ts: float, message: dict[str, Any] | None = None) -> JsonEvent:
        self.state = state
        status: dict[str, Any] = {"state": _STATE_NAMES.get(state, state)}
        if message is not None:
            status["message"] = message
        status["timestamp"] = timestamp_json(ts)
        event = self._ids()
        event["status"] = status
        return STATUS, event

    def _artifact(self, artifact_id: str, parts: list[dict[str, Any]], append: bool, last: bool) -> JsonEvent:
        artifact: dict[str, Any] = {}
        if artifact_id:
            artifact["artifactId"] = artifact_id
            artifact["name"] = artifact_id
        if parts:
            artifact["parts"] = parts
        event = self._ids()
        event["artifact"] = artifact
        if append:
            event["append"] = True
        if last:
            event["lastChunk"] = True
        return ARTIFACT, event

    def _agent_message(self, seq: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return _message(f"{self.run.id}-{seq}", self.context_id, self.run.id, "ROLE_AGENT", parts)

    def map_one(self, event: Event) -> Iterator[JsonEvent]:
        kind = event.kind
        if kind == "token":
            part = _text_part(_decode(event.data).get("text", ""))  # before anything is yielded, as Part()
            if self.state != _WORKING:
                yield self.status(_WORKING, event.ts)
            yield self._artifact(STREAM_ARTIFACT, [part], append=self.streamed, last=False)
            self.streamed = True
        elif kind == "run.started":
            if self.state != _WORKING:
                yield self.status(_WORKING, event.ts)
        elif kind in ("progress", "message"):
            data = _decode(event.data)
            text = update_text(kind, data)
            parts = [_text_part(text)] if text else []
            parts.append(_data_part(data))
            yield self.status(_WORKING, event.ts, self._agent_message(event.seq, parts))
        elif kind == "interrupt":
            text, data = interrupt_content(_decode(event.data))
            parts = ([_text_part(text)] if text else []) + [_data_part(data)]
            yield self.status(_INPUT_REQUIRED, event.ts, self._agent_message(event.seq, parts))
        elif kind == "input":
            if self.state != _WORKING:
                yield self.status(_WORKING, event.ts)
        elif kind == "artifact":
            data = _decode(event.data)
            yield self._artifact(artifact_id_of(data, event.seq), [_data_part(data)], append=False, last=True)
        elif kind == "run.completed":
            output = _decode(event.data).get("output")
            parts = [_data_part(output), _text_part(output_text(output), TEXT)]
            yield self._artifact(OUTPUT_ARTIFACT, parts, append=False, last=True)
            yield self.status(_COMPLETED, event.ts)
        elif kind == "run.failed":
            text, error = failure_content(_decode(event.data))
            message = self._agent_message(event.seq, [_text_part(text), _data_part(error)])
            yield self.status(_FAILED, event.ts, message)
        elif kind == "run.cancelled":
            parts = [_text_part(cancel_text(_decode(event.data)))]
            yield self.status(_CANCELED, event.ts, self._agent_message(event.seq, parts))


def apply_json(task: dict[str, Any], event: JsonEvent) -> None:
    """``mapping.apply`` on the task's JSON. What goes into ``task`` is never changed afterwards in place
    by an event applied later (an artifact appended to is a copy), so an event handed on (pushed, streamed)
    stays as it was."""
    kind, body = event
    if kind == STATUS:
        message = task["status"].get("message")
        if message is not None:
            task.setdefault("history", []).append(message)
        task["status"] = body["status"]
        return
    artifact = body["artifact"]
    artifact_id = artifact.get("artifactId", "")
    artifacts: list[dict[str, Any]] = task.get("artifacts", [])
    index = next(
        (i for i, existing in enumerate(artifacts) if existing.get("artifactId", "") == artifact_id), -1
    )
    if not body.get("append", False):
        if index >= 0:
            artifacts[index] = artifact
        elif artifacts:
            artifacts.append(artifact)
        else:  # the first: rendered before the history, in the field order of a Task
            history = task.pop("history", None)
            task["artifacts"] = [artifact]
            if history is not None:
                task["history"] = history
    elif index >= 0:
        existing = artifacts[index]
        if "parts" in artifact:
            artifacts[index] = {**existing, "parts": [*existing.get("parts", ()), *artifact["parts"]]}
    else:
        raise InvalidAgentResponseError(
            f"append=True for nonexistent artifact_id={artifact_id!r} in task {task.get('id', '')!r}. "
            "The artifact must be created (append=False) before appending parts to it."
        )


def snapshot(task: dict[str, Any]) -> dict[str, Any]:
    """The task as it is now, unaffected by events applied later (``apply_json`` replaces what it
    changes but the task's own lists)."""
    copy = dict(task)
    for key in ("history", "artifacts"):
        if key in copy:
            copy[key] = list(copy[key])
    return copy


def limit_history(task: dict[str, Any], config: SendMessageConfiguration) -> dict[str, Any]:
    """``a2a.utils.task.apply_history_length`` on the task's JSON."""
    if not config.HasField("history_length"):
        return task
    length = config.history_length
    history = task.get("history")
    if not history:
        return task
    if length == 0:
        return {key: value for key, value in task.items() if key != "history"}
    if 0 < length < len(history):
        return {**task, "history": history[-length:]}
    return task


__all__ = [
    "ARTIFACT",
    "STATUS",
    "JsonEvent",
    "JsonEventMapper",
    "apply_json",
    "data_json",
    "initial_task_json",
    "limit_history",
    "snapshot",
]
