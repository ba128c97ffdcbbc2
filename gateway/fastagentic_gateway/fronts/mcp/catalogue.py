"""The MCP catalogue: registered endpoints as MCP tools, resources, resource templates and prompts.

Schema fusion for MCP. Tools are the tool endpoints and the agent endpoints; resources with a fixed URI
are resources, those with ``{variables}`` resource templates; prompts list their arguments from the
input schema. Rebuilt only when the registry changes (its ``version``), so a listing costs a dict copy.
Each caller sees only the endpoints whose scopes it holds: a listing is built once per set of scopes
that asks for it (and once for everyone when no endpoint requires a scope).

``outputSchema`` must describe an object, so a tool whose output is not one (an ``int``, a list, a union)
advertises ``{"type": "object", "properties": {"result": <its schema>}}`` and answers with
``structuredContent = {"result": <value>}``. A tool whose output is MCP content (the SDK's
``fastagentic.content`` types) advertises no ``outputSchema`` and answers with those content blocks.
"""

from __future__ import annotations

from typing import Any

from mcp_types.methods import serialize_server_result

from ...access.policy import visible
from ...access.principal import ANONYMOUS, Principal
from ...runs.model import EndpointKind
from ...workers.registry import Endpoint, EndpointRegistry

#: The SDK marks an output schema with this key when the result is MCP content blocks
#: (``fastagentic.content.CONTENT_SCHEMA_MARKER``; a unit test keeps the two equal).
CONTENT_SCHEMA_MARKER = "x-fastagentic-content"
#: ``_meta`` key on each tool naming the endpoint kind (``agent`` or ``tool``).
KIND_META_KEY = "dev.fastagentic/kind"

_TOOL_KINDS = frozenset({EndpointKind.AGENT, EndpointKind.TOOL})
_LIST_KEYS = {
    "tools": "tools",
    "resources": "resources",
    "templates": "resourceTemplates",
    "prompts": "prompts",
}
MAX_VIEWS = 256  # listings kept per registry version, one per (list, set of scopes)


def _listing(what: str, entries: list[tuple[Endpoint, dict[str, Any]]]) -> dict[str, Any]:
    # resultType is required in 2026-07-28; earlier revisions drop it
    return {_LIST_KEYS[what]: [entry for _, entry in entries], "resultType": "complete"}


class ToolView:
    """How one tool endpoint is served over MCP."""

    __slots__ = (
        "content",
        "endpoint",
        "header_schema",
        "input_first",
        "required",
        "structured",
        "tasks",
        "wrapped",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        info = endpoint.info
        self.endpoint = endpoint
        output = info.output_schema
        #: the result is MCP content blocks, passed through
        self.content = bool(output.get(CONTENT_SCHEMA_MARKER))
        #: an outputSchema is advertised and structuredContent sent
        self.structured = bool(output) and not self.content
        #: structuredContent is ``{"result": value}``
        self.wrapped = self.structured and not _is_object(output)
        #: MCP tasks: agents, and tools declared durable
        self.tasks = info.kind is EndpointKind.AGENT or info.durable
        #: MCP callers must run it as a task (the endpoint was declared ``task_required``)
        self.required = self.tasks and info.task_required
        #: as a task, its first questions are asked on the call before the task exists (``input_before_task``)
        self.input_first = self.tasks and info.input_before_task
        #: the input schema, when it declares ``x-mcp-header`` parameters (2026-07-28 Mcp-Param-* headers)
        self.header_schema = info.input_schema if _mentions(info.input_schema, "x-mcp-header") else None

    @property
    def name(self) -> str:
        return self.endpoint.name

    def tool(self) -> dict[str, Any]:
        info = self.endpoint.info
        tool: dict[str, Any] = {
            "name": info.name,
            "description": info.description or f"The {info.kind.value} {info.name}.",
            "inputSchema": _object_schema(info.input_schema),
            "execution": {"taskSupport": _task_support(self)},
            "_meta": {KIND_META_KEY: info.kind.value},
        }
        if self.structured:
            tool["outputSchema"] = _wrapped(info.output_schema) if self.wrapped else info.output_schema
        return tool


class Catalogue:
    """What MCP clients see of the registry, rebuilt when the registry changes."""

    def __init__(self, registry: EndpointRegistry) -> None:
        self.registry = registry
        self._version = -1
        self._tools: dict[str, ToolView] = {}
        self._listings: dict[str, dict[str, Any]] = {}
        self._entries: dict[str, list[tuple[Endpoint, dict[str, Any]]]] = {}
        self._views: dict[tuple[str, frozenset[str] | None], dict[str, Any]] = {}
        self._scoped = False  # some endpoint requires a scope
        self._served: dict[str, frozenset[tuple[str, bytes]]] = {}
        self._wire: dict[tuple[str, str, frozenset[str] | None], dict[str, Any]] = {}

    def _refresh(self) -> None:
        if self._version == self.registry.version:
            return
        tools: dict[str, ToolView] = {}
        served: dict[str, list[Endpoint]] = {"tools": [], "resources": [], "prompts": []}
        for endpoint in self.registry:
            kind = endpoint.info.kind
            if kind in _TOOL_KINDS:
                tools[endpoint.name] = ToolView(endpoint)
            if endpoint.served:
                served["tools" if kind in _TOOL_KINDS else f"{kind.value}s"].append(endpoint)
        self._tools = tools
        resources = [e for e in served["resources"] if not _is_template(e)]
        templates = [e for e in served["resources"] if _is_template(e)]
        self._entries = {
            "tools": [(e, tools[e.name].tool()) for e in served["tools"]],
            "resources": [(e, _resource(e)) for e in resources],
            "templates": [(e, _template(e)) for e in templates],
            "prompts": [(e, _prompt(e)) for e in served["prompts"]],
        }
        self._listings = {what: _listing(what, entries) for what, entries in self._entries.items()}
        self._scoped = any(e.info.scopes for entries in served.values() for e in entries)
        self._views = {}
        self._served = {
            kind: frozenset((e.name, e.fingerprint) for e in endpoints) for kind, endpoints in served.items()
        }
        self._wire = {}
        self._version = self.registry.version

    def _view_key(self, principal: Principal) -> frozenset[str] | None:
        return None if principal.unrestricted or not self._scoped else principal.scopes

    def listing(self, what: str, principal: Principal = ANONYMOUS) -> dict[str, Any]:
        """``tools``, ``resources``, ``templates`` or ``prompts``: the result of that list request, as
        ``principal`` may see it."""
        self._refresh()
        key = self._view_key(principal)
        if key is None:
            return self._listings[what]
        view = self._views.get((what, key))
        if view is None:
            if len(self._views) >= MAX_VIEWS:
                self._views.clear()
                self._wire.clear()
            entries = [(e, entry) for e, entry in self._entries[what] if visible(principal, e.info)]
            view = self._views[(what, key)] = _listing(what, entries)
        return view

    def wire(self, what: str, method: str, version: str, principal: Principal = ANONYMOUS) -> dict[str, Any]:
        """A listing as the SDK would put it on the wire for ``version`` (validated, fields that revision
        lacks dropped), computed once per registry change, revision and set of scopes. Never fresh for a
        client cache."""
        self._refresh()
        key = (what, version, self._view_key(principal))
        wire = self._wire.get(key)
        if wire is None:
            listing = {**self.listing(what, principal), "ttlMs": 0, "cacheScope": "private"}
            wire = self._wire[key] = serialize_server_result(method, version, listing)
        return wire

    def tool(self, name: str) -> ToolView | None:
        """The tool (or agent) named ``name``, served or not: a known one without workers is a 503, not 404."""
        self._refresh()
        return self._tools.get(name)

    def served(self) -> dict[str, frozenset[tuple[str, bytes]]]:
        """What each list (``tools``, ``resources``, ``prompts``) holds: compared to announce list changes."""
        self._refresh()
        return self._served

    def template(self, uri_template: str) -> Endpoint | None:
        for endpoint in self.registry:
            if endpoint.info.kind is EndpointKind.RESOURCE and endpoint.info.uri_template == uri_template:
                return endpoint
        return None

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """For 2026-07-28 ``Mcp-Param-*`` header checks: the input schema only when it declares headers."""
        view = self.tool(name)
        return view.header_schema if view is not None else None


def _task_support(view: ToolView) -> str:
    return "required" if view.required else "optional" if view.tasks else "forbidden"


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object"


def _object_schema(schema: dict[str, Any] | bool) -> dict[str, Any]:
    """An input schema with an object root, as MCP requires (an empty or ``true`` schema takes anything)."""
    if isinstance(schema, dict) and _is_object(schema):
        return schema
    return {"type": "object"}


def _wrapped(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"result": schema}``; ``$defs`` stay at the root so ``#/$defs/...`` references still resolve."""
    inner = {key: value for key, value in schema.items() if key not in ("$defs", "$schema")}
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
    }
    if "$defs" in schema:
        wrapper["$defs"] = schema["$defs"]
    return wrapper


def _mentions(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_mentions(value, key) for value in node.values())
    if isinstance(node, list):
        return any(_mentions(item, key) for item in node)
    return False


def _is_template(endpoint: Endpoint) -> bool:
    return "{" in (endpoint.info.uri_template or "")


def _described(entry: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.info.description:
        entry["description"] = endpoint.info.description
    if endpoint.info.mime_type:
        entry["mimeType"] = endpoint.info.mime_type
    return entry


def _resource(endpoint: Endpoint) -> dict[str, Any]:
    return _described({"uri": endpoint.info.uri_template, "name": endpoint.name}, endpoint)


def _template(endpoint: Endpoint) -> dict[str, Any]:
    return _described({"uriTemplate": endpoint.info.uri_template, "name": endpoint.name}, endpoint)


def _prompt(endpoint: Endpoint) -> dict[str, Any]:
    schema = endpoint.info.input_schema if isinstance(endpoint.info.input_schema, dict) else {}
    required = set(schema.get("required", ()))
    arguments = []
    for name, prop in schema.get("properties", {}).items():
        argument: dict[str, Any] = {"name": name, "required": name in required}
        description = prop.get("description") or prop.get("title") if isinstance(prop, dict) else None
        if description:
            argument["description"] = description
        arguments.append(argument)
    prompt: dict[str, Any] = {"name": endpoint.name, "arguments": arguments}
    if endpoint.info.description:
        prompt["description"] = endpoint.info.description
    return prompt
