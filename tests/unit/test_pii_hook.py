"""The PII hook: every action, allow and block lists, custom patterns, thresholds, nested payloads, and a
report that never holds a value."""

from __future__ import annotations

import copy
import importlib.util
import logging
import threading
import time
from typing import Any

import msgspec
import pytest

from fastagentic_gateway.hooks import builtin
from fastagentic_gateway.hooks.model import PROCEED, HookContext, HookPoint, Modify, Reject
from fastagentic_gateway.hooks.pii import Finding, PiiHook, PiiOptions, PiiReport, make

KEY = "k" * 32
CARD = "4111 1111 1111 1111"
EMAIL = "jane.roe@example.com"


def context(payload: Any, point: HookPoint = HookPoint.ON_TOOL_RESULT) -> HookContext:
    return HookContext(
        point=point,
        endpoint="support",
        protocol="rest",
        principal="u1",
        tenant="acme",
        run_id="r1",
        payload=payload,
    )


async def run(options: dict[str, Any], payload: Any) -> Any:
    return await make(options)(context(payload))


# --- the walk ----------------------------------------------------------------------------------------


async def test_strings_anywhere_in_a_nested_payload_are_redacted_keys_left_alone() -> None:
    payload = {
        "user": {"contact": [f"mail {EMAIL}", {"card": CARD}]},
        "jane.roe@example.com": "a key, not scanned",
        "count": 3,
        "ok": True,
        "none": None,
    }
    original = copy.deepcopy(payload)
    action = await run({}, payload)
    assert action == Modify(
        payload={
            "user": {"contact": ["mail [EMAIL]", {"card": "[CREDIT_CARD]"}]},
            "jane.roe@example.com": "a key, not scanned",
            "count": 3,
            "ok": True,
            "none": None,
        }
    )
    assert payload == original  # the input is not mutated


async def test_a_payload_without_pii_proceeds_unchanged() -> None:
    assert await run({}, {"text": "The quarterly numbers look fine.", "n": [1, 2, 3]}) == PROCEED


async def test_keys_are_scanned_when_configured() -> None:
    action = await run({"scan_keys": True}, {EMAIL: "x"})
    assert action == Modify(payload={"[EMAIL]": "x"})


async def test_skip_fields_are_left_alone() -> None:
    action = await run({"skip_fields": ["audit"]}, {"audit": EMAIL, "text": EMAIL})
    assert action == Modify(payload={"audit": EMAIL, "text": "[EMAIL]"})


async def test_large_integers_are_read_as_text() -> None:
    assert await run({}, {"card": 4111111111111111}) == Modify(payload={"card": "[CREDIT_CARD]"})
    assert await run({"scan_numbers": False}, {"card": 4111111111111111}) == PROCEED


async def test_a_payload_deeper_than_max_depth_is_rejected_not_passed() -> None:
    payload: Any = EMAIL
    for _ in range(10):
        payload = [payload]
    action = await run({"max_depth": 5}, payload)
    assert isinstance(action, Reject) and "deeper than 5 levels" in action.reason


# --- actions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (EMAIL, "j***@***.com"),
        (CARD, "**** **** **** 1111"),
        ("+1 415-555-2671", "+* ***-***-**71"),
        ("DE89 3704 0044 0532 0130 00", "DE** **** **** **** **30 00"),
        ("536-22-1234", "***-**-1234"),
        ("203.0.113.9", "203.0.*.*"),
        ("2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3:*"),
        ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "sk-proj-****Xy4z"),
    ],
)
async def test_mask_keeps_a_format_hint(text: str, expected: str) -> None:
    assert await run({"action": "mask"}, {"v": f"<{text}>"}) == Modify(payload={"v": f"<{expected}>"})


async def test_redact_uses_the_placeholder_template() -> None:
    action = await run({"placeholder": "<{type} removed>"}, f"to {EMAIL}")
    assert action == Modify(payload="to <email removed>")


async def test_hash_is_stable_per_key_and_joins_spellings() -> None:
    hook = make({"action": "hash", "hash_key": KEY})
    first = await hook(context(["Jane.Roe@Example.com", EMAIL, "4111-1111-1111-1111", CARD]))
    assert isinstance(first, Modify)
    a, b, c, d = first.payload
    assert a == b and c == d and a != c
    assert a.startswith("[EMAIL:") and len(a) == len("[EMAIL:]") + 16
    again = await make({"action": "hash", "hash_key": KEY})(context([EMAIL]))
    other = await make({"action": "hash", "hash_key": "o" * 32})(context([EMAIL]))
    assert isinstance(again, Modify) and isinstance(other, Modify)
    assert again.payload == [a] and other.payload != [a]


async def test_hash_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_TEST_KEY", KEY)
    from_env = await run({"action": "hash", "hash_key_env": "PII_TEST_KEY"}, EMAIL)
    inline = await run({"action": "hash", "hash_key": KEY}, EMAIL)
    assert from_env == inline


async def test_reject_names_types_and_counts_never_values() -> None:
    action = await run({"types": {"credit_card": {"action": "reject"}}}, [CARD, "5500 0055 5555 5559", EMAIL])
    assert isinstance(action, Reject)
    assert "credit_card (2)" in action.reason
    assert "1111" not in action.reason and "email" not in action.reason


async def test_per_type_actions_mix() -> None:
    options = {"action": "redact", "types": {"email": {"action": "mask"}, "ipv4": {"enabled": False}}}
    action = await run(options, f"{EMAIL} {CARD} 203.0.113.9")
    assert action == Modify(payload="j***@***.com [CREDIT_CARD] 203.0.113.9")


# --- thresholds, lists, custom patterns --------------------------------------------------------------


async def test_per_type_min_score_drops_weak_findings() -> None:
    text = "token Zk3mQ9xV2pL7wR4tY8uB1nC6 and sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
    strict = await run({"types": {"secret": {"min_score": 0.9}}}, text)
    assert strict == Modify(payload="token Zk3mQ9xV2pL7wR4tY8uB1nC6 and [SECRET]")
    loose = await run({"types": {"phone": {"min_score": 0.3}}}, "call 612 345 678")
    assert loose == Modify(payload="call [PHONE]")
    assert await run({}, "call 612 345 678") == PROCEED


async def test_allowlist_by_value_and_by_pattern() -> None:
    options = {"allow": ["support@example.com"], "allow_patterns": [r".*@acme\.test"]}
    action = await run(options, "support@example.com, SUPPORT@EXAMPLE.COM, bob@acme.test, jane@other.org")
    assert action == Modify(payload="support@example.com, SUPPORT@EXAMPLE.COM, bob@acme.test, [EMAIL]")


async def test_blocklist_terms_are_always_found_as_whole_words() -> None:
    action = await run(
        {"block": ["Project Nightingale", "acme-x"]}, "About project nightingale and acme-x, not acme-xy"
    )
    assert action == Modify(payload="About [BLOCKED] and [BLOCKED], not acme-xy")


async def test_custom_patterns_with_their_own_action() -> None:
    options = {
        "patterns": [
            {"name": "employee_id", "regex": r"EMP-\d{6}", "action": "mask"},
            {"name": "ticket", "regex": r"tkt_[a-z]{4}", "ignore_case": True},
        ]
    }
    action = await run(options, "EMP-123456 filed TKT_ABCD for jane@example.com")
    assert action == Modify(payload="***-****** filed [TICKET] for [EMAIL]")


# --- the report -------------------------------------------------------------------------------------


async def test_the_report_counts_types_and_never_holds_values(caplog: pytest.LogCaptureFixture) -> None:
    reports: list[PiiReport] = []
    hook = make(
        {"allow": ["ok@example.com"], "types": {"secret": {"min_score": 0.9}}},
        reporter=lambda _context, report: reports.append(report),
    )
    secrets = [EMAIL, CARD, "ok@example.com", "Zk3mQ9xV2pL7wR4tY8uB1nC6", "jim@example.org"]
    await hook(context({"a": secrets}))
    assert reports == [
        PiiReport(found={"email": 2, "credit_card": 1}, below_threshold={"secret": 1}, allowed=1, rejected=[])
    ]
    encoded = msgspec.json.encode(reports[0]).decode()
    assert not any(value in encoded for value in secrets)
    assert hook.totals == {"email": 2, "credit_card": 1}
    caplog.set_level(logging.INFO, logger="fastagentic.hooks.pii")
    await make({})(context({"a": secrets}))
    logged = caplog.text
    assert "credit_card" in logged and not any(value in logged for value in secrets)


# --- engines and threads ------------------------------------------------------------------------------


class RecordingDetector:
    name = "recording"

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def detect(self, text: str) -> list[Finding]:
        self.threads.add(threading.get_ident())
        at = text.find("secret")
        return [Finding("codename", at, at + 6, 1.0)] if at >= 0 else []


async def test_a_detector_implementing_the_protocol_plugs_in_and_runs_off_the_loop() -> None:
    detector = RecordingDetector()
    hook = PiiHook(PiiOptions(), [detector])
    assert await hook(context("a secret plan")) == Modify(payload="a [CODENAME] plan")
    assert detector.threads and threading.get_ident() not in detector.threads


async def test_big_payloads_are_scanned_in_a_thread() -> None:
    hook = make({"offload_bytes": 1000})
    assert await hook(context(["x" * 2000 + f" {EMAIL}"])) == Modify(payload=["x" * 2000 + " [EMAIL]"])


@pytest.mark.skipif(
    importlib.util.find_spec("presidio_analyzer") is None,
    reason="presidio-analyzer is not installed (optional, not a dependency: docs/guides/pii.md)",
)
async def test_presidio_engine_finds_with_the_regex_engine() -> None:
    hook = make({"engine": "both"})
    action = await hook(context(f"Write to {EMAIL}"))
    assert action == Modify(payload="Write to [EMAIL]")


@pytest.mark.skipif(importlib.util.find_spec("presidio_analyzer") is not None, reason="presidio is installed")
def test_presidio_engine_without_presidio_is_a_precise_error() -> None:
    with pytest.raises(ValueError, match="needs the presidio-analyzer package"):
        make({"engine": "presidio"})


# --- options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"actoin": "mask"}, "unknown field `actoin`"),
        ({"action": "drop"}, "action 'drop': one of mask, redact, hash, reject"),
        ({"types": {"passport": {}}}, "unknown type 'passport'"),
        ({"types": {"email": {"action": "x"}}}, r"types.email: action 'x'"),
        ({"types": {"email": {"min_score": 2}}}, "Expected `float` <= 1"),
        ({"patterns": [{"name": "id", "regex": "("}]}, r"patterns\[0\] \('id'\): bad regex"),
        ({"patterns": [{"name": "email", "regex": "x"}]}, "the name is taken"),
        ({"patterns": [{"name": "Bad Name", "regex": "x"}]}, "a name is 1-32 lower-case"),
        ({"patterns": [{"name": "empty", "regex": "x*"}]}, "matches the empty string"),
        ({"allow_patterns": ["["]}, r"allow_patterns\[0\]: bad regex"),
        ({"action": "hash"}, "needs a hash_key"),
        ({"action": "hash", "hash_key": "short"}, "at least 16 characters"),
        ({"action": "hash", "hash_key_env": "PII_TEST_UNSET_VARIABLE"}, "PII_TEST_UNSET_VARIABLE is unset"),
        ({"placeholder": "[PII]"}, "must hold"),
        ({"engine": "spacy"}, "engine 'spacy'"),
    ],
)
def test_bad_options_are_refused_precisely(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(options)


def test_the_pii_type_is_registered_for_the_hooks_settings() -> None:
    assert builtin.factory_of("pii") is make


def test_cost_per_kilobyte_is_measured() -> None:
    """Not a timed assertion: prints the cost, read it with -s (docs/guides/pii.md quotes it)."""
    hook = make({})
    prose = ("The quarterly report shows revenue grew while costs remained flat this year. " * 14)[:1024]
    laden = (f"Contact {EMAIL} or +44 20 7946 0958; card {CARD}, ip 10.0.0.7. " * 13)[:1024]
    for name, text in (("prose", prose), ("pii-laden", laden)):
        rounds = 300
        started = time.perf_counter()
        for _ in range(rounds):
            hook.scan({"messages": [{"role": "user", "content": text}]})
        per_kb = (time.perf_counter() - started) / rounds * 1e6
        print(f"pii scan, {name}: {per_kb:.0f} us per KB")
        assert per_kb > 0
