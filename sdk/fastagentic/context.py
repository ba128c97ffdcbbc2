"""RunContext: what an endpoint function sees of the run it serves, and how it streams events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from .events import EVENT_KIND_PATTERN, RESERVED_KINDS

_encode = msgspec.json.encode

# Events an endpoint may emit before the context yields to the event loop.
PACE_EVERY = 16

# Sink(kind, data_json, checkpoint_state_json | None): appends one event to the run's log.
Sink = Callable[[str, bytes, bytes | None], None]


class Caller(msgspec.Struct, frozen=True):
    principal: str
    tenant: str


class RunContext:
    """Handed to an endpoint function that declares a parameter annotated ``RunContext``.

    The streaming methods are coroutines: each one appends to the run's ordered event log and gives the
    event loop a turn so the worker can ship events while the function keeps going.
    """

    __slots__ = (
        "_cancelled",
        "_sink",
        "_unpaced",
        "attempt",
        "caller",
        "checkpoint_state",
        "deadline",
        "endpoint",
        "resume_input",
        "run_id",
    )

    def __init__(
        self,
        *,
        run_id: str,
        attempt: int,
        endpoint: str,
        caller: Caller,
        sink: Sink,
        checkpoint_state: Any = None,
        resume_input: Any = None,
        deadline: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.endpoint = endpoint
        self.caller = caller
        #: The state saved by the last ``checkpoint`` of an earlier attempt, or None on a fresh run.
        self.checkpoint_state = checkpoint_state
        self.resume_input = resume_input
        #: Unix time by which the run must finish, or None.
        self.deadline = deadline
        self._sink = sink
        self._cancelled = False
        self._unpaced = 0

    @property
    def cancelled(self) -> bool:
        """True once the gateway cancelled the run (the function also receives ``CancelledError``)."""
        return self._cancelled

    def step_key(self, step: str) -> str:
        """A key for an external side effect that stays the same across retries of this run."""
        return f"{self.run_id}:{step}"

    async def emit(self, kind: str, data: Any = None) -> None:
        """Append an event of any kind of the event model (``progress``, ``message``, ``tool_call``, ...)."""
        if kind in RESERVED_KINDS:
            raise ValueError(f"event kind {kind!r} is emitted by the gateway, not by endpoint code")
        if not EVENT_KIND_PATTERN.fullmatch(kind):
            raise ValueError(f"event kind {kind!r} must match {EVENT_KIND_PATTERN.pattern}")
        self._sink(kind, _encode({} if data is None else data), None)
        await self._pace()

    async def token(self, text: str) -> None:
        """Stream a text delta."""
        self._sink("token", _encode({"text": text}), None)
        await self._pace()

    async def _pace(self) -> None:
        # A producer that awaits nothing else between events still gets them shipped: every few events
        # it gives the loop a turn, so the worker sends them in batches rather than a frame per event.
        self._unpaced += 1
        if self._unpaced >= PACE_EVERY:
            self._unpaced = 0
            await asyncio.sleep(0)

    async def progress(self, current: float, total: float | None = None, message: str | None = None) -> None:
        data: dict[str, Any] = {"current": current}
        if total is not None:
            data["total"] = total
        if message is not None:
            data["message"] = message
        await self.emit("progress", data)

    async def log(self, message: str, level: str = "info") -> None:
        await self.emit("log", {"level": level, "message": message})

    async def checkpoint(self, state: Any) -> None:
        """Save durable state. A later attempt of this run (after a worker loss) starts with it in
        ``checkpoint_state``."""
        self._sink("checkpoint", _encode({"ts": time.time()}), _encode(state))
        await self._pace()

    def _cancel(self) -> None:
        self._cancelled = True
