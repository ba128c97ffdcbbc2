"""``fastagentic``: run a worker, or a worker with a local gateway for development; bridge stdio MCP clients."""

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


if __name__ == "__main__":
    sys.exit(main())
