"""Prometheus metrics of the gateway, served on a port of their own (``metrics_port``), never with the API.

Counts are plain integers in dictionaries, increased on the event loop's thread without a lock and read
by a custom collector when Prometheus scrapes: prometheus-client's own metric objects take a mutex on
every increment, which the hot paths must not pay. Today's metrics are those of the limit stage and the
time each hook takes; the telemetry issue adds the rest on the same collector.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("fastagentic.metrics")


class LabelledCount:
    """A counter by label values: ``inc(*values)``; read whole at scrape time."""

    __slots__ = ("documentation", "labels", "name", "values")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, *values: str) -> None:
        self.values[values] = self.values.get(values, 0) + 1

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, count in list(self.values.items()):  # a copy: the loop may add one meanwhile
            family.add_metric(values, count)
        return family


#: Bucket bounds (seconds) of hook latencies: a guardrail is meant to take well under a millisecond to a
#: few hundred (an external model), never more than its timeout.
HOOK_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class LabelledHistogram:
    """A histogram by label values: ``observe(seconds, *values)``; read whole at scrape time."""

    __slots__ = ("bounds", "documentation", "labels", "name", "values")

    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...], bounds: tuple[float, ...]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.bounds = bounds
        #: label values -> [count per bucket (the last one: +Inf), sum]
        self.values: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *values: str) -> None:
        entry = self.values.get(values)
        if entry is None:
            entry = self.values[values] = ([0] * (len(self.bounds) + 1), [0.0])
        entry[0][bisect.bisect_left(self.bounds, value)] += 1
        entry[1][0] += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, (counts, total) in list(self.values.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), list(counts), strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric(list(values), buckets, total[0])
        return family


class GatewayMetrics(Collector):
    """Every metric of one gateway, in a registry of its own (several gateways may share a process)."""

    def __init__(self) -> None:
        self.rate_limited = LabelledCount(
            "fastagentic_rate_limited", "Calls refused by a rate or token limit rule.", ("rule",)
        )
        self.budget_refused = LabelledCount(
            "fastagentic_budget_refused", "Calls refused because a day or month budget is spent.", ("budget",)
        )
        self.budget_alerts = LabelledCount(
            "fastagentic_budget_alerts",
            "Budget alerts sent (type budget.alert past alert_at, budget.exhausted once spent).",
            ("budget", "type"),
        )
        self.runs_over_budget = LabelledCount(
            "fastagentic_runs_over_budget",
            "Runs stopped with BudgetExceeded (past their run budget).",
            ("budget",),
        )
        self.hook_seconds = LabelledHistogram(
            "fastagentic_hook_seconds",
            "Time each gateway hook took, by hook, point and outcome (proceed, modify, skip, reject, retry; "
            "timeout, error: it failed; invalid: it answered what the point does not take; dropped: an audit "
            "hook not run because too many were pending).",
            ("hook", "point", "outcome"),
            HOOK_BUCKETS,
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def counts(self) -> tuple[LabelledCount, ...]:
        return (self.rate_limited, self.budget_refused, self.budget_alerts, self.runs_over_budget)

    def collect(self) -> Iterator[Metric]:
        for count in self.counts():
            yield count.family()
        yield self.hook_seconds.family()

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` on ``host:port`` (prometheus-client's HTTP server, in a thread)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
