"""OidcVerifier against a real local identity provider (tests/idp.py): keys, discovery, rotation, outages,
every rejection rule, and the claim mapping."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fastagentic_gateway.access import oidc
from fastagentic_gateway.access.oidc import (
    MAX_TOKEN,
    IssuerConfig,
    KeysUnavailable,
    OidcVerifier,
    TokenRejected,
    VerifiedToken,
)
from tests.idp import LocalIdP, b64url, generate_key

Make = Callable[..., Awaitable[OidcVerifier]]


@pytest.fixture
def idp() -> Iterator[LocalIdP]:
    with LocalIdP() as server:
        yield server


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Builds (and by default starts) verifiers, closed after the test."""
    made: list[OidcVerifier] = []

    async def build(*configs: IssuerConfig, start: bool = True, **options: Any) -> OidcVerifier:
        verifier = OidcVerifier(list(configs), **options)
        made.append(verifier)
        if start:
            await verifier.start()
        return verifier

    yield build
    for verifier in made:
        await verifier.close()


def config(idp: LocalIdP, **fields: Any) -> IssuerConfig:
    return IssuerConfig(issuer=idp.issuer, audiences=[idp.audience], **fields)


async def rejected(verifier: OidcVerifier, token: str) -> str:
    """The reason the verifier rejects a token; it never contains the token."""
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token)
    reason: str = info.value.reason
    assert reason and str(info.value) == reason
    if token:
        assert token not in reason
    assert '"' not in reason and "\n" not in reason  # safe in a WWW-Authenticate error_description
    return reason


# valid tokens


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_token(idp: LocalIdP, make: Make, alg: str) -> None:
    verifier = await make(config(idp))
    token = idp.token(alg=alg, sub="alice", scope="runs:read runs:write")
    verified = await verifier.verify(token)
    assert isinstance(verified, VerifiedToken)
    assert verified.issuer == idp.issuer
    assert verified.subject == "alice"
    assert verified.tenant == "default"
    assert verified.scopes == {"runs:read", "runs:write"}
    assert verified.roles == frozenset()
    assert verified.claims["sub"] == "alice"
    assert verified.expires_at == float(verified.claims["exp"])


async def test_eddsa_and_ps256_when_allowed(make: Make) -> None:
    with LocalIdP(algorithms=("EdDSA", "PS256")) as idp:
        verifier = await make(config(idp, algorithms=["EdDSA", "PS256"]))
        assert (await verifier.verify(idp.token(alg="EdDSA"))).subject == "user-1"
        assert (await verifier.verify(idp.token(alg="PS256"))).subject == "user-1"


async def test_discovery(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    assert idp.discovery_fetches == 1
    assert idp.jwks_fetches == 1
    await verifier.verify(idp.token())


async def test_discovery_with_an_issuer_path(make: Make) -> None:
    with LocalIdP(path="/realms/acme") as idp:
        assert idp.issuer.endswith("/realms/acme")
        verifier = await make(config(idp))
        await verifier.verify(idp.token())
        assert idp.discovery_fetches == 1


async def test_explicit_jwks_url_skips_discovery(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp, jwks_url=idp.jwks_url))
    await verifier.verify(idp.token())
    assert idp.discovery_fetches == 0
    assert idp.jwks_fetches == 1


async def test_discovery_document_of_another_issuer_is_refused(idp: LocalIdP, make: Make) -> None:
    # The configured issuer differs from the one the discovery document names (a trailing slash).
    other = IssuerConfig(issuer=idp.issuer + "/", audiences=[idp.audience], tenant="t")
    verifier = await make(other)
    assert idp.discovery_fetches == 1 and idp.jwks_fetches == 0
    with pytest.raises(KeysUnavailable):
        await verifier.verify(idp.token(iss=idp.issuer + "/"))


async def test_verify_before_start_fetches_lazily(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), start=False)
    assert idp.jwks_fetches == 0
    assert (await verifier.verify(idp.token())).subject == "user-1"
    assert idp.jwks_fetches == 1


# algorithms


async def test_alg_none_is_rejected(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    token = idp.token(alg="none", kid=idp.kid("RS256"))
    assert token.endswith(".")
    assert await rejected(verifier, token) == "malformed token: not a compact JWS"
    # the same with a non-empty (meaningless) signature part
    assert await rejected(verifier, token + "AAAA") == "algorithm none is not allowed"


async def test_hs256_signed_with_the_public_key_is_rejected(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp, algorithms=["RS256", "ES256"]))
    kid = idp.kid("RS256")
    for secret in (idp.public_pem(kid), json.dumps(idp.keys[kid].public_jwk).encode()):
        token = idp.token(alg="HS256", kid=kid, secret=secret)
        assert await rejected(verifier, token) == "algorithm HS256 is not allowed"
    # without a kid, too
    token = idp.token(alg="HS256", include_kid=False, secret=idp.public_pem(kid))
    assert await rejected(verifier, token) == "algorithm HS256 is not allowed"


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "hs384", "None", "RS257", ""])
def test_config_refuses_symmetric_none_and_unknown_algorithms(alg: str) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        IssuerConfig(issuer="https://idp.example", audiences=["api"], algorithms=["RS256", alg])
    with pytest.raises(msgspec.ValidationError, match="algorithm"):
        msgspec.convert(
            {"issuer": "https://idp.example", "audiences": ["api"], "algorithms": [alg]}, IssuerConfig
        )


def test_config_validation() -> None:
    good = msgspec.convert({"issuer": "https://idp.example", "audiences": ["api"]}, IssuerConfig)
    assert good.algorithms == ["RS256", "ES256"]
    assert good.scope_claims == ["scope", "scp"] and good.role_claims == ["roles"]
    bad: list[dict[str, Any]] = [
        {"issuer": "https://idp.example", "audiences": []},
        {"issuer": "https://idp.example", "audiences": [""]},
        {"issuer": "", "audiences": ["api"]},
        {"issuer": "not-a-url", "audiences": ["api"]},  # discovery needs a URL
        {"issuer": "https://idp.example", "audiences": ["api"], "algorithms": []},
        {"issuer": "https://idp.example", "audiences": ["api"], "tenant": "a", "tenant_claim": "tid"},
        {"issuer": "https://idp.example", "audiences": ["api"], "tenant": "no spaces"},
        {"issuer": "https://idp.example", "audiences": ["api"], "jwks_url": "file:///etc/passwd"},
        {"issuer": "https://idp.example", "audiences": ["api"], "subject_claim": ""},
    ]
    for fields in bad:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(fields, IssuerConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert(
            {"issuer": "https://idp.example", "audiences": ["api"], "audience": "x"}, IssuerConfig
        )
    # an issuer that is not a URL is fine with an explicit jwks_url
    IssuerConfig(issuer="my-service", audiences=["api"], jwks_url="https://keys.example/jwks.json")


def test_verifier_validation() -> None:
    issuer = IssuerConfig(issuer="https://idp.example", audiences=["api"])
    with pytest.raises(ValueError, match="at least one"):
        OidcVerifier([])
    with pytest.raises(ValueError, match="twice"):
        OidcVerifier([issuer, issuer])
    with pytest.raises(ValueError, match="leeway"):
        OidcVerifier([issuer], leeway=3600)
    with pytest.raises(ValueError, match="default_tenant"):
        OidcVerifier([issuer], default_tenant="")


async def test_alg_not_in_allowlist(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp, algorithms=["ES256"]))
    assert await rejected(verifier, idp.token(alg="RS256")) == "algorithm RS256 is not allowed"
    assert (await verifier.verify(idp.token(alg="ES256"))).subject == "user-1"


async def test_alg_must_match_the_key_type(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp, algorithms=["RS256", "PS256", "ES256"]))
    rsa_kid, ec_kid = idp.kid("RS256"), idp.kid("ES256")
    # PS256 with the RSA key, whose JWK declares alg RS256
    rsa_key = idp.keys[rsa_kid].private_key
    payload = idp.claims()
    token = jwt.encode(payload, rsa_key, algorithm="PS256", headers={"kid": rsa_kid})
    assert await rejected(verifier, token) == "algorithm PS256 does not match the key"
    # ES256 in the header, the kid of the RSA key
    ec_key = idp.keys[ec_kid].private_key
    token = jwt.encode(payload, ec_key, algorithm="ES256", headers={"kid": rsa_kid})
    assert await rejected(verifier, token) == "algorithm ES256 does not match the key"
    # RS256 in the header, the kid of the EC key
    token = jwt.encode(payload, rsa_key, algorithm="RS256", headers={"kid": ec_kid})
    assert await rejected(verifier, token) == "algorithm RS256 does not match the key"


async def test_jwk_without_alg_serves_every_allowed_alg_of_its_type(make: Make) -> None:
    with LocalIdP(algorithms=("RS256",)) as idp:
        kid = idp.kid("RS256")
        jwk = idp.keys[kid].public_jwk
        del jwk["alg"]
        idp.publish(kid, False)
        idp.extra_jwks.append(jwk)
        verifier = await make(config(idp, algorithms=["RS256", "PS256"]))
        for alg in ("RS256", "PS256"):
            token = jwt.encode(idp.claims(), idp.keys[kid].private_key, algorithm=alg, headers={"kid": kid})
            assert (await verifier.verify(token)).subject == "user-1"


# time claims


async def test_expired(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), leeway=60)
    assert await rejected(verifier, idp.token(exp_in=-120, iat_in=-600)) == "token expired"
    assert (await verifier.verify(idp.token(exp_in=-30, iat_in=-600))).subject == "user-1"  # within leeway


async def test_not_yet_valid(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), leeway=60)
    assert await rejected(verifier, idp.token(nbf_in=300)) == "token not yet valid"
    assert (await verifier.verify(idp.token(nbf_in=30))).subject == "user-1"


async def test_issued_in_the_future(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), leeway=60)
    assert await rejected(verifier, idp.token(iat_in=300, exp_in=900)) == "token issued in the future"
    assert (await verifier.verify(idp.token(iat_in=30))).subject == "user-1"


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "sub"])
async def test_required_claims(idp: LocalIdP, make: Make, claim: str) -> None:
    verifier = await make(config(idp))
    assert await rejected(verifier, idp.token(omit=[claim])) == f"token is missing the {claim} claim"


async def test_malformed_time_claims(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    assert await rejected(verifier, idp.token(exp="soon")) == "malformed exp claim"
    assert await rejected(verifier, idp.token(iat="now")) == "malformed iat claim"


# issuer and audience


async def test_wrong_issuer(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    assert await rejected(verifier, idp.token(iss="https://evil.example")) == "unknown issuer"
    assert await rejected(verifier, idp.token(iss=idp.issuer + "/")) == "unknown issuer"
    assert await rejected(verifier, idp.token(iss=None, omit=["iss"])) == "token has no issuer"
    listed = f"{_segment({'alg': 'RS256', 'kid': idp.kid()})}.{_segment(idp.claims(iss=[idp.issuer]))}.abcd"
    assert await rejected(verifier, listed) == "token has no issuer"


async def test_audience(idp: LocalIdP, make: Make) -> None:
    verifier = await make(IssuerConfig(issuer=idp.issuer, audiences=["api-a", "api-b"]))
    assert await rejected(verifier, idp.token(aud="api-c")) == "audience not accepted"
    assert await rejected(verifier, idp.token(aud=["api-c", "api-d"])) == "audience not accepted"
    assert (await verifier.verify(idp.token(aud="api-b"))).subject == "user-1"
    assert (await verifier.verify(idp.token(aud=["api-c", "api-a"]))).subject == "user-1"


# keys: rotation, kid, refetch rate limit


async def test_unknown_kid_then_rotated_in(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), refresh_interval=0.3)
    assert idp.jwks_fetches == 1
    new_kid = idp.rotate("RS256")
    token = idp.token(kid=new_kid)
    # within refresh_interval of the last fetch: no refetch, the kid is unknown
    assert await rejected(verifier, token) == "no key of the issuer matches the token"
    assert idp.jwks_fetches == 1
    await asyncio.sleep(0.35)
    assert (await verifier.verify(token)).subject == "user-1"
    assert idp.jwks_fetches == 2
    # the older key still works (still published), without another fetch
    assert (await verifier.verify(idp.token(kid=idp.kid("ES256")))).subject == "user-1"
    assert idp.jwks_fetches == 2


async def test_unknown_kid_flood_is_rate_limited_and_coalesced(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), refresh_interval=0.3)
    await asyncio.sleep(0.35)
    idp.delay = 0.2  # a slow IdP: the requests overlap the fetch under way
    before = idp.jwks_fetches
    tokens = [idp.token(kid=secrets.token_hex(8)) for _ in range(200)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, TokenRejected) for r in results)
    assert idp.jwks_fetches - before == 1
    # and again at once: rate limited, no fetch at all
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, TokenRejected) for r in results)
    assert idp.jwks_fetches - before == 1


async def test_token_without_kid(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), refresh_interval=0.1)
    # one RSA key and one EC key: each alg has exactly one key
    assert (await verifier.verify(idp.token(alg="RS256", include_kid=False))).subject == "user-1"
    assert (await verifier.verify(idp.token(alg="ES256", include_kid=False))).subject == "user-1"
    idp.rotate("RS256")
    await asyncio.sleep(0.15)
    await verifier.verify(idp.token(kid=idp.kid("RS256")))  # fetches the second RSA key
    token = idp.token(alg="RS256", include_kid=False)
    assert await rejected(verifier, token) == "token has no kid and the issuer has several keys"
    assert (await verifier.verify(idp.token(alg="ES256", include_kid=False))).subject == "user-1"


async def test_unusable_keys_are_skipped(make: Make) -> None:
    with LocalIdP(algorithms=("RS256",)) as idp:
        enc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(enc_key.public_key(), as_dict=True)
        enc = {**public, "kid": "enc-1"}
        ops = {**public, "kid": "ops-1"}
        private = {**jwt.algorithms.RSAAlgorithm.to_jwk(enc_key, as_dict=True), "kid": "private-1"}
        idp.extra_jwks += [
            {**enc, "use": "enc"},
            {**ops, "key_ops": ["encrypt"]},
            private,
            {"kty": "oct", "kid": "hmac-1", "k": b64url(b"0123456789abcdef0123456789abcdef")},
            {"kty": "EC", "crv": "P-999", "kid": "bad-curve", "x": "AA", "y": "AA"},
            {"kid": "no-kty"},
            "not an object",
        ]
        verifier = await make(config(idp))
        for kid in ("enc-1", "ops-1", "private-1"):
            token = jwt.encode(idp.claims(), enc_key, algorithm="RS256", headers={"kid": kid})
            assert await rejected(verifier, token) == "no key of the issuer matches the token"
        token = idp.token(alg="HS256", kid="hmac-1", secret=b"0123456789abcdef0123456789abcdef")
        assert await rejected(verifier, token) == "algorithm HS256 is not allowed"
        # the usable key works, also without a kid (it is the only usable RSA key)
        assert (await verifier.verify(idp.token())).subject == "user-1"
        assert (await verifier.verify(idp.token(include_kid=False))).subject == "user-1"


async def test_cached_key_verification_does_no_io_and_builds_no_keys(
    idp: LocalIdP, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = await make(config(idp))
    fetches = idp.jwks_fetches

    def no_keys(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a PyJWK was built on the hot path")

    monkeypatch.setattr(jwt.PyJWK, "__init__", no_keys)
    tokens = [idp.token(alg="RS256"), idp.token(alg="ES256"), idp.token(include_kid=False)]
    idp.down("refuse")  # any I/O would now fail
    for _ in range(50):
        for token in tokens:
            await verifier.verify(token)
    assert idp.jwks_fetches == fetches


async def test_keys_are_refreshed_in_the_background_after_cache_ttl(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), cache_ttl=0.3, refresh_interval=0.2)
    old_kid = idp.kid("RS256")
    old_token = idp.token(kid=old_kid)
    idp.rotate("RS256", retire=[old_kid])
    await asyncio.sleep(0.35)
    # still cached: verifies, and starts a background refresh
    assert (await verifier.verify(old_token)).subject == "user-1"
    assert idp.jwks_fetches == 1
    # the retired key is gone once the refresh is done
    for _ in range(200):
        try:
            await verifier.verify(old_token)
        except TokenRejected as exc:
            assert exc.reason == "no key of the issuer matches the token"
            break
        await asyncio.sleep(0.005)
    else:
        raise AssertionError("the retired key still verifies")
    assert idp.jwks_fetches == 2
    # the new key is there without a further fetch
    assert (await verifier.verify(idp.token(kid=idp.kid("RS256")))).subject == "user-1"
    assert idp.jwks_fetches == 2


# outages


async def test_idp_down_at_start_then_up(idp: LocalIdP, make: Make, caplog: pytest.LogCaptureFixture) -> None:
    idp.down("refuse")
    with caplog.at_level(logging.WARNING, logger="fastagentic.access"):
        verifier = await make(config(idp), refresh_interval=0.2, timeout=1.0)
    warnings = [r for r in caplog.records if r.name == "fastagentic.access" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert idp.issuer in message and "\n" not in message
    token = idp.token()
    with pytest.raises(KeysUnavailable):
        await verifier.verify(token)
    idp.up()
    # rate limited: still unavailable until refresh_interval has passed since the last attempt
    await asyncio.sleep(0.25)
    assert (await verifier.verify(token)).subject == "user-1"


async def test_idp_answering_503_at_start(idp: LocalIdP, make: Make) -> None:
    idp.down("503")
    verifier = await make(config(idp), refresh_interval=0.1)
    with pytest.raises(KeysUnavailable):
        await verifier.verify(idp.token())
    idp.up()
    await asyncio.sleep(0.15)
    assert (await verifier.verify(idp.token())).subject == "user-1"


@pytest.mark.parametrize("mode", ["503", "refuse"])
async def test_idp_down_with_cached_keys_still_verifies(
    idp: LocalIdP, make: Make, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    verifier = await make(config(idp), cache_ttl=0.1, refresh_interval=0.05, timeout=1.0)
    token = idp.token()
    idp.down(mode)
    await asyncio.sleep(0.15)
    with caplog.at_level(logging.WARNING, logger="fastagentic.access"):
        for _ in range(5):
            assert (await verifier.verify(token)).subject == "user-1"  # starts background refreshes
            await asyncio.sleep(0.06)
    assert any("cannot refresh its keys" in r.getMessage() for r in caplog.records)
    assert (await verifier.verify(token)).subject == "user-1"


@pytest.mark.parametrize("mode", ["503", "refuse"])
async def test_idp_down_with_unknown_kid_is_unavailable(idp: LocalIdP, make: Make, mode: str) -> None:
    verifier = await make(config(idp), refresh_interval=0.05, timeout=1.0)
    idp.down(mode)
    await asyncio.sleep(0.06)
    token = idp.token(kid="not-cached")
    with pytest.raises(KeysUnavailable) as info:
        await verifier.verify(token)
    assert token not in str(info.value)
    # within refresh_interval of the failed attempt: still unavailable (no new fetch)
    with pytest.raises(KeysUnavailable):
        await verifier.verify(token)
    # a token whose key is cached is unaffected
    assert (await verifier.verify(idp.token())).subject == "user-1"


# malformed tokens


async def test_tampered_payload(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    for alg in ("RS256", "ES256"):
        header, payload, signature = idp.token(alg=alg, sub="alice").split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["sub"] = "admin"
        forged = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
        assert await rejected(verifier, forged) == "signature does not verify"
        # the first character changes (the last one carries unused bits: a change there may make the
        # segment non-canonical, which is refused as malformed before any signature check)
        flipped = ("B" if signature[0] != "B" else "C") + signature[1:]
        assert await rejected(verifier, f"{header}.{payload}.{flipped}") == "signature does not verify"


def _segment(value: Any) -> str:
    return b64url(json.dumps(value).encode())


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed token: not a compact JWS"),
        ("garbage", "malformed token: not a compact JWS"),
        ("a.b", "malformed token: not a compact JWS"),
        ("a.b.c.d", "malformed token: not a compact JWS"),
        ("a.b.c.d.e", "malformed token: not a compact JWS"),
        ("a..c", "malformed token: not a compact JWS"),
        ("eyJ=.eyJ.c", "malformed token: not a compact JWS"),
        ("a b.c.d", "malformed token: not a compact JWS"),
        ("é.b.c", "malformed token: not a compact JWS"),
        ("abcde.abcd.abcd", "malformed token"),  # not base64 (length 5)
        ("abcd.abcd.abcd", "malformed token"),  # base64 but not JSON
        (f"{_segment([1, 2])}.{_segment({})}.abcd", "malformed token"),
        (f"{_segment({'alg': 'RS256'})}.{_segment('x')}.abcd", "malformed token"),
        (f"{_segment({'alg': 5})}.{_segment({})}.abcd", "malformed token header"),
        (f"{_segment({'kid': 'k'})}.{_segment({})}.abcd", "malformed token header"),
        (f"{_segment({'alg': 'RS256', 'kid': 5})}.{_segment({})}.abcd", "malformed token header"),
        (
            f"{_segment({'alg': 'RS256', 'crit': ['b64'], 'b64': False})}.{_segment({})}.abcd",
            "token has critical header parameters",
        ),
        (f"{_segment({'alg': 'XX999'})}.{_segment({})}.abcd", "algorithm is not allowed"),
        (f"{_segment({'alg': 'RS256'})}.{_segment({})}.abcd", "token has no issuer"),
    ],
)
async def test_garbage_tokens(idp: LocalIdP, make: Make, token: str, reason: str) -> None:
    verifier = await make(config(idp))
    assert await rejected(verifier, token) == reason


async def test_truncated_tokens(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    token = idp.token()
    for cut in (1, 10, len(token.split(".")[2]), len(token) // 2, len(token) - 5):
        await rejected(verifier, token[:-cut])


async def test_token_too_large(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    token = idp.token(padding="x" * MAX_TOKEN)
    assert len(token) > MAX_TOKEN
    assert await rejected(verifier, token) == "token too large"
    assert await rejected(verifier, "a" * 1_000_000) == "token too large"
    small = idp.token(padding="x" * 10_000)
    assert len(small) <= MAX_TOKEN
    assert (await verifier.verify(small)).subject == "user-1"


# claim mapping


async def test_subject(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    assert await rejected(verifier, idp.token(sub=None)) == "token is missing the sub claim"
    assert await rejected(verifier, idp.token(sub="")) == "subject claim sub is missing or malformed"
    assert await rejected(verifier, idp.token(sub=42)) == "malformed sub claim"
    email = await make(config(idp, subject_claim="email"))
    assert (await email.verify(idp.token(email="a@example.com"))).subject == "a@example.com"
    assert await rejected(email, idp.token()) == "token is missing the email claim"


async def test_tenant_claim(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp, tenant_claim="tenant"))
    assert (await verifier.verify(idp.token(tenant="acme-1:eu.west_2"))).tenant == "acme-1:eu.west_2"
    for bad in (None, "", "a b", "x" * 129, "acme/../x", "é"):
        reason = await rejected(verifier, idp.token(tenant=bad))
        assert reason == "tenant claim tenant is missing or malformed"
    for bad_value in (42, ["acme"], {"id": "acme"}):
        reason = await rejected(verifier, idp.token(tenant=bad_value))
        assert reason == "tenant claim tenant is missing or malformed"
    assert (await verifier.verify(idp.token(tenant="x" * 128))).tenant == "x" * 128


async def test_tenant_claim_namespaced_and_dotted(idp: LocalIdP, make: Make) -> None:
    namespaced = await make(config(idp, tenant_claim="https://example.com/tenant"))
    namespaced_claim: dict[str, Any] = {"https://example.com/tenant": "acme"}
    token = idp.token(**namespaced_claim)
    assert (await namespaced.verify(token)).tenant == "acme"
    dotted = await make(config(idp, tenant_claim="org.id"))
    assert (await dotted.verify(idp.token(org={"id": "acme"}))).tenant == "acme"
    assert await rejected(dotted, idp.token(org="acme")) == "tenant claim org.id is missing or malformed"


async def test_fixed_and_default_tenant(idp: LocalIdP, make: Make) -> None:
    fixed = await make(config(idp, tenant="acme"))
    assert (await fixed.verify(idp.token(tenant="other"))).tenant == "acme"  # the claim is not read
    default = await make(config(idp), default_tenant="main")
    assert (await default.verify(idp.token())).tenant == "main"


async def test_scopes_as_string_and_list(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    assert (await verifier.verify(idp.token(scope="a  b c"))).scopes == {"a", "b", "c"}
    assert (await verifier.verify(idp.token(scope=["a", "b"]))).scopes == {"a", "b"}
    assert (await verifier.verify(idp.token(scp=["x", "y"], scope="a"))).scopes == {"a", "x", "y"}
    assert (await verifier.verify(idp.token(scp="x y"))).scopes == {"x", "y"}
    assert (await verifier.verify(idp.token(scope=["a", 5, None, ""]))).scopes == {"a"}
    assert (await verifier.verify(idp.token())).scopes == frozenset()
    custom = await make(config(idp, scope_claims=["permissions"]))
    token = idp.token(permissions=["runs:read"], scope="ignored")
    assert (await custom.verify(token)).scopes == {"runs:read"}


async def test_roles_with_dotted_claim(idp: LocalIdP, make: Make) -> None:
    keycloak = await make(config(idp, role_claims=["realm_access.roles", "roles"]))
    token = idp.token(realm_access={"roles": ["admin", "dev"]}, roles=["ops"])
    assert (await keycloak.verify(token)).roles == {"admin", "dev", "ops"}
    assert (await keycloak.verify(idp.token(roles="ops"))).roles == {"ops"}
    assert (await keycloak.verify(idp.token(realm_access=["admin"]))).roles == frozenset()
    assert (await keycloak.verify(idp.token())).roles == frozenset()
    default = await make(config(idp))
    assert (await default.verify(idp.token(roles=["analyst"]))).roles == {"analyst"}


# several issuers


async def test_two_issuers(make: Make) -> None:
    with LocalIdP(audience="api") as one, LocalIdP(audience="api", algorithms=("ES256",)) as two:
        verifier = await make(
            IssuerConfig(issuer=one.issuer, audiences=["api"], tenant="one"),
            IssuerConfig(issuer=two.issuer, audiences=["api"], tenant_claim="tenant", algorithms=["ES256"]),
        )
        first = await verifier.verify(one.token(sub="alice"))
        assert (first.issuer, first.subject, first.tenant) == (one.issuer, "alice", "one")
        second = await verifier.verify(two.token(alg="ES256", sub="bob", tenant="two"))
        assert (second.issuer, second.subject, second.tenant) == (two.issuer, "bob", "two")
        # issuer one's name on a token signed by issuer two's key: the key is not issuer one's
        forged = two.token(alg="ES256", kid=two.kid("ES256"), iss=one.issuer, tenant="two")
        assert await rejected(verifier, forged) == "no key of the issuer matches the token"
        # issuer two does not allow RS256
        assert await rejected(verifier, two.token(alg="HS256", iss=two.issuer, secret=b"k")) == (
            "algorithm HS256 is not allowed"
        )
        rs = jwt.encode(two.claims(tenant="two"), generate_key("RS256"), algorithm="RS256")
        assert await rejected(verifier, rs) == "algorithm RS256 is not allowed"
        assert (one.jwks_fetches, two.jwks_fetches) == (1, 1)


async def test_one_issuer_down_does_not_affect_the_other(make: Make) -> None:
    with LocalIdP() as up, LocalIdP() as down:
        down.down("refuse")
        verifier = await make(config(up), config(down), timeout=1.0)
        assert (await verifier.verify(up.token())).subject == "user-1"
        with pytest.raises(KeysUnavailable):
            await verifier.verify(down.token())


# hygiene


async def test_logs_and_errors_never_contain_the_token(
    idp: LocalIdP, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier = await make(config(idp, tenant_claim="tenant"), refresh_interval=0.0, timeout=1.0)
    tokens = [
        idp.token(exp_in=-3600, iat_in=-7200, tenant="t"),
        idp.token(aud="other", tenant="t"),
        idp.token(kid="unknown", tenant="t"),
        idp.token(tenant="bad tenant"),
        idp.token(alg="HS256", secret=idp.public_pem(), tenant="t"),
        idp.token(iss="https://evil.example"),
    ]
    idp.down("503")
    tokens.append(idp.token(kid="unknown-2", tenant="t"))
    for token in tokens:
        with pytest.raises((TokenRejected, KeysUnavailable)) as info:
            await verifier.verify(token)
        for part in token.split("."):
            assert part not in str(info.value)
            assert part not in repr(info.value)
    assert caplog.records  # the failed fetch was logged
    text = "\n".join(r.getMessage() for r in caplog.records)
    for token in tokens:
        for part in token.split("."):
            assert part not in text


async def test_close_leaves_a_given_client_open(idp: LocalIdP) -> None:
    async with httpx.AsyncClient() as client:
        verifier = OidcVerifier([config(idp)], http=client)
        await verifier.start()
        await verifier.verify(idp.token())
        await verifier.close()
        assert not client.is_closed
        response = await client.get(idp.jwks_url)
        assert response.status_code == 200


# ------------------------------------------------------------------------------ the verified-token cache


async def test_a_token_sent_again_is_not_verified_again(
    idp: LocalIdP, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = await make(config(idp), cache_size=10)
    decoded: list[Any] = []
    real = oidc._checked

    def counting(parsed: Any, *args: Any, **kwargs: Any) -> Any:
        decoded.append(parsed)
        return real(parsed, *args, **kwargs)

    monkeypatch.setattr(oidc, "_checked", counting)
    token = idp.token(sub="alice")
    first, second = await verifier.verify(token), await verifier.verify(token)
    assert first == second and len(decoded) == 1
    await verifier.verify(idp.token(sub="bob"))
    assert len(decoded) == 2


async def test_a_cached_token_still_expires(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), cache_size=10, leeway=0)
    token = idp.token(exp_in=1)
    await verifier.verify(token)
    expires = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
    await asyncio.sleep(max(0.0, expires - __import__("time").time()) + 0.1)
    assert "expired" in await rejected(verifier, token)


async def test_new_keys_empty_the_cache(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp), cache_size=10, refresh_interval=0)
    kid = idp.kid("RS256")
    token = idp.token(kid=kid)
    await verifier.verify(token)
    idp.rotate("RS256", retire=[kid])  # the key that signed it is withdrawn
    await verifier.verify(idp.token(kid=idp.kid("RS256")))  # an unknown kid: the keys are fetched again
    assert "no key" in await rejected(verifier, token) or "signature" in await rejected(verifier, token)


async def test_a_subject_no_store_can_hold_is_rejected(idp: LocalIdP, make: Make) -> None:
    verifier = await make(config(idp))
    assert "subject claim" in await rejected(verifier, idp.token(sub="a\x00b"))
    assert "subject claim" in await rejected(verifier, idp.token(sub="x" * 513))
