"""Operations on credentials, for the ``fastagentic-gateway keys`` and ``workers`` commands.

Each opens the configured durable store, does one thing, audits it (protocol ``cli``, the operating
system user as principal) and closes the store. A new credential's token is returned once and never
stored: only its hash is.
"""

from __future__ import annotations

import getpass
import re
import time
from typing import cast

from ..settings import Settings
from ..store import open_store
from ..store.base import AccessStore
from .keys import Minted, mint
from .model import AuditRecord, CredentialKind, StoredCredential

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_NAME = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
_TENANT = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 scope-token characters
_ENDPOINT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}|\*")


class AdminError(ValueError):
    """A bad argument or an unknown credential; the message says which."""


def duration(text: str) -> float:
    """``90d``, ``12h``, ``30m``, ``45s`` or plain seconds."""
    found = _DURATION.fullmatch(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise AdminError(f"expected a duration such as 90d, 12h, 30m or 3600, not {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _check(values: list[str], pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    for value in values:
        if not pattern.fullmatch(value):
            raise AdminError(f"{what} {value!r} is not valid ({pattern.pattern})")
    return tuple(dict.fromkeys(values))


class Admin:
    def __init__(self, settings: Settings) -> None:
        if settings.store_url.startswith("memory://"):
            raise AdminError("store_url is memory://: credentials would not outlive this command")
        self.store = open_store(settings.store_url, settings.data_dir, migrate=settings.migrate_on_start)
        self.access = cast(AccessStore, self.store)
        self.actor = _actor()

    async def __aenter__(self) -> Admin:
        await self.store.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()

    async def create(
        self,
        kind: CredentialKind,
        *,
        name: str,
        tenant: str,
        scopes: list[str] = [],  # noqa: B006 (read only)
        roles: list[str] = [],  # noqa: B006
        endpoints: list[str] = [],  # noqa: B006
        expires_in: str | None = None,
    ) -> Minted:
        _check([name], _NAME, "name")
        _check([tenant], _TENANT, "tenant")
        if kind is CredentialKind.WORKER_TOKEN and not endpoints:
            raise AdminError("a worker token names the endpoints it may serve: give --endpoint at least once")
        now = time.time()
        minted = mint(
            kind,
            name=name,
            tenant=tenant,
            scopes=_check(scopes, _SCOPE, "scope"),
            roles=_check(roles, _SCOPE, "role"),
            endpoints=_check(endpoints, _ENDPOINT, "endpoint"),
            expires_at=now + duration(expires_in) if expires_in else None,
            created_by=self.actor,
            now=now,
        )
        await self.access.put_credential(minted.credential)
        await self._audit(f"{_action(kind)}.create", minted.credential)
        return minted

    async def list(self, kind: CredentialKind, tenant: str | None = None) -> list[StoredCredential]:
        return await self.access.credentials(kind, tenant)

    async def revoke(self, kind: CredentialKind, credential_id: str) -> StoredCredential:
        found = await self.access.credential(credential_id)
        if found is None or found.kind is not kind:
            raise AdminError(f"no {kind.value.replace('_', ' ')} {credential_id!r}")
        revoked = await self.access.revoke_credential(credential_id, time.time())
        assert revoked is not None
        await self._audit(f"{_action(kind)}.revoke", revoked)
        return revoked

    async def _audit(self, action: str, credential: StoredCredential) -> None:
        record = AuditRecord(
            ts=time.time(),
            action=action,
            outcome="ok",
            principal=self.actor,
            tenant=credential.tenant,
            protocol="cli",
            target=credential.id,
            detail=credential.name,
        )
        await self.access.append_audit([record])


def _action(kind: CredentialKind) -> str:
    return "key" if kind is CredentialKind.API_KEY else "worker_token"


def _actor() -> str:
    try:
        return "os:" + getpass.getuser()
    except Exception:
        return "os:unknown"


__all__ = ["Admin", "AdminError", "duration"]
