"""NeMo Guardrails behind FastAgentic's webhook hook (``type = "webhook"``, docs/hooks/nemo.md).

Run it in an environment of its own (``nemoguardrails`` cannot be installed beside the gateway)::

    python -m venv nemo-venv && nemo-venv/bin/pip install nemoguardrails==0.24.1
    NEMO_WEBHOOK_SECRET=<at least 32 characters> nemo-venv/bin/python nemo_service.py 8301 [host] [config-dir]

(``webhook_service.py``, the HTTP server and signature check it shares with guardrails_ai_service.py, must sit
beside it.) It serves ``POST /`` (any path): the gateway's signed ``HookContext``. The signature
(``X-FastAgentic-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``) is checked over the raw
body first (401 when it does not match or is older than 300 s). Then every string in the payload goes
through the configuration's input rails (``generate_async(..., options={"rails": ["input"]})``: only the
input rails run, no LLM is called) and the answer is

* ``{"type": "reject", "reason": ...}`` when a rail stopped the conversation (the reason names the rail and
  carries the bot's refusal message),
* ``{"type": "modify", "payload": ...}`` when a rail rewrote ``$user_message`` (the rewritten strings),
* ``{"type": "proceed"}`` otherwise.

Without a ``config-dir`` the configuration below is used: two Colang 1.0 input rails whose checks are
Python actions (a banned-word check that refuses, an email mask that rewrites). It declares no model and no
``define user`` examples, so nothing calls an LLM and no embedding model is downloaded: the service runs
without network. A ``config-dir`` of your own (``config.yml``, ``*.co``, ``actions.py``) replaces it; rails
that call an LLM then need that LLM. ``GET /healthz`` answers 200.

Environment: ``NEMO_WEBHOOK_SECRET`` (the hook's ``secret_env`` value, required), ``NEMO_BANNED_WORDS``
(comma-separated, default ``forbidden``).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading

from nemoguardrails import LLMRails, RailsConfig  # type: ignore[import-not-found]
from webhook_service import serve  # type: ignore[import-not-found]  # beside the script (sys.path[0])

SECRET_ENV = "NEMO_WEBHOOK_SECRET"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

YAML = """
models: []
rails:
  input:
    flows:
      - check banned words
      - mask emails
"""

COLANG = """
define bot refuse banned words
  "the text contains a banned word: $banned"

define subflow check banned words
  $banned = execute find_banned_words(text=$user_message)
  if $banned
    bot refuse banned words
    stop

define subflow mask emails
  $user_message = execute mask_emails(text=$user_message)
"""


async def find_banned_words(text: str) -> str:
    """The banned words the text contains, comma-separated ("" when none)."""
    words = [w.strip().lower() for w in os.environ.get("NEMO_BANNED_WORDS", "forbidden").split(",")]
    return ", ".join(word for word in words if word and word in text.lower())


async def mask_emails(text: str) -> str:
    return EMAIL.sub("[email]", text)


def build_rails(config_dir: str | None) -> LLMRails:
    if config_dir:
        return LLMRails(RailsConfig.from_path(config_dir))
    rails = LLMRails(RailsConfig.from_content(colang_content=COLANG, yaml_content=YAML))
    rails.register_action(find_banned_words, "find_banned_words")
    rails.register_action(mask_emails, "mask_emails")
    return rails


class Checker:
    """Runs the input rails on one string of a payload (``text``, the service's check), on one event loop of
    its own."""

    def __init__(self, rails: LLMRails) -> None:
        self.rails = rails
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="nemo-rails").start()

    async def _text(self, value: str) -> tuple[str, list[str]]:
        result = await self.rails.generate_async(
            messages=[{"role": "user", "content": value}],
            options={"rails": ["input"], "log": {"activated_rails": True}},
        )
        said = "".join(str(m.get("content") or "") for m in result.response if m.get("role") == "assistant")
        stopped = [rail.name for rail in (result.log.activated_rails if result.log else []) if rail.stop]
        if stopped:
            return value, [f"{', '.join(stopped)}: {said}"]
        return said, []  # with only the input rails, the answer is the (possibly rewritten) user message

    def text(self, value: str) -> tuple[str, list[str]]:
        """The (possibly rewritten) text, and why it is refused (empty: it is not)."""
        return asyncio.run_coroutine_threadsafe(self._text(value), self.loop).result(timeout=60)


def main() -> None:
    serve(
        "nemo service",
        SECRET_ENV,
        8301,
        "nemo guardrails",
        lambda more: Checker(build_rails(more[0] if more else None)).text,
    )


if __name__ == "__main__":
    main()
