"""A generic webhook hook (``type = "webhook"``): the HookContext is POSTed as JSON, signed like the
approval webhooks (``X-FastAgentic-Signature: t=<unix seconds>,v1=<hex>``, HMAC-SHA256 keyed with
``secret`` of ``f"{t}.{body}"``), and the response body is the decision: an Action as JSON, validated
(``{"type": "proceed"}``, ``{"type": "modify", "payload": ...}``, ``{"type": "skip", "result": ...,
"reason": ...}``, ``{"type": "reject", "reason": ...}``, ``{"type": "retry", "after": ..., "reason": ...}``).
An empty 204 means proceed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from ...approvals.channels import SIGNATURE_HEADER, sign_webhook
from ..model import PROCEED, Action, HookContext
from ._http import HookServiceError, ServiceClient, ServiceOptions, decode_options, options_error

__all__ = ["MIN_SECRET", "WebhookHook", "WebhookOptions", "make"]

MIN_SECRET = 32
_action = msgspec.json.Decoder(Action)


class WebhookOptions(ServiceOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    secret: str = ""
    secret_env: str = ""
    headers: dict[str, str] = {}


class WebhookHook:
    def __init__(self, options: WebhookOptions, secret: str, *, name: str = "webhook") -> None:
        self.name = name
        self.options = options
        self._secret = secret
        self._client = ServiceClient(f"webhook {options.url}", options)

    async def __call__(self, context: HookContext) -> Action:
        body = msgspec.json.encode(context)
        headers = {
            **self.options.headers,
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_webhook(self._secret, body, int(time.time())),
        }
        response = await self._client.post(self.options.url, body, headers)
        if response.status_code >= 300:
            raise HookServiceError(
                f"webhook {self.options.url} answered HTTP {response.status_code}: {response.text[:200]}"
            )
        if response.status_code == 204 or not response.content.strip():
            return PROCEED
        try:
            return _action.decode(response.content)
        except msgspec.DecodeError as exc:
            raise HookServiceError(f"webhook {self.options.url} answered an invalid action: {exc}") from None

    async def aclose(self) -> None:
        await self._client.aclose()


def make(options: dict[str, Any]) -> WebhookHook:
    what = "webhook"
    parsed: WebhookOptions = decode_options(what, options, WebhookOptions)
    if not parsed.url.startswith(("http://", "https://")):
        raise options_error(what, ValueError(f"url {parsed.url!r}: an http(s) URL"))
    if parsed.secret and parsed.secret_env:
        raise options_error(what, ValueError("secret and secret_env: give one"))
    secret = parsed.secret or (os.environ.get(parsed.secret_env, "") if parsed.secret_env else "")
    if len(secret) < MIN_SECRET:
        source = f"the environment variable {parsed.secret_env}" if parsed.secret_env else "secret"
        raise options_error(what, ValueError(f"{source}: a signing key of at least {MIN_SECRET} characters"))
    lowered = {key.lower() for key in parsed.headers}
    if {"content-type", SIGNATURE_HEADER.lower()} & lowered:
        raise options_error(
            what, ValueError(f"headers: Content-Type and {SIGNATURE_HEADER} are set by the hook")
        )
    return WebhookHook(parsed, secret)
