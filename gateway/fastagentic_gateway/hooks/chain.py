"""Hook chains: the gateway's hooks at one point, in their configured order, each with its conditions,
timeout and failure policy.

A chain runs its inline hooks one after the other on the same context: a ``Modify`` hands the next hook
the replaced payload; ``Skip``, ``Reject`` and ``Retry`` end the chain (the first one decides). Audit hooks
get the context in the background and never delay the call; their answer is ignored.

What a failure means:

- a timeout or an exception: the hook's ``fail`` policy. ``open``: logged, counted, and the chain goes on
  as if the hook had answered proceed; ``closed``: ``HookFailure`` (the call is refused, the run fails).
- a wrong answer (not an Action, an action the point does not allow, a modified payload that is not
  valid): always ``HookFailure``. The hook did answer, and what it said cannot be carried out; letting the
  original through instead could undo what it meant to do (a masked output, say).

Every hook run is timed into ``fastagentic_hook_seconds``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from ..telemetry.metrics import GatewayMetrics
from .model import Action, Hook, HookContext, HookPoint, Modify, Proceed, Reject, Retry, Skip

log = logging.getLogger("fastagentic.hooks")

__all__ = [
    "ALLOWED",
    "MAX_AUDIT_PENDING",
    "Chain",
    "HookEntry",
    "HookFailure",
    "Outcome",
    "Patterns",
]

#: What each point allows a hook to answer (anything else is a hook error; see the module's doc).
ALLOWED: dict[HookPoint, frozenset[type]] = {
    HookPoint.ON_REQUEST: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_RESPONSE: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_TOOL_CALL: frozenset({Proceed, Modify, Skip, Reject, Retry}),
    HookPoint.ON_TOOL_RESULT: frozenset({Proceed, Modify, Reject, Retry}),
    HookPoint.ON_LLM_START: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_LLM_END: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_NODE_ENTER: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_NODE_EXIT: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_CHECKPOINT: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_RESUME: frozenset({Proceed, Modify, Reject}),
    HookPoint.ON_ERROR: frozenset({Proceed, Modify}),
    HookPoint.ON_RETRY: frozenset({Proceed, Reject}),
    HookPoint.ON_EVENT: frozenset({Proceed, Modify, Reject}),
}
#: Audit hooks running at once, per chain; past it a new one is dropped (counted ``dropped``).
MAX_AUDIT_PENDING = 1000
_TAGS: dict[type, str] = {
    Proceed: "proceed",
    Modify: "modify",
    Skip: "skip",
    Reject: "reject",
    Retry: "retry",
}


class HookFailure(Exception):
    """A hook failed closed, or answered what cannot be carried out. ``hook``, ``point``: who and where."""

    def __init__(self, hook: str, point: str, message: str) -> None:
        super().__init__(message)
        self.hook = hook
        self.point = point
        self.message = message


class Patterns:
    """Shell-style patterns (``fnmatch``, case-sensitive) compiled into one regular expression."""

    __slots__ = ("_match",)

    def __init__(self, patterns: Iterable[str]) -> None:
        joined = "|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns)
        self._match = re.compile(joined).match if joined else None

    def __bool__(self) -> bool:
        return self._match is not None

    def match(self, value: str) -> bool:
        return self._match is None or self._match(value) is not None

    def any(self, values: Iterable[str]) -> bool:
        return self._match is None or any(self._match(value) is not None for value in values)


class HookEntry:
    """One hook in a chain: the hook and how the chain treats it."""

    __slots__ = (
        "audit",
        "endpoints",
        "event_kinds",
        "fail_open",
        "hook",
        "name",
        "protocols",
        "scopes",
        "tenants",
        "timeout",
        "tools",
    )

    def __init__(
        self,
        name: str,
        hook: Hook | Callable[[HookContext], Any],
        *,
        timeout: float = 1.0,
        fail_open: bool = False,
        audit: bool = False,
        endpoints: Sequence[str] = (),
        tenants: Sequence[str] = (),
        scopes: Sequence[str] = (),
        tools: Sequence[str] = (),
        protocols: Sequence[str] = (),
        event_kinds: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.hook = hook
        self.timeout = timeout
        self.fail_open = fail_open
        self.audit = audit
        self.endpoints = Patterns(endpoints)
        self.tenants = Patterns(tenants)
        self.scopes = Patterns(scopes)
        self.tools = Patterns(tools)
        self.protocols = Patterns(protocols)
        self.event_kinds = Patterns(event_kinds)

    def applies(self, context: HookContext) -> bool:
        return (
            self.endpoints.match(context.endpoint)
            and self.tenants.match(context.tenant)
            and self.protocols.match(context.protocol)
            and self.tools.match(context.tool)
            and self.event_kinds.match(context.event)
            and self.scopes.any(context.scopes)
        )


class Outcome:
    """What a chain decided: ``action`` (Proceed; Modify with the final payload; or the Skip, Reject or
    Retry that ended it), ``hook`` (who ended it, or the last hook that modified) and how long that hook
    took (``elapsed``, seconds)."""

    __slots__ = ("action", "elapsed", "hook")

    def __init__(self, action: Action, hook: str = "", elapsed: float = 0.0) -> None:
        self.action = action
        self.hook = hook
        self.elapsed = elapsed

    def __repr__(self) -> str:
        return f"Outcome({self.action!r}, hook={self.hook!r}, elapsed={self.elapsed:.6f})"


PROCEEDED = Outcome(Proceed())

#: Checks a modified payload: None when valid, else what is wrong with it.
Validate = Callable[[Any], str | None]


class Chain:
    """The hooks at one point, in order."""

    __slots__ = ("_audits", "_tag", "active", "allowed", "entries", "metrics", "point")

    def __init__(
        self, point: HookPoint, entries: Sequence[HookEntry], metrics: GatewayMetrics | None = None
    ) -> None:
        self.point = point
        self._tag = point.value
        self.entries = tuple(entries)
        self.allowed = ALLOWED[point]
        self.metrics = metrics
        self._audits: set[asyncio.Task[None]] = set()
        #: runs of this chain under way (a stage replaced by a reload is closed once none is)
        self.active = 0

    @property
    def inline_timeout(self) -> float:
        """The longest its inline hooks may take together."""
        return sum(entry.timeout for entry in self.entries if not entry.audit)

    def _observe(self, entry: HookEntry, seconds: float, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.hook_seconds.observe(seconds, entry.name, self._tag, outcome)

    async def run(self, context: HookContext, validate: Validate | None = None) -> Outcome:
        """Run the chain on ``context``. ``validate`` checks a modified payload (None: any JSON value)."""
        self.active += 1
        try:
            return await self._run(context, validate)
        finally:
            self.active -= 1

    async def _run(self, context: HookContext, validate: Validate | None) -> Outcome:
        modified = False
        last = ""
        for entry in self.entries:
            if not entry.applies(context):
                continue
            if entry.audit:
                self._audit(entry, context)
                continue
            started = time.perf_counter()
            try:
                async with asyncio.timeout(entry.timeout):
                    action = await entry.hook(context)
            except TimeoutError:
                self._failed(entry, started, "timeout", f"did not answer within {entry.timeout:g} s")
                continue
            except Exception as exc:
                self._failed(entry, started, "error", f"raised {type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            kind = type(action)
            if kind not in self.allowed:
                self._observe(entry, elapsed, "invalid")
                allowed = ", ".join(sorted(_TAGS[k] for k in self.allowed))
                answered = _TAGS.get(kind, f"a {kind.__name__}, not an Action")
                raise HookFailure(
                    entry.name,
                    self._tag,
                    f"hook {entry.name!r} answered {answered} at {self._tag}, which allows {allowed}",
                )
            if kind is Proceed:
                self._observe(entry, elapsed, "proceed")
                continue
            if kind is Modify:
                payload = action.payload  # type: ignore[union-attr]
                problem = _not_json(payload) or (validate(payload) if validate is not None else None)
                if problem is not None:
                    self._observe(entry, elapsed, "invalid")
                    raise HookFailure(
                        entry.name,
                        self._tag,
                        f"hook {entry.name!r} modified the payload at {self._tag} into one that is not valid: {problem}",
                    )
                self._observe(entry, elapsed, "modify")
                context = msgspec.structs.replace(context, payload=payload)
                modified = True
                last = entry.name
                continue
            self._observe(entry, elapsed, _TAGS[kind])
            return Outcome(action, entry.name, elapsed)
        return Outcome(Modify(context.payload), last) if modified else PROCEEDED

    def _failed(self, entry: HookEntry, started: float, outcome: str, what: str) -> None:
        self._observe(entry, time.perf_counter() - started, outcome)
        message = f"hook {entry.name!r} at {self._tag} {what}"
        if not entry.fail_open:
            raise HookFailure(entry.name, self._tag, message)
        log.warning("%s; going on without it (fail = open)", message)

    def _audit(self, entry: HookEntry, context: HookContext) -> None:
        if len(self._audits) >= MAX_AUDIT_PENDING:
            self._observe(entry, 0.0, "dropped")
            return
        task = asyncio.ensure_future(self._audit_run(entry, context))
        self._audits.add(task)
        task.add_done_callback(self._audits.discard)

    async def _audit_run(self, entry: HookEntry, context: HookContext) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(entry.timeout):
                action = await entry.hook(context)
        except TimeoutError:
            self._observe(entry, time.perf_counter() - started, "timeout")
            log.warning(
                "audit hook %r at %s did not answer within %g s", entry.name, self._tag, entry.timeout
            )
            return
        except Exception as exc:
            self._observe(entry, time.perf_counter() - started, "error")
            log.warning("audit hook %r at %s raised %s: %s", entry.name, self._tag, type(exc).__name__, exc)
            return
        self._observe(entry, time.perf_counter() - started, _TAGS.get(type(action), "invalid"))

    @property
    def busy(self) -> bool:
        """Whether a run of the chain, or an audit hook, is under way."""
        return self.active > 0 or bool(self._audits)

    async def drain(self) -> None:
        """Wait for the audit hooks still running (at shutdown)."""
        if self._audits:
            await asyncio.gather(*self._audits, return_exceptions=True)


def _not_json(value: Any) -> str | None:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
        return f"it cannot be encoded as JSON ({exc})"
    return None
