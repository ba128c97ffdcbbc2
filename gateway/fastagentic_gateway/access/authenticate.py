"""Authenticator: a request's credentials to a Principal, the same way for every front.

Accepted: ``Authorization: Bearer fa_key_…`` or ``X-API-Key: fa_key_…`` (API keys from the store), and
``Authorization: Bearer <JWT>`` from one of ``oidc_issuers``. With ``auth = "none"`` every caller is the
unrestricted ANONYMOUS principal and credentials are not looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import Unauthenticated, Unavailable
from ..settings import Settings
from .keys import CredentialRejected, Credentials, looks_like_ours
from .model import CredentialKind
from .oidc import KeysUnavailable, OidcVerifier, TokenRejected
from .principal import ANONYMOUS, Principal, Via

_AUTHORIZATION = b"authorization"
_API_KEY = b"x-api-key"
MAX_HEADER = 16_384
#: Principals remembered per verified credential (Authenticator._principals).
MAX_PRINCIPALS = 10_000

#: A visitor of a public route (health, cards, metadata) who presented no valid credential.
VISITOR = Principal(subject="", tenant="")


class Presented:
    """The credential a request carries: its token, and the header it came in."""

    __slots__ = ("header", "token")

    def __init__(self, token: str, header: str) -> None:
        self.token = token
        self.header = header


def presented(headers: Iterable[tuple[bytes, bytes]]) -> Presented | None:
    """The request's credential, None when it has none. A malformed ``Authorization`` header (another
    scheme, no token, two of them) is Unauthenticated: guessing what was meant would be worse."""
    found: Presented | None = None
    for name, value in headers:
        if name != _AUTHORIZATION and name != _API_KEY:
            continue
        if found is not None:
            raise Unauthenticated(
                "send one credential: Authorization or X-API-Key, once", challenge=_invalid()
            )
        if len(value) > MAX_HEADER:
            raise Unauthenticated("the credential is too large", challenge=_invalid())
        text = value.decode("latin-1").strip()
        if name == _API_KEY:
            if not text:
                raise Unauthenticated("X-API-Key is empty", challenge=_invalid())
            found = Presented(text, "X-API-Key")
            continue
        scheme, _, token = text.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Unauthenticated(
                "Authorization must be 'Bearer <token>' (an API key or a JWT)", challenge=_invalid()
            )
        found = Presented(token, "Authorization")
    return found


def _invalid(description: str = "") -> str:
    if not description:
        return 'Bearer error="invalid_token"'
    return f'Bearer error="invalid_token", error_description="{description}"'


class Authenticator:
    def __init__(
        self, settings: Settings, credentials: Credentials | None, oidc: OidcVerifier | None
    ) -> None:
        self.required = settings.auth == "required"
        self.credentials = credentials
        self.oidc = oidc
        self.roles: Mapping[str, list[str]] = settings.auth_roles
        self.retry_after = settings.retry_after
        # The principal made from a verified token or stored key, by the identity of that object: the
        # verifier and the key cache hand back the same object while it is valid, so a credential sent
        # again costs a dict lookup instead of a new Principal (its frozensets, its claims).
        self._principals: dict[int, tuple[object, Principal]] = {}

    async def authenticate(self, credential: Presented | None) -> Principal:
        """The principal behind ``credential``; Unauthenticated (401) when there is none or it does not
        verify, Unavailable (503) when the identity provider's keys cannot be fetched."""
        if not self.required:
            return ANONYMOUS
        if credential is None:
            raise Unauthenticated("authentication required: send an API key or a bearer token")
        token = credential.token
        if credential.header == "X-API-Key" or looks_like_ours(token):
            return await self._api_key(token)
        if self.oidc is None:
            raise Unauthenticated(
                "not an API key of this gateway, and no token issuer is configured", challenge=_invalid()
            )
        try:
            verified = await self.oidc.verify(token)
        except TokenRejected as exc:
            raise Unauthenticated(
                f"bearer token rejected: {exc.reason}", challenge=_invalid(exc.reason)
            ) from None
        except KeysUnavailable as exc:
            raise Unavailable(f"cannot verify the token now: {exc}", retry_after=self.retry_after) from None
        known = self._principals.get(id(verified))
        if known is not None and known[0] is verified:
            return known[1]
        return self._remember(
            verified,
            Principal(
                subject=verified.subject,
                tenant=verified.tenant,
                scopes=self._granted(verified.scopes, verified.roles),
                roles=verified.roles,
                via=Via.JWT,
                credential=verified.issuer,
                claims=verified.claims,
            ),
        )

    async def _api_key(self, token: str) -> Principal:
        if self.credentials is None:
            raise Unauthenticated("API keys are not accepted here", challenge=_invalid())
        try:
            key = await self.credentials.verify(token, CredentialKind.API_KEY)
        except CredentialRejected as exc:
            raise Unauthenticated(f"API key rejected: {exc.reason}", challenge=_invalid(exc.reason)) from None
        known = self._principals.get(id(key))
        if known is not None and known[0] is key:
            return known[1]
        roles = frozenset(key.roles)
        return self._remember(
            key,
            Principal(
                subject=key.id,
                tenant=key.tenant,
                scopes=self._granted(frozenset(key.scopes), roles),
                roles=roles,
                via=Via.API_KEY,
                credential=key.id,
                claims={"name": key.name},
            ),
        )

    def _remember(self, source: object, principal: Principal) -> Principal:
        if len(self._principals) >= MAX_PRINCIPALS:
            self._principals.clear()  # rare: as many live credentials as this; they are remade on use
        self._principals[id(source)] = (source, principal)
        return principal

    def _granted(self, scopes: frozenset[str], roles: frozenset[str]) -> frozenset[str]:
        if not roles:
            return scopes
        granted = set(scopes)
        for role in roles:
            granted.update(self.roles.get(role, ()))
        return frozenset(granted)


__all__ = ["VISITOR", "Authenticator", "Presented", "presented"]
