"""The gateway's JWT check against PyJWT's ``jwt.decode``, on the same tokens: the same verdict.

``access/oidc.py`` parses the compact JWS and checks the registered claims itself (PyJWT >= 2.14 spends
~70 us a token checking base64url characters in a Python loop) and leaves the signature to PyJWT's
algorithm objects. This property draws tokens with every kind of registered claim, good and bad, signed
or tampered with, and requires both to accept or both to reject.

Where the gateway is stricter on purpose, the case is left out of the comparison and asserted apart:
dates that are not JSON numbers (``true``, ``"1700000000"``), padding (``=``) in a segment, NaN or Infinity in the JSON.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastagentic_gateway.access import oidc
from fastagentic_gateway.access.oidc import IssuerConfig, TokenRejected
from tests.fuzz.harness import fuzz
from tests.idp import b64url, pooled_key

ISSUER = "https://idp.example"
AUDIENCE = "api"
LEEWAY = 60.0

# Offsets from now, in seconds, well away from the leeway's edges (the two checks run microseconds apart).
OFFSETS = st.sampled_from([-86_400, -3_600, -150, -20, 0, 20, 150, 3_600, 86_400])
BAD_INSTANTS = st.sampled_from(["soon", True, False, None, [1], {"t": 1}, "1700000000"])


def _instant(offset: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.one_of(offset.map(lambda o: int(time.time()) + o), offset.map(lambda o: time.time() + o + 0.5))


CLAIM_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "exp": st.one_of(_instant(OFFSETS), BAD_INSTANTS),
    "iat": st.one_of(_instant(OFFSETS), BAD_INSTANTS),
    "nbf": st.one_of(_instant(OFFSETS), BAD_INSTANTS),
    "iss": st.sampled_from([ISSUER, ISSUER + "/", "https://evil.example", "", 7, None, [ISSUER]]),
    "aud": st.sampled_from(
        [AUDIENCE, [AUDIENCE], ["other", AUDIENCE], "other", ["other"], [], [AUDIENCE, 5], 5, None, {"a": 1}]
    ),
    "sub": st.sampled_from(["alice", "", 42, None, ["alice"]]),
    "jti": st.sampled_from(["j-1", 5, None]),
}
# Claims present in a well-formed token; each may be left out or replaced by any value above.
USUAL = {"exp": 3_600, "iat": 0, "iss": ISSUER, "aud": AUDIENCE, "sub": "alice"}


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        name: (now + value if name in ("exp", "iat") else value) for name, value in USUAL.items()
    }
    for name, values in CLAIM_VALUES.items():
        choice = draw(st.sampled_from(["keep", "keep", "omit", "replace"]))
        if choice == "omit":
            payload.pop(name, None)
        elif choice == "replace":
            payload[name] = draw(values)
    payload["custom"] = draw(st.one_of(st.none(), st.text(max_size=8), st.integers(-(2**63), 2**63 - 1)))
    return payload


def _sign(payload: dict[str, Any], alg: str, private: Any, kid: str | None = None) -> str:
    """A compact JWS of any payload (``jwt.encode`` refuses some of the bad claims drawn here)."""
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"} | ({"kid": kid} if kid else {})
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    signature = jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), private)
    return f"{signing_input}.{b64url(signature)}"


def _tamper(token: str, how: str) -> str:
    header, payload, signature = token.split(".")
    if how == "signature":
        return f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    if how == "payload":
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["sub"] = "mallory"
        return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    if how == "stray-bits":
        # The last character of a segment whose length is 2 or 3 mod 4 carries unused bits: set them.
        index = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(signature[-1])
        if len(signature) % 4 in (2, 3) and index % 4 == 0:
            signature = (
                signature[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[index + 1]
            )
        return f"{header}.{payload}.{signature}"
    return token


def _ours(token: str, state: Any, key: jwt.PyJWK) -> dict[str, Any] | None:
    try:
        parsed = oidc._parse(token)
        if parsed.alg != key.algorithm_name:
            return None
        return oidc._checked(parsed, key, state, LEEWAY)
    except TokenRejected:
        return None


def _pyjwt(token: str, alg: str, key: jwt.PyJWK, required: list[str]) -> dict[str, Any] | None:
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=[AUDIENCE],
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": required},
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        return None
    return payload


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[Any, jwt.PyJWK]]:
    made = {}
    for alg in ("RS256", "ES256", "PS256", "EdDSA"):
        private = pooled_key(alg)
        public_jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(private.public_key()))
        made[alg] = (private, jwt.PyJWK(public_jwk, algorithm=alg))
    return made


@fuzz
@given(
    payload=payloads(),
    alg=st.sampled_from(["RS256", "ES256", "PS256", "EdDSA"]),
    tamper=st.sampled_from(["none", "none", "signature", "payload", "stray-bits"]),
    kid=st.sampled_from([None, "k1"]),
)
def test_same_verdict_as_pyjwt(
    keys: dict[str, tuple[Any, jwt.PyJWK]], payload: dict[str, Any], alg: str, tamper: str, kid: str | None
) -> None:
    private, key = keys[alg]
    token = _tamper(_sign(payload, alg, private, kid), tamper)
    state = oidc._Issuer(IssuerConfig(issuer=ISSUER, audiences=[AUDIENCE], algorithms=[alg]), "default")
    ours = _ours(token, state, key)
    if any(name in payload and not _number(payload[name]) for name in ("exp", "iat", "nbf")):
        # RFC 7519 s2: a NumericDate is a JSON number. PyJWT takes what int() takes (true, "1700000000").
        assert ours is None
        return
    theirs = _pyjwt(token, alg, key, list(state.required))
    assert (ours is None) == (theirs is None), (
        f"gateway {'accepts' if ours is not None else 'rejects'}, PyJWT "
        f"{'accepts' if theirs is not None else 'rejects'}: {payload!r} ({alg}, {tamper})"
    )
    if ours is not None:
        assert ours == theirs


def test_stricter_than_pyjwt_on_purpose(keys: dict[str, tuple[Any, jwt.PyJWK]]) -> None:
    """Padding, and NaN or Infinity in the JSON: PyJWT takes them, the gateway does not."""
    private, key = keys["RS256"]
    state = oidc._Issuer(IssuerConfig(issuer=ISSUER, audiences=[AUDIENCE], algorithms=["RS256"]), "default")
    now = int(time.time())
    good = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600}
    token = _sign(good, "RS256", private)
    assert _ours(token, state, key) == good
    header, body, signature = token.split(".")
    padded = f"{header}.{body}.{signature}" + "=" * (-len(signature) % 4)
    if padded != token:
        assert _ours(padded, state, key) is None
    for odd in (float("nan"), float("inf")):
        token = _sign(good | {"x": odd}, "RS256", private)  # json.dumps writes NaN / Infinity
        assert _pyjwt(token, "RS256", key, list(state.required)) is not None
        assert _ours(token, state, key) is None
