"""When to try a call again, and how long to wait first."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

__all__ = ["Retries"]


@dataclasses.dataclass(frozen=True, slots=True)
class Retries:
    """Automatic retries: up to ``max_retries`` more tries after the first.

    Waits grow exponentially, ``backoff * 2**n`` capped at ``max_delay``, with full jitter (a uniform
    draw below it), so that many clients refused at once do not come back at once. An answer with
    ``Retry-After`` waits that long instead (plus up to ``backoff`` of jitter); when the gateway asks for
    more than ``max_delay`` the call fails at once with the error (``RateLimitError.retry_after`` says
    how long), rather than sleeping for, say, a monthly budget's reset.

    What is retried: 429 and 503 answers for every call (the gateway refused before doing anything);
    connections that could not be made (nothing was sent); and, for idempotent calls only (reads, and
    background starts, which carry an ``Idempotency-Key``), connections that broke mid-call and 502/504
    from a proxy. ``Retries(max_retries=0)`` turns retries off.

    A followed event stream that breaks reconnects from the last event it received; ``max_retries``
    bounds the reconnections in a row that receive nothing.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {self.max_retries}")
        if not self.backoff >= 0:
            raise ValueError(f"backoff must be 0 or more seconds, not {self.backoff}")
        if not self.max_delay >= 0:
            raise ValueError(f"max_delay must be 0 or more seconds, not {self.max_delay}")

    def delay(
        self, retry: int, retry_after: float | None = None, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (0 for the first), None when the call should not
        be retried (no retries left, or the server asks to wait longer than ``max_delay``)."""
        if retry >= self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_delay:
                return None
            return retry_after + rand() * min(self.backoff, self.max_delay - retry_after)
        return rand() * min(self.max_delay, self.backoff * 2**retry)
