"""The HTTP plumbing the integrations share: one pooled ``httpx.AsyncClient`` per hook instance, created
lazily in the running loop and closed by ``aclose()``, a timeout per attempt, bounded retries with backoff.

Network errors, 429 and 5xx retry (``retries`` more attempts, ``backoff`` seconds doubling); any other
status is final. What fails for good raises ``HookServiceError``: the chain then applies the hook's
fail-open or fail-closed policy.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
import msgspec
from msgspec import Meta

__all__ = ["HookServiceError", "ServiceClient", "ServiceOptions"]


class HookServiceError(RuntimeError):
    """An external hook service did not give a usable answer (after the retries)."""


class ServiceOptions(msgspec.Struct, frozen=True, kw_only=True):
    timeout: Annotated[float, Meta(gt=0, le=120)] = 5.0
    retries: Annotated[int, Meta(ge=0, le=10)] = 2
    backoff: Annotated[float, Meta(ge=0, le=30)] = 0.2
    max_connections: Annotated[int, Meta(ge=1, le=1000)] = 20


class ServiceClient:
    def __init__(self, what: str, options: ServiceOptions) -> None:
        self.what = what
        self.options = options
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            limits = httpx.Limits(max_connections=self.options.max_connections)
            self._client = httpx.AsyncClient(timeout=self.options.timeout, limits=limits)
            self._loop = loop
        return self._client

    async def post(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST with retries; the final response (2xx, or a 4xx that is not 429) is returned."""
        client = self._current()
        delay = self.options.backoff
        last = ""
        for attempt in range(self.options.retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                response = await client.post(url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            return response
        raise HookServiceError(f"{self.what} unreachable after {self.options.retries + 1} attempts: {last}")

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def options_error(what: str, exc: Exception) -> ValueError:
    return ValueError(f"{what} hook options: {exc}")


def decode_options(what: str, options: dict[str, Any], kind: type[Any]) -> Any:
    try:
        return msgspec.convert(options, kind)
    except msgspec.ValidationError as exc:
        raise options_error(what, exc) from None
