"""The ``requestState`` of a 2026-07-28 ``InputRequiredResult``: which run and interrupt a retried
request (``tools/call``, ``prompts/get``, ``resources/read``) answers, signed by the gateway.

The client echoes the state back with its answers; the spec makes it attacker-controlled input. So it is
``fa1.<payload>.<mac>``: the payload (base64url JSON) names the run, the interrupt and the sequence number
of its event, the caller (a digest of tenant and subject), the request it answers (its method, the tool's or
prompt's name or the resource's URI, and a digest of its arguments), how many times the interrupt was asked,
and an expiry; the mac is HMAC-SHA256 over ``fa1.<payload>`` under a key
derived from the gateway's secret (``mcp_state_secret``, or one generated once and kept in the data
directory). Replicas of one gateway must share that secret (a state minted by one is redeemed by
another); rotating it invalidates the states in flight, nothing else.

A state is good for one answer: the run must still wait on that interrupt (its last event), which the
answer changes. Signature, expiry, principal and the call it came with are checked before the run is read.

Several questions at once (``ctx.ask_many``): a retry answering only some of them gets a new state whose
``got`` carries the answers so far, by key, each already checked against its own question's schema; the
run is answered once, with all of them, when the last one comes in. Nothing of them is kept by the gateway
meanwhile: any replica sharing the secret takes the next retry, and a durable run's round survives a
gateway restart (an ephemeral run does not outlive its gateway anyway). The payload is signed, not
encrypted: the client, which gave those answers, can read them. The state grows with the answers:
``MAX_STATE`` (256 KB of token, about 190 KB of JSON) bounds what a round can carry; a retry with a longer
state is refused ``invalid`` (the run keeps waiting: an ephemeral one until the state's expiry ends it).
Until the run is answered every state of the round is good (the interrupt still waits): an older one
only carries fewer answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import msgspec
from mcp_types import INVALID_PARAMS

from mcp.shared.exceptions import MCPError

from ...access.principal import Principal

log = logging.getLogger("fastagentic.mcp")

_PREFIX = "fa1."
_KEY_LABEL = b"fastagentic/mcp/requestState/v1\x00"
SECRET_FILE = "mcp_state_secret"
#: Longest state accepted: a few hundred bytes are minted, more when it carries the answers so far to
#: several questions (``got``); anything much longer is not ours.
MAX_STATE = 262_144


class RequestState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    run: str
    interrupt: str
    seq: int  # the interrupt event's: the run waits on it while it is the run's last event
    who: str  # digest of the caller's tenant and subject
    tool: str  # the tool's or prompt's name, the resource's URI
    args: str  # digest of the call's arguments
    asked: int  # times this interrupt was put to the client (bounded re-asks)
    exp: float
    method: str = "tools/call"  # the request the state answers (absent from the first states: tools/call)
    got: dict[str, Any] | None = None  # several questions at once: the answers so far, by key


def who_of(principal: Principal) -> str:
    return _digest(f"{principal.tenant}\x00{principal.subject}".encode())


def arguments_digest(arguments: Any) -> str:
    return _digest(msgspec.json.encode(arguments or {}, order="sorted"))


def invalid_state(reason: str) -> MCPError:
    """The error a state that cannot be redeemed gets (``reason``: ``invalid``, ``expired``, ``answered``)."""
    return MCPError(INVALID_PARAMS, "Invalid or expired requestState", {"reason": reason})


class RequestStates:
    """Mints and checks request states under the gateway's secret (read or made on first use)."""

    def __init__(self, secret: str, data_dir: str, ttl: float) -> None:
        self._secret = secret
        self._data_dir = data_dir
        self.ttl = ttl
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            secret = self._secret.encode() if self._secret else _kept_secret(Path(self._data_dir))
            self._key = hashlib.sha256(_KEY_LABEL + secret).digest()
        return self._key

    def seal(self, state: RequestState) -> str:
        body = _PREFIX + _b64(msgspec.json.encode(state))
        return body + "." + _b64(hmac.digest(self.key, body.encode(), "sha256"))

    def mint(
        self,
        *,
        run: str,
        interrupt: str,
        seq: int,
        who: str,
        tool: str,
        args: str,
        asked: int,
        method: str = "tools/call",
        got: dict[str, Any] | None = None,
    ) -> str:
        exp = time.time() + self.ttl
        return self.seal(RequestState(run, interrupt, seq, who, tool, args, asked, exp, method, got or None))

    def open(
        self, token: str, principal: Principal, tool: str, arguments: Any, method: str = "tools/call"
    ) -> RequestState:
        """The state ``token`` carries, when this gateway minted it for this caller and this request
        (``method`` of ``tool``, a name or URI, with ``arguments``) and it has not expired; else the spec's
        error (-32602)."""
        if not token.startswith(_PREFIX) or len(token) > MAX_STATE:
            raise _rejected("malformed")
        body, _, mac = token.rpartition(".")
        try:
            given = _unb64(mac)
        except (ValueError, binascii.Error):
            raise _rejected("malformed") from None
        if not hmac.compare_digest(given, hmac.digest(self.key, body.encode(), "sha256")):
            raise _rejected("signature")
        try:
            state = msgspec.json.decode(_unb64(body[len(_PREFIX) :]), type=RequestState)
        except (ValueError, binascii.Error, msgspec.DecodeError):
            raise _rejected("malformed") from None
        if not time.time() < state.exp:
            raise invalid_state("expired")
        if not hmac.compare_digest(state.who, who_of(principal)):
            raise _rejected("another principal")
        if state.method != method or state.tool != tool or state.args != arguments_digest(arguments):
            raise _rejected("another call")
        return state


def _rejected(why: str) -> MCPError:
    log.info("MCP requestState rejected: %s", why)  # the reason stays in the log, the client sees "invalid"
    return invalid_state("invalid")


def _kept_secret(data_dir: Path) -> bytes:
    """The secret kept in the data directory, made (random, readable by its owner only) when missing.
    Without a writable directory: a secret of this process, gone at its restart (logged)."""
    path = data_dir / SECRET_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            kept = path.read_bytes().strip()
            if len(kept) >= 32:
                return kept
            raise OSError(f"{path} holds fewer than 32 bytes") from None
        secret = secrets.token_hex(32).encode()
        with os.fdopen(fd, "wb") as file:
            file.write(secret)
        return secret
    except OSError as exc:
        log.warning(
            "cannot keep the MCP requestState secret in %s (%s): using one of this process; set "
            "mcp_state_secret so answers survive a restart",
            path,
            exc,
        )
        return secrets.token_bytes(32)


def _digest(data: bytes) -> str:
    return _b64(hashlib.sha256(data).digest()[:16])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw
