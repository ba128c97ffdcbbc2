"""Finding PII in a string: the ``Detector`` protocol and the built-in regex engine.

The built-in engine scans a string once with one precompiled alternation of every enabled type, in a fixed
priority (blocklist, secret, jwt, email, iban, credit_card, ssn, ipv6, ipv4, phone, high-entropy secret).
A candidate is then checked (Luhn, IBAN mod-97, SSN ranges, ``ipaddress``, date and thousands guards...)
and scored in [0, 1]; one that fails its check is retried, at the same place, against the types of lower
priority only. Custom patterns run afterwards, one pass each (their groups cannot share one alternation).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "BUILTIN_TYPES",
    "CustomPattern",
    "Detector",
    "Finding",
    "RegexDetector",
    "iban_valid",
    "luhn_valid",
    "ssn_valid",
]

#: the types the regex engine knows ("blocked" is the blocklist's)
BUILTIN_TYPES = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "ssn",
    "ipv4",
    "ipv6",
    "secret",
    "blocked",
)


class Finding(NamedTuple):
    """One occurrence: its type, where it is in the string (``text[start:end]``) and how sure we are."""

    type: str
    start: int
    end: int
    score: float


@runtime_checkable
class Detector(Protocol):
    """An engine that finds PII in one string (pure CPU work: the hook moves big payloads to a thread)."""

    name: str

    def detect(self, text: str) -> list[Finding]: ...


class CustomPattern(NamedTuple):
    name: str
    pattern: re.Pattern[str]
    score: float


# --- checks -------------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a card number given as digits only."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


#: IBAN length per country (ISO 13616 registry)
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """The length of its country and the ISO 7064 mod-97 check of an IBAN given without spaces."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


#: numbers the SSA voided after they were published (advertising, the Woolworth wallet card)
_VOID_SSNS = {"078051120", "219099999"}


def ssn_valid(digits: str) -> bool:
    """A US SSN's ranges: area 001-899 but not 666, group 01-99, serial 0001-9999."""
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    if area == 0 or area == 666 or area >= 900 or group == 0 or serial == 0:
        return False
    return digits not in _VOID_SSNS


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    size = len(text)
    return -sum(count / size * math.log2(count / size) for count in Counter(text).values())


# --- the patterns, in priority order ------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PATTERNS: dict[str, str] = {
    "secret": r"""(?<![\w-])(?:
        sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,200}
      | gh[pousr]_[A-Za-z0-9]{36,255} | github_pat_[A-Za-z0-9_]{22,255}
      | (?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}
      | xox[abposr]-[A-Za-z0-9-]{10,250} | xapp-\d-[A-Za-z0-9-]{10,250}
      | fa_(?:key|wtk)_[0-9a-f]{16}_[A-Za-z0-9_-]{20,256}
      | glpat-[A-Za-z0-9_-]{20,64} | AIza[0-9A-Za-z_-]{35}
      | (?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,247}
    )(?![\w-])""",
    "jwt": r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,2048}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{0,2048}(?![\w.-])",
    "email": r"""(?<![\w.%+-])[A-Za-z0-9_%+-][A-Za-z0-9._%+-]{0,63}
        @(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])""",
    "iban": r"(?<!\w)[A-Z]{2}\d{2}(?:\ ?[A-Z0-9]){11,30}",
    "credit_card": r"(?<![\w.+-])\d(?:[\ -]?\d){12,18}(?![\w-]|\.\d)",
    "ssn": r"(?<![\w-])\d{3}(?:-\d\d-|\ \d\d\ )\d{4}(?![\w-])",
    "ipv6": r"""(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}
        (?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)""",
    "ipv4": rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)",
    "phone": r"""(?<![\w+@.-])(?:
        \+\d{1,3}(?:[\ .-]?\(\d{1,4}\))?(?:[\ .-]?\d{1,5}){2,6}
      | \(\d{2,5}\)[\ .-]?\d{2,5}(?:[\ .-]?\d{2,5}){1,3}
      | \d{2,5}(?:[\ .-]\d{2,5}){2,5}
    )(?![\w-]|\.\d)""",
    "entropy": r"(?<![\w+=-])[A-Za-z0-9_+=-]{24,512}(?![\w+=-])",
}
#: the alternation's group -> the finding's type
_TYPE_OF = {"jwt": "secret", "entropy": "secret"}

_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_SSN_SHAPE = re.compile(r"\d{3}([- ])\d\d\1\d{4}")  # failed the SSN checks: not a phone either
_THOUSANDS = re.compile(r"\d{1,3}(?:([ .,])\d{3})(?:\1\d{3})+")
_IMAGE_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "js", "css", "py", "md"})
_WORDY = re.compile(r"(?:[A-Za-z]{3,}[_-]){2,}")


def _check_email(text: str, start: int, end: int) -> tuple[float, int]:
    tld = text[text.rfind(".", start, end) + 1 : end].lower()
    return (0.0 if tld in _IMAGE_TLDS else 0.95), end


def _check_card(text: str, start: int, end: int) -> tuple[float, int]:
    raw = text[start:end]
    digits = raw.replace(" ", "").replace("-", "")
    separators = {char for char in raw if not char.isdigit()}
    if len(separators) > 1 or len(set(digits)) == 1 or not luhn_valid(digits):
        return 0.0, end
    two, four = int(digits[:2]), int(digits[:4])
    known = (
        digits[0] == "4"  # Visa
        or 51 <= two <= 55
        or 2221 <= four <= 2720  # Mastercard
        or two in (34, 37)  # Amex
        or digits.startswith(("6011", "65", "644", "645", "646", "647", "648", "649"))  # Discover
        or two in (35, 36, 38, 62)  # JCB, Diners, UnionPay
        or 300 <= int(digits[:3]) <= 305
    )
    return (0.95 if known else 0.7), end


def _check_iban(text: str, start: int, end: int) -> tuple[float, int]:
    length = IBAN_LENGTHS.get(text[start : start + 2])
    if length is None:
        return 0.0, end
    count, position = 0, start
    while position < end and count < length:
        if text[position] != " ":
            count += 1
        position += 1
    if count < length or (position < len(text) and text[position].isalnum()):
        return 0.0, end
    compact = text[start:position].replace(" ", "")
    return (0.95 if iban_valid(compact) else 0.0), position


def _check_ssn(text: str, start: int, end: int) -> tuple[float, int]:
    digits = text[start:end].replace("-", "").replace(" ", "")
    return (0.85 if ssn_valid(digits) else 0.0), end


def _ip_score(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> float:
    if address.is_loopback or address.is_unspecified:
        return 0.3
    if address.is_link_local or address.is_private or address.is_reserved or address.is_multicast:
        return 0.7
    return 0.85


def _check_ipv4(text: str, start: int, end: int) -> tuple[float, int]:
    return _ip_score(ipaddress.IPv4Address(text[start:end])), end


def _check_ipv6(text: str, start: int, end: int) -> tuple[float, int]:
    raw = text[start:end]
    groups = [group for group in raw.split(":") if group]
    if len(groups) < 2 or not any(char.isdigit() for char in raw):
        return 0.0, end  # "::", "abc::def": not addresses anyone writes
    try:
        address = ipaddress.IPv6Address(raw)
    except ValueError:
        return 0.0, end  # 12:30:45, MAC addresses
    return _ip_score(address), end


def _check_phone(text: str, start: int, end: int) -> tuple[float, int]:
    raw = text[start:end]
    digits = sum(char.isdigit() for char in raw)
    if raw.startswith("+"):
        return (0.9 if 8 <= digits <= 15 else 0.0), end
    if not 7 <= digits <= 15 or _DATE.fullmatch(raw) or _SSN_SHAPE.fullmatch(raw):
        return 0.0, end
    if raw.startswith("("):
        return 0.8, end
    if _THOUSANDS.fullmatch(raw):
        return 0.35, end  # 12 345 678 or 1.234.567: a number more often than a phone
    separators = {char for char in raw if char in " .-"}
    if len(separators) > 1:
        return 0.45, end
    return (0.7 if digits >= 10 else 0.55), end


def _check_jwt(text: str, start: int, end: int) -> tuple[float, int]:
    header = text[start : text.index(".", start)]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        return 0.7, end
    return (0.95 if isinstance(decoded, dict) and "alg" in decoded else 0.7), end


def _check_entropy(text: str, start: int, end: int) -> tuple[float, int]:
    token = text[start:end]
    digits = sum(char.isdigit() for char in token)
    letters = sum(char.isalpha() for char in token)
    if digits == 0 or letters == 0:
        return 0.0, end
    entropy = _entropy(token)
    if all(char in "0123456789abcdef-_" for char in token.lower()):
        return (0.4 if entropy >= 3.0 else 0.0), end  # digests, commit ids, UUIDs: rarely secrets
    if _WORDY.match(token) or digits < 2 or entropy < 3.5:
        return 0.3, end
    if entropy >= 4.0 and any(char.isupper() for char in token) and any(char.islower() for char in token):
        return 0.75, end
    return 0.6, end


def _fixed(score: float) -> Callable[[str, int, int], tuple[float, int]]:
    return lambda _text, _start, end: (score, end)


_CHECKS: dict[str, Callable[[str, int, int], tuple[float, int]]] = {
    "blocked": _fixed(1.0),
    "secret": _fixed(0.95),
    "jwt": _check_jwt,
    "email": _check_email,
    "iban": _check_iban,
    "credit_card": _check_card,
    "ssn": _check_ssn,
    "ipv6": _check_ipv6,
    "ipv4": _check_ipv4,
    "phone": _check_phone,
    "entropy": _check_entropy,
}


_NOT_DIGITS = str.maketrans("", "", "0123456789")


def _skipped(text: str) -> set[str]:
    """The branches that cannot match in ``text``, from checks that cost a C-speed pass or less."""
    skipped = set()
    if "@" not in text:
        skipped.add("email")
    if "eyJ" not in text:
        skipped.add("jwt")
    if ":" not in text:
        skipped.add("ipv6")
    digits = len(text) - len(text.translate(_NOT_DIGITS))
    if digits < 7:
        skipped.update(("credit_card", "ssn", "phone"))
        if digits < 4:
            skipped.update(("ipv4", "iban"))
    return skipped


class _Scanner:
    """The alternation of some branches, and its tails: ``tails[i]`` holds the branches after ``i``,
    tried where branch ``i``'s candidate failed its check. Every branch starts where no word character
    precedes: checked once, ahead of the alternation, not once per branch."""

    __slots__ = ("first", "groups", "tails")

    def __init__(self, branches: list[tuple[str, str]]) -> None:
        self.groups = [group for group, _ in branches]
        self.tails: list[re.Pattern[str] | None] = [
            re.compile(
                r"(?<!\w)(?:" + "|".join(f"(?P<{g}>{p})" for g, p in branches[index:]) + ")", re.VERBOSE
            )
            if branches[index:]
            else None
            for index in range(len(branches) + 1)
        ]
        self.first = self.tails[0] or re.compile(r"(?!)")


class RegexDetector:
    """The built-in engine. ``types`` limits it to some types; ``block`` are terms always found (as type
    ``"blocked"``, whole words, any case); ``custom`` are named patterns of the operator's own."""

    name = "regex"

    def __init__(
        self,
        types: Iterable[str] = BUILTIN_TYPES,
        *,
        block: Iterable[str] = (),
        custom: Iterable[CustomPattern] = (),
    ) -> None:
        enabled = set(types)
        unknown = enabled - set(BUILTIN_TYPES)
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)} (known: {', '.join(BUILTIN_TYPES)})")
        branches: list[tuple[str, str]] = []
        terms = sorted({term for term in block if term}, key=len, reverse=True)
        if terms and "blocked" in enabled:
            alternation = "|".join(re.escape(term) for term in terms)  # escaped: kept under VERBOSE
            branches.append(("blocked", rf"(?<!\w)(?i:{alternation})(?!\w)"))
        for group, pattern in _PATTERNS.items():
            if _TYPE_OF.get(group, group) in enabled:
                branches.append((group, pattern))
        self._branches = branches
        # one scanner per set of branches the string can hold (see _skipped), built on first use
        self._scanners: dict[frozenset[str], _Scanner] = {}
        self._custom = list(custom)

    def _scanner(self, text: str) -> _Scanner:
        skipped = _skipped(text)
        key = frozenset(group for group, _ in self._branches if group not in skipped)
        scanner = self._scanners.get(key)
        if scanner is None:
            scanner = self._scanners[key] = _Scanner([b for b in self._branches if b[0] in key])
        return scanner

    def detect(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        scanner = self._scanner(text)
        search, groups, tails = scanner.first.search, scanner.groups, scanner.tails
        position, size = 0, len(text)
        while position < size:
            match = search(text, position)
            if match is None:
                break
            start, skip_to = match.start(), match.end()
            while match is not None:
                group = match.lastgroup
                assert group is not None
                score, end = _CHECKS[group](text, start, match.end())
                if score > 0:
                    findings.append(Finding(_TYPE_OF.get(group, group), start, end, score))
                    position = end
                    break
                tail = tails[groups.index(group) + 1]
                match = tail.match(text, start) if tail is not None else None
            else:
                # nothing there: no part of the failed candidate is tried again (the tail of a card
                # number that fails Luhn is no phone number)
                position = skip_to
        if self._custom:
            for custom in self._custom:
                findings.extend(
                    Finding(custom.name, found.start(), found.end(), custom.score)
                    for found in custom.pattern.finditer(text)
                    if found.end() > found.start()
                )
            findings = without_overlaps(findings)
        return findings


def without_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """The findings sorted by place, the earlier (then the longer, then the surer) kept where two overlap."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, f.start - f.end, -f.score)):
        if not kept or finding.start >= kept[-1].end:
            kept.append(finding)
    return kept
