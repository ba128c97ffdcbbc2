"""The client's calls without I/O: what each method sends, and how its answer is read.

Both clients (sync and async) build the same ``Call`` here and differ only in how they send it, as in
httpx's own twins.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from ._errors import RunFailedError
from ._models import (
    Checkpoint,
    Endpoint,
    PromptMessage,
    Resource,
    Run,
    RunPage,
    RunRequest,
    RunResponse,
    RunStatus,
)

T = TypeVar("T")


class _Default(enum.Enum):
    DEFAULT = "default"


DEFAULT: Literal[_Default.DEFAULT] = _Default.DEFAULT
"""Use the client's timeout (the default of every ``timeout=`` argument)."""

TimeoutArg = float | httpx.Timeout | None | Literal[_Default.DEFAULT]


@dataclasses.dataclass(slots=True)
class Call:
    method: str
    path: str
    idempotent: bool
    timeout: TimeoutArg = DEFAULT
    params: dict[str, str | int] | None = None
    content: bytes | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    request_id: str = dataclasses.field(default_factory=lambda: f"fac-{uuid.uuid4().hex}")


def _enc_hook(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic models
        return dump(mode="json")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode(value: Any) -> bytes:
    """A request body: any JSON value, msgspec struct, dataclass, TypedDict or pydantic model. None: empty
    (the gateway reads an empty body as ``{}``)."""
    if value is None:
        return b""
    try:
        return _encoder.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"the input cannot be sent as JSON: {exc}") from None


def segment(name: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, not {name!r}")
    return quote(name, safe="")


def _run_timeout(headers: dict[str, str], run_timeout: float | None) -> None:
    if run_timeout is not None:
        headers["Run-Timeout"] = repr(float(run_timeout))


def run_request(
    agent: str | RunRequest, input: Any, run_timeout: float | None, idempotency_key: str | None = None
) -> RunRequest:
    if isinstance(agent, RunRequest):
        if input is not None:
            raise TypeError("pass the input in the RunRequest, not next to it")
        return RunRequest(
            agent=agent.agent,
            input=agent.input,
            run_timeout=agent.run_timeout if run_timeout is None else run_timeout,
            idempotency_key=agent.idempotency_key if idempotency_key is None else idempotency_key,
        )
    return RunRequest(agent=agent, input=input, run_timeout=run_timeout, idempotency_key=idempotency_key)


def agent_call(request: RunRequest, route: str, timeout: TimeoutArg) -> Call:
    """``invoke``, ``stream`` or ``runs`` (a background start) of an agent."""
    headers: dict[str, str] = {}
    _run_timeout(headers, request.run_timeout)
    idempotent = False
    if route == "runs":
        key = request.idempotency_key or uuid.uuid4().hex
        if not 0 < len(key) <= 255:
            raise ValueError("idempotency_key must be 1 to 255 characters")
        headers["Idempotency-Key"] = key
        idempotent = True  # the key makes a retried start answer the same run
    return Call(
        "POST",
        f"/v1/agents/{segment(request.agent, 'agent')}/{route}",
        idempotent,
        timeout,
        content=encode(request.input),
        headers=headers,
    )


def events_call(run_id: str, after: int, timeout: TimeoutArg) -> Call:
    headers = {"Last-Event-ID": str(after)} if after else {}
    return Call("GET", f"/v1/runs/{segment(run_id, 'run_id')}/events", True, timeout, headers=headers)


def run_path(run_id: str, action: str = "") -> str:
    return f"/v1/runs/{segment(run_id, 'run_id')}" + (f"/{action}" if action else "")


def list_runs_call(
    status: RunStatus | str | None, endpoint: str | None, limit: int, cursor: str | None, timeout: TimeoutArg
) -> Call:
    params: dict[str, str | int] = {"limit": limit}
    if status is not None:
        params["status"] = RunStatus(status).value  # ValueError at once for a status that does not exist
    if endpoint is not None:
        params["endpoint"] = endpoint
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/v1/runs", True, timeout, params=params)


def resume_call(run_id: str, answer: Any, interrupt: str | None, timeout: TimeoutArg) -> Call:
    body: dict[str, Any] = {"answer": answer}
    if interrupt is not None:
        body["interrupt"] = interrupt
    return Call("POST", run_path(run_id, "resume"), False, timeout, content=encode(body))


def replay_call(run_id: str, checkpoint: int | None, run_timeout: float | None, timeout: TimeoutArg) -> Call:
    headers: dict[str, str] = {}
    _run_timeout(headers, run_timeout)
    body = encode({"checkpoint": checkpoint}) if checkpoint is not None else b""
    return Call("POST", run_path(run_id, "replay"), False, timeout, content=body, headers=headers)


def resource_call(uri: str, timeout: TimeoutArg) -> Call:
    return Call("GET", f"/v1/resources/{segment(uri, 'uri')}", True, timeout)


# Reading answers.


def decode(response: httpx.Response, type: type[T]) -> T:
    return msgspec.json.decode(response.content, type=type)


class _Endpoints(msgspec.Struct):
    endpoints: list[Endpoint]


class _Checkpoints(msgspec.Struct):
    checkpoints: list[Checkpoint]


class _ToolOutput(msgspec.Struct):
    output: Any = None


class _Prompt(msgspec.Struct):
    messages: list[PromptMessage]


def endpoints_of(response: httpx.Response, kind: str | None) -> list[Endpoint]:
    found = decode(response, _Endpoints).endpoints
    return [e for e in found if kind is None or e.kind == kind]


def checkpoints_of(response: httpx.Response) -> list[Checkpoint]:
    return decode(response, _Checkpoints).checkpoints


def tool_output_of(response: httpx.Response, output_type: Any) -> Any:
    output = decode(response, _ToolOutput).output
    return output if output_type is None else msgspec.convert(output, output_type)


def prompt_of(response: httpx.Response) -> list[PromptMessage]:
    return decode(response, _Prompt).messages


def resource_of(uri: str, response: httpx.Response) -> Resource:
    media_type = response.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
    return Resource(uri=uri, media_type=media_type, content=response.content)


def run_page_of(response: httpx.Response) -> RunPage:
    return decode(response, RunPage)


def invoke_result(response: httpx.Response, check: bool, output_type: Any) -> RunResponse:
    result = decode(response, RunResponse)
    if check and result.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        raise RunFailedError.of_run(result.run_id, result.status.value, result.error)
    if output_type is not None and result.status is RunStatus.SUCCEEDED:
        result = msgspec.structs.replace(result, output=msgspec.convert(result.output, output_type))
    return result


def checked_run(run: Run, check: bool) -> Run:
    if check and run.status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        raise RunFailedError.of_run(run.run_id, run.status.value, run.error)
    return run


__all__ = ["DEFAULT", "Call", "Run", "TimeoutArg"]
