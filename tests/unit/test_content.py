"""SDK content types: each encodes to the JSON of its MCP content block, and marks its tool's output schema."""

from __future__ import annotations

import base64
from typing import Annotated

import msgspec

from fastagentic import App
from fastagentic.content import (
    CONTENT_SCHEMA_MARKER,
    Audio,
    EmbeddedResource,
    Image,
    ResourceLink,
    Text,
    returns_content,
)
from fastagentic_gateway.fronts.mcp.catalogue import CONTENT_SCHEMA_MARKER as GATEWAY_MARKER


def encoded(value: object) -> object:
    return msgspec.json.decode(msgspec.json.encode(value))


def test_text_encodes_as_a_text_block() -> None:
    assert encoded(Text("hi")) == {"type": "text", "text": "hi"}


def test_image_and_audio_carry_base64_data_and_a_mime_type() -> None:
    assert encoded(Image(b"\x89PNG", "image/png")) == {
        "type": "image",
        "data": base64.b64encode(b"\x89PNG").decode(),
        "mimeType": "image/png",
    }
    assert encoded(Audio(b"RIFF", "audio/wav")) == {
        "type": "audio",
        "data": "UklGRg==",
        "mimeType": "audio/wav",
    }


def test_embedded_resource_nests_its_contents() -> None:
    assert encoded(EmbeddedResource.of_text("docs://a", "alpha", "text/plain")) == {
        "type": "resource",
        "resource": {"uri": "docs://a", "mimeType": "text/plain", "text": "alpha"},
    }
    assert encoded(EmbeddedResource.of_blob("docs://b", b"\x00\x01")) == {
        "type": "resource",
        "resource": {"uri": "docs://b", "blob": "AAE="},
    }


def test_resource_link_leaves_out_what_is_not_set() -> None:
    assert encoded(ResourceLink(uri="docs://c", name="c")) == {
        "type": "resource_link",
        "uri": "docs://c",
        "name": "c",
    }


def test_content_annotations_are_recognised() -> None:
    assert returns_content(Image)
    assert returns_content(list[Text | Image])
    assert returns_content(Text | ResourceLink)
    assert returns_content(Annotated[list[Text], "doc"])
    assert not returns_content(str)
    assert not returns_content(list[str])
    assert not returns_content(Text | int)


def test_a_tool_returning_content_marks_its_output_schema() -> None:
    app = App("content")

    @app.tool
    def chart() -> list[Text | Image]:
        return [Text("sales")]

    @app.tool
    def plain() -> list[str]:
        return ["x"]

    assert app.endpoint("chart").output_schema[CONTENT_SCHEMA_MARKER] is True
    assert CONTENT_SCHEMA_MARKER not in app.endpoint("plain").output_schema
    assert app.endpoint("chart").encode_output(chart()) == b'[{"type":"text","text":"sales"}]'


def test_gateway_and_sdk_agree_on_the_marker() -> None:
    assert GATEWAY_MARKER == CONTENT_SCHEMA_MARKER
