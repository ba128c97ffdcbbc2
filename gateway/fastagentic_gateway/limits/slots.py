"""Concurrency limits for a cluster: each replica runs at most the slots it has *claimed* for a key, and
the claims of all replicas never add up to more than the rule's ``max``.

``ClaimStore`` keeps the claims next to the rate counters, in the NATS JetStream key-value bucket
``<bus_prefix>_limits`` (the connection of ``SharedCounters``): per key one entry, JSON
``{replica: [claimed, expires_at, wanted]}`` (``expires_at`` on the wall clock), changed by
compare-and-set. A replica is granted more only while the live claims of the others (those whose
``expires_at`` is ahead) leave room under ``max``. Its ``claimed`` never drops below the runs it has
running (they exist whatever the claims say), but it only *starts* runs within what it was granted.

``ClusterSlots`` is one replica's side, driven by the synchronous ``ConcurrencyGate``:

- a run whose key is at this replica's claim asks for more (``blocked``): a background update, one in
  flight per key, claims what the key's queued runs could use (bounded by ``max`` and by the free slots
  of this replica's workers); when it is granted the queues are woken (``on_grant``). Refused for lack
  of room, it asks again after a back-off (0.1 s doubling to 1 s);
- a claim not used any more (a run ended and nothing here waits for its key) is given back after
  ``SHRINK_DELAY``, so a busy key does not churn;
- every claim is written again every ``ttl / 3`` (``ttl`` is ``lease_ttl``), so a dead replica's claims
  lapse after ``ttl``. A replica counts its claim for ``ttl * 2 / 3`` after it asked: it stops using a
  claim it could not renew before the others may take it (replicas' clocks must agree within ``ttl / 3``);
- a ``refuse`` rule's call waits at submit for one more claim (``make_room``) and is refused when the
  cluster has none;
- when another replica wants more than it holds (``wanted`` above ``claimed``), a replica keeps at most
  ``ceil(max / replicas wanting)`` of a key and gives the rest back as its runs end.

The bound: runs of a key started under claims never exceed ``max`` across the cluster. The other way,
slots of a replica that died stay claimed until its claims expire (``lease_ttl``, the time after which
its runs are requeued anyway), and a replica waiting for a slot another gives back finds it within its
back-off. When NATS cannot be reached, ``limits_fail`` decides: ``open``, each replica counts up to
``max`` alone (the cluster up to replicas x ``max``); ``closed``, no claim is granted or renewed (runs
wait once their claims lapse; ``refuse`` rules answer 503). Either way it is logged and ``outage`` says
why (``/readyz``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import NamedTuple

import nats.errors
import nats.js.errors

from ..errors import Unavailable
from .concurrency import ConcurrencyGate, Slot
from .counters import DOWN_PAUSE, REMOTE_TIMEOUT, CounterUnavailable, SharedCounters

log = logging.getLogger("fastagentic.limits")

#: Seconds a claim nothing uses any more is kept before it is given back.
SHRINK_DELAY = 0.5
#: Back-off of a replica asking again for a claim the cluster had no room for.
RETRY_MIN = 0.1
RETRY_MAX = 1.0
#: Claim updates in flight at once on one replica.
MAX_INFLIGHT = 32
#: Seconds between two outage warnings in the log.
LOG_EVERY = 10.0


class Grant(NamedTuple):
    granted: int  # runs this replica may start up to
    claimed: int  # its claim as stored: at least granted, and at least what runs here already
    others: int  # the live claims of the other replicas
    contended: bool  # another replica wants more than it holds


class ClaimStore:
    """The claims of one replica in the shared bucket (``SharedCounters``' connection)."""

    def __init__(self, counters: SharedCounters, replica: str, ttl: float) -> None:
        self.counters = counters
        self.replica = replica
        self.ttl = ttl
        self._down_until = 0.0  # monotonic: failed; not asked again before then
        self._down_reason = ""

    async def claim(self, key: str, target: int, floor: int, limit: int) -> Grant:
        """Set this replica's claim on ``key``: ``target`` runs as far as the others' live claims leave
        room under ``limit``, never less than ``floor`` (runs that run here already). CounterUnavailable
        when the bucket cannot be reached (then not asked again for ``DOWN_PAUSE`` s)."""
        if time.monotonic() < self._down_until:
            raise CounterUnavailable(self._down_reason)
        try:
            return await self._claim(key, target, floor, limit)
        except CounterUnavailable as exc:
            self._down_until, self._down_reason = time.monotonic() + DOWN_PAUSE, str(exc)
            raise

    async def _claim(self, key: str, target: int, floor: int, limit: int) -> Grant:
        name = _claim_key(key)
        try:
            kv = await self.counters.key_value()
            async with asyncio.timeout(REMOTE_TIMEOUT * 2):
                for attempt in range(32):
                    try:
                        entry = await kv.get(name)
                        claims, revision = _parse(entry.value), entry.revision
                    except nats.js.errors.KeyNotFoundError:
                        claims, revision = {}, None
                    now = time.time()
                    others = {r: c for r, c in claims.items() if r != self.replica and c[1] > now}
                    taken = sum(c[0] for c in others.values())
                    contended = any(c[2] > c[0] for c in others.values())
                    granted = max(0, min(target, limit - taken))
                    if contended:
                        # Someone waits: keep at most a fair share of the slots (the rest goes back).
                        wanting = 1 + sum(1 for c in others.values() if c[2] > 0)
                        granted = min(granted, math.ceil(limit / wanting))
                    claimed = max(floor, granted)
                    value = dict(others)
                    if claimed or target:
                        value[self.replica] = (claimed, round(now + self.ttl, 3), target)
                    grant = Grant(granted, claimed, taken, contended)
                    if revision is None and not value:
                        return grant  # nothing claimed, nothing to store
                    data = json.dumps(value, separators=(",", ":")).encode()
                    try:
                        if revision is None:
                            await kv.create(name, data)
                        else:
                            await kv.update(name, data, last=revision)
                    except nats.js.errors.KeyWrongLastSequenceError:
                        # Another replica changed its claim in between: read again, after a moment that
                        # grows and differs per replica, so that contenders do not keep colliding.
                        await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                        continue
                    return grant
                raise CounterUnavailable("the shared concurrency claims are too contended (32 conflicts)")
        except CounterUnavailable:
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise CounterUnavailable(
                f"the shared limit counter at {self.counters.url} did not answer: {reason}"
            ) from exc

    async def read(self, key: str) -> dict[str, tuple[int, float, int]]:
        """Every replica's claim on ``key`` as stored, live or not (for tests and diagnostics)."""
        kv = await self.counters.key_value()
        try:
            entry = await kv.get(_claim_key(key))
        except nats.js.errors.KeyNotFoundError:
            return {}
        return _parse(entry.value)

    async def probe(self) -> None:
        """CounterUnavailable unless the bucket answers."""
        await self.claim("\x1fprobe", 0, 0, 0)


def _claim_key(key: str) -> str:
    return "c." + hashlib.sha256(key.encode()).hexdigest()[:40]


def _parse(data: bytes | None) -> dict[str, tuple[int, float, int]]:
    try:
        raw = json.loads(data or b"{}")
    except ValueError:
        return {}
    claims: dict[str, tuple[int, float, int]] = {}
    if isinstance(raw, dict):
        for replica, value in raw.items():
            with contextlib.suppress(TypeError, ValueError):
                claimed, expires, wanted = value
                claims[str(replica)] = (int(claimed), float(expires), int(wanted))
    return claims


class _Claim:
    """This replica's claim on one key, as it last wrote it."""

    __slots__ = (
        "again",
        "backoff",
        "claimed",
        "contended",
        "granted",
        "refreshed",
        "reserving",
        "retry_at",
        "slot",
        "task",
        "timer",
        "valid_until",
        "waiters",
        "wanted",
    )

    def __init__(self, slot: Slot) -> None:
        self.slot = slot  # the rule's max and whether it refuses, as last seen
        self.granted = 0  # runs this replica may start up to, while valid
        self.claimed = 0  # as stored (at least the runs it had running)
        self.wanted = 0  # as stored
        self.valid_until = 0.0  # monotonic
        self.refreshed = 0.0  # monotonic: when it was last written
        self.contended = False
        self.task: asyncio.Task[None] | None = None
        self.again = False  # asked for again while the task ran
        self.timer: asyncio.TimerHandle | None = None
        self.backoff = RETRY_MIN
        self.retry_at = 0.0  # monotonic: a refused claim is not asked again before then
        self.reserving = 0  # refuse calls waiting for a claim
        self.waiters: list[asyncio.Future[None]] = []


class ClusterSlots:
    """This replica's claims, per key, kept in step with what its ``ConcurrencyGate`` counts (the gate
    calls ``limit``, ``blocked``, ``changed`` and ``make_room``; see ``concurrency.Claims``)."""

    def __init__(
        self,
        store: ClaimStore,
        gate: ConcurrencyGate,
        *,
        fail_open: bool,
        on_grant: Callable[[], None],
        capacity: Callable[[], int],
    ) -> None:
        self.store = store
        self.gate = gate
        self.ttl = store.ttl
        self.fail_open = fail_open
        self.on_grant = on_grant  # more may start now: wake the queues
        self.capacity = capacity  # free worker slots on this replica
        self.book: dict[str, _Claim] = {}
        #: why the shared claims cannot be reached, while they cannot (for /readyz); "" otherwise
        self.outage = ""
        self._outage_logged = 0.0
        self._inflight = asyncio.Semaphore(MAX_INFLIGHT)
        self._refresher: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def close(self) -> None:
        """Stop asking. The claims are left to expire: runs of this replica's workers may go on
        elsewhere, and the replica they reconnect to claims them."""
        self._closed = True
        tasks = [c.task for c in self.book.values() if c.task is not None]
        if self._refresher is not None:
            tasks.append(self._refresher)
        for claim in self.book.values():
            if claim.timer is not None:
                claim.timer.cancel()
                claim.timer = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ the gate's side (no I/O)

    def limit(self, slot: Slot) -> int:
        if self.outage and self.fail_open:
            return slot.max
        claim = self._claim(slot)
        if claim.granted and time.monotonic() < claim.valid_until:
            return claim.granted
        return 0

    def blocked(self, slot: Slot) -> None:
        claim = self._claim(slot)
        if claim.task is not None:
            claim.again = True
        elif claim.timer is None or time.monotonic() >= claim.retry_at:
            self._update(slot.key, claim)

    def changed(self, slot: Slot) -> None:
        claim = self.book.get(slot.key)
        if claim is not None and claim.task is None:
            self._check(slot.key, claim)

    async def make_room(self, slots: tuple[Slot, ...]) -> bool:
        room = True
        for slot in slots:
            claim = self._claim(slot)
            if claim.task is None and time.monotonic() < claim.retry_at:
                # Asked a moment ago, in vain (the key is asked again at retry_at): no round trip per call.
                if self.outage and not self.fail_open:
                    raise Unavailable(
                        f"concurrency limits cannot be checked now: {self.outage}", retry_after=1
                    )
                room = False
                continue
            claim.reserving += 1
            try:
                waiter = asyncio.get_running_loop().create_future()
                claim.waiters.append(waiter)
                if claim.task is not None:
                    claim.again = True
                else:
                    self._update(slot.key, claim)
                await waiter
            finally:
                claim.reserving -= 1
            if self.outage and not self.fail_open:
                raise Unavailable(f"concurrency limits cannot be checked now: {self.outage}", retry_after=1)
            # Resumed here, the call is reserved before anything else runs: room is what this call sees.
            key = slot.key
            if self.limit(slot) <= self.gate.running.get(key, 0) + self.gate.waiting.get(key, 0):
                room = False
        return room

    def reloaded(self) -> None:
        """The rules changed: claims of a rule gone are given back, others follow their new max."""
        rules = {rule.name: rule for rule in self.gate.rules}
        for key, claim in self.book.items():
            rule = rules.get(key.split("\x1f", 1)[0])
            slot = claim.slot
            if rule is None:
                claim.slot = slot._replace(max=0)
            else:
                claim.slot = slot._replace(max=rule.max, refuse=rule.when_full == "refuse")
            if claim.task is not None:
                claim.again = True
            elif claim.claimed or claim.wanted:
                self._update(key, claim)

    # ------------------------------------------------------------------ claims

    def _claim(self, slot: Slot) -> _Claim:
        claim = self.book.get(slot.key)
        if claim is None:
            claim = self.book[slot.key] = _Claim(slot)
        elif claim.slot is not slot:
            claim.slot = slot
        return claim

    def _target(self, key: str, claim: _Claim, running: int) -> int:
        """What this replica would claim on ``key`` now."""
        slot = claim.slot
        if slot.max <= 0:
            return 0
        gate = self.gate
        if slot.refuse:
            # Every call accepted here and unfinished is covered, whether it runs or waits.
            extra = gate.waiting.get(key, 0) + claim.reserving
        else:
            extra = min(gate.queued.get(key, 0), self.capacity())
        return min(slot.max, running + extra)

    def _check(self, key: str, claim: _Claim) -> None:
        """After a change of what ``key`` counts here: claim runs past the claim at once; give back what
        is not used after ``SHRINK_DELAY``."""
        running = self.gate.running.get(key, 0)
        if running > claim.claimed:
            self._update(key, claim)
        elif claim.claimed > running and claim.timer is None:
            self._later(key, claim, SHRINK_DELAY)

    def _later(self, key: str, claim: _Claim, delay: float) -> None:
        if self._closed:
            return
        if claim.timer is not None:
            claim.timer.cancel()
        claim.timer = asyncio.get_running_loop().call_later(delay, self._due, key)

    def _due(self, key: str) -> None:
        claim = self.book.get(key)
        if claim is not None:
            claim.timer = None
            if claim.task is None:
                self._update(key, claim)

    def _update(self, key: str, claim: _Claim, refresh: bool = False) -> None:
        if claim.timer is not None:
            claim.timer.cancel()
            claim.timer = None
        if self._closed:
            return
        claim.task = asyncio.ensure_future(self._run(key, claim, refresh))

    async def _run(self, key: str, claim: _Claim, refresh: bool) -> None:
        try:
            while True:
                claim.again = False
                waiters, claim.waiters = claim.waiters, []
                try:
                    if not await self._write(key, claim, refresh) or not claim.again:
                        return
                finally:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                refresh = False
        except Exception:
            log.exception("concurrency: claim update of %r failed", key.split("\x1f", 1)[0])
        finally:
            claim.task = None
            for waiter in claim.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            claim.waiters = []
            if key in self.book and claim.timer is None:
                self._check(key, claim)

    async def _write(self, key: str, claim: _Claim, refresh: bool) -> bool:
        """One claim update; False when it ended short (no room, or no answer: asked again later)."""
        running = self.gate.running.get(key, 0)
        target = self._target(key, claim, running)
        now = time.monotonic()
        valid = now < claim.valid_until
        if (
            not refresh
            and (valid or not claim.claimed)
            and target <= claim.granted
            and target == claim.wanted
            and max(running, target) == claim.claimed
        ):
            return True  # nothing to change
        if target < claim.granted:
            claim.granted = target  # from now on: never more than is about to be claimed
        before = claim.granted if valid else 0
        # What may run here by the time the write lands: the claim must cover it, whatever is granted.
        floor = max(running, before)
        try:
            async with self._inflight:
                grant = await self.store.claim(key, target, floor, claim.slot.max)
        except CounterUnavailable as exc:
            self._down(str(exc))
            self._retry(key, claim)
            return False
        self._up()
        claim.granted, claim.claimed, claim.wanted = grant.granted, grant.claimed, target
        claim.contended = grant.contended
        claim.refreshed = now
        claim.valid_until = now + self.ttl * 2 / 3
        if grant.granted > before:
            self.on_grant()
        if grant.granted < target:
            self._retry(key, claim)
            return False
        claim.backoff = RETRY_MIN
        return True

    def _retry(self, key: str, claim: _Claim) -> None:
        delay = claim.backoff
        claim.backoff = min(delay * 2, RETRY_MAX)
        claim.retry_at = time.monotonic() + delay
        self._later(key, claim, delay)

    # ------------------------------------------------------------------ renewal and outage

    async def _refresh_forever(self) -> None:
        every = self.ttl / 3
        while True:
            await asyncio.sleep(every / 2)
            try:
                await self._refresh(every)
            except Exception:
                log.exception("concurrency: claim renewal failed; retrying")

    async def _refresh(self, every: float) -> None:
        if self.outage and not any(claim.task for claim in self.book.values()):
            try:
                await self.store.probe()
            except CounterUnavailable as exc:
                self._down(str(exc))
                return
            self._up()
        now = time.monotonic()
        gate = self.gate
        for key, claim in list(self.book.items()):
            if claim.task is not None:
                continue
            running = gate.running.get(key, 0)
            if running > claim.claimed or (
                (claim.claimed or claim.wanted) and now - claim.refreshed >= every
            ):
                self._update(key, claim, refresh=True)
            elif (
                not claim.claimed
                and not claim.wanted
                and claim.timer is None
                and not claim.reserving
                and not running
                and not gate.queued.get(key)
                and not gate.waiting.get(key)
            ):
                del self.book[key]  # nothing claimed, nothing wanted

    def _down(self, reason: str) -> None:
        first = not self.outage
        self.outage = reason
        now = time.monotonic()
        if now - self._outage_logged >= LOG_EVERY:
            self._outage_logged = now
            log.warning(
                "concurrency: %s; %s until it answers",
                reason,
                "each replica allows up to max runs of a key on its own (limits_fail = open)"
                if self.fail_open
                else "no concurrency slot is claimed or renewed: runs wait, refuse rules answer 503 "
                "(limits_fail = closed)",
            )
        if first and self.fail_open:
            self.on_grant()  # the local max applies now: queued runs may start

    def _up(self) -> None:
        if self.outage:
            self.outage = ""
            log.warning(
                "concurrency: the shared claims answer again; concurrency limits hold for the cluster"
            )
            running = self.gate.running
            for key, claim in self.book.items():
                if claim.task is None and (claim.claimed or claim.wanted or running.get(key)):
                    self._update(key, claim, refresh=True)  # claims the runs started meanwhile
