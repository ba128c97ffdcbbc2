"""Worker-side hooks and the tool guardrails' vocabulary.

A worker-side hook is registered on the App (``@app.hook("on_tool_call")``) and runs in the worker, before
the gateway's hooks of the same point. It gets a ``WorkerHookContext`` and answers an action: the same
actions as gateway hooks, with the same JSON shape (``{"type": "reject", "reason": ...}``), so one policy
object can answer both sides. Returning None means proceed.

| point | payload | actions |
|---|---|---|
| ``on_request`` | the run's input, before the function runs | proceed, modify, reject |
| ``on_response`` | the function's output, before it is sent | proceed, modify, reject |
| ``on_tool_call`` | ``{"id", "name", "arguments"}``, before the tool runs | proceed, modify, skip, reject, retry |
| ``on_tool_result`` | ``{"id", "name", "result"}`` (or ``"error"``), before the model sees it | proceed, modify, reject, retry |
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

__all__ = [
    "WORKER_POINTS",
    "Action",
    "Checker",
    "Modify",
    "Proceed",
    "Reject",
    "Retry",
    "Skip",
    "ToolCall",
    "ToolOutcome",
    "ToolRejected",
    "Verdict",
    "WorkerHook",
    "WorkerHookContext",
    "allowed",
    "jsonable",
    "run_worker_hook",
]


class Proceed(msgspec.Struct, frozen=True, tag="proceed"):
    """Go on unchanged."""


class Modify(msgspec.Struct, frozen=True, tag="modify"):
    """Go on with ``payload`` in place of the original."""

    payload: Any


class Skip(msgspec.Struct, frozen=True, tag="skip"):
    """Do not run the tool; ``result`` is what the model sees instead (``on_tool_call`` only)."""

    result: Any = None
    reason: str = ""


class Reject(msgspec.Struct, frozen=True, tag="reject"):
    """Refuse, with a reason the caller (or, for a tool call, the model) sees."""

    reason: str


class Retry(msgspec.Struct, frozen=True, tag="retry"):
    """Ask again after ``after`` seconds (``on_tool_call``), or run the tool again (``on_tool_result``)."""

    after: float = 0.0
    reason: str = ""


Action = Proceed | Modify | Skip | Reject | Retry

_ALLOWED: dict[str, tuple[type, ...]] = {
    "on_request": (Proceed, Modify, Reject),
    "on_response": (Proceed, Modify, Reject),
    "on_tool_call": (Proceed, Modify, Skip, Reject, Retry),
    "on_tool_result": (Proceed, Modify, Reject, Retry),
}
#: The points a worker-side hook may be registered at.
WORKER_POINTS = tuple(_ALLOWED)


def allowed(point: str) -> tuple[type, ...]:
    return _ALLOWED[point]


class WorkerHookContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker-side hook sees: the point, the run, the tool (at tool points) and the payload."""

    point: str
    run_id: str
    attempt: int
    endpoint: str
    protocol: str
    principal: str
    tenant: str
    tool: str = ""
    payload: Any = None


WorkerHook = Callable[[WorkerHookContext], "Action | Awaitable[Action | None] | None"]


class ToolRejected(Exception):
    """A tool call (or its result) was refused by a hook, in the worker or at the gateway. ``hook`` names
    it, ``point`` says where (``on_tool_call``: the tool never ran; ``on_tool_result``: its result is
    withheld), ``reason`` says why. ``ctx.tool`` raises it; the model-facing ``tool_result`` event carries
    it as ``{"error": {"type": "ToolRejected", "message", "hook", "point"}}``."""

    def __init__(self, tool: str, point: str, reason: str, hook: str = "") -> None:
        by = f" by hook {hook!r}" if hook else ""
        what = "call" if point == "on_tool_call" else "result"
        super().__init__(f"tool {tool!r}: {what} rejected{by}: {reason}")
        self.tool = tool
        self.point = point
        self.reason = reason
        self.hook = hook


async def run_worker_hook(hook: WorkerHook, context: WorkerHookContext) -> Action:
    """A worker-side hook's answer (None: proceed); a wrong answer is a TypeError naming the hook."""
    answer = hook(context)
    if inspect.isawaitable(answer):
        answer = await answer
    if answer is None:
        return Proceed()
    if not isinstance(answer, allowed(context.point)):
        name = getattr(hook, "__name__", repr(hook))
        raise TypeError(f"worker hook {name} answered {answer!r} at {context.point}, which it does not allow")
    return answer


class Verdict(msgspec.Struct, frozen=True):
    """The gateway's answer to a tool check (the worker's ToolVerdict): ``action`` proceed, modify, skip,
    reject or retry; ``data`` the JSON of a modified payload or a skip's result."""

    action: str
    data: bytes = b""
    reason: str = ""
    hook: str = ""
    retry_after: float = 0.0


#: Asks the gateway's chain of a tool point: (point, tool name, payload JSON) -> its verdict, or None when
#: the gateway has no hook at that point (nothing was asked). Raises ToolRejected when no answer came in time.
Checker = Callable[[str, str, bytes], Awaitable[Verdict | None]]


class ToolCall(msgspec.Struct, frozen=True):
    """A tool call the guardrails let through: run it with ``arguments`` (perhaps modified), unless
    ``skipped``: then ``result`` is what the model sees instead, and ``reason`` says why."""

    id: str
    name: str
    arguments: dict[str, Any]
    skipped: bool = False
    result: Any = None
    reason: str = ""


class ToolOutcome(msgspec.Struct, frozen=True):
    """A tool's result as the guardrails let the model see it: ``result`` (or ``error``, ``{"type",
    "message"}``), ``modified`` when a hook replaced it; ``retry``: run the tool again after ``retry_after``
    seconds."""

    result: Any = None
    error: dict[str, Any] | None = None
    modified: bool = False
    retry: bool = False
    retry_after: float = 0.0


def _fallback(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            return repr(value)
    return repr(value)


def jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible builtins (pydantic models dumped, anything unknown as its ``repr``)."""
    try:
        return msgspec.to_builtins(value, enc_hook=_fallback, str_keys=True)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return repr(value)
