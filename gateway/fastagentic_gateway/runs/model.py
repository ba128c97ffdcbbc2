"""The run: what the gateway tracks for every call of an endpoint, and the events it produces."""

from __future__ import annotations

import enum
import os
import time

import msgspec


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_INPUT = "waiting_input"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})
ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING_INPUT})

# The state machine of ARCHITECTURE.md; every store transition is checked against it.
ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset(
        {RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.TIMED_OUT}
    ),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.TIMED_OUT,
            RunStatus.WAITING_INPUT,
            RunStatus.QUEUED,
        }
    ),
    # Answered: back to queued (a new attempt) or, held in place by its worker, running; parked (its worker
    # let go): waiting at the next attempt; ended by the worker holding it in place: succeeded or failed.
    RunStatus.WAITING_INPUT: frozenset(
        {
            RunStatus.QUEUED,
            RunStatus.RUNNING,
            RunStatus.WAITING_INPUT,
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.TIMED_OUT,
        }
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.TIMED_OUT: frozenset(),
}

# Terminal event kind for each terminal status.
TERMINAL_EVENT = {
    RunStatus.SUCCEEDED: "run.completed",
    RunStatus.FAILED: "run.failed",
    RunStatus.CANCELLED: "run.cancelled",
    RunStatus.TIMED_OUT: "run.failed",
}


class EndpointKind(enum.StrEnum):
    AGENT = "agent"
    TOOL = "tool"
    RESOURCE = "resource"
    PROMPT = "prompt"


class RunError(msgspec.Struct, frozen=True):
    type: str
    message: str


class Caller(msgspec.Struct, frozen=True):
    """Who asked for the run. Anonymous until authentication lands; every query is scoped by tenant."""

    principal: str = "anonymous"
    tenant: str = "default"


ANONYMOUS = Caller()


class RunBudget(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a run may spend and the model hint it starts with, fixed when the run is accepted (the budget
    rules applying to its caller then) and kept with the run, so any replica, after any restart, holds it
    to the same budget."""

    name: str = ""  # the run budget (rule) capping it; "" when none does
    tokens: int = 0  # 0: no token cap
    cost: float = 0.0  # 0: no money cap
    downgrade_at: float = 0.0  # share of the run budget past which workers are told downgrade_to
    downgrade_to: str = ""
    hint: str = ""  # the model hint at the start (a day or month budget past its downgrade_at)


class Run(msgspec.Struct, kw_only=True):
    id: str
    endpoint: str
    kind: EndpointKind
    durable: bool
    caller: Caller
    input: bytes  # JSON, validated against the endpoint's input schema
    status: RunStatus = RunStatus.QUEUED
    attempt: int = 1
    max_attempts: int = 3
    output: bytes | None = None  # JSON
    error: RunError | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    worker_id: str | None = None
    lease_expires_at: float | None = None
    deadline_at: float | None = None
    last_seq: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    # A replay (POST /v1/runs/{id}/replay): the run it was replayed from and the checkpoint (id, per that
    # run) whose state its first attempt starts from.
    replay_of: str | None = None
    replay_checkpoint: int | None = None
    # A conversation (grouping) id a front may give its runs: A2A's contextId. Listed with RunQuery.
    context_id: str | None = None
    # What the front that created the run needs to remember about it beside the input, as JSON it owns
    # (A2A: the message id, and whether the input came as text or data). Small; never changes.
    protocol_meta: bytes | None = None
    # Its budget and model hint (limits/budgets.py), when a budget rule applies to it.
    budget: RunBudget | None = None
    # The protocol (front) the run was created through: "rest", "mcp", "a2a" ("" before schema 7).
    protocol: str = ""


class Event(msgspec.Struct, frozen=True):
    """One entry of a run's ordered event log. ``data`` is JSON bytes, passed through untouched."""

    run_id: str
    seq: int
    ts: float
    kind: str
    data: bytes = b"{}"


class NewEvent(msgspec.Struct, frozen=True):
    """An event before the store gave it its place in the log."""

    kind: str
    data: bytes = b"{}"
    ts: float = 0.0
    checkpoint: bytes | None = None  # only for kind "checkpoint": the state to persist


class Checkpoint(msgspec.Struct, frozen=True):
    run_id: str
    id: int  # per run, from 1
    seq: int  # the seq of its "checkpoint" event
    attempt: int
    ts: float
    state: bytes


class RunUpdate(msgspec.Struct, kw_only=True):
    """The fields a transition sets. ``None`` leaves a field as it is unless listed in ``clear``."""

    status: RunStatus
    attempt: int | None = None
    max_attempts: int | None = None
    worker_id: str | None = None
    lease_expires_at: float | None = None
    output: bytes | None = None
    error: RunError | None = None
    started_at: float | None = None
    finished_at: float | None = None
    input: bytes | None = None  # a new input (an approver's edit: runs/approval.py)
    clear_worker: bool = False  # set worker_id and lease_expires_at to NULL


class RunQuery(msgspec.Struct, kw_only=True):
    tenant: str
    status: RunStatus | None = None
    endpoint: str | None = None
    limit: int = 50
    before: str | None = None  # run id: return runs created before it (ids sort by creation)
    context_id: str | None = None
    kind: EndpointKind | None = None
    statuses: frozenset[RunStatus] | None = None  # any of these (with ``status`` too: both must hold)
    updated_after: float | None = None  # runs updated at or after this time


class PushConfig(msgspec.Struct, frozen=True):
    """A push notification config of a run (an A2A task's webhook), as JSON the front owns."""

    run_id: str
    id: str
    tenant: str
    config: bytes
    updated_at: float


class SequenceGap(Exception):
    """A worker sent events that skip sequence numbers."""

    def __init__(self, run_id: str, expected: int, got: int) -> None:
        super().__init__(f"run {run_id}: expected event seq {expected}, got {got}")
        self.expected = expected
        self.got = got


_last_ms = 0
_counter = 0


def new_run_id() -> str:
    """A sortable id: 48-bit millisecond time, 16-bit counter, 64 random bits, as 32 hex digits."""
    global _last_ms, _counter
    ms = time.time_ns() // 1_000_000
    if ms == _last_ms:
        _counter = (_counter + 1) & 0xFFFF
    else:
        _last_ms, _counter = ms, 0
    return f"run_{ms:012x}{_counter:04x}{os.urandom(8).hex()}"
