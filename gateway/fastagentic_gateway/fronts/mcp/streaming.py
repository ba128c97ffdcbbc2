"""A run's events as MCP notifications: ``progress`` and ``token`` events become ``notifications/progress``
(when the client sent a progress token), ``log`` events become ``notifications/message``.

Tokens carry their text as the progress ``message``; the tokens of one batch go out as one notification
whose ``progress`` counts on from the last progress sent, one per token. Other kinds are not sent over MCP.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
import msgspec

from mcp.server.session import ServerSession

from ...runs.model import Event
from .sessions import LEVELS

_decode = msgspec.json.decode
_LEVEL_NAMES = {"warn": "warning", "fatal": "critical", "exception": "error", "trace": "debug"}


def mcp_level(level: Any) -> str:
    name = str(level).lower()
    name = _LEVEL_NAMES.get(name, name)
    return name if name in LEVELS else "info"


class Relay:
    """Sends one run's events to one client, on the channel ``related_request_id`` selects (the request's
    own stream when set, else the session's standalone stream)."""

    __slots__ = ("_last", "_levels", "_logger", "_meta", "_related", "_session", "_token")

    def __init__(
        self,
        session: ServerSession,
        *,
        progress_token: str | int | None,
        levels: frozenset[str],
        logger: str,
        related_request_id: types.RequestId | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self._session = session
        self._token = progress_token
        self._levels = levels
        self._logger = logger
        self._related = related_request_id
        self._meta = meta
        self._last = 0.0  # progress sent last: token notifications count up from it

    @property
    def wanted(self) -> bool:
        """Whether the client would receive anything (else the front just waits for the end)."""
        return self._token is not None or bool(self._levels)

    async def send(self, events: list[Event]) -> None:
        text: list[str] = []
        for event in events:
            kind = event.kind
            if kind == "token":
                if self._token is not None:
                    text.append(str(_decode(event.data).get("text", "")))
                continue
            if text:
                await self._tokens(text)
                text = []
            if kind == "progress" and self._token is not None:
                data = _decode(event.data)
                current = data.get("current", data.get("progress"))
                if isinstance(current, int | float):
                    total = data.get("total")
                    message = data.get("message")
                    await self._progress(
                        float(current),
                        float(total) if isinstance(total, int | float) else None,
                        message if isinstance(message, str) else None,
                    )
            elif kind == "log" and self._levels:
                data = _decode(event.data)
                level = mcp_level(data.get("level", "info"))
                if level in self._levels:
                    await self._log(level, data.get("message", data))
        if text:
            await self._tokens(text)

    async def _tokens(self, text: list[str]) -> None:
        await self._progress(self._last + len(text), None, "".join(text))

    async def _progress(self, progress: float, total: float | None, message: str | None) -> None:
        assert self._token is not None
        self._last = max(self._last, progress)
        params = types.ProgressNotificationParams(
            progress_token=self._token, progress=progress, total=total, message=message, _meta=self._meta
        )
        await self._session.send_notification(types.ProgressNotification(params=params), self._related)

    async def _log(self, level: str, data: Any) -> None:
        params = types.LoggingMessageNotificationParams(
            level=level,  # type: ignore[arg-type]  # checked against LEVELS
            data=data,
            logger=self._logger,
            _meta=self._meta,
        )
        await self._session.send_notification(types.LoggingMessageNotification(params=params), self._related)
