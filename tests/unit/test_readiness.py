"""``fastagentic-gateway check``: the verdicts for a development configuration and a production one, as the
command prints them (text and JSON) and exits, through the settings loader ``serve`` uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastagentic_gateway import cli

PRODUCTION = """
auth = "required"
public_url = "https://agents.example.com"
run_timeout = 600
max_attempts = 3
metrics_port = 9464
tracing = true
audit_retention = 7776000
retention = 604800

[[limits]]
name = "per-caller"
rate = "60/minute"
per = ["principal"]

[[concurrency]]
name = "per-tenant"
max = 20
per = ["tenant"]

[[hooks]]
name = "pii"
type = "pii"
points = ["on_request", "on_response"]
"""

DEVELOPMENT = """
auth = "none"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("FASTAGENTIC_", "OTEL_")):
            monkeypatch.delenv(name)


def run_check(tmp_path: Path, text: str, *extra: str) -> tuple[int, str]:
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "fastagentic_gateway", "check", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
        if "tracing = true" in text
        else {"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert not result.stderr, result.stderr
    return result.returncode, result.stdout


def verdicts(output: str) -> dict[str, bool]:
    return {item["id"]: item["passed"] for item in json.loads(output)["checks"]}


def test_a_development_configuration_fails(tmp_path: Path) -> None:
    code, output = run_check(tmp_path, DEVELOPMENT, "--json")
    assert code == 1
    report = json.loads(output)
    assert report["ok"] is False and report["min_score"] == 80
    assert report["score"] == 10  # only "no secrets in the file" passes
    assert verdicts(output) == {
        "auth": False,
        "transport": False,
        "worker_credentials": False,
        "secrets": True,
        "limits": False,
        "timeouts": False,
        "pii": False,
        "retention": False,
        "metrics": False,
        "tracing": False,
    }
    code, text = run_check(tmp_path, DEVELOPMENT)
    assert code == 1
    assert text.startswith("FastAgentic production readiness: 10/100 (below the minimum of 80)")
    assert '[FAIL] callers authenticate (20): auth = "none"' in text
    assert 'set auth = "required"' in text
    # A lower bar passes it: the threshold decides the exit code.
    assert run_check(tmp_path, DEVELOPMENT, "--min-score", "10")[0] == 0


def test_a_production_configuration_passes(tmp_path: Path) -> None:
    code, output = run_check(tmp_path, PRODUCTION, "--json")
    report = json.loads(output)
    assert code == 0, output
    assert report["score"] == 100 and report["ok"] is True
    assert all(verdicts(output).values())
    code, text = run_check(tmp_path, PRODUCTION)
    assert code == 0
    assert "100/100 (ready)" in text and "FAIL" not in text


def test_secrets_written_in_the_file_fail_the_secrets_check(tmp_path: Path) -> None:
    text = PRODUCTION.replace(
        'auth = "required"',
        'auth = "required"\nworker_token = "0123456789abcdef0123"\n'
        'store_url = "postgresql://app:hunter2@db:5432/agents"',
    )
    text += '\n[hooks.options]\napi_key = "sk-live-123"\n'
    code, output = run_check(tmp_path, text, "--json")
    (secrets,) = [item for item in json.loads(output)["checks"] if item["id"] == "secrets"]
    assert secrets["passed"] is False
    assert "worker_token" in secrets["found"]
    assert "store_url (password in the URL)" in secrets["found"]
    assert "hooks[0].options.api_key" in secrets["found"]
    assert json.loads(output)["score"] == 90 and code == 0  # 90 >= 80: passes, with the failure shown
    assert run_check(tmp_path, text, "--min-score", "95")[0] == 1


def test_tracing_needs_an_otlp_endpoint(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(PRODUCTION)
    result = subprocess.run(
        [sys.executable, "-m", "fastagentic_gateway", "check", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert verdicts(result.stdout)["tracing"] is False
    assert json.loads(result.stdout)["score"] == 95


def test_bad_min_score_and_bad_settings_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(DEVELOPMENT)
    assert cli.main(["check", "--config", str(config), "--min-score", "101"]) == 2
    assert "--min-score must be 0 to 100, not 101" in capsys.readouterr().err
    config.write_text('auth = "maybe"\n')
    assert cli.main(["check", "--config", str(config)]) == 2
    assert 'auth must be "required" or "none"' in capsys.readouterr().err
