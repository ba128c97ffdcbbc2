"""WorkerConnection: the gateway's side of one worker's stream, and the slots it offers."""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from fastagentic.v1 import worker_pb2 as pb

if TYPE_CHECKING:
    from ..hooks.model import HookContext
    from ..usage.model import Totals

# Runs recently taken away from this worker (cancelled, requeued); its late messages about them are ignored.
MAX_FENCED = 4096
# Completion answers: what MCP allows in one answer, and how long one value may be.
MAX_COMPLETION_VALUES = 100
MAX_COMPLETION_CHARS = 1000
# Completion requests waiting for this worker's answer; past this many, no more are sent to it.
MAX_PENDING_COMPLETIONS = 256

_request_ids = itertools.count(1)


class Hold(Protocol):
    """What a run holds while this worker runs it (``limits.concurrency.Hold``: its concurrency slots)."""

    def release(self) -> None: ...


class Assignment:
    """A run this worker holds: enough to handle its messages without reading the store."""

    __slots__ = ("attempt", "durable", "first_event", "hint", "hold", "hook_context", "last_seq", "spent")

    def __init__(self, attempt: int, durable: bool, last_seq: int = 0, hold: Hold | None = None) -> None:
        self.attempt = attempt
        self.durable = durable
        self.last_seq = last_seq  # of the run's log, as stored
        # Released when the worker lets go of the run, whichever way (finish, fence, close): exactly once.
        self.hold = hold
        self.spent: Totals | None = None  # the run's usage, once a report of a run with a budget came
        self.hint = ""  # the model hint the worker was last given for it
        self.hook_context: HookContext | None = None  # what hooks see of the run, once a hook point needed it
        self.first_event: tuple[str, float] | None = (
            None  # (endpoint, created_at) until its first event (metrics)
        )


class ProtocolViolation(Exception):
    """The worker broke the protocol; the gateway disconnects it with this reason."""


class WorkerConnection:
    def __init__(
        self,
        worker_id: str,
        app_name: str,
        capacity: int,
        endpoints: list[str],
        completions: Mapping[str, frozenset[str]] | None = None,
        credential: str = "",
    ) -> None:
        #: What the worker understands beyond protocol 1 as first released (Hello.features).
        self.features: frozenset[str] = frozenset()
        self.worker_id = worker_id
        #: the worker token (its id) this worker presented; "" when workers do not authenticate
        self.credential = credential
        self.app_name = app_name
        self.capacity = capacity
        self.endpoints = endpoints
        #: endpoint name -> the arguments this worker completes (``EndpointSpec.completions``)
        self.completions: Mapping[str, frozenset[str]] = completions or {}
        self._pending: dict[str, asyncio.Future[pb.Completion]] = {}
        self.runs: dict[str, Assignment] = {}  # run id -> the attempt assigned here
        self.fenced: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.outbox: asyncio.Queue[pb.GatewayMessage | None] = asyncio.Queue()
        self.closed = False

    @property
    def free(self) -> int:
        return 0 if self.closed else max(self.capacity - len(self.runs), 0)

    def holds(self, run_id: str, attempt: int) -> bool:
        held = self.runs.get(run_id)
        return held is not None and held.attempt == attempt

    def check(self, run_id: str, attempt: int) -> Assignment | None:
        """The assignment when the worker may report on this run; None for a fenced run (ignore the
        message); a ProtocolViolation for a run it never held."""
        held = self.runs.get(run_id)
        if held is not None and held.attempt == attempt:
            return held
        if (run_id, attempt) in self.fenced:
            return None
        raise ProtocolViolation(f"run {run_id} attempt {attempt} was never assigned to this worker")

    def take(
        self, run_id: str, attempt: int, durable: bool, last_seq: int = 0, hold: Hold | None = None
    ) -> Assignment:
        previous = self.runs.get(run_id)
        if previous is not None and previous.hold is not None:
            previous.hold.release()
        held = self.runs[run_id] = Assignment(attempt, durable, last_seq, hold)
        return held

    def finish(self, run_id: str) -> None:
        held = self.runs.pop(run_id, None)
        if held is not None and held.hold is not None:
            held.hold.release()

    def fence(self, run_id: str) -> None:
        held = self.runs.pop(run_id, None)
        if held is not None:
            if held.hold is not None:
                held.hold.release()
            self.fenced[(run_id, held.attempt)] = None
            if len(self.fenced) > MAX_FENCED:
                self.fenced.popitem(last=False)

    def send(self, message: pb.GatewayMessage) -> None:
        if not self.closed:
            self.outbox.put_nowait(message)

    # ------------------------------------------------------------------ completion

    def completes(self, endpoint: str, argument: str) -> bool:
        """Whether this worker declared a completer for ``argument`` of ``endpoint`` and can be asked now."""
        return (
            not self.closed
            and argument in self.completions.get(endpoint, ())
            and len(self._pending) < MAX_PENDING_COMPLETIONS
        )

    async def complete(
        self, endpoint: str, argument: str, value: str, arguments: Mapping[str, str], wait: float
    ) -> pb.Completion:
        """Ask the worker to complete ``argument``; its answer (bounds already checked). TimeoutError when
        it does not answer within ``wait`` seconds, ConnectionError when the stream ends first."""
        if self.closed:
            raise ConnectionError(f"worker {self.worker_id} is gone")
        request_id = f"c{next(_request_ids)}"
        future: asyncio.Future[pb.Completion] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self.send(
                pb.GatewayMessage(
                    complete=pb.Complete(
                        request_id=request_id,
                        endpoint=endpoint,
                        argument=argument,
                        value=value,
                        arguments=dict(arguments),
                    )
                )
            )
            return await asyncio.wait_for(future, wait)
        finally:
            self._pending.pop(request_id, None)

    def resolve_completion(self, answer: pb.Completion) -> None:
        """A Completion from the worker. An answer over the bounds is a ProtocolViolation; one for a request
        the gateway no longer waits for (timed out, or never asked) is ignored: a late answer and a made-up
        one cannot be told apart, and neither costs anything once dropped."""
        if len(answer.values) > MAX_COMPLETION_VALUES:
            raise ProtocolViolation(
                f"Completion {answer.request_id[:64]!r} has {len(answer.values)} values (at most "
                f"{MAX_COMPLETION_VALUES})"
            )
        if any(len(value) > MAX_COMPLETION_CHARS for value in answer.values):
            raise ProtocolViolation(
                f"Completion {answer.request_id[:64]!r} has a value over {MAX_COMPLETION_CHARS} characters"
            )
        future = self._pending.pop(answer.request_id, None)
        if future is not None and not future.done():
            future.set_result(answer)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # Its runs keep their leases (the worker may come back holding them), but they no longer run
            # here: what they hold is released now, and taken again if the worker comes back with them.
            for held in self.runs.values():
                if held.hold is not None:
                    held.hold.release()
            self.outbox.put_nowait(None)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"worker {self.worker_id} disconnected"))
            self._pending.clear()
