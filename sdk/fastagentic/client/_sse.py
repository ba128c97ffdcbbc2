"""An incremental server-sent events decoder (the WHATWG algorithm, reduced to what runs need).

Bytes arrive in chunks cut anywhere, even inside a line or a UTF-8 sequence; ``feed`` returns the frames
completed so far and keeps the rest. Lines end with LF, CRLF or CR; ``:`` lines are comments (keepalives).
"""

from __future__ import annotations

import codecs

import msgspec

from ._errors import FastAgenticError
from ._models import StreamEvent

__all__ = ["SSEDecoder", "SSEFrame"]


class SSEFrame(msgspec.Struct, frozen=True):
    id: str | None
    event: str
    data: str


class SSEDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # an incomplete line
        self._cr = False  # the last chunk ended with CR: a following LF belongs to it
        self._id: str | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        text = self._text.decode(chunk)
        if self._cr and text.startswith("\n"):
            text = text[1:]
        self._cr = text.endswith("\r")
        lines = (self._pending + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._pending = lines.pop()
        frames: list[SSEFrame] = []
        for line in lines:
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)
        return frames

    def _line(self, line: str) -> SSEFrame | None:
        if not line:  # a blank line ends the frame
            if not self._data:
                self._event = ""
                return None
            frame = SSEFrame(self._id, self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return frame
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def decode_event(frame: SSEFrame) -> StreamEvent:
    """The run event a frame carries (its ``data`` is the whole event as JSON)."""
    try:
        return msgspec.json.decode(frame.data, type=StreamEvent)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise FastAgenticError(
            f"the gateway sent an event this client cannot read ({exc}): {frame.data[:200]!r}"
        ) from None
