"""Prometheus metrics of the gateway, served on a port of their own (``metrics_port``), never with the API.

Counts are plain numbers in dictionaries, increased on the event loop's thread without a lock and read
by a custom collector when Prometheus scrapes: prometheus-client's own metric objects take a mutex on
every increment, which the hot paths must not pay. What is already held somewhere (queues, workers and
their slots, held runs, whether the store and the bus answer) is not counted at all: the collector reads it
at scrape time. Labels that come from callers or workers (tenants, models, endpoints) keep at most
``metrics_label_values`` distinct values each; later ones are counted as ``other``
(docs/reference/metrics.md names every metric and the bound of each label).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from ..bus.base import Bus
    from ..runs.model import Run
    from ..runs.service import RunService
    from ..usage.model import UsageReport
    from ..workers.registry import EndpointRegistry

log = logging.getLogger("fastagentic.metrics")

#: The label value every value past a label's bound is counted under.
OTHER = "other"


class Bounded:
    """A label whose values come from outside (tenants, models, endpoints): the first ``limit`` distinct
    values are kept, every later one becomes ``other``. A set lookup per call."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return OTHER


class LabelledCount:
    """A counter by label values: ``inc(*values)`` or ``add(amount, *values)``; read whole at scrape time."""

    __slots__ = ("documentation", "labels", "name", "values")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *values: str) -> None:
        self.values[values] = self.values.get(values, 0) + 1

    def add(self, amount: float, *values: str) -> None:
        self.values[values] = self.values.get(values, 0) + amount

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


class LabelledGauge:
    """A gauge by label values that goes up and down: ``inc(*values)`` / ``dec(*values)``."""

    __slots__ = ("documentation", "labels", "name", "values")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple[str, ...], int] = {}

    def inc(self, *values: str) -> None:
        self.values[values] = self.values.get(values, 0) + 1

    def dec(self, *values: str) -> None:
        self.values[values] = self.values.get(values, 0) - 1

    def family(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, count in list(self.values.items()):
            family.add_metric(values, count)
        return family


#: Bucket bounds (seconds) of a run's duration, creation to end: agents take from a fraction of a second to
#: many minutes (a run waiting for a person may take hours: those land in +Inf).
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Bucket bounds (seconds) of the time from a run's creation to its worker's first event.
FIRST_EVENT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Bucket bounds (seconds) of one store or bus operation.
IO_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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

    def __init__(self, label_values: int = 100) -> None:
        #: the bounds of the labels whose values come from outside
        self.tenants = Bounded(label_values)
        self.models = Bounded(label_values)
        self.endpoints = Bounded(label_values)
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
        self.requests = LabelledCount(
            "fastagentic_http_requests",
            "HTTP requests answered, by front (rest, mcp, a2a), route template and status code.",
            ("front", "route", "status"),
        )
        self.streams = LabelledGauge(
            "fastagentic_active_streams",
            "Open streams: server-sent event responses (kind sse) and WebSocket sessions (kind websocket), "
            "by front.",
            ("front", "kind"),
        )
        self.auth_refused = LabelledCount(
            "fastagentic_auth_refused",
            "Requests refused by the access edge before any front saw them, by front and error type.",
            ("front", "type"),
        )
        self.runs_created = LabelledCount(
            "fastagentic_runs_created", "Runs accepted by this replica, by endpoint.", ("endpoint",)
        )
        self.runs_finished = LabelledCount(
            "fastagentic_runs_finished",
            "Runs ended by this replica, by endpoint and final status.",
            ("endpoint", "status"),
        )
        self.run_seconds = LabelledHistogram(
            "fastagentic_run_seconds",
            "Runs' durations, creation to end (queueing included), by endpoint and final status.",
            ("endpoint", "status"),
            RUN_BUCKETS,
        )
        self.first_event_seconds = LabelledHistogram(
            "fastagentic_run_first_event_seconds",
            "Time from a run's creation to the first event its first attempt's worker reported, by endpoint.",
            ("endpoint",),
            FIRST_EVENT_BUCKETS,
        )
        self.store_seconds = LabelledHistogram(
            "fastagentic_store_seconds",
            "Durable run store operations, by store (sqlite, postgresql) and operation, as the caller waits.",
            ("store", "op"),
            IO_BUCKETS,
        )
        self.store_errors = LabelledCount(
            "fastagentic_store_errors",
            "Durable run store operations that failed on the database (unreachable, I/O), by store and operation.",
            ("store", "op"),
        )
        self.bus_seconds = LabelledHistogram(
            "fastagentic_bus_seconds",
            "Cluster bus (NATS) operations awaited on the run path, by operation (announce: a queued run "
            "offered to the other replicas).",
            ("op",),
            IO_BUCKETS,
        )
        self.bus_errors = LabelledCount(
            "fastagentic_bus_errors",
            "Cluster bus operations that failed (bus unreachable), by operation.",
            ("op",),
        )
        self.worker_refused = LabelledCount(
            "fastagentic_worker_refused",
            "Worker connections refused at Hello, by reason (unauthenticated, invalid_registration, ...).",
            ("reason",),
        )
        self.tokens = LabelledCount(
            "fastagentic_llm_tokens",
            "LLM tokens reported by workers (llm_end usage), by model, tenant and direction (input, output).",
            ("model", "tenant", "direction"),
        )
        self.cost = LabelledCount(
            "fastagentic_llm_cost",
            "Cost of the LLM calls workers reported (their own or the prices table's), by model and tenant.",
            ("model", "tenant"),
        )
        self.llm_calls = LabelledCount(
            "fastagentic_llm_calls",
            "LLM calls with usage reported, by model, tenant and whether a price was known (priced).",
            ("model", "tenant", "priced"),
        )
        #: what the collector reads at scrape time (``watch``)
        self._runs: RunService | None = None
        self._registry: EndpointRegistry | None = None
        self._bus: Bus | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def watch(self, runs: RunService, registry: EndpointRegistry, bus: Bus) -> None:
        """Read queues, workers, held runs, the store's and the bus's state from these at scrape time."""
        self._runs, self._registry, self._bus = runs, registry, bus

    # ---- what the hot paths call: a few dictionary operations each

    def run_created(self, run: Run) -> None:
        self.runs_created.inc(self.endpoints(run.endpoint))

    def run_ended(self, run: Run) -> None:
        """``run`` was just stored in a terminal status."""
        endpoint, status = self.endpoints(run.endpoint), run.status.value
        self.runs_finished.inc(endpoint, status)
        end = run.finished_at or run.updated_at
        self.run_seconds.observe(max(end - run.created_at, 0.0), endpoint, status)

    def first_event(self, endpoint: str, seconds: float) -> None:
        self.first_event_seconds.observe(max(seconds, 0.0), self.endpoints(endpoint))

    def usage(self, report: UsageReport) -> None:
        tenant = self.tenants(report.tenant)
        for entry in report.models:
            model, totals = self.models(entry.model), entry.totals
            self.tokens.add(totals.input_tokens, model, tenant, "input")
            self.tokens.add(totals.output_tokens, model, tenant, "output")
            self.cost.add(totals.cost, model, tenant)
            if totals.calls - totals.unpriced_calls:
                self.llm_calls.add(totals.calls - totals.unpriced_calls, model, tenant, "true")
            if totals.unpriced_calls:
                self.llm_calls.add(totals.unpriced_calls, model, tenant, "false")

    def instrument(self, store: object) -> None:
        """Time the operations of a durable store (SQLite, PostgreSQL: those with an ``observe`` hook)."""
        kind = _STORES.get(type(store).__name__)
        if kind is not None and hasattr(store, "observe"):
            store.observe = self.store_observer(kind)

    def store_observer(self, store: str) -> Callable[[str, float, bool], None]:
        """What a durable store calls after each operation: its name, seconds, and whether it failed."""
        seconds, errors = self.store_seconds, self.store_errors

        def observe(op: str, elapsed: float, failed: bool) -> None:
            seconds.observe(elapsed, store, op)
            if failed:
                errors.inc(store, op)

        return observe

    # ---- scrape time

    def counts(self) -> tuple[LabelledCount, ...]:
        return (
            self.rate_limited,
            self.budget_refused,
            self.budget_alerts,
            self.runs_over_budget,
            self.requests,
            self.auth_refused,
            self.runs_created,
            self.runs_finished,
            self.store_errors,
            self.bus_errors,
            self.worker_refused,
            self.tokens,
            self.cost,
            self.llm_calls,
        )

    def histograms(self) -> tuple[LabelledHistogram, ...]:
        return (
            self.hook_seconds,
            self.run_seconds,
            self.first_event_seconds,
            self.store_seconds,
            self.bus_seconds,
        )

    def collect(self) -> Iterator[Metric]:
        for count in self.counts():
            yield count.family()
        for histogram in self.histograms():
            yield histogram.family()
        yield self.streams.family()
        yield from self._state()

    def _state(self) -> Iterator[Metric]:
        """Gauges read from the gateway's own structures (scrape thread: each read is one copy of a dict or a
        list, which the GIL keeps whole while the event loop changes them)."""
        runs, registry, bus = self._runs, self._registry, self._bus
        if runs is None or registry is None or bus is None:
            return
        queued = GaugeMetricFamily(
            "fastagentic_queue_depth",
            "Runs queued on this replica waiting for a worker slot (or a concurrency slot), by endpoint: the "
            "autoscaling signal.",
            labels=("endpoint",),
        )
        workers = GaugeMetricFamily(
            "fastagentic_endpoint_workers",
            "Workers connected to this replica that serve the endpoint (0: registered, none here now).",
            labels=("endpoint",),
        )
        free = GaugeMetricFamily(
            "fastagentic_endpoint_free_slots",
            "Free run slots of this replica's workers that serve the endpoint.",
            labels=("endpoint",),
        )
        depth: dict[str, int] = {}
        for name, waiting in runs.queue_depths().items():
            label = self.endpoints(name)
            depth[label] = depth.get(label, 0) + waiting
        seen: dict[str, tuple[int, int]] = {}
        for endpoint in list(registry):
            label = self.endpoints(endpoint.name)
            serving = list(endpoint.workers)
            workers_here, slots = seen.get(label, (0, 0))
            seen[label] = (workers_here + len(serving), slots + sum(worker.free for worker in serving))
            depth.setdefault(label, 0)
        for label, value in depth.items():
            queued.add_metric((label,), value)
        for label, (workers_here, slots) in seen.items():
            workers.add_metric((label,), workers_here)
            free.add_metric((label,), slots)
        connected = list(runs.workers.values())
        yield queued
        yield workers
        yield free
        yield _gauge("fastagentic_worker_connections", "Workers connected to this replica.", len(connected))
        yield _gauge(
            "fastagentic_worker_slots",
            "Run slots of the workers connected to this replica (their capacity).",
            sum(worker.capacity for worker in connected),
        )
        yield _gauge(
            "fastagentic_active_runs",
            "Runs held by this replica's workers now (running, or waiting for input in place).",
            sum(len(worker.runs) for worker in connected),
        )
        yield _gauge(
            "fastagentic_store_up",
            "1 while the durable run store answers (the reaper probes it every lease_ttl / 3), else 0.",
            1 if runs.store_ok else 0,
        )
        yield _gauge(
            "fastagentic_bus_up",
            "1 while the cluster bus is connected (always 1 for the in-process bus of one gateway), else 0.",
            1 if bus.connected else 0,
        )

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` on ``host:port`` (prometheus-client's HTTP server, in a thread)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, self._server.server_port)

    @property
    def port(self) -> int:
        """The port ``/metrics`` is served on (the one bound when ``metrics_port`` asked for any)."""
        return 0 if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


_SSE = b"text/event-stream"
_CONTENT_TYPE = b"content-type"


class RequestMetrics:
    """ASGI middleware in front of the whole HTTP app (installed only with ``metrics_port``): counts each
    request by front, route template (Litestar's ``path_template``; ``none`` when no route matched or the
    access edge refused it) and status, and keeps the gauge of open SSE responses and WebSocket sessions.
    Per request: one small object to see the status go by, and two dictionary increments."""

    __slots__ = ("app", "metrics", "protocol_of")

    def __init__(self, app: Any, metrics: GatewayMetrics, protocol_of: Callable[[str], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.protocol_of = protocol_of

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            watch = _Response(send, self.metrics.streams, self.protocol_of(scope["path"]))
            try:
                await self.app(scope, receive, watch.send)
            finally:
                if watch.streaming:
                    self.metrics.streams.dec(watch.front, "sse")
                self.metrics.requests.inc(
                    watch.front, scope.get("path_template", "none"), str(watch.status or 500)
                )
        elif kind == "websocket":
            front = self.protocol_of(scope["path"])
            self.metrics.streams.inc(front, "websocket")
            try:
                await self.app(scope, receive, send)
            finally:
                self.metrics.streams.dec(front, "websocket")
        else:
            await self.app(scope, receive, send)


class _Response:
    __slots__ = ("front", "status", "streaming", "streams", "upstream")

    def __init__(self, upstream: Any, streams: LabelledGauge, front: str) -> None:
        self.upstream = upstream
        self.streams = streams
        self.front = front
        self.status = 0
        self.streaming = False

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name.lower() == _CONTENT_TYPE:
                    if value.startswith(_SSE):
                        self.streaming = True
                        self.streams.inc(self.front, "sse")
                    break
        await self.upstream(message)


_STORES = {"SQLiteRunStore": "sqlite", "PostgresRunStore": "postgresql"}
_OPS: dict[Any, str] = {}


def operation(fn: Callable[..., Any]) -> str:
    """The store method a store's inner function belongs to (``SQLiteRunStore.get.<locals>.get``: ``get``),
    the ``op`` label of the store metrics; remembered per code object."""
    code = getattr(fn, "__code__", None)
    name = _OPS.get(code)
    if name is None:
        parts = getattr(fn, "__qualname__", "").split(".")
        name = _OPS[code] = (parts[1] if len(parts) > 2 else parts[-1]).lstrip("_") or "other"
    return name
