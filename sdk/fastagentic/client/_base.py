"""What the sync and async clients share: configuration, credentials, retry decisions, logging."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from ._calls import DEFAULT, Call
from ._errors import APIConnectionError, APITimeoutError, FastAgenticError, retry_after_of
from ._retry import Retries

log = logging.getLogger("fastagentic.client")

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
# The gateway writes a keepalive every sse_keepalive seconds (15 by default): a stream silent for 4 of
# them is a dead connection, and is reconnected.
DEFAULT_STREAM_READ_TIMEOUT = 60.0

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ClientConfig:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        token: Any,
        timeout: float | httpx.Timeout | None,
        stream_read_timeout: float | None,
        retries: Retries | int | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        if api_key is not None and token is not None:
            raise ValueError("give api_key or token, not both: the gateway refuses two credentials")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValueError("api_key must be a non-empty string")
        if token is not None and not (callable(token) or (isinstance(token, str) and token)):
            raise ValueError("token must be a non-empty string or a callable that returns one")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.token = token
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.stream_read_timeout = stream_read_timeout
        if retries is None:
            retries = Retries(max_retries=0)
        elif isinstance(retries, int):
            retries = Retries(max_retries=retries)
        self.retries = retries
        self.headers = dict(headers or {})

    def timeout_of(self, call: Call, stream: bool = False) -> httpx.Timeout:
        if call.timeout is not DEFAULT:
            return call.timeout if isinstance(call.timeout, httpx.Timeout) else httpx.Timeout(call.timeout)
        if stream:
            return httpx.Timeout(
                connect=self.timeout.connect,
                read=self.stream_read_timeout,
                write=self.timeout.write,
                pool=self.timeout.pool,
            )
        return self.timeout

    def headers_of(self, call: Call, credential: str | None) -> dict[str, str]:
        headers = {**self.headers, **call.headers, "X-Request-ID": call.request_id}
        if self.api_key is not None:
            headers["X-API-Key"] = self.api_key
        elif credential is not None:
            headers["Authorization"] = f"Bearer {credential}"
        return headers

    def retry_transport(self, call: Call, exc: httpx.TransportError, retry: int) -> float | None:
        """Seconds to wait before trying ``call`` again after ``exc``, or None to give up."""
        if not (isinstance(exc, _NOT_SENT) or call.idempotent):
            return None  # the request may have done its work: only the caller can tell
        wait = self.retries.delay(retry)
        if wait is not None:
            log.info(
                "fastagentic: %s %s failed (%s); retry %d of %d in %.2fs",
                call.method, call.path, type(exc).__name__, retry + 1, self.retries.max_retries, wait,
            )  # fmt: skip
        return wait

    def retry_answer(
        self, call: Call, response: httpx.Response, error: FastAgenticError, retry: int
    ) -> float | None:
        """Seconds to wait before trying ``call`` again after an error answer, or None to give up."""
        status = response.status_code
        if status not in (429, 503) and not (call.idempotent and status in (502, 504)):
            return None
        retry_after = retry_after_of(response.headers, error.body)
        wait = self.retries.delay(retry, retry_after)
        if wait is not None:
            log.info(
                "fastagentic: %s %s answered %d %s (Retry-After %s); retry %d of %d in %.2fs",
                call.method, call.path, status, error.type or "", retry_after, retry + 1,
                self.retries.max_retries, wait,
            )  # fmt: skip
        return wait


def connection_error(call: Call, exc: httpx.TransportError) -> APIConnectionError:
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    what = "timed out" if cls is APITimeoutError else "failed"
    error = cls(f"{call.method} {call.path} {what}: {type(exc).__name__}: {exc}".rstrip(": "))
    error.request_id = call.request_id
    return error
