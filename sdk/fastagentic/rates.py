"""Rates as endpoints declare them (``rate_limit="60/minute"``) and the gateway's limit rules write them."""

from __future__ import annotations

import re
from typing import NamedTuple

PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
#: Longest period a rate may have (a cluster's shared counters keep a key this long after its last change).
MAX_PERIOD = 31 * 86400.0
_RATE = re.compile(r"\s*(\d{1,12})\s*/\s*(\d{0,6})\s*(second|minute|hour|day)s?\s*")


class Rate(NamedTuple):
    """``calls`` per ``period`` seconds."""

    calls: int
    period: float
    text: str

    @property
    def interval(self) -> float:
        """Seconds between two calls at the sustained rate."""
        return self.period / self.calls


def parse_rate(text: str) -> Rate:
    """``"60/minute"``, ``"10/second"``, ``"1000/hour"``, ``"5/day"``, ``"100/10minutes"``; ValueError
    naming what is wrong otherwise."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"rate {text!r}: write it as <count>/<period>, e.g. 60/minute, 10/second, 1000/hour, 100/10minutes"
        )
    count, multiple, unit = int(match[1]), int(match[2] or 1), match[3]
    if count < 1 or multiple < 1:
        raise ValueError(f"rate {text!r}: the count and the period must be at least 1")
    period = multiple * PERIODS[unit]
    if period > MAX_PERIOD:
        raise ValueError(f"rate {text!r}: the period may be at most 31 days")
    return Rate(calls=count, period=period, text=text.strip())
