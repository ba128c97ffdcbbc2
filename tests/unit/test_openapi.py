"""The live OpenAPI 3.1 document built from the endpoint registry."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from openapi_spec_validator import validate

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.fronts.openapi import OpenAPIDocument
from fastagentic_gateway.workers.connection import WorkerConnection
from fastagentic_gateway.workers.registry import EndpointRegistry

encode = msgspec.json.encode

WRITER_INPUT = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "style": {"$ref": "#/$defs/Style"},
    },
    "required": ["items"],
    "$defs": {
        "Item": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "style": {"$ref": "#/$defs/Style"}},
            "required": ["name"],
        },
        "Style": {"enum": ["plain", "fancy"]},
    },
}
WRITER_OUTPUT = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "summary": {"$ref": "#/$defs/Summary"}},
    "$defs": {"Summary": {"type": "object", "properties": {"words": {"type": "integer"}}}},
}
ADD_INPUT = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
GREET_INPUT = {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]}
DOC_INPUT = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def spec(
    name: str, kind: int, input_schema: Any, output_schema: Any = None, **fields: Any
) -> pb.EndpointSpec:
    return pb.EndpointSpec(
        name=name,
        kind=kind,
        input_schema=encode(input_schema),
        output_schema=encode(output_schema if output_schema is not None else {}),
        **fields,
    )


ALL_KINDS = [
    spec(
        "writer",
        pb.ENDPOINT_KIND_AGENT,
        WRITER_INPUT,
        WRITER_OUTPUT,
        durable=True,
        streams=True,
        description="Write things.\n\nAt length.",
        examples=encode([{"items": [{"name": "pen"}]}]),
    ),
    spec("add", pb.ENDPOINT_KIND_TOOL, ADD_INPUT, {"type": "integer"}, description="Add two numbers."),
    spec("greet", pb.ENDPOINT_KIND_PROMPT, GREET_INPUT, {"type": "object"}),
    spec(
        "doc",
        pb.ENDPOINT_KIND_RESOURCE,
        DOC_INPUT,
        {"type": "object"},
        uri_template="docs://{name}",
        mime_type="text/markdown",
    ),
]


def worker(worker_id: str = "w1") -> WorkerConnection:
    return WorkerConnection(worker_id, "app", 4, [])


@pytest.fixture
def registry() -> EndpointRegistry:
    return EndpointRegistry()


@pytest.fixture
def served(registry: EndpointRegistry) -> WorkerConnection:
    """One worker serving an agent, a tool, a prompt and a resource."""
    serving = worker()
    registry.register(serving, ALL_KINDS)
    return serving


@pytest.fixture
def document(registry: EndpointRegistry, served: WorkerConnection) -> dict[str, Any]:
    return OpenAPIDocument(registry).build()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema["$ref"]
    assert ref.startswith("#/components/schemas/")
    resolved: dict[str, Any] = document["components"]["schemas"][ref.removeprefix("#/components/schemas/")]
    return resolved


def request_schema(document: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return schema


def operation_ids(document: dict[str, Any]) -> list[str]:
    return [
        operation["operationId"]
        for path_item in document["paths"].values()
        for operation in path_item.values()
        if "operationId" in operation
    ]


# ---------------------------------------------------------------- paths per kind


def test_document_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "FastAgentic gateway"


def test_agent_has_invoke_stream_and_runs_operations(document: dict[str, Any]) -> None:
    for path in ("/v1/agents/writer/invoke", "/v1/agents/writer/stream", "/v1/agents/writer/runs"):
        assert list(document["paths"][path]) == ["post"], path


def test_agent_runs_operation_answers_202_and_takes_an_idempotency_key(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/agents/writer/runs"]["post"]
    assert "202" in operation["responses"]
    assert "200" not in operation["responses"]
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= operation["parameters"][0].items()


def test_agent_stream_operation_answers_server_sent_events(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/agents/writer/stream"]["post"]["responses"]
    assert list(responses["200"]["content"]) == ["text/event-stream"]


def test_tool_is_one_post_operation(document: dict[str, Any]) -> None:
    assert list(document["paths"]["/v1/tools/add"]) == ["post"]
    assert request_schema(document, "/v1/tools/add") == ADD_INPUT


def test_tool_answers_its_output_inside_an_output_field(document: dict[str, Any]) -> None:
    ok = document["paths"]["/v1/tools/add"]["post"]["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    assert schema["properties"]["output"] == {"type": "integer"}
    assert schema["required"] == ["output"]


def test_prompt_is_one_post_operation(document: dict[str, Any]) -> None:
    assert list(document["paths"]["/v1/prompts/greet"]) == ["post"]
    assert request_schema(document, "/v1/prompts/greet") == GREET_INPUT


def test_resource_is_a_get_at_its_uri_template_with_path_parameters(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/resources/docs://{name}"]["get"]
    assert operation["parameters"] == [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert list(operation["responses"]["200"]["content"]) == ["text/markdown"]


def test_each_endpoint_adds_exactly_its_own_paths(document: dict[str, Any]) -> None:
    endpoint_paths = {
        path
        for path in document["paths"]
        if path.startswith(("/v1/agents/", "/v1/tools/", "/v1/prompts/", "/v1/resources/"))
    }
    assert endpoint_paths == {
        "/v1/agents/writer/invoke",
        "/v1/agents/writer/stream",
        "/v1/agents/writer/runs",
        "/v1/tools/add",
        "/v1/prompts/greet",
        "/v1/resources/docs://{name}",
    }


def test_fixed_routes_are_always_documented(registry: EndpointRegistry) -> None:
    paths = OpenAPIDocument(registry).build()["paths"]
    for path in ("/v1/endpoints", "/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/events"):
        assert path in paths


def test_summary_is_the_first_line_of_the_description(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/agents/writer/invoke"]["post"]
    assert operation["summary"] == "Write things."
    assert operation["description"] == "Write things.\n\nAt length."


def test_operations_are_tagged_with_their_kind(document: dict[str, Any]) -> None:
    assert document["paths"]["/v1/tools/add"]["post"]["tags"][0] == "tool"
    assert document["paths"]["/v1/agents/writer/invoke"]["post"]["tags"][0] == "agent"


def test_examples_become_request_examples(document: dict[str, Any]) -> None:
    content = document["paths"]["/v1/agents/writer/invoke"]["post"]["requestBody"]["content"]
    assert content["application/json"]["examples"] == {"example1": {"value": {"items": [{"name": "pen"}]}}}


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = operation_ids(document)
    assert len(ids) == len(set(ids))


def test_operation_ids_stay_unique_when_names_collide_across_kinds(registry: EndpointRegistry) -> None:
    # An agent called "tool" and a tool called "invoke" both yield the operationId "tool.invoke".
    registry.register(
        worker(),
        [spec("tool", pb.ENDPOINT_KIND_AGENT, ADD_INPUT), spec("invoke", pb.ENDPOINT_KIND_TOOL, ADD_INPUT)],
    )
    ids = operation_ids(OpenAPIDocument(registry).build())
    assert len(ids) == len(set(ids)), sorted(ids)


# ---------------------------------------------------------------- $defs lifted into components


def test_defs_are_lifted_into_components_under_the_endpoint_name(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["writer.Item"]["properties"]["name"] == {"type": "string"}
    assert schemas["writer.Style"] == {"enum": ["plain", "fancy"]}
    assert schemas["writer.Summary"] == {"type": "object", "properties": {"words": {"type": "integer"}}}


def test_request_schema_refs_point_at_the_lifted_components(document: dict[str, Any]) -> None:
    schema = request_schema(document, "/v1/agents/writer/invoke")
    assert "$defs" not in schema
    assert schema["properties"]["items"]["items"] == {"$ref": "#/components/schemas/writer.Item"}
    assert resolve(document, schema["properties"]["style"]) == {"enum": ["plain", "fancy"]}


def test_refs_between_defs_are_rewritten_too(document: dict[str, Any]) -> None:
    item = document["components"]["schemas"]["writer.Item"]
    assert item["properties"]["style"] == {"$ref": "#/components/schemas/writer.Style"}


def test_output_schema_refs_point_at_the_lifted_components(document: dict[str, Any]) -> None:
    ok = document["paths"]["/v1/agents/writer/invoke"]["post"]["responses"]["200"]
    output = ok["content"]["application/json"]["schema"]["properties"]["output"]
    assert output["properties"]["summary"] == {"$ref": "#/components/schemas/writer.Summary"}


def test_no_defs_reference_is_left_anywhere(document: dict[str, Any]) -> None:
    text = encode(document).decode()
    assert "#/$defs/" not in text
    assert '"$defs"' not in text


def test_lifting_leaves_the_registered_schema_untouched(
    registry: EndpointRegistry, document: dict[str, Any]
) -> None:
    endpoint = registry.get("writer")
    assert endpoint is not None
    assert endpoint.info.input_schema == WRITER_INPUT


def test_every_reference_resolves_to_a_component(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs = _refs(document)
    assert "#/components/schemas/writer.Item" in refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_same_def_name_in_input_and_output_keeps_both_definitions(registry: EndpointRegistry) -> None:
    # Pydantic gives one model different validation and serialization schemas (computed fields), so
    # an endpoint's input and output $defs may use the same name for different schemas.
    registry.register(
        worker(),
        [
            spec(
                "convert",
                pb.ENDPOINT_KIND_TOOL,
                {
                    "type": "object",
                    "properties": {"x": {"$ref": "#/$defs/X"}},
                    "$defs": {"X": {"type": "string"}},
                },
                {
                    "type": "object",
                    "properties": {"x": {"$ref": "#/$defs/X"}},
                    "$defs": {"X": {"type": "integer"}},
                },
            )
        ],
    )
    document = OpenAPIDocument(registry).build()
    request_x = request_schema(document, "/v1/tools/convert")["properties"]["x"]
    ok = document["paths"]["/v1/tools/convert"]["post"]["responses"]["200"]
    output_x = ok["content"]["application/json"]["schema"]["properties"]["output"]["properties"]["x"]
    assert resolve(document, request_x) == {"type": "string"}
    assert resolve(document, output_x) == {"type": "integer"}


# ---------------------------------------------------------------- validity


def test_resource_with_a_boolean_input_schema_does_not_break_the_document(registry: EndpointRegistry) -> None:
    # The registry accepts `true` as a JSON Schema; one such worker must not take /openapi.json down.
    registry.register(
        worker(),
        [spec("status", pb.ENDPOINT_KIND_RESOURCE, True, uri_template="app://status")],
    )
    document = OpenAPIDocument(registry).build()
    assert document["paths"]["/v1/resources/app://status"]["get"]["parameters"] == []


def test_document_validates_as_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)


def test_empty_registry_document_validates_as_openapi_3_1(registry: EndpointRegistry) -> None:
    validate(OpenAPIDocument(registry).build())


def test_render_is_the_json_of_build(registry: EndpointRegistry, served: WorkerConnection) -> None:
    openapi = OpenAPIDocument(registry)
    assert msgspec.json.decode(openapi.render()) == openapi.build()


# ---------------------------------------------------------------- caching and liveness


def test_render_is_cached_while_the_registry_is_unchanged(
    registry: EndpointRegistry, served: WorkerConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    openapi = OpenAPIDocument(registry)
    first = openapi.render()
    builds: list[int] = []
    original = openapi.build
    monkeypatch.setattr(openapi, "build", lambda: builds.append(1) or original())
    assert openapi.render() is first
    assert builds == []


def test_render_is_rebuilt_when_the_registry_version_changes(
    registry: EndpointRegistry, served: WorkerConnection
) -> None:
    openapi = OpenAPIDocument(registry)
    before = openapi.render()
    registry.register(worker("w2"), [spec("extra", pb.ENDPOINT_KIND_TOOL, ADD_INPUT)])
    after = openapi.render()
    assert b"/v1/tools/extra" not in before
    assert b"/v1/tools/extra" in after


def test_unserved_endpoints_disappear_from_the_document(
    registry: EndpointRegistry, served: WorkerConnection
) -> None:
    openapi = OpenAPIDocument(registry)
    openapi.render()
    registry.unregister(served)
    document = msgspec.json.decode(openapi.render())
    assert not [path for path in document["paths"] if path.startswith(("/v1/agents/", "/v1/tools/"))]
    assert not [name for name in document["components"]["schemas"] if name.startswith("writer.")]


def test_endpoint_served_by_a_remaining_replica_stays_in_the_document(registry: EndpointRegistry) -> None:
    first, second = worker("w1"), worker("w2")
    registry.register(first, [ALL_KINDS[1]])
    registry.register(second, [ALL_KINDS[1]])
    registry.unregister(first)
    assert "/v1/tools/add" in OpenAPIDocument(registry).build()["paths"]
