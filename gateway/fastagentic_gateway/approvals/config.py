"""Approval channels and rules, as the settings declare them (``approval_channels``, ``approval_rules``).

A channel is where people are told that a run waits: a signed JSON ``webhook``, a ``slack`` incoming
webhook, or ``email`` through the SMTP server of the ``approval_smtp_*`` settings. A rule picks the
channels of an interrupt (by endpoint, tenant and kind: ``approval`` for ``ctx.approve``, ``question``
for any other interrupt) and what happens when nobody answers in time. The first rule that matches wins.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Meta

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["CHANNEL_TYPES", "KINDS", "ON_TIMEOUT", "ApprovalChannel", "ApprovalRule", "check_approvals"]

CHANNEL_TYPES = ("webhook", "slack", "email")
KINDS = ("approval", "question")
ON_TIMEOUT = ("reject", "approve", "escalate")
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: an address as SMTP takes it (one @, no spaces, no angle brackets); the server has the last word
EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")
#: the least length of a secret the gateway signs with (256 bits in hex, or a long passphrase)
MIN_SECRET = 32


def _doc(text: str) -> Meta:
    return Meta(description=text)


class ApprovalChannel(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Where a person is told that a run waits for them."""

    name: Annotated[str, _doc("Names the channel in rules, logs and audit records.")]
    type: Annotated[str, _doc("`webhook` (signed JSON), `slack` (incoming webhook) or `email` (SMTP).")]
    url: Annotated[str, _doc("`webhook` and `slack`: the URL the notification is POSTed to.")] = ""
    secret: Annotated[
        str,
        _doc(
            "`webhook`: the key (at least 32 characters) of the `X-FastAgentic-Signature` HMAC, shared with "
            "the receiver. Not the `approval_secret`: a receiver that can check signatures cannot make links."
        ),
    ] = ""
    to: Annotated[list[str], _doc("`email`: the addresses; each gets its own links, naming it.")] = []
    recipient: Annotated[
        str,
        _doc("`webhook` and `slack`: who the links name as the approver (default: the channel's name)."),
    ] = ""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(f"approval channel name {self.name!r}: 1-64 letters, digits and _.:-")
        where = f"approval channel {self.name!r}"
        if self.type not in CHANNEL_TYPES:
            raise ValueError(f"{where}: type must be webhook, slack or email, not {self.type!r}")
        if self.type == "email":
            if not self.to:
                raise ValueError(f"{where}: an email channel needs `to` (one or more addresses)")
            for address in self.to:
                if not EMAIL.fullmatch(address):
                    raise ValueError(f"{where}: {address!r} is not an email address")
            if self.url or self.secret:
                raise ValueError(f"{where}: `url` and `secret` are for webhook and slack channels")
            return
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: url must be an http:// or https:// URL, not {self.url!r}")
        if self.to:
            raise ValueError(f"{where}: `to` is for email channels")
        if self.type == "webhook" and len(self.secret) < MIN_SECRET:
            raise ValueError(f"{where}: a webhook needs a `secret` of at least {MIN_SECRET} characters")
        if self.type == "slack" and self.secret:
            raise ValueError(f"{where}: slack incoming webhooks are not signed (the URL is the secret)")

    @property
    def approver(self) -> str:
        return self.recipient or self.name


class ApprovalRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Which channels hear of an interrupt, and what happens when nobody answers it in time."""

    name: Annotated[str, _doc("Names the rule in logs and audit records.")]
    channels: Annotated[list[str], _doc("The channels notified when a run starts waiting.")]
    endpoints: Annotated[list[str], _doc("Endpoints it applies to; empty: every endpoint.")] = []
    tenants: Annotated[list[str], _doc("Tenants it applies to; empty: every tenant.")] = []
    kinds: Annotated[
        list[str],
        _doc("`approval` (`ctx.approve`) and/or `question` (any other interrupt); empty: both."),
    ] = []
    timeout: Annotated[
        float,
        Meta(
            ge=0,
            description="Seconds after the interrupt past which `on_timeout` applies; 0: none (the run waits "
            "until it is answered or its deadline).",
        ),
    ] = 0.0
    on_timeout: Annotated[
        str,
        _doc(
            "`reject`: answer a reject decision (a question: cancel the run); `approve`: answer an approve "
            "decision (approvals only); `escalate`: notify `escalate_to` (once), the run keeps waiting."
        ),
    ] = "reject"
    escalate_to: Annotated[list[str], _doc("`escalate`: the channels notified at the timeout.")] = []

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(f"approval rule name {self.name!r}: 1-64 letters, digits and _.:-")
        where = f"approval rule {self.name!r}"
        if not self.channels:
            raise ValueError(f"{where}: channels must name at least one channel")
        if any(kind not in KINDS for kind in self.kinds):
            raise ValueError(f"{where}: kinds may hold approval and question, not {self.kinds}")
        if self.on_timeout not in ON_TIMEOUT:
            raise ValueError(
                f"{where}: on_timeout must be reject, approve or escalate, not {self.on_timeout!r}"
            )
        if self.on_timeout == "approve" and self.kinds != ["approval"]:
            raise ValueError(
                f'{where}: on_timeout = "approve" answers an approval only: set kinds = ["approval"]'
            )
        if self.on_timeout == "escalate" and not self.escalate_to:
            raise ValueError(f'{where}: on_timeout = "escalate" needs escalate_to (channel names)')
        if self.escalate_to and self.on_timeout != "escalate":
            raise ValueError(f'{where}: escalate_to is for on_timeout = "escalate"')

    def applies(self, endpoint: str, tenant: str, kind: str) -> bool:
        return (
            (not self.endpoints or endpoint in self.endpoints)
            and (not self.tenants or tenant in self.tenants)
            and (not self.kinds or kind in self.kinds)
        )


def check_approvals(settings: Settings) -> None:
    """The approval settings together: every name a rule uses is a channel, the secret and SMTP are set
    when something needs them. ValueError naming what is wrong."""
    names = [channel.name for channel in settings.approval_channels]
    if len(set(names)) != len(names):
        raise ValueError("approval_channels: each channel name may be used once")
    rules = [rule.name for rule in settings.approval_rules]
    if len(set(rules)) != len(rules):
        raise ValueError("approval_rules: each rule name may be used once")
    for rule in settings.approval_rules:
        unknown = sorted(set(rule.channels + rule.escalate_to) - set(names))
        if unknown:
            raise ValueError(f"approval rule {rule.name!r}: no approval channel named {', '.join(unknown)}")
    if settings.approval_rules and not settings.approval_channels:
        raise ValueError("approval_rules need approval_channels")
    if not settings.approval_channels:
        return
    if len(settings.approval_secret) < MIN_SECRET:
        raise ValueError(
            f"approval_channels need approval_secret: a random secret of at least {MIN_SECRET} characters "
            "(it signs the answer links)"
        )
    if settings.approval_previous_secret and len(settings.approval_previous_secret) < MIN_SECRET:
        raise ValueError(f"approval_previous_secret must be at least {MIN_SECRET} characters, or empty")
    if settings.approval_smtp_security not in ("starttls", "tls", "none"):
        raise ValueError(
            f'approval_smtp_security must be "starttls", "tls" or "none", not {settings.approval_smtp_security!r}'
        )
    if any(channel.type == "email" for channel in settings.approval_channels):
        if not settings.approval_smtp_host:
            raise ValueError("an email approval channel needs approval_smtp_host")
        if not EMAIL.fullmatch(settings.approval_smtp_from):
            raise ValueError("an email approval channel needs approval_smtp_from (the sender's address)")
    if bool(settings.approval_smtp_username) != bool(settings.approval_smtp_password):
        raise ValueError("approval_smtp_username and approval_smtp_password go together")
    if settings.approval_url and not settings.approval_url.startswith(("http://", "https://")):
        raise ValueError(f"approval_url must be an http:// or https:// URL, not {settings.approval_url!r}")
