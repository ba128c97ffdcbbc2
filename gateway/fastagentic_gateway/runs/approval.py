"""Gateway-enforced approval: every call of an endpoint the operator marked (``approval_required``) waits
for a person's decision before any worker runs it, whichever front it came through.

The run is accepted ``waiting_input`` with an interrupt the gateway made (id ``gateway.approval``): its
request names the endpoint and carries the call's input, its answer is a decision. Only a principal with
the ``approver_scope`` may answer it (the caller cannot approve its own call, unless it has that scope).

- ``approve``: the run is queued as called;
- ``edit``: the run is queued with ``payload`` as its input (validated against the endpoint's input
  schema first: 422 with field paths);
- ``reject``: the run fails with error type ``ApprovalRejected`` and the decision's ``reason``; no worker
  ever sees it.

The decision is the run's ``input`` event, like any answer, and is recorded in the audit log.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

import msgspec

from ..errors import InvalidInput, NoWorker
from ..validation import value_errors
from ..workers.registry import EndpointRegistry
from .model import NewEvent, Run, RunError, RunStatus, RunUpdate

#: The id of the interrupt a run requiring approval waits on.
GATE_ID = "gateway.approval"

#: The JSON Schema of the decision (the SDK's ``Decision``).
DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"enum": ["approve", "edit", "reject"]},
        "payload": {},
        "reason": {"type": "string", "maxLength": 2000},
    },
    "required": ["decision"],
    "additionalProperties": False,
}

_encode = msgspec.json.encode


class Decision(msgspec.Struct, frozen=True):
    decision: Literal["approve", "edit", "reject"]
    payload: Any = None
    reason: str = ""


def requires_approval(patterns: list[str], endpoint: str) -> bool:
    """Whether the operator's ``approval_required`` patterns (shell-style) name ``endpoint``."""
    return any(fnmatchcase(endpoint, pattern) for pattern in patterns)


def approval_interrupt(run: Run, approver_scope: str) -> NewEvent:
    """The interrupt a run requiring approval starts with."""
    request = {
        "approval": {
            "action": f"call {run.endpoint}",
            "details": msgspec.Raw(run.input),
        },
        "gateway": True,
        "approver_scope": approver_scope,
    }
    return NewEvent("interrupt", _encode({"id": GATE_ID, "request": request, "schema": DECISION_SCHEMA}))


def decided(run: Run, answer: Any, registry: EndpointRegistry) -> tuple[RunUpdate, list[NewEvent]]:
    """What ``answer`` (valid against ``DECISION_SCHEMA``) does to ``run``: its transition, and the events
    to store after the ``input`` event. ``InvalidInput`` when an edited payload does not fit the endpoint."""
    decision = msgspec.convert(answer, Decision)
    if decision.decision == "reject":
        error = RunError(
            type="ApprovalRejected",
            message=decision.reason or f"the call of {run.endpoint!r} was rejected",
        )
        update = RunUpdate(status=RunStatus.FAILED, error=error)
        return update, [NewEvent("run.failed", _encode({"error": error}))]
    if decision.decision == "approve":
        return RunUpdate(status=RunStatus.QUEUED), []
    endpoint = registry.get(run.endpoint)
    if endpoint is None:
        raise NoWorker(
            f"cannot check the edited input: no worker serves {run.endpoint!r} right now", retry_after=5
        )
    raw = _encode(decision.payload)
    errors = value_errors(decision.payload, raw) or endpoint.validator.errors(decision.payload, bounded=True)
    if errors:
        raise InvalidInput(
            f"the edited payload does not match the input schema of {run.endpoint!r}",
            errors=[msgspec.structs.replace(e, path="$.payload" + e.path.removeprefix("$")) for e in errors],
        )
    return RunUpdate(status=RunStatus.QUEUED, input=raw), []
