"""What the run machinery needs to put the hook stage in its path: contexts made from calls and runs,
payload checks for modifications, and the events and frames a hook's decision turns into."""

from __future__ import annotations

from typing import Any

import msgspec

from fastagentic.v1 import worker_pb2 as pb

from ..calls import Call
from ..runs.model import NewEvent, Run
from ..usage.model import Totals
from ..validation import InputValidator, value_errors
from .chain import Outcome, Validate
from .model import HookContext, HookPoint, Modify, Reject, Retry, Skip, Usage

__all__ = [
    "MAX_CHECK_ID",
    "MAX_TOOL_NAME",
    "TOOL_POINTS",
    "event_check",
    "interrupt_check",
    "observed_check",
    "rejected_event",
    "request_context",
    "run_context",
    "schema_check",
    "tool_check",
    "verdict",
]

_encode = msgspec.json.encode
MAX_CHECK_ID = 128
MAX_TOOL_NAME = 200
TOOL_POINTS = {
    HookPoint.ON_TOOL_CALL.value: HookPoint.ON_TOOL_CALL,
    HookPoint.ON_TOOL_RESULT.value: HookPoint.ON_TOOL_RESULT,
}


def request_context(call: Call, payload: Any) -> HookContext:
    principal = call.principal
    return HookContext(
        point=HookPoint.ON_REQUEST,
        endpoint=call.endpoint.name,
        protocol=call.protocol,
        principal=principal.subject,
        tenant=principal.tenant,
        scopes=principal.scopes,
        payload=payload,
    )


def run_context(run: Run, attempt: int) -> HookContext:
    """The context of ``run``'s points (set per point with ``msgspec.structs.replace``)."""
    return HookContext(
        point=HookPoint.ON_RESPONSE,
        endpoint=run.endpoint,
        protocol=run.protocol,
        principal=run.caller.principal,
        tenant=run.caller.tenant,
        run_id=run.id,
        attempt=attempt,
    )


def usage_of(spent: Totals | None) -> Usage:
    if spent is None:
        return Usage()
    return Usage(input_tokens=spent.input_tokens, output_tokens=spent.output_tokens, cost=spent.cost)


def _problems(errors: list[Any]) -> str | None:
    if not errors:
        return None
    return "; ".join(f"{error.path or '$'}: {error.message}" for error in errors[:5])


def schema_check(validator: InputValidator | None) -> Validate:
    """A payload check: the limits every input obeys, then ``validator``'s schema when there is one."""

    def check(value: Any) -> str | None:
        errors = value_errors(value)
        if not errors and validator is not None:
            errors = validator.errors(value)
        return _problems(errors)

    return check


def event_check(value: Any) -> str | None:
    """An event's data stays a JSON object."""
    if not isinstance(value, dict):
        return f"event data must be a JSON object, not {type(value).__name__}"
    return _problems(value_errors(value))


def interrupt_check(original: dict[str, Any]) -> Validate:
    """An ``interrupt`` event's data: a hook may change what it asks (``request``), not which interrupt it
    is (``id``) nor the answer's ``schema`` (the run waits on them)."""

    def check(value: Any) -> str | None:
        problem = event_check(value)
        if problem is not None:
            return problem
        if value.get("id") != original.get("id") or value.get("schema") != original.get("schema"):
            return "an interrupt keeps its id and schema"
        return None

    return check


def observed_check(kind: str, original: Any, state: bool) -> Validate:
    """How a modified payload of an observed event is checked: a checkpoint's ``state`` is any valid JSON
    value; an event's data stays an object (an interrupt's keeps its id and schema)."""
    if state:
        return schema_check(None)
    if kind == "interrupt" and isinstance(original, dict):
        return interrupt_check(original)
    return event_check


def tool_check(point: HookPoint, original: dict[str, Any]) -> Validate:
    """A tool payload keeps its call's id and name; arguments stay an object; a result stays a result (or
    an error ``{"type", "message"}``)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"a {point.value} payload is a JSON object, not {type(value).__name__}"
        if value.get("id") != original.get("id") or value.get("name") != original.get("name"):
            return "a tool payload keeps its id and name"
        if point is HookPoint.ON_TOOL_CALL:
            if not isinstance(value.get("arguments"), dict):
                return "arguments must be a JSON object"
        elif "result" not in value:
            error = value.get("error")
            if not (isinstance(error, dict) and isinstance(error.get("message"), str)):
                return 'a tool result holds "result", or "error" {"type", "message"}'
        return _problems(value_errors(value))

    return check


def rejected_event(point: HookPoint, outcome: Outcome, reason: str) -> NewEvent:
    """The ``hook.rejected`` event a run's log gets when a hook rejects (or fails) at one of its points."""
    return NewEvent(
        "hook.rejected",
        _encode(
            {
                "hook": outcome.hook,
                "point": point.value,
                "reason": reason,
                "elapsed_ms": round(outcome.elapsed * 1000, 3),
            }
        ),
    )


def verdict(check: pb.ToolCheck, outcome: Outcome) -> pb.ToolVerdict:
    """The ToolVerdict of a chain's outcome."""
    answer = pb.ToolVerdict(
        run_id=check.run_id, attempt=check.attempt, check_id=check.check_id, hook=outcome.hook
    )
    action = outcome.action
    if isinstance(action, Modify):
        answer.action = "modify"
        answer.data = _encode(action.payload)
    elif isinstance(action, Skip):
        answer.action = "skip"
        answer.data = _encode(action.result)
        answer.reason = action.reason
    elif isinstance(action, Reject):
        answer.action = "reject"
        answer.reason = action.reason
    elif isinstance(action, Retry):
        answer.action = "retry"
        answer.reason = action.reason
        answer.retry_after_ms = max(0, min(int(action.after * 1000), 60_000))
    else:
        answer.action = "proceed"
    return answer
