"""Live 2025-11-25 sessions: where to announce list changes, the log level each one asked for, and the
resources each one subscribed to.

A session joins when its client sends ``notifications/initialized`` (or its first ``resources/subscribe``)
and leaves when the SDK closes it (DELETE, idle timeout, shutdown), taking its subscriptions along. List
changes and ``notifications/resources/updated`` go out on each session's standalone channel (its GET
stream). 2026-07-28 clients have no session: they get both on ``subscriptions/listen`` streams.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession

log = logging.getLogger("fastagentic.mcp")

#: MCP log levels, least severe first (RFC 5424).
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
ALL_LEVELS = frozenset(LEVELS)
#: Resource URIs one session may be subscribed to at once.
MAX_SUBSCRIPTIONS = 1000


def connection_of(session: ServerSession) -> Connection | None:
    """The connection behind a request's session: its standalone channel and its exit stack.
    (The SDK offers no public accessor yet.)"""
    connection = getattr(session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


def session_id_of(ctx: ServerRequestContext[Any, Any]) -> str | None:
    request = ctx.request
    headers = getattr(request, "headers", None)
    return headers.get("mcp-session-id") if headers is not None else None


class LegacySessions:
    def __init__(self, on_leave: Callable[[str], None]) -> None:
        self._sessions: dict[str, ServerSession] = {}
        self._levels: dict[str, frozenset[str]] = {}
        self._subscriptions: dict[str, set[str]] = {}  # session id -> resource URIs
        self._on_leave = on_leave

    def __len__(self) -> int:
        return len(self._sessions)

    def join(self, ctx: ServerRequestContext[Any, Any]) -> None:
        session_id = session_id_of(ctx)
        if session_id is None or session_id in self._sessions:
            return
        self._sessions[session_id] = ctx.session
        connection = connection_of(ctx.session)
        if connection is not None:
            connection.exit_stack.callback(self._leave, session_id)  # unwound when the session ends

    def _leave(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        self._levels.pop(session_id, None)
        self._subscriptions.pop(session_id, None)
        self._on_leave(session_id)

    def set_level(self, ctx: ServerRequestContext[Any, Any], level: str) -> None:
        session_id = session_id_of(ctx)
        if session_id is not None and level in LEVELS:
            self._levels[session_id] = frozenset(LEVELS[LEVELS.index(level) :])

    def levels(self, ctx: ServerRequestContext[Any, Any]) -> frozenset[str]:
        """The log levels this session receives: all of them until it sets a level."""
        session_id = session_id_of(ctx)
        return self._levels.get(session_id, ALL_LEVELS) if session_id is not None else ALL_LEVELS

    def subscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> bool:
        """Subscribe the request's session to ``uri``; False when it holds ``MAX_SUBSCRIPTIONS`` already."""
        session_id = session_id_of(ctx)
        if session_id is None:
            return True  # no session to tell: nothing to remember
        self.join(ctx)
        if session_id not in self._sessions:
            return True
        uris = self._subscriptions.setdefault(session_id, set())
        if uri not in uris and len(uris) >= MAX_SUBSCRIPTIONS:
            return False
        uris.add(uri)
        return True

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        session_id = session_id_of(ctx)
        if session_id is not None:
            self._subscriptions.get(session_id, set()).discard(uri)

    async def resource_updated(self, uri: str) -> None:
        """Tell every session subscribed to ``uri`` that it changed."""
        for session_id, uris in list(self._subscriptions.items()):
            session = self._sessions.get(session_id)
            if session is None or uri not in uris:
                continue
            try:
                await session.send_resource_updated(uri)
            except Exception:  # one broken session must not keep the others from hearing
                log.debug("could not send a resource update to a session", exc_info=True)

    async def announce(self, lists: set[str]) -> None:
        """Tell every session that these lists (``tools``, ``resources``, ``prompts``) changed."""
        for session in list(self._sessions.values()):
            try:
                if "tools" in lists:
                    await session.send_tool_list_changed()
                if "resources" in lists:
                    await session.send_resource_list_changed()
                if "prompts" in lists:
                    await session.send_prompt_list_changed()
            except Exception:  # one broken session must not keep the others from hearing
                log.debug("could not announce a list change to a session", exc_info=True)
