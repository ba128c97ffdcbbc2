"""Guardrails AI and NeMo Guardrails, the real libraries, behind the gateway's webhook hook, end to end: the
example services (examples/hooks/) run as processes of their own from environments of their own
(tests/hook_venvs.py, skipped when one cannot be built), a real gateway calls them with ``type = "webhook"``
at ``on_request`` (the ``plain`` endpoint) and ``on_tool_call`` (every tool), and a worker that knows of no
policy (tests/workers/guarded_worker.py) is called over REST. Nothing is mocked: the verdicts are the
libraries' (a Guardrails ``Guard`` with two local validators; NeMo input rails with two Python actions)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, Gateway, Process, free_port, wait_until
from tests.hook_venvs import HookVenv, hook_venv, report

WORKER = "tests.workers.guarded_worker:app"
SECRET = "hook-service-secret-" + "x" * 24
SECRET_ENV = {"guardrails_ai": "GUARDRAILS_WEBHOOK_SECRET", "nemo": "NEMO_WEBHOOK_SECRET"}
#: What each library says about the banned word: the validator's / the rail's own message.
REASONS = {
    "guardrails_ai": "guardrails-ai: fastagentic/banned-words: the text contains a banned word: forbidden",
    "nemo": "nemo guardrails: check banned words: the text contains a banned word: forbidden",
}


@dataclass
class Served:
    name: str
    service: Process
    url: str
    gateway: Gateway
    effects: Path

    @property
    def reason(self) -> str:
        return REASONS[self.name]

    def ran(self) -> list[str]:
        """What the worker's tools and endpoints really did (tests/workers/guarded_worker.py)."""
        return self.effects.read_text().splitlines() if self.effects.exists() else []


def start_service(venv: HookVenv, logs: Path) -> tuple[Process, str]:
    port = free_port()
    env = venv.env()
    env[SECRET_ENV[venv.service]] = SECRET
    service = Process(f"{venv.service}-service", [str(venv.python), str(venv.script), str(port)], env, logs)
    service.start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if not service.alive:
            raise AssertionError(f"the {venv.service} service exited:\n{service.output()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=90, what=f"the {venv.service} service")
    return service, url


@pytest.fixture(scope="module", params=["guardrails_ai", "nemo"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    name: str = request.param
    venv = hook_venv(name)
    report(request.config, venv)
    tmp = Path(tmp_path_factory.mktemp(f"hook-{name}"))
    cluster = Cluster(tmp)
    monkey = pytest.MonkeyPatch()
    try:
        service, url = start_service(venv, cluster.logs)
        cluster.processes.append(service)
        monkey.setenv("HOOK_SERVICE_SECRET", SECRET)  # the gateway reads the key from secret_env
        options = {"url": f"{url}/check", "secret_env": "HOOK_SERVICE_SECRET", "timeout": 10.0}
        hooks = [
            {
                "name": name,
                "type": "webhook",
                "points": ["on_request"],
                "endpoints": ["plain"],
                "timeout": 15.0,
                "fail": "closed",
                "options": options,
            },
            {
                "name": f"{name}-tools",
                "type": "webhook",
                "points": ["on_tool_call"],
                "timeout": 15.0,
                "fail": "closed",
                "options": options,
            },
        ]
        gateway = cluster.start_gateway(hooks=json.dumps(hooks))
        effects = tmp / "effects.txt"
        monkey.setenv("GUARD_SIDE_EFFECTS", str(effects))
        cluster.start_worker(WORKER)
        yield Served(name, service, url, gateway, effects)
    finally:
        monkey.undo()
        cluster.close()


@pytest.fixture
def hooked(served: Served) -> Served:
    served.effects.unlink(missing_ok=True)
    return served


def _invoke(served: Served, endpoint: str, text: str) -> httpx.Response:
    with served.gateway.client() as http:
        return http.post(f"/v1/agents/{endpoint}/invoke", json={"text": text})


# ---------------------------------------------------------------------------------------------- on_request


def test_a_request_the_library_refuses_is_rejected_with_its_reason(hooked: Served) -> None:
    response = _invoke(hooked, "plain", "a forbidden plan")
    assert response.status_code == 422, (response.text, hooked.service.output()[-2000:])
    body = response.json()
    assert body["type"] == "hook_rejected"
    assert body["hook"] == hooked.name and body["point"] == "on_request"
    assert body["reason"] == hooked.reason
    assert hooked.ran() == []  # it never reached the worker


def test_a_request_the_library_fixes_runs_with_the_fixed_text(hooked: Served) -> None:
    response = _invoke(hooked, "plain", "write to bob@example.com today")
    assert response.status_code == 200, response.text
    assert response.json()["output"]["text"] == "write to [email] today"
    assert hooked.ran() == ["plain write to [email] today"]


def test_a_clean_request_proceeds_unchanged(hooked: Served) -> None:
    response = _invoke(hooked, "plain", "hello there")
    assert response.status_code == 200, response.text
    assert response.json()["output"]["text"] == "hello there"
    assert hooked.ran() == ["plain hello there"]


# ---------------------------------------------------------------------------------------------- on_tool_call


def test_a_tool_call_the_library_refuses_never_runs(hooked: Served) -> None:
    answer = _invoke(hooked, "guarded", "forbidden records").json()
    assert answer["status"] == "failed", answer
    assert answer["error"]["type"] == "ToolRejected"
    assert answer["error"]["message"] == (
        f"tool 'lookup': call rejected by hook '{hooked.name}-tools': {hooked.reason}"
    )
    assert hooked.ran() == []  # the tool's function never ran


def test_a_tool_call_the_library_fixes_runs_with_the_fixed_arguments(hooked: Served) -> None:
    answer = _invoke(hooked, "guarded", "bob@example.com").json()
    assert answer["status"] == "succeeded", answer
    assert hooked.ran() == ["lookup [email]"]
    assert answer["output"]["text"] == "[email]: write to alice@example.com"  # on_tool_result is not hooked


def test_a_clean_tool_call_proceeds_unchanged(hooked: Served) -> None:
    answer = _invoke(hooked, "guarded", "weather").json()
    assert answer["status"] == "succeeded", answer
    assert hooked.ran() == ["lookup weather"]
    assert answer["output"]["text"] == "weather: write to alice@example.com"


# ---------------------------------------------------------------------------------------------- the service


def _signed(secret: str, body: bytes, at: float) -> dict[str, str]:
    stamp = str(int(at))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-FastAgentic-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


def test_the_service_refuses_what_the_gateway_did_not_sign(hooked: Served) -> None:
    context: dict[str, Any] = {"point": "on_request", "endpoint": "plain", "payload": {"text": "a forbidden"}}
    body = json.dumps(context).encode()
    now = time.time()
    with httpx.Client(base_url=hooked.url, timeout=30) as http:
        assert http.post("/check", content=body, headers=_signed("y" * 40, body, now)).status_code == 401
        assert http.post("/check", content=body, headers=_signed(SECRET, body, now - 3600)).status_code == 401
        assert http.post("/check", content=body).status_code == 401
        signed = http.post("/check", content=body, headers=_signed(SECRET, body, now))
    assert signed.status_code == 200
    assert signed.json() == {"type": "reject", "reason": hooked.reason}
