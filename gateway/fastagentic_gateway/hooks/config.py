"""Gateway hooks as the settings declare them (``hooks``): which hook, at which points, under which
conditions, with which timeout and failure policy.

Each table names its hook one way: ``module`` (``package.module:attribute``, a Hook instance or a factory
called with ``options``), ``url`` (an external hook server, see ``hooks/remote.py``) or ``type`` (a
built-in registered in ``hooks/builtin.py``). The order of the tables is the order of every chain.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .model import HookPoint

__all__ = ["FAIL_POLICIES", "MODES", "HookConfig", "check_hooks"]

FAIL_POLICIES = ("open", "closed")
MODES = ("inline", "audit")
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")
#: the least length of the key an external hook server's requests are signed with
MIN_SECRET = 32
POINTS = tuple(point.value for point in HookPoint)
SCOPED_POINTS = {HookPoint.ON_REQUEST.value, HookPoint.ON_RESUME.value}


def _doc(text: str, **constraints: Any) -> Meta:
    return Meta(description=text, **constraints)


class HookConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One gateway hook: what it is, where it runs, when it applies and what its failure means."""

    name: Annotated[str, _doc("Names the hook in metrics, logs, events and errors.")]
    points: Annotated[list[str], _doc("The hook points it runs at (`on_request`, `on_tool_call`, ...).")]
    module: Annotated[
        str,
        _doc(
            "`package.module:attribute`: a Hook instance, or a factory called with `options` that returns one."
        ),
    ] = ""
    url: Annotated[str, _doc("An external hook server: the HookContext is POSTed there as JSON.")] = ""
    type: Annotated[str, _doc("A built-in hook type (`hooks/builtin.py`), made with `options`.")] = ""
    options: Annotated[dict[str, Any], _doc("Passed to the factory (`module`, `type`).")] = {}
    secret: Annotated[
        str,
        _doc(
            "`url`: the key (at least 32 characters) of the `X-FastAgentic-Signature` HMAC of each request."
        ),
    ] = ""
    timeout: Annotated[float, _doc("Seconds the hook may take at one point.", gt=0, le=120)] = 1.0
    fail: Annotated[
        str,
        _doc(
            '`"closed"`: a timeout or an exception refuses the call (or fails the run); `"open"`: it is logged '
            "and counted, and the call goes on as if the hook had answered proceed."
        ),
    ] = "closed"
    mode: Annotated[
        str,
        _doc(
            '`"inline"`: the call waits for the hook\'s answer; `"audit"`: the hook gets a copy in the '
            "background (fire-and-forget), its answer is ignored and it never delays the call."
        ),
    ] = "inline"
    endpoints: Annotated[
        list[str], _doc("Shell-style patterns of endpoint names; empty: every endpoint.")
    ] = []
    tenants: Annotated[list[str], _doc("Shell-style patterns of tenants; empty: every tenant.")] = []
    scopes: Annotated[
        list[str], _doc("The caller must hold one of these scopes (patterns); empty: any caller.")
    ] = []
    tools: Annotated[
        list[str], _doc("Patterns of tool names (at `on_tool_call` / `on_tool_result`); empty: every tool.")
    ] = []
    protocols: Annotated[list[str], _doc("`rest`, `mcp`, `a2a` (patterns); empty: every protocol.")] = []
    event_kinds: Annotated[
        list[str],
        _doc(
            "Patterns of event kinds (at `on_event`: `token`, `message`, `progress`, ...); empty: every kind."
        ),
    ] = []

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(f"hook name {self.name!r}: 1-64 letters, digits and _.:-")
        where = f"hook {self.name!r}"
        given = [key for key in ("module", "url", "type") if getattr(self, key)]
        if len(given) != 1:
            raise ValueError(
                f"{where}: set exactly one of module, url and type (got {', '.join(given) or 'none'})"
            )
        if self.module and not MODULE.fullmatch(self.module):
            raise ValueError(f"{where}: module must read package.module:attribute, not {self.module!r}")
        if self.url:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"{where}: url must be an http:// or https:// URL, not {self.url!r}")
            if len(self.secret) < MIN_SECRET:
                raise ValueError(
                    f"{where}: a hook server needs a `secret` of at least {MIN_SECRET} characters (it signs requests)"
                )
            if self.options:
                raise ValueError(f"{where}: options are for module and type hooks")
        elif self.secret:
            raise ValueError(f"{where}: secret is for url hooks")
        if not self.points:
            raise ValueError(f"{where}: points must name at least one of {', '.join(POINTS)}")
        unknown = [point for point in self.points if point not in POINTS]
        if unknown:
            raise ValueError(f"{where}: unknown point(s) {', '.join(unknown)}; known: {', '.join(POINTS)}")
        if len(set(self.points)) != len(self.points):
            raise ValueError(f"{where}: a point is named twice")
        if self.fail not in FAIL_POLICIES:
            raise ValueError(f'{where}: fail must be "open" or "closed", not {self.fail!r}')
        if self.mode not in MODES:
            raise ValueError(f'{where}: mode must be "inline" or "audit", not {self.mode!r}')
        if self.scopes and not set(self.points) <= SCOPED_POINTS:
            # Runs keep their caller's subject and tenant, not its scopes: elsewhere the condition could not hold.
            raise ValueError(
                f"{where}: scopes applies at on_request and on_resume only (where the caller's scopes are known)"
            )
        tool_points = {HookPoint.ON_TOOL_CALL.value, HookPoint.ON_TOOL_RESULT.value}
        if self.tools and not set(self.points) <= tool_points:
            raise ValueError(f"{where}: tools applies at on_tool_call and on_tool_result only")
        if self.event_kinds and set(self.points) != {HookPoint.ON_EVENT.value}:
            raise ValueError(f"{where}: event_kinds applies at on_event only")


def check_hooks(hooks: list[HookConfig]) -> None:
    """The hooks together: each name once. ValueError naming what is wrong."""
    names = [hook.name for hook in hooks]
    if len(set(names)) != len(names):
        raise ValueError("hooks: each hook name may be used once")
