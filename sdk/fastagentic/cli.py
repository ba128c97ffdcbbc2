"""``fastagentic``: run a worker (or one with a local gateway), bridge stdio MCP clients, talk to agents
(``agent``), create projects (``new``), and check servers (``mcp validate``, ``a2a validate``, ``test contract``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from .app import App
from .cli_config import CLIError


class UsageError(Exception):
    pass


def load_app(target: str) -> App:
    """Import ``module:attribute`` (from the current directory too, like uvicorn) and return the App."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"expected MODULE:APP, like examples.demo:app, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise UsageError(f"{target!r} is not a fastagentic.App (found {type(app).__name__})")
    return app


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _worker_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"gateway": args.gateway, "slots": args.slots, "grace": args.grace}


def _event_loop_runner() -> Any:
    """uvloop when it is installed (the gateway extra brings it), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _run(args: argparse.Namespace) -> int:
    from .worker import Rejected, serve

    app = load_app(args.target)
    try:
        _event_loop_runner()(serve(app, **_worker_options(args)))
    except Rejected as exc:
        print(f"fastagentic: the gateway refused this worker: {exc}", file=sys.stderr)
        return 3
    return 0


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UsageError(f"the gateway exited with status {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise UsageError(f"the gateway did not open {host}:{port} within {timeout:.0f}s")


def _dev(args: argparse.Namespace) -> int:
    from .worker import Rejected, serve

    app = load_app(args.target)
    try:
        importlib.import_module("fastagentic_gateway")
    except ImportError as exc:
        raise UsageError('`fastagentic dev` needs the gateway: pip install "fastagentic[gateway]"') from exc
    env = dict(os.environ)
    # Flags win over the environment; the gateway subprocess reads the same variables.
    if args.http_port is not None:
        env["FASTAGENTIC_HTTP_PORT"] = str(args.http_port)
    if args.grpc_port is not None:
        env["FASTAGENTIC_GRPC_PORT"] = str(args.grpc_port)
    grpc_host = env.get("FASTAGENTIC_GRPC_HOST", "127.0.0.1")
    grpc_port = int(env.get("FASTAGENTIC_GRPC_PORT", "50051"))
    if env.setdefault("FASTAGENTIC_AUTH", "none") == "none":
        print(
            "fastagentic dev: authentication is OFF (auth = none): every local caller may do everything. "
            "For local development only; deploy with `fastagentic-gateway serve` and auth = required.",
            file=sys.stderr,
        )
    gateway = subprocess.Popen([sys.executable, "-m", "fastagentic_gateway", "serve"], env=env)
    try:
        _wait_for_port(grpc_host, grpc_port, gateway)
        options = _worker_options(args)
        options["gateway"] = f"{grpc_host}:{grpc_port}"
        _event_loop_runner()(serve(app, **options))
    except Rejected as exc:
        print(f"fastagentic: the gateway refused this worker: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        pass
    finally:
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(15)
            except subprocess.TimeoutExpired:
                gateway.kill()
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number (1-65535), not {text!r}")
    return int(text)


#: The --header option of the validators: how a server that wants credentials is checked.
CREDENTIAL_HELP = "an HTTP header on every request, e.g. 'X-API-Key: fa_key_...' or 'Authorization: Bearer ...' (repeatable)"


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError("expected NAME: VALUE")
    return name.strip(), value.strip()


def _mcp_stdio(args: argparse.Namespace) -> int:
    from .mcp_bridge import serve_stdio

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would drown stderr
    with contextlib.suppress(KeyboardInterrupt):
        _event_loop_runner()(serve_stdio(args.url, dict(args.header)))
    return 0


def _lazy(module: str, function: str) -> Any:
    """A handler imported when it runs: the agent, template and validator commands load what they need then."""

    def handler(args: argparse.Namespace) -> int:
        for name in ("httpx", "httpx2", "fastagentic.client", "mcp", "a2a"):  # no line per request on stderr
            logging.getLogger(name).setLevel(logging.WARNING)
        return int(getattr(importlib.import_module(f"fastagentic.{module}"), function)(args))

    return handler


def _client_options(command: argparse.ArgumentParser, endpoint: bool = True) -> None:
    """Flags over ~/.fastagentic/config.json and FASTAGENTIC_* (see `fastagentic agent config list`)."""
    command.add_argument("--url", help="the gateway's base URL (env FASTAGENTIC_URL)")
    command.add_argument("--api-key", dest="api_key", help="API key (env FASTAGENTIC_API_KEY)")
    command.add_argument("--token", help="bearer token (env FASTAGENTIC_TOKEN)")
    if endpoint:
        command.add_argument("--endpoint", "-e", help="the agent to talk to (env FASTAGENTIC_ENDPOINT)")
    command.add_argument(
        "--format", "-f", choices=["markdown", "plain", "json"], help="output format (env FASTAGENTIC_FORMAT)"
    )
    command.add_argument("--timeout", help="seconds a run may take (env FASTAGENTIC_TIMEOUT, default 300)")


def _agent_commands(commands: Any) -> None:
    agent = commands.add_parser("agent", help="talk to agents: query, chat, config, history")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True)
    query = agent_commands.add_parser(
        "query", help="ask one question (argument or stdin) and print the answer (for scripts)"
    )
    query.add_argument("question", nargs="?", help="the question (default: read stdin)")
    query.add_argument("--file", help="a file whose content is appended to the question")
    query.add_argument("--output", "-o", help="write the answer to this file instead of stdout")
    query.add_argument("--json", action="store_true", help="the question is the agent's JSON input")
    query.add_argument("--verbose", "-v", action="store_true", help="stream tokens and tool calls to stderr")
    _client_options(query)
    query.set_defaults(handler=_lazy("cli_agent", "cmd_query"))
    chat = agent_commands.add_parser("chat", help="an interactive chat with an agent (works in a pipe too)")
    chat.add_argument("--file", help="a file whose content is appended to the first message")
    chat.add_argument("--load", help="start from a saved chat (history id or JSON file)")
    chat.add_argument("--no-history", dest="history", action="store_const", const="false", help="do not save")
    _client_options(chat)
    chat.set_defaults(handler=_lazy("cli_agent", "cmd_chat"))
    settings = agent_commands.add_parser("config", help="~/.fastagentic/config.json: get, set, unset, list")
    config_commands = settings.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser("list", help="every key, its value and where it comes from")
    get = config_commands.add_parser("get", help="one key's effective value")
    get.add_argument("key")
    set_ = config_commands.add_parser("set", help="store a key in the config file")
    set_.add_argument("key")
    set_.add_argument("value")
    unset = config_commands.add_parser("unset", help="remove a key from the config file")
    unset.add_argument("key")
    settings.set_defaults(handler=_lazy("cli_agent", "cmd_config"))
    history = agent_commands.add_parser("history", help="saved chats: list, show, delete")
    history_commands = history.add_subparsers(dest="history_command", required=True)
    history_commands.add_parser("list", help="saved chats, oldest first")
    show = history_commands.add_parser("show", help="a saved chat's transcript")
    show.add_argument("id", help="its id (from `history list`) or a JSON file")
    show.add_argument("--json", action="store_true", help="the saved JSON as is")
    delete = history_commands.add_parser("delete", help="delete saved chats")
    delete.add_argument("ids", nargs="+", metavar="ID")
    history.set_defaults(handler=_lazy("cli_agent", "cmd_history"))


def _template_commands(commands: Any) -> None:
    registry_help = (
        "a local template registry directory (repeatable; env FASTAGENTIC_TEMPLATES, ':'-separated)"
    )
    new = commands.add_parser("new", help="create a worker project from a template")
    new.add_argument("name", help="the project's name (and directory)")
    new.add_argument(
        "--template", "-t", default="plain", help="plain, pydantic-ai, langgraph, langchain, or a registry's"
    )
    new.add_argument("--directory", help="where to create it (default: NAME)")
    new.add_argument("--registry", action="append", help=registry_help)
    new.add_argument(
        "--force", action="store_true", help="use a template made for another fastagentic version"
    )
    new.set_defaults(handler=_lazy("cli_templates", "cmd_new"))
    templates = commands.add_parser("templates", help="project templates")
    template_commands = templates.add_subparsers(dest="templates_command", required=True)
    listing = template_commands.add_parser("list", help="the templates `fastagentic new` can use")
    listing.add_argument("--registry", action="append", help=registry_help)
    listing.set_defaults(handler=_lazy("cli_templates", "cmd_list"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastagentic", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("FASTAGENTIC_LOG_LEVEL", "info"))
    commands = parser.add_subparsers(dest="command", required=True)

    def worker_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("target", metavar="MODULE:APP", help="the App to serve, e.g. examples.demo:app")
        command.add_argument(
            "--slots", type=_positive_int, default=8, help="runs executed at once (default 8)"
        )
        command.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="seconds to finish runs on SIGTERM before handing them back",
        )
        return command

    run = worker_command("run", "serve an App's endpoints through a gateway")
    run.add_argument(
        "--gateway",
        default=os.environ.get("FASTAGENTIC_GATEWAY", "127.0.0.1:50051"),
        help="gateway gRPC address (env FASTAGENTIC_GATEWAY, default 127.0.0.1:50051)",
    )
    run.set_defaults(handler=_run)
    dev = worker_command("dev", "start a local gateway (embedded SQLite store) and serve the App through it")
    dev.add_argument(
        "--http-port", type=_port, help="the gateway's HTTP port (env FASTAGENTIC_HTTP_PORT, default 8000)"
    )
    dev.add_argument(
        "--grpc-port", type=_port, help="the gateway's worker port (env FASTAGENTIC_GRPC_PORT, default 50051)"
    )
    dev.set_defaults(handler=_dev, gateway=None)
    mcp = commands.add_parser("mcp", help="MCP helpers")
    mcp_commands = mcp.add_subparsers(dest="mcp_command", required=True)
    stdio = mcp_commands.add_parser(
        "stdio",
        help="an MCP server on stdin/stdout relaying to a gateway's /mcp (for stdio-only MCP clients)",
    )
    stdio.add_argument(
        "--url",
        default=os.environ.get("FASTAGENTIC_MCP_URL", "http://127.0.0.1:8000/mcp"),
        help="the gateway's MCP endpoint (env FASTAGENTIC_MCP_URL, default http://127.0.0.1:8000/mcp)",
    )
    stdio.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an HTTP header for every request to the gateway, e.g. 'Authorization: Bearer ...' (repeatable)",
    )
    stdio.set_defaults(handler=_mcp_stdio)
    validate = mcp_commands.add_parser("validate", help="check an MCP server with the official client")
    validate.add_argument("url", help="the server's streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp")
    validate.add_argument("--mode", choices=["auto", "legacy", "2026-07-28"], default="auto", help="revision")
    validate.add_argument(
        "--call", action="append", default=[], metavar="NAME[=JSON]", help="also call this tool (repeatable)"
    )
    validate.add_argument("--json", action="store_true", help="the table as JSON")
    validate.add_argument(
        "--header", type=_header, action="append", default=[], metavar="'NAME: VALUE'", help=CREDENTIAL_HELP
    )
    validate.set_defaults(handler=_lazy("cli_validate", "cmd_mcp"))
    a2a = commands.add_parser("a2a", help="A2A helpers")
    a2a_commands = a2a.add_subparsers(dest="a2a_command", required=True)
    a2a_validate = a2a_commands.add_parser("validate", help="check an A2A agent with the official client")
    a2a_validate.add_argument(
        "url", help="the agent's base URL (its card is at URL/.well-known/agent-card.json)"
    )
    a2a_validate.add_argument("--send", metavar="TEXT", help="also stream one message (runs the agent once)")
    a2a_validate.add_argument("--json", action="store_true", help="the table as JSON")
    a2a_validate.add_argument(
        "--header", type=_header, action="append", default=[], metavar="'NAME: VALUE'", help=CREDENTIAL_HELP
    )
    a2a_validate.set_defaults(handler=_lazy("cli_validate", "cmd_a2a"))
    test = commands.add_parser("test", help="contract tests")
    test_commands = test.add_subparsers(dest="test_command", required=True)
    contract = test_commands.add_parser("contract", help="check an App against what a running gateway serves")
    contract.add_argument("target", metavar="MODULE:APP")
    contract.add_argument("--gateway", required=True, help="the gateway's base URL")
    contract.add_argument("--api-key", dest="api_key", default=os.environ.get("FASTAGENTIC_API_KEY"))
    contract.add_argument("--snapshot", help="an OpenAPI snapshot (JSON) to diff /openapi.json against")
    contract.add_argument("--update-snapshot", action="store_true", help="write the snapshot instead")
    contract.add_argument("--json", action="store_true", help="the table as JSON")
    contract.set_defaults(handler=_lazy("cli_validate", "cmd_contract"))
    _agent_commands(commands)
    _template_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"fastagentic: {exc}", file=sys.stderr)
        return 2
    except CLIError as exc:
        print(f"fastagentic: {exc}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .client import FastAgenticError

        if not isinstance(exc, FastAgenticError):
            raise
        from .cli_agent import describe, exit_code_of

        print(f"fastagentic: {describe(exc)}", file=sys.stderr)
        return int(exit_code_of(exc))


if __name__ == "__main__":
    sys.exit(main())
