import os
import secrets
import socket

from ..settings import Settings
from .base import Bus, BusUnavailable, CancelNotice, Peers, Subscription, Ticket
from .inprocess import InProcessBus


def open_bus(settings: Settings) -> Bus:
    """The bus ``settings.bus_url`` names: in-process when empty, else NATS."""
    replica = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    if not settings.bus_url:
        return InProcessBus(replica)
    from .nats import NatsBus

    return NatsBus(
        settings.bus_url,
        prefix=settings.bus_prefix,
        replica=replica,
        advertise_every=settings.heartbeat_interval,
        forget_after=settings.lease_ttl,
    )


__all__ = [
    "Bus",
    "BusUnavailable",
    "CancelNotice",
    "InProcessBus",
    "Peers",
    "Subscription",
    "Ticket",
    "open_bus",
]
