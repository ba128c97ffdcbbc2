"""``fastagentic-gateway``: serve the gateway, print its effective settings, or migrate its run store."""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from . import settings as settings_module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastagentic-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "serve REST, SSE and worker gRPC"),
        ("settings", "print the effective settings as JSON and exit"),
        ("migrate", "apply pending schema migrations to the configured run store and exit"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", help="TOML config file (also FASTAGENTIC_CONFIG)")
        command.add_argument("--http-host")
        command.add_argument("--http-port", type=int)
        command.add_argument("--grpc-host")
        command.add_argument("--grpc-port", type=int)
        command.add_argument("--data-dir")
        command.add_argument("--store-url")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_module.load(
            args.config,
            http_host=args.http_host,
            http_port=args.http_port,
            grpc_host=args.grpc_host,
            grpc_port=args.grpc_port,
            data_dir=args.data_dir,
            store_url=args.store_url,
        )
    except settings_module.SettingsError as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 2
    if args.command == "settings":
        print(msgspec.json.format(msgspec.json.encode(settings)).decode())
        return 0
    if args.command == "migrate":
        return migrate(settings)
    try:
        from .store import open_store

        open_store(settings.store_url, settings.data_dir)
    except ValueError as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 2
    from .server import run

    return run(settings)


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
