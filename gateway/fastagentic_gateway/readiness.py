"""``fastagentic-gateway check``: a scored production-readiness report of a configuration.

It reads the settings the way ``serve`` does (defaults, the TOML file, ``FASTAGENTIC_*``, flags) and the
raw TOML file (to find secrets written in it), and scores what a production gateway should have. Each check
has a weight; the score is the share of the weights passed, 0 to 100. Nothing is contacted: a check says
what the configuration asks for, not whether the services it names answer (``/readyz`` does that).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .settings import Settings

#: Settings whose value is a secret: in the environment (from a secret store), never in a file.
SECRET_SETTINGS = ("worker_token", "approval_secret", "approval_previous_secret", "approval_smtp_password")
#: Settings that are URLs: a password in one is a secret written in the file.
URL_SETTINGS = ("store_url", "bus_url", "limits_url", "budget_webhook")
#: Option names of hooks, channels and the like whose literal values are secrets.
_SECRET_NAME = re.compile(r"(?i)(api[_-]?key|secret|password|passwd|token|authorization)")
#: The ``OTEL_*`` variables that give traces somewhere to go.
OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class Check(msgspec.Struct, frozen=True):
    """One line of the report: passed or not, what was found, and what to do when it did not pass."""

    id: str
    title: str
    weight: int
    passed: bool
    found: str
    advice: str = ""


class Report(msgspec.Struct, frozen=True):
    score: int  # 0 to 100: the share of the weights passed
    min_score: int
    ok: bool  # score >= min_score
    checks: list[Check]


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secrets_in(values: Mapping[str, Any], path: str = "") -> list[str]:
    """Where the TOML file holds a secret: secret settings, URLs with a password, secret-named options."""
    found = []
    for key, value in values.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping):
            found += _secrets_in(value, f"{where}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    found += _secrets_in(item, f"{where}[{index}].")
        elif isinstance(value, str) and value:
            if not path and key in SECRET_SETTINGS:
                found.append(where)
            elif not path and key in URL_SETTINGS and urlsplit(value).password:
                found.append(f"{where} (password in the URL)")
            elif path and _SECRET_NAME.search(key) and not key.endswith(("_env", "_file")):
                found.append(where)
    return found


def check(settings: Settings, config_file: str | None, environ: Mapping[str, str], min_score: int) -> Report:
    """The report of ``settings`` (loaded from ``config_file`` and ``environ``)."""
    checks: list[Check] = []
    auth = settings.auth == "required"
    checks.append(
        Check(
            "auth",
            "callers authenticate",
            20,
            auth,
            f'auth = "{settings.auth}"' if settings.auth else "auth is not set",
            "" if auth else 'set auth = "required" (API keys, oidc_issuers); "none" is for local development',
        )
    )
    tls = bool(settings.tls_cert_file)
    fronted = settings.public_url.startswith("https://")
    checks.append(
        Check(
            "transport",
            "TLS, on the gateway or in front of it",
            15,
            tls or fronted,
            "tls_cert_file set"
            if tls
            else "public_url is https: TLS ends in front (ingress, mesh)"
            if fronted
            else "plain HTTP and no https public_url",
            ""
            if tls or fronted
            else "set tls_cert_file + tls_key_file, or terminate TLS in front (ingress or mesh) and set "
            "public_url to its https:// address",
        )
    )
    worker_local = _loopback(settings.grpc_host)
    worker_safe = auth and (worker_local or tls)
    checks.append(
        Check(
            "worker_credentials",
            "workers authenticate, over a safe path",
            10,
            worker_safe,
            ("workers present tokens" if auth else "workers connect without credentials")
            + (
                f"; gRPC on {settings.grpc_host}"
                + (
                    " (loopback: the sidecar pod)"
                    if worker_local
                    else " with TLS"
                    if tls
                    else " in plain text"
                )
            ),
            ""
            if worker_safe
            else 'auth = "required" makes workers present worker tokens; off loopback, serve gRPC with TLS '
            "(tls_cert_file, worker_ca_file for mTLS)",
        )
    )
    written: list[str] = []
    path = config_file or environ.get("FASTAGENTIC_CONFIG")
    if path:
        with Path(path).open("rb") as handle:
            written = _secrets_in(tomllib.load(handle))
    checks.append(
        Check(
            "secrets",
            "no secrets in the settings file",
            10,
            not written,
            f"in {path}: {', '.join(written)}" if written else "none found" + (f" in {path}" if path else ""),
            ""
            if not written
            else "move them to FASTAGENTIC_* environment variables from a secret store (Kubernetes Secrets); "
            "put URL passwords in PGPASSWORD or the secret's URL",
        )
    )
    limited = bool(settings.limits or settings.concurrency)
    checks.append(
        Check(
            "limits",
            "rate or concurrency limits",
            10,
            limited,
            f"{len(settings.limits)} rate rule(s), {len(settings.concurrency)} concurrency rule(s), "
            f"{len(settings.budgets)} budget(s)",
            "" if limited else "add limits (per key or tenant) and concurrency rules; budgets cap spending",
        )
    )
    bounded = settings.run_timeout > 0 and settings.max_attempts > 1
    checks.append(
        Check(
            "timeouts",
            "run timeout and retries",
            10,
            bounded,
            f"run_timeout = {settings.run_timeout:g} s, max_attempts = {settings.max_attempts}",
            ""
            if bounded
            else "set run_timeout (0: runs may run for ever) and max_attempts >= 2 (a lost worker's run is retried)",
        )
    )
    pii = [hook.name for hook in settings.hooks if hook.type == "pii"]
    checks.append(
        Check(
            "pii",
            "a PII hook",
            10,
            bool(pii),
            f"pii hook(s): {', '.join(pii)}" if pii else "no hook of type pii",
            "" if pii else 'add a hook with type = "pii" (docs/guides/pii.md)',
        )
    )
    kept = auth and settings.audit_retention > 0 and settings.retention > 0
    checks.append(
        Check(
            "retention",
            "audit log on, audit and run retention bounded",
            5,
            kept,
            ("audit log on" if auth else "no audit log (auth off)")
            + f"; audit_retention = {settings.audit_retention:.0f} s, retention = {settings.retention:.0f} s",
            ""
            if kept
            else 'the audit log needs auth = "required"; audit_retention and retention of 0 keep records for ever',
        )
    )
    checks.append(
        Check(
            "metrics",
            "Prometheus metrics served",
            5,
            settings.metrics_port > 0,
            f"metrics_port = {settings.metrics_port}",
            "" if settings.metrics_port else "set metrics_port (docs/reference/metrics.md)",
        )
    )
    tracing = bool(getattr(settings, "tracing", False))
    endpoint = next((environ[name] for name in OTLP_ENDPOINTS if environ.get(name)), "")
    disabled = environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
    traced = tracing and bool(endpoint) and not disabled
    checks.append(
        Check(
            "tracing",
            "traces exported (OTLP)",
            5,
            traced,
            ("tracing on" if tracing else "tracing off")
            + (f", OTLP endpoint {endpoint}" if endpoint else ", no OTEL_EXPORTER_OTLP_ENDPOINT")
            + (", OTEL_SDK_DISABLED=true" if disabled else ""),
            ""
            if traced
            else "set tracing = true and OTEL_EXPORTER_OTLP_ENDPOINT (docs/guides/observability.md)",
        )
    )
    total = sum(item.weight for item in checks)
    score = round(100 * sum(item.weight for item in checks if item.passed) / total)
    return Report(score=score, min_score=min_score, ok=score >= min_score, checks=checks)


def render(report: Report) -> str:
    """The report for a terminal."""
    verdict = "ready" if report.ok else f"below the minimum of {report.min_score}"
    lines = [f"FastAgentic production readiness: {report.score}/100 ({verdict})", ""]
    for item in report.checks:
        mark = " ok " if item.passed else "FAIL"
        lines.append(f"[{mark}] {item.title} ({item.weight}): {item.found}")
        if item.advice:
            lines.append(f"       -> {item.advice}")
    return "\n".join(lines)


__all__ = ["Check", "Report", "check", "render"]
