"""An external hook server: the gateway POSTs the HookContext as JSON and takes the Action from the response.

Request: ``POST <url>`` with the context as JSON (``HookContext``: point, endpoint, protocol, principal,
tenant, scopes, run_id, attempt, tool, event, usage, payload), signed like the approval webhooks:
``X-FastAgentic-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}.{body}" keyed with the hook's
secret>``; ``X-FastAgentic-Hook`` names the hook. Response: 200 with an Action as JSON, tagged by ``type``:
``{"type": "proceed"}``, ``{"type": "modify", "payload": ...}``, ``{"type": "skip", "result": ..., "reason":
...}``, ``{"type": "reject", "reason": "..."}``, ``{"type": "retry", "after": 0.5}``. Anything else (another
status, a body that is not an Action) is the hook's failure, handled by its ``fail`` policy, as a timeout is.

Every remote hook of a gateway shares one pooled httpx client; each request is bounded by the hook's timeout.
"""

from __future__ import annotations

import time

import httpx
import msgspec

from ..approvals.channels import SIGNATURE_HEADER, sign_webhook
from .model import Action, HookContext

__all__ = ["HOOK_HEADER", "RemoteHook", "RemoteHookError"]

HOOK_HEADER = "X-FastAgentic-Hook"
_encode = msgspec.json.encode
_action = msgspec.json.Decoder(Action)


class RemoteHookError(Exception):
    """The hook server did not answer with an Action."""


class RemoteHook:
    """A Hook answered by an external hook server."""

    def __init__(self, name: str, url: str, secret: str, client: httpx.AsyncClient, timeout: float) -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.client = client
        self.timeout = timeout

    async def __call__(self, context: HookContext) -> Action:
        body = _encode(context)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_webhook(self.secret, body, int(time.time())),
            HOOK_HEADER: self.name,
        }
        response = await self.client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        if response.status_code != 200:
            raise RemoteHookError(f"hook server {self.url} answered HTTP {response.status_code}")
        try:
            return _action.decode(response.content)
        except msgspec.DecodeError as exc:
            raise RemoteHookError(
                f"hook server {self.url} answered something that is not an Action: {exc}"
            ) from None
