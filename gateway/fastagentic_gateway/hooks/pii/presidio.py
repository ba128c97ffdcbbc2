"""Microsoft Presidio as a ``Detector``, where ``presidio-analyzer`` (and the spaCy model it loads) is
installed: not a dependency of FastAgentic. Its entity names map onto ours (``EMAIL_ADDRESS`` -> ``email``,
``IP_ADDRESS`` -> ``ipv4`` / ``ipv6``...); the ones we have no name for keep theirs in lower case
(``person``, ``location``...), so per-type rules can name them too.
"""

from __future__ import annotations

import importlib
from typing import Any

from .detect import Finding

__all__ = ["ENTITY_TYPES", "PresidioDetector"]

ENTITY_TYPES = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "US_SSN": "ssn",
}


class PresidioDetector:
    name = "presidio"

    def __init__(self, language: str = "en", entities: list[str] | None = None) -> None:
        try:
            analyzer: Any = importlib.import_module("presidio_analyzer")
        except ImportError as exc:
            raise ValueError(
                "PII engine 'presidio' needs the presidio-analyzer package and a spaCy model "
                f"(pip install presidio-analyzer; python -m spacy download en_core_web_lg): {exc}"
            ) from exc
        try:
            self._engine = analyzer.AnalyzerEngine(supported_languages=[language])
        except Exception as exc:  # a missing spaCy model is an OSError, a bad language a ValueError
            raise ValueError(f"PII engine 'presidio' cannot start: {type(exc).__name__}: {exc}") from exc
        self._language = language
        self._entities = entities or None

    def detect(self, text: str) -> list[Finding]:
        results = self._engine.analyze(text=text, language=self._language, entities=self._entities)
        findings = []
        for result in results:
            kind = ENTITY_TYPES.get(result.entity_type, result.entity_type.lower())
            if result.entity_type == "IP_ADDRESS":
                kind = "ipv6" if ":" in text[result.start : result.end] else "ipv4"
            findings.append(Finding(kind, result.start, result.end, float(result.score)))
        return findings
