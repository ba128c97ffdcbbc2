"""The answer of ``GET /v1/stats`` (fronts/rest.py): per endpoint of one tenant, over a recent window, how
many runs there were in each status, the error rate, latency and queue-wait percentiles, and the usage.

Runs are read from both stores, as RunService reads them (durable runs in the run store, ephemeral ones in
memory), with ``RunStore.run_times``: one indexed read per store of at most ``MAX_STATS_RUNS`` rows, the
newest; more than that and the answer says ``truncated`` (the newest runs were counted). Percentiles are
computed here (nearest rank). Usage comes from the usage aggregates, as ``GET /v1/usage`` reads them: they
are kept per UTC day, so the usage counts whole days from the day the window starts in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from .errors import MalformedRequest
from .runs.model import TERMINAL, RunStatus
from .store.base import RunTimes
from .usage.accounting import run_totals
from .usage.model import MAX_USAGE_ROWS, ModelUsage, Totals, UsageQuery, utc_day

if TYPE_CHECKING:
    from .runs.service import RunService

#: The most runs one answer counts (per store read and in all); the newest are kept.
MAX_STATS_RUNS = 100_000
DEFAULT_WINDOW = "1h"
MAX_WINDOW = 7 * 86_400
PERCENTILES = (50, 90, 99)
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_WINDOW = re.compile(r"([0-9]{1,7})([smhd])")
_FAILED = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})


class UsageView(msgspec.Struct):
    """Usage totals, and the same per model (a run's in ``GET /v1/runs/{id}``, an endpoint's in stats)."""

    input_tokens: int
    output_tokens: int
    cost: float
    calls: int
    unpriced_calls: int
    by_model: dict[str, Totals]


def usage_view(models: Sequence[ModelUsage]) -> UsageView:
    total = run_totals(models)
    return UsageView(
        input_tokens=total.input_tokens,
        output_tokens=total.output_tokens,
        cost=total.cost,
        calls=total.calls,
        unpriced_calls=total.unpriced_calls,
        by_model={entry.model: entry.totals for entry in models},
    )


class Percentiles(msgspec.Struct):
    """Seconds, over ``count`` runs; the percentiles are None when there are none."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None


class EndpointStats(msgspec.Struct):
    runs: int  # created in the window
    by_status: dict[str, int]  # their current status: every status, zeros too
    finished: int  # of them in a terminal status
    error_rate: float | None  # (failed + timed_out) / finished; None when none finished
    latency: Percentiles  # finished_at - created_at of the finished runs
    queue_wait: Percentiles  # started_at - created_at of the runs that started
    usage: UsageView | None  # None when usage accounting is off


class Stats(msgspec.Struct):
    tenant: str
    window: str
    since: float  # Unix time: the window's start (runs created from then on are counted)
    until: float  # Unix time: when the answer was made
    truncated: bool  # more than MAX_STATS_RUNS runs (or MAX_USAGE_ROWS usage rows): the newest were counted
    usage_from: str | None  # the UTC day (YYYY-MM-DD) the usage counts from; None when accounting is off
    endpoints: dict[str, EndpointStats]
    totals: EndpointStats


def window_seconds(text: str) -> int:
    """The ``window`` query parameter: a whole number and a unit (s, m, h, d), at most 7d."""
    match = _WINDOW.fullmatch(text.strip())
    seconds = int(match[1]) * _UNITS[match[2]] if match else 0
    if not match or not 0 < seconds <= MAX_WINDOW:
        raise MalformedRequest(
            "window must be a whole number followed by s, m, h or d (like 15m, 1h, 24h, 7d), more than 0 and "
            f"at most 7d, not {text[:40]!r}"
        )
    return seconds


def percentiles(values: list[float]) -> Percentiles:
    """Nearest-rank percentiles of ``values`` (sorted in place)."""
    if not values:
        return Percentiles(0, None, None, None)
    values.sort()
    n = len(values)
    p50, p90, p99 = (values[max(math.ceil(p * n / 100), 1) - 1] for p in PERCENTILES)
    return Percentiles(n, p50, p90, p99)


def endpoint_stats(rows: Sequence[RunTimes], usage: Sequence[ModelUsage] | None) -> EndpointStats:
    by_status = dict.fromkeys((status.value for status in RunStatus), 0)
    latencies: list[float] = []
    waits: list[float] = []
    failed = 0
    for row in rows:
        by_status[row.status.value] += 1
        if row.started_at is not None:
            waits.append(max(row.started_at - row.created_at, 0.0))
        if row.status in TERMINAL:
            if row.status in _FAILED:
                failed += 1
            if row.finished_at is not None:
                latencies.append(max(row.finished_at - row.created_at, 0.0))
    finished = sum(by_status[status.value] for status in TERMINAL)
    return EndpointStats(
        runs=len(rows),
        by_status=by_status,
        finished=finished,
        error_rate=failed / finished if finished else None,
        latency=percentiles(latencies),
        queue_wait=percentiles(waits),
        usage=None if usage is None else usage_view(usage),
    )


def merged_usage(groups: Sequence[Sequence[ModelUsage]]) -> list[ModelUsage]:
    """Several endpoints' usage per model, added up per model, sorted by model."""
    by_model: dict[str, Totals] = {}
    for models in groups:
        for entry in models:
            by_model[entry.model] = by_model.get(entry.model, Totals()) + entry.totals
    return [ModelUsage(model=model, totals=by_model[model]) for model in sorted(by_model)]


async def tenant_stats(runs: RunService, tenant: str, window: str, now: float) -> Stats:
    """The stats of ``tenant``'s runs created in the ``window`` (as ``window_seconds`` reads it) up to ``now``."""
    since = now - window_seconds(window)
    found = await runs.durable.run_times(tenant, since, MAX_STATS_RUNS + 1)
    found += await runs.ephemeral.run_times(tenant, since, MAX_STATS_RUNS + 1)
    truncated = len(found) > MAX_STATS_RUNS
    if truncated:  # each store gave its newest: the newest of all are among them
        found.sort(key=lambda row: row.created_at, reverse=True)
        del found[MAX_STATS_RUNS:]
    by_endpoint: dict[str, list[RunTimes]] = {}
    for row in found:
        by_endpoint.setdefault(row.endpoint, []).append(row)

    usage: dict[str, list[ModelUsage]] | None = None
    usage_from = None
    if runs.usage is not None:
        usage_from = utc_day(since)
        query = UsageQuery(
            tenant=tenant, since=usage_from, group_by=("endpoint", "model"), limit=MAX_USAGE_ROWS
        )
        groups = await runs.usage.usage(query)
        truncated = truncated or len(groups) >= MAX_USAGE_ROWS
        usage = {}
        for group in groups:
            assert group.endpoint is not None and group.model is not None
            usage.setdefault(group.endpoint, []).append(ModelUsage(model=group.model, totals=group.totals))

    names = sorted(by_endpoint.keys() | (usage or {}).keys())
    return Stats(
        tenant=tenant,
        window=window.strip(),
        since=since,
        until=now,
        truncated=truncated,
        usage_from=usage_from,
        endpoints={
            name: endpoint_stats(by_endpoint.get(name, []), None if usage is None else usage.get(name, []))
            for name in names
        },
        totals=endpoint_stats(found, None if usage is None else merged_usage(list(usage.values()))),
    )


__all__ = [
    "DEFAULT_WINDOW",
    "MAX_STATS_RUNS",
    "MAX_WINDOW",
    "EndpointStats",
    "Percentiles",
    "Stats",
    "UsageView",
    "endpoint_stats",
    "percentiles",
    "tenant_stats",
    "usage_view",
    "window_seconds",
]
