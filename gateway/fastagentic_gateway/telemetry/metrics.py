"""Prometheus metrics of the gateway, served on a port of their own (``metrics_port``), never with the API.

Counts are plain integers in dictionaries, increased on the event loop's thread without a lock and read
by a custom collector when Prometheus scrapes: prometheus-client's own metric objects take a mutex on
every increment, which the hot paths must not pay. Today's metrics are those of the limit stage; the
telemetry issue adds the rest on the same collector.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
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
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def counts(self) -> tuple[LabelledCount, ...]:
        return (self.rate_limited, self.budget_refused, self.budget_alerts, self.runs_over_budget)

    def collect(self) -> Iterator[Metric]:
        for count in self.counts():
            yield count.family()

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` on ``host:port`` (prometheus-client's HTTP server, in a thread)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
