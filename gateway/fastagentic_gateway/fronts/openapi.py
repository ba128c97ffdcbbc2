"""The live OpenAPI 3.1 document: the fixed routes plus one operation per registered endpoint.

Rebuilt only when the registry changes. Each endpoint's ``$defs`` move to ``components/schemas`` under
``<endpoint>.<Name>`` (a ``#/$defs/...`` reference would otherwise point at the document root).
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from .. import __version__
from ..access.policy import visible
from ..access.principal import ANONYMOUS, Principal
from ..runs.model import EndpointKind
from ..workers.registry import Endpoint, EndpointRegistry

ERROR = {"$ref": "#/components/schemas/Error"}
RUN = {"$ref": "#/components/schemas/Run"}

BASE_COMPONENTS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "stable error category"},
            "message": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["path", "message"],
                },
            },
        },
        "required": ["type", "message"],
    },
    "RunError": {
        "type": "object",
        "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        "required": ["type", "message"],
    },
    "Run": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string"},
            "endpoint": {"type": "string"},
            "kind": {"enum": [k.value for k in EndpointKind]},
            "status": {
                "enum": [
                    "queued",
                    "running",
                    "waiting_input",
                    "succeeded",
                    "failed",
                    "cancelled",
                    "timed_out",
                ]
            },
            "attempt": {"type": "integer"},
            "durable": {"type": "boolean"},
            "principal": {"type": "string"},
            "tenant": {"type": "string"},
            "output": {},
            "error": {"$ref": "#/components/schemas/RunError"},
            "last_seq": {"type": "integer"},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
            "started_at": {"type": "number"},
            "finished_at": {"type": "number"},
            "deadline_at": {"type": "number", "description": "when the run times out (Unix seconds)"},
            "replay_of": {
                "type": "object",
                "description": "the run and checkpoint this run was replayed from",
                "properties": {"run_id": {"type": "string"}, "checkpoint": {"type": "integer"}},
                "required": ["run_id", "checkpoint"],
            },
            "context_id": {
                "type": "string",
                "description": "the conversation the run belongs to (the A2A contextId of a run started "
                "by an A2A message)",
            },
        },
        "required": ["run_id", "endpoint", "kind", "status", "attempt"],
    },
}

RUN_TIMEOUT = {
    "name": "Run-Timeout",
    "in": "header",
    "description": "seconds from creation until the run times out (at most the max_run_timeout setting); "
    "default: the run_timeout setting",
    "schema": {"type": "number", "exclusiveMinimum": 0},
}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    described = {
        "400": "malformed JSON or parameters",
        "404": "unknown endpoint or run",
        "409": "conflict (idempotency key reused with another body, run already finished, nothing to replay)",
        "413": "body too large",
        "422": "input does not match the schema",
        "503": "no worker serves the endpoint (see Retry-After)",
        "500": "the call failed",
    }
    responses = {"200": ok}
    for code in codes:
        responses[str(code)] = {
            "description": described[str(code)],
            "content": {"application/json": {"schema": ERROR}},
        }
    return responses


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


SSE_CONTENT = {"text/event-stream": {"schema": {"type": "string"}}}

FIXED_PATHS: dict[str, Any] = {
    "/v1/endpoints": {
        "get": {
            "operationId": "listEndpoints",
            "summary": "Every registered endpoint",
            "responses": {"200": {"description": "endpoints"}},
        }
    },
    "/v1/runs": {
        "get": {
            "operationId": "listRuns",
            "summary": "The caller's runs, newest first",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "endpoint", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": _responses({"description": "a page of runs"}, 400),
        }
    },
    "/v1/runs/{run_id}": {
        "get": {
            "operationId": "getRun",
            "summary": "A run's status, output or error",
            "parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _responses({"description": "the run", "content": _json_content(RUN)}, 404),
        }
    },
    "/v1/runs/{run_id}/events": {
        "get": {
            "operationId": "streamRunEvents",
            "summary": "SSE of the run's events; Last-Event-ID resumes after that seq",
            "parameters": [
                {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
            ],
            "responses": _responses({"description": "event stream", "content": SSE_CONTENT}, 400, 404),
        }
    },
    "/v1/runs/{run_id}/replay": {
        "post": {
            "operationId": "replayRun",
            "summary": "Start a new run of the same endpoint and input from one of this run's checkpoints",
            "parameters": [
                {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}},
                RUN_TIMEOUT,
            ],
            "requestBody": {
                "required": False,
                "content": _json_content(
                    {
                        "type": "object",
                        "properties": {
                            "checkpoint": {
                                "type": ["integer", "null"],
                                "minimum": 1,
                                "description": "a checkpoint id; omitted or null: the run's last checkpoint",
                            }
                        },
                        "additionalProperties": False,
                    }
                ),
            },
            "responses": {
                "202": {
                    "description": "accepted; Location names the new run, whose replay_of names the origin",
                    "content": _json_content(RUN),
                },
                **{k: v for k, v in _responses({}, 400, 404, 409, 422, 503).items() if k != "200"},
            },
        }
    },
    "/v1/runs/{run_id}/resume": {
        "post": {
            "operationId": "resumeRun",
            "summary": "Answer the interrupt a run waits on (status waiting_input)",
            "parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {
                "required": True,
                "content": _json_content(
                    {
                        "type": "object",
                        "properties": {
                            "answer": {"description": "the answer, valid against the interrupt's schema"},
                            "interrupt": {
                                "type": "string",
                                "description": "the interrupt's id; omitted: the one the run waits on",
                            },
                        },
                        "required": ["answer"],
                        "additionalProperties": False,
                    }
                ),
            },
            "responses": _responses(
                {
                    "description": "the run, running again or queued for a new attempt",
                    "content": _json_content(RUN),
                },
                400,
                404,
                409,
                422,
            ),
        }
    },
    "/v1/runs/{run_id}/cancel": {
        "post": {
            "operationId": "cancelRun",
            "summary": "Cancel a run",
            "parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _responses(
                {"description": "the cancelled run", "content": _json_content(RUN)}, 404, 409
            ),
        }
    },
}


def _lift_defs(name: str, schema: Any, components: dict[str, Any], role: str) -> Any:
    """Move ``$defs`` into components as ``name.Key`` and rewrite references to them. When the input and
    the output define the same key differently, the later one becomes ``name.<role>.Key``."""
    if not isinstance(schema, dict):
        return schema
    schema = copy.deepcopy(schema)
    defs = schema.pop("$defs", {})
    targets = {}
    for key, definition in defs.items():
        target = f"{name}.{key}"
        if target in components and components[target] != definition:
            target = f"{name}.{role}.{key}"
        targets[key] = target

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref.removeprefix("#/$defs/")
                node["$ref"] = f"#/components/schemas/{targets.get(key, f'{name}.{key}')}"
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for item in node:
                rewrite(item)
        return node

    for key, definition in defs.items():
        components[targets[key]] = rewrite(definition)
    return rewrite(schema)


def _endpoint_paths(endpoint: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    info = endpoint.info
    input_schema = _lift_defs(info.name, info.input_schema, components, "input")
    output_schema = _lift_defs(info.name, info.output_schema, components, "output")
    content: dict[str, Any] = {"schema": input_schema}
    body = {"required": True, "content": {"application/json": content}}
    common = {
        "summary": info.description.split("\n")[0] if info.description else info.name,
        "description": info.description,
        "tags": [info.kind.value, *info.tags],
    }
    if info.examples:
        content["examples"] = {
            f"example{i + 1}": {"value": example} for i, example in enumerate(info.examples)
        }
    errors = (400, 404, 413, 422, 503)
    if info.kind is EndpointKind.AGENT:
        invoke_result = {
            "type": "object",
            "properties": {
                "run_id": {"type": "string"},
                "status": {"type": "string"},
                "output": output_schema,
                "error": {"$ref": "#/components/schemas/RunError"},
            },
            "required": ["run_id", "status"],
        }
        base = f"/v1/agents/{info.name}"
        return {
            f"{base}/invoke": {
                "post": {
                    **common,
                    "operationId": f"agent.{info.name}.invoke",
                    "parameters": [RUN_TIMEOUT],
                    "requestBody": body,
                    "responses": _responses(
                        {"description": "the finished run", "content": _json_content(invoke_result)}, *errors
                    ),
                }
            },
            f"{base}/stream": {
                "post": {
                    **common,
                    "operationId": f"agent.{info.name}.stream",
                    "parameters": [RUN_TIMEOUT],
                    "requestBody": body,
                    "responses": _responses(
                        {"description": "the run's events as SSE", "content": SSE_CONTENT}, *errors
                    ),
                }
            },
            f"{base}/runs": {
                "post": {
                    **common,
                    "operationId": f"agent.{info.name}.start",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": 255},
                        },
                        RUN_TIMEOUT,
                    ],
                    "requestBody": body,
                    "responses": {
                        "202": {
                            "description": "accepted; Location names the run",
                            "content": _json_content(RUN),
                        },
                        **{k: v for k, v in _responses({}, *errors, 409).items() if k != "200"},
                    },
                }
            },
        }
    if info.kind is EndpointKind.TOOL:
        result = {"type": "object", "properties": {"output": output_schema}, "required": ["output"]}
        return {
            f"/v1/tools/{info.name}": {
                "post": {
                    **common,
                    "operationId": f"tool.{info.name}",
                    "requestBody": body,
                    "responses": _responses(
                        {"description": "the tool's output", "content": _json_content(result)}, *errors, 500
                    ),
                }
            }
        }
    if info.kind is EndpointKind.PROMPT:
        return {
            f"/v1/prompts/{info.name}": {
                "post": {
                    **common,
                    "operationId": f"prompt.{info.name}",
                    "requestBody": body,
                    "responses": _responses(
                        {"description": "the rendered messages", "content": _json_content(output_schema)},
                        *errors,
                        500,
                    ),
                }
            }
        }
    template = info.uri_template or ""
    return {
        f"/v1/resources/{template}": {
            "get": {
                **common,
                "operationId": f"resource.{info.name}",
                "parameters": [
                    {"name": key, "in": "path", "required": True, "schema": value}
                    for key, value in (
                        input_schema.get("properties", {}) if isinstance(input_schema, dict) else {}
                    ).items()
                ],
                "responses": _responses(
                    {"description": "the resource content", "content": {info.mime_type or "*/*": {}}},
                    404,
                    503,
                    500,
                ),
            }
        }
    }


class OpenAPIDocument:
    """The document, built once per registry change and per set of scopes that reads it: a caller sees
    only the endpoints it may use."""

    MAX_VIEWS = 64  # distinct scope sets cached at once

    def __init__(self, registry: EndpointRegistry, title: str = "FastAgentic gateway") -> None:
        self.registry = registry
        self.title = title
        self._version = -1
        self._cached: dict[frozenset[str] | None, bytes] = {}

    def render(self, principal: Principal = ANONYMOUS) -> bytes:
        if self._version != self.registry.version:
            self._cached.clear()
            self._version = self.registry.version
        key = None if principal.unrestricted else principal.scopes
        body = self._cached.get(key)
        if body is None:
            if len(self._cached) >= self.MAX_VIEWS:
                self._cached.clear()
            body = self._cached[key] = msgspec.json.encode(self.build(principal))
        return body

    def build(self, principal: Principal = ANONYMOUS) -> dict[str, Any]:
        components = dict(BASE_COMPONENTS)
        paths = dict(FIXED_PATHS)
        for endpoint in sorted(self.registry.served(), key=lambda e: e.name):
            if visible(principal, endpoint.info):
                paths.update(_endpoint_paths(endpoint, components))
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": __version__},
            "paths": paths,
            "components": {"schemas": components},
        }


DOCS_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>FastAgentic gateway</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<noscript>The live OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>
"""
