"""Typed errors: one class per kind of answer a caller handles differently.

Every error the client raises is a ``FastAgenticError``. Errors from an HTTP answer carry its ``status``,
the gateway's stable ``type`` (``not_found``, ``rate_limited``…) and the decoded ``body``.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import msgspec

from ._models import RunError

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "FastAgenticError",
    "FieldError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RunFailedError",
    "ServerError",
    "UnavailableError",
    "ValidationError",
]


class FieldError(msgspec.Struct, frozen=True):
    """One problem with an input: ``path`` is a JSON path (``$``, ``$.items[0].name``)."""

    path: str
    message: str


class FastAgenticError(Exception):
    """The base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        body: dict[str, Any] | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.body = body or {}
        self.headers = headers if headers is not None else httpx.Headers()
        # The X-Request-ID the call was sent with (every retry too): it names it in the gateway's audit log.
        self.request_id: str | None = None

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.status} {self.type or 'error'}: {self.message}"


class APIConnectionError(FastAgenticError):
    """The gateway could not be reached, or the connection broke, and retries did not help."""


class APITimeoutError(APIConnectionError):
    """The call took longer than its timeout."""


class BadRequestError(FastAgenticError):
    """400 ``malformed_request`` (body not JSON, a bad header or query parameter), 405, 413."""


class AuthenticationError(FastAgenticError):
    """401 ``unauthenticated``: no credential, or one that does not verify (expired, revoked…)."""


class PermissionDeniedError(FastAgenticError):
    """403 ``insufficient_scope``: the caller lacks ``required_scopes``."""

    @property
    def required_scopes(self) -> list[str]:
        return list(self.body.get("required_scopes") or [])


class NotFoundError(FastAgenticError):
    """404: no such endpoint, run, checkpoint or resource (or one of another tenant)."""


class ConflictError(FastAgenticError):
    """409: an ``Idempotency-Key`` reused with another body, cancelling a finished run, resuming a run
    that does not wait, replaying a run without checkpoints, a tool call that was cancelled."""

    @property
    def run_id(self) -> str | None:
        return self.body.get("run_id")


class ValidationError(FastAgenticError):
    """422 ``validation_error``: the input does not match the endpoint's (or the interrupt's) schema.
    ``errors`` names each wrong field by its JSON path."""

    @property
    def errors(self) -> list[FieldError]:
        return [msgspec.convert(e, FieldError) for e in self.body.get("errors") or []]


class RateLimitError(FastAgenticError):
    """429: a rate limit (``rate_limited``), concurrency limit (``concurrency_limited``) or budget
    (``budget_exceeded``) refused the call. ``retry_after`` is how many seconds to wait."""

    @property
    def retry_after(self) -> float | None:
        return retry_after_of(self.headers, self.body)


class UnavailableError(FastAgenticError):
    """503: no worker serves the endpoint now (``no_worker``), or a part the gateway depends on is down
    (``unavailable``). ``retry_after`` is how many seconds to wait."""

    @property
    def retry_after(self) -> float | None:
        return retry_after_of(self.headers, self.body)


class ServerError(FastAgenticError):
    """5xx other than ``run_failed`` and 503: a fault in the gateway (or a proxy in front of it)."""


class RunFailedError(FastAgenticError):
    """The run failed or passed its deadline: ``error_type`` is the remote exception's class name
    (``ValueError``, ``Timeout``, ``WorkerLost``…), ``error_message`` its text."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None,
        run_status: str,
        error: RunError | None,
        status: int | None = None,
        type: str | None = None,
        body: dict[str, Any] | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message, status=status, type=type, body=body, headers=headers)
        self.run_id = run_id
        self.run_status = run_status
        self.error = error

    @property
    def error_type(self) -> str:
        return self.error.type if self.error is not None else ""

    @property
    def error_message(self) -> str:
        return self.error.message if self.error is not None else ""

    @classmethod
    def of_run(cls, run_id: str, status: str, error: RunError | None) -> RunFailedError:
        detail = f"{error.type}: {error.message}" if error is not None else "no error reported"
        return cls(f"run {run_id} ended {status}: {detail}", run_id=run_id, run_status=status, error=error)


_BY_STATUS: dict[int, type[FastAgenticError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: BadRequestError,
    409: ConflictError,
    413: BadRequestError,
    422: ValidationError,
    429: RateLimitError,
    503: UnavailableError,
}


def retry_after_of(headers: httpx.Headers, body: dict[str, Any] | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds; an HTTP date counts from now), else the
    body's ``retry_after``; None when neither says."""
    raw = headers.get("retry-after")
    if raw is not None:
        raw = raw.strip()
        seconds: float | None
        try:
            seconds = float(raw)
        except ValueError:
            seconds = _seconds_until(raw)
        if seconds is not None and math.isfinite(seconds):
            return max(0.0, seconds)
    value = (body or {}).get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(0.0, float(value))
    return None


def _seconds_until(http_date: str) -> float | None:
    import email.utils
    import time

    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def error_from_response(status: int, headers: httpx.Headers, content: bytes) -> FastAgenticError:
    """The typed error of a non-2xx answer (its body is the gateway's JSON error, or anything a proxy sent)."""
    try:
        decoded = msgspec.json.decode(content) if content else {}
    except msgspec.DecodeError:
        decoded = {}
    body: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
    kind = body.get("type") if isinstance(body.get("type"), str) else None
    message = body.get("message") if isinstance(body.get("message"), str) else None
    if message is None:
        text = content[:200].decode("utf-8", errors="replace").strip()
        message = text or httpx.codes.get_reason_phrase(status) or f"HTTP {status}"
    if kind == "run_failed":
        error = body.get("error")
        run_error = msgspec.convert(error, RunError) if isinstance(error, dict) else None
        return RunFailedError(
            message,
            run_id=body.get("run_id"),
            run_status="timed_out" if run_error is not None and run_error.type == "Timeout" else "failed",
            error=run_error,
            status=status,
            type=kind,
            body=body,
            headers=headers,
        )
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else FastAgenticError)
    return cls(message, status=status, type=kind, body=body, headers=headers)
