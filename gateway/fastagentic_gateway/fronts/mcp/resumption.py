"""Resumable SSE for 2025-11-25 sessions: the events each session sent, replayed after ``Last-Event-ID``.

The SDK's session manager shares one ``EventStore`` between all sessions and names streams by the
client's JSON-RPC request id, which two sessions reuse all the time. So events are kept per session:
the HTTP request being served says which session it belongs to (``RequestScope``, set by the front for
every ``/mcp`` request), and a replay never crosses sessions. A session's events live in memory, at most
``limit`` of them (oldest dropped first), and are forgotten when the session ends.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from contextvars import ContextVar

from mcp_types import JSONRPCMessage

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId


class RequestScope:
    """The session an HTTP request belongs to. The request that opens a session learns its id only when
    the response names it; tasks spawned while serving that request (the session's own message router)
    share this object, so they see the id once it is known."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: str | None) -> None:
        self.session_id = session_id


REQUEST_SCOPE: ContextVar[RequestScope | None] = ContextVar("fastagentic_mcp_request_scope", default=None)


class SessionEvents(EventStore):
    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._sessions: dict[str, OrderedDict[EventId, tuple[StreamId, JSONRPCMessage | None]]] = {}
        self._counter = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        scope = REQUEST_SCOPE.get()
        session_id = scope.session_id if scope is not None else None
        if session_id is None:
            # Before the session exists (its initialize exchange): nothing to resume, nothing kept.
            return f"-/{next(self._counter)}"
        event_id = f"{session_id}/{next(self._counter)}"
        events = self._sessions.get(session_id)
        if events is None:
            events = self._sessions[session_id] = OrderedDict()
        events[event_id] = (stream_id, message)
        if len(events) > self.limit:
            events.popitem(last=False)
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        session_id = last_event_id.rpartition("/")[0]
        scope = REQUEST_SCOPE.get()
        if scope is None or scope.session_id != session_id:
            return None  # another session's event id: nothing to replay here
        events = self._sessions.get(session_id)
        if events is None or last_event_id not in events:
            return None
        stream_id = events[last_event_id][0]
        after = False
        for event_id, (stream, message) in list(events.items()):
            if after and stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            elif event_id == last_event_id:
                after = True
        return stream_id

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
