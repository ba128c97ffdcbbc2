"""The PII hook: walks any JSON payload, finds PII in its strings and masks, redacts, hashes or rejects.

Keys are left alone unless ``scan_keys``; integers of 7 digits or more are read as text too (a card or
phone number sent as a number), and a masked one becomes a string. What it found is reported by type and
count, never by value: to the reporter (by default the ``fastagentic.hooks.pii`` log) and in a rejection's
reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ..model import PROCEED, Action, HookContext, Modify, Reject
from .detect import BUILTIN_TYPES, CustomPattern, Detector, Finding, RegexDetector, without_overlaps
from .transform import ACTIONS, canonical, hashed, masked, placeholder

__all__ = ["PiiHook", "PiiOptions", "PiiReport", "Scanned", "make"]

log = logging.getLogger("fastagentic.hooks.pii")

ENGINES = ("regex", "presidio", "both")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MIN_NUMBER = 1_000_000  # integers below 7 digits are never PII we detect
MIN_HASH_KEY = 16


class TypeRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What to do with one type: its action and least score ("" / None: the hook's defaults)."""

    action: str = ""
    min_score: Annotated[float, Meta(ge=0, le=1)] | None = None
    enabled: bool = True


class PatternOption(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A custom pattern: a name (its type), a regular expression, the score of a match, its action."""

    name: str
    regex: str
    score: Annotated[float, Meta(ge=0, le=1)] = 0.9
    action: str = ""
    ignore_case: bool = False


class PiiOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    engine: str = "regex"
    action: str = "redact"
    min_score: Annotated[float, Meta(ge=0, le=1)] = 0.5
    types: dict[str, TypeRule] = {}
    allow: list[str] = []
    allow_patterns: list[str] = []
    block: list[str] = []
    patterns: list[PatternOption] = []
    hash_key: str = ""
    hash_key_env: str = ""
    hash_length: Annotated[int, Meta(ge=8, le=64)] = 16
    placeholder: str = "[{TYPE}]"
    scan_keys: bool = False
    skip_fields: list[str] = []
    scan_numbers: bool = True
    max_depth: Annotated[int, Meta(ge=1, le=10_000)] = 64
    offload_bytes: Annotated[int, Meta(ge=0)] = 256 * 1024
    presidio_language: str = "en"
    presidio_entities: list[str] = []


class PiiReport(msgspec.Struct, frozen=True):
    """What one scan found, by type and count (never values): ``found`` were acted on, ``below_threshold``
    scored under their type's ``min_score``, ``allowed`` matched the allowlist, ``rejected`` are the found
    types whose action is ``reject``."""

    found: dict[str, int]
    below_threshold: dict[str, int]
    allowed: int
    rejected: list[str]

    @property
    def empty(self) -> bool:
        return not (self.found or self.below_threshold or self.allowed)


class Scanned(msgspec.Struct, frozen=True):
    payload: Any
    changed: bool
    report: PiiReport


class _TooDeep(Exception):
    pass


class _Scan:
    __slots__ = ("allowed", "below", "changed", "found", "rejected")

    def __init__(self) -> None:
        self.found: Counter[str] = Counter()
        self.below: Counter[str] = Counter()
        self.allowed = 0
        self.rejected: set[str] = set()
        self.changed = False


Reporter = Callable[[HookContext, PiiReport], None]


def _log_report(context: HookContext, report: PiiReport) -> None:
    log.info(
        "pii at %s (endpoint %s, run %s): found %s, below threshold %s, allowed %d",
        context.point.value,
        context.endpoint,
        context.run_id or "-",
        dict(report.found),
        dict(report.below_threshold),
        report.allowed,
    )


class PiiHook:
    """Detects and masks PII in a hook point's payload (see ``make`` for the options)."""

    def __init__(
        self,
        options: PiiOptions,
        detectors: list[Detector],
        *,
        name: str = "pii",
        reporter: Reporter | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.detectors = detectors
        self.reporter = reporter or _log_report
        self.totals: Counter[str] = Counter()  # found since start, by type (for metrics)
        self._rules = {kind: rule for kind, rule in options.types.items()}
        for pattern in options.patterns:
            if pattern.action and pattern.name not in self._rules:
                self._rules[pattern.name] = TypeRule(action=pattern.action)
        self._allow = set(options.allow)
        self._allow_patterns = [re.compile(pattern) for pattern in options.allow_patterns]
        self._skip = frozenset(options.skip_fields)
        key = options.hash_key or (os.environ.get(options.hash_key_env, "") if options.hash_key_env else "")
        self._key = key.encode()
        self._threaded = any(detector.name != "regex" for detector in detectors)

    # --- one string --------------------------------------------------------------------------------

    def _detect(self, text: str) -> list[Finding]:
        if len(self.detectors) == 1:
            return self.detectors[0].detect(text)
        return without_overlaps(finding for detector in self.detectors for finding in detector.detect(text))

    def _allowed(self, kind: str, value: str) -> bool:
        if value in self._allow or canonical(kind, value) in self._allow:
            return True
        return any(pattern.fullmatch(value) for pattern in self._allow_patterns)

    def _text(self, text: str, scan: _Scan) -> str:
        findings = self._detect(text)
        if not findings:
            return text
        options, pieces, last = self.options, [], 0
        for finding in findings:
            rule = self._rules.get(finding.type)
            if rule is not None and not rule.enabled:
                continue
            least = rule.min_score if rule is not None and rule.min_score is not None else options.min_score
            if finding.score < least:
                scan.below[finding.type] += 1
                continue
            value = text[finding.start : finding.end]
            if self._allowed(finding.type, value):
                scan.allowed += 1
                continue
            scan.found[finding.type] += 1
            action = (rule.action if rule is not None else "") or options.action
            if action == "reject":
                scan.rejected.add(finding.type)
                continue
            if action == "mask":
                replacement = masked(finding.type, value)
            elif action == "hash":
                replacement = hashed(finding.type, value, self._key, options.hash_length)
            else:
                replacement = placeholder(finding.type, options.placeholder)
            pieces.append(text[last : finding.start])
            pieces.append(replacement)
            last = finding.end
        if not pieces:
            return text
        pieces.append(text[last:])
        scan.changed = True
        return "".join(pieces)

    # --- a payload ---------------------------------------------------------------------------------

    def _walk(self, value: Any, depth: int, scan: _Scan) -> Any:
        if isinstance(value, str):
            return self._text(value, scan)
        if depth >= self.options.max_depth and isinstance(value, dict | list | tuple):
            raise _TooDeep
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                new_key = key
                if self.options.scan_keys and isinstance(key, str):
                    new_key = self._text(key, scan)
                    while new_key in out or (new_key != key and new_key in value):
                        new_key += "_"  # two keys masked alike: both kept
                out[new_key] = item if key in self._skip else self._walk(item, depth + 1, scan)
            return out
        if isinstance(value, list | tuple):
            return [self._walk(item, depth + 1, scan) for item in value]
        if (
            self.options.scan_numbers
            and isinstance(value, int)
            and not isinstance(value, bool)
            and abs(value) >= _MIN_NUMBER
        ):
            text = str(value)
            new = self._text(text, scan)
            return value if new == text else new
        return value

    def scan(self, payload: Any) -> Scanned:
        """The payload with its PII handled, and what was found. ValueError past ``max_depth``."""
        scan = _Scan()
        try:
            result = self._walk(payload, 0, scan)
        except _TooDeep:
            raise ValueError(
                f"payload nested deeper than {self.options.max_depth} levels: not scanned for PII"
            ) from None
        report = PiiReport(
            found=dict(scan.found),
            below_threshold=dict(scan.below),
            allowed=scan.allowed,
            rejected=sorted(scan.rejected),
        )
        return Scanned(payload=result if scan.changed else payload, changed=scan.changed, report=report)

    def _big(self, value: Any, budget: int) -> int:
        """What is left of ``budget`` after the text of ``value`` (stops early: <= 0 means big)."""
        if isinstance(value, str):
            return budget - len(value)
        if isinstance(value, dict):
            items: Any = value.values()
        elif isinstance(value, list | tuple):
            items = value
        else:
            return budget
        for item in items:
            budget = self._big(item, budget)
            if budget <= 0:
                break
        return budget

    async def __call__(self, context: HookContext) -> Action:
        payload = context.payload
        try:
            if self._threaded or self._big(payload, self.options.offload_bytes) <= 0:
                scanned = await asyncio.to_thread(self.scan, payload)
            else:
                scanned = self.scan(payload)
        except (ValueError, RecursionError) as exc:
            return Reject(
                reason=str(exc) if isinstance(exc, ValueError) else "payload too deep to scan for PII"
            )
        report = scanned.report
        if not report.empty:
            self.totals.update(report.found)
            self.reporter(context, report)
        if report.rejected:
            counts = ", ".join(f"{kind} ({report.found[kind]})" for kind in report.rejected)
            return Reject(reason=f"refused by {self.name}: the payload holds PII: {counts}")
        return Modify(payload=scanned.payload) if scanned.changed else PROCEED


def _fail(message: str) -> ValueError:
    return ValueError(f"pii hook options: {message}")


def make(options: dict[str, Any], *, name: str = "pii", reporter: Reporter | None = None) -> PiiHook:
    """Build a PII hook from its options (a hooks table's ``options``); ValueError saying what is wrong."""
    try:
        parsed = msgspec.convert(options, PiiOptions)
    except msgspec.ValidationError as exc:
        raise _fail(str(exc)) from None
    if parsed.engine not in ENGINES:
        raise _fail(f"engine {parsed.engine!r}: one of {', '.join(ENGINES)}")
    customs: list[CustomPattern] = []
    for index, pattern in enumerate(parsed.patterns):
        where = f"patterns[{index}] ({pattern.name!r})"
        if not _NAME.fullmatch(pattern.name):
            raise _fail(f"{where}: a name is 1-32 lower-case letters, digits and _, starting with a letter")
        if pattern.name in BUILTIN_TYPES or any(c.name == pattern.name for c in customs):
            raise _fail(f"{where}: the name is taken (built-in types: {', '.join(BUILTIN_TYPES)})")
        if pattern.action and pattern.action not in ACTIONS:
            raise _fail(f"{where}: action {pattern.action!r}: one of {', '.join(ACTIONS)}")
        try:
            compiled = re.compile(pattern.regex, re.IGNORECASE if pattern.ignore_case else 0)
        except re.error as exc:
            raise _fail(f"{where}: bad regex: {exc}") from None
        if compiled.match(""):
            raise _fail(f"{where}: the regex matches the empty string")
        customs.append(CustomPattern(pattern.name, compiled, pattern.score))
    known = set(BUILTIN_TYPES) | {custom.name for custom in customs}
    actions = [parsed.action]
    if parsed.action not in ACTIONS:
        raise _fail(f"action {parsed.action!r}: one of {', '.join(ACTIONS)}")
    for kind, rule in parsed.types.items():
        if kind not in known and parsed.engine == "regex":
            raise _fail(f"types: unknown type {kind!r} (known: {', '.join(sorted(known))})")
        if rule.action and rule.action not in ACTIONS:
            raise _fail(f"types.{kind}: action {rule.action!r}: one of {', '.join(ACTIONS)}")
        actions.append(rule.action)
    actions.extend(pattern.action for pattern in parsed.patterns)
    for index, allowed in enumerate(parsed.allow_patterns):
        try:
            re.compile(allowed)
        except re.error as exc:
            raise _fail(f"allow_patterns[{index}]: bad regex: {exc}") from None
    if "{TYPE}" not in parsed.placeholder and "{type}" not in parsed.placeholder:
        raise _fail(f"placeholder {parsed.placeholder!r} must hold {{TYPE}} or {{type}}")
    if "hash" in actions:
        if parsed.hash_key and parsed.hash_key_env:
            raise _fail("hash_key and hash_key_env: give one")
        key = parsed.hash_key
        if parsed.hash_key_env:
            key = os.environ.get(parsed.hash_key_env, "")
            if not key:
                raise _fail(f"hash_key_env: the environment variable {parsed.hash_key_env} is unset or empty")
        if len(key) < MIN_HASH_KEY:
            raise _fail(
                f"the hash action needs a hash_key (or hash_key_env) of at least {MIN_HASH_KEY} characters"
            )
    enabled = [kind for kind in BUILTIN_TYPES if parsed.types.get(kind, TypeRule()).enabled]
    detectors: list[Detector] = []
    if parsed.engine in ("regex", "both"):
        detectors.append(RegexDetector(enabled, block=parsed.block, custom=customs))
    if parsed.engine in ("presidio", "both"):
        from .presidio import PresidioDetector

        try:
            detectors.append(PresidioDetector(parsed.presidio_language, parsed.presidio_entities or None))
        except ValueError as exc:
            raise _fail(str(exc)) from None
    return PiiHook(parsed, detectors, name=name, reporter=reporter)
