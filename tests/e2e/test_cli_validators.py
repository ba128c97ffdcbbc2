"""`fastagentic mcp validate`, `a2a validate` and `test contract`: against this gateway (every check passes) and
against a deliberately broken server the test starts (the right rows fail, the exit code is 1)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster, Worker, wait_until
from tests.e2e.cli_support import fastagentic
from tests.e2e.test_identity import cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("validators")))
    try:
        gateway = cluster.start_gateway()
        cluster.start_worker("tests.workers.basic:app")
        yield gateway.url
    finally:
        cluster.close()


def rows(stdout: str) -> dict[str, dict[str, str]]:
    return {row["check"]: row for row in json.loads(stdout)["checks"]}


class Broken(http.server.BaseHTTPRequestHandler):
    """An MCP server (2025-11-25, plain JSON answers) and an A2A agent that break the protocols on purpose."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/a2a/.well-known/agent-card.json":
            url = f"http://127.0.0.1:{self.server.server_address[1]}/a2a"
            # No description, no skills, no input or output modes.
            card = {
                "name": "broken",
                "version": "1.0",
                "supportedInterfaces": [{"protocolBinding": "JSONRPC", "protocolVersion": "1.0", "url": url}],
                "capabilities": {"streaming": False},
            }
            self.answer(200, card)
        else:
            self.answer(404, {"error": "no"})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        method, rid = request.get("method"), request.get("id")
        if rid is None:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        results: dict[str, Any] = {
            "initialize": {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "broken", "version": "0"},
            },
            "ping": {},
            # A tool whose input schema requires a property it does not define.
            "tools/list": {
                "tools": [
                    {
                        "name": "shout",
                        "inputSchema": {"type": "object", "properties": {"a": {}}, "required": ["b"]},
                    }
                ]
            },
            # Every call succeeds, even of a tool that does not exist.
            "tools/call": {"content": [{"type": "text", "text": "ok"}], "isError": False},
            # Any task "exists".
            "GetTask": {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"}},
        }
        if method in results:
            self.answer(200, {"jsonrpc": "2.0", "id": rid, "result": results[method]})
        else:
            self.answer(200, {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "nope"}})


@pytest.fixture(scope="module")
def broken() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_mcp_validate_passes_against_the_gateway(basic: str, tmp_path: Path, mode: str) -> None:
    done = fastagentic(
        "mcp", "validate", f"{basic}/mcp", "--mode", mode, "--call", 'add={"a": 2, "b": 40}', "--json",
        home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    checks = rows(done.stdout)
    assert {c: r["result"] for c, r in checks.items()} == {
        "initialize": "pass",
        "ping": "skip" if mode == "auto" else "pass",
        "tools/list": "pass",
        "tool input schemas": "pass",
        "resources/list": "pass",
        "resources/templates/list": "pass",
        "prompts/list": "pass",
        "unknown tool is an error": "pass",
        "tools/call add": "pass",
    }
    assert checks["tools/call add"]["detail"] == "42"


def test_mcp_validate_fails_the_broken_rows(broken: str, tmp_path: Path) -> None:
    done = fastagentic("mcp", "validate", f"{broken}/mcp", "--mode", "legacy", "--json", home=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    checks = rows(done.stdout)
    failed = sorted(c for c, r in checks.items() if r["result"] == "fail")
    assert failed == ["tool input schemas", "unknown tool is an error"]
    assert checks["tool input schemas"]["detail"] == "shout (requires undefined b)"
    assert checks["initialize"]["result"] == "pass"


def test_mcp_validate_of_nothing_fails_initialize(tmp_path: Path) -> None:
    done = fastagentic("mcp", "validate", "http://127.0.0.1:9/mcp", home=tmp_path)
    assert done.returncode == 1
    assert "initialize" in done.stdout and "FAIL" in done.stdout


def test_a2a_validate_passes_against_the_gateway(basic: str, tmp_path: Path) -> None:
    done = fastagentic(
        "a2a", "validate", f"{basic}/a2a/echo", "--send", '{"text": "hi"}', "--json", home=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    checks = rows(done.stdout)
    assert all(r["result"] == "pass" for r in checks.values()), checks
    assert {"JSONRPC message/stream", "HTTP+JSON message/stream", "card fields"} <= set(checks)


def test_a2a_validate_fails_the_broken_rows(broken: str, tmp_path: Path) -> None:
    done = fastagentic("a2a", "validate", f"{broken}/a2a", "--json", home=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    checks = rows(done.stdout)
    assert checks["agent card"]["result"] == "pass"
    assert checks["card fields"]["result"] == "fail"
    assert (
        checks["card fields"]["detail"] == "missing: description, default_input_modes, default_output_modes"
    )
    assert checks["card skills"]["result"] == "fail"
    assert checks["JSONRPC unknown task is an error"]["result"] == "fail"
    assert checks["JSONRPC message/stream"]["result"] == "skip"


def test_contract_passes_and_snapshot_diffs(basic: str, tmp_path: Path) -> None:
    snapshot = tmp_path / "openapi.json"
    args = ("test", "contract", "tests.workers.basic:app", "--gateway", basic, "--snapshot", str(snapshot))
    written = fastagentic(*args, "--update-snapshot", home=tmp_path)
    assert written.returncode == 0, written.stdout + written.stderr
    same = fastagentic(*args, "--json", home=tmp_path)
    assert same.returncode == 0, same.stdout
    checks = rows(same.stdout)
    assert checks["agent echo"] == {"check": "agent echo", "result": "pass", "detail": "schemas match"}
    assert checks["openapi snapshot"]["detail"] == "unchanged"
    saved = json.loads(snapshot.read_text())
    del saved["paths"]["/v1/agents/echo/invoke"]
    snapshot.write_text(json.dumps(saved))
    drifted = fastagentic(*args, "--json", home=tmp_path)
    assert drifted.returncode == 1
    assert "added $.paths['/v1/agents/echo/invoke']" in rows(drifted.stdout)["openapi snapshot"]["detail"]


def test_contract_fails_for_an_app_the_gateway_does_not_serve(basic: str, tmp_path: Path) -> None:
    (tmp_path / "drifted.py").write_text(
        "from fastagentic import App, RunContext\n\n"
        'app = App("drifted")\n\n\n'
        "@app.agent_endpoint\n"
        "async def echo(text: int, ctx: RunContext) -> int:\n"
        "    return text\n\n\n"
        "@app.tool\n"
        "def brand_new(a: int) -> int:\n"
        "    return a\n"
    )
    done = fastagentic(
        "test", "contract", "drifted:app", "--gateway", basic, "--json", home=tmp_path, cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    checks = rows(done.stdout)
    assert checks["agent echo"]["result"] == "fail"
    assert checks["agent echo"]["detail"] == "differs: input_schema, output_schema"
    assert checks["tool brand_new"] == {
        "check": "tool brand_new",
        "result": "fail",
        "detail": "not served by the gateway",
    }
    assert checks["other endpoints"]["result"] == "skip"


def test_validators_check_a_gateway_that_requires_credentials_with_header(tmp_path: Path) -> None:
    (tmp_path / "secured").mkdir()
    cluster = Cluster(tmp_path / "secured")
    try:
        key = cli(cluster.tmp_path / "data", "keys", "create", "--name", "ci")
        gateway = cluster.start_gateway(auth="required", worker_token="validators-worker-secret-0123456789")
        worker = Worker(gateway, "tests.workers.basic:app", cluster.logs, "secured")
        worker.env["FASTAGENTIC_WORKER_TOKEN"] = "validators-worker-secret-0123456789"
        worker.start()
        cluster.processes.append(worker)
        wait_until(lambda: "(basic) connected" in gateway.output(), what="the worker")
        refused = fastagentic("mcp", "validate", f"{gateway.url}/mcp", "--json", home=tmp_path)
        assert refused.returncode == 1 and rows(refused.stdout)["initialize"]["result"] == "fail"
        for command in (
            ["mcp", "validate", f"{gateway.url}/mcp"],
            ["a2a", "validate", f"{gateway.url}/a2a/echo"],
        ):
            done = fastagentic(*command, "--header", f"X-API-Key: {key}", "--json", home=tmp_path)
            assert done.returncode == 0, done.stdout + done.stderr
            assert all(r["result"] in ("pass", "skip") for r in rows(done.stdout).values()), done.stdout
    finally:
        cluster.close()
