"""The identity matrix driven with the protocols' official clients: the ``mcp`` SDK's client in both of its
revisions (2025-11-25 sessions and 2026-07-28 stateless) and the ``a2a-sdk`` client on both bindings of
A2A 1.0 and of 0.3. Each client is given the caller's credential the way its users give it (default
headers of the HTTP client it is handed), and must reach what the credential allows and be refused, in
its own way, what it does not. The gateway, IdP and credentials are those of ``test_identity``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import httpx2
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.errors import A2AClientError
from a2a.types.a2a_pb2 import AgentCard, GetTaskRequest, TaskState
from mcp import Client, MCPError
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    create_oauth_metadata_request,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    handle_protected_resource_response,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import ProtectedResourceMetadata
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from mcp_types import INVALID_REQUEST

from tests.e2e.a2a_support import collect, data_message, legacy_card, output_of, request
from tests.e2e.mcp_support import LEGACY, MODERN
from tests.e2e.test_identity import World, world

__all__ = ["world"]  # the module-scoped fixture of test_identity, shared by these tests

# ------------------------------------------------------------------------------ the cases

REFUSED, PLAIN, SCOPED = "refused", "plain", "scoped"  # no access; `ask` only; `ask` and `report`

#: name -> (the bearer credential the caller presents, or None; what it may reach)
CASES: dict[str, tuple[Callable[[World], str | None], str]] = {
    "no credential": (lambda w: None, REFUSED),
    "expired token": (lambda w: w.idp.token(exp_in=-600, tenant="acme"), REFUSED),
    "wrong audience": (lambda w: w.idp.token(aud="someone-else", tenant="acme"), REFUSED),
    "HS256 signed with the public key": (
        lambda w: w.idp.token(alg="HS256", secret=w.idp.public_pem(), tenant="acme"),
        REFUSED,
    ),
    "revoked API key": (lambda w: w.tokens["key_revoked"], REFUSED),
    "valid RS256 token": (lambda w: w.idp.token(alg="RS256", tenant="acme"), PLAIN),
    "valid ES256 token": (lambda w: w.idp.token(alg="ES256", tenant="acme"), PLAIN),
    "valid API key": (lambda w: w.tokens["key_acme_plain"], PLAIN),
    "token without the scope": (lambda w: w.idp.token(tenant="acme"), PLAIN),
    "token with the scope": (lambda w: w.idp.token(tenant="acme", scope="reports:read"), SCOPED),
}

ANSWER = {"answer": "you asked hi"}
REPORT = {"report": "report on hi"}

#: what each kind of caller gets: a value, or the HTTP status of the refusal
LISTED = {REFUSED: 401, PLAIN: {"ask", "echo"}, SCOPED: {"ask", "echo", "report"}}
ASKED = {REFUSED: 401, PLAIN: ANSWER, SCOPED: ANSWER}
REPORTED = {REFUSED: 401, PLAIN: 403, SCOPED: REPORT}


def _headers(credential: str | None) -> dict[str, str]:
    return {} if credential is None else {"Authorization": f"Bearer {credential}"}


# ------------------------------------------------------------------------------ the official MCP client

#: ``Client(mode=...)``: the 2025-11-25 initialize handshake, or 2026-07-28 adopted directly
MCP_MODES = {LEGACY: "legacy", MODERN: MODERN}

McpAction = Callable[[Client], Awaitable[Any]]


async def mcp_decision(world: World, credential: str | None, revision: str, action: McpAction) -> Any:
    """What ``action`` gives with the official MCP client, connected with ``credential``; when the client
    raises, the HTTP status of the refusal it heard, after checking the error it raised says so."""
    heard: list[httpx2.Response] = []

    async def hear(response: httpx2.Response) -> None:
        if response.request.method == "POST":
            heard.append(response)

    http = httpx2.AsyncClient(headers=_headers(credential), timeout=60, event_hooks={"response": [hear]})
    try:
        async with (
            http,
            Client(
                streamable_http_client(f"{world.url}/mcp", http_client=http),
                mode=MCP_MODES[revision],
                read_timeout_seconds=60,
            ) as mcp,
        ):
            assert mcp.protocol_version == revision
            return await action(mcp)
    except (MCPError, ExceptionGroup) as raised:
        error = _the_mcp_error(raised)
        (status,) = [response.status_code for response in heard if response.status_code >= 400]
        # the transport surfaces the JSON-RPC error of the refusal's body; the HTTP status is not on it
        assert error.code == INVALID_REQUEST, error
        if status == 401:
            assert error.data == {"type": "unauthenticated"}, error
        else:
            assert status == 403, (status, error)
            assert error.message == "'report' requires the scope(s) reports:read", error
        return status


def _the_mcp_error(raised: BaseException) -> MCPError:
    """The one ``MCPError`` the client raised: a failed handshake leaves the client's task groups in an
    exception group around it."""
    while isinstance(raised, BaseExceptionGroup) and len(raised.exceptions) == 1:
        raised = raised.exceptions[0]
    assert isinstance(raised, MCPError), repr(raised)
    return raised


async def tool_names(mcp: Client) -> set[str]:
    return {tool.name for tool in (await mcp.list_tools()).tools}


def calling(name: str) -> McpAction:
    async def call(mcp: Client) -> Any:
        result = await mcp.call_tool(name, {"text": "hi"})
        assert not result.is_error, result
        return result.structured_content

    return call


revisions = pytest.mark.parametrize("revision", list(MCP_MODES))
cases = pytest.mark.parametrize("case", list(CASES))


@cases
@revisions
async def test_the_mcp_client_lists_the_tools_the_caller_may_use(
    world: World, case: str, revision: str
) -> None:
    credential, access = CASES[case]
    assert await mcp_decision(world, credential(world), revision, tool_names) == LISTED[access]


@cases
@revisions
async def test_the_mcp_client_calls_ask_when_authenticated(world: World, case: str, revision: str) -> None:
    credential, access = CASES[case]
    assert await mcp_decision(world, credential(world), revision, calling("ask")) == ASKED[access]


@cases
@revisions
async def test_the_mcp_client_calls_report_with_its_scope(world: World, case: str, revision: str) -> None:
    credential, access = CASES[case]
    assert await mcp_decision(world, credential(world), revision, calling("report")) == REPORTED[access]


# ------------------------------------------------------------------------------ the MCP client's OAuth discovery


async def _refusal(world: World, credential: str | None, revision: str, action: McpAction) -> httpx2.Response:
    """The refusal the official client was answered with, as it saw it."""
    heard: list[httpx2.Response] = []

    async def hear(response: httpx2.Response) -> None:
        if response.status_code in (401, 403):
            heard.append(response)

    http = httpx2.AsyncClient(headers=_headers(credential), timeout=60, event_hooks={"response": [hear]})
    with pytest.raises((MCPError, ExceptionGroup)) as raised:
        async with (
            http,
            Client(
                streamable_http_client(f"{world.url}/mcp", http_client=http), mode=MCP_MODES[revision]
            ) as mcp,
        ):
            await action(mcp)
    _the_mcp_error(raised.value)
    (refusal,) = heard
    return refusal


async def _discover(metadata_url: str | None, server_url: str) -> ProtectedResourceMetadata:
    """Step 1 of the SDK's OAuth flow (``OAuthClientProvider``), with the SDK's own helpers."""
    async with httpx2.AsyncClient(timeout=30) as http:
        for url in build_protected_resource_metadata_discovery_urls(metadata_url, server_url):
            metadata = await handle_protected_resource_response(
                await http.send(create_oauth_metadata_request(url))
            )
            if metadata is not None:
                return metadata
    raise AssertionError("no protected resource metadata found")


@revisions
async def test_the_mcp_client_finds_the_authorization_server_from_a_401(world: World, revision: str) -> None:
    server_url = f"{world.url}/mcp"
    refusal = await _refusal(world, None, revision, tool_names)
    assert refusal.status_code == 401
    metadata_url = extract_resource_metadata_from_www_auth(refusal)
    assert metadata_url == f"{world.url}/.well-known/oauth-protected-resource/mcp"
    metadata = await _discover(metadata_url, server_url)
    assert [str(server) for server in metadata.authorization_servers] == [world.idp.issuer]
    assert str(metadata.resource) == server_url
    assert check_resource_allowed(resource_url_from_server_url(server_url), str(metadata.resource))


@revisions
async def test_the_mcp_client_reads_the_missing_scope_from_a_403(world: World, revision: str) -> None:
    refusal = await _refusal(world, world.idp.token(tenant="acme"), revision, calling("report"))
    assert refusal.status_code == 403
    assert extract_scope_from_www_auth(refusal) == "reports:read"


# ------------------------------------------------------------------------------ the official A2A client

BINDINGS = ["JSONRPC", "HTTP+JSON"]
A2A_VERSIONS = ["1.0", "0.3"]


async def _card(world: World, agent: str) -> AgentCard:
    """The agent's card as a caller allowed to see it got it (a card is shown only to who may use it):
    what is asked here is whether the call is let through, not the card."""
    async with httpx.AsyncClient(headers=_headers(world.tokens["key_acme"]), timeout=30) as http:
        return await A2ACardResolver(http, f"{world.url}/a2a/{agent}").get_agent_card()


async def a2a_decision(
    world: World, credential: str | None, agent: str, binding: str, version: str, streaming: bool
) -> Any:
    """The output of a message sent to ``agent`` with the a2a-sdk client, or the HTTP status of the
    refusal it raised."""
    card = await _card(world, agent)
    if version == "0.3":
        card = legacy_card(card)
    async with httpx.AsyncClient(headers=_headers(credential), timeout=30) as http:
        config = ClientConfig(httpx_client=http, supported_protocol_bindings=[binding], streaming=streaming)
        client = ClientFactory(config).create(card)
        try:
            items = await collect(client.send_message(request(data_message({"text": "hi"}))))
            task = await client.get_task(
                GetTaskRequest(id=next(i.task.id for i in items if i.HasField("task")))
            )
        except A2AClientError as error:
            # the SDK raises its own error, from the HTTP status error of the refusal
            assert type(error) is A2AClientError, error
            assert isinstance(error.__cause__, httpx.HTTPStatusError), error
            status = error.__cause__.response.status_code
            assert str(status) in str(error)
            return status
        finally:
            await client.close()
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task
    return output_of(task)


bindings = pytest.mark.parametrize("binding", BINDINGS)
versions = pytest.mark.parametrize("version", A2A_VERSIONS)
deliveries = pytest.mark.parametrize("streaming", [False, True], ids=["blocking", "streaming"])


@cases
@deliveries
@bindings
@versions
async def test_the_a2a_client_sends_to_ask_when_authenticated(
    world: World, case: str, binding: str, version: str, streaming: bool
) -> None:
    credential, access = CASES[case]
    decision = await a2a_decision(world, credential(world), "ask", binding, version, streaming)
    assert decision == ASKED[access]


@cases
@deliveries
@bindings
@versions
async def test_the_a2a_client_sends_to_report_with_its_scope(
    world: World, case: str, binding: str, version: str, streaming: bool
) -> None:
    credential, access = CASES[case]
    decision = await a2a_decision(world, credential(world), "report", binding, version, streaming)
    assert decision == REPORTED[access]
