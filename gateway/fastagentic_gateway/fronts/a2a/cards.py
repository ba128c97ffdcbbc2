"""Agent cards, generated from the endpoint specs the workers registered.

Each agent endpoint is an A2A agent with one skill; the gateway's own agent (``/a2a``) has every agent
endpoint as a skill. Input and output JSON Schemas travel in the card extension ``SCHEMAS_EXTENSION``:
``params.skills[<skill id>] = {"inputSchema": ..., "outputSchema": ...}``. Cards are served with an ETag
(a hash of the card), Last-Modified (when that card last changed) and Cache-Control.
"""

from __future__ import annotations

import hashlib
import time
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

import msgspec
from google.protobuf.struct_pb2 import Struct

from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    OpenIdConnectSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol

from ...settings import Settings
from ...workers.registry import EndpointInfo
from .mapping import JSON, OUTPUT_MODES, TEXT, input_modes, text_field

SCHEMAS_EXTENSION = "https://fastagentic.dev/a2a/extensions/schemas/v1"
GATEWAY_AGENT = "FastAgentic gateway"


def _version() -> str:
    try:
        from fastagentic import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "0.0.0"


VERSION = _version()


def interfaces(url: str) -> list[AgentInterface]:
    """Both HTTP bindings at one URL (JSON-RPC posts to it, HTTP+JSON appends its paths), in A2A 1.0 and
    in 0.3 (same URL: the routes answer both)."""
    return [
        AgentInterface(url=url, protocol_binding=binding, protocol_version=version)
        for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        for binding in (TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value)
    ]


def _examples(info: EndpointInfo) -> list[str]:
    field = text_field(info)
    out = []
    for example in info.examples[:10]:
        if field is not None and isinstance(example, dict) and set(example) == {field}:
            out.append(str(example[field]))
        else:
            out.append(msgspec.json.encode(example).decode())
    return out


def skill(info: EndpointInfo) -> AgentSkill:
    return AgentSkill(
        id=info.name,
        name=info.name,
        description=info.description or f"The {info.name} agent endpoint.",
        tags=list(info.tags) or ["agent"],
        examples=_examples(info),
        input_modes=input_modes(info),
        output_modes=OUTPUT_MODES,
    )


def _schemas_extension(infos: list[EndpointInfo]) -> AgentExtension:
    params = Struct()
    params.update(
        {
            "skills": {
                info.name: {"inputSchema": info.input_schema, "outputSchema": info.output_schema}
                for info in infos
            }
        }
    )
    return AgentExtension(
        uri=SCHEMAS_EXTENSION,
        description="The JSON Schemas of each skill's input (a data part) and output (the output artifact).",
        required=False,
        params=params,
    )


def _capabilities(infos: list[EndpointInfo], extended: bool = False) -> AgentCapabilities:
    return AgentCapabilities(
        streaming=True,
        push_notifications=True,
        # With authentication, a caller gets the card of what it may use (GetExtendedAgentCard).
        extended_agent_card=extended,
        extensions=[_schemas_extension(infos)],
    )


def secure(card: AgentCard, settings: Settings) -> AgentCard:
    """``card`` declaring how to authenticate when the gateway requires it: an API key (header
    ``X-API-Key``, or as a bearer token), and a bearer token from each OpenID Connect issuer; any one of
    them is enough."""
    if settings.auth != "required":
        return card
    card.capabilities.extended_agent_card = True
    schemes = {
        "apiKey": SecurityScheme(
            api_key_security_scheme=APIKeySecurityScheme(
                name="X-API-Key", location="header", description="An API key of this gateway (fa_key_...)."
            )
        ),
        "bearer": SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer", description="An API key of this gateway, or a JWT from a configured issuer."
            )
        ),
    }
    for index, issuer in enumerate(settings.oidc_issuers):
        schemes[f"oidc{index + 1}" if index else "oidc"] = SecurityScheme(
            open_id_connect_security_scheme=OpenIdConnectSecurityScheme(
                open_id_connect_url=issuer.issuer.rstrip("/") + "/.well-known/openid-configuration",
                description=f"Tokens from {issuer.issuer} (audience {', '.join(issuer.audiences)}).",
            )
        )
    for name, scheme in schemes.items():
        card.security_schemes[name].CopyFrom(scheme)
    for name in schemes:
        card.security_requirements.append(SecurityRequirement(schemes={name: StringList()}))
    return card


def endpoint_card(info: EndpointInfo, base_url: str) -> AgentCard:
    return AgentCard(
        name=info.name,
        description=info.description or f"The {info.name} agent endpoint.",
        supported_interfaces=interfaces(f"{base_url}/a2a/{info.name}"),
        version=VERSION,
        capabilities=_capabilities([info]),
        default_input_modes=input_modes(info),
        default_output_modes=OUTPUT_MODES,
        skills=[skill(info)],
    )


def gateway_card(infos: list[EndpointInfo], base_url: str) -> AgentCard:
    return AgentCard(
        name=GATEWAY_AGENT,
        description="Every agent endpoint of this gateway as a skill. Name the skill in the message's "
        "metadata (`skill`); a gateway serving one agent endpoint needs no name.",
        supported_interfaces=interfaces(f"{base_url}/a2a"),
        version=VERSION,
        capabilities=_capabilities(infos),
        default_input_modes=[JSON, TEXT],
        default_output_modes=OUTPUT_MODES,
        skills=[skill(info) for info in infos],
    )


def capability_card() -> AgentCard:
    """What every agent here can do, for the SDK's request handler (its capability checks)."""
    return AgentCard(
        name=GATEWAY_AGENT,
        description="FastAgentic agents",
        supported_interfaces=interfaces("http://localhost/a2a"),
        version=VERSION,
        capabilities=_capabilities([]),
        default_input_modes=[JSON, TEXT],
        default_output_modes=OUTPUT_MODES,
        # Never shown to clients (their cards list the served agents); a card without skills makes the
        # SDK warn at every start that it is not spec-compliant.
        skills=[
            AgentSkill(id=GATEWAY_AGENT, name=GATEWAY_AGENT, description="FastAgentic agents", tags=["agent"])
        ],
    )


class CardCache:
    """Serialised cards with their validators; a card's Last-Modified moves only when its body changes."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}  # card key -> (etag, last modified)

    def render(self, key: str, card: AgentCard) -> tuple[bytes, str, str]:
        body = msgspec.json.encode(agent_card_to_dict(card), order="sorted")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        seen = self._seen.get(key)
        if seen is None or seen[0] != etag:
            seen = self._seen[key] = (etag, float(int(time.time())))
        return body, etag, formatdate(seen[1], usegmt=True)


def not_modified(headers: Any, etag: str, last_modified: str) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since."""
    match = headers.get("if-none-match")
    if match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in match.split(",")]
        return "*" in tags or etag in tags
    since = headers.get("if-modified-since")
    if since:
        try:
            return parsedate_to_datetime(since) >= parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False
    return False


__all__ = [
    "SCHEMAS_EXTENSION",
    "CardCache",
    "capability_card",
    "endpoint_card",
    "gateway_card",
    "not_modified",
]
