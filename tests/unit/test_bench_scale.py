"""The scale rows of ``make bench`` (tests/bench/scale.py) at a tiny size, through the real functions: a real
gateway, real bench workers and real client processes, loopback only. 200 durable runs queued and drained
(on SQLite, and on PostgreSQL when it is reachable), 50 clients streaming for 3 s; every run must succeed,
and the rows must have the shape ``make bench`` prints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.bench.__main__ import ONLY, Servers
from tests.bench.scale import bench_scale, scale_line, scale_markdown

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_scale_rows_at_a_tiny_size(tmp_path: Path) -> None:
    assert ONLY["scale"][0] is bench_scale
    servers = Servers(tmp_path)
    body = json.dumps({"text": "hello bench", "n": 42})
    try:
        results = bench_scale(servers, tmp_path, body, 1.0, runs=200, stream_seconds=3.0, clients=50)
    finally:
        servers.stop()
    assert all(proc.poll() is not None for proc in servers.procs)  # everything it started has stopped

    drains = [results["scale_drain_sqlite"]]
    if isinstance(results["scale_drain_postgresql"], dict):
        drains.append(results["scale_drain_postgresql"])
    else:
        assert "not measured" in results["scale_drain_postgresql"]
    for drain in drains:
        assert drain["runs"] == drain["accepted"] == drain["succeeded"] == 200, drain
        assert drain["errors"] == drain["submit_errors"] == drain["failed"] == 0, drain
        assert drain["drained"] and drain["by_status"]["succeeded"] == 200
        assert drain["by_status"]["queued"] == drain["by_status"]["running"] == 0
        assert drain["workers"] == 4
        assert 0 < drain["first_run_s"] < drain["drain_s"] < 120
        assert drain["submit_rps"] > 0 and drain["drain_rps"] > 0
        assert drain["rss_before_mb"] > 0 and drain["rss_after_mb"] > 0

    streams = results["scale_streams"]
    assert streams["clients"] == 50 and streams["seconds"] == 3.0
    assert streams["errors"] == 0, streams["error_kinds"]
    # each run takes about a second (10 tokens 100 ms apart): every client finished at least one
    assert streams["runs"] >= 50
    assert 0 < streams["ttfe_p50_ms"] <= streams["ttfe_p99_ms"] < 30_000
    assert streams["run_p50_ms"] >= 1000  # the drip's ten intervals were streamed, not skipped
    assert all(streams[key] > 0 for key in ("rss_start_mb", "rss_10s_mb", "rss_end_mb"))
    assert not math.isnan(streams["gateway_cpu_share"]) and streams["gateway_cpu_share"] > 0

    table = "\n".join(scale_markdown(results))
    assert "drained by 4 workers, SQLite | 200 |" in table
    assert "concurrent SSE streaming runs" in table and "| 50 | 3 |" in table
    assert "0 errors" in scale_line("scale_streams", streams)
