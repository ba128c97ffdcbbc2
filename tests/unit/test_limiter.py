"""The limit stage: rate parsing, GCRA, the in-process and the shared (NATS key-value) counters, the
limiter's rules (endpoints, tiers, SDK-declared rates) and its behaviour when the shared counter is down."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator

import pytest

from fastagentic.rates import parse_rate
from fastagentic_gateway.access.principal import Principal
from fastagentic_gateway.errors import RateLimited, Unavailable
from fastagentic_gateway.limits.counters import (
    CounterUnavailable,
    LocalCounters,
    SharedCounters,
    gcra,
    lease_cap,
)
from fastagentic_gateway.limits.limiter import Limiter
from fastagentic_gateway.runs.model import EndpointKind
from fastagentic_gateway.settings import load
from fastagentic_gateway.workers.registry import EndpointInfo
from tests.services import delete_nats_state, require_nats

# ------------------------------------------------------------------------------ rates


@pytest.mark.parametrize(
    ("text", "calls", "period"),
    [
        ("60/minute", 60, 60.0),
        ("10/second", 10, 1.0),
        (" 5 / hours ", 5, 3600.0),
        ("100/10minutes", 100, 600.0),
    ],
)
def test_rates_parse(text: str, calls: int, period: float) -> None:
    rate = parse_rate(text)
    assert (rate.calls, rate.period) == (calls, period)


@pytest.mark.parametrize(
    "text", ["", "60", "60/fortnight", "0/minute", "-1/minute", "1/0minute", "5/40days", "x/s"]
)
def test_bad_rates_are_refused_with_the_way_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


# ------------------------------------------------------------------------------ GCRA


def test_gcra_admits_the_burst_then_the_rate() -> None:
    interval, burst, tat, now = 1.0, 3, 0.0, 1000.0
    admitted = []
    for _ in range(5):
        new_tat, decision = gcra(tat, now, 1, interval, burst)
        admitted.append(decision.allowed)
        if new_tat is not None:
            tat = new_tat
    assert admitted == [True, True, True, False, False]
    _, refused = gcra(tat, now, 1, interval, burst)
    assert refused.retry_after == pytest.approx(1.0)
    assert gcra(tat, now + 1.0, 1, interval, burst)[1].allowed  # one interval later: one more


def test_gcra_never_admits_more_than_burst_plus_the_rate_over_any_window() -> None:
    # 100 calls a second offered for 10 s against 10/second with bursts of 5: at most 5 + 10 per second
    # over any one-second window, and 5 + 100 over the ten seconds (no 2x at a window's edge).
    interval, burst, tat = 0.1, 5, 0.0
    admitted: list[float] = []
    for step in range(1000):
        now = step * 0.01
        new_tat, _ = gcra(tat, now, 1, interval, burst)
        if new_tat is not None:
            tat = new_tat
            admitted.append(now)
    assert len(admitted) <= 5 + 100 + 1
    for start in range(0, 900):
        window = [t for t in admitted if start * 0.01 <= t < start * 0.01 + 1.0]
        assert len(window) <= burst + 10 + 1


def test_remaining_counts_down_within_the_burst() -> None:
    tat, now = 0.0, 50.0
    seen = []
    for _ in range(4):
        new_tat, decision = gcra(tat, now, 1, 1.0, 4)
        assert new_tat is not None
        tat = new_tat
        seen.append(decision.remaining)
    assert seen == [3, 2, 1, 0]


def test_lease_size_is_one_for_slow_rules_and_bounded_for_fast_ones() -> None:
    assert lease_cap(parse_rate("60/minute").interval, 6) == 1
    assert lease_cap(parse_rate("10/second").interval, 1) == 1
    fast = lease_cap(parse_rate("100000/second").interval, 10000)
    assert 1 < fast <= 10000 // 4 and fast <= 100000 * 0.05 + 1


async def test_local_counters_count_keys_apart() -> None:
    counters = LocalCounters()
    assert [(await counters.take("a", 60.0, 2)).allowed for _ in range(3)] == [True, True, False]
    assert (await counters.take("b", 60.0, 2)).allowed


# ------------------------------------------------------------------------------ shared counters (NATS)


@pytest.fixture
async def nats_prefix() -> AsyncIterator[tuple[str, str]]:
    url = require_nats()
    prefix = f"fatest_{secrets.token_hex(4)}"
    yield url, prefix
    await delete_nats_state(url, buckets=(f"{prefix}_limits",))


async def test_two_replicas_share_one_slow_limit_exactly(nats_prefix: tuple[str, str]) -> None:
    url, prefix = nats_prefix
    a, b = SharedCounters(url, prefix, "a"), SharedCounters(url, prefix, "b")
    await a.start()
    await b.start()
    try:
        interval = parse_rate("10/minute").interval
        decisions = [await (a if i % 2 else b).take("k", interval, 5) for i in range(8)]
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
        assert 0 < decisions[-1].retry_after <= interval
        # Concurrent callers on both replicas: still exactly the burst of another key.
        together = await asyncio.gather(*[(a if i % 2 else b).take("k2", interval, 5) for i in range(20)])
        assert sum(d.allowed for d in together) == 5
    finally:
        await a.close()
        await b.close()


async def test_two_replicas_under_a_fast_limit_stay_within_the_stated_bound(
    nats_prefix: tuple[str, str],
) -> None:
    url, prefix = nats_prefix
    a, b = SharedCounters(url, prefix, "a"), SharedCounters(url, prefix, "b")
    await a.start()
    await b.start()
    rate, burst = parse_rate("200/second"), 20
    try:
        loop = asyncio.get_running_loop()
        admitted = 0
        started = loop.time()
        while loop.time() - started < 1.5:
            batch = await asyncio.gather(
                *[c.take("fast", rate.interval, burst) for c in (a, b) for _ in range(10)]
            )
            admitted += sum(d.allowed for d in batch)
        elapsed = loop.time() - started
        # Never above the rule (burst + rate x time); leases that lapse unspent may leave some unused.
        assert admitted <= burst + rate.calls * elapsed + 2
        assert admitted >= 0.5 * rate.calls * elapsed
    finally:
        await a.close()
        await b.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_shared_counter_is_an_error_not_a_hang() -> None:
    counters = SharedCounters(f"nats://127.0.0.1:{_closed_port()}", "fatest", "a")
    await counters.start()  # logs, does not raise: the gateway starts anyway
    with pytest.raises(CounterUnavailable, match="unreachable"):
        await counters.take("k", 1.0, 1)
    await counters.close()


# ------------------------------------------------------------------------------ the limiter


def _info(name: str = "echo", rate_limit: str | None = None) -> EndpointInfo:
    return EndpointInfo(
        name=name,
        kind=EndpointKind.AGENT,
        description="",
        input_schema={},
        output_schema={},
        streams=False,
        durable=False,
        scopes=[],
        tags=[],
        examples=[],
        rate_limit=rate_limit,
    )


def _limiter(rules: str, **settings: str) -> Limiter:
    environ = {"FASTAGENTIC_LIMITS": rules, **{f"FASTAGENTIC_{k.upper()}": v for k, v in settings.items()}}
    return Limiter(load(environ=environ))


ALICE = Principal(subject="alice", tenant="acme", roles=frozenset({"free"}))
BOB = Principal(subject="bob", tenant="acme", roles=frozenset({"paid"}))
CAROL = Principal(subject="carol", tenant="other", scopes=frozenset({"beta"}))


async def _admitted(limiter: Limiter, principal: Principal, info: EndpointInfo, times: int) -> int:
    count = 0
    for _ in range(times):
        try:
            await limiter.admit(principal, info)
            count += 1
        except RateLimited:
            pass
    return count


async def test_no_rule_costs_nothing_and_admits_everything() -> None:
    limiter = _limiter("[]")
    assert await _admitted(limiter, ALICE, _info(), 1000) == 1000


async def test_rules_count_per_principal_tenant_or_endpoint() -> None:
    limiter = _limiter('[{"name": "p", "rate": "3/minute", "burst": 3}]')
    assert await _admitted(limiter, ALICE, _info(), 5) == 3
    assert await _admitted(limiter, BOB, _info(), 5) == 3  # another principal: its own counter
    tenant = _limiter('[{"name": "t", "rate": "3/minute", "burst": 3, "per": ["tenant"]}]')
    assert await _admitted(tenant, ALICE, _info(), 2) + await _admitted(tenant, BOB, _info(), 2) == 3
    assert await _admitted(tenant, CAROL, _info(), 3) == 3  # another tenant
    both = _limiter('[{"name": "pe", "rate": "2/minute", "burst": 2, "per": ["principal", "endpoint"]}]')
    assert await _admitted(both, ALICE, _info("a"), 3) + await _admitted(both, ALICE, _info("b"), 3) == 4


async def test_a_refusal_names_the_rule_and_when_to_retry() -> None:
    limiter = _limiter('[{"name": "per-key", "rate": "2/minute", "burst": 1}]')
    await limiter.admit(ALICE, _info())
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(ALICE, _info())
    error = refused.value
    assert error.status == 429 and error.rule == "per-key" and 1 <= error.retry_after <= 30
    assert error.headers["Retry-After"] == str(error.retry_after)
    assert error.headers["RateLimit-Policy"] == '"per-key";q=2;w=60'
    assert error.headers["RateLimit"] == f'"per-key";r=0;t={error.retry_after}'
    assert "per-key" in error.message and "2 per minute" in error.message


async def test_endpoints_and_endpoint_rates_choose_where_a_rule_applies() -> None:
    limiter = _limiter(
        '[{"name": "only-b", "rate": "1/minute", "burst": 1, "endpoints": ["b"]},'
        ' {"name": "all", "rate": "5/minute", "burst": 5, "endpoint_rates": {"c": "2/minute"}}]'
    )
    assert await _admitted(limiter, ALICE, _info("c"), 3) == 2  # its own rate, its own counter
    assert await _admitted(limiter, ALICE, _info("b"), 3) == 1  # both rules apply; only-b refuses first
    assert await _admitted(limiter, ALICE, _info("a"), 6) == 4  # "all" counted a's and b's calls


async def test_a_plan_is_a_rule_with_a_role_or_scope() -> None:
    limiter = _limiter(
        '[{"name": "free", "rate": "1/minute", "burst": 1, "roles": ["free"]},'
        ' {"name": "beta", "rate": "2/minute", "burst": 2, "scopes": ["beta"]}]'
    )
    assert await _admitted(limiter, ALICE, _info(), 3) == 1  # free plan
    assert await _admitted(limiter, BOB, _info(), 3) == 3  # paid: no rule of its plan
    assert await _admitted(limiter, CAROL, _info(), 3) == 2


async def test_the_rate_an_endpoint_declares_counts_per_principal() -> None:
    limiter = _limiter("[]")
    quota = _info("quota", rate_limit="2/minute")
    assert await _admitted(limiter, ALICE, quota, 3) == 2
    assert await _admitted(limiter, BOB, quota, 3) == 2


async def test_reloaded_rules_apply_at_once() -> None:
    limiter = _limiter('[{"name": "p", "rate": "1/minute", "burst": 1}]')
    assert await _admitted(limiter, ALICE, _info(), 2) == 1
    limiter.reload(
        load(environ={"FASTAGENTIC_LIMITS": '[{"name": "q", "rate": "3/minute", "burst": 3}]'}).limits
    )
    assert await _admitted(limiter, ALICE, _info(), 4) == 3
    limiter.reload([])
    assert await _admitted(limiter, ALICE, _info(), 10) == 10


async def test_an_outage_of_the_shared_counter_fails_open_or_closed_as_configured() -> None:
    rules = '[{"name": "p", "rate": "1/minute", "burst": 1}]'
    down = f"nats://127.0.0.1:{_closed_port()}"
    open_ = _limiter(rules, limits_url=down, limits_fail="open")
    assert open_.shared
    assert await _admitted(open_, ALICE, _info(), 3) == 3  # unchecked
    assert "unreachable" in open_.outage
    closed = _limiter(rules, limits_url=down, limits_fail="closed")
    with pytest.raises(Unavailable, match="rate limits cannot be checked"):
        await closed.admit(ALICE, _info())
    assert closed.outage
    await open_.close()
    await closed.close()
