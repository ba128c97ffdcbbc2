"""Counters: GCRA state per key, kept in this process (``LocalCounters``) or shared by the replicas of a
cluster through NATS JetStream key-value (``SharedCounters``).

GCRA (the generic cell rate algorithm) keeps one number per key, the theoretical arrival time ``tat`` of
the next call at the sustained rate. ``n`` calls are admitted when ``max(tat, now) + n * interval`` is at
most ``burst * interval`` ahead of now; the new ``tat`` is that sum. So at most ``burst`` calls go at once
and, over any window ``W``, at most ``burst + W / interval``: no fixed-window edge that admits 2x.

Token limits (TPM) are paid afterwards: a call is admitted while the key's ``tat`` is at most ``burst *
interval`` ahead (``peek``), and the tokens its run reports move ``tat`` on unconditionally (``charge``),
so a key that overspent waits until the rate has paid its debt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import api
from nats.js.kv import KeyValue

from fastagentic.rates import MAX_PERIOD

log = logging.getLogger("fastagentic.limits")


class Decision(NamedTuple):
    allowed: bool
    retry_after: float  # seconds until one call would be admitted (0 when admitted)
    remaining: int  # calls still admitted right now after this one


class CounterUnavailable(Exception):
    """The shared counter cannot be reached or did not answer in time."""


class Counters(Protocol):
    async def take(self, key: str, interval: float, burst: int) -> Decision: ...

    async def peek(self, key: str, interval: float, burst: int) -> Decision:
        """Whether ``key`` is within its burst now, taking nothing."""
        ...

    async def charge(self, key: str, n: int, interval: float) -> None:
        """Move ``key`` on by ``n`` units, admitted or not (spent tokens)."""
        ...

    async def first(self, name: str, ttl: float) -> bool:
        """True for the first caller naming ``name`` (across the cluster, when shared) within ``ttl`` s."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def gcra(tat: float, now: float, n: int, interval: float, burst: int) -> tuple[float | None, Decision]:
    """The new ``tat`` (None when refused) and the decision for ``n`` calls."""
    new_tat = max(tat, now) + n * interval
    allow_at = new_tat - burst * interval  # the earliest moment the n calls fit in the burst
    if allow_at > now + 1e-9:
        return None, Decision(False, allow_at - now, 0)
    return new_tat, Decision(True, 0.0, int((now - allow_at) / interval + 1e-9))


def within(tat: float, now: float, interval: float, burst: int) -> Decision:
    """Whether a key at ``tat`` is within its burst (a token limit's admission), taking nothing."""
    allow_at = tat - burst * interval
    if allow_at > now + 1e-9:
        return Decision(False, allow_at - now, 0)
    return Decision(True, 0.0, int((now - allow_at) / interval + 1e-9))


#: Keys kept before stale ones (whose tat is past: the same as absent) are swept.
_SWEEP_AT = 100_000


class LocalCounters:
    """GCRA state in this process: one float per key, no I/O."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._firsts: dict[str, float] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def take(self, key: str, interval: float, burst: int) -> Decision:
        return self.take_now(key, interval, burst)

    async def peek(self, key: str, interval: float, burst: int) -> Decision:
        now = time.monotonic()
        return within(self._tat.get(key, now), now, interval, burst)

    async def charge(self, key: str, n: int, interval: float) -> None:
        now = time.monotonic()
        self._tat[key] = max(self._tat.get(key, now), now) + n * interval

    async def first(self, name: str, ttl: float) -> bool:
        now = time.monotonic()
        if self._firsts.get(name, 0.0) > now:
            return False
        if len(self._firsts) >= _SWEEP_AT:
            self._firsts = {k: v for k, v in self._firsts.items() if v > now}
        self._firsts[name] = now + ttl
        return True

    def take_now(self, key: str, interval: float, burst: int) -> Decision:
        now = time.monotonic()
        new_tat, decision = gcra(self._tat.get(key, now), now, 1, interval, burst)
        if new_tat is not None:
            tat = self._tat
            if len(tat) >= _SWEEP_AT and key not in tat:
                for stale in [k for k, v in tat.items() if v <= now]:
                    del tat[stale]
            tat[key] = new_tat
        return decision


#: Seconds a replica may hold units it took from the shared counter before they lapse.
LEASE_TTL = 1.0
#: At most this share of a rule's burst, and this many seconds of its rate, is leased at once.
LEASE_BURST_SHARE = 0.25
LEASE_SECONDS = 0.05
#: Seconds a remote take may last before the counter counts as unreachable.
REMOTE_TIMEOUT = 1.0
#: Seconds the counter is not asked again after it failed.
DOWN_PAUSE = 1.0
#: Seconds a replica trusts the shared ``tat`` it read for a token limit.
PEEK_TTL = 0.25


def lease_cap(interval: float, burst: int) -> int:
    """The most units one replica takes at once for a rule: 1 for slow rules (each call asks the shared
    counter: exact), more for fast ones (a round trip per ``LEASE_SECONDS`` of traffic at most)."""
    return max(1, min(int(burst * LEASE_BURST_SHARE), math.ceil(LEASE_SECONDS / interval)))


class _Pool:
    __slots__ = ("expires", "inflight", "next_lease", "refused_until", "units")

    def __init__(self) -> None:
        self.units = 0
        self.refused_until = 0.0  # monotonic: the shared counter refused until then (its tat only grows)
        self.expires = 0.0
        self.next_lease = 1
        self.inflight: asyncio.Future[None] | None = None


class SharedCounters:
    """GCRA state in a NATS JetStream key-value bucket (``<prefix>_limits``), updated by compare-and-set,
    so the replicas of a cluster count together.

    Each replica takes units in leases: one at a time for a slow rule, up to ``lease_cap`` for a fast one
    (the lease doubles while callers queue behind it and halves when they do not), spends them locally and
    lets what it did not spend lapse after ``LEASE_TTL``. Units are only ever granted by the shared GCRA,
    so the cluster never admits more than the rule; leased units that lapse unspent are the error the
    other way (at most ``lease_cap`` per replica per ``LEASE_TTL``), and replicas' clocks must agree (NTP):
    a clock ``s`` seconds ahead admits up to ``s / interval`` calls early. Concurrent takes of one key on
    one replica share a single round trip.
    """

    def __init__(self, url: str, prefix: str, replica: str) -> None:
        self.url = url
        self.bucket = f"{prefix}_limits"
        self.replica = replica
        self._nc: Client | None = None
        self._kv: KeyValue | None = None
        self._pools: dict[str, _Pool] = {}
        self._down_until = 0.0  # monotonic: the counter failed; not asked again before then
        self._down_reason = ""
        self._seen: dict[str, tuple[float, float]] = {}  # token keys: (tat, monotonic time read)

    async def start(self) -> None:
        try:
            await self._connect()
        except CounterUnavailable as exc:
            log.warning("limits: %s; retried on demand", exc)

    async def _connect(self) -> None:
        nc = self._nc
        try:
            if nc is None:
                nc = Client()
                # Bounded: nats-py retries an unreachable server for ever on its own.
                await asyncio.wait_for(
                    nc.connect(
                        servers=[self.url],
                        name=f"fastagentic-limits {self.replica}",
                        connect_timeout=2,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=1,
                        allow_reconnect=True,
                        error_cb=self._on_error,
                    ),
                    timeout=REMOTE_TIMEOUT * 3,
                )
                self._nc = nc
            js = nc.jetstream(timeout=REMOTE_TIMEOUT)
            self._kv = await asyncio.wait_for(
                js.create_key_value(api.KeyValueConfig(bucket=self.bucket, history=1, ttl=MAX_PERIOD * 2)),
                timeout=REMOTE_TIMEOUT * 2,
            )
        except Exception as exc:
            if self._nc is None and nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            raise CounterUnavailable(
                f"the shared limit counter at {self.url} is unreachable: {_reason(exc)}"
            ) from exc

    async def _on_error(self, exc: Exception) -> None:
        log.debug("limits: NATS error: %s", _reason(exc))

    async def _drop(self) -> None:
        nc, self._nc, self._kv = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def close(self) -> None:
        await self._drop()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected and self._kv is not None

    async def take(self, key: str, interval: float, burst: int) -> Decision:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool()
        while True:
            now = time.monotonic()
            if pool.units > 0 and now < pool.expires:
                pool.units -= 1
                return Decision(True, 0.0, pool.units)
            if now < pool.refused_until:
                return Decision(False, pool.refused_until - now, 0)
            if pool.inflight is None:
                break
            # Someone is already asking for this key: wait for the lease, then spend from it.
            await asyncio.shield(pool.inflight)
            if pool.next_lease < lease_cap(interval, burst):
                pool.next_lease = min(pool.next_lease * 2, lease_cap(interval, burst))
        loop = asyncio.get_running_loop()
        pool.inflight = loop.create_future()
        try:
            lease = min(pool.next_lease, lease_cap(interval, burst))
            decision = await self._remote(key, lease, interval, burst)
            if not decision.allowed and lease > 1:
                lease = 1
                decision = await self._remote(key, 1, interval, burst)
            if decision.allowed:
                pool.units, pool.expires = lease - 1, time.monotonic() + LEASE_TTL
                if lease == pool.next_lease and lease > 1:
                    pool.next_lease = max(1, lease // 2)  # shrinks unless callers queue again
                return Decision(True, 0.0, decision.remaining + pool.units)
            pool.refused_until = time.monotonic() + decision.retry_after
            return decision
        finally:
            waiting, pool.inflight = pool.inflight, None
            waiting.set_result(None)

    async def peek(self, key: str, interval: float, burst: int) -> Decision:
        """Reads the shared ``tat`` at most once per ``PEEK_TTL`` per key: tokens other replicas charged
        within that time are the error bound (this replica's own charges count at once)."""
        seen = self._seen.get(key)
        now = time.monotonic()
        if seen is None or now - seen[1] > PEEK_TTL:
            if now < self._down_until:
                raise CounterUnavailable(self._down_reason)
            try:
                tat = await self._read(key)
            except CounterUnavailable as exc:
                self._down_until, self._down_reason = time.monotonic() + DOWN_PAUSE, str(exc)
                raise
            # Wall clock in the bucket, monotonic here: kept as an offset from now.
            seen = self._seen[key] = (time.monotonic() + (tat - time.time()), time.monotonic())
            if len(self._seen) > _SWEEP_AT:
                self._seen.clear()
        return within(seen[0], time.monotonic(), interval, burst)

    async def charge(self, key: str, n: int, interval: float) -> None:
        await self._update(key, lambda tat, now: max(tat, now) + n * interval)
        seen = self._seen.get(key)
        if seen is not None:
            now = time.monotonic()
            self._seen[key] = (max(seen[0], now) + n * interval, seen[1])

    async def first(self, name: str, ttl: float) -> bool:
        """``kv.create`` succeeds for one replica only; the key lapses with the bucket's TTL (MAX_PERIOD * 2),
        so ``name`` must carry its own period (a budget's day or month)."""
        kv = await self._bucket()
        try:
            async with asyncio.timeout(REMOTE_TIMEOUT):
                await kv.create(_kv_key("first\x1f" + name), b"1")
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise CounterUnavailable(
                f"the shared limit counter at {self.url} did not answer: {_reason(exc)}"
            ) from exc

    async def key_value(self) -> KeyValue:
        """The key-value bucket, connected first when needed (CounterUnavailable when it cannot be): for
        what else keeps shared state in it (``limits/slots.py``: concurrency claims)."""
        return await self._bucket()

    async def _bucket(self) -> KeyValue:
        if self._nc is not None and not self._nc.is_connected:
            raise CounterUnavailable(f"the shared limit counter at {self.url} is unreachable: reconnecting")
        if self._kv is None:
            await self._connect()
        assert self._kv is not None
        return self._kv

    async def _read(self, key: str) -> float:
        kv = await self._bucket()
        try:
            async with asyncio.timeout(REMOTE_TIMEOUT):
                try:
                    entry = await kv.get(_kv_key(key))
                except nats.js.errors.KeyNotFoundError:
                    return 0.0
                return float(entry.value or b"0")
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise CounterUnavailable(
                f"the shared limit counter at {self.url} did not answer: {_reason(exc)}"
            ) from exc

    async def _update(self, key: str, step: Callable[[float, float], float]) -> None:
        """Set ``key`` to ``step(tat, now)`` by compare-and-set (wall clock: replicas share it)."""
        kv = await self._bucket()
        name = _kv_key(key)
        try:
            async with asyncio.timeout(REMOTE_TIMEOUT * 2):
                for _ in range(16):
                    try:
                        entry = await kv.get(name)
                        tat, revision = float(entry.value or b"0"), entry.revision
                    except nats.js.errors.KeyNotFoundError:
                        tat, revision = 0.0, None
                    value = repr(step(tat, time.time())).encode()
                    try:
                        if revision is None:
                            await kv.create(name, value)
                        else:
                            await kv.update(name, value, last=revision)
                        return
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue
                raise CounterUnavailable("the shared limit counter is too contended (16 conflicting updates)")
        except CounterUnavailable:
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise CounterUnavailable(
                f"the shared limit counter at {self.url} did not answer: {_reason(exc)}"
            ) from exc

    async def _remote(self, key: str, n: int, interval: float, burst: int) -> Decision:
        now = time.monotonic()
        if now < self._down_until:
            raise CounterUnavailable(self._down_reason)
        try:
            return await self._remote_once(key, n, interval, burst)
        except CounterUnavailable as exc:
            # Not asked again for a second: an outage must not add a timeout to every call.
            self._down_until, self._down_reason = time.monotonic() + DOWN_PAUSE, str(exc)
            raise

    async def _remote_once(self, key: str, n: int, interval: float, burst: int) -> Decision:
        if self._nc is not None and not self._nc.is_connected:
            raise CounterUnavailable(f"the shared limit counter at {self.url} is unreachable: reconnecting")
        if self._kv is None:
            await self._connect()
        kv = self._kv
        assert kv is not None
        name = _kv_key(key)
        try:
            async with asyncio.timeout(REMOTE_TIMEOUT * 2):
                for _ in range(16):
                    try:
                        entry = await kv.get(name)
                        tat = float(entry.value or b"0")
                        revision = entry.revision
                    except nats.js.errors.KeyNotFoundError:
                        tat, revision = 0.0, None
                    now = time.time()
                    new_tat, decision = gcra(tat, now, n, interval, burst)
                    if new_tat is None:
                        return decision
                    value = repr(new_tat).encode()
                    try:
                        if revision is None:
                            await kv.create(name, value)
                        else:
                            await kv.update(name, value, last=revision)
                        return decision
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue  # another replica took units in between: read again
                raise CounterUnavailable("the shared limit counter is too contended (16 conflicting updates)")
        except CounterUnavailable:
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise CounterUnavailable(
                f"the shared limit counter at {self.url} did not answer: {_reason(exc)}"
            ) from exc


def _kv_key(key: str) -> str:
    # Keys hold principals' names and endpoint names: hashed into the key-value alphabet.
    return "k." + hashlib.sha256(key.encode()).hexdigest()[:40]


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
