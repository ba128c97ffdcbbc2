"""Budgets: what runs may spend, in tokens and money, per UTC day or month and per run (``budgets``).

Day and month budgets are checked when a call arrives, like the limits: once a key (its tenant, principal
and/or endpoint) has spent its budget, new runs are refused with ``BudgetExceeded`` naming the budget
and when it resets. What a key spent is the usage aggregates of the durable store (shared by replicas),
read at most every ``budget_refresh`` seconds per key, plus what this replica counted since: on one
gateway it is exact; in a cluster it misses at most what other replicas counted in the last
``budget_refresh`` seconds. Runs already running are not stopped by these budgets.

A run budget (``period = "run"``) is fixed on the run when it is accepted (``RunBudget``, stored with it):
the run that spends past it is stopped, failed with ``BudgetExceeded`` (its worker's task is cancelled).

Past ``alert_at`` of a budget, and again once it is spent, an alert goes out once per key and period
(once for the cluster: the shared counter decides who sends it): a log line, an audit record
(``budget.alert``, ``budget.exhausted``) and a POST to ``budget_webhook``. Past ``downgrade_at``, runs
are told to use ``downgrade_to`` (``ctx.model_hint`` in the SDK): a day or month budget sets the hint
runs start with, a run budget sends it to its run when the run crosses it.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime

import httpx
import msgspec

from ..access.audit import AuditLog
from ..access.principal import Principal
from ..errors import BudgetExceeded, StoreUnavailable, Unavailable
from ..runs.model import RunBudget
from ..telemetry.metrics import GatewayMetrics
from ..usage.accounting import UsageAccounting
from ..usage.model import Totals, UsageQuery, UsageReport
from ..workers.registry import EndpointInfo
from .counters import Counters, CounterUnavailable
from .rules import BudgetRule

log = logging.getLogger("fastagentic.budgets")

#: Keys whose spending is kept here before the oldest are dropped (read again from the store when needed).
MAX_ENTRIES = 100_000
#: Seconds a webhook POST may take.
WEBHOOK_TIMEOUT = 5.0


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """The body of a budget webhook POST (and what the log line and audit record say)."""

    type: str  # "budget.alert" (past alert_at) or "budget.exhausted"
    budget: str
    period: str  # "day" or "month"
    period_start: str  # the UTC day (YYYY-MM-DD) or month (YYYY-MM) it is for
    tenant: str | None
    principal: str | None
    endpoint: str | None
    spent_tokens: int
    spent_cost: float
    limit_tokens: int
    limit_cost: float
    share: float  # spent / limit (the larger of tokens and cost)
    at: float  # Unix time


def period_bounds(period: str, now: float) -> tuple[str, str, float]:
    """(its name, its first UTC day, when it ends) for the ``day`` or ``month`` holding ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start.strftime("%Y-%m-%d"), start.timestamp() + 86400
    days = calendar.monthrange(moment.year, moment.month)[1]
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m"), start.strftime("%Y-%m-%d"), start.timestamp() + days * 86400


def share(rule: BudgetRule | RunBudget, totals: Totals) -> float:
    """How much of the budget ``totals`` spent: the larger of the token and the money share."""
    tokens = totals.input_tokens + totals.output_tokens
    found = 0.0
    if rule.tokens:
        found = tokens / rule.tokens
    if rule.cost:
        found = max(found, totals.cost / rule.cost)
    return found


def _totals_of(report: UsageReport) -> Totals:
    total = Totals()
    for model in report.models:
        total = total + model.totals
    return total


class _Spend:
    """What one key spent in one period, as far as this replica knows."""

    __slots__ = ("alerted", "period", "read_at", "reading", "totals")

    def __init__(self, period: str) -> None:
        self.period = period
        self.totals = Totals()
        self.read_at = -1e18  # monotonic
        self.reading: asyncio.Future[None] | None = None
        self.alerted = 0  # 1: the soft alert went out (from here or elsewhere); 2: the exhausted one too


class Budgets:
    def __init__(
        self,
        rules: list[BudgetRule],
        usage: UsageAccounting,
        counters: Counters,
        *,
        refresh: float = 5.0,
        webhook: str = "",
        fail_open: bool = True,
    ) -> None:
        self.usage = usage
        self.counters = counters
        self.refresh = refresh
        self.webhook = webhook
        self.fail_open = fail_open
        self.audit: AuditLog | None = None
        self.metrics: GatewayMetrics | None = None
        self._entries: dict[str, _Spend] = {}
        self._client: httpx.AsyncClient | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.reload(rules)

    def reload(self, rules: list[BudgetRule]) -> None:
        self.rules = list(rules)
        self._periodic = [rule for rule in self.rules if rule.period != "run"]
        self._per_run = [rule for rule in self.rules if rule.period == "run"]
        self._entries.clear()

    @property
    def downgrades(self) -> bool:
        """Whether some budget tells workers to downgrade (workers that cannot hear it are named)."""
        return any(rule.downgrade_to for rule in self.rules)

    async def start(self) -> None:
        if self.webhook:
            self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT)

    async def close(self) -> None:
        for task in list(self._sending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, WEBHOOK_TIMEOUT)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ calls

    async def admit(self, principal: Principal, info: EndpointInfo) -> RunBudget | None:
        """The run budget of a call by ``principal`` to ``info`` (None when no budget concerns it);
        BudgetExceeded when a day or month budget that applies is spent."""
        if not self.rules:
            return None
        hint = ""
        now = time.time()
        for rule in self._periodic:
            if not _applies(rule, principal, info.name):
                continue
            entry = await self._spend(rule, principal.tenant, principal.subject, info.name, now)
            if entry is None:
                continue
            spent = share(rule, entry.totals)
            if spent >= 1:
                if self.metrics is not None:
                    self.metrics.budget_refused.inc(rule.name)
                _, _, ends = period_bounds(rule.period, now)
                raise BudgetExceeded(
                    f"budget {rule.name!r} ({_limit_text(rule)} per {rule.period}) is spent; "
                    f"it resets at {datetime.fromtimestamp(ends, UTC).isoformat(timespec='seconds')}",
                    budget=rule.name,
                    resets_at=ends,
                    now=now,
                )
            if not hint and rule.downgrade_at and spent >= rule.downgrade_at:
                hint = rule.downgrade_to
        run_rule = next((rule for rule in self._per_run if _applies(rule, principal, info.name)), None)
        if run_rule is None and not hint:
            return None
        if run_rule is None:
            return RunBudget(hint=hint)
        return RunBudget(
            name=run_rule.name,
            tokens=run_rule.tokens,
            cost=run_rule.cost,
            downgrade_at=run_rule.downgrade_at,
            downgrade_to=run_rule.downgrade_to,
            hint=hint,
        )

    async def _spend(
        self, rule: BudgetRule, tenant: str, subject: str, endpoint: str, now: float
    ) -> _Spend | None:
        """What the key of ``rule`` for this call spent in its current period, read from the store when
        not known or older than ``refresh`` seconds. None when it cannot be known and budgets fail open."""
        period, first_day, _ = period_bounds(rule.period, now)
        key = _key(rule, tenant, subject, endpoint)
        entry = self._entries.get(key)
        if entry is None or entry.period != period:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            entry = self._entries[key] = _Spend(period)
        if time.monotonic() - entry.read_at <= self.refresh:
            return entry
        if entry.reading is not None:
            if entry.read_at > 0:
                return entry  # someone is reading it again: the last value will do meanwhile
            await asyncio.shield(entry.reading)
            return entry if entry.read_at > 0 else self._unknown(rule)
        entry.reading = asyncio.get_running_loop().create_future()
        try:
            query = UsageQuery(
                tenant=tenant if "tenant" in rule.per or "principal" in rule.per else None,
                principal=subject if "principal" in rule.per else None,
                endpoint=endpoint if "endpoint" in rule.per else None,
                since=first_day,
                group_by=(),
                limit=1,
            )
            rows = await self.usage.usage(query)
            entry.totals = rows[0].totals if rows else Totals()
            entry.read_at = time.monotonic()
        except StoreUnavailable as exc:
            log.warning("budget %r cannot be checked: %s", rule.name, exc.message)
            if entry.read_at < 0:
                return self._unknown(rule)
        finally:
            waiting, entry.reading = entry.reading, None
            waiting.set_result(None)
        self._check_alerts(rule, key, entry, tenant, subject, endpoint)
        return entry

    def _unknown(self, rule: BudgetRule) -> _Spend | None:
        if self.fail_open:
            return None
        raise Unavailable(
            f"budget {rule.name!r} cannot be checked now: the run store is unreachable", retry_after=1
        )

    # ------------------------------------------------------------------ usage

    def spent(self, report: UsageReport) -> None:
        """Add a counted usage report to the day and month budgets this replica follows."""
        if not self._periodic:
            return
        added = _totals_of(report)
        now = time.time()
        for rule in self._periodic:
            if rule.endpoints and report.endpoint not in rule.endpoints:
                continue
            key = _key(rule, report.tenant, report.principal, report.endpoint)
            entry = self._entries.get(key)
            if entry is None or entry.period != period_bounds(rule.period, now)[0]:
                continue  # nobody it applies to called here lately: read from the store when one does
            entry.totals = entry.totals + added
            self._check_alerts(rule, key, entry, report.tenant, report.principal, report.endpoint)

    def over(self, budget: RunBudget, totals: Totals) -> str | None:
        """Why a run with ``budget`` that spent ``totals`` must stop, or None."""
        if not budget.name or share(budget, totals) < 1:
            return None
        tokens = totals.input_tokens + totals.output_tokens
        return (
            f"the run spent {tokens} tokens and {totals.cost:g} (currency of the price table), past its "
            f"budget {budget.name!r} of {_limit_text(budget)} per run"
        )

    def hint(self, budget: RunBudget, totals: Totals) -> str:
        """The model hint for a run with ``budget`` that spent ``totals``."""
        if budget.downgrade_at and share(budget, totals) >= budget.downgrade_at:
            return budget.downgrade_to
        return budget.hint

    # ------------------------------------------------------------------ alerts

    def _check_alerts(
        self, rule: BudgetRule, key: str, entry: _Spend, tenant: str, subject: str, endpoint: str
    ) -> None:
        spent = share(rule, entry.totals)
        level = 2 if spent >= 1 else 1 if rule.alert_at and spent >= rule.alert_at else 0
        if level <= entry.alerted:
            return
        entry.alerted = level
        alert = Alert(
            type="budget.exhausted" if level == 2 else "budget.alert",
            budget=rule.name,
            period=rule.period,
            period_start=entry.period,
            tenant=tenant if "tenant" in rule.per or "principal" in rule.per else None,
            principal=subject if "principal" in rule.per else None,
            endpoint=endpoint if "endpoint" in rule.per else None,
            spent_tokens=entry.totals.input_tokens + entry.totals.output_tokens,
            spent_cost=entry.totals.cost,
            limit_tokens=rule.tokens,
            limit_cost=rule.cost,
            share=round(spent, 4),
            at=time.time(),
        )
        self._spawn(self._alert(f"{key}\x1f{entry.period}\x1f{alert.type}", alert))

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _alert(self, name: str, alert: Alert) -> None:
        try:
            if not await self.counters.first(name, 40 * 86400):
                return  # another replica sent it
        except CounterUnavailable as exc:
            log.warning("budget alerts: the shared counter is unreachable (%s); sending from here", exc)
        whose = ", ".join(
            f"{part} {value}"
            for part, value in (
                ("tenant", alert.tenant),
                ("principal", alert.principal),
                ("endpoint", alert.endpoint),
            )
            if value is not None
        )
        text = (
            f"budget {alert.budget!r} ({whose}, {alert.period} {alert.period_start}): "
            f"{alert.share:.0%} spent ({alert.spent_tokens} tokens, cost {alert.spent_cost:g})"
        )
        log.warning("%s: %s", alert.type, text)
        if self.metrics is not None:
            self.metrics.budget_alerts.inc(alert.budget, alert.type)
        if self.audit is not None:
            self.audit.record(
                alert.type,
                subject=alert.principal or "",
                tenant=alert.tenant or "",
                protocol="gateway",
                target=alert.budget,
                detail=text,
            )
        if self._client is not None:
            try:
                response = await self._client.post(
                    self.webhook,
                    content=msgspec.json.encode(alert),
                    headers={"content-type": "application/json"},
                )
                if response.status_code >= 300:
                    log.warning("budget webhook answered %d to %s", response.status_code, alert.type)
            except httpx.HTTPError as exc:
                log.warning("budget webhook failed for %s: %s", alert.type, exc)


def _applies(rule: BudgetRule, principal: Principal, endpoint: str) -> bool:
    if rule.endpoints and endpoint not in rule.endpoints:
        return False
    if not rule.roles and not rule.scopes:
        return True
    return not set(rule.roles).isdisjoint(principal.roles) or not set(rule.scopes).isdisjoint(
        principal.scopes
    )


def _key(rule: BudgetRule, tenant: str, subject: str, endpoint: str) -> str:
    parts = [rule.name]
    for part in rule.per:
        if part == "principal":
            parts.append(f"p:{tenant}/{subject}")
        elif part == "tenant":
            parts.append(f"t:{tenant}")
        else:
            parts.append(f"e:{endpoint}")
    return "\x1f".join(parts)


def _limit_text(rule: BudgetRule | RunBudget) -> str:
    caps = []
    if rule.tokens:
        caps.append(f"{rule.tokens} tokens")
    if rule.cost:
        caps.append(f"{rule.cost:g} in cost")
    return " and ".join(caps)
