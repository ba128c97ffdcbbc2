"""API keys and worker tokens: their format, how they are minted, and how a presented one is verified.

A credential is ``fa_<id>_<secret>``: the id (``key_…`` for an API key, ``wtk_…`` for a worker token, 16
hex digits) names the stored record; the secret is 32 random bytes (URL-safe base64). Only the SHA-256 of
the secret is stored: the secret has 256 bits of entropy, so a fast hash is as good as a slow one, and
the comparison is constant-time. A key is shown once, when it is created.

``Credentials`` verifies presented credentials against the store through a small cache, so the hot path
does no store round trip for a key it has seen within ``ttl`` seconds (a revoked or expired key stops
working within that time on every replica), and records when keys are used in batches, off the request
path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict

from ..store.base import AccessStore
from .model import CredentialKind, StoredCredential

log = logging.getLogger("fastagentic.access")

TOKEN_PREFIX = "fa_"
ID_PREFIX = {CredentialKind.API_KEY: "key_", CredentialKind.WORKER_TOKEN: "wtk_"}
_ID = re.compile(r"(key|wtk)_[0-9a-f]{16}")
_ID_LENGTH = 20
MAX_TOKEN = 256
MAX_MISSING = 1000  # unknown ids remembered (a flood of random ones still costs a store read each)


class Minted:
    """A new credential: the record to store, and the token to show once."""

    __slots__ = ("credential", "token")

    def __init__(self, credential: StoredCredential, token: str) -> None:
        self.credential = credential
        self.token = token


def mint(
    kind: CredentialKind,
    *,
    name: str,
    tenant: str,
    scopes: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
    endpoints: tuple[str, ...] = (),
    expires_at: float | None = None,
    created_by: str = "",
    now: float | None = None,
) -> Minted:
    credential_id = ID_PREFIX[kind] + secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    credential = StoredCredential(
        id=credential_id,
        kind=kind,
        name=name,
        tenant=tenant,
        scopes=scopes,
        roles=roles,
        endpoints=endpoints,
        secret_hash=digest(secret),
        created_at=time.time() if now is None else now,
        created_by=created_by,
        expires_at=expires_at,
    )
    return Minted(credential, f"{TOKEN_PREFIX}{credential_id}_{secret}")


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def looks_like_ours(token: str) -> bool:
    """Whether a bearer token is one of the gateway's credentials (else it may be a JWT)."""
    return token.startswith(TOKEN_PREFIX)


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed credential, else None."""
    if len(token) > MAX_TOKEN or not token.startswith(TOKEN_PREFIX):
        return None
    body = token[len(TOKEN_PREFIX) :]
    credential_id, separator, secret = (
        body[:_ID_LENGTH],
        body[_ID_LENGTH : _ID_LENGTH + 1],
        body[_ID_LENGTH + 1 :],
    )
    if separator != "_" or not secret or not _ID.fullmatch(credential_id):
        return None
    return credential_id, secret


class CredentialRejected(Exception):
    """A presented credential that is not valid. ``reason`` is safe to show: it never holds the secret."""

    def __init__(self, reason: str, credential_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.credential_id = credential_id


class Credentials:
    """Verifies presented API keys and worker tokens against the store, through a bounded cache."""

    def __init__(self, store: AccessStore, *, ttl: float = 10.0, max_cached: int = 10_000) -> None:
        self.store = store
        self.ttl = ttl
        self.max_cached = max_cached
        self._cache: OrderedDict[str, tuple[StoredCredential | None, float]] = OrderedDict()
        #: ids the store does not know, apart: random ids must not push real keys out of the cache
        self._missing: OrderedDict[str, float] = OrderedDict()
        self._loading: dict[str, asyncio.Future[StoredCredential | None]] = {}
        self._used: dict[str, float] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def verify(self, token: str, kind: CredentialKind, now: float | None = None) -> StoredCredential:
        parts = split(token)
        if parts is None or not parts[0].startswith(ID_PREFIX[kind]):
            what = "an API key" if kind is CredentialKind.API_KEY else "a worker token"
            raise CredentialRejected(f"malformed credential: not {what} of this gateway")
        credential_id, secret = parts
        credential = await self._lookup(credential_id, time.monotonic())
        # Compared even for an unknown id, against a fixed digest: no timing difference to learn from.
        expected = credential.secret_hash if credential is not None else _NO_HASH
        if not hmac.compare_digest(digest(secret), expected) or credential is None:
            raise CredentialRejected("unknown or wrong credential", credential_id)
        now = time.time() if now is None else now
        if credential.revoked_at is not None:
            raise CredentialRejected("credential revoked", credential_id)
        if credential.expires_at is not None and credential.expires_at <= now:
            raise CredentialRejected("credential expired", credential_id)
        self._used[credential_id] = now
        return credential

    def forget(self, credential_id: str) -> None:
        """Drop a cached credential (after this process revoked it)."""
        self._cache.pop(credential_id, None)

    async def _lookup(self, credential_id: str, now: float) -> StoredCredential | None:
        cached = self._cache.get(credential_id)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        missing = self._missing.get(credential_id)
        if missing is not None and now - missing < self.ttl:
            return None
        loading = self._loading.get(credential_id)
        if loading is None:
            loading = asyncio.get_running_loop().create_future()
            self._loading[credential_id] = loading
            try:
                found = await self.store.credential(credential_id)
            except BaseException as exc:
                loading.set_exception(exc)
                loading.exception()  # retrieved: waiters re-raise it
                raise
            finally:
                self._loading.pop(credential_id, None)
            loading.set_result(found)
            if found is None:
                self._missing[credential_id] = now
                while len(self._missing) > MAX_MISSING:
                    self._missing.popitem(last=False)
                return None
            self._missing.pop(credential_id, None)
            self._cache[credential_id] = (found, now)
            self._cache.move_to_end(credential_id)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return found
        return await asyncio.shield(loading)

    # ------------------------------------------------------------------ last used, in batches

    def start(self, interval: float = 5.0) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every(interval))

    async def _flush_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._used:
            return
        used, self._used = self._used, {}
        try:
            await self.store.touch_credentials(used)
        except Exception as exc:  # the store is down: try again with the next batch
            log.warning("cannot record when credentials were last used: %s", exc)
            for credential_id, at in used.items():
                self._used[credential_id] = max(at, self._used.get(credential_id, 0.0))

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(Exception):
            await self.flush()


_NO_HASH = hashlib.sha256(b"no such credential").digest()

__all__ = [
    "CredentialRejected",
    "Credentials",
    "Minted",
    "digest",
    "looks_like_ours",
    "mint",
    "split",
]
