"""What the example hook services (guardrails_ai_service.py, nemo_service.py) share: the HTTP server that
FastAgentic's webhook hook (``type = "webhook"``, docs/hooks/webhook.md) calls, its signature check, and the
walk over a ``HookContext``'s payload that turns per-string checks into a verdict. Standard library only;
keep this file beside the service that imports it (``from webhook_service import ...``).

A service brings a *check*: a function from one string to ``(the possibly rewritten string, the reasons it is
refused)`` (no reasons: it is not). ``serve`` then answers ``POST /`` (any path) with

* 401 when ``X-FastAgentic-Signature`` (``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``) does not
  match the raw body or is older than 300 s, 400 when the body is not JSON,
* ``{"type": "reject", "reason": "<prefix>: <reasons>"}`` when a string was refused,
* ``{"type": "modify", "payload": ...}`` with the rewritten strings when one was rewritten,
* ``{"type": "proceed"}`` otherwise,

and ``GET /healthz`` with 200.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

SIGNATURE_HEADER = "X-FastAgentic-Signature"
TOLERANCE = 300.0

#: One string in, the (possibly rewritten) string and why it is refused (empty: it is not) out.
Check = Callable[[str], tuple[str, list[str]]]


def verified(secret: str, header: str, body: bytes, tolerance: float = TOLERANCE) -> bool:
    stamp, _, mac = header.partition(",v1=")
    timestamp = stamp.removeprefix("t=")
    if not timestamp.isdigit():
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, expected) and abs(time.time() - int(timestamp)) <= tolerance


def checked(value: Any, check: Check, refused: list[str]) -> Any:
    """``value`` with every string in it (in lists and dicts, at any depth) passed through ``check``; the
    reasons for refusing are added to ``refused``."""
    if isinstance(value, str):
        fixed, why = check(value)
        refused.extend(why)
        return fixed
    if isinstance(value, list):
        return [checked(item, check, refused) for item in value]
    if isinstance(value, dict):
        return {key: checked(item, check, refused) for key, item in value.items()}
    return value


def verdict(context: dict[str, Any], check: Check, prefix: str) -> dict[str, Any]:
    """The hook's answer for a ``HookContext``: its ``payload`` checked string by string."""
    refused: list[str] = []
    original = context.get("payload")
    result = checked(original, check, refused)
    if refused:
        return {"type": "reject", "reason": f"{prefix}: " + "; ".join(dict.fromkeys(refused))}
    if result != original:
        return {"type": "modify", "payload": result}
    return {"type": "proceed"}


def handler(
    secret: str, decide: Callable[[dict[str, Any]], dict[str, Any]], name: str
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.answer(200, {"status": "ok"} if self.path == "/healthz" else {"error": "not found"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not verified(secret, self.headers.get(SIGNATURE_HEADER, ""), body):
                self.answer(401, {"error": "bad signature"})
                return
            try:
                context = json.loads(body)
            except ValueError:
                self.answer(400, {"error": "the body is not JSON"})
                return
            self.answer(200, decide(context))

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{name}: {format % args}\n")

    return Handler


def serve(
    name: str, secret_env: str, default_port: int, prefix: str, make_check: Callable[[list[str]], Check]
) -> None:
    """Run the service named ``name`` from the command line ``port [host] [more...]``: the signing key is read
    from ``secret_env`` (at least 32 characters, else exit), then ``make_check(more)`` builds the check and
    verdicts are answered with ``prefix`` before their reasons, until interrupted."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else default_port
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    secret = os.environ.get(secret_env, "")
    if len(secret) < 32:
        sys.exit(f"{secret_env}: a signing key of at least 32 characters (the hook's secret)")
    check = make_check(sys.argv[3:])

    def decide(context: dict[str, Any]) -> dict[str, Any]:
        return verdict(context, check, prefix)

    server = http.server.ThreadingHTTPServer((host, port), handler(secret, decide, name))
    print(f"{name} listening on http://{host}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
