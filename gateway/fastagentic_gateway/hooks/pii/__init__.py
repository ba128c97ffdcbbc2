"""Built-in PII detection and masking, as a hook (``type = "pii"``).

- ``detect``: the ``Detector`` protocol and the built-in regex engine (with its Luhn, IBAN and SSN checks).
- ``transform``: what replaces a finding (mask, placeholder, keyed hash).
- ``presidio``: Microsoft Presidio as a ``Detector``, where it is installed.
- ``hook``: ``PiiHook`` (walks a JSON payload, reports types and counts, never values) and ``make``.
"""

from __future__ import annotations

from ..builtin import register
from .detect import BUILTIN_TYPES, Detector, Finding, RegexDetector, iban_valid, luhn_valid, ssn_valid
from .hook import PiiHook, PiiOptions, PiiReport, Scanned, make

__all__ = [
    "BUILTIN_TYPES",
    "Detector",
    "Finding",
    "PiiHook",
    "PiiOptions",
    "PiiReport",
    "RegexDetector",
    "Scanned",
    "iban_valid",
    "luhn_valid",
    "make",
    "ssn_valid",
]

register("pii", make)
