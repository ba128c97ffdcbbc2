"""MCP content a tool can return: text, an image, audio, an embedded resource, a link to a resource.

Each type encodes to the JSON of the MCP content block it stands for (``{"type": "image", "data": <base64>,
"mimeType": "image/png"}`` ...). A tool annotated to return one of them, or a list of them, is served over
MCP as those content blocks; REST clients get the same objects in ``output``.

    from fastagentic.content import Image, Text

    @app.tool
    def chart(series: list[float]) -> list[Text | Image]:
        return [Text("Sales by month"), Image(render_png(series), "image/png")]
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

import msgspec

__all__ = [
    "CONTENT_SCHEMA_MARKER",
    "Audio",
    "Content",
    "EmbeddedResource",
    "Image",
    "ResourceContents",
    "ResourceLink",
    "Text",
    "returns_content",
]

#: Set to true on the output schema of an endpoint whose result is MCP content (see ``returns_content``).
CONTENT_SCHEMA_MARKER = "x-fastagentic-content"


class Text(msgspec.Struct, tag_field="type", tag="text", frozen=True):
    """A text block."""

    text: str


class Image(msgspec.Struct, tag_field="type", tag="image", rename="camel", frozen=True):
    """An image; ``data`` is the raw bytes (base64 on the wire)."""

    data: bytes
    mime_type: str


class Audio(msgspec.Struct, tag_field="type", tag="audio", rename="camel", frozen=True):
    """Audio; ``data`` is the raw bytes (base64 on the wire)."""

    data: bytes
    mime_type: str


class ResourceContents(msgspec.Struct, rename="camel", omit_defaults=True, frozen=True):
    """What an embedded resource holds: ``text`` or ``blob`` (bytes, base64 on the wire)."""

    uri: str
    mime_type: str | None = None
    text: str | None = None
    blob: bytes | None = None


class EmbeddedResource(msgspec.Struct, tag_field="type", tag="resource", frozen=True):
    """A resource's contents, embedded in the result."""

    resource: ResourceContents

    @classmethod
    def of_text(cls, uri: str, text: str, mime_type: str | None = None) -> EmbeddedResource:
        return cls(ResourceContents(uri=uri, mime_type=mime_type, text=text))

    @classmethod
    def of_blob(cls, uri: str, blob: bytes, mime_type: str | None = None) -> EmbeddedResource:
        return cls(ResourceContents(uri=uri, mime_type=mime_type, blob=blob))


class ResourceLink(
    msgspec.Struct, tag_field="type", tag="resource_link", rename="camel", omit_defaults=True, frozen=True
):
    """A link to a resource the client may read (``resources/read``) or show."""

    uri: str
    name: str
    description: str | None = None
    mime_type: str | None = None


Content = Text | Image | Audio | EmbeddedResource | ResourceLink

_CONTENT_TYPES = (Text, Image, Audio, EmbeddedResource, ResourceLink)


def returns_content(annotation: Any) -> bool:
    """Whether a return annotation is MCP content: one content type, a union of them, or a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, _CONTENT_TYPES):
        return True
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return returns_content(arguments[0])
    if origin in (typing.Union, types.UnionType):
        return all(returns_content(argument) for argument in arguments)
    if origin in (list, tuple, Sequence) and arguments:
        items = [argument for argument in arguments if argument is not Ellipsis]
        return all(returns_content(item) for item in items)
    return False
