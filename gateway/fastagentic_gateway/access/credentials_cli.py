"""``fastagentic-gateway keys …`` and ``workers …``: the commands over ``Admin``, and how they print."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import msgspec

from ..errors import Conflict
from ..settings import Settings
from .admin import Admin, AdminError
from .model import CredentialKind, StoredCredential


def run_credentials(settings: Settings, args: argparse.Namespace) -> int:
    kind = CredentialKind.API_KEY if args.command == "keys" else CredentialKind.WORKER_TOKEN
    try:
        return asyncio.run(_run(settings, kind, args))
    except AdminError as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 2
    except (ConnectionError, RuntimeError, Conflict) as exc:
        print(f"fastagentic-gateway: {exc}", file=sys.stderr)
        return 1


async def _run(settings: Settings, kind: CredentialKind, args: argparse.Namespace) -> int:
    async with Admin(settings) as admin:
        if args.action in ("create", "create-token"):
            minted = await admin.create(
                kind,
                name=args.name,
                tenant=args.tenant,
                scopes=getattr(args, "scope", []),
                roles=getattr(args, "role", []),
                endpoints=getattr(args, "endpoint", []),
                expires_in=args.expires_in,
            )
            if args.json:
                _print_json({**_view(minted.credential), "token": minted.token})
            else:
                print(minted.token)
                print(
                    f"created {minted.credential.id} ({minted.credential.name}); this is the only time the "
                    "token is shown: store it now",
                    file=sys.stderr,
                )
            return 0
        if args.action in ("list", "list-tokens"):
            found = await admin.list(kind, args.tenant)
            if args.json:
                _print_json([_view(c) for c in found])
            else:
                for credential in found:
                    print(_line(credential))
            return 0
        revoked = await admin.revoke(kind, args.id)
        if args.json:
            _print_json(_view(revoked))
        else:
            print(f"revoked {revoked.id} ({revoked.name})")
        return 0


def _view(credential: StoredCredential) -> dict[str, Any]:
    view = msgspec.to_builtins(credential)
    view.pop("secret_hash", None)
    if credential.kind is CredentialKind.API_KEY:
        view.pop("endpoints", None)
    else:
        view.pop("scopes", None)
        view.pop("roles", None)
    return {k: v for k, v in view.items() if v not in (None, [], "")}


def _line(credential: StoredCredential) -> str:
    state = "active"
    if credential.revoked_at is not None:
        state = "revoked"
    elif credential.expires_at is not None and credential.expires_at <= time.time():
        state = "expired"
    grants = credential.endpoints if credential.kind is CredentialKind.WORKER_TOKEN else credential.scopes
    used = _when(credential.last_used_at) if credential.last_used_at else "never used"
    return (
        f"{credential.id}  {state:<7}  {credential.tenant:<12}  {credential.name}  "
        f"[{' '.join(grants) or '-'}]  last used: {used}"
    )


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def _print_json(value: Any) -> None:
    print(msgspec.json.format(msgspec.json.encode(value)).decode())


__all__ = ["run_credentials"]
