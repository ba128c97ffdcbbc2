"""The gateway's errors, each with a stable ``type`` that every front renders in its own protocol."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .validation import FieldError


class GatewayError(Exception):
    status = 500
    type = "internal"

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra or {}  # more fields for the error body, e.g. the run id of a failed call


class MalformedRequest(GatewayError):
    status = 400
    type = "malformed_request"


class Unauthenticated(GatewayError):
    """No credential where one is required, or one that does not verify. ``challenge`` is the
    ``WWW-Authenticate`` value the front sends."""

    status = 401
    type = "unauthenticated"

    def __init__(self, message: str, *, challenge: str = "Bearer") -> None:
        super().__init__(message, headers={"WWW-Authenticate": challenge})
        self.challenge = challenge


class Forbidden(GatewayError):
    """A known caller without the scopes an endpoint (or an admin route) requires."""

    status = 403
    type = "insufficient_scope"

    def __init__(self, message: str, *, scopes: list[str]) -> None:
        wanted = " ".join(scopes)
        super().__init__(
            message,
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{wanted}"'},
            extra={"required_scopes": scopes},
        )
        self.scopes = scopes


class NotFound(GatewayError):
    status = 404
    type = "not_found"


class Conflict(GatewayError):
    status = 409
    type = "conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "payload_too_large"


class InvalidInput(GatewayError):
    status = 422
    type = "validation_error"


class RateLimited(GatewayError):
    """A limit rule refused the call. Headers: ``Retry-After`` (whole seconds) and the IETF
    ``RateLimit-Policy`` / ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers: quota ``q`` per
    window ``w`` seconds; remaining ``r`` and seconds to reset ``t``)."""

    status = 429
    type = "rate_limited"

    def __init__(self, message: str, *, rule: str, limit: int, window: float, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            message,
            headers={
                "Retry-After": str(seconds),
                "RateLimit-Policy": f'"{rule}";q={limit};w={max(1, round(window))}',
                "RateLimit": f'"{rule}";r=0;t={seconds}',
            },
            extra={"rule": rule, "retry_after": seconds},
        )
        self.rule = rule
        self.retry_after = seconds


class BudgetExceeded(GatewayError):
    """A day or month budget is spent: no new run until it resets (``Retry-After``, ``resets_at``).
    Like OpenAI's ``insufficient_quota``, a 429 whose wait is the rest of the period."""

    status = 429
    type = "budget_exceeded"

    def __init__(self, message: str, *, budget: str, resets_at: float, now: float) -> None:
        seconds = max(1, math.ceil(resets_at - now))
        super().__init__(
            message,
            headers={"Retry-After": str(seconds)},
            extra={"budget": budget, "resets_at": int(resets_at), "retry_after": seconds},
        )
        self.budget = budget


class ConcurrencyLimited(GatewayError):
    """A concurrency rule with ``when_full = "refuse"`` is full: its key has ``limit`` runs accepted and
    unfinished. ``Retry-After`` is a second: a slot frees when one of them ends, which the gateway cannot
    foresee."""

    status = 429
    type = "concurrency_limited"

    def __init__(self, message: str, *, rule: str, limit: int, retry_after: int = 1) -> None:
        super().__init__(
            message,
            headers={"Retry-After": str(retry_after)},
            extra={"rule": rule, "limit": limit, "retry_after": retry_after},
        )
        self.rule = rule
        self.limit = limit


class NoWorker(GatewayError):
    status = 503
    type = "no_worker"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class Unavailable(GatewayError):
    """A part the gateway depends on (the run store, the cluster bus) is unreachable right now."""

    status = 503
    type = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class StoreUnavailable(Unavailable):
    """The run store cannot be reached; nothing was changed by the failed operation, or it is unknown
    whether a write committed (transitions are conditional and event appends idempotent, so retrying is safe)."""


class RunFailed(GatewayError):
    """A tool, resource or prompt call whose worker function raised."""

    status = 500
    type = "run_failed"


class HookRejected(GatewayError):
    """A gateway hook refused the call (its ``on_request`` chain answered reject): ``hook`` names it,
    ``reason`` is what it said. 422: the request is well-formed, its content is refused."""

    status = 422
    type = "hook_rejected"

    def __init__(self, message: str, *, hook: str, point: str, reason: str) -> None:
        super().__init__(message, extra={"hook": hook, "point": point, "reason": reason})
        self.hook = hook
        self.point = point
        self.reason = reason


class HookFailed(GatewayError):
    """A gateway hook whose failure policy is ``closed`` timed out or raised, or a hook answered what its
    point does not take (an action it does not allow, a payload that is not valid): the call is refused
    rather than let through unchecked."""

    status = 500
    type = "hook_failed"

    def __init__(self, message: str, *, hook: str, point: str) -> None:
        super().__init__(message, extra={"hook": hook, "point": point})
        self.hook = hook
        self.point = point
