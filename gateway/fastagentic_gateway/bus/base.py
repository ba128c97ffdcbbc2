"""Bus: what gateway replicas tell each other.

- A run's new events, from the replica that stored them to every replica with a follower of the run.
- Dispatch notices: a queued run that no worker of this replica can take now, for a replica that can.
- Cancel notices, for the replica whose worker holds the run.
- Catalogues: which endpoints each replica's workers serve (and which arguments they complete), and
  completion requests for a replica whose workers complete an argument.

One node uses ``InProcessBus`` (no peers: only the first item means anything); replicas share NATS
JetStream through ``NatsBus``. The run store stays the source of truth: a subscriber that falls behind or
misses a message re-reads the run's log from the store, a lost dispatch notice is re-announced by the
reaper's sweep, a lost cancel notice is caught by fencing on the worker's next write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from ..runs.model import Event
from ..workers.completion import Completion, CompletionRequest
from ..workers.registry import EndpointInfo

#: See ``Bus.subscribe``.
Elsewhere = Literal["wait", "later", "never"]


class BusUnavailable(Exception):
    """The bus cannot carry messages right now (the broker is unreachable)."""


class CancelNotice(msgspec.Struct, frozen=True, array_like=True):
    run_id: str
    attempt: int
    worker_id: str
    reason: str


class Subscription(Protocol):
    lagged: bool

    async def next(self, within: float | None = None) -> list[Event]:
        """The events published since the last call (waits up to ``within`` seconds for one; [] if none came)."""

    def close(self) -> None: ...


class Ticket(Protocol):
    """A dispatch notice claimed from the cluster's queue: settle it with ``ack`` or ``retry``."""

    run_id: str
    attempt: int

    async def ack(self) -> None: ...

    async def retry(self, delay: float) -> None: ...


class Peers(Protocol):
    """What the bus hands to this replica from the others."""

    def on_cancel(self, notice: CancelNotice) -> bool:
        """Stop the run if its worker is connected here; True when it was."""

    def on_catalogue(
        self, replica: str, endpoints: list[EndpointInfo], completions: dict[str, list[str]]
    ) -> None: ...

    async def on_complete(self, request: CompletionRequest) -> Completion | None:
        """Complete an argument with a worker of this replica, for another replica."""


class Bus(Protocol):
    replica: str  # this replica's id, unique in the cluster
    clustered: bool  # True when there may be other replicas

    @property
    def connected(self) -> bool: ...

    async def start(self, peers: Peers) -> None: ...

    async def close(self) -> None: ...

    def publish(self, run_id: str, events: Sequence[Event]) -> None:
        """Hand ``events`` (already stored, in seq order) to the run's subscribers on every replica."""

    async def subscribe(self, run_id: str, *, elsewhere: Elsewhere = "wait") -> Subscription:
        """Subscribe to the run's events. ``elsewhere`` says what its events published by other replicas
        need: ``"wait"``, on return everything published afterwards anywhere is delivered; ``"later"``,
        the run runs here (its worker is local), so the subscription to other replicas is made in the
        background, without a round trip now, in case the run is requeued elsewhere (what another replica
        publishes before it lands is read from the store: a follower re-reads it when quiet);
        ``"never"``, the run can only run here (an ephemeral run): nothing is subscribed elsewhere."""

    async def announce(self, endpoint: str, run_id: str, attempt: int) -> None:
        """Offer a queued run to the replicas serving ``endpoint`` (BusUnavailable when it cannot)."""

    async def claim(self, endpoint: str, limit: int, wait: float) -> list[Ticket]:
        """Up to ``limit`` announced runs of ``endpoint``, waiting up to ``wait`` seconds for one."""

    def cancel(self, notice: CancelNotice) -> None:
        """Tell every replica to cancel the run held by ``notice.worker_id``."""

    def advertise(self, endpoints: list[EndpointInfo], completions: dict[str, list[str]]) -> None:
        """This replica's catalogue (and the arguments its workers complete) changed, or is due again."""

    async def complete(self, replica: str, request: CompletionRequest, wait: float) -> Completion | None:
        """Ask ``replica`` to complete an argument; None when it cannot answer within ``wait`` seconds."""
