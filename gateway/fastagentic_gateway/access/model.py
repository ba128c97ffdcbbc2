"""Identity and access data: stored credentials (API keys, worker tokens) and audit records.

Data only. The stores keep them (``store.base.AccessStore``); a credential's secret is never stored, only
the sha256 of it.
"""

from __future__ import annotations

import enum

import msgspec


class CredentialKind(enum.StrEnum):
    API_KEY = "api_key"
    WORKER_TOKEN = "worker_token"


class StoredCredential(msgspec.Struct, kw_only=True, frozen=True):
    id: str  # public id, unique (e.g. "key_3f9a..."); never secret
    kind: CredentialKind
    name: str  # a label given at creation
    tenant: str
    scopes: tuple[str, ...] = ()  # API keys: what the key may do
    roles: tuple[str, ...] = ()  # API keys: roles (mapped to scopes by settings)
    endpoints: tuple[str, ...] = ()  # worker tokens: endpoint names it may serve
    secret_hash: bytes  # sha256 of the secret; the secret itself is never stored
    created_at: float
    created_by: str = ""
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


class AuditRecord(msgspec.Struct, kw_only=True, frozen=True):
    ts: float
    # e.g. "auth.failed", "access.denied", "run.create", "run.cancel", "run.replay", "key.create",
    # "key.revoke", "worker_token.create", "worker_token.revoke", "worker.refused"
    action: str
    outcome: str  # "ok" | "denied" | "failed"
    principal: str  # subject, or "" when unknown
    tenant: str
    protocol: str  # rest, mcp, a2a, grpc, cli
    request_id: str = ""
    target: str = ""  # run id, endpoint, credential id
    detail: str = ""  # short reason; never a secret
    id: int = 0  # assigned by the store on append (increasing); 0 before


class AuditQuery(msgspec.Struct, kw_only=True, frozen=True):
    tenant: str | None = None
    principal: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." (e.g. "run.")
    outcome: str | None = None
    since: float | None = None  # ts >= since
    until: float | None = None  # ts < until
    before_id: int | None = None  # paging: records with id < before_id
    limit: int = 100
