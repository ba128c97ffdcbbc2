"""Answer links: ``/v1/approvals/{token}``, the token a signed, expiring statement of what it answers.

A token is ``<claims>.<signature>``, both base64url without padding: the claims are JSON, the signature
HMAC-SHA256 of ``"fa-approval.v1." + claims`` with the ``approval_secret``. The claims bind the run (and
its tenant), the attempt that asked, the interrupt (its id, the seq of its ``interrupt`` event and a
SHA-256 digest of that event: the exact request and schema), the decision the link gives, who it was sent
to, through which channel, and when it expires. A token is one-time because the run it answers stops
waiting on that interrupt once answered: any token of it is then refused (409).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

import msgspec

from ..errors import GatewayError

__all__ = [
    "DECISIONS",
    "ApprovalClaims",
    "InvalidToken",
    "TokenExpired",
    "digest_of",
    "sign",
    "verify",
]

#: ``approve`` / ``edit`` / ``reject`` answer an approval (``ctx.approve``); ``answer`` any other interrupt
DECISIONS = ("approve", "edit", "reject", "answer")
_CONTEXT = b"fa-approval.v1."
#: the longest token accepted (a real one is some 400 characters)
MAX_TOKEN = 4096


class InvalidToken(GatewayError):
    """Malformed, or its signature does not verify (tampered, or signed with another secret)."""

    status = 403
    type = "invalid_approval_token"


class TokenExpired(GatewayError):
    status = 410
    type = "approval_expired"


class ApprovalClaims(msgspec.Struct, frozen=True, kw_only=True):
    v: int  # format version: 1
    run: str  # run id
    tenant: str
    attempt: int  # the attempt that asked (a handed-back run waits on at the next: the link still answers)
    interrupt: str  # interrupt id
    seq: int  # seq of the interrupt event
    digest: str  # digest_of(the interrupt event's data)
    decision: str  # one of DECISIONS
    to: str  # the recipient: an email address, or the channel's recipient
    channel: str
    exp: int  # Unix time


def digest_of(data: bytes) -> str:
    """The digest binding a token to one interrupt: SHA-256 of its event's data (id, request, schema)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, claims: str) -> bytes:
    return hmac.new(secret, _CONTEXT + claims.encode("ascii"), hashlib.sha256).digest()


def sign(claims: ApprovalClaims, secret: bytes) -> str:
    body = _b64(msgspec.json.encode(claims))
    return f"{body}.{_b64(_mac(secret, body))}"


def verify(token: str, secrets: list[bytes], now: float | None = None) -> ApprovalClaims:
    """The claims of ``token`` when one of ``secrets`` signed it; InvalidToken or TokenExpired."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise InvalidToken("not an approval token")
    body, signature = token.split(".")
    try:
        mac = _unb64(signature)
    except (binascii.Error, ValueError):
        raise InvalidToken("not an approval token") from None
    if not any(hmac.compare_digest(mac, _mac(secret, body)) for secret in secrets):
        raise InvalidToken("the approval token's signature does not verify (altered, or from another secret)")
    try:
        claims = msgspec.json.decode(_unb64(body), type=ApprovalClaims)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidToken("the approval token's claims are unreadable") from None
    if claims.v != 1 or claims.decision not in DECISIONS:
        raise InvalidToken("the approval token is of an unknown version or decision")
    if (time.time() if now is None else now) >= claims.exp:
        raise TokenExpired(
            f"this approval link expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(claims.exp))}; "
            "the run may still wait: answer it over the API (POST /v1/runs/{id}/resume)",
            extra={"run_id": claims.run},
        )
    return claims
