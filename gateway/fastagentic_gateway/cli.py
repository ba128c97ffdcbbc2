"""``fastagentic-gateway``: serve the gateway, print its effective settings, check them for production,
migrate its run store, or manage API keys and worker tokens."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import msgspec

from . import settings as settings_module


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", help="TOML config file (also FASTAGENTIC_CONFIG)")
    command.add_argument("--data-dir")
    command.add_argument("--store-url")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastagentic-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "serve REST, SSE and worker gRPC"),
        ("settings", "print the effective settings as JSON and exit"),
        ("migrate", "apply pending schema migrations to the configured run store and exit"),
    ):
        command = commands.add_parser(name, help=help_text)
        _common(command)
        command.add_argument("--http-host")
        command.add_argument("--http-port", type=int)
        command.add_argument("--grpc-host")
        command.add_argument("--grpc-port", type=int)

    check = commands.add_parser(
        "check", help="score the configuration's production readiness; exit 1 below --min-score"
    )
    _common(check)
    check.add_argument(
        "--min-score", type=int, default=80, help="the lowest passing score, 0 to 100 (default 80)"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")

    keys = commands.add_parser("keys", help="API keys: create, list, revoke").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="create an API key; its token is printed once")
    create.add_argument("--name", required=True, help="a label: who or what uses the key")
    create.add_argument(
        "--tenant", default="default", help="the tenant its runs belong to (default: default)"
    )
    create.add_argument("--scope", action="append", default=[], help="a scope it grants (repeat)")
    create.add_argument("--role", action="append", default=[], help="a role it has (repeat; see auth_roles)")
    create.add_argument("--expires-in", help="lifetime: 90d, 12h, 30m or seconds (default: no expiry)")
    listing = keys.add_parser("list", help="list API keys (never their tokens)")
    listing.add_argument("--tenant")
    revoke = keys.add_parser("revoke", help="revoke an API key by its id (key_...)")
    revoke.add_argument("id")

    workers = commands.add_parser("workers", help="worker tokens: create, list, revoke").add_subparsers(
        dest="action", required=True
    )
    create = workers.add_parser("create-token", help="create a worker token; printed once")
    create.add_argument("--name", required=True, help="a label: which deployment of workers uses it")
    create.add_argument("--tenant", default="default")
    create.add_argument(
        "--endpoint", action="append", default=[], help="an endpoint name it may serve (repeat; * for any)"
    )
    create.add_argument("--expires-in", help="lifetime: 90d, 12h, 30m or seconds (default: no expiry)")
    listing = workers.add_parser("list-tokens", help="list worker tokens (never the tokens themselves)")
    listing.add_argument("--tenant")
    revoke = workers.add_parser("revoke-token", help="revoke a worker token by its id (wtk_...)")
    revoke.add_argument("id")
    for sub in (keys, workers):
        for command in sub.choices.values():
            _common(command)
            command.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {
        name: getattr(args, name, None)
        for name in ("http_host", "http_port", "grpc_host", "grpc_port", "data_dir", "store_url")
    }
    try:
        settings = settings_module.load(args.config, **flags)
    except settings_module.SettingsError as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 2
    if args.command == "settings":
        print(msgspec.json.format(msgspec.json.encode(settings)).decode())
        return 0
    if args.command == "migrate":
        return migrate(settings)
    if args.command == "check":
        return readiness_check(settings, args)
    if args.command in ("keys", "workers"):
        from .access.credentials_cli import run_credentials

        return run_credentials(settings, args)
    if not settings.auth:
        print(
            'fastagentic-gateway: no authentication is configured. Set auth = "required" (API keys from '
            "`fastagentic-gateway keys create`, bearer tokens from oidc_issuers, worker tokens from "
            '`fastagentic-gateway workers create-token`), or auth = "none" to let every caller do '
            "everything (local development only). Environment: FASTAGENTIC_AUTH.",
            file=sys.stderr,
        )
        return 2
    try:
        from .store import open_store

        open_store(settings.store_url, settings.data_dir)
    except ValueError as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 2
    from .server import run

    return run(settings, reload=lambda: settings_module.load(args.config, **flags))


def readiness_check(settings: settings_module.Settings, args: argparse.Namespace) -> int:
    """Print the production-readiness report; 1 when its score is below ``--min-score``."""
    from .readiness import check, render

    if not 0 <= args.min_score <= 100:
        print(f"fastagentic-gateway: --min-score must be 0 to 100, not {args.min_score}", file=sys.stderr)
        return 2
    report = check(settings, args.config, os.environ, args.min_score)
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
    else:
        print(render(report))
    return 0 if report.ok else 1


def migrate(settings: settings_module.Settings) -> int:
    """Apply the run store's pending migrations, saying what was applied; 1 when it cannot."""
    from psycopg import Error as DatabaseError

    from .store import migrate as migrate_store

    try:
        report = asyncio.run(migrate_store(settings.store_url, settings.data_dir))
    except ValueError as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 2
    # Unreachable, a schema newer than this gateway, or a migration the database refused.
    except (ConnectionError, RuntimeError, DatabaseError) as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 1
    for name in report.applied:
        print(f"applied {name}")
    if not report.applied:
        print(f"{report.store}: schema already at version {report.version}; nothing to apply")
    else:
        print(f"{report.store}: schema now at version {report.version}")
    return 0
