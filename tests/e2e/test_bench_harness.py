"""``make bench`` runs end to end (a tiny configuration). Speed is reported by the bench, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.services import require_nats, require_postgres


def test_bench_harness_produces_every_figure_and_verdict(tmp_path: Path) -> None:
    require_postgres()  # the durable PostgreSQL rows need it (skips, or fails under REQUIRE_SERVICES)
    require_nats()  # and the two-replica rows NATS
    out = tmp_path / "results"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench",
            "--seconds",
            "0.3",
            "--streams",
            "20",
            "--tokens",
            "300",
            "--scale-runs",
            "200",
            "--scale-seconds",
            "3",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=480,
    )
    results = json.loads((out / "latest.json").read_text())
    for step in (
        "floor_c1",
        "floor_c32",
        "invoke_c1",
        "invoke_c32",
        "invoke_jwt_c32",
        "invoke_jwt_uncached_c32",
        "invoke_api_key_c32",
        "invoke_rate_limited_c32",
        "durable_sqlite_c1",
        "durable_sqlite_c32",
        "durable_postgresql_c1",
        "durable_postgresql_c32",
        "cluster_c1",
        "cluster_c32",
        "cluster_baseline_c32",
        "invoke_rate_limited_cluster_c32",
        "mcp_2026_call_c1",
        "mcp_2026_call_c32",
        "mcp_2025_call_c1",
        "mcp_2025_call_c32",
        "mcp_2026_list_c32",
        "mcp_2025_list_c32",
        "a2a_send_c1",
        "a2a_send_c32",
        "a2a_stream_c1",
        "a2a_stream_c32",
    ):
        assert results[step]["requests"] > 0 and results[step]["errors"] == 0, step
    assert results["stream"]["tokens"] == 300
    assert results["idle_streams"]["streams"] == 20
    assert set(results["verdicts"]) == {
        "invoke_c32_ratio",
        "invoke_c32_p99_ms",
        "invoke_c1_added_ms",
        "tokens_per_s",
        "stream_kb",
        "mcp_2026_tools_list_per_s",
        "mcp_2025_tools_list_per_s",
        "invoke_jwt_c32_ratio",
        "invoke_jwt_uncached_c32_ratio",
        "invoke_api_key_c32_ratio",
        "invoke_rate_limited_c32_ratio",
        "invoke_rate_limited_cluster_c32_ratio",
        "tool_check_added_p50_ms",
        "durable_sqlite_c32_x_ephemeral",
        "durable_sqlite_c1_p50_x_ephemeral",
        "durable_postgresql_c32_x_ephemeral",
        "cluster_c32_x_durable_postgresql",
        "mcp_2026_call_c32_ratio",
        "mcp_2025_call_c32_ratio",
        "a2a_send_c32_ratio",
    }
    for name in ("scale_drain_sqlite", "scale_drain_postgresql"):
        assert results[name]["runs"] == 200 and results[name]["errors"] == 0, results[name]
    assert results["scale_streams"]["runs"] > 0 and results["scale_streams"]["errors"] == 0
    table = (out / "latest.md").read_text()
    assert "| REST invoke, ephemeral, c=32 |" in table
    assert "| REST invoke, ephemeral, with a JWT (RS256, verified on every request), c=32 |" in table
    assert "| MCP tools/call, 2025-11-25 session, c=32 |" in table
    assert (
        "| REST invoke, ephemeral, on replica A of two, one shared rate limit (not reached), c=32 |" in table
    )
    assert "| A2A SendMessage (blocking), JSON-RPC, c=32 |" in table
    assert "| durable runs queued, then drained by 4 workers, SQLite |" in table
    assert "| invoke_telemetry_off_twin_c32 |" in table  # the paired comparisons, with their rounds
