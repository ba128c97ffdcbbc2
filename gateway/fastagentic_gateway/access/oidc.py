"""OidcVerifier: bearer JWTs of configured OpenID Connect / JWT issuers to verified identities.

Verification of one token:

1. Shape, read without trusting it: at most 16 KiB, a compact JWS (three canonical base64url parts, no
   padding, no stray bits), a JSON header with a string ``alg`` and an optional string ``kid`` and no ``crit``, a JSON payload with
   a string ``iss``. The header is read only for ``alg`` and ``kid``, the payload only for ``iss``, which
   picks the issuer (exact match; an unknown issuer is rejected).
2. Algorithm: never ``none``, never HMAC (``HS*``), and it must be in the issuer's allowlist
   (``IssuerConfig.algorithms``, asymmetric algorithms only, refused at construction otherwise).
3. Key: from the issuer's JWKS, cached as ``PyJWK`` objects, one per key and allowed algorithm the key's
   type supports (RSA: ``RS*``/``PS*``; EC: the ``ES*`` of its curve; OKP: ``EdDSA``), so the token's
   ``alg`` must match the key's type. Keys marked for encryption (``use: enc``, ``key_ops`` without
   ``verify``), symmetric (``oct``), private, or RSA keys under 2048 bits are skipped. A token without
   ``kid`` is accepted only when the issuer has exactly one usable key for its ``alg``.
4. The signature, by the key's PyJWT algorithm (``PyJWK.Algorithm.verify``: PyJWT's JWS crypto, EC
   signature conversion and RSA-PSS parameters included), before any claim is looked at.
5. The registered claims: ``exp``, ``iat``, ``iss``, ``aud`` and the subject claim required; ``exp``,
   ``iat`` and ``nbf`` finite numbers (not booleans) with ``leeway``: ``exp`` not past, ``iat`` and ``nbf``
   not in the future; ``iss`` exact; ``aud`` a string or a list of strings naming one of the issuer's
   ``audiences``; ``sub`` and ``jti``, when present, strings.
6. Claims map to a VerifiedToken: subject, tenant (a claim, or fixed per issuer, or the default),
   scopes (space-separated string or list), roles (list; dotted paths such as ``realm_access.roles``).

Keys are fetched at ``start()`` (discovery when ``jwks_url`` is empty) and cached per issuer. A token
whose ``kid`` is not cached triggers a refetch, at most one per issuer per ``refresh_interval``, and
concurrent ones share a single HTTP request, so a flood of made-up ``kid``s cannot hammer the identity
provider. Keys older than ``cache_ttl`` are refetched in the background; a failed fetch keeps the cached
keys. When the keys cannot be fetched and the token's key is not cached, ``KeysUnavailable`` (503)
rather than ``TokenRejected`` (401). A token whose key is cached is verified without I/O.

Exception texts and logs never contain the token.

Steps 1 and 5 are ours, not ``jwt.decode``'s: since PyJWT 2.14 its decoding checks each base64url
character in a Python loop (~70 us a token, three times the RSA signature check). ``tests/unit/
test_oidc.py`` holds a differential test that gives both the same tokens and expects the same verdicts.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from typing import Annotated, Any

import httpx
import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from msgspec import Meta

log = logging.getLogger("fastagentic.access")

#: Longest token accepted, in characters.
MAX_TOKEN = 16_384
#: Longest discovery document or JWKS accepted, in bytes.
MAX_DOCUMENT = 1_048_576
#: A tenant, from a claim or the configuration.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

#: The asymmetric JWS algorithms an issuer may allow.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA"}
)
# Every registered JWS algorithm name: only these are ever echoed in a rejection reason.
_KNOWN_ALGORITHMS = ASYMMETRIC_ALGORITHMS | {"none", "HS256", "HS384", "HS512", "Ed25519", "Ed448"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ACCEPT_JSON = {"Accept": "application/json"}
_decode_json = msgspec.json.Decoder().decode


def _doc(text: str) -> Meta:
    return Meta(description=text)


class IssuerConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One identity provider whose bearer tokens are accepted."""

    issuer: Annotated[str, _doc("The exact `iss` of its tokens.")]
    audiences: Annotated[list[str], _doc("Accepted `aud` values: a token must name one of them.")]
    jwks_url: Annotated[
        str, _doc("Its JWKS. Empty: the `jwks_uri` of `<issuer>/.well-known/openid-configuration`.")
    ] = ""
    algorithms: Annotated[
        list[str], _doc("Accepted signature algorithms; asymmetric only (RS*, PS*, ES*, EdDSA).")
    ] = msgspec.field(default_factory=lambda: ["RS256", "ES256"])
    tenant_claim: Annotated[str, _doc("Claim whose string value is the caller's tenant.")] = ""
    tenant: Annotated[
        str, _doc("Tenant of every token of this issuer when `tenant_claim` is empty (empty: the default).")
    ] = ""
    subject_claim: Annotated[str, _doc("Claim naming the caller.")] = "sub"
    scope_claims: Annotated[
        list[str], _doc("Claims holding scopes: a space-separated string or a list of strings.")
    ] = msgspec.field(default_factory=lambda: ["scope", "scp"])
    role_claims: Annotated[
        list[str], _doc("Claims holding roles, a list (dotted paths allowed: `realm_access.roles`).")
    ] = msgspec.field(default_factory=lambda: ["roles"])

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("issuer must not be empty")
        if not self.jwks_url and not self.issuer.startswith(("https://", "http://")):
            raise ValueError(
                f"issuer {self.issuer!r}: discovery needs an http(s) issuer URL; otherwise set jwks_url"
            )
        if self.jwks_url and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError(f"issuer {self.issuer!r}: jwks_url must be an http:// or https:// URL")
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise ValueError(f"issuer {self.issuer!r}: audiences must list at least one non-empty audience")
        if not self.algorithms:
            raise ValueError(f"issuer {self.issuer!r}: algorithms must not be empty")
        for alg in self.algorithms:
            if alg in ASYMMETRIC_ALGORITHMS:
                continue
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"issuer {self.issuer!r}: algorithm {alg!r} is not allowed: only asymmetric algorithms "
                    "(RS*, PS*, ES*, EdDSA) verify with an identity provider's public keys"
                )
            raise ValueError(
                f"issuer {self.issuer!r}: unknown algorithm {alg!r}; one of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
            )
        if self.tenant_claim and self.tenant:
            raise ValueError(f"issuer {self.issuer!r}: set tenant_claim or tenant, not both")
        if self.tenant and not TENANT_PATTERN.fullmatch(self.tenant):
            raise ValueError(
                f"issuer {self.issuer!r}: tenant must be 1-128 characters of letters, digits and _.:-"
            )
        if not self.subject_claim:
            raise ValueError(f"issuer {self.issuer!r}: subject_claim must not be empty")


class VerifiedToken(msgspec.Struct, frozen=True):
    issuer: str
    subject: str
    tenant: str
    scopes: frozenset[str]
    roles: frozenset[str]
    claims: dict[str, Any]
    expires_at: float


class TokenRejected(Exception):
    """The token does not verify (401). ``reason`` is short and safe to show: never the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """The issuer's keys cannot be fetched and the token's key is not cached (503, not 401)."""


class _FetchError(Exception):
    pass


class _Keys:
    """An issuer's usable keys, ready for lookups without allocation."""

    __slots__ = ("ambiguous", "by_kid", "count", "single")

    def __init__(self) -> None:
        self.by_kid: dict[str, dict[str, jwt.PyJWK]] = {}
        self.single: dict[str, jwt.PyJWK] = {}  # alg -> the only key for it (tokens without kid)
        self.ambiguous: set[str] = set()  # algs with several keys
        self.count = 0

    def add(self, kid: str | None, alg: str, key: jwt.PyJWK) -> None:
        if kid is not None:
            self.by_kid.setdefault(kid, {}).setdefault(alg, key)
        if alg in self.ambiguous:
            return
        if alg in self.single:
            del self.single[alg]
            self.ambiguous.add(alg)
        else:
            self.single[alg] = key


def _key_algorithms(jwk: dict[str, Any]) -> frozenset[str]:
    """The algorithms a JWK's type and curve can verify."""
    kty = jwk.get("kty")
    if kty == "RSA":
        return _RSA_ALGORITHMS
    if kty == "EC":
        alg = _EC_ALGORITHMS.get(jwk.get("crv", ""))
        return frozenset((alg,)) if alg else frozenset()
    if kty == "OKP" and jwk.get("crv") in _OKP_CURVES:
        return frozenset(("EdDSA",))
    return frozenset()


def parse_jwks(document: Any, algorithms: frozenset[str]) -> tuple[_Keys, int]:
    """The usable verification keys of a JWKS document, and how many of its entries were skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _FetchError("not a JWK set")
    keys = _Keys()
    skipped = 0
    for jwk in document["keys"]:
        usable = 0
        if isinstance(jwk, dict) and _verification_key(jwk):
            kid = jwk.get("kid")
            candidates = _key_algorithms(jwk) & algorithms
            declared = jwk.get("alg")
            if declared is not None:
                candidates = candidates & {declared}
            for alg in sorted(candidates):
                try:
                    key = jwt.PyJWK(jwk, algorithm=alg)
                except (jwt.PyJWTError, ValueError, TypeError):
                    continue
                if isinstance(key.key, RSAPublicKey) and key.key.key_size < 2048:
                    continue
                keys.add(kid, alg, key)
                usable += 1
        if usable:
            keys.count += 1
        else:
            skipped += 1
    return keys, skipped


def _verification_key(jwk: dict[str, Any]) -> bool:
    use = jwk.get("use")
    if use is not None and use != "sig":
        return False
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return False
    return not any(member in jwk for member in _PRIVATE_MEMBERS)


def _path(name: str) -> tuple[str, tuple[str, ...]]:
    return (name, tuple(name.split(".")) if "." in name else ())


def _claim(payload: dict[str, Any], path: tuple[str, tuple[str, ...]]) -> Any:
    """A claim by name, or by dotted path when no top-level claim has the dotted name (so namespaced
    claims such as ``https://example.com/tenant`` work as well as ``realm_access.roles``)."""
    name, parts = path
    value = payload.get(name)
    if value is not None or not parts:
        return value
    current: Any = payload
    for part in parts:
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


class _Issuer:
    """One issuer's configuration, prepared for the hot path, and its key cache."""

    def __init__(self, config: IssuerConfig, default_tenant: str) -> None:
        self.config = config
        self.issuer = config.issuer
        self.algorithms = frozenset(config.algorithms)
        self.audiences = list(config.audiences)
        self.jwks_url = config.jwks_url
        self.tenant = config.tenant or default_tenant
        self.tenant_claim = _path(config.tenant_claim) if config.tenant_claim else None
        self.subject_claim = _path(config.subject_claim)
        self.scope_claims = [_path(name) for name in config.scope_claims]
        self.role_claims = [_path(name) for name in config.role_claims]
        require = ["exp", "iat", "iss", "aud"]
        if "." not in config.subject_claim:
            require.append(config.subject_claim)
        self.required = tuple(require)
        self.audience_set = frozenset(config.audiences)
        self.keys = _Keys()
        self.loaded = False  # keys fetched at least once
        self.last_ok = False  # the latest fetch succeeded
        self.fetched_at = float("-inf")  # monotonic time of the latest successful fetch
        self.attempted_at = float("-inf")  # monotonic time of the latest fetch attempt
        self.inflight: asyncio.Task[None] | None = None


class OidcVerifier:
    """Verifies bearer JWTs of the configured issuers (see the module docstring). One per gateway
    process, used from its event loop: ``start()`` at startup, ``verify()`` per request, ``close()``."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        *,
        default_tenant: str = "default",
        leeway: float = 60.0,
        refresh_interval: float = 30.0,
        cache_ttl: float = 3600.0,
        http: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        cache_size: int = 0,
    ) -> None:
        if not issuers:
            raise ValueError("OidcVerifier needs at least one issuer")
        if not TENANT_PATTERN.fullmatch(default_tenant):
            raise ValueError("default_tenant must be 1-128 characters of letters, digits and _.:-")
        if not 0 <= leeway <= 600:
            raise ValueError("leeway must be between 0 and 600 seconds")
        if refresh_interval < 0 or cache_ttl <= 0 or timeout <= 0:
            raise ValueError("refresh_interval must be >= 0, cache_ttl and timeout > 0")
        self._issuers: dict[str, _Issuer] = {}
        for config in issuers:
            if config.issuer in self._issuers:
                raise ValueError(f"issuer {config.issuer!r} is configured twice")
            self._issuers[config.issuer] = _Issuer(config, default_tenant)
        self._leeway = leeway
        self._refresh_interval = refresh_interval
        self._cache_ttl = cache_ttl
        self._timeout = timeout
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        #: Tokens whose signature verified, with what they proved (at most ``cache_size``; 0: none). A
        #: client sends one token many times: its signature is checked once, its time claims on every
        #: use, and the cache is emptied whenever an issuer's keys change.
        self._cache_size = cache_size
        self._verified: dict[str, VerifiedToken] = {}
        self._batch: list[tuple[_Parsed, jwt.PyJWK, _Issuer, asyncio.Future[dict[str, Any]]]] = []

    async def start(self) -> None:
        """Fetch the keys of every issuer. An issuer that cannot be reached is logged (one WARNING line)
        and retried when a token of it arrives."""
        loop = asyncio.get_running_loop()
        tasks = []
        for state in self._issuers.values():
            if state.inflight is None:
                state.inflight = loop.create_task(self._refresh(state))
            tasks.append(state.inflight)
        await asyncio.wait(tasks)

    async def close(self) -> None:
        tasks = [state.inflight for state in self._issuers.values() if state.inflight is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._own_http:
            await self._http.aclose()

    async def verify(self, token: str) -> VerifiedToken:
        """The identity a bearer token proves. TokenRejected (401) when it does not verify,
        KeysUnavailable (503) when the issuer's keys are needed and cannot be fetched."""
        if self._cache_size:
            known = self._verified.get(token)
            if known is not None:
                if time.time() <= known.expires_at + self._leeway:
                    return known
                del self._verified[token]
        parsed = _parse(token)
        state = self._issuers.get(parsed.iss)
        if state is None:
            raise TokenRejected("unknown issuer")
        alg = parsed.alg
        if alg not in state.algorithms:
            raise TokenRejected(_not_allowed(alg))
        key = _lookup(state.keys, parsed.kid, alg)
        if key is None:
            key = await self._lookup_fetching(state, parsed.kid, alg)
        elif time.monotonic() - state.fetched_at >= self._cache_ttl:
            self._refresh_maybe(state)
        payload = await self._checked_in_batch(parsed, key, state)
        verified = _verified(state, payload)
        if self._cache_size:
            if len(self._verified) >= self._cache_size:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = verified
        return verified

    def _checked_in_batch(
        self, parsed: _Parsed, key: jwt.PyJWK, state: _Issuer
    ) -> asyncio.Future[dict[str, Any]]:
        """``_checked``, run with the other tokens that arrive in the same turn of the event loop, back to
        back at its next turn: a signature check alone among the rest of a request's work runs with cold
        caches, about twice as slow as one right after another."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._check_batch)
        self._batch.append((parsed, key, state, future))
        return future

    def _check_batch(self) -> None:
        batch, self._batch = self._batch, []
        leeway = self._leeway
        for parsed, key, state, future in batch:
            if future.done():
                continue
            try:
                future.set_result(_checked(parsed, key, state, leeway))
            except TokenRejected as exc:
                future.set_exception(exc)

    # keys

    async def _lookup_fetching(self, state: _Issuer, kid: str | None, alg: str) -> jwt.PyJWK:
        task = self._refresh_maybe(state)
        if task is not None:
            # asyncio.wait: a caller that goes away does not cancel the fetch the others wait for.
            await asyncio.wait((task,))
        key = _lookup(state.keys, kid, alg)
        if key is not None:
            return key
        if not state.last_ok:
            raise KeysUnavailable(f"the keys of issuer {state.issuer} cannot be fetched")
        raise TokenRejected("no key of the issuer matches the token")

    def _refresh_maybe(self, state: _Issuer) -> asyncio.Task[None] | None:
        """The fetch of the issuer's keys under way, or a new one when the last is old enough."""
        if state.inflight is None and time.monotonic() - state.attempted_at >= self._refresh_interval:
            state.inflight = asyncio.get_running_loop().create_task(self._refresh(state))
        return state.inflight

    async def _refresh(self, state: _Issuer) -> None:
        """Fetch the issuer's keys (run as ``state.inflight``, which waiters share); never raises."""
        try:
            await self._fetch(state)
        finally:
            state.inflight = None

    async def _fetch(self, state: _Issuer) -> None:
        state.attempted_at = time.monotonic()
        try:
            if not state.jwks_url:
                state.jwks_url = await self._discover(state)
            keys, skipped = parse_jwks(await self._get_json(state.jwks_url), state.algorithms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.last_ok = False
            if not state.loaded:
                log.warning(
                    "OIDC issuer %s: cannot fetch its keys (%s); its tokens are answered 503 until they "
                    "can be fetched (retried on demand)",
                    state.issuer,
                    _one_line(exc),
                )
            else:
                log.warning(
                    "OIDC issuer %s: cannot refresh its keys (%s); keeping the %d cached",
                    state.issuer,
                    _one_line(exc),
                    state.keys.count,
                )
            return
        state.keys = keys
        self._verified.clear()  # a retired key must not leave tokens it signed verified
        state.loaded = state.last_ok = True
        state.fetched_at = time.monotonic()
        if not keys.count:
            log.warning(
                "OIDC issuer %s: its JWKS has no usable key for %s", state.issuer, sorted(state.algorithms)
            )
        elif skipped:
            log.debug("OIDC issuer %s: %d keys, %d skipped (unusable)", state.issuer, keys.count, skipped)

    async def _discover(self, state: _Issuer) -> str:
        url = state.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url)
        if not isinstance(document, dict):
            raise _FetchError(f"{url}: not a discovery document")
        if document.get("issuer") != state.issuer:
            raise _FetchError(f"{url}: the document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise _FetchError(f"{url}: no http(s) jwks_uri")
        return jwks_uri

    async def _get_json(self, url: str) -> Any:
        body = bytearray()
        async with (
            asyncio.timeout(self._timeout),
            self._http.stream(
                "GET", url, headers=_ACCEPT_JSON, timeout=self._timeout, follow_redirects=True
            ) as response,
        ):
            if response.status_code != 200:
                raise _FetchError(f"{url} answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT:
                    raise _FetchError(f"{url}: larger than {MAX_DOCUMENT} bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise _FetchError(f"{url}: not JSON") from None


class _Parsed:
    """A compact JWS, decoded but not verified."""

    __slots__ = ("alg", "iss", "kid", "payload", "signature", "signing_input")

    def __init__(
        self,
        alg: str,
        kid: str | None,
        iss: str,
        payload: dict[str, Any],
        signing_input: bytes,
        signature: bytes,
    ) -> None:
        self.alg = alg
        self.kid = kid
        self.iss = iss
        self.payload = payload
        self.signing_input = signing_input
        self.signature = signature


def _parse(token: str) -> _Parsed:
    """A token's header and payload, read without verifying it: strict compact JWS (RFC 7515 s7.1)."""
    if len(token) > MAX_TOKEN:
        raise TokenRejected("token too large")
    if not _COMPACT_JWS.fullmatch(token):
        raise TokenRejected("malformed token: not a compact JWS")
    first = token.index(".")
    second = token.index(".", first + 1)
    data = token.encode("ascii")
    standard = data.translate(_TO_STANDARD)  # base64url to base64, once for the three segments
    header = _json_segment(token, standard, 0, first)
    alg = header.get("alg")
    kid = header.get("kid")
    if not isinstance(alg, str) or not (kid is None or isinstance(kid, str)):
        raise TokenRejected("malformed token header")
    if "crit" in header:
        raise TokenRejected("token has critical header parameters")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise TokenRejected(_not_allowed(alg))
    payload = _json_segment(token, standard, first + 1, second)
    iss = payload.get("iss")
    if not isinstance(iss, str):
        raise TokenRejected("token has no issuer")
    signature = _segment_bytes(token, standard, second + 1, len(token))
    return _Parsed(alg, kid, iss, payload, data[:second], signature)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# The characters that may end a segment of length 2 or 3 mod 4: those whose unused low bits are zero.
_LAST = {2: frozenset(_B64URL[::16]), 3: frozenset(_B64URL[::4])}
_PADDING = (b"", b"", b"==", b"=")


def _segment_bytes(token: str, standard: bytes, start: int, end: int) -> bytes:
    """The bytes of the base64url segment ``token[start:end]`` (``standard``: the token in the standard
    alphabet). The alphabet is already checked (``_COMPACT_JWS``); a segment must also be canonical: no
    length of 1 mod 4, no stray bits in its last character, so one token has exactly one spelling."""
    tail = (end - start) % 4
    if tail == 1 or (tail and token[end - 1] not in _LAST[tail]):
        raise TokenRejected("malformed token")
    return binascii.a2b_base64(standard[start:end] + _PADDING[tail])


def _json_segment(token: str, standard: bytes, start: int, end: int) -> dict[str, Any]:
    try:
        value = _decode_json(_segment_bytes(token, standard, start, end))
    except (msgspec.DecodeError, RecursionError):
        raise TokenRejected("malformed token") from None
    if not isinstance(value, dict):
        raise TokenRejected("malformed token")
    return value


def _checked(parsed: _Parsed, key: jwt.PyJWK, state: _Issuer, leeway: float) -> dict[str, Any]:
    """The payload of a token whose signature ``key`` verifies and whose registered claims (RFC 7519
    s4.1) hold: the signature first, so nothing about the claims of a forged token is told."""
    try:
        good = key.Algorithm.verify(parsed.signing_input, key.key, parsed.signature)
    except (jwt.PyJWTError, ValueError, TypeError):
        good = False
    if not good:
        raise TokenRejected("signature does not verify")
    payload = parsed.payload
    for name in state.required:
        if name not in payload:
            raise TokenRejected(f"token is missing the {name} claim")
    now = time.time()
    if _instant(payload, "exp") <= now - leeway:
        raise TokenRejected("token expired")
    if _instant(payload, "iat") > now + leeway:
        raise TokenRejected("token issued in the future")
    if "nbf" in payload and _instant(payload, "nbf") > now + leeway:
        raise TokenRejected("token not yet valid")
    if parsed.iss != state.issuer:  # the issuer was looked up by it: a safeguard
        raise TokenRejected("issuer mismatch")
    audience = payload["aud"]
    if isinstance(audience, str):
        audience = (audience,)
    elif not isinstance(audience, list) or not all(isinstance(item, str) for item in audience):
        raise TokenRejected("malformed aud claim")
    if state.audience_set.isdisjoint(audience):
        raise TokenRejected("audience not accepted")
    for name in ("sub", "jti"):
        if name in payload and not isinstance(payload[name], str):
            raise TokenRejected(f"malformed {name} claim")
    return payload


def _instant(payload: dict[str, Any], name: str) -> float:
    """A NumericDate claim (seconds since the epoch): a finite JSON number, not a boolean."""
    value = payload[name]
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value
    raise TokenRejected(f"malformed {name} claim")


def _lookup(keys: _Keys, kid: str | None, alg: str) -> jwt.PyJWK | None:
    if kid is None:
        key = keys.single.get(alg)
        if key is None and alg in keys.ambiguous:
            raise TokenRejected("token has no kid and the issuer has several keys")
        return key
    by_alg = keys.by_kid.get(kid)
    if by_alg is None:
        return None
    key = by_alg.get(alg)
    if key is None:
        raise TokenRejected(f"algorithm {alg} does not match the key")
    return key


def _not_allowed(alg: str) -> str:
    return f"algorithm {alg} is not allowed" if alg in _KNOWN_ALGORITHMS else "algorithm is not allowed"


def _verified(state: _Issuer, payload: dict[str, Any]) -> VerifiedToken:
    subject = _claim(payload, state.subject_claim)
    # Stored with every run the principal starts: text a database column holds, of a sane length.
    if not isinstance(subject, str) or not subject or len(subject) > 512 or "\x00" in subject:
        raise TokenRejected(f"subject claim {state.subject_claim[0]} is missing or malformed")
    if state.tenant_claim is None:
        tenant = state.tenant
    else:
        value = _claim(payload, state.tenant_claim)
        if not isinstance(value, str) or not TENANT_PATTERN.fullmatch(value):
            raise TokenRejected(f"tenant claim {state.tenant_claim[0]} is missing or malformed")
        tenant = value
    scopes: set[str] = set()
    for path in state.scope_claims:
        value = _claim(payload, path)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(item for item in value if isinstance(item, str) and item)
    roles: set[str] = set()
    for path in state.role_claims:
        value = _claim(payload, path)
        if isinstance(value, str):
            if value:
                roles.add(value)
        elif isinstance(value, list):
            roles.update(item for item in value if isinstance(item, str) and item)
    try:
        expires_at = float(payload["exp"])
    except (TypeError, ValueError, OverflowError):
        raise TokenRejected("malformed exp claim") from None
    return VerifiedToken(
        issuer=state.issuer,
        subject=subject,
        tenant=tenant,
        scopes=frozenset(scopes),
        roles=frozenset(roles),
        claims=payload,
        expires_at=expires_at,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


__all__ = ["IssuerConfig", "KeysUnavailable", "OidcVerifier", "TokenRejected", "VerifiedToken"]
