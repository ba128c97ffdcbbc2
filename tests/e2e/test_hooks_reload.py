"""Gateway hooks reloaded on SIGHUP, on real processes: a gateway started from a configuration file, the file
changed, the signal sent. The next call runs the new chains; a call under way when the signal came finishes
with the hooks it started with (their HTTP client is closed only after it); a run under way takes the new
chains at its next point; a file that does not load, or names a hook that cannot be made, changes nothing."""

from __future__ import annotations

import http.server
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway, wait_until
from tests.workers.pii_worker import EMAIL

pytestmark = pytest.mark.e2e

GUARDED = "tests.workers.guarded_worker:app"
PII = "tests.workers.pii_worker:app"
SECRET = "r" * 40


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(value)  # strings, numbers and booleans as TOML reads them


def _write(path: Path, hooks: list[dict[str, Any]], extra: str = "") -> None:
    path.write_text(f"hooks = {_toml(hooks)}\n{extra}")


class _SlowHookServer(http.server.BaseHTTPRequestHandler):
    """A hook server answering ``modify`` with the text ``checked by <path>``, after ``delay`` seconds."""

    delay = 0.0
    arrived: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.arrived.append(self.path)
        time.sleep(self.delay if self.path == "/old" else 0)
        answer = {"type": "modify", "payload": {"text": f"checked by {self.path[1:]}"}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, type[_SlowHookServer]]]:
    handler = type("Handler", (_SlowHookServer,), {"delay": 2.0, "arrived": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler
    finally:
        server.shutdown()


def _remote(name: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "points": ["on_request"],
        "url": url,
        "secret": SECRET,
        "timeout": 10,
        "endpoints": ["plain"],
    }


def _plain(gateway: Gateway, text: str = "hi") -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/agents/plain/invoke", json={"text": text}, timeout=30)


def _tokens(gateway: Gateway) -> str:
    with httpx.stream(
        "POST", f"{gateway.url}/v1/agents/chatty/stream", json={"text": "hi"}, timeout=30
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    return "".join(event["data"]["text"] for event in events if event["kind"] == "token")


def _reload(gateway: Gateway, expect: str, count: int) -> None:
    """SIGHUP, then wait for the ``count``-th log line holding ``expect``."""
    gateway.signal(signal.SIGHUP)
    wait_until(lambda: gateway.output().count(expect) >= count, what=f"{expect!r} in the gateway's log")


def test_hooks_reload_on_sighup(
    cluster: Cluster, tmp_path: Path, hook_server: tuple[str, type[_SlowHookServer]]
) -> None:
    url, server = hook_server
    config = tmp_path / "gateway.toml"
    _write(config, [_remote("old", f"{url}/old")])
    gateway = cluster.start_gateway(config=str(config))
    cluster.start_worker(GUARDED)
    cluster.start_worker(PII)
    assert EMAIL in _tokens(gateway)  # no hook on events yet

    # A call under way when the hooks change finishes with the hook it started with.
    started: list[httpx.Response] = []
    call = threading.Thread(target=lambda: started.append(_plain(gateway)))
    call.start()
    wait_until(lambda: server.arrived == ["/old"], what="the old hook to be asked")
    pii = {"name": "pii", "type": "pii", "points": ["on_event"]}
    _write(config, [_remote("new", f"{url}/new"), pii])
    _reload(gateway, "reloaded: 2 hook(s)", 1)
    call.join(timeout=30)
    (answer,) = started
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"]["text"] == "checked by old"

    # The next call sees the new hooks, and so does the next run's events.
    assert _plain(gateway).json()["output"]["text"] == "checked by new"
    assert _tokens(gateway) == "write to [EMAIL] and charge [CREDIT_CARD]"
    # The old stage is closed once nothing runs on it any more.
    wait_until(
        lambda: "hooks replaced by a reload are closed" in gateway.output(),
        timeout=30,
        what="the old hooks to be closed",
    )

    # A hook that cannot be made refuses the whole reload: neither it nor the limit beside it applies.
    broken = [
        _remote("new", f"{url}/new"),
        {"name": "gone", "points": ["on_request"], "module": "tests.no_such_module:hook"},
    ]
    _write(config, broken, '[[limits]]\nname = "tight"\nrate = "1/minute"\n')
    _reload(gateway, "reload refused", 1)
    assert "hook 'gone': cannot import tests.no_such_module" in gateway.output()
    assert [_plain(gateway).json()["output"]["text"] for _ in range(2)] == ["checked by new"] * 2
    assert _tokens(gateway) == "write to [EMAIL] and charge [CREDIT_CARD]"

    # So does a file that does not load.
    _write(config, [{"name": "odd", "points": ["on_nothing"], "type": "pii"}])
    _reload(gateway, "reload refused", 2)
    assert "unknown point(s) on_nothing" in gateway.output()
    assert _plain(gateway).json()["output"]["text"] == "checked by new"
    assert _tokens(gateway) == "write to [EMAIL] and charge [CREDIT_CARD]"

    # Hooks removed: the next call runs without them.
    _write(config, [])
    _reload(gateway, "reloaded: 0 hook(s)", 1)
    assert _plain(gateway).json()["output"]["text"] == "hi"
    assert EMAIL in _tokens(gateway)


def test_a_run_under_way_takes_the_new_hooks_at_its_next_point(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("")
    gateway = cluster.start_gateway(config=str(config))
    cluster.start_worker(PII)
    with gateway.client() as client:
        run_id = client.post("/v1/agents/confirm/runs", json={"text": "hi"}).json()["run_id"]
        wait_until(
            lambda: client.get(f"/v1/runs/{run_id}").json()["status"] == "waiting_input",
            what="the run to wait for input",
        )
        records = tmp_path / "records.jsonl"
        recorder = {
            "name": "recorder",
            "points": ["on_resume", "on_response", "on_tool_call"],
            "module": "tests.hook_policies:recorder",
            "options": {"path": str(records)},
        }
        assert client.post("/v1/agents/split/invoke", json={"text": "hi"}).json()["status"] == "succeeded"
        _write(config, [recorder], 'approval_required = ["spl*"]\n')
        _reload(gateway, "reloaded: 1 hook(s)", 1)
        # Workers learn the tool points when they connect: the gateway says the connected ones do not yet.
        assert "keep the tool checks they were told when they connect" in gateway.output()
        assert "reloaded: approval required for spl*" in gateway.output()
        # The approval gate follows the new patterns from the next call on.
        gated = client.post("/v1/agents/split/runs", json={"text": "hi"}).json()
        assert gated["status"] == "waiting_input", gated
        assert client.post(f"/v1/runs/{run_id}/resume", json={"answer": {"ok": True}}).status_code == 200
        wait_until(lambda: client.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded", what="the run")
    seen = [json.loads(line) for line in records.read_text().splitlines()]
    assert [(r["point"], r["run_id"]) for r in seen] == [("on_resume", run_id), ("on_response", run_id)]
    assert seen[0]["payload"] == {"ok": True}
