"""``fastagentic mcp validate``, ``fastagentic a2a validate`` and ``fastagentic test contract``: protocol
check-ups of any server with the official clients (``mcp``, ``a2a-sdk``: the gateway extra), and a check that
an App's endpoints are what a running gateway serves. Each prints a pass/fail table and exits 1 on a failure
(docs/guides/validators.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .cli_config import CLIError, Exit

PROBE_TOOL = "fastagentic-validate-no-such-tool"
PROBE_TASK = "fastagentic-validate-no-such-task"


@dataclass
class Report:
    title: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # check, PASS/FAIL/SKIP, detail

    def add(self, check: str, ok: bool | None, detail: str = "") -> None:
        self.rows.append((check, "SKIP" if ok is None else "PASS" if ok else "FAIL", detail))

    @property
    def failed(self) -> bool:
        return any(state == "FAIL" for _, state, _ in self.rows)

    def print(self, as_json: bool) -> int:
        if as_json:
            rows = [{"check": c, "result": s.lower(), "detail": d} for c, s, d in self.rows]
            print(json.dumps({"target": self.title, "passed": not self.failed, "checks": rows}, indent=2))
        else:
            width = max([len(c) for c, _, _ in self.rows] + [5])
            print(self.title)
            print(f"{'check':<{width}}  result  detail")
            for check, state, detail in self.rows:
                print(f"{check:<{width}}  {state:<6}  {detail}")
            failures = sum(1 for _, s, _ in self.rows if s == "FAIL")
            print(
                f"{len(self.rows) - failures} of {len(self.rows)} checks passed"
                if not failures
                else f"{failures} failed"
            )
        return Exit.RUN_FAILED if self.failed else Exit.OK


def _needs(module: str, package: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise CLIError(f'this command needs {package}: pip install "fastagentic[gateway]" ({exc})') from exc


def _error(exc: BaseException) -> str:
    text = " ".join((str(exc) or type(exc).__name__).split())
    return f"{type(exc).__name__}: {text}"[:200]


def _tool_calls(values: list[str]) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for value in values:
        name, sep, arguments = value.partition("=")
        try:
            parsed = json.loads(arguments) if sep else {}
        except json.JSONDecodeError as exc:
            raise CLIError(f"--call {value!r}: the arguments are not JSON: {exc}") from exc
        if not name or not isinstance(parsed, dict):
            raise CLIError(f"--call {value!r}: expected NAME or NAME='{{JSON object}}'")
        calls.append((name, parsed))
    return calls


# ---------------------------------------------------------------------------------------------- MCP


async def _mcp(
    url: str, mode: str, calls: list[tuple[str, dict[str, Any]]], report: Report, headers: dict[str, str]
) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    try:
        # The client's own HTTP client, with the credentials (--header) on every request.
        http = httpx2.AsyncClient(headers=headers, timeout=30)
        client = Client(streamable_http_client(url, http_client=http), mode=mode, read_timeout_seconds=30)
        async with http, client as mcp:
            info = mcp.server_info
            report.add("initialize", True, f"{info.name if info else '?'}, protocol {mcp.protocol_version}")
            capabilities = mcp.server_capabilities
            if mcp.protocol_version == "2026-07-28":
                report.add("ping", None, "not in protocol 2026-07-28")
            else:
                try:
                    await mcp.send_ping()
                    report.add("ping", True)
                except Exception as exc:
                    report.add("ping", False, _error(exc))
            tools: list[Any] = []
            try:
                tools = list((await mcp.list_tools()).tools)
                report.add("tools/list", True, f"{len(tools)} tool(s)")
            except Exception as exc:
                report.add("tools/list", False if capabilities and capabilities.tools else None, _error(exc))
            bad = [f"{t.name} ({problem})" for t in tools if (problem := _schema_problem(t.input_schema))]
            if tools:
                report.add("tool input schemas", not bad, "; ".join(bad) if bad else "all object schemas")
            for kind, call in (
                ("resources/list", mcp.list_resources),
                ("resources/templates/list", mcp.list_resource_templates),
                ("prompts/list", mcp.list_prompts),
            ):
                advertised = capabilities is not None and bool(
                    capabilities.prompts if kind.startswith("prompts") else capabilities.resources
                )
                try:
                    listed = await call()
                    items = next(v for k, v in listed if isinstance(v, list))
                    report.add(kind, True, f"{len(items)} item(s)")
                except Exception as exc:
                    report.add(
                        kind, False if advertised else None, _error(exc) if advertised else "not advertised"
                    )
            try:
                result = await mcp.call_tool(PROBE_TOOL, {})
                report.add(
                    "unknown tool is an error",
                    bool(result.is_error),
                    "isError result" if result.is_error else "answered as a success",
                )
            except Exception as exc:
                report.add("unknown tool is an error", True, f"JSON-RPC error ({_error(exc)[:80]})")
            for name, arguments in calls:
                try:
                    result = await mcp.call_tool(name, arguments)
                    text = " ".join(getattr(c, "text", "") for c in result.content)[:80]
                    report.add(f"tools/call {name}", not result.is_error, text)
                except Exception as exc:
                    report.add(f"tools/call {name}", False, _error(exc))
    except Exception as exc:
        if not report.rows:
            report.add("initialize", False, _error(_unwrap(exc)))
        else:
            report.add("session", False, _error(_unwrap(exc)))


def _schema_problem(schema: Any) -> str:
    """What is wrong with a tool's input schema ("" when nothing is)."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return "not an object schema"
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return "properties is not an object"
    undefined = [name for name in schema.get("required") or [] if name not in properties]
    if undefined:
        return f"requires undefined {', '.join(map(str, undefined))}"
    return ""


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def cmd_mcp(args: argparse.Namespace) -> int:
    _needs("mcp", "the official MCP client (mcp)")
    report = Report(f"MCP server {args.url} (mode {args.mode})")
    asyncio.run(_mcp(args.url, args.mode, _tool_calls(args.call), report, dict(args.header)))
    return report.print(args.json)


# ---------------------------------------------------------------------------------------------- A2A


async def _a2a(url: str, send: str | None, report: Report, headers: dict[str, str]) -> None:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.card_resolver import A2ACardResolver
    from a2a.types.a2a_pb2 import GetTaskRequest, Message, Part, Role, SendMessageRequest

    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        try:
            card = await A2ACardResolver(http, url).get_agent_card()
        except Exception as exc:
            report.add("agent card", False, _error(exc))
            return
        report.add("agent card", True, f"{card.name} {card.version}".strip())
        missing = [name for name in ("name", "description", "version") if not getattr(card, name)]
        missing += [
            name
            for name in ("supported_interfaces", "default_input_modes", "default_output_modes")
            if not len(getattr(card, name))
        ]
        report.add(
            "card fields",
            not missing,
            f"missing: {', '.join(missing)}" if missing else "name, interfaces, modes",
        )
        report.add("card skills", len(card.skills) > 0, f"{len(card.skills)} skill(s)")
        bindings = sorted({i.protocol_binding for i in card.supported_interfaces})
        for binding in bindings:
            config = ClientConfig(httpx_client=http, supported_protocol_bindings=[binding], streaming=True)
            try:
                client = ClientFactory(config).create(card)
            except Exception as exc:
                report.add(f"{binding} client", False, _error(exc))
                continue
            try:
                try:
                    await client.get_task(GetTaskRequest(id=PROBE_TASK))
                    report.add(f"{binding} unknown task is an error", False, "answered a task")
                except Exception as exc:
                    report.add(
                        f"{binding} unknown task is an error",
                        "not found" in str(exc).lower() or "notfound" in type(exc).__name__.lower(),
                        _error(exc)[:100],
                    )
                if send is None:
                    report.add(f"{binding} message/stream", None, "skipped (--send TEXT runs the agent once)")
                    continue
                message = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=send)])
                try:
                    items = [item async for item in client.send_message(SendMessageRequest(message=message))]
                    report.add(f"{binding} message/stream", bool(items), f"{len(items)} streamed item(s)")
                except Exception as exc:
                    report.add(f"{binding} message/stream", False, _error(exc))
            finally:
                await client.close()


def cmd_a2a(args: argparse.Namespace) -> int:
    _needs("a2a", "the official A2A client (a2a-sdk)")
    report = Report(f"A2A agent {args.url}")
    asyncio.run(_a2a(args.url, args.send, report, dict(args.header)))
    return report.print(args.json)


# ---------------------------------------------------------------------------------------------- contract

COMPARED = (
    "input_schema",
    "output_schema",
    "streams",
    "durable",
    "scopes",
    "tags",
    "uri_template",
    "mime_type",
)


def _app_endpoints(target: str) -> dict[str, dict[str, Any]]:
    from .cli import UsageError, load_app

    try:
        app = load_app(target)
    except UsageError as exc:
        raise CLIError(str(exc)) from exc
    served: dict[str, dict[str, Any]] = {}
    for name, endpoint in app.endpoints.items():
        spec = endpoint.spec()
        served[name] = {
            "kind": endpoint.kind,
            "input_schema": json.loads(spec.input_schema or b"{}"),
            "output_schema": json.loads(spec.output_schema or b"{}"),
            "streams": spec.streams,
            "durable": spec.durable,
            "scopes": list(spec.scopes),
            "tags": list(spec.tags),
            "uri_template": spec.uri_template or None,
            "mime_type": spec.mime_type or None,
        }
    return served


def _get(http: httpx.Client, path: str) -> Any:
    try:
        response = http.get(path)
    except httpx.HTTPError as exc:
        raise CLIError(f"{http.base_url}{path}: {_error(exc)}", Exit.UNAVAILABLE) from exc
    if response.status_code in (401, 403):
        raise CLIError(f"{http.base_url}{path}: {response.status_code} (pass --api-key)", Exit.AUTH)
    if response.status_code != 200:
        raise CLIError(f"{http.base_url}{path}: HTTP {response.status_code}", Exit.UNAVAILABLE)
    try:
        return response.json()
    except ValueError as exc:
        raise CLIError(f"{http.base_url}{path}: not JSON", Exit.UNAVAILABLE) from exc


def _diff(old: Any, new: Any, path: str = "$") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[str] = []
        for key in sorted(set(old) | set(new)):
            where = f"{path}.{key}" if "/" not in key else f"{path}[{key!r}]"
            if key not in new:
                changes.append(f"removed {where}")
            elif key not in old:
                changes.append(f"added {where}")
            else:
                changes += _diff(old[key], new[key], where)
        return changes
    return [] if old == new else [f"changed {path}: {json.dumps(old)[:60]} -> {json.dumps(new)[:60]}"]


def cmd_contract(args: argparse.Namespace) -> int:
    expected = _app_endpoints(args.target)
    report = Report(f"contract of {args.target} against {args.gateway}")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    with httpx.Client(base_url=args.gateway.rstrip("/"), headers=headers, timeout=30) as http:
        served = {e["name"]: e for e in _get(http, "/v1/endpoints").get("endpoints", [])}
        openapi = _get(http, "/openapi.json")
    for name, want in sorted(expected.items()):
        have = served.get(name)
        if have is None:
            report.add(f"{want['kind']} {name}", False, "not served by the gateway")
            continue
        wrong = [
            key
            for key in ("kind", *COMPARED)
            if have.get(key, None if key in ("uri_template", "mime_type") else want[key]) != want[key]
        ]
        report.add(
            f"{want['kind']} {name}", not wrong, f"differs: {', '.join(wrong)}" if wrong else "schemas match"
        )
    extra = sorted(set(served) - set(expected))
    if extra:
        report.add("other endpoints", None, f"served by other workers: {', '.join(extra)}")
    paths = openapi.get("paths", {}) if isinstance(openapi, dict) else {}
    for name, want in sorted(expected.items()):
        if want["kind"] == "agent":
            path = f"/v1/agents/{name}/invoke"
        elif want["kind"] == "tool":
            path = f"/v1/tools/{name}"
        else:
            continue
        if name in served:
            report.add(
                f"openapi {path}",
                path in paths,
                "documented" if path in paths else "missing from /openapi.json",
            )
    if args.snapshot:
        snapshot = Path(args.snapshot)
        if args.update_snapshot:
            snapshot.write_text(json.dumps(openapi, indent=2, sort_keys=True) + "\n")
            report.add("openapi snapshot", True, f"written to {snapshot}")
        else:
            try:
                saved = json.loads(snapshot.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CLIError(f"--snapshot {snapshot}: {exc} (--update-snapshot writes it)") from exc
            changes = _diff(saved, openapi)
            report.add(
                "openapi snapshot",
                not changes,
                "; ".join(changes[:8]) + (" …" if len(changes) > 8 else "") if changes else "unchanged",
            )
    return report.print(args.json)
