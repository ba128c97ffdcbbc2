"""Prometheus metrics, end to end: a real gateway serving real workers takes a short run of traffic, its
``/metrics`` port is read by the official parser, and a real Prometheus (the Debian ``prometheus``
package's binary) started here scrapes it and answers PromQL through its HTTP API.

The ``prometheus`` binary is the installed one, or Debian's package fetched once into the cache
(tests/debian_tools.py); the test is skipped, saying why, only when neither can be had (and fails then
under ``FASTAGENTIC_REQUIRE_SERVICES=1``). The direct scrape test always runs."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cluster, Gateway, free_port, wait_until
from tests.debian_tools import require_debian_program


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> (sorted labels) -> value, from the gateway's /metrics port."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for key, v in samples.get(name, {}).items() if all((k, labels[k]) in key for k in labels))


def start_gateway(cluster: Cluster) -> tuple[Gateway, int]:
    metrics_port = free_port()
    gateway = cluster.start_gateway(
        metrics_port=str(metrics_port),
        prices='{"big-model": {"input_per_million": 2.0, "output_per_million": 8.0}}',
    )
    cluster.start_worker("tests.workers.basic:app", "--slots", "1")
    cluster.start_worker("tests.workers.budget_worker:app")
    return gateway, metrics_port


def traffic(gateway: Gateway) -> None:
    """Runs that succeed, fail, stream, report usage, and a 404."""
    with gateway.client() as http:
        for i in range(3):
            response = http.post("/v1/agents/echo/invoke", json={"text": f"hi {i}"})
            assert response.status_code == 200, response.text
        failed = http.post("/v1/agents/fail/invoke", json={"message": "planned"})
        assert failed.json()["status"] == "failed", failed.text
        with http.stream("POST", "/v1/agents/echo/stream", json={"text": "streamed"}) as stream:
            assert stream.status_code == 200
            assert "text/event-stream" in stream.headers["content-type"]
            body = "".join(stream.iter_text())
        assert "streamed" in body
        spent = http.post("/v1/agents/spend/invoke", json={"tokens": 1000})
        assert spent.status_code == 200, spent.text
        assert http.get("/v1/runs/no-such-run").status_code == 404


def test_metrics_count_requests_runs_usage_workers_and_the_store(cluster: Cluster) -> None:
    gateway, port = start_gateway(cluster)
    traffic(gateway)
    samples = scrape(port)
    # Requests by front, route template (never a run id) and status.
    assert value(
        samples, "fastagentic_http_requests_total", front="rest", route="/v1/agents/{name}/invoke",
        status="200",
    ) == 5  # fmt: skip
    assert value(samples, "fastagentic_http_requests_total", route="/v1/runs/{run_id}", status="404") == 1
    assert not [k for k in samples["fastagentic_http_requests_total"] if "no-such-run" in str(k)]
    # Runs by endpoint and final status, with their durations and first events.
    assert value(samples, "fastagentic_runs_finished_total", endpoint="echo", status="succeeded") == 4
    assert value(samples, "fastagentic_runs_finished_total", endpoint="fail", status="failed") == 1
    assert value(samples, "fastagentic_runs_created_total", endpoint="echo") == 4
    assert value(samples, "fastagentic_run_seconds_count", endpoint="echo", status="succeeded") == 4
    assert value(samples, "fastagentic_run_first_event_seconds_count", endpoint="echo") >= 1
    # Usage from the worker's llm_end: tokens and cost by model and tenant.
    assert value(samples, "fastagentic_llm_tokens_total", model="big-model", direction="input") == 1000
    assert value(samples, "fastagentic_llm_cost_total", model="big-model") == pytest.approx(0.002)
    # Workers, slots, the store and the bus, read at scrape time.
    assert value(samples, "fastagentic_worker_connections") == 2
    assert value(samples, "fastagentic_endpoint_workers", endpoint="echo") == 1
    assert value(samples, "fastagentic_endpoint_free_slots", endpoint="echo") == 1
    assert value(samples, "fastagentic_store_up") == 1 and value(samples, "fastagentic_bus_up") == 1
    # Five durable runs, each created already started on a free worker (one create) and finished (one
    # transition), beside the gateway's own reads and writes.
    assert value(samples, "fastagentic_store_seconds_count", store="sqlite", op="create") >= 5
    assert value(samples, "fastagentic_store_seconds_count", store="sqlite", op="transition") >= 5
    assert value(samples, "fastagentic_active_streams", kind="sse") == 0


def test_queue_depth_and_open_streams_while_they_last(cluster: Cluster) -> None:
    gateway, port = start_gateway(cluster)
    with gateway.client() as http:
        # One slot: the first run takes it, the next two queue behind it.
        ids = [
            http.post("/v1/agents/steps/runs", json={"steps": 20, "delay": 0.1}).json()["run_id"]
            for _ in range(3)
        ]
        wait_until(
            lambda: value(scrape(port), "fastagentic_queue_depth", endpoint="steps") == 2,
            what="2 runs queued",
        )
        samples = scrape(port)
        assert value(samples, "fastagentic_active_runs") == 1
        assert value(samples, "fastagentic_endpoint_free_slots", endpoint="echo") == 0
        # An SSE follower is an open stream until it ends.
        opened = threading.Event()

        def follow() -> None:
            with (
                gateway.client() as follower,
                follower.stream("GET", f"/v1/runs/{ids[0]}/events") as stream,
            ):
                for _ in stream.iter_lines():
                    opened.set()

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        assert opened.wait(10)
        assert value(scrape(port), "fastagentic_active_streams", front="rest", kind="sse") == 1
        for run_id in ids:
            http.post(f"/v1/runs/{run_id}/cancel", json={})
        thread.join(10)
        wait_until(
            lambda: value(scrape(port), "fastagentic_active_streams", kind="sse") == 0, what="stream closed"
        )
        samples = scrape(port)
        assert value(samples, "fastagentic_queue_depth", endpoint="steps") == 0
        assert value(samples, "fastagentic_runs_finished_total", endpoint="steps", status="cancelled") == 3


class Prometheus:
    """A Prometheus server scraping ``target`` every half second, its data in ``tmp``."""

    def __init__(self, program: str, tmp: Path, target: str) -> None:
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        config = tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 500ms, evaluation_interval: 500ms}\n"
            "scrape_configs:\n"
            "  - job_name: fastagentic\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.log = (tmp / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                program, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
            ],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def test_a_real_prometheus_scrapes_the_gateway(cluster: Cluster, tmp_path: Path) -> None:
    program = require_debian_program("prometheus", "prometheus")
    gateway, port = start_gateway(cluster)
    prometheus = Prometheus(program, tmp_path / "prometheus", f"127.0.0.1:{port}")
    try:
        wait_until(prometheus.ready, timeout=30, what="prometheus ready")
        wait_until(
            lambda: any(r["value"][1] == "1" for r in prometheus.query('up{job="fastagentic"}')),
            timeout=30,
            what="prometheus to scrape the gateway",
        )
        traffic(gateway)
        with gateway.client() as http:  # two runs wait behind one on the single slot of `steps`
            ids = [
                http.post("/v1/agents/steps/runs", json={"steps": 30, "delay": 0.1}).json()["run_id"]
                for _ in range(3)
            ]

            def finished() -> list[dict[str, Any]]:
                return prometheus.query("sum by (endpoint, status) (fastagentic_runs_finished_total)")

            wait_until(lambda: len(finished()) >= 3, timeout=20, what="run counts in prometheus")
            by_series = {
                (r["metric"]["endpoint"], r["metric"]["status"]): float(r["value"][1]) for r in finished()
            }
            assert by_series[("echo", "succeeded")] == 4
            assert by_series[("fail", "failed")] == 1
            assert by_series[("spend", "succeeded")] == 1
            wait_until(
                lambda: [
                    r
                    for r in prometheus.query('fastagentic_queue_depth{endpoint="steps"}')
                    if r["value"][1] == "2"
                ],
                timeout=20,
                what="queue depth 2 in prometheus",
            )
            tokens = prometheus.query('sum by (model) (fastagentic_llm_tokens_total{direction="input"})')
            assert [(r["metric"]["model"], r["value"][1]) for r in tokens] == [("big-model", "1000")]
            p99 = prometheus.query(
                'histogram_quantile(0.99, sum by (le) (fastagentic_run_seconds_bucket{endpoint="echo"}))'
            )
            assert p99 and 0 < float(p99[0]["value"][1]) <= 5
            for run_id in ids:
                http.post(f"/v1/runs/{run_id}/cancel", json={})
    finally:
        prometheus.close()
