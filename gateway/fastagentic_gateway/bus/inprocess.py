"""The one-node bus: subscribers of a run get its events through plain lists and a future.

It has no peers, so dispatch, cancel and catalogue notices have nowhere to go. ``NatsBus`` uses it for
the fan-out to subscribers on its own replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ..runs.model import Event
from ..workers.completion import Completion, CompletionRequest
from ..workers.registry import EndpointInfo
from .base import CancelNotice, Elsewhere, Peers, Ticket

# Events buffered for one slow subscriber before it is told to re-read from the store.
MAX_BUFFER = 10_000


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class InProcessSubscription:
    __slots__ = ("_buffer", "_bus", "_waiter", "lagged", "run_id")

    def __init__(self, bus: InProcessBus, run_id: str) -> None:
        self._bus = bus
        self.run_id = run_id
        self._buffer: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None
        self.lagged = False

    def _push(self, events: Sequence[Event]) -> None:
        if self.lagged:
            return
        if len(self._buffer) + len(events) > MAX_BUFFER:
            self.lagged = True
            self._buffer.clear()
        else:
            self._buffer.extend(events)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, within: float | None = None) -> list[Event]:
        if not self._buffer and not self.lagged:
            # A bare future and a timer: cheaper than wait_for, which wraps the wait in a task.
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(within, _wake, waiter) if within is not None else None
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        events, self._buffer = self._buffer, []
        return events

    def close(self) -> None:
        self._bus._unsubscribe(self)


class InProcessBus:
    clustered = False
    connected = True

    def __init__(self, replica: str = "local") -> None:
        self.replica = replica
        self._subscribers: dict[str, set[InProcessSubscription]] = {}
        self.on_last_unsubscribe: Callable[[str], None] | None = None

    async def start(self, peers: Peers) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()

    def publish(self, run_id: str, events: Sequence[Event]) -> None:
        for subscription in self._subscribers.get(run_id, ()):
            subscription._push(events)

    async def subscribe(self, run_id: str, *, elsewhere: Elsewhere = "wait") -> InProcessSubscription:
        # One process: there is no elsewhere.
        return self.subscribe_now(run_id)

    def subscribe_now(self, run_id: str) -> InProcessSubscription:
        subscription = InProcessSubscription(self, run_id)
        self._subscribers.setdefault(run_id, set()).add(subscription)
        return subscription

    def has_subscribers(self, run_id: str) -> bool:
        return run_id in self._subscribers

    async def announce(self, endpoint: str, run_id: str, attempt: int) -> None:
        return None  # no other replica to take it; the run waits in this replica's queue

    async def claim(self, endpoint: str, limit: int, wait: float) -> list[Ticket]:
        return []

    def cancel(self, notice: CancelNotice) -> None:
        return None

    def advertise(self, endpoints: list[EndpointInfo], completions: dict[str, list[str]]) -> None:
        return None

    async def complete(self, replica: str, request: CompletionRequest, wait: float) -> Completion | None:
        return None

    def _unsubscribe(self, subscription: InProcessSubscription) -> None:
        subscribers = self._subscribers.get(subscription.run_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.run_id]
                if self.on_last_unsubscribe is not None:
                    self.on_last_unsubscribe(subscription.run_id)
