"""Gate: the access stage of the gateway, built from the settings and the store, in one piece.

It owns the parts (API keys and worker tokens through ``Credentials``, bearer tokens through the
``OidcVerifier``, the ``Authenticator`` over both, the ``AuditLog``) and puts the ``AccessEdge`` in
front of the HTTP app when authentication is required.
"""

from __future__ import annotations

import logging
from typing import Any

from ..settings import Settings
from ..store.base import AccessStore
from .audit import AuditLog
from .authenticate import Authenticator
from .edge import AccessEdge, base_url
from .keys import Credentials
from .model import AuditQuery, AuditRecord
from .oidc import OidcVerifier
from .policy import require_scope
from .principal import Principal

log = logging.getLogger("fastagentic.access")


class Gate:
    def __init__(self, settings: Settings, store: AccessStore) -> None:
        self.settings = settings
        self.store = store
        self.required = settings.auth == "required"
        self.credentials = Credentials(store, ttl=settings.credential_cache_ttl)
        self.oidc = (
            OidcVerifier(
                settings.oidc_issuers,
                leeway=settings.jwt_leeway,
                refresh_interval=settings.jwks_refresh_interval,
                cache_size=settings.jwt_cache_size,
            )
            if settings.oidc_issuers and self.required
            else None
        )
        self.authenticator = Authenticator(settings, self.credentials, self.oidc)
        self.audit = AuditLog(store, retention=settings.audit_retention)

    async def audit_records(self, principal: Principal, query: AuditQuery) -> list[AuditRecord]:
        """One page of the audit log for an admin (``admin_scope``)."""
        require_scope(principal, self.settings.admin_scope, "reading the audit log")
        return await self.store.audit(query)

    def resource_metadata(self, scope: Any) -> dict[str, Any]:
        """OAuth 2.0 Protected Resource Metadata (RFC 9728) of ``/mcp``: what MCP clients discover from a
        401 to find where to get a token, and which audience (RFC 8707) to ask it for."""
        base = base_url(scope, self.settings.public_url)
        servers = self.settings.mcp_authorization_servers or [i.issuer for i in self.settings.oidc_issuers]
        return {
            "resource": base + "/mcp",
            "authorization_servers": servers,
            "bearer_methods_supported": ["header"],
            "resource_name": "FastAgentic gateway",
        }

    def guard(self, app: Any) -> Any:
        """``app`` behind the access edge; as it is when nobody authenticates."""
        if not self.required:
            return app
        return AccessEdge(app, self.authenticator, self.audit, self.settings.public_url)

    async def start(self) -> None:
        if not self.required:
            log.warning(
                'auth = "none": nobody authenticates and every caller may do everything. '
                "Only for local development; never expose this gateway."
            )
            return
        self.credentials.start()
        self.audit.start()
        if self.oidc is not None:
            await self.oidc.start()

    async def close(self) -> None:
        if not self.required:
            return
        if self.oidc is not None:
            await self.oidc.close()
        await self.credentials.close()
        await self.audit.close()


__all__ = ["Gate"]
