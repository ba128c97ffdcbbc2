"""What the gateway's REST API answers, as msgspec structs decoded straight from its JSON.

Fields mirror docs/reference/rest.md. Structs ignore fields they do not know, so a newer gateway that
adds a field does not break an older client.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = [
    "Checkpoint",
    "Endpoint",
    "Interrupt",
    "PromptMessage",
    "ReplayOf",
    "Resource",
    "Run",
    "RunError",
    "RunPage",
    "RunRequest",
    "RunResponse",
    "RunStatus",
    "RunUsage",
    "StreamEvent",
    "StreamEventType",
    "ToolCall",
    "ToolResult",
    "UsageTotals",
]


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})


class StreamEventType(enum.StrEnum):
    """The kinds of run events (the SSE ``event:`` field). Kinds an endpoint emits with ``ctx.emit`` under
    a name of its own are ``CUSTOM``; the event's ``kind`` keeps the name."""

    RUN_STARTED = "run.started"
    TOKEN = "token"
    PROGRESS = "progress"
    LOG = "log"
    CHECKPOINT = "checkpoint"
    INTERRUPT = "interrupt"
    INPUT = "input"
    MESSAGE = "message"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    LLM_START = "llm_start"
    LLM_END = "llm_end"
    NODE_ENTER = "node_enter"
    NODE_EXIT = "node_exit"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    CUSTOM = "custom"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {StreamEventType.RUN_COMPLETED, StreamEventType.RUN_FAILED, StreamEventType.RUN_CANCELLED}
)
_KNOWN_KINDS = {t.value: t for t in StreamEventType if t is not StreamEventType.CUSTOM}


class RunError(msgspec.Struct, frozen=True):
    """Why a run failed: ``type`` is the class name of the exception its function raised (or
    ``Timeout``, ``WorkerLost``, ``InputError``, ``BudgetExceeded``…), ``message`` its text."""

    type: str
    message: str


class ToolCall(msgspec.Struct, frozen=True):
    """A ``tool_call`` event's data: the agent called a tool."""

    id: str
    name: str
    arguments: Any = None


class ToolResult(msgspec.Struct, frozen=True):
    """A ``tool_result`` event's data: the result of the tool call ``id``, or its ``error``."""

    id: str
    name: str
    result: Any = None
    error: RunError | None = None


class Interrupt(msgspec.Struct, frozen=True):
    """An ``interrupt`` event's data: the run waits for an answer (``client.resume``) matching ``schema``."""

    id: str
    request: Any = None
    schema: dict[str, Any] | None = None


class StreamEvent(msgspec.Struct, frozen=True):
    """One event of a run's log: ``seq`` numbers them from 1 without gaps."""

    run_id: str
    seq: int
    ts: float
    kind: str
    data: Any = None

    @property
    def type(self) -> StreamEventType:
        return _KNOWN_KINDS.get(self.kind, StreamEventType.CUSTOM)

    @property
    def terminal(self) -> bool:
        """The run's last event: ``run.completed``, ``run.failed`` or ``run.cancelled``."""
        return self.kind in ("run.completed", "run.failed", "run.cancelled")

    @property
    def text(self) -> str:
        """The text of a ``token`` or ``message`` event, else ``""``."""
        if self.kind in ("token", "message") and isinstance(self.data, dict):
            return str(self.data.get("text", ""))
        return ""

    @property
    def tool_call(self) -> ToolCall | None:
        return msgspec.convert(self.data, ToolCall) if self.kind == "tool_call" else None

    @property
    def tool_result(self) -> ToolResult | None:
        return msgspec.convert(self.data, ToolResult) if self.kind == "tool_result" else None

    @property
    def interrupt(self) -> Interrupt | None:
        return msgspec.convert(self.data, Interrupt) if self.kind == "interrupt" else None

    @property
    def output(self) -> Any:
        """The run's output on ``run.completed``, else None."""
        return (
            self.data.get("output") if self.kind == "run.completed" and isinstance(self.data, dict) else None
        )

    @property
    def error(self) -> RunError | None:
        """The run's error on ``run.failed``, else None."""
        if self.kind != "run.failed" or not isinstance(self.data, dict):
            return None
        return msgspec.convert(self.data.get("error"), RunError)


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint a connected worker serves (``GET /v1/endpoints``)."""

    name: str
    kind: str  # agent, tool, resource or prompt
    description: str = ""
    input_schema: dict[str, Any] = {}
    output_schema: dict[str, Any] = {}
    streams: bool = False
    durable: bool = False
    scopes: list[str] = []
    tags: list[str] = []
    examples: list[Any] = []
    uri_template: str | None = None
    mime_type: str | None = None
    rate_limit: str | None = None


class ReplayOf(msgspec.Struct, frozen=True):
    run_id: str
    checkpoint: int


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    calls: int = 0
    unpriced_calls: int = 0


class RunUsage(UsageTotals, frozen=True, kw_only=True):
    """The tokens and cost a run's worker reported, in total and ``by_model``."""

    by_model: dict[str, UsageTotals] = {}


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """A run (``GET /v1/runs/{run_id}``). ``output`` is the decoded JSON once it succeeded; ``usage`` is
    set by ``client.get`` only."""

    run_id: str
    endpoint: str
    kind: str
    status: RunStatus
    attempt: int
    durable: bool
    principal: str
    tenant: str
    created_at: float
    updated_at: float
    last_seq: int
    output: Any = None
    error: RunError | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None
    replay_of: ReplayOf | None = None
    context_id: str | None = None
    protocol: str = ""  # the front that created it: rest, mcp, a2a ("" from a gateway that does not say)
    usage: RunUsage | None = None

    @property
    def finished(self) -> bool:
        return self.status.finished


class RunResponse(msgspec.Struct, frozen=True, kw_only=True):
    """What ``invoke`` answers once the run has ended."""

    run_id: str
    status: RunStatus
    output: Any = None
    error: RunError | None = None


class RunPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of ``GET /v1/runs``: pass ``next_cursor`` as ``cursor`` for the next one (None: last page)."""

    runs: list[Run]
    next_cursor: str | None = None


class Checkpoint(msgspec.Struct, frozen=True):
    """A state the run saved with ``ctx.checkpoint``: ``id`` (1, 2, … per run) names it for ``replay``."""

    id: int
    seq: int
    attempt: int
    ts: float
    state: Any = None


class PromptMessage(msgspec.Struct, frozen=True):
    """One message of a rendered prompt: ``content`` is ``{"type": "text", "text": …}`` (or another MCP
    content block)."""

    role: str
    content: Any = None

    @property
    def text(self) -> str:
        if isinstance(self.content, dict):
            return str(self.content.get("text", ""))
        return ""


class Resource(msgspec.Struct, frozen=True):
    """A resource's content as the gateway served it: bytes and their media type."""

    uri: str
    media_type: str
    content: bytes

    @property
    def text(self) -> str:
        """The content decoded as UTF-8 (errors replaced)."""
        return self.content.decode("utf-8", errors="replace")


class RunRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A run to ask for, kept as a value (to queue, log or send later): ``client.invoke(request)``,
    ``client.stream(request)`` and ``client.start(request)`` take one in place of the agent name and input.

    ``input`` is the agent's input (any JSON-encodable value, a msgspec struct, a dataclass…);
    ``run_timeout`` is the run's deadline in seconds (``Run-Timeout``); ``idempotency_key`` names a
    background start (``start`` only: the same key never makes two runs)."""

    agent: str
    input: Any = None
    run_timeout: float | None = None
    idempotency_key: str | None = None
