"""Budgets and token limits: periods, shares, the day/month refusal (per key, per plan), the run budget a
run is given, model hints, alerts sent once per key and period, the token (TPM) counters in process and
shared through NATS, and the rules' validation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from fastagentic_gateway.access.principal import Principal
from fastagentic_gateway.errors import BudgetExceeded, RateLimited
from fastagentic_gateway.limits.budgets import Budgets, period_bounds, share
from fastagentic_gateway.limits.counters import LocalCounters, SharedCounters
from fastagentic_gateway.limits.limiter import Limiter
from fastagentic_gateway.limits.rules import BudgetRule, LimitRule
from fastagentic_gateway.runs.model import RunBudget
from fastagentic_gateway.settings import load
from fastagentic_gateway.store.memory import MemoryRunStore
from fastagentic_gateway.store.sqlite import SQLiteRunStore
from fastagentic_gateway.usage.accounting import UsageAccounting
from fastagentic_gateway.usage.model import ModelUsage, Totals, UsageReport
from tests.unit.test_limiter import _info, nats_prefix

__all__ = ["nats_prefix"]

ALICE = Principal(subject="alice", tenant="acme")
BOB = Principal(subject="bob", tenant="acme")
FREE = Principal(subject="fay", tenant="acme", roles=frozenset({"free"}))
ECHO = _info("echo")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def report(
    tokens: int, *, principal: str = "alice", endpoint: str = "echo", cost: float = 0.0
) -> UsageReport:
    return UsageReport(
        run_id="run_x",
        seq=1,
        ts=time.time(),
        tenant="acme",
        principal=principal,
        endpoint=endpoint,
        models=(ModelUsage(model="m", totals=Totals(input_tokens=tokens, cost=cost, calls=1)),),
    )


@pytest.fixture
async def accounting(tmp_path: Path) -> AsyncIterator[UsageAccounting]:
    durable = SQLiteRunStore(str(tmp_path / "runs.sqlite3"))
    await durable.start()
    yield UsageAccounting({}, durable, MemoryRunStore())
    await durable.close()


def budgets(accounting: UsageAccounting, *rules: dict[str, object], refresh: float = 60.0) -> Budgets:
    parsed = [msgspec.convert(rule, BudgetRule) for rule in rules]
    return Budgets(parsed, accounting, LocalCounters(), refresh=refresh)


# ------------------------------------------------------------------------------ periods and shares


def test_periods_are_utc_days_and_months() -> None:
    assert period_bounds("day", ts("2026-12-07T23:59:59")) == (
        "2026-12-07",
        "2026-12-07",
        ts("2026-12-08T00:00"),
    )
    assert period_bounds("month", ts("2026-12-31T12:00")) == ("2026-12", "2026-12-01", ts("2027-01-01T00:00"))
    assert period_bounds("month", ts("2028-02-10T00:00")) == ("2028-02", "2028-02-01", ts("2028-03-01T00:00"))


def test_the_share_spent_is_the_larger_of_tokens_and_money() -> None:
    rule = BudgetRule(name="b", period="day", tokens=1000, cost=2.0)
    assert share(rule, Totals(input_tokens=300, output_tokens=200, cost=0.5)) == 0.5
    assert share(rule, Totals(input_tokens=10, cost=1.5)) == 0.75
    assert share(BudgetRule(name="c", period="day", cost=1.0), Totals(input_tokens=10**9)) == 0.0


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "b", "period": "week", "tokens": 1}, "period must be day, month or run"),
        ({"name": "b", "period": "day"}, "set tokens, cost or both"),
        ({"name": "b", "period": "day", "tokens": 1, "per": ["team"]}, "per must list some of"),
        (
            {"name": "b", "period": "day", "tokens": 1, "downgrade_at": 0.5},
            "downgrade_at and downgrade_to go together",
        ),
        ({"name": "b c", "period": "day", "tokens": 1}, "1-64 letters"),
        ({"name": "b", "period": "day", "tokens": -1}, "Expected `int` >= 0"),
        ({"name": "b", "period": "day", "tokens": 1, "alert_at": 1.5}, "Expected `float` <= 1"),
    ],
)
def test_bad_budgets_are_refused_precisely(rule: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, msgspec.ValidationError), match=message):
        msgspec.convert(rule, BudgetRule)


def test_settings_refuse_two_budgets_of_one_name_and_a_webhook_that_is_not_http() -> None:
    rule = {"name": "b", "period": "day", "tokens": 1}
    with pytest.raises(Exception, match="each budget name may be used once"):
        load(environ={}, budgets=[rule, rule])
    with pytest.raises(Exception, match="budget_webhook must be empty or an http"):
        load(environ={}, budget_webhook="ftp://example.com")


# ------------------------------------------------------------------------------ day and month budgets


async def test_no_budget_costs_nothing(accounting: UsageAccounting) -> None:
    assert await budgets(accounting).admit(ALICE, ECHO) is None


async def test_a_spent_day_budget_refuses_with_its_name_and_reset(accounting: UsageAccounting) -> None:
    book = budgets(accounting, {"name": "daily", "period": "day", "per": ["principal"], "tokens": 100})
    await accounting.durable.add_usage(report(60), run=False)
    assert await book.admit(ALICE, ECHO) is None
    book.spent(report(40))  # counted here: known at once, without reading the store again
    with pytest.raises(BudgetExceeded) as refused:
        await book.admit(ALICE, ECHO)
    assert refused.value.budget == "daily" and refused.value.status == 429
    assert "budget 'daily' (100 tokens per day) is spent" in refused.value.message
    _, _, ends = period_bounds("day", time.time())
    assert refused.value.extra["resets_at"] == int(ends)
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 86400
    # Per principal: bob has his own.
    assert await book.admit(BOB, ECHO) is None


async def test_a_tenant_budget_adds_up_its_principals_and_reads_the_store_again(
    accounting: UsageAccounting,
) -> None:
    book = budgets(accounting, {"name": "acme", "period": "month", "cost": 1.0}, refresh=0.05)
    assert await book.admit(ALICE, ECHO) is None
    # Another replica counted these: seen once the refresh interval passed.
    await accounting.durable.add_usage(report(1, principal="alice", cost=0.6), run=False)
    await accounting.durable.add_usage(report(1, principal="bob", cost=0.5), run=False)
    await asyncio.sleep(0.06)
    with pytest.raises(BudgetExceeded, match="1 in cost per month"):
        await book.admit(BOB, ECHO)


async def test_a_plan_budget_applies_to_its_role_only(accounting: UsageAccounting) -> None:
    book = budgets(
        accounting, {"name": "free", "period": "day", "per": ["principal"], "tokens": 10, "roles": ["free"]}
    )
    await accounting.durable.add_usage(report(50, principal="fay"), run=False)
    await accounting.durable.add_usage(report(50, principal="alice"), run=False)
    with pytest.raises(BudgetExceeded):
        await book.admit(FREE, ECHO)
    assert await book.admit(ALICE, ECHO) is None


async def test_past_downgrade_at_new_runs_start_with_the_hint(accounting: UsageAccounting) -> None:
    rule = {"name": "d", "period": "day", "tokens": 100, "downgrade_at": 0.5, "downgrade_to": "mini"}
    book = budgets(accounting, rule)
    assert await book.admit(ALICE, ECHO) is None
    book.spent(report(50))
    assert await book.admit(ALICE, ECHO) == RunBudget(hint="mini")


async def test_alerts_go_out_once_per_key_and_period(
    accounting: UsageAccounting, caplog: pytest.LogCaptureFixture
) -> None:
    book = budgets(accounting, {"name": "a", "period": "day", "tokens": 100, "alert_at": 0.5})
    await book.admit(ALICE, ECHO)
    with caplog.at_level(logging.WARNING, "fastagentic.budgets"):
        for _ in range(3):
            book.spent(report(30))  # 30, 60, 90: past half once
        book.spent(report(30))  # 120: spent
        book.spent(report(30))
        await book.close()  # waits for the alerts on their way
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0] for line in lines] == ["budget.alert", "budget.exhausted"], lines
    assert "60% spent (60 tokens" in lines[0] and "120% spent" in lines[1]


async def test_usage_of_endpoints_a_budget_does_not_cover_is_not_counted_in_it(
    accounting: UsageAccounting,
) -> None:
    book = budgets(accounting, {"name": "e", "period": "day", "tokens": 10, "endpoints": ["echo"]})
    await book.admit(ALICE, ECHO)
    book.spent(report(100, endpoint="other"))
    assert await book.admit(ALICE, ECHO) is None


# ------------------------------------------------------------------------------ run budgets


async def test_a_run_gets_the_first_run_budget_that_applies(accounting: UsageAccounting) -> None:
    book = budgets(
        accounting,
        {"name": "free-run", "period": "run", "cost": 0.1, "roles": ["free"]},
        {"name": "any-run", "period": "run", "tokens": 5000, "downgrade_at": 0.8, "downgrade_to": "mini"},
    )
    assert await book.admit(FREE, ECHO) == RunBudget(name="free-run", cost=0.1)
    given = await book.admit(ALICE, ECHO)
    assert given == RunBudget(name="any-run", tokens=5000, downgrade_at=0.8, downgrade_to="mini")
    assert given is not None
    assert book.over(given, Totals(input_tokens=4000)) is None
    assert book.hint(given, Totals(input_tokens=3999)) == ""
    assert book.hint(given, Totals(input_tokens=4000)) == "mini"
    reason = book.over(given, Totals(input_tokens=4000, output_tokens=1000))
    assert reason is not None and "past its budget 'any-run' of 5000 tokens per run" in reason


# ------------------------------------------------------------------------------ token limits


def tpm(rate: str = "600/minute", burst: int = 100, **more: object) -> LimitRule:
    return msgspec.convert({"name": "tpm", "rate": rate, "burst": burst, "unit": "tokens", **more}, LimitRule)


async def test_local_token_counters_admit_until_the_spend_passes_the_burst() -> None:
    counters = LocalCounters()
    interval = 0.1  # 600 a minute
    assert (await counters.peek("k", interval, 100)).allowed
    await counters.charge("k", 90, interval)
    assert (await counters.peek("k", interval, 100)).allowed  # peeking takes nothing
    assert (await counters.peek("k", interval, 100)).allowed
    await counters.charge("k", 1000, interval)
    refused = await counters.peek("k", interval, 100)
    assert not refused.allowed and 98 <= refused.retry_after <= 99  # (1090 - 100) tokens at 10 a second


async def test_the_limiter_charges_token_rules_and_refuses_the_overspent_key() -> None:
    limiter = Limiter(load(environ={}, limits=[tpm(per=["tenant"])]))
    await limiter.admit(ALICE, ECHO)
    await limiter.charge("acme", "alice", "echo", 5000)
    with pytest.raises(RateLimited, match="600 tokens per minute") as refused:
        await limiter.admit(BOB, ECHO)  # the same tenant
    assert refused.value.rule == "tpm"
    await limiter.admit(Principal(subject="carl", tenant="globex"), ECHO)


async def test_calls_are_not_counted_by_a_token_rule() -> None:
    limiter = Limiter(load(environ={}, limits=[tpm(rate="1/minute", burst=1)]))
    for _ in range(5):
        await limiter.admit(ALICE, ECHO)


async def test_shared_token_counters_see_each_others_charges(nats_prefix: tuple[str, str]) -> None:
    url, prefix = nats_prefix
    a, b = SharedCounters(url, prefix, "a"), SharedCounters(url, prefix, "b")
    await a.start()
    await b.start()
    try:
        interval = 0.1
        assert (await b.peek("t", interval, 100)).allowed
        await a.charge("t", 1000, interval)
        await a.charge("t", 1000, interval)  # compare-and-set: both count
        assert not (await a.peek("t", interval, 100)).allowed  # its own charge, at once
        await asyncio.sleep(0.3)  # past what b trusts of its last read
        refused = await b.peek("t", interval, 100)
        assert not refused.allowed and 185 <= refused.retry_after <= 190
        # Alerts: one replica sends each.
        assert [await a.first("alert-1", 60), await b.first("alert-1", 60), await b.first("alert-2", 60)] == [
            True,
            False,
            True,
        ]
    finally:
        await a.close()
        await b.close()
