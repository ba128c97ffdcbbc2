"""A local OpenID Connect identity provider for tests: real HTTP on 127.0.0.1, real keys, real tokens.

    with LocalIdP() as idp:                       # RS256 and ES256 keys, serving on a free port
        config = IssuerConfig(issuer=idp.issuer, audiences=[idp.audience])
        token = idp.token(sub="alice", scope="runs:read", tenant="acme")
        new_kid = idp.rotate("RS256")             # publish a new key
        idp.down()                                # answer 503 (or idp.down("refuse"): nothing listens)
        idp.up()
        idp.jwks_fetches                          # JWKS requests received so far

As a pytest fixture: ``idp`` below (import it into a test module or a conftest), or
``with LocalIdP() as idp: yield idp`` in a fixture of your own.

It serves ``<issuer>/.well-known/openid-configuration`` and ``<issuer>/jwks.json``; the issuer is
``http://127.0.0.1:<port>`` plus an optional path (``LocalIdP(path="/realms/acme")``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}


@dataclass
class IdPKey:
    kid: str
    alg: str
    private_key: SigningKey
    published: bool = True

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The public JWK, as a JWKS publishes it (``kid``, ``alg`` and ``use: sig`` included)."""
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def generate_key(alg: str) -> SigningKey:
    """A fresh private key for a JWS algorithm (RS*/PS*: RSA 2048; ES*: its curve; EdDSA: Ed25519)."""
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[alg])
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"no key type for {alg}")


# Generating RSA keys takes ~50 ms each: IdPs take theirs from a pool, in turn, so IdPs alive at the same
# time have different keys (unless one process holds more than _POOL_SIZE keys of an algorithm at once).
_POOL_SIZE = 16
_pool: dict[str, list[SigningKey]] = {}
_turn: dict[str, int] = {}
_pool_lock = threading.Lock()


def pooled_key(alg: str) -> SigningKey:
    """A private key for ``alg`` from the pool (new until the pool is full, then reused in turn)."""
    with _pool_lock:
        keys = _pool.setdefault(alg, [])
        turn = _turn.get(alg, 0)
        _turn[alg] = turn + 1
        if len(keys) < _POOL_SIZE:
            keys.append(generate_key(alg))
            return keys[-1]
        return keys[turn % _POOL_SIZE]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class LocalIdP:
    """A threaded HTTP identity provider on 127.0.0.1. Thread-safe counters; not itself async."""

    def __init__(
        self,
        *,
        audience: str = "fastagentic-test",
        algorithms: Sequence[str] = ("RS256", "ES256"),
        path: str = "",
        tenant_claim: str = "tenant",
    ) -> None:
        self.audience = audience
        self.path = path.rstrip("/")
        self.tenant_claim = tenant_claim
        self.keys: dict[str, IdPKey] = {}
        self.extra_jwks: list[Any] = []  # appended to the JWKS as they are (e.g. `use: enc`)
        self.delay = 0.0  # seconds the JWKS endpoint waits before answering
        self.mode = "up"  # "up", "503" or "refuse"
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        for alg in algorithms:
            self.add_key(alg)

    # lifecycle

    def start(self) -> LocalIdP:
        self._serve(self.port)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LocalIdP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def down(self, mode: str = "503") -> None:
        """An outage: ``"503"`` answers every request 503; ``"refuse"`` stops listening."""
        if mode not in ("503", "refuse"):
            raise ValueError(mode)
        self.mode = mode
        if mode == "refuse":
            self.stop()

    def up(self) -> None:
        if self._server is None:
            self._serve(self.port)
        self.mode = "up"

    def _serve(self, port: int) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="local-idp", daemon=True
        )
        self._thread.start()

    # endpoints

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/jwks.json"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": sorted({key.alg for key in self.keys.values()}),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
        }

    def jwks(self) -> dict[str, Any]:
        published = [key.public_jwk for key in list(self.keys.values()) if key.published]
        return {"keys": published + list(self.extra_jwks)}

    # keys

    def add_key(self, alg: str = "RS256", kid: str | None = None, *, publish: bool = True) -> str:
        """A new key (from the pool), published in the JWKS unless ``publish=False``; its kid."""
        kid = kid or f"{alg.lower()}-{secrets.token_hex(4)}"
        self.keys[kid] = IdPKey(kid=kid, alg=alg, private_key=pooled_key(alg), published=publish)
        return kid

    def rotate(self, alg: str = "RS256", *, retire: Iterable[str] = ()) -> str:
        """Publish a new key (and unpublish ``retire``); its kid. Tokens default to the newest key."""
        kid = self.add_key(alg)
        for old in retire:
            self.keys[old].published = False
        return kid

    def publish(self, kid: str, published: bool = True) -> None:
        self.keys[kid].published = published

    def kid(self, alg: str = "RS256") -> str:
        """The newest key of an algorithm."""
        for key in reversed(self.keys.values()):
            if key.alg == alg:
                return key.kid
        raise KeyError(alg)

    def public_pem(self, kid: str | None = None) -> bytes:
        return self.keys[kid or self.kid()].public_pem

    # tokens

    def claims(
        self,
        *,
        sub: str | None = "user-1",
        aud: str | list[str] | None = None,
        scope: str | list[str] | None = None,
        tenant: str | None = None,
        iss: Any = None,
        exp_in: float = 300,
        nbf_in: float | None = None,
        iat_in: float = 0,
        omit: Iterable[str] = (),
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer if iss is None else iss,
            "aud": self.audience if aud is None else aud,
            "iat": int(now + iat_in),
            "exp": int(now + exp_in),
            "jti": secrets.token_hex(8),
        }
        if sub is not None:
            claims["sub"] = sub
        if nbf_in is not None:
            claims["nbf"] = int(now + nbf_in)
        if scope is not None:
            claims["scope"] = scope
        if tenant is not None:
            claims[self.tenant_claim] = tenant
        claims.update(extra)
        for name in omit:
            claims.pop(name, None)
        return claims

    def token(
        self,
        *,
        alg: str | None = None,
        kid: str | None = None,
        include_kid: bool = True,
        secret: bytes | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed token; the keyword arguments of ``claims()`` set its claims.

        ``alg`` defaults to the algorithm of ``kid``, else RS256. ``kid``: the signing key, default the
        newest of ``alg``; a kid the IdP does not know goes into the header while the newest key of
        ``alg`` signs. ``include_kid=False`` leaves ``kid`` out of the header. ``alg="none"`` makes an
        unsigned token; ``HS*`` signs with ``secret`` (e.g. ``idp.public_pem()``, key confusion).
        """
        payload = self.claims(**claims)
        if alg is None:
            alg = self.keys[kid].alg if kid in self.keys else "RS256"
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if alg == "none" or alg.startswith("HS"):
            if include_kid and kid is not None:
                header["kid"] = kid
            header.update(headers or {})
            return self.sign_raw(header, payload, secret=secret)
        key = self.keys[kid] if kid in self.keys else self.keys[self.kid(alg)]
        if include_kid:
            header["kid"] = kid or key.kid
        header.update(headers or {})
        return jwt.encode(payload, key.private_key, algorithm=alg, headers=header)

    @staticmethod
    def sign_raw(header: dict[str, Any], payload: dict[str, Any], *, secret: bytes | None = None) -> str:
        """A compact JWS built by hand: ``alg: none`` (empty signature) or HMAC with ``secret``
        (PyJWT refuses to HMAC-sign with a PEM key, which is the point of the key-confusion test)."""
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(payload, separators=(",", ":")).encode())
        )
        alg = header["alg"]
        if alg == "none":
            return signing_input + "."
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        if secret is None:
            raise ValueError(f"{alg} needs a secret")
        return signing_input + "." + b64url(hmac.new(secret, signing_input.encode(), digest).digest())

    # the HTTP side

    def _count(self, what: str) -> None:
        with self._lock:
            if what == "jwks":
                self.jwks_fetches += 1
            else:
                self.discovery_fetches += 1


def _handler(idp: LocalIdP) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == idp.path + "/.well-known/openid-configuration":
                idp._count("discovery")
                body = idp.discovery()
            elif path == idp.path + "/jwks.json":
                idp._count("jwks")
                if idp.delay:
                    time.sleep(idp.delay)
                body = idp.jwks()
            else:
                self._send(404, {"error": "not found"})
                return
            if idp.mode != "up":
                self._send(503, {"error": "temporarily unavailable"})
                return
            self._send(200, body)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def idp() -> Iterator[LocalIdP]:
    """A started LocalIdP (RS256 and ES256 keys), stopped after the test."""
    with LocalIdP() as server:
        yield server
