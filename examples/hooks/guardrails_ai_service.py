"""Guardrails AI behind FastAgentic's webhook hook (``type = "webhook"``, docs/hooks/guardrails-ai.md).

Run it in an environment of its own (``guardrails-ai`` cannot be installed beside the gateway)::

    python -m venv guardrails-venv && guardrails-venv/bin/pip install guardrails-ai==0.11.0
    GUARDRAILS_WEBHOOK_SECRET=<at least 32 characters> guardrails-venv/bin/python guardrails_ai_service.py 8300 [host]

(``webhook_service.py``, the HTTP server and signature check it shares with nemo_service.py, must sit beside
it.) It serves ``POST /`` (any path): the gateway's signed ``HookContext``. The signature
(``X-FastAgentic-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``) is checked over the raw
body first (401 when it does not match or is older than 300 s). Then every string in the payload goes
through one ``guardrails.Guard`` and the answer is

* ``{"type": "reject", "reason": ...}`` when a validator whose ``on_fail`` is not ``"fix"`` failed (the
  reason names the validator and carries its message),
* ``{"type": "modify", "payload": ...}`` with the fixed strings when only ``"fix"`` validators failed,
* ``{"type": "proceed"}`` otherwise.

The validators are defined here with ``@register_validator`` and run locally: nothing is downloaded from
the Guardrails Hub and Guardrails' own telemetry is switched off, so the service runs without network. Put
your own validators (or Hub ones you installed) in ``build_guard``. ``GET /healthz`` answers 200.

Environment: ``GUARDRAILS_WEBHOOK_SECRET`` (the hook's ``secret_env`` value, required),
``GUARDRAILS_BANNED_WORDS`` (comma-separated, default ``forbidden``).
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

os.environ.setdefault("GUARD_HISTORY_ENABLED", "false")  # a long-running service keeps no call history

from guardrails import Guard, OnFailAction  # type: ignore[import-not-found]
from guardrails.classes.rc import RC  # type: ignore[import-not-found]
from guardrails.settings import settings  # type: ignore[import-not-found]
from guardrails.validators import (  # type: ignore[import-not-found]
    FailResult,
    PassResult,
    Validator,
    register_validator,
)
from webhook_service import serve  # type: ignore[import-not-found]  # beside the script (sys.path[0])

SECRET_ENV = "GUARDRAILS_WEBHOOK_SECRET"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@register_validator(name="fastagentic/banned-words", data_type="string")
class BannedWords(Validator):
    """Fails when the text contains one of ``words`` (case-insensitive); nothing to fix."""

    def __init__(self, words: list[str], on_fail: str | None = None) -> None:
        super().__init__(on_fail=on_fail, words=words)
        self.words = [word.lower() for word in words]

    def _validate(self, value: Any, metadata: dict[str, Any]) -> PassResult | FailResult:
        found = [word for word in self.words if word in str(value).lower()]
        if found:
            return FailResult(error_message=f"the text contains a banned word: {', '.join(found)}")
        return PassResult()


@register_validator(name="fastagentic/mask-emails", data_type="string")
class MaskEmails(Validator):
    """Fails when the text contains an email address; the fix masks each as ``[email]``."""

    def _validate(self, value: Any, metadata: dict[str, Any]) -> PassResult | FailResult:
        fixed = EMAIL.sub("[email]", str(value))
        if fixed != value:
            return FailResult(error_message="the text contains an email address", fix_value=fixed)
        return PassResult()


def build_guard() -> Guard:
    guard = Guard()
    # Guard() reads ~/.guardrailsrc (metrics on by default): switch the Hub telemetry off, for the guard and
    # for the validators made next.
    guard.configure(allow_metrics_collection=False)
    settings.rc = RC(enable_metrics=False, use_remote_inferencing=False)
    words = [
        w.strip() for w in os.environ.get("GUARDRAILS_BANNED_WORDS", "forbidden").split(",") if w.strip()
    ]
    return guard.use(BannedWords(words=words, on_fail="noop"), MaskEmails(on_fail="fix"))


class Checker:
    """Runs the guard on one string of a payload (``text``, the service's check); one call at a time (a Guard
    is not documented as thread-safe)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.lock = threading.Lock()
        validators = guard.get_validators("output")
        # A summary names its validator by class: say the registered name, and know which ones fix.
        self.names = {type(v).__name__: v.rail_alias for v in validators}
        self.fixers = {type(v).__name__ for v in validators if v.on_fail_descriptor == OnFailAction.FIX}

    def text(self, value: str) -> tuple[str, list[str]]:
        """The (possibly fixed) text, and why it is refused (empty: it is not)."""
        with self.lock:
            outcome = self.guard.validate(value)
        refused = [
            f"{self.names.get(summary.validator_name, summary.validator_name)}: {summary.failure_reason}"
            for summary in outcome.validation_summaries or []
            if summary.validator_status == "fail" and summary.validator_name not in self.fixers
        ]
        fixed = outcome.validated_output
        return (fixed if isinstance(fixed, str) else value), refused


def main() -> None:
    serve("guardrails-ai service", SECRET_ENV, 8300, "guardrails-ai", lambda _: Checker(build_guard()).text)


if __name__ == "__main__":
    main()
