"""What replaces a finding: a mask that keeps a format hint, a placeholder, or a keyed hash.

``hash`` is HMAC-SHA256 keyed with the operator's salt over a canonical form of the value (an email in lower
case, a card or phone number as its digits, an IP address compressed), so the same value gives the same
token wherever it appears and however it was written: joins and counts still work on masked data, and
nobody without the key can test a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

__all__ = ["ACTIONS", "canonical", "hashed", "masked", "placeholder"]

ACTIONS = ("mask", "redact", "hash", "reject")

_SECRET_PREFIX = re.compile(
    r"(?:sk-(?:proj-|ant-|svcacct-)?|gh[pousr]_|github_pat_|xox[a-z]-|xapp-|fa_(?:key|wtk)_|glpat-|"
    r"(?:sk|rk|pk)_(?:live|test)_|AKIA|ASIA|AIza|eyJ)"
)


def _stars_but_last(value: str, keep: int, hidden: str = "0123456789") -> str:
    """``value`` with every character of ``hidden`` starred but the last ``keep`` of them."""
    total = sum(char in hidden for char in value)
    seen, out = 0, []
    for char in value:
        if char in hidden:
            seen += 1
            out.append(char if seen > total - keep else "*")
        else:
            out.append(char)
    return "".join(out)


def masked(kind: str, value: str) -> str:
    """A mask that keeps the value's shape and a hint (last digits, a domain's suffix, a network)."""
    if kind == "email":
        local, _, domain = value.partition("@")
        suffix = domain[domain.rfind(".") :]
        return f"{local[:1]}***@***{suffix}"
    if kind in ("credit_card", "ssn"):
        return _stars_but_last(value, 4)
    if kind == "phone":
        return _stars_but_last(value, 2)
    if kind == "iban":
        alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        return value[:2] + _stars_but_last(value[2:], 4, alnum)
    if kind == "ipv4":
        first, second, *_ = value.split(".")
        return f"{first}.{second}.*.*"
    if kind == "ipv6":
        groups = ipaddress.IPv6Address(value).exploded.split(":")
        return ":".join(group.lstrip("0") or "0" for group in groups[:3]) + ":*"
    if kind == "secret":
        prefix = _SECRET_PREFIX.match(value)
        head = prefix.group() if prefix else ""
        return f"{head}****{value[-4:]}" if len(value) >= 16 else "****"
    return "".join("*" if char.isalnum() else char for char in value)


def placeholder(kind: str, template: str) -> str:
    return template.replace("{TYPE}", kind.upper()).replace("{type}", kind)


def canonical(kind: str, value: str) -> str:
    """The form hashed: two spellings of one value give one token."""
    if kind == "email":
        return value.lower()
    if kind == "phone":
        digits = "".join(char for char in value if char.isdigit())
        return "+" + digits if value.startswith("+") else digits
    if kind in ("credit_card", "ssn"):
        return "".join(char for char in value if char.isdigit())
    if kind == "iban":
        return value.replace(" ", "").upper()
    if kind in ("ipv4", "ipv6"):
        return str(ipaddress.ip_address(value))
    return value


def hashed(kind: str, value: str, key: bytes, length: int) -> str:
    mac = hmac.new(key, f"{kind}:{canonical(kind, value)}".encode(), hashlib.sha256).hexdigest()
    return f"[{kind.upper()}:{mac[:length]}]"
