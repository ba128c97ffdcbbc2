"""The hook stage's vocabulary: where a hook runs (``HookPoint``), what it sees (``HookContext``), what it
may answer (``Action``), and the ``Hook`` protocol every hook implements, built in (PII, integrations) or
the operator's own (a module path, or an external hook server reached over HTTP).

A hook never blocks the event loop: it is a coroutine; CPU-heavy or blocking work goes to a thread.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, runtime_checkable

import msgspec


class HookPoint(enum.StrEnum):
    ON_REQUEST = "on_request"  # a call reaches an endpoint, before its run exists: payload = the input
    ON_RESPONSE = "on_response"  # a run ended, before its output is stored and answered: payload = output
    ON_TOOL_CALL = "on_tool_call"  # a tool call inside a worker, before it runs: {id, name, arguments}
    ON_TOOL_RESULT = "on_tool_result"  # its result, before the model sees it: {id, name, result, error?}
    ON_LLM_START = "on_llm_start"  # event data of llm_start
    ON_LLM_END = "on_llm_end"  # event data of llm_end (usage)
    ON_NODE_ENTER = "on_node_enter"  # event data of node_enter
    ON_NODE_EXIT = "on_node_exit"  # event data of node_exit
    ON_CHECKPOINT = "on_checkpoint"  # a checkpoint's state
    ON_RESUME = "on_resume"  # an answer to an interrupt, before it is stored: the answer
    ON_ERROR = "on_error"  # a run failed: {type, message}
    ON_RETRY = "on_retry"  # a run is requeued for another attempt: {attempt, reason}
    # Any event a worker sends (every kind: token, message, progress, custom ...; after the kind's own point
    # above, if it has one), before it is stored and before any follower sees it: the event's data (a
    # checkpoint's: its state). ``HookContext.event`` names the kind; ``event_kinds`` narrows a hook.
    ON_EVENT = "on_event"


class Usage(msgspec.Struct, frozen=True):
    """What the run (or the call, at on_request: the caller's budget period) spent so far."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


class HookContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a hook sees. ``payload`` is the decoded JSON the point is about (see ``HookPoint``)."""

    point: HookPoint
    endpoint: str
    protocol: str  # rest, mcp, a2a ("" when unknown)
    principal: str
    tenant: str
    scopes: frozenset[str] = frozenset()
    run_id: str = ""  # "" at on_request: the run does not exist yet
    attempt: int = 0
    tool: str = ""  # the tool's name at on_tool_call / on_tool_result
    event: str = ""  # the event's kind at on_event and the points observing one event kind ("" elsewhere)
    usage: Usage = Usage()
    payload: Any = None


class Proceed(msgspec.Struct, frozen=True, tag="proceed"):
    """Go on unchanged."""


class Modify(msgspec.Struct, frozen=True, tag="modify"):
    """Go on with ``payload`` in place of the original (validated again where the point has a schema)."""

    payload: Any


class Skip(msgspec.Struct, frozen=True, tag="skip"):
    """Do not do the thing (a tool call not run: ``result`` is what the model sees instead); the run goes on."""

    result: Any = None
    reason: str = ""


class Reject(msgspec.Struct, frozen=True, tag="reject"):
    """Refuse, with a reason the caller (or the model, for a tool call) sees."""

    reason: str


class Retry(msgspec.Struct, frozen=True, tag="retry"):
    """Do it again (a tool call or the run), after ``after`` seconds."""

    after: float = 0.0
    reason: str = ""


Action = Proceed | Modify | Skip | Reject | Retry

PROCEED = Proceed()


@runtime_checkable
class Hook(Protocol):
    """One hook: a name (in metrics, logs and rejections) and a coroutine deciding an ``Action``."""

    name: str

    async def __call__(self, context: HookContext) -> Action: ...


__all__ = [
    "PROCEED",
    "Action",
    "Hook",
    "HookContext",
    "HookPoint",
    "Modify",
    "Proceed",
    "Reject",
    "Retry",
    "Skip",
    "Usage",
]
