"""Limiter: the limit stage of every call, the same for REST, MCP and A2A (``RunService.submit``).

The rules are the ``limits`` setting plus the rates endpoints declare in the SDK (``rate_limit=``, one
counter per principal and endpoint). Every rule that applies to a call must admit it; the first that
does not refuses it with ``RateLimited`` (429 with ``Retry-After`` and the IETF ``RateLimit`` /
``RateLimit-Policy`` headers on REST, a JSON-RPC error with ``retryAfter`` on MCP and A2A). With no rule
for an endpoint a call costs one dictionary lookup.

Counters are local to the process on a single gateway and shared through NATS (``SharedCounters``) in a
cluster. When the shared counter is unreachable, ``limits_fail`` decides: ``open`` admits (and says so in
the log, rate-limited, and in ``/readyz``), ``closed`` refuses with 503.

Token rules (``unit = "tokens"``, TPM) admit a call while its key has not spent more tokens than its rate
allows (plus the burst); the tokens runs report are charged to every token rule whose endpoints match
(``charge``), whoever the caller: the rule's roles and scopes decide whose calls it refuses.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from ..access.principal import Principal
from ..errors import RateLimited, Unavailable
from ..settings import Settings
from ..telemetry.metrics import GatewayMetrics
from ..workers.registry import EndpointInfo
from .counters import Counters, CounterUnavailable, LocalCounters, SharedCounters
from .rules import LimitRule, Rate, default_burst, parse_rate

log = logging.getLogger("fastagentic.limits")


class _Applied:
    """A rule as it applies to one endpoint: its rate there and which key parts it counts."""

    __slots__ = ("burst", "interval", "name", "per", "period", "rate", "roles", "scopes", "tokens")

    def __init__(
        self,
        rule_name: str,
        rate: Rate,
        burst: int,
        per: Iterable[str],
        roles: Iterable[str],
        scopes: Iterable[str],
        tokens: bool = False,
    ) -> None:
        self.name = rule_name
        self.tokens = tokens
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

    def key(self, tenant: str, subject: str, endpoint: str) -> str:
        parts = [self.name]
        for part in self.per:
            if part == "principal":
                parts.append(f"p:{tenant}/{subject}")
            elif part == "tenant":
                parts.append(f"t:{tenant}")
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
        self._token_rules: dict[str, tuple[_Applied, ...]] = {}
        self._declared: dict[str, str | None] = {}
        self._outage_logged = 0.0
        #: where refusals are counted (set by the gateway)
        self.metrics: GatewayMetrics | None = None
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
        self._token_rules.clear()

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
            applied.append(
                _Applied(rule.name, rate, rule.burst, per, rule.roles, rule.scopes, rule.unit == "tokens")
            )
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
            key = rule.key(principal.tenant, principal.subject, info.name)
            try:
                if rule.tokens:
                    decision = await self.counters.peek(key, rule.interval, rule.burst)
                else:
                    decision = await self.counters.take(key, rule.interval, rule.burst)
            except CounterUnavailable as exc:
                self._outage(str(exc))
                if self.fail_open:
                    continue
                raise Unavailable(f"rate limits cannot be checked now: {exc}", retry_after=1) from None
            if self.outage:
                log.warning("limits: the shared counter answers again")
                self.outage = ""
            if not decision.allowed:
                if self.metrics is not None:
                    self.metrics.rate_limited.inc(rule.name)
                raise RateLimited(
                    f"rate limit {rule.name!r} ({rule.rate}{' tokens' if rule.tokens else ''} per "
                    f"{_period(rule.period)}) reached; "
                    f"retry in {math.ceil(decision.retry_after)} s",
                    rule=rule.name,
                    limit=rule.rate,
                    window=rule.period,
                    retry_after=decision.retry_after,
                )

    def _tokens_for(self, endpoint: str) -> tuple[_Applied, ...]:
        found = self._token_rules.get(endpoint)
        if found is None:
            found = self._token_rules[endpoint] = tuple(
                _Applied(
                    rule.name,
                    parse_rate(rule.endpoint_rates.get(endpoint) or rule.rate),
                    rule.burst,
                    [*rule.per, "endpoint"]
                    if endpoint in rule.endpoint_rates and "endpoint" not in rule.per
                    else rule.per,
                    rule.roles,
                    rule.scopes,
                    True,
                )
                for rule in self.rules
                if rule.unit == "tokens" and (not rule.endpoints or endpoint in rule.endpoints)
            )
        return found

    async def charge(self, tenant: str, subject: str, endpoint: str, tokens: int) -> None:
        """Charge ``tokens`` a run of ``endpoint`` by ``subject`` of ``tenant`` reported to the token rules.
        While the shared counter is unreachable the charge is lost (logged): the limit under-counts."""
        if tokens <= 0:
            return
        for rule in self._tokens_for(endpoint):
            try:
                await self.counters.charge(rule.key(tenant, subject, endpoint), tokens, rule.interval)
            except CounterUnavailable as exc:
                self._outage(str(exc))

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
