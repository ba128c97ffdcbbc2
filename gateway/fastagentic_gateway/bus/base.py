"""Bus: carries a run's new events from where they are stored to everyone following the run.

One node uses ``InProcessBus``; replicas will share NATS JetStream behind the same interface. A
subscriber that falls too far behind is marked ``lagged`` instead of buffering without bound: it then
re-reads the run's log from the store, which always holds every event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..runs.model import Event


class Subscription(Protocol):
    lagged: bool

    async def next(self, within: float | None = None) -> list[Event]:
        """The events published since the last call (waits up to ``within`` seconds for one; [] if none came)."""

    def close(self) -> None: ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def publish(self, run_id: str, events: Sequence[Event]) -> None:
        """Hand ``events`` (already stored, in seq order) to the run's subscribers."""

    def subscribe(self, run_id: str) -> Subscription: ...
