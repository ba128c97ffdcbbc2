"""Limit rules, as the settings (``limits``) and the SDK (``rate_limit=``) declare them.

A rule admits at most ``rate`` calls per period for each value of its key (``per``: the principal, the
tenant, the endpoint, or a combination), with bursts of at most ``burst`` at once. It applies to the
calls of ``endpoints`` (all when empty) by principals holding one of ``roles`` or ``scopes`` (all when
both are empty): a plan (free, paid) is a rule with a role. ``endpoint_rates`` overrides ``rate`` for
named endpoints.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec
from msgspec import Meta

from fastagentic.rates import Rate, parse_rate

__all__ = ["KEY_PARTS", "LimitRule", "Rate", "default_burst", "parse_rate"]

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

    def __post_init__(self) -> None:
        if not RULE_NAME.fullmatch(self.name):
            raise ValueError(f"limit rule name {self.name!r}: 1-64 letters, digits and _.:-")
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
