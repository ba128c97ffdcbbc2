"""The alert rules and the Grafana dashboard in deploy/: valid, tested, and about metrics the gateway has.

``promtool`` (Debian's ``prometheus`` package) checks the rules and runs their unit tests
(deploy/prometheus/alerts.test.yaml): the installed one, or Debian's package fetched once into the cache
(tests/debian_tools.py); those tests are skipped, saying why, only when neither can be had (and fail then
under ``FASTAGENTIC_REQUIRE_SERVICES=1``). The rest (every metric named exists, the chart's copy of
the rules is the same file) needs nothing beyond the venv.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastagentic_gateway.telemetry.metrics import GatewayMetrics
from tests.debian_tools import require_debian_program

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "fastagentic.json"
CHART_RULES = ROOT / "charts" / "fastagentic" / "files" / "alerts.yaml"
RUNBOOK = ROOT / "docs" / "runbooks" / "alerts.md"
METRICS_DOC = ROOT / "docs" / "reference" / "metrics.md"
NAME = re.compile(r"\bfastagentic_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def exported_names() -> set[str]:
    """Every family name a gateway exports, as Prometheus stores it (counters with _total, histograms'
    _bucket/_sum/_count), from the collector itself."""
    metrics = GatewayMetrics()
    names = {count.name + "_total" for count in metrics.counts()}
    for histogram in metrics.histograms():
        names |= {histogram.name + suffix for suffix in SUFFIXES[1:]}
    names.add(metrics.streams.name)
    # Read at scrape time from the gateway's parts (GatewayMetrics._state).
    names |= {
        "fastagentic_queue_depth",
        "fastagentic_endpoint_workers",
        "fastagentic_endpoint_free_slots",
        "fastagentic_worker_connections",
        "fastagentic_worker_slots",
        "fastagentic_active_runs",
        "fastagentic_store_up",
        "fastagentic_bus_up",
    }
    return names


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    exprs = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        exprs += [target["expr"] for target in panel.get("targets", [])]
    return exprs


def test_the_scrape_time_names_are_the_collectors() -> None:
    source = (ROOT / "gateway" / "fastagentic_gateway" / "telemetry" / "metrics.py").read_text()
    literal = set(re.findall(r'"(fastagentic_[a-z_]+)"', source))
    counted = {
        name.removesuffix(suffix) for name in exported_names() for suffix in SUFFIXES if name.endswith(suffix)
    }
    assert {name for name in exported_names() if not name.endswith(SUFFIXES)} <= literal
    assert counted <= literal


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_debian_program("prometheus", "promtool")


def test_promtool_checks_the_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_and_in_the_runbook() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    runbook = RUNBOOK.read_text()
    for rule in rules():
        assert rule["alert"] in tested, f"{rule['alert']} fires in no promtool test"
        assert f"## {rule['alert']}" in runbook, f"{rule['alert']} has no section in {RUNBOOK.name}"
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor == rule["alert"].lower()


def test_rules_and_dashboard_name_only_metrics_the_gateway_exports() -> None:
    exported = exported_names()
    for expr in [rule["expr"] for rule in rules()] + dashboard_exprs():
        unknown = set(NAME.findall(expr)) - exported
        assert not unknown, f"{expr!r} names metrics no gateway exports: {sorted(unknown)}"


def test_every_exported_metric_is_documented() -> None:
    documented = METRICS_DOC.read_text()
    for name in exported_names():
        base = name
        for suffix in SUFFIXES:
            if name.endswith(suffix) and not name.endswith("_seconds_count"):
                base = name.removesuffix(suffix)
        base = base.removesuffix("_count") if base.endswith("_seconds_count") else base
        assert f"`{base}" in documented, f"{base} is not in {METRICS_DOC.name}"


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel's query, Grafana's variables given values, as a recording rule promtool parses."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    substituted = [
        expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$endpoint", ".*")
        for expr in exprs
    ]
    groups = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(substituted)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(groups))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_has_its_rows_and_an_endpoint_variable() -> None:
    document = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in document["panels"] if panel["type"] == "row"]
    assert rows == ["Overview", "Per endpoint", "Workers", "Cost"]
    variables = {variable["name"]: variable for variable in document["templating"]["list"]}
    assert "label_values(fastagentic_endpoint_workers, endpoint)" in variables["endpoint"]["definition"]
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))


def test_the_chart_ships_the_same_rules() -> None:
    assert CHART_RULES.read_text() == RULES.read_text(), (
        "charts/fastagentic/files/alerts.yaml must be a copy of deploy/prometheus/alerts.yaml"
    )
