"""Limit rules, as the settings (``limits``) and the SDK (``rate_limit=``) declare them.

A rule admits at most ``rate`` calls per period for each value of its key (``per``: the principal, the
tenant, the endpoint, or a combination), with bursts of at most ``burst`` at once. It applies to the
calls of ``endpoints`` (all when empty) by principals holding one of ``roles`` or ``scopes`` (all when
both are empty): a plan (free, paid) is a rule with a role. ``endpoint_rates`` overrides ``rate`` for
named endpoints. A rule whose ``unit`` is ``tokens`` counts the LLM tokens runs report (``llm_end``)
instead of calls: a tokens-per-minute (TPM) limit.

A budget (``BudgetRule``) caps what runs spend, in tokens or money, per UTC day or month for each value
of its key, or per run.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec
from msgspec import Meta

from fastagentic.rates import Rate, parse_rate

__all__ = [
    "BUDGET_PERIODS",
    "KEY_PARTS",
    "BudgetRule",
    "ConcurrencyRule",
    "LimitRule",
    "Rate",
    "default_burst",
    "parse_rate",
]

KEY_PARTS = ("principal", "tenant", "endpoint")
RULE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def default_burst(rate: Rate) -> int:
    """The whole count up to 10 (``2/minute``: two calls may follow each other at once), else a tenth of
    it, at least 10: over any window of one period, at most the rate plus this."""
    return min(rate.calls, max(10, math.ceil(rate.calls / 10)))


def _doc(text: str) -> Meta:
    return Meta(description=text)


class LimitRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One request rate limit."""

    name: Annotated[str, _doc("Names the rule in errors, headers and logs.")]
    rate: Annotated[str, _doc("Calls per period: `60/minute`, `10/second`, `1000/hour`, `100/10minutes`.")]
    burst: Annotated[
        int,
        Meta(
            ge=0,
            description="Calls admitted at once before the rate applies; 0: a tenth of the rate's count.",
        ),
    ] = 0
    per: Annotated[list[str], _doc("What one counter counts: any of `principal`, `tenant`, `endpoint`.")] = (
        msgspec.field(default_factory=lambda: ["principal"])
    )
    endpoints: Annotated[list[str], _doc("Endpoints it applies to; empty: every endpoint.")] = []
    endpoint_rates: Annotated[dict[str, str], _doc("Other rates for named endpoints.")] = {}
    roles: Annotated[list[str], _doc("Applies only to principals with one of these roles (a plan).")] = []
    scopes: Annotated[list[str], _doc("Applies only to principals with one of these scopes.")] = []
    unit: Annotated[
        str,
        _doc(
            "`calls`: the rate counts calls. `tokens`: it counts the tokens (input + output) runs report "
            "(`llm_end`), a TPM limit: calls are refused while the key has spent more than its rate allows."
        ),
    ] = "calls"

    def __post_init__(self) -> None:
        if not RULE_NAME.fullmatch(self.name):
            raise ValueError(f"limit rule name {self.name!r}: 1-64 letters, digits and _.:-")
        if self.unit not in ("calls", "tokens"):
            raise ValueError(f'limit rule {self.name!r}: unit must be "calls" or "tokens", not {self.unit!r}')
        parse_rate(self.rate)
        for endpoint, rate in self.endpoint_rates.items():
            try:
                parse_rate(rate)
            except ValueError as exc:
                raise ValueError(f"limit rule {self.name!r}, endpoint {endpoint!r}: {exc}") from None
        if not self.per or any(p not in KEY_PARTS for p in self.per) or len(set(self.per)) != len(self.per):
            raise ValueError(
                f"limit rule {self.name!r}: per must list some of {', '.join(KEY_PARTS)}, each once, not {self.per}"
            )


BUDGET_PERIODS = ("day", "month", "run")


class BudgetRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A spending cap in tokens and/or money, per UTC day or month for each value of its key, or per run."""

    name: Annotated[str, _doc("Names the budget in errors, alerts and logs.")]
    period: Annotated[
        str,
        _doc(
            "`day` or `month` (UTC; new runs are refused once it is spent), or `run` (each run; a run that "
            "spends past it is stopped with the error type `BudgetExceeded`)."
        ),
    ]
    tokens: Annotated[int, Meta(ge=0, description="Tokens (input + output) allowed; 0: no token cap.")] = 0
    cost: Annotated[
        float, Meta(ge=0, le=1e9, description="Money allowed (the price table's currency); 0: no money cap.")
    ] = 0.0
    per: Annotated[
        list[str],
        _doc("`day`/`month`: what one budget is for: any of `principal`, `tenant`, `endpoint`."),
    ] = msgspec.field(default_factory=lambda: ["tenant"])
    endpoints: Annotated[list[str], _doc("Endpoints it applies to; empty: every endpoint.")] = []
    roles: Annotated[list[str], _doc("Applies only to principals with one of these roles (a plan).")] = []
    scopes: Annotated[list[str], _doc("Applies only to principals with one of these scopes.")] = []
    alert_at: Annotated[
        float,
        Meta(
            ge=0,
            le=1,
            description="Share spent at which the soft alert fires (log, audit record `budget.alert`, webhook); "
            "0: no alert.",
        ),
    ] = 0.8
    downgrade_at: Annotated[
        float,
        Meta(
            ge=0, le=1, description="Share spent past which workers are told to use `downgrade_to`; 0: never."
        ),
    ] = 0.0
    downgrade_to: Annotated[
        str, _doc("The model workers are told to switch to (`ctx.model_hint`) past `downgrade_at`.")
    ] = ""

    def __post_init__(self) -> None:
        if not RULE_NAME.fullmatch(self.name):
            raise ValueError(f"budget name {self.name!r}: 1-64 letters, digits and _.:-")
        if self.period not in BUDGET_PERIODS:
            raise ValueError(f"budget {self.name!r}: period must be day, month or run, not {self.period!r}")
        if not self.tokens and not self.cost:
            raise ValueError(
                f"budget {self.name!r}: set tokens, cost or both (a budget of nothing caps nothing)"
            )
        if not self.per or any(p not in KEY_PARTS for p in self.per) or len(set(self.per)) != len(self.per):
            raise ValueError(
                f"budget {self.name!r}: per must list some of {', '.join(KEY_PARTS)}, each once, not {self.per}"
            )
        if bool(self.downgrade_at) != bool(self.downgrade_to):
            raise ValueError(f"budget {self.name!r}: downgrade_at and downgrade_to go together")
        if len(self.downgrade_to) > 200:
            raise ValueError(f"budget {self.name!r}: downgrade_to is a model name of at most 200 characters")


WHEN_FULL = ("queue", "refuse")


class ConcurrencyRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """At most ``max`` runs at once for each value of its key (``limits/concurrency.py``)."""

    name: Annotated[str, _doc("Names the rule in errors and logs.")]
    max: Annotated[int, Meta(ge=1, le=1_000_000, description="Runs active (running) at once for one key.")]
    per: Annotated[list[str], _doc("What one count counts: any of `principal`, `tenant`, `endpoint`.")] = (
        msgspec.field(default_factory=lambda: ["tenant"])
    )
    endpoints: Annotated[list[str], _doc("Endpoints it applies to; empty: every endpoint.")] = []
    roles: Annotated[list[str], _doc("Applies only to principals with one of these roles (a plan).")] = []
    scopes: Annotated[list[str], _doc("Applies only to principals with one of these scopes.")] = []
    when_full: Annotated[
        str,
        _doc(
            "`queue`: a run past `max` is accepted and waits its turn; `refuse`: a call that would make "
            "more than `max` runs accepted and unfinished is refused (429 `concurrency_limited`)."
        ),
    ] = "queue"

    def __post_init__(self) -> None:
        if not RULE_NAME.fullmatch(self.name):
            raise ValueError(f"concurrency rule name {self.name!r}: 1-64 letters, digits and _.:-")
        if self.when_full not in WHEN_FULL:
            raise ValueError(
                f'concurrency rule {self.name!r}: when_full must be "queue" or "refuse", not {self.when_full!r}'
            )
        if not self.per or any(p not in KEY_PARTS for p in self.per) or len(set(self.per)) != len(self.per):
            raise ValueError(
                f"concurrency rule {self.name!r}: per must list some of {', '.join(KEY_PARTS)}, each once, "
                f"not {self.per}"
            )
