"""The computation of GET /v1/stats (stats.py): the window parameter, nearest-rank percentiles, and one
endpoint's counts, error rate and latencies from the rows the stores give (tests/e2e/test_stats.py runs the
route through a real gateway)."""

from __future__ import annotations

import pytest

from fastagentic_gateway.errors import MalformedRequest
from fastagentic_gateway.runs.model import RunStatus
from fastagentic_gateway.stats import endpoint_stats, merged_usage, percentiles, window_seconds
from fastagentic_gateway.store.base import RunTimes, run_id_floor
from fastagentic_gateway.usage.model import ModelUsage, Totals


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("1h", 3600), ("24h", 86_400), ("7d", 604_800), ("90s", 90), (" 2h ", 7200)],
)
def test_a_window_is_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert window_seconds(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "1", "h", "1w", "8d", "169h", "0m", "-1h", "1.5h", "1H", "1h30m", "9" * 50]
)
def test_a_bad_window_is_refused_precisely(text: str) -> None:
    with pytest.raises(MalformedRequest) as refused:
        window_seconds(text)

    message = refused.value.message
    assert message.startswith(
        "window must be a whole number followed by s, m, h or d (like 15m, 1h, 24h, 7d)"
    )
    assert "at most 7d" in message
    assert repr(text[:40]) in message


def test_percentiles_are_nearest_rank() -> None:
    assert percentiles([]).count == 0 and percentiles([]).p50 is None
    one = percentiles([2.5])
    assert (one.count, one.p50, one.p90, one.p99) == (1, 2.5, 2.5, 2.5)
    hundred = percentiles([float(n) for n in range(100, 0, -1)])  # 100 .. 1, unsorted
    assert (hundred.count, hundred.p50, hundred.p90, hundred.p99) == (100, 50.0, 90.0, 99.0)
    ten = percentiles([float(n) for n in range(1, 11)])
    assert (ten.p50, ten.p90, ten.p99) == (5.0, 9.0, 10.0)


def test_an_endpoints_counts_error_rate_and_latencies() -> None:
    rows = [
        RunTimes("echo", RunStatus.SUCCEEDED, 100.0, 100.5, 101.0),
        RunTimes("echo", RunStatus.SUCCEEDED, 100.0, 101.0, 103.0),
        RunTimes("echo", RunStatus.FAILED, 100.0, 100.25, 102.0),
        RunTimes("echo", RunStatus.TIMED_OUT, 100.0, 100.0, 110.0),
        RunTimes("echo", RunStatus.CANCELLED, 100.0, None, 100.1),  # cancelled while queued
        RunTimes("echo", RunStatus.RUNNING, 100.0, 104.0, None),
        RunTimes("echo", RunStatus.QUEUED, 100.0, None, None),
    ]
    usage = [ModelUsage(model="m", totals=Totals(input_tokens=3, output_tokens=4, cost=0.5, calls=2))]

    stats = endpoint_stats(rows, usage)

    assert stats.runs == 7 and stats.finished == 5
    assert stats.by_status == {
        "queued": 1,
        "running": 1,
        "waiting_input": 0,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 1,
        "timed_out": 1,
    }
    assert stats.error_rate == pytest.approx(2 / 5)
    assert stats.latency.count == 5
    assert (stats.latency.p50, stats.latency.p99) == (pytest.approx(2.0), pytest.approx(10.0))
    assert stats.queue_wait.count == 5
    assert (stats.queue_wait.p50, stats.queue_wait.p99) == (pytest.approx(0.5), pytest.approx(4.0))
    assert stats.usage is not None
    assert (stats.usage.input_tokens, stats.usage.cost, stats.usage.calls) == (3, 0.5, 2)
    assert endpoint_stats([], None).error_rate is None


def test_usage_of_several_endpoints_adds_up_per_model() -> None:
    a = [ModelUsage(model="m1", totals=Totals(input_tokens=1, calls=1))]
    b = [
        ModelUsage(model="m0", totals=Totals(output_tokens=2, calls=1)),
        ModelUsage(model="m1", totals=Totals(input_tokens=5, cost=1.0, calls=1)),
    ]

    assert merged_usage([a, b]) == [
        ModelUsage(model="m0", totals=Totals(output_tokens=2, calls=1)),
        ModelUsage(model="m1", totals=Totals(input_tokens=6, cost=1.0, calls=2)),
    ]


def test_the_id_floor_is_below_every_run_created_since() -> None:
    since = 1_767_225_600.0005
    assert run_id_floor(since) < f"run_{int(since * 1000):012x}"
    assert run_id_floor(since) > f"run_{int((since - 2) * 1000):012x}"
    assert run_id_floor(0.5) == "run_000000000000"
