"""Approval links and settings without processes: tokens sign, verify and expire; a changed claim, another
secret or garbage is refused; a rotated-out secret still verifies while listed; the settings refuse
incoherent channels and rules, naming them; the webhook signature is the one the guide's receiver checks;
the Slack message escapes what the agent asked."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import msgspec
import pytest

from fastagentic_gateway.approvals.channels import Notice, email_message, sign_webhook, slack_payload
from fastagentic_gateway.approvals.service import kind_of
from fastagentic_gateway.approvals.tokens import ApprovalClaims, InvalidToken, TokenExpired, sign, verify
from fastagentic_gateway.settings import SettingsError, load

SECRET = b"s" * 32
OTHER = b"o" * 32


def _claims(**changes: Any) -> ApprovalClaims:
    claims = ApprovalClaims(
        v=1,
        run="run_1",
        tenant="acme",
        attempt=1,
        interrupt="refund",
        seq=4,
        digest="sha256:" + "0" * 64,
        decision="approve",
        to="alice@example.com",
        channel="finance",
        exp=int(time.time()) + 60,
    )
    return msgspec.structs.replace(claims, **changes)


def test_a_token_verifies_with_its_secret_or_a_previous_one_listed() -> None:
    token = sign(_claims(), SECRET)
    assert verify(token, [SECRET]) == _claims()
    assert verify(token, [OTHER, SECRET]).decision == "approve"  # rotation: the old secret still listed
    with pytest.raises(InvalidToken, match="signature"):
        verify(token, [OTHER])


def test_a_changed_claim_garbage_or_an_unknown_decision_is_refused() -> None:
    body, signature = sign(_claims(), SECRET).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["decision"] = "reject"  # an approve link made into a reject link
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        verify(f"{forged}.{signature}", [SECRET])
    for garbage in ("", "x", "a.b.c", "a.!!!", "x" * 5000):
        with pytest.raises(InvalidToken):
            verify(garbage, [SECRET])
    with pytest.raises(InvalidToken, match="unknown version or decision"):
        verify(sign(_claims(decision="maybe"), SECRET), [SECRET])


def test_an_expired_token_is_gone_but_only_once_its_signature_verifies() -> None:
    token = sign(_claims(exp=int(time.time()) - 1), SECRET)
    with pytest.raises(TokenExpired) as expired:
        verify(token, [SECRET])
    assert expired.value.status == 410 and expired.value.extra == {"run_id": "run_1"}
    with pytest.raises(InvalidToken):  # expired and not ours: refused as not ours
        verify(token, [OTHER])


def _settings(**values: Any) -> dict[str, str]:
    return {
        f"FASTAGENTIC_{name.upper()}": v if isinstance(v, str) else json.dumps(v)
        for name, v in values.items()
    }


HOOK = {"name": "ops", "type": "webhook", "url": "https://ops.example.com/h", "secret": "h" * 32}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"approval_channels": [HOOK]}, "approval_channels need approval_secret"),
        ({"approval_channels": [HOOK], "approval_secret": "short"}, "at least 32 characters"),
        ({"approval_channels": [{**HOOK, "secret": "short"}]}, "a webhook needs a `secret`"),
        ({"approval_channels": [{**HOOK, "url": "ftp://x"}]}, "url must be an http"),
        ({"approval_channels": [{"name": "m", "type": "email", "to": ["not-an-address"]}]}, "not an email"),
        ({"approval_channels": [{"name": "m", "type": "pager", "url": "https://x"}]}, "type must be"),
        (
            {"approval_channels": [HOOK], "approval_rules": [{"name": "r", "channels": ["nope"]}]},
            "no approval channel named nope",
        ),
        (
            {
                "approval_channels": [HOOK],
                "approval_rules": [{"name": "r", "channels": ["ops"], "on_timeout": "approve"}],
            },
            'set kinds = \\["approval"\\]',
        ),
        (
            {
                "approval_channels": [HOOK],
                "approval_rules": [{"name": "r", "channels": ["ops"], "on_timeout": "escalate"}],
            },
            "needs escalate_to",
        ),
        (
            {
                "approval_channels": [{"name": "m", "type": "email", "to": ["a@example.com"]}],
                "approval_secret": "s" * 32,
            },
            "needs approval_smtp_host",
        ),
    ],
)
def test_incoherent_approval_settings_are_refused_naming_the_setting(
    values: dict[str, Any], message: str
) -> None:
    environ = _settings(**values)
    if "approval_secret" not in values and "approval_secret" not in message and "secret`" not in message:
        environ.setdefault("FASTAGENTIC_APPROVAL_SECRET", "s" * 32)
    with pytest.raises(SettingsError, match=message):
        load(environ=environ)


def test_coherent_approval_settings_load() -> None:
    settings = load(
        environ=_settings(
            approval_channels=[HOOK, {"name": "m", "type": "email", "to": ["a@example.com"]}],
            approval_rules=[
                {
                    "name": "r",
                    "channels": ["m"],
                    "timeout": 60,
                    "on_timeout": "escalate",
                    "escalate_to": ["ops"],
                }
            ],
            approval_secret="s" * 32,
            approval_smtp_host="smtp.example.com",
            approval_smtp_from="agents@example.com",
        )
    )
    assert [c.name for c in settings.approval_channels] == ["ops", "m"]
    assert settings.approval_rules[0].applies("any", "any", "question")


def _notice(request: Any) -> Notice:
    return Notice(
        type="approval.requested",
        id="run_1:4",
        run_id="run_1",
        attempt=1,
        endpoint="refund",
        tenant="acme",
        kind=kind_of(request),
        interrupt={"id": "refund", "request": request, "schema": None},
        digest="sha256:0",
        asked_at=0.0,
        expires_at=2_000_000_000,
        channel="chat",
        recipient="#refunds",
        links={"approve": "https://a/1", "reject": "https://a/2", "edit": "https://a/3"},
        rule="r",
    )


def test_slack_messages_escape_what_the_agent_asked_and_headers_stay_one_line() -> None:
    request = {
        "approval": {"action": "refund\nBcc: x@example.com", "details": {"note": "<!channel> & <@U1>"}}
    }
    payload = slack_payload(_notice(request))
    section = payload["blocks"][1]["text"]["text"]
    assert "<!channel>" not in section and "&lt;!channel&gt; &amp; &lt;@U1&gt;" in section
    assert "\n" not in payload["text"] and payload["text"].startswith("Approval needed: refund Bcc")
    message = email_message(_notice(request), "agents@example.com", "alice@example.com")
    assert "\n" not in message["Subject"]
    assert "https://a/3" in message.get_content()


def test_the_webhook_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"type":"approval.requested"}'
    header = sign_webhook("k" * 32, body, 1_700_000_000)
    expected = hmac.new(b"k" * 32, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
