"""Identity and access end to end: a real gateway with auth = "required", a local OpenID Connect IdP
signing real tokens, API keys and worker tokens made with the CLI, and every front asked the same
question. One matrix of hostile and valid credentials; each front must give the same decision."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Cluster, Gateway, Worker, base_env, wait_until
from tests.e2e.mcp_support import (
    HEADERS,
    LEGACY_INITIALIZE,
    TASKS,
    modern_headers,
    modern_request,
    session_headers,
)
from tests.idp import LocalIdP

SECURED = "tests.workers.secured:app"
ROLES = {"analyst": ["reports:read"]}


class World:
    """Everything the tests share: the IdP, the gateway, and named credentials."""

    def __init__(self, idp: LocalIdP, gateway: Gateway, cluster: Cluster, tokens: dict[str, str]) -> None:
        self.idp = idp
        self.gateway = gateway
        self.cluster = cluster
        self.tokens = tokens

    @property
    def url(self) -> str:
        return self.gateway.url


def cli(data_dir: Path, *args: str) -> str:
    """``fastagentic-gateway`` with the gateway's data directory; its standard output."""
    env = base_env()
    env["FASTAGENTIC_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "fastagentic_gateway", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with LocalIdP() as idp:
        cluster = Cluster(Path(tmp_path_factory.mktemp("identity")))
        data = cluster.tmp_path / "data"
        key = lambda name, *extra: cli(data, "keys", "create", "--name", name, *extra)  # noqa: E731
        tokens = {
            "key_acme": key("alice", "--tenant", "acme", "--scope", "reports:read", "--scope", "tools:admin"),
            "key_acme_plain": key("carol", "--tenant", "acme"),
            "key_other": key("bob", "--tenant", "other", "--scope", "reports:read"),
            "key_analyst": key("dan", "--tenant", "acme", "--role", "analyst"),
            "key_admin": key("root", "--tenant", "acme", "--scope", "fastagentic:admin"),
            "key_revoked": key("eve", "--tenant", "acme"),
            "key_expiring": key("fay", "--tenant", "acme", "--expires-in", "1"),
            "worker": cli(
                data, "workers", "create-token", "--name", "secured", *_each("--endpoint", _SECURED_NAMES)
            ),
            "worker_ask_only": cli(
                data, "workers", "create-token", "--name", "ask-only", "--endpoint", "ask"
            ),
            "worker_revoked": cli(data, "workers", "create-token", "--name", "old", "--endpoint", "*"),
            "worker_other": cli(data, "workers", "create-token", "--name", "other", "--endpoint", "*"),
        }
        revoked = json.loads(cli(data, "keys", "list", "--json"))
        eve = next(k["id"] for k in revoked if k["name"] == "eve")
        cli(data, "keys", "revoke", eve)
        old = next(
            t["id"] for t in json.loads(cli(data, "workers", "list-tokens", "--json")) if t["name"] == "old"
        )
        cli(data, "workers", "revoke-token", old)
        issuers = [{"issuer": idp.issuer, "audiences": [idp.audience], "tenant_claim": "tenant"}]
        try:
            gateway = cluster.start_gateway(
                auth="required",
                oidc_issuers=json.dumps(issuers),
                auth_roles=json.dumps(ROLES),
                credential_cache_ttl="0",
                jwks_refresh_interval="0.5",
                a2a_push_allow_private="true",
            )
            _start_worker(cluster, gateway, tokens["worker"], tokens["key_acme"])
            yield World(idp, gateway, cluster, tokens)
        finally:
            cluster.close()


_SECURED_NAMES = ["ask", "report", "purge", "echo", "summary", "plans"]


def _each(flag: str, values: list[str]) -> list[str]:
    return [item for value in values for item in (flag, value)]


def _start_worker(cluster: Cluster, gateway: Gateway, token: str, reader: str) -> Worker:
    worker = Worker(gateway, SECURED, cluster.logs, "secured")
    worker.env["FASTAGENTIC_WORKER_TOKEN"] = token
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: "report" in _endpoint_names(gateway, reader), what="the secured worker's endpoints")
    return worker


def _endpoint_names(gateway: Gateway, token: str) -> set[str]:
    try:
        response = httpx.get(f"{gateway.url}/v1/endpoints", headers=_auth(token), timeout=2)
    except httpx.HTTPError:
        return set()
    return {e["name"] for e in response.json().get("endpoints", [])} if response.status_code == 200 else set()


# ------------------------------------------------------------------------------ asking each front


def _auth(credential: str | None) -> dict[str, str]:
    return {} if credential is None else {"Authorization": f"Bearer {credential}"}


def _decision(status: int, ok: bool) -> Any:
    if status in (401, 403, 503):
        return status
    assert status == 200, status
    return "ok" if ok else "error"


def ask_rest(url: str, headers: dict[str, str], agent: str) -> Any:
    response = httpx.post(f"{url}/v1/agents/{agent}/invoke", json={"text": "hi"}, headers=headers, timeout=30)
    if response.status_code in (401, 403):
        assert response.json()["type"] in ("unauthenticated", "insufficient_scope")
        assert "WWW-Authenticate" in response.headers
    return _decision(response.status_code, response.json().get("status") == "succeeded")


def ask_mcp_modern(url: str, headers: dict[str, str], agent: str) -> Any:
    body = modern_request("tools/call", {"name": agent, "arguments": {"text": "hi"}})
    response = httpx.post(
        f"{url}/mcp", json=body, headers={**modern_headers("tools/call", agent), **headers}, timeout=30
    )
    if response.status_code in (401, 403):
        challenge = response.headers["WWW-Authenticate"]
        assert "resource_metadata=" in challenge
        if response.status_code == 403:
            assert 'error="insufficient_scope"' in challenge
        assert response.json()["error"]["code"] == -32600
        return response.status_code
    result = response.json().get("result", {})
    return _decision(response.status_code, bool(result) and not result.get("isError"))


def ask_mcp_legacy(url: str, headers: dict[str, str], agent: str) -> Any:
    with httpx.Client(base_url=url, timeout=30) as http:
        opened = http.post("/mcp", json=LEGACY_INITIALIZE, headers={**HEADERS, **headers})
        if opened.status_code in (401, 403):
            return opened.status_code
        session = session_headers(opened.headers["mcp-session-id"])
        http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers={**session, **headers},
        )
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": agent, "arguments": {"text": "hi"}},
        }
        response = http.post("/mcp", json=body, headers={**session, **headers})
        if response.status_code in (401, 403):
            return response.status_code
        messages = [
            json.loads(line[5:])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
        result = next((m.get("result") for m in messages if m.get("id") == 1), None) or {}
        return _decision(response.status_code, bool(result) and not result.get("isError"))


def _send(agent: str) -> dict[str, Any]:
    part = {"data": {"text": "hi"}, "mediaType": "application/json"}
    return {"message": {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [part]}}


def ask_a2a_rpc(url: str, headers: dict[str, str], agent: str) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": _send(agent)}
    response = httpx.post(
        f"{url}/a2a/{agent}", json=body, headers={"A2A-Version": "1.0", **headers}, timeout=30
    )
    if response.status_code in (401, 403):
        assert response.json()["error"]["code"] == -32600
        return response.status_code
    task = response.json().get("result", {}).get("task", {})
    return _decision(response.status_code, task.get("status", {}).get("state") == "TASK_STATE_COMPLETED")


def ask_a2a_rest(url: str, headers: dict[str, str], agent: str) -> Any:
    response = httpx.post(
        f"{url}/a2a/{agent}/message:send",
        json=_send(agent),
        headers={"A2A-Version": "1.0", **headers},
        timeout=30,
    )
    if response.status_code in (401, 403):
        assert response.json()["error"]["status"] in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        return response.status_code
    task = response.json().get("task", {})
    return _decision(response.status_code, task.get("status", {}).get("state") == "TASK_STATE_COMPLETED")


FRONTS: dict[str, Callable[[str, dict[str, str], str], Any]] = {
    "rest": ask_rest,
    "mcp-2026-07-28": ask_mcp_modern,
    "mcp-2025-11-25": ask_mcp_legacy,
    "a2a-jsonrpc": ask_a2a_rpc,
    "a2a-http-json": ask_a2a_rest,
}


# ------------------------------------------------------------------------------ the matrix

#: name -> (headers for the world, the agent asked, the decision every front must give)
CASES: dict[str, tuple[Callable[[World], dict[str, str]], str, Any]] = {
    "no credential": (lambda w: {}, "ask", 401),
    "basic scheme": (lambda w: {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "ask", 401),
    "bearer without token": (lambda w: {"Authorization": "Bearer"}, "ask", 401),
    "two credentials": (
        lambda w: {**_auth(w.tokens["key_acme"]), "X-API-Key": w.tokens["key_acme"]},
        "ask",
        401,
    ),
    "alg none": (lambda w: _auth(w.idp.token(alg="none", tenant="acme")), "ask", 401),
    "HS256 signed with the public key": (
        lambda w: _auth(w.idp.token(alg="HS256", secret=w.idp.public_pem(), tenant="acme")),
        "ask",
        401,
    ),
    "expired": (lambda w: _auth(w.idp.token(exp_in=-600, tenant="acme")), "ask", 401),
    "not yet valid": (lambda w: _auth(w.idp.token(nbf_in=600, tenant="acme")), "ask", 401),
    "wrong issuer": (lambda w: _auth(w.idp.token(iss="http://127.0.0.1:1/other", tenant="acme")), "ask", 401),
    "wrong audience": (lambda w: _auth(w.idp.token(aud="someone-else", tenant="acme")), "ask", 401),
    "unknown kid": (lambda w: _auth(w.idp.token(kid="never-published", tenant="acme")), "ask", 401),
    "tampered payload": (lambda w: _auth(_tampered(w.idp.token(tenant="acme", scope="x"))), "ask", 401),
    "no tenant claim": (lambda w: _auth(w.idp.token()), "ask", 401),
    "garbage bearer": (lambda w: _auth("not.a.token"), "ask", 401),
    "unknown API key": (lambda w: _auth("fa_key_0123456789abcdef_" + "x" * 43), "ask", 401),
    "API key with a wrong secret": (lambda w: _auth(w.tokens["key_acme"][:-4] + "AAAA"), "ask", 401),
    "revoked API key": (lambda w: _auth(w.tokens["key_revoked"]), "ask", 401),
    "expired API key": (lambda w: _auth(w.tokens["key_expiring"]), "ask", 401),
    "worker token as an API key": (lambda w: _auth(w.tokens["worker"]), "ask", 401),
    "valid RS256": (lambda w: _auth(w.idp.token(alg="RS256", tenant="acme")), "ask", "ok"),
    "valid ES256": (lambda w: _auth(w.idp.token(alg="ES256", tenant="acme")), "ask", "ok"),
    "valid API key": (lambda w: _auth(w.tokens["key_acme_plain"]), "ask", "ok"),
    "API key as X-API-Key": (lambda w: {"X-API-Key": w.tokens["key_acme_plain"]}, "ask", "ok"),
    "token without the scope": (lambda w: _auth(w.idp.token(tenant="acme")), "report", 403),
    "API key without the scope": (lambda w: _auth(w.tokens["key_acme_plain"]), "report", 403),
    "token with the scope": (
        lambda w: _auth(w.idp.token(tenant="acme", scope="reports:read")),
        "report",
        "ok",
    ),
    "token with a role granting it": (
        lambda w: _auth(w.idp.token(tenant="acme", roles=["analyst"])),
        "report",
        "ok",
    ),
    "API key with a role granting it": (lambda w: _auth(w.tokens["key_analyst"]), "report", "ok"),
    "API key with the scope": (lambda w: _auth(w.tokens["key_acme"]), "report", "ok"),
}


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims["scope"] = "reports:read tools:admin fastagentic:admin"
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("case", list(CASES))
def test_every_front_gives_the_same_decision(world: World, case: str) -> None:
    if case == "expired API key":
        time.sleep(max(0.0, 1.2 - (time.time() - _started(world))))
    headers_of, agent, expected = CASES[case]
    headers = headers_of(world)
    decisions = {front: ask(world.url, headers, agent) for front, ask in FRONTS.items()}
    assert decisions == dict.fromkeys(FRONTS, expected), case


_STARTED: dict[str, float] = {}


def _started(world: World) -> float:
    return _STARTED.setdefault(world.url, time.time())


def test_a_key_rotated_in_at_the_idp_is_found(world: World) -> None:
    kid = world.idp.rotate("RS256")
    token = world.idp.token(kid=kid, tenant="acme")
    time.sleep(0.6)  # past jwks_refresh_interval since any earlier refetch
    assert ask_rest(world.url, _auth(token), "ask") == "ok"
    assert ask_a2a_rpc(world.url, _auth(token), "ask") == "ok"


def test_health_cards_and_metadata_stay_public(world: World) -> None:
    assert httpx.get(f"{world.url}/healthz").status_code == 200
    # a malformed header (a proxy adding Basic credentials) does not close the public routes
    assert httpx.get(f"{world.url}/healthz", headers={"Authorization": "Basic eDp5"}).status_code == 200
    card = httpx.get(
        f"{world.url}/a2a/ask/.well-known/agent-card.json", headers={"Authorization": "Basic eDp5"}
    )
    assert card.status_code == 200
    # what a card shows depends on who asks: no shared cache may keep one for others
    assert card.headers["Cache-Control"].startswith("private") and "Authorization" in card.headers["Vary"]
    assert httpx.get(f"{world.url}/a2a/ask/.well-known/agent-card.json").status_code == 200
    metadata = httpx.get(f"{world.url}/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == f"{world.url}/mcp"
    assert metadata["authorization_servers"] == [world.idp.issuer]


# ------------------------------------------------------------------------------ what each caller sees


def test_catalogues_show_only_what_the_caller_may_use(world: World) -> None:
    plain, scoped = _auth(world.tokens["key_acme_plain"]), _auth(world.tokens["key_acme"])

    def seen(headers):
        return {
            e["name"] for e in httpx.get(f"{world.url}/v1/endpoints", headers=headers).json()["endpoints"]
        }

    assert seen(plain) == {"ask", "echo"}
    assert seen(scoped) == set(_SECURED_NAMES)
    paths = lambda headers: set(httpx.get(f"{world.url}/openapi.json", headers=headers).json()["paths"])  # noqa: E731
    assert "/v1/agents/report/invoke" not in paths(plain)
    assert "/v1/agents/report/invoke" in paths(scoped)

    def tools(headers: dict[str, str], method: str = "tools/list", key: str = "tools") -> set[str]:
        body = modern_request(method)
        answer = httpx.post(
            f"{world.url}/mcp", json=body, headers={**modern_headers(method), **headers}
        ).json()
        return {item.get("uri") or item["name"] for item in answer["result"][key]}

    assert tools(plain) == {"ask", "echo"}
    assert tools(scoped) == {"ask", "report", "purge", "echo"}
    assert tools(plain, "prompts/list", "prompts") == set()
    assert tools(scoped, "prompts/list", "prompts") == {"summary"}
    assert tools(plain, "resources/list", "resources") == set()
    assert tools(scoped, "resources/list", "resources") == {"secret://plans"}

    def skills(headers):
        return {
            s["id"]
            for s in httpx.get(f"{world.url}/a2a/.well-known/agent-card.json", headers=headers).json()[
                "skills"
            ]
        }

    assert skills(plain) == {"ask"}
    assert skills(scoped) == {"ask", "report"}
    assert httpx.get(f"{world.url}/a2a/report/.well-known/agent-card.json", headers=plain).status_code == 404
    assert httpx.get(f"{world.url}/a2a/report/.well-known/agent-card.json", headers=scoped).status_code == 200


def test_cards_declare_how_to_authenticate(world: World) -> None:
    card = httpx.get(f"{world.url}/a2a/ask/.well-known/agent-card.json").json()
    schemes = card["securitySchemes"]
    assert schemes["apiKey"]["apiKeySecurityScheme"]["name"] == "X-API-Key"
    assert schemes["oidc"]["openIdConnectSecurityScheme"]["openIdConnectUrl"].startswith(world.idp.issuer)
    assert {name for req in card["securityRequirements"] for name in req["schemes"]} == set(schemes)
    assert card["capabilities"]["extendedAgentCard"] is True


def test_the_extended_card_is_for_authenticated_callers(world: World) -> None:
    url = f"{world.url}/a2a/extendedAgentCard"
    assert httpx.get(url, headers={"A2A-Version": "1.0"}).status_code == 401
    card = httpx.get(url, headers={"A2A-Version": "1.0", **_auth(world.tokens["key_acme"])}).json()
    assert {s["id"] for s in card["skills"]} == {"ask", "report"}


def test_tools_prompts_and_resources_need_their_scopes_on_rest(world: World) -> None:
    plain, scoped = _auth(world.tokens["key_acme_plain"]), _auth(world.tokens["key_acme"])
    assert httpx.post(f"{world.url}/v1/tools/purge", json={"days": 3}, headers=plain).status_code == 403
    assert httpx.post(f"{world.url}/v1/tools/purge", json={"days": 3}, headers=scoped).json() == {
        "output": "purged 3 days"
    }
    assert (
        httpx.post(f"{world.url}/v1/prompts/summary", json={"topic": "x"}, headers=plain).status_code == 403
    )
    assert httpx.get(f"{world.url}/v1/resources/secret://plans", headers=plain).status_code == 403
    assert httpx.get(f"{world.url}/v1/resources/secret://plans", headers=scoped).text == "the plans"
    denied = httpx.post(f"{world.url}/v1/tools/purge", json={"days": 3}, headers=plain)
    assert denied.json()["required_scopes"] == ["tools:admin"]
    assert 'scope="tools:admin"' in denied.headers["WWW-Authenticate"]


# ------------------------------------------------------------------------------ tenants


def _run(world: World, headers: dict[str, str], steps: int = 0) -> str:
    response = httpx.post(
        f"{world.url}/v1/agents/ask/runs", json={"text": "mine", "steps": steps}, headers=headers
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def test_another_tenants_run_is_not_found_on_every_front(world: World) -> None:
    acme, other = _auth(world.tokens["key_acme_plain"]), _auth(world.tokens["key_other"])
    run_id = _run(world, acme, steps=20)
    url = world.url
    assert httpx.get(f"{url}/v1/runs/{run_id}", headers=acme).status_code == 200
    assert httpx.get(f"{url}/v1/runs/{run_id}", headers=other).status_code == 404
    assert httpx.get(f"{url}/v1/runs/{run_id}/events", headers=other).status_code == 404
    assert httpx.get(f"{url}/v1/runs/{run_id}/checkpoints", headers=other).status_code == 404
    assert httpx.post(f"{url}/v1/runs/{run_id}/replay", json={}, headers=other).status_code == 404
    assert httpx.post(f"{url}/v1/runs/{run_id}/cancel", headers=other).status_code == 404
    assert run_id not in {r["run_id"] for r in httpx.get(f"{url}/v1/runs", headers=other).json()["runs"]}
    assert run_id in {r["run_id"] for r in httpx.get(f"{url}/v1/runs", headers=acme).json()["runs"]}
    get_task = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": run_id}}
    a2a = httpx.post(f"{url}/a2a/ask", json=get_task, headers={"A2A-Version": "1.0", **other}).json()
    assert a2a["error"]["code"] == -32001
    assert (
        httpx.get(f"{url}/a2a/ask/tasks/{run_id}", headers={"A2A-Version": "1.0", **other}).status_code == 404
    )
    listed = httpx.get(f"{url}/a2a/ask/tasks", headers={"A2A-Version": "1.0", **other}).json()
    assert run_id not in {t["id"] for t in listed.get("tasks", [])}
    get_task_body = modern_request("tasks/get", {"taskId": run_id})
    get_task_body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {
        "extensions": {TASKS: {}}
    }
    mcp = httpx.post(
        f"{url}/mcp", json=get_task_body, headers={**modern_headers("tasks/get", run_id), **other}
    ).json()
    assert mcp["error"]["message"] == "Failed to retrieve task: Task not found"
    # and the owner still can, to the end
    assert httpx.post(f"{url}/v1/runs/{run_id}/cancel", headers=acme).json()["status"] == "cancelled"


def test_push_configs_belong_to_their_tasks_tenant(world: World) -> None:
    acme, other = _auth(world.tokens["key_acme_plain"]), _auth(world.tokens["key_other"])
    run_id = _run(world, acme, steps=10)
    config = {"url": "http://127.0.0.1:9/hook", "id": "c1"}
    path = f"{world.url}/a2a/ask/tasks/{run_id}/pushNotificationConfigs"
    created = httpx.post(path, json=config, headers={"A2A-Version": "1.0", **acme})
    assert created.status_code == 200, created.text
    assert httpx.get(path, headers={"A2A-Version": "1.0", **other}).status_code == 404
    assert (
        httpx.post(path, json={**config, "id": "c2"}, headers={"A2A-Version": "1.0", **other}).status_code
        == 404
    )
    mine = httpx.get(path, headers={"A2A-Version": "1.0", **acme}).json()
    assert [c["id"] for c in mine["configs"]] == ["c1"]
    httpx.post(f"{world.url}/v1/runs/{run_id}/cancel", headers=acme)


# ------------------------------------------------------------------------------ admin and audit


def test_the_audit_log_is_for_admins_and_holds_no_secret(world: World) -> None:
    httpx.post(
        f"{world.url}/v1/agents/ask/invoke", json={"text": "x"}, headers=_auth("fa_key_0123456789abcdef_nope")
    )
    assert (
        httpx.get(f"{world.url}/v1/audit", headers=_auth(world.tokens["key_acme_plain"])).status_code == 403
    )
    admin = _auth(world.tokens["key_admin"])

    def records(**query: Any) -> list[dict[str, Any]]:
        return list(httpx.get(f"{world.url}/v1/audit", params=query, headers=admin).json()["records"])

    httpx.post(f"{world.url}/v1/tools/purge", json={"days": 1}, headers=_auth(world.tokens["key_acme_plain"]))

    def purge_denied() -> list[dict[str, Any]]:
        found = records(action="access.denied")
        return [r for r in found if r["target"] == "/v1/tools/purge" and "tools:admin" in r["detail"]]

    wait_until(purge_denied, what="the access.denied record of the purge")
    failures = wait_until(lambda: records(action="auth.failed"), what="auth.failed records")
    assert all(r["outcome"] == "denied" and r["protocol"] for r in failures)
    created = wait_until(lambda: records(action="key.create"), what="key.create records")
    assert {r["principal"] for r in created} <= {
        r["principal"] for r in created if r["principal"].startswith("os:")
    }
    everything = json.dumps(records(limit=1000))
    for secret in world.tokens.values():
        assert secret not in everything
        assert secret[len("fa_key_0123456789abcdef_") :] not in everything  # the secret part
    assert "nope" not in everything
    page = records(limit=2)
    older = records(limit=2, cursor=page[-1]["id"])
    assert older and older[0]["id"] < page[-1]["id"]
    for bad in (
        {"limit": 0},
        {"cursor": 2**63},
        {"cursor": "x"},
        {"since": "nan"},
        {"until": "inf"},
        {"tenant": "a\x00b"},
        {"action": "x" * 300},
    ):
        response = httpx.get(f"{world.url}/v1/audit", params=bad, headers=admin)
        assert response.status_code == 400, (bad, response.text)


def test_runs_are_audited_with_who_and_how(world: World) -> None:
    acme = _auth(world.tokens["key_acme_plain"])
    run_id = _run(world, acme, steps=5)
    httpx.post(f"{world.url}/v1/runs/{run_id}/cancel", headers=acme)
    admin = _auth(world.tokens["key_admin"])

    def of_run() -> list[dict[str, Any]]:
        found = httpx.get(f"{world.url}/v1/audit", params={"action": "run."}, headers=admin).json()["records"]
        return [r for r in found if r["target"] == run_id]

    found = wait_until(lambda: len(of_run()) >= 2 and of_run(), what="the run's audit records")
    assert {r["action"] for r in found} == {"run.create", "run.cancel"}
    assert {r["tenant"] for r in found} == {"acme"}
    assert {r["protocol"] for r in found} == {"rest"}


# ------------------------------------------------------------------------------ workers


def _rogue(world: World, token: str | None, name: str) -> str:
    worker = Worker(world.gateway, SECURED, world.cluster.logs, name)
    if token is not None:
        worker.env["FASTAGENTIC_WORKER_TOKEN"] = token
    else:
        worker.env.pop("FASTAGENTIC_WORKER_TOKEN", None)
    worker.start()
    world.cluster.processes.append(worker)
    code = worker.wait(30)
    assert code != 0
    return worker.output()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "a worker token is required"),
        ("worker_ask_only", "may not serve"),
        ("worker_revoked", "credential revoked"),
        ("worker_other", "served by workers of another worker token"),
        ("key_acme", "not a worker token"),
    ],
)
def test_a_rogue_worker_cannot_take_over_an_endpoint(world: World, token: str | None, reason: str) -> None:
    output = _rogue(world, world.tokens[token] if token else None, f"rogue-{token}")
    assert reason in output
    # the endpoint is still served by its own workers, and answers
    assert ask_rest(world.url, _auth(world.tokens["key_acme"]), "report") == "ok"


def test_an_mcp_session_belongs_to_whoever_opened_it(world: World) -> None:
    alice, bob = _auth(world.tokens["key_acme_plain"]), _auth(world.tokens["key_other"])
    with httpx.Client(base_url=world.url, timeout=30) as http:
        opened = http.post("/mcp", json=LEGACY_INITIALIZE, headers={**HEADERS, **alice})
        session = session_headers(opened.headers["mcp-session-id"])
        ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
        stolen = http.post("/mcp", json=ping, headers={**session, **bob})
        assert stolen.status_code == 404
        assert stolen.json()["error"]["message"] == "Session not found"
        assert http.post("/mcp", json=ping, headers={**session, **alice}).status_code == 200


def test_runs_of_an_endpoint_the_caller_may_not_use_are_not_found(world: World) -> None:
    scoped, plain = _auth(world.tokens["key_acme"]), _auth(world.tokens["key_acme_plain"])  # both tenant acme
    ran = httpx.post(f"{world.url}/v1/agents/report/invoke", json={"text": "q3"}, headers=scoped).json()
    run_id = ran["run_id"]
    assert httpx.get(f"{world.url}/v1/runs/{run_id}", headers=scoped).status_code == 200
    assert httpx.get(f"{world.url}/v1/runs/{run_id}", headers=plain).status_code == 404
    assert run_id not in {
        r["run_id"] for r in httpx.get(f"{world.url}/v1/runs", headers=plain).json()["runs"]
    }
    assert run_id in {r["run_id"] for r in httpx.get(f"{world.url}/v1/runs", headers=scoped).json()["runs"]}
    listed = httpx.post(
        f"{world.url}/a2a",
        json={"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}},
        headers={"A2A-Version": "1.0", **plain},
    ).json()
    assert run_id not in {t["id"] for t in listed["result"]["tasks"]}


def test_a_path_that_only_ends_like_a_card_is_not_public(world: World) -> None:
    """The cards are public; a resource read whose URI ends like a card's path is not."""
    for path in (
        "/v1/resources/secret://plans/.well-known/agent-card.json",
        "/v1/endpoints/.well-known/agent-card.json",
        "/mcp/.well-known/agent-card.json",
    ):
        assert httpx.get(world.url + path).status_code == 401, path
    assert httpx.get(f"{world.url}/a2a/ask/.well-known/agent-card.json").status_code == 200
    assert httpx.get(f"{world.url}/a2a/.well-known/agent-card.json").status_code == 200


def test_completions_of_a_prompt_the_caller_may_not_use_are_empty(world: World) -> None:
    def complete(headers: dict[str, str]) -> list[str]:
        params = {
            "ref": {"type": "ref/prompt", "name": "summary"},
            "argument": {"name": "topic", "value": ""},
        }
        body = modern_request("completion/complete", params)
        answer = httpx.post(
            f"{world.url}/mcp", json=body, headers={**modern_headers("completion/complete"), **headers}
        )
        return list(answer.json()["result"]["completion"]["values"])

    assert sorted(complete(_auth(world.tokens["key_acme"]))) == ["costs", "sales"]
    assert complete(_auth(world.tokens["key_acme_plain"])) == []


def _hello(worker_id: str, token: str, names: list[str]) -> Any:
    from fastagentic.v1 import worker_pb2 as pb

    endpoints = [
        pb.EndpointSpec(
            name=name, kind=pb.ENDPOINT_KIND_TOOL, input_schema=b'{"type":"object"}', output_schema=b"{}"
        )
        for name in names
    ]
    hello = pb.Hello(
        worker_id=worker_id, protocol_version=1, app_name="raw", endpoints=endpoints, slots=1, token=token
    )
    return pb.WorkerMessage(hello=hello)


async def _first_answer(address: str, message: Any, hold: float = 0.5) -> Any:
    import asyncio

    import grpc

    from fastagentic.v1 import worker_pb2 as pb
    from fastagentic.v1 import worker_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.WorkerGatewayStub(channel)

        async def outgoing():  # type: ignore[no-untyped-def]
            yield pb.WorkerFrame(messages=[message])
            await asyncio.sleep(hold)

        call = stub.Connect(outgoing())
        frame = await call.read()
        call.cancel()
        return frame.messages[0]


async def test_a_worker_id_stays_its_credentials_while_its_leases_may_run(world: World) -> None:
    """Taking over a worker's id (and so its held runs' leases) needs its credential, even just after
    it disconnected."""
    address = world.gateway.grpc_address
    first = await _first_answer(address, _hello("borrowed-id", world.tokens["worker_other"], ["spare_a"]))
    assert first.HasField("welcome")
    # the first stream is gone; within lease_ttl its id is still the first credential's
    again = await _first_answer(address, _hello("borrowed-id", world.tokens["worker_ask_only"], []))
    assert again.HasField("reject") and "connected under another worker token" in again.reject.message
    same = await _first_answer(address, _hello("borrowed-id", world.tokens["worker_other"], ["spare_a"]))
    assert same.HasField("welcome")
