"""Integrations as built-in hook types, and the one table of every built-in factory (``FACTORIES``).

- ``lakera``: Lakera Guard over its HTTP API (``lakera.py``).
- ``webhook``: any HTTP service, signed POST of the HookContext, the Action in the response (``webhook.py``).
- ``guardrails_ai``, ``nemo``: not available: neither library installs beside the project's pins (see
  ``docs/hooks/guardrails-ai.md`` and ``docs/hooks/nemo.md``); configuring them fails with that reason.
  Either can run as its own service behind the ``webhook`` hook.

External services are called with one pooled ``httpx.AsyncClient`` per hook instance (``_http.py``);
``aclose()`` closes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from ..builtin import register
from ..model import Hook
from ..pii import make as make_pii
from ._http import HookServiceError
from .lakera import LakeraGuardHook
from .lakera import make as make_lakera
from .webhook import WebhookHook
from .webhook import make as make_webhook

__all__ = ["FACTORIES", "UNAVAILABLE", "HookServiceError", "LakeraGuardHook", "WebhookHook"]

#: hook types that cannot be built here, and why (the error a configuration naming them gets)
UNAVAILABLE = {
    "guardrails_ai": (
        "guardrails-ai 0.11.0 (the newest) requires openai<3 and rich<15, and installing it would downgrade "
        "the project's openai 3.x and rich 15 (docs/hooks/guardrails-ai.md); run Guardrails AI as its own "
        "service behind a 'webhook' hook"
    ),
    "nemo": (
        "nemoguardrails 0.24.1 (the newest) pulls fastembed, which requires huggingface-hub<2 (the project has "
        "2.x) and downloads its embedding model from the Hugging Face hub at run time (docs/hooks/nemo.md); "
        "run NeMo Guardrails as its own service behind a 'webhook' hook"
    ),
}


def _unavailable(type_name: str) -> Callable[[dict[str, Any]], Hook]:
    def make(options: dict[str, Any]) -> NoReturn:
        raise ValueError(f"hook type {type_name!r} is not available: {UNAVAILABLE[type_name]}")

    return make


FACTORIES: dict[str, Callable[[dict[str, Any]], Hook]] = {
    "pii": make_pii,
    "lakera": make_lakera,
    "webhook": make_webhook,
    **{type_name: _unavailable(type_name) for type_name in UNAVAILABLE},
}

for _type_name, _factory in FACTORIES.items():
    register(_type_name, _factory)
