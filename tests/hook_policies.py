"""Gateway hooks the hook tests configure by settings (``module = "tests.hook_policies:..."``): a policy
written for the gateway, not for any worker, and a recorder of every point that fires."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import msgspec

from fastagentic_gateway.hooks.model import Action, HookContext, Modify, Proceed, Reject, Retry, Skip

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class Recorder:
    """Appends one JSON line per point fired (point, endpoint, protocol, tool, run_id, payload) to ``path``."""

    name = "recorder"

    def __init__(self, options: dict[str, Any]) -> None:
        self.path = Path(options["path"])

    async def __call__(self, context: HookContext) -> Action:
        line = msgspec.json.encode(
            {
                "point": context.point,
                "endpoint": context.endpoint,
                "protocol": context.protocol,
                "tool": context.tool,
                "run_id": context.run_id,
                "principal": context.principal,
                "payload": context.payload,
            }
        )
        with self.path.open("ab") as handle:
            handle.write(line + b"\n")
        return Proceed()


def recorder(options: dict[str, Any]) -> Recorder:
    return Recorder(options)


def _text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


class Policy:
    """The guardrail policy: what the tests' workers were not written for."""

    name = "policy"

    def __init__(self) -> None:
        self.retried: set[str] = set()

    async def __call__(self, context: HookContext) -> Action:
        payload = context.payload
        point = context.point
        if point == "on_request" and isinstance(payload, dict):
            text = str(payload.get("text", ""))
            if "forbidden" in text:
                return Reject("the word 'forbidden' is not allowed")
            if "rewrite-me" in text:
                return Modify({**payload, "text": text.replace("rewrite-me", "rewritten")})
            if "break-schema" in text:
                return Modify({"text": 42})  # text must be a string: refused
            if "skip-me" in text:
                return Skip(reason="on_request takes no skip")
        if point == "on_response":
            shown = _text(payload)
            if "explode" in shown:
                return Reject("the output may not explode")
            if "secret" in shown:
                return Modify(msgspec.json.decode(shown.replace("secret", "[redacted]")))
        if point == "on_tool_call":
            if context.tool == "delete_everything":
                return Reject("destructive tools are not allowed here")
            if "IGNORE PREVIOUS INSTRUCTIONS" in _text(payload.get("arguments")):
                return Reject("prompt injection in the tool's arguments")
            if context.tool == "cached_lookup":
                return Skip(result="from the gateway's cache", reason="cached")
            if context.tool == "flaky" and payload["id"] not in self.retried:
                self.retried.add(payload["id"])
                return Retry(after=0.01, reason="not yet")
        if point == "on_tool_result" and "result" in payload:
            shown = _text(payload["result"])
            if EMAIL.search(shown):
                return Modify({**payload, "result": msgspec.json.decode(EMAIL.sub("[email]", shown))})
        return Proceed()


def policy(options: dict[str, Any]) -> Policy:
    return Policy()


async def slow(context: HookContext) -> Action:
    """Takes longer than any timeout the tests give it."""
    await asyncio.sleep(5)
    return Proceed()


async def crash(context: HookContext) -> Action:
    raise RuntimeError("the hook broke")


async def wrong_answer(context: HookContext) -> Action:
    """Answers skip wherever: only on_tool_call takes it."""
    return Skip(result="nope")


class Audit:
    """Slow on purpose (an audit hook must not delay the call); records that it ran."""

    name = "audit"

    def __init__(self, options: dict[str, Any]) -> None:
        self.path = Path(options["path"])
        self.sleep = float(options.get("sleep", 1.0))

    async def __call__(self, context: HookContext) -> Action:
        await asyncio.sleep(self.sleep)
        with self.path.open("a") as handle:
            handle.write(f"{context.point}\n")
        return Proceed()


async def proceed(context: HookContext) -> Action:
    """The no-op hook (what a checked call costs when the policy has nothing to say)."""
    return Proceed()
