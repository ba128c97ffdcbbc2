"""Usage as the stores keep it and answer it (data only).

A run's usage is kept per model; the aggregates per (tenant, principal, endpoint, model, UTC day). Token
counts saturate at ``TOKEN_CAP`` in every stored row, so no report (however many) can overflow a column.
"""

from __future__ import annotations

import time

import msgspec

#: The most tokens one stored row (a run's model, a day's key) holds: adding more leaves it there.
TOKEN_CAP = 2**62
#: What ``UsageQuery.group_by`` may name, in the order rows are grouped and sorted.
GROUP_FIELDS = ("day", "tenant", "principal", "endpoint", "model")
#: The most rows one ``usage`` call returns, whatever ``UsageQuery.limit`` asks.
MAX_USAGE_ROWS = 10_000


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """Usage added up: tokens in and out, cost (in the price table's currency), and how many ``llm_end``
    events were counted, ``unpriced_calls`` of them without a cost (none reported, model not priced)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    calls: int = 0
    unpriced_calls: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            input_tokens=min(self.input_tokens + other.input_tokens, TOKEN_CAP),
            output_tokens=min(self.output_tokens + other.output_tokens, TOKEN_CAP),
            cost=self.cost + other.cost,
            calls=self.calls + other.calls,
            unpriced_calls=self.unpriced_calls + other.unpriced_calls,
        )


class ModelUsage(msgspec.Struct, frozen=True, kw_only=True):
    """The usage of one model (in a run, or in one report)."""

    model: str
    totals: Totals


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``add_usage`` adds: the usage of the ``llm_end`` events of one stored batch of a run's events."""

    run_id: str
    #: The seq of the batch's last stored event: a run's report is counted once, and only when its seq is
    #: above that of every report counted for the run before.
    seq: int
    #: When it was stored (gateway time): its UTC day is the aggregate's day.
    ts: float
    tenant: str
    principal: str
    endpoint: str
    models: tuple[ModelUsage, ...]  # one entry per model, sorted by model

    @property
    def day(self) -> str:
        return utc_day(self.ts)


class UsageQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of the aggregates (None: any) and how to group them. Days are UTC, ``YYYY-MM-DD``."""

    tenant: str | None = None
    principal: str | None = None
    endpoint: str | None = None
    model: str | None = None
    since: str | None = None  # the first day, inclusive
    until: str | None = None  # the last day, inclusive
    group_by: tuple[str, ...] = ("day",)  # names of GROUP_FIELDS; () for one row of totals
    limit: int = 1000


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    """One group of ``usage``: the values of the grouped fields (the others None) and its totals."""

    day: str | None = None
    tenant: str | None = None
    principal: str | None = None
    endpoint: str | None = None
    model: str | None = None
    totals: Totals = Totals()


def utc_day(ts: float) -> str:
    """``YYYY-MM-DD`` of the UTC day of Unix time ``ts``."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def group_by(query: UsageQuery) -> tuple[str, ...]:
    """The query's group fields in canonical order; ValueError naming an unknown one."""
    unknown = [name for name in query.group_by if name not in GROUP_FIELDS]
    if unknown:
        raise ValueError(f"cannot group usage by {unknown[0]!r}; choose from {', '.join(GROUP_FIELDS)}")
    return tuple(name for name in GROUP_FIELDS if name in query.group_by)


def usage_limit(query: UsageQuery) -> int:
    return min(max(query.limit, 0), MAX_USAGE_ROWS)


def totals_of(
    input_tokens: float, output_tokens: float, cost: float, calls: float, unpriced: float
) -> Totals:
    """Totals from a row of SQL sums (which may come as float or Decimal), saturated as stored rows are."""
    return Totals(
        input_tokens=min(int(input_tokens or 0), TOKEN_CAP),
        output_tokens=min(int(output_tokens or 0), TOKEN_CAP),
        cost=float(cost or 0.0),
        calls=int(calls or 0),
        unpriced_calls=int(unpriced or 0),
    )


__all__ = [
    "GROUP_FIELDS",
    "MAX_USAGE_ROWS",
    "TOKEN_CAP",
    "ModelUsage",
    "Totals",
    "UsageQuery",
    "UsageReport",
    "UsageRow",
    "group_by",
    "totals_of",
    "usage_limit",
    "utc_day",
]
