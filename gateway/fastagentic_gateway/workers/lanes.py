"""How one worker stream's messages are handled: in order within a run, side by side across runs.

A durable run's report (its events, its Done) waits for a store commit before it is answered. Handled one
after the other, a stream's reports of different runs would each wait for the commit of the one before:
one worker stream would finish at most one durable run per commit, whatever its slots. Here each durable
run has a lane of its own (a task, the next message of the same run chained behind it), so the reports of
many runs wait for the same commits; the store batches what they write into one transaction.

Everything else is handled where it is read, in order: a message of an ephemeral run (its store answers
without waiting: a task would only cost), of a run the worker does not hold (the handler ignores or
refuses it), and the messages that name no run (heartbeat, credit, completion, ...). A message of a run
whose lane is still busy joins that lane, whatever its kind: a run's reports are never reordered.

Tool checks may be the exception: a worker's run waits, stopped, for each verdict, and a check changes
nothing stored, so a frame's checks are handled before its reports (whose store commit would otherwise
delay the verdict) and never wait in a lane, unless ``checks_in_order`` says otherwise: when gateway hooks
observe events (on_node_enter, on_llm_start, ...), their points and the tool points fire in the run's
order, so a check follows the reports sent before it.

At most ``limit`` lanes are busy at once; the stream is read no further until one finishes, so gRPC flow
control holds a fast worker back rather than memory filling up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from fastagentic.v1 import worker_pb2 as pb

from .connection import WorkerConnection

#: Lanes busy at once on one stream.
MAX_LANES = 256

Handle = Callable[[pb.WorkerMessage], Awaitable[None]]


class LaneFailed(Exception):
    """A lane failed (already told to ``RunLanes.fail``): read the stream no further."""


def run_of(message: pb.WorkerMessage) -> str:
    """The run a message reports on ("" when it names none)."""
    body = message.WhichOneof("body")
    if body == "events":
        return message.events.run_id
    if body == "done":
        return message.done.run_id
    if body == "release":
        return message.release.run_id
    if body == "tool_check":
        return message.tool_check.run_id
    return ""


class RunLanes:
    """One worker stream's lanes. ``put`` each message as read; ``drain`` when the stream ends.

    The first failure of a lane (a protocol violation, say) is told to ``fail`` at once, the stream's
    reader being perhaps blocked waiting for the worker; the next ``put`` and ``drain`` raise ``LaneFailed``,
    and the lanes still waiting behind it do not handle their messages."""

    def __init__(
        self,
        worker: WorkerConnection,
        handle: Handle,
        fail: Callable[[BaseException], None],
        limit: int = MAX_LANES,
        checks_in_order: Callable[[], bool] = lambda: False,
    ) -> None:
        self.worker = worker
        self.handle = handle
        self.fail = fail
        self.limit = limit
        self.checks_in_order = checks_in_order
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._busy: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    async def put(self, messages: Sequence[pb.WorkerMessage]) -> None:
        """One frame's messages; its tool checks first (in no lane), unless ``checks_in_order``."""
        in_order = self.checks_in_order()
        if not in_order:
            for message in messages:
                if message.HasField("tool_check"):
                    await self._put(message, "")
        for message in messages:
            if in_order or not message.HasField("tool_check"):
                await self._put(message, run_of(message))

    async def _put(self, message: pb.WorkerMessage, run_id: str) -> None:
        if self._failure is not None:
            raise LaneFailed from self._failure
        tail = self._tails.get(run_id) if run_id else None
        if tail is None:
            held = self.worker.runs.get(run_id) if run_id else None
            if held is None or not held.durable:
                await self.handle(message)
                return
        while len(self._busy) >= self.limit:
            await asyncio.wait(self._busy, return_when=asyncio.FIRST_COMPLETED)
            if self._failure is not None:
                raise LaneFailed from self._failure
        task = asyncio.get_running_loop().create_task(self._lane(tail, message))
        self._tails[run_id] = task
        self._busy.add(task)
        task.add_done_callback(lambda done: self._finished(run_id, done))

    async def _lane(self, before: asyncio.Task[None] | None, message: pb.WorkerMessage) -> None:
        if before is not None:
            # Its outcome is the lane's own concern (a failure is kept by _finished); only its end matters.
            await asyncio.wait((before,))
            if self._failure is not None:
                return
        await self.handle(message)

    def _finished(self, run_id: str, task: asyncio.Task[None]) -> None:
        self._busy.discard(task)
        if self._tails.get(run_id) is task:
            del self._tails[run_id]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            self._failure = exc
            self.fail(exc)

    async def drain(self) -> None:
        """Wait for every busy lane (``LaneFailed`` when one failed)."""
        while self._busy:
            await asyncio.wait(set(self._busy))
        if self._failure is not None:
            raise LaneFailed from self._failure
