"""Usage accounting: the ``llm_end`` events of workers validated, priced and added up in the stores.

A worker reports an LLM call's usage as an ``llm_end`` event whose data is
``{"model": str, "input_tokens": int, "output_tokens": int, "cost": float}`` (``cost`` optional, SDK:
``ctx.usage(...)``). An ``llm_end`` without ``input_tokens``, ``output_tokens`` or ``cost`` (or with them
all null) reports nothing. Invalid usage (a rogue or buggy worker: negative or fractional tokens, a cost
that is negative, infinite or absurd, a missing or overlong model) is a protocol violation of its batch:
nothing of the batch is stored or counted, so no worker can refund a budget or poison the totals.

Only events the store newly stored are counted (a batch re-sent after a reconnect adds nothing), and each
report carries the seq of its last event, which the stores count at most once per run.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import StoreUnavailable
from ..runs.model import Event, NewEvent, Run
from .model import ModelUsage, Totals, UsageQuery, UsageReport, UsageRow, utc_day

if TYPE_CHECKING:
    from ..store.base import RunStore

log = logging.getLogger("fastagentic.usage")

MAX_TOKENS = 2**53
MAX_COST = 1e9
MAX_MODEL_LENGTH = 200
#: The largest price per million tokens the price table takes.
MAX_PRICE = 1e6
USAGE_FIELDS = ("input_tokens", "output_tokens", "cost")
PRICE_FIELDS = ("input_per_million", "output_per_million")
#: Reports of ephemeral runs kept while the durable store is unreachable (the oldest go first).
MAX_UNSAVED = 100_000

_decode = msgspec.json.decode


class InvalidUsage(ValueError):
    """An ``llm_end`` event's usage is not acceptable; the message says what is wrong."""


class LlmUsage(msgspec.Struct, frozen=True):
    """One ``llm_end`` event's usage, validated."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None  # None: the worker did not say


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def model_problem(model: Any) -> str | None:
    """What is wrong with ``model`` as a model name, or None."""
    if not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL_LENGTH:
        return (
            f"model must be a non-empty string of at most {MAX_MODEL_LENGTH} characters, not {_shown(model)}"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in model):
        return f"model must not contain control characters or lone surrogates: {_shown(model)}"
    return None


def reported_usage(data: bytes | Any) -> LlmUsage | None:
    """The usage an ``llm_end`` event's data (JSON bytes, or already decoded) reports; None when it reports
    none. Raises InvalidUsage saying precisely what is wrong."""
    value = _decode(data) if isinstance(data, bytes) else data
    if not isinstance(value, dict) or all(value.get(name) is None for name in USAGE_FIELDS):
        return None
    problem = model_problem(value.get("model"))
    if problem is not None:
        raise InvalidUsage(problem)
    counts: dict[str, int] = {}
    for name in ("input_tokens", "output_tokens"):
        count = value.get(name)
        if count is None:
            count = 0
        if not _is_int(count) or not 0 <= count <= MAX_TOKENS:
            raise InvalidUsage(f"{name} must be an integer from 0 to 2**53, not {_shown(count)}")
        counts[name] = count
    cost = value.get("cost")
    if cost is not None:
        if not isinstance(cost, int | float) or isinstance(cost, bool):
            raise InvalidUsage(f"cost must be a number, not {_shown(cost)}")
        if not math.isfinite(cost) or not 0 <= cost <= MAX_COST:
            raise InvalidUsage(f"cost must be a finite number from 0 to {MAX_COST:g}, not {_shown(cost)}")
        cost = float(cost)
    return LlmUsage(value["model"], counts["input_tokens"], counts["output_tokens"], cost)


class Prices:
    """The price table (setting ``prices``): model -> price per million input and output tokens."""

    def __init__(self, table: Mapping[str, Mapping[Any, float]] | None = None) -> None:
        self.table: dict[str, tuple[float, float]] = {}
        for model, price in (table or {}).items():
            problem = model_problem(model)
            if problem is not None:
                raise ValueError(f"prices: {problem}")
            if not isinstance(price, Mapping):
                raise ValueError(f"prices[{model!r}] must be a table of {' and '.join(PRICE_FIELDS)}")
            unknown = sorted(set(price) - set(PRICE_FIELDS))
            if unknown:
                raise ValueError(
                    f"prices[{model!r}]: unknown field {unknown[0]!r}; expected {' and '.join(PRICE_FIELDS)}"
                )
            rates: list[float] = []
            for name in PRICE_FIELDS:
                if name not in price:
                    raise ValueError(f"prices[{model!r}]: {name} is missing")
                rate = price[name]
                if (
                    not isinstance(rate, int | float)
                    or isinstance(rate, bool)
                    or not math.isfinite(rate)
                    or not 0 <= rate <= MAX_PRICE
                ):
                    raise ValueError(
                        f"prices[{model!r}]: {name} must be a number from 0 to {MAX_PRICE:g}, not {_shown(rate)}"
                    )
                rates.append(float(rate))
            self.table[model] = (rates[0], rates[1])

    def cost(self, usage: LlmUsage) -> float | None:
        """The cost the worker reported, else the table's price of its tokens, else None (unpriced)."""
        if usage.cost is not None:
            return usage.cost
        price = self.table.get(usage.model)
        if price is None:
            return None
        return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000


class UsageAccounting:
    """Counts the usage of stored events and answers usage questions (runs, the admin route, budgets).

    Durable runs: the run's totals and the aggregates are one ``add_usage`` of the durable store (one
    transaction). Ephemeral runs: the run's totals in the memory store, the aggregates in the durable store,
    so they survive the process; while the durable store is unreachable they wait here (at most
    ``MAX_UNSAVED`` reports) and are written with the next report."""

    def __init__(
        self,
        prices: Prices | Mapping[str, Mapping[Any, float]] | None,
        durable: RunStore,
        ephemeral: RunStore,
    ) -> None:
        self.prices = prices if isinstance(prices, Prices) else Prices(prices)
        self.durable = durable
        self.ephemeral = ephemeral
        self._unsaved: collections.deque[UsageReport] = collections.deque()

    def parse(self, run_id: str, first_seq: int, events: Sequence[NewEvent]) -> list[LlmUsage | None] | None:
        """The usage of each event of a worker's batch (None for events that report none), or None when the
        batch reports no usage at all. Raises InvalidUsage naming the run and the event's seq."""
        found: list[LlmUsage | None] | None = None
        for i, event in enumerate(events):
            if event.kind != "llm_end":
                continue
            try:
                usage = reported_usage(event.data)
            except InvalidUsage as exc:
                raise InvalidUsage(f"run {run_id}: llm_end event (seq {first_seq + i}): {exc}") from None
            if usage is not None:
                if found is None:
                    found = [None] * len(events)
                found[i] = usage
        return found

    def report(
        self, run: Run, reported: Sequence[LlmUsage | None], stored: Sequence[Event]
    ) -> UsageReport | None:
        """The report of the events of a batch the store stored (``stored``: the tail of the batch)."""
        if not stored:
            return None
        by_model: dict[str, Totals] = {}
        for usage in reported[len(reported) - len(stored) :]:
            if usage is None:
                continue
            cost = self.prices.cost(usage)
            one = Totals(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost=cost or 0.0,
                calls=1,
                unpriced_calls=1 if cost is None else 0,
            )
            by_model[usage.model] = by_model.get(usage.model, Totals()) + one
        if not by_model:
            return None
        return UsageReport(
            run_id=run.id,
            seq=stored[-1].seq,
            ts=time.time(),
            tenant=run.caller.tenant,
            principal=run.caller.principal,
            endpoint=run.endpoint,
            models=tuple(ModelUsage(model=m, totals=t) for m, t in sorted(by_model.items())),
        )

    async def count(
        self, run_id: str, durable: bool, reported: Sequence[LlmUsage | None], stored: Sequence[Event]
    ) -> tuple[Run, UsageReport] | None:
        """Add the usage of ``stored`` (what the store newly stored of a batch whose usage ``parse`` gave).
        Safe to repeat after StoreUnavailable (durable runs: the report's seq is counted once). The run and
        what was counted, or None when nothing was."""
        store = self.durable if durable else self.ephemeral
        run = await store.get(run_id)
        report = None if run is None else self.report(run, reported, stored)
        if run is None or report is None:
            return None
        if durable:
            return (run, report) if await self.durable.add_usage(report) else None
        counted = await self.ephemeral.add_usage(report, aggregate=False)
        self._unsaved.append(report)
        if len(self._unsaved) > MAX_UNSAVED:
            lost = self._unsaved.popleft()
            log.warning("usage of run %s not aggregated: the run store is unreachable", lost.run_id)
        await self.flush()
        return (run, report) if counted else None

    async def flush(self) -> None:
        """Write the aggregates of ephemeral runs' reports that wait for the durable store."""
        while self._unsaved:
            try:
                await self.durable.add_usage(self._unsaved[0], run=False)
            except StoreUnavailable:
                return
            self._unsaved.popleft()

    async def run_usage(self, run: Run) -> list[ModelUsage]:
        """The run's usage per model, sorted by model."""
        return await (self.durable if run.durable else self.ephemeral).run_usage(run.id)

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        """The aggregates (every run's, durable or not) matching ``query``, grouped as it asks."""
        return await self.durable.usage(query)

    async def usage_since(self, tenant: str, principal: str | None, since: float) -> Totals:
        """What ``tenant`` (only ``principal``'s part, when given) used from the UTC day of Unix time
        ``since`` on: aggregates are per UTC day, so ``since`` counts from the start of its day."""
        rows = await self.durable.usage(
            UsageQuery(tenant=tenant, principal=principal, since=utc_day(since), group_by=(), limit=1)
        )
        return rows[0].totals if rows else Totals()


def run_totals(models: Sequence[ModelUsage]) -> Totals:
    """The totals of a run's usage over its models."""
    total = Totals()
    for model in models:
        total = total + model.totals
    return total


__all__ = [
    "InvalidUsage",
    "LlmUsage",
    "Prices",
    "UsageAccounting",
    "model_problem",
    "reported_usage",
    "run_totals",
]
