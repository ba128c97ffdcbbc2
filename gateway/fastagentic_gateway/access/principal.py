"""Principal: who is calling, as every front and every later stage of the pipeline sees it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import msgspec

from ..runs.model import Caller


class Via(enum.StrEnum):
    """How the principal proved who it is."""

    ANONYMOUS = "anonymous"  # auth = "none": every caller, unrestricted
    API_KEY = "api_key"
    JWT = "jwt"


class Principal(msgspec.Struct, kw_only=True, frozen=True):
    subject: str
    tenant: str
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    via: Via = Via.ANONYMOUS
    credential: str = ""  # the API key's id or the token's issuer: names the credential, never holds it
    claims: dict[str, Any] = msgspec.field(default_factory=dict)
    unrestricted: bool = False  # auth = "none": every scope is granted

    @property
    def caller(self) -> Caller:
        return Caller(principal=self.subject, tenant=self.tenant)

    def missing(self, required: Iterable[str]) -> list[str]:
        """The scopes of ``required`` this principal lacks (none when unrestricted)."""
        if self.unrestricted:
            return []
        return [scope for scope in required if scope not in self.scopes]


#: Every caller when authentication is off (``auth = "none"``): the tenant ``default``, every scope.
ANONYMOUS = Principal(subject="anonymous", tenant="default", unrestricted=True)

#: Where the access edge leaves the principal, and the request's id, in an ASGI scope.
SCOPE_KEY = "fastagentic.principal"
REQUEST_ID_KEY = "fastagentic.request_id"


def principal_of(scope: Any) -> Principal:
    """The principal the access edge authenticated for this request (ANONYMOUS when none ran: tests of a
    front alone, or auth = "none")."""
    principal: Principal | None = scope.get(SCOPE_KEY)  # an ASGI scope (a dict, or a TypedDict of one)
    return principal if principal is not None else ANONYMOUS


def request_id_of(scope: Any) -> str:
    """The request's id (its ``X-Request-ID``, or one the access edge made up); "" without the edge."""
    request_id: str = scope.get(REQUEST_ID_KEY, "")
    return request_id


__all__ = ["ANONYMOUS", "REQUEST_ID_KEY", "SCOPE_KEY", "Principal", "Via", "principal_of", "request_id_of"]
