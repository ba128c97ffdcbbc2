"""Limiter: the limit stage of every call, the same for REST, MCP and A2A (``RunService.submit``).

The rules are the ``limits`` setting plus the rates endpoints declare in the SDK (``rate_limit=``, one
counter per principal and endpoint). Every rule that applies to a call must admit it; the first that
does not refuses it with ``RateLimited`` (429 with ``Retry-After`` and the IETF ``RateLimit`` /
``RateLimit-Policy`` headers on REST, a JSON-RPC error with ``retryAfter`` on MCP and A2A). With no rule
for an endpoint a call costs one dictionary lookup.

Counters are local to the process on a single gateway and shared through NATS (``SharedCounters``) in a
cluster. When the shared counter is unreachable, ``limits_fail`` decides: ``open`` admits (and says so in
the log, rate-limited, and in ``/readyz``), ``closed`` refuses with 503.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from ..access.principal import Principal
from ..errors import RateLimited, Unavailable
from ..settings import Settings
from ..workers.registry import EndpointInfo
from .counters import Counters, CounterUnavailable, LocalCounters, SharedCounters
from .rules import LimitRule, Rate, default_burst, parse_rate

log = logging.getLogger("fastagentic.limits")


class _Applied:
    """A rule as it applies to one endpoint: its rate there and which key parts it counts."""

    __slots__ = ("burst", "interval", "name", "per", "period", "rate", "roles", "scopes")

    def __init__(
        self,
        rule_name: str,
        rate: Rate,
        burst: int,
        per: Iterable[str],
        roles: Iterable[str],
        scopes: Iterable[str],
    ) -> None:
        self.name = rule_name
        self.rate = rate.calls
        self.period = rate.period
        self.interval = rate.interval
        self.burst = min(burst or default_burst(rate), rate.calls)  # never more at once than a period allows
        self.per = tuple(per)
        self.roles = frozenset(roles)
        self.scopes = frozenset(scopes)

    def applies(self, principal: Principal) -> bool:
        if not self.roles and not self.scopes:
            return True
        return not self.roles.isdisjoint(principal.roles) or not self.scopes.isdisjoint(principal.scopes)

    def key(self, principal: Principal, endpoint: str) -> str:
        parts = [self.name]
        for part in self.per:
            if part == "principal":
                parts.append(f"p:{principal.tenant}/{principal.subject}")
            elif part == "tenant":
                parts.append(f"t:{principal.tenant}")
            else:
                parts.append(f"e:{endpoint}")
        return "\x1f".join(parts)


class Limiter:
    def __init__(self, settings: Settings, counters: Counters | None = None) -> None:
        self.fail_open = settings.limits_fail == "open"
        self.rules: list[LimitRule] = list(settings.limits)
        if counters is None:
            counters = (
                SharedCounters(
                    settings.limits_url or settings.bus_url, settings.bus_prefix, settings.replica_id
                )
                if settings.limits_url or settings.bus_url
                else LocalCounters()
            )
        self.counters = counters
        self._by_endpoint: dict[str, tuple[_Applied, ...]] = {}
        self._declared: dict[str, str | None] = {}
        self._outage_logged = 0.0
        self.outage = ""  # why the shared counter is unreachable, while it is (for /readyz)

    @property
    def shared(self) -> bool:
        return isinstance(self.counters, SharedCounters)

    async def start(self) -> None:
        await self.counters.start()

    async def close(self) -> None:
        await self.counters.close()

    def reload(self, rules: list[LimitRule]) -> None:
        """New rules, from now on (the counters of rules that stay keep their state)."""
        self.rules = list(rules)
        self._by_endpoint.clear()

    def _applied(self, info: EndpointInfo) -> tuple[_Applied, ...]:
        found = self._by_endpoint.get(info.name)
        if found is not None and self._declared.get(info.name) == info.rate_limit:
            return found
        applied: list[_Applied] = []
        for rule in self.rules:
            if rule.endpoints and info.name not in rule.endpoints:
                continue
            per = list(rule.per)
            override = rule.endpoint_rates.get(info.name)
            if override is not None and "endpoint" not in per:
                per.append("endpoint")  # a rate of its own is a counter of its own
            rate = parse_rate(override or rule.rate)
            applied.append(_Applied(rule.name, rate, rule.burst, per, rule.roles, rule.scopes))
        if info.rate_limit:
            rate = parse_rate(info.rate_limit)
            applied.append(_Applied(f"endpoint:{info.name}", rate, 0, ("principal", "endpoint"), (), ()))
        found = self._by_endpoint[info.name] = tuple(applied)
        self._declared[info.name] = info.rate_limit
        return found

    async def admit(self, principal: Principal, info: EndpointInfo) -> None:
        """Nothing when every rule for ``info`` admits a call by ``principal``; RateLimited otherwise."""
        applied = self._applied(info)
        if not applied:
            return
        for rule in applied:
            if not rule.applies(principal):
                continue
            try:
                decision = await self.counters.take(rule.key(principal, info.name), rule.interval, rule.burst)
            except CounterUnavailable as exc:
                self._outage(str(exc))
                if self.fail_open:
                    continue
                raise Unavailable(f"rate limits cannot be checked now: {exc}", retry_after=1) from None
            if self.outage:
                log.warning("limits: the shared counter answers again")
                self.outage = ""
            if not decision.allowed:
                raise RateLimited(
                    f"rate limit {rule.name!r} ({rule.rate} per {_period(rule.period)}) reached; "
                    f"retry in {math.ceil(decision.retry_after)} s",
                    rule=rule.name,
                    limit=rule.rate,
                    window=rule.period,
                    retry_after=decision.retry_after,
                )

    def _outage(self, reason: str) -> None:
        self.outage = reason
        now = time.monotonic()
        if now - self._outage_logged >= 10:
            self._outage_logged = now
            log.warning(
                "limits: %s; calls are %s until it answers",
                reason,
                "admitted unchecked (limits_fail = open)"
                if self.fail_open
                else "refused (limits_fail = closed)",
            )


def _period(seconds: float) -> str:
    for name, length in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds == length:
            return name
    return "second" if seconds == 1 else f"{seconds:g} s"
