"""WorkerConnection: the gateway's side of one worker's stream, and the slots it offers."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from fastagentic.v1 import worker_pb2 as pb

# Runs recently taken away from this worker (cancelled, requeued); its late messages about them are ignored.
MAX_FENCED = 4096


class Assignment:
    """A run this worker holds: enough to handle its messages without reading the store."""

    __slots__ = ("attempt", "durable", "last_seq")

    def __init__(self, attempt: int, durable: bool, last_seq: int = 0) -> None:
        self.attempt = attempt
        self.durable = durable
        self.last_seq = last_seq  # of the run's log, as stored


class ProtocolViolation(Exception):
    """The worker broke the protocol; the gateway disconnects it with this reason."""


class WorkerConnection:
    def __init__(self, worker_id: str, app_name: str, capacity: int, endpoints: list[str]) -> None:
        self.worker_id = worker_id
        self.app_name = app_name
        self.capacity = capacity
        self.endpoints = endpoints
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

    def take(self, run_id: str, attempt: int, durable: bool, last_seq: int = 0) -> Assignment:
        held = self.runs[run_id] = Assignment(attempt, durable, last_seq)
        return held

    def finish(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def fence(self, run_id: str) -> None:
        held = self.runs.pop(run_id, None)
        if held is not None:
            self.fenced[(run_id, held.attempt)] = None
            if len(self.fenced) > MAX_FENCED:
                self.fenced.popitem(last=False)

    def send(self, message: pb.GatewayMessage) -> None:
        if not self.closed:
            self.outbox.put_nowait(message)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(None)
