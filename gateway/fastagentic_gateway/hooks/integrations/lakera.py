"""Lakera Guard (``type = "lakera"``): prompt attacks, moderation, PII and unknown links, screened by
Lakera's HTTP API: ``POST {base_url}/v2/guard`` with ``{"messages": [...], "project_id", "breakdown"}``,
answered ``{"flagged": bool, "breakdown": [{"detector_type", "detected"}...], "metadata"}``.

The payload becomes the messages: an OpenAI-style ``messages`` list is sent as it is; anything else is
sent as one message (every string in it, one a line) whose role follows the point: ``user`` at
on_request, ``assistant`` at on_response and on_tool_call, ``tool`` at on_tool_result. Flagged content
is rejected (``on_flagged = "reject"``) or only logged (``"log"``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import msgspec

from ..model import PROCEED, Action, HookContext, HookPoint, Reject
from ._http import HookServiceError, ServiceClient, ServiceOptions, decode_options, options_error

__all__ = ["LakeraGuardHook", "LakeraOptions", "make"]

log = logging.getLogger("fastagentic.hooks.lakera")

SAAS = "https://api.lakera.ai"
ROLES = ("system", "user", "assistant", "tool")
_ROLE_AT = {
    HookPoint.ON_RESPONSE: "assistant",
    HookPoint.ON_TOOL_CALL: "assistant",
    HookPoint.ON_TOOL_RESULT: "tool",
}


class LakeraOptions(ServiceOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: str = ""
    api_key_env: str = "LAKERA_GUARD_API_KEY"
    base_url: str = SAAS
    project_id: str = ""
    on_flagged: str = "reject"
    max_chars: int = 200_000  # what is sent at most (the end of longer content)


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if value.strip():
            out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, out)


def messages_of(context: HookContext, max_chars: int) -> list[dict[str, str]]:
    """What Lakera screens: the payload's chat messages, or its strings as one message."""
    payload = context.payload
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        chat = payload["messages"]
        if chat and all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in chat
        ):
            return [{"role": m["role"], "content": m["content"][-max_chars:]} for m in chat]
    parts: list[str] = []
    if context.point in (HookPoint.ON_TOOL_CALL, HookPoint.ON_TOOL_RESULT) and context.tool:
        parts.append(f"tool {context.tool}")
    _strings(payload, parts)
    text = "\n".join(parts)
    if not text.strip():
        return []
    return [{"role": _ROLE_AT.get(context.point, "user"), "content": text[-max_chars:]}]


class LakeraGuardHook:
    def __init__(self, options: LakeraOptions, api_key: str, *, name: str = "lakera") -> None:
        self.name = name
        self.options = options
        self.url = options.base_url.rstrip("/") + "/v2/guard"
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client = ServiceClient("Lakera Guard", options)

    async def __call__(self, context: HookContext) -> Action:
        messages = messages_of(context, self.options.max_chars)
        if not messages:
            return PROCEED
        body: dict[str, Any] = {"messages": messages, "breakdown": True}
        if self.options.project_id:
            body["project_id"] = self.options.project_id
        response = await self._client.post(self.url, msgspec.json.encode(body), self._headers)
        if response.status_code >= 300:
            raise HookServiceError(
                f"Lakera Guard answered HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise HookServiceError(f"Lakera Guard answered something that is not JSON: {exc}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("flagged"), bool):
            raise HookServiceError("Lakera Guard answered without a boolean 'flagged'")
        if not answer["flagged"]:
            return PROCEED
        detectors = sorted(
            {
                str(item.get("detector_type"))
                for item in answer.get("breakdown") or []
                if isinstance(item, dict) and item.get("detected")
            }
        )
        request = (answer.get("metadata") or {}).get("request_uuid", "")
        what = ", ".join(detectors) or "policy"
        log.warning(
            "Lakera Guard flagged %s at %s (endpoint %s, run %s, request %s)",
            what,
            context.point.value,
            context.endpoint,
            context.run_id or "-",
            request or "-",
        )
        if self.options.on_flagged == "log":
            return PROCEED
        return Reject(reason=f"flagged by Lakera Guard: {what}")

    async def aclose(self) -> None:
        await self._client.aclose()


def make(options: dict[str, Any]) -> LakeraGuardHook:
    what = "lakera"
    parsed: LakeraOptions = decode_options(what, options, LakeraOptions)
    if parsed.on_flagged not in ("reject", "log"):
        raise options_error(what, ValueError(f"on_flagged {parsed.on_flagged!r}: 'reject' or 'log'"))
    if not parsed.base_url.startswith(("http://", "https://")):
        raise options_error(what, ValueError(f"base_url {parsed.base_url!r}: an http(s) URL"))
    api_key = parsed.api_key or (os.environ.get(parsed.api_key_env, "") if parsed.api_key_env else "")
    if not api_key and parsed.base_url.rstrip("/") == SAAS:
        raise options_error(
            what, ValueError(f"the Lakera API needs api_key or the environment variable {parsed.api_key_env}")
        )
    return LakeraGuardHook(parsed, api_key)
