"""NatsBus: gateway replicas sharing one NATS server (or cluster) with JetStream.

Subjects, under a configurable prefix ``P`` (so several deployments, or test runs, share one NATS):

- ``P.events.<run id>`` (core NATS): a run's new events, as the replica that stored them publishes them.
  Replicas subscribe per run, only while they have a follower of it. At-most-once is enough: the store
  has every event, and a follower that sees a gap or a quiet spell re-reads it.
- ``P.dispatch.<endpoint>`` (JetStream, a work-queue stream ``<P>_dispatch``): a queued run nobody on
  the accepting replica could take. Every replica with workers for the endpoint pulls from one shared
  durable consumer; a notice is acknowledged once a replica claimed the run in the store (or found it
  already taken), so a replica dying mid-claim leaves it for another. ``Nats-Msg-Id`` (run id and
  attempt) drops repeated announcements within the stream's duplicate window.
- ``P.cancel`` (core): the run to cancel and the worker holding it; the replica with that worker tells it.
- ``P.complete.<replica>`` (core request/reply): complete an argument with one of that replica's
  workers, for a replica with none that complete it.
- ``P.catalogue`` and ``P.catalogue.hello`` (core): each replica's catalogue, repeated every
  ``heartbeat_interval`` and on every change; a starting replica says hello so the others repeat theirs
  at once. A replica not heard from for ``lease_ttl`` is taken out of the catalogue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import api

from ..runs.model import Event
from ..workers.completion import Completion, CompletionRequest
from ..workers.registry import EndpointInfo
from .base import BusUnavailable, CancelNotice, Elsewhere, Peers, Subscription, Ticket
from .inprocess import InProcessBus

log = logging.getLogger("fastagentic.bus")


def reason(exc: BaseException) -> str:
    """An exception's text, or its type when the text is empty (several of nats-py's errors have none)."""
    return str(exc) or type(exc).__name__


PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Seconds the gateway tries to make its first connection to NATS before it gives up starting.
CONNECT_WITHIN = 15.0
# Messages waiting for the connection; past this, live events are dropped (followers re-read the store).
MAX_OUTBOX = 100_000


class _EventsMessage(msgspec.Struct, array_like=True):
    origin: str
    events: list[Event]


class _Advert(msgspec.Struct, array_like=True):
    replica: str
    endpoints: list[EndpointInfo]
    leaving: bool = False
    completions: dict[str, list[str]] = {}  # endpoint -> arguments its workers complete


_encode = msgspec.msgpack.encode
_decode_events = msgspec.msgpack.Decoder(_EventsMessage).decode
_decode_advert = msgspec.msgpack.Decoder(_Advert).decode
_decode_cancel = msgspec.msgpack.Decoder(CancelNotice).decode
_decode_completion_request = msgspec.msgpack.Decoder(CompletionRequest).decode
_decode_completion = msgspec.msgpack.Decoder(Completion).decode


def _token(endpoint: str) -> str:
    """An endpoint name as one subject token ('.' separates tokens; endpoint names never contain '~')."""
    return endpoint.replace(".", "~")


class _Ticket:
    __slots__ = ("_msg", "attempt", "run_id")

    def __init__(self, msg: Msg, run_id: str, attempt: int) -> None:
        self._msg = msg
        self.run_id = run_id
        self.attempt = attempt

    async def ack(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._msg.ack()

    async def retry(self, delay: float) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._msg.nak(delay=delay)


async def _server_has_all_sent(nc: Client, *, within: int = 2) -> None:
    """Return once the server has processed every command this connection sent so far (a subscription
    included): it answered a PING written after them. One ``flush()`` is not that: nats-py writes its PING
    straight to the socket, ahead of a SUB still in its send buffer, so the first PONG can come back before
    the server has seen the SUB (an event published right after was lost about one time in twenty here).
    By the time that PONG is read the client's flusher has written the buffer, so a second PING follows it."""
    await nc.flush(timeout=within)
    await nc.flush(timeout=within)


class NatsBus:
    clustered = True

    def __init__(
        self, url: str, *, prefix: str, replica: str, advertise_every: float, forget_after: float
    ) -> None:
        if not PREFIX_PATTERN.fullmatch(prefix):
            raise ValueError(f"bus prefix {prefix!r} must match {PREFIX_PATTERN.pattern}")
        self.url = url
        self.prefix = prefix
        self.replica = replica
        self.stream = f"{prefix}_dispatch"
        self._advertise_every = advertise_every
        self._forget_after = forget_after
        self._local = InProcessBus(replica)
        self._local.on_last_unsubscribe = self._drop_remote
        self._remote: dict[str, asyncio.Future[NatsSubscription | None]] = {}
        self._pullers: dict[str, Any] = {}
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._catalogue: list[EndpointInfo] = []
        self._completions: dict[str, list[str]] = {}
        self._peers_seen: dict[str, float] = {}
        self._peers: Peers | None = None
        self._nc: Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def start(self, peers: Peers) -> None:
        self._peers = peers
        try:
            # Reconnects never give up once connected; the first connection must come within CONNECT_WITHIN
            # (a gateway that cannot start says so and exits, for its supervisor to start it again).
            self._nc = await asyncio.wait_for(
                nats.connect(
                    servers=[self.url],
                    name=f"fastagentic-gateway {self.replica}",
                    connect_timeout=3,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                CONNECT_WITHIN,
            )
        except TimeoutError:
            raise BusUnavailable(
                f"cannot connect to NATS at {self.url}: no connection within {CONNECT_WITHIN:g} s "
                "(the log above says why)"
            ) from None
        except Exception as exc:
            raise BusUnavailable(f"cannot connect to NATS at {self.url}: {reason(exc)}") from exc
        nc = self._nc
        js = nc.jetstream()
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.dispatch.>"],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            max_age=86_400.0,  # the reaper's sweep re-announces a run still queued after that
            duplicate_window=120.0,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)  # created by an older replica with other limits
        await nc.subscribe(f"{self.prefix}.cancel", cb=self._on_cancel)
        await nc.subscribe(f"{self.prefix}.catalogue", cb=self._on_advert)
        await nc.subscribe(f"{self.prefix}.catalogue.hello", cb=self._on_hello)
        await nc.subscribe(f"{self.prefix}.complete.{self.replica}", cb=self._on_complete)
        await _server_has_all_sent(nc, within=10)
        await nc.publish(f"{self.prefix}.catalogue.hello", self.replica.encode())
        self._tasks = [
            asyncio.create_task(self._write_forever()),
            asyncio.create_task(self._advertise_forever()),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._closing = True
        nc, self._nc = self._nc, None
        if nc is not None and nc.is_connected:
            # Not drain(): it waits for every subscription, and a pull consumer's pending fetch only ends
            # with its expiry. What matters is that queued messages and the farewell reach the server.
            with contextlib.suppress(Exception):
                for subject, payload in self._outbox:
                    await nc.publish(subject, payload)
                await nc.publish(f"{self.prefix}.catalogue", _encode(_Advert(self.replica, [], leaving=True)))
                await nc.flush(timeout=2)
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        self._outbox.clear()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS: %s", reason(exc))

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS connection lost; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("NATS connection back")
        self._wake.set()
        self.advertise(self._catalogue, self._completions)

    # ------------------------------------------------------------------ run events

    def publish(self, run_id: str, events: Sequence[Event]) -> None:
        self._local.publish(run_id, events)
        if len(self._outbox) >= MAX_OUTBOX:
            return
        self._outbox.append(
            (f"{self.prefix}.events.{run_id}", _encode(_EventsMessage(self.replica, list(events))))
        )
        self._wake.set()

    async def subscribe(self, run_id: str, *, elsewhere: Elsewhere = "wait") -> Subscription:
        local = self._local.subscribe_now(run_id)
        if elsewhere == "never":
            return local
        pending = self._remote.get(run_id)
        if pending is None:
            pending = self._remote[run_id] = asyncio.ensure_future(self._subscribe_remote(run_id))
        if elsewhere == "wait":
            # Shielded: one caller giving up must not cancel the subscription the others wait for.
            await asyncio.shield(pending)
        return local

    async def _subscribe_remote(self, run_id: str) -> NatsSubscription | None:
        nc = self._nc
        if nc is None:
            return None
        try:
            subscription = await nc.subscribe(f"{self.prefix}.events.{run_id}", cb=self._on_events)
            await _server_has_all_sent(nc)
        except Exception as exc:
            # Degraded, not failed: the follower still gets local events and re-reads the store when quiet.
            log.warning("cannot subscribe to run %s on NATS: %s", run_id, reason(exc))
            self._remote.pop(run_id, None)
            return None
        return subscription

    def _drop_remote(self, run_id: str) -> None:
        pending = self._remote.pop(run_id, None)
        if pending is not None:
            pending.add_done_callback(_unsubscribe)

    async def _on_events(self, msg: Msg) -> None:
        try:
            message = _decode_events(msg.data)
        except msgspec.DecodeError:
            log.warning("dropped an undecodable event message on %s", msg.subject)
            return
        if message.origin != self.replica and message.events:
            self._local.publish(message.events[0].run_id, message.events)

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            nc = self._nc
            while self._outbox and nc is not None and nc.is_connected:
                subject, payload = self._outbox[0]
                try:
                    await nc.publish(subject, payload)
                except Exception as exc:
                    log.warning("NATS publish failed (%s); live events wait for the connection", exc)
                    break
                self._outbox.popleft()

    # ------------------------------------------------------------------ dispatch

    async def announce(self, endpoint: str, run_id: str, attempt: int) -> None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise BusUnavailable(f"NATS at {self.url} is unreachable")
        try:
            await nc.jetstream().publish(
                f"{self.prefix}.dispatch.{_token(endpoint)}",
                f"{run_id} {attempt}".encode(),
                timeout=2.0,
                stream=self.stream,
                headers={"Nats-Msg-Id": f"{run_id}:{attempt}"},
            )
        except Exception as exc:
            raise BusUnavailable(f"cannot queue run {run_id} on NATS: {reason(exc)}") from exc

    async def claim(self, endpoint: str, limit: int, wait: float) -> list[Ticket]:
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise BusUnavailable(f"NATS at {self.url} is unreachable")
        puller = self._pullers.get(endpoint)
        try:
            if puller is None:
                consumer = "d" + hashlib.sha256(endpoint.encode()).hexdigest()[:24]
                puller = await nc.jetstream().pull_subscribe(
                    f"{self.prefix}.dispatch.{_token(endpoint)}",
                    durable=consumer,
                    stream=self.stream,
                    config=api.ConsumerConfig(
                        ack_policy=api.AckPolicy.EXPLICIT,
                        ack_wait=30.0,
                        max_deliver=-1,
                        inactive_threshold=86_400.0,
                    ),
                )
                self._pullers[endpoint] = puller
            msgs = await puller.fetch(batch=limit, timeout=wait)
        except nats.errors.TimeoutError:
            return []
        except Exception as exc:
            raise BusUnavailable(f"cannot read the dispatch queue on NATS: {reason(exc)}") from exc
        tickets: list[Ticket] = []
        for msg in msgs:
            run_id, _, attempt = msg.data.decode(errors="replace").partition(" ")
            if attempt.isdigit():
                tickets.append(_Ticket(msg, run_id, int(attempt)))
            else:
                log.warning("dropped a malformed dispatch notice: %r", msg.data[:100])
                await msg.term()
        return tickets

    # ------------------------------------------------------------------ cancel and catalogue

    def cancel(self, notice: CancelNotice) -> None:
        self._outbox.append((f"{self.prefix}.cancel", _encode(notice)))
        self._wake.set()

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            notice = _decode_cancel(msg.data)
        except msgspec.DecodeError:
            log.warning("dropped an undecodable cancel notice")
            return
        if self._peers is not None:
            self._peers.on_cancel(notice)

    async def complete(self, replica: str, request: CompletionRequest, wait: float) -> Completion | None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return None
        try:
            reply = await nc.request(f"{self.prefix}.complete.{replica}", _encode(request), timeout=wait)
            return _decode_completion(reply.data) if reply.data else None
        except Exception as exc:  # no responder, timeout, connection lost, a bad answer: nobody answered
            log.warning("completion request to replica %s: %s", replica, reason(exc))
            return None

    async def _on_complete(self, msg: Msg) -> None:
        answer: Completion | None = None
        try:
            request = _decode_completion_request(msg.data)
        except msgspec.DecodeError:
            log.warning("dropped an undecodable completion request")
        else:
            if self._peers is not None:
                answer = await self._peers.on_complete(request)
        with contextlib.suppress(Exception):
            await msg.respond(_encode(answer) if answer is not None else b"")

    def advertise(self, endpoints: list[EndpointInfo], completions: dict[str, list[str]]) -> None:
        self._catalogue, self._completions = endpoints, completions
        advert = _Advert(self.replica, endpoints, completions=completions)
        self._outbox.append((f"{self.prefix}.catalogue", _encode(advert)))
        self._wake.set()

    async def _on_hello(self, msg: Msg) -> None:
        if msg.data.decode(errors="replace") != self.replica:
            self.advertise(self._catalogue, self._completions)

    async def _on_advert(self, msg: Msg) -> None:
        try:
            advert = _decode_advert(msg.data)
        except msgspec.DecodeError:
            log.warning("dropped an undecodable catalogue")
            return
        if advert.replica == self.replica or self._peers is None:
            return
        if advert.leaving:
            self._peers_seen.pop(advert.replica, None)
        else:
            self._peers_seen[advert.replica] = time.monotonic()
        self._peers.on_catalogue(advert.replica, advert.endpoints, advert.completions)

    async def _advertise_forever(self) -> None:
        while True:
            await asyncio.sleep(self._advertise_every)
            self.advertise(self._catalogue, self._completions)
            cutoff = time.monotonic() - self._forget_after
            for replica, seen in list(self._peers_seen.items()):
                if seen < cutoff and self._peers is not None:
                    log.warning(
                        "replica %s not heard from for %.0f s; its endpoints are forgotten",
                        replica,
                        self._forget_after,
                    )
                    del self._peers_seen[replica]
                    self._peers.on_catalogue(replica, [], {})


def _unsubscribe(pending: asyncio.Future[NatsSubscription | None]) -> None:
    if pending.cancelled() or pending.exception() is not None:
        return
    subscription = pending.result()
    if subscription is not None:
        task = asyncio.ensure_future(_quietly(subscription.unsubscribe()))
        _unsubscribing.add(task)
        task.add_done_callback(_unsubscribing.discard)


_unsubscribing: set[asyncio.Future[None]] = set()


async def _quietly(coro: Any) -> None:
    with contextlib.suppress(Exception):
        await coro
