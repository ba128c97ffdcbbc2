"""App: the registry of one agent process's endpoints, filled by decorators."""

from __future__ import annotations

import base64
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import msgspec

from .adapters.base import Adapter, is_adapter
from .adapters.discovery import adapter_for
from .adapters.shape import adapter_function
from .context import RunContext
from .hooks import WORKER_POINTS, WorkerHook
from .rates import parse_rate
from .schema import FunctionShape, inspect_function
from .v1 import worker_pb2 as pb

F = TypeVar("F", bound=Callable[..., Any])
G = TypeVar("G", bound=Callable[..., Any])
H = TypeVar("H", bound=Callable[..., Any])

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
_TEMPLATE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

_KINDS = {
    "agent": pb.ENDPOINT_KIND_AGENT,
    "tool": pb.ENDPOINT_KIND_TOOL,
    "resource": pb.ENDPOINT_KIND_RESOURCE,
    "prompt": pb.ENDPOINT_KIND_PROMPT,
}

PROMPT_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {"type": "object"},
                },
                "required": ["role", "content"],
            },
        }
    },
    "required": ["messages"],
}

RESOURCE_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "uri": {"type": "string"},
        "mime_type": {"type": "string"},
        "text": {"type": "string"},
        "blob": {"type": "string", "contentEncoding": "base64"},
    },
    "required": ["mime_type"],
}

_json = msgspec.json.Encoder()

#: The longest resource URI a worker may announce as changed (``App.resource_changed``; the gateway checks it).
MAX_RESOURCE_URI = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: What one completion answer may hold (MCP's limit on ``completion.values``; the gateway enforces both).
MAX_COMPLETION_VALUES = 100
MAX_COMPLETION_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Completer:
    """Completes one argument of a prompt or resource template: ``fn(value)`` or ``fn(value, arguments)``,
    sync or async, returning the candidate values (any iterable of str)."""

    fn: Callable[..., Any]
    is_async: bool
    with_arguments: bool

    @classmethod
    def of(cls, fn: Callable[..., Any], where: str) -> Completer:
        if not callable(fn):
            raise TypeError(f"{where}: a completer must be callable, not {type(fn).__name__}")
        try:
            parameters = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature: give it the value only
            parameters = []
        positional = [
            p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        with_arguments = len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in positional)
        return cls(fn=fn, is_async=inspect.iscoroutinefunction(fn), with_arguments=with_arguments)

    def args(self, value: str, arguments: Mapping[str, str]) -> tuple[Any, ...]:
        return (value, dict(arguments)) if self.with_arguments else (value,)


def completion_values(result: Any) -> tuple[list[str], int, bool]:
    """A completer's result, bounded as the protocol requires: (values, total, has_more). Values longer
    than ``MAX_COMPLETION_CHARS`` are dropped, at most ``MAX_COMPLETION_VALUES`` are kept."""
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise TypeError(f"a completer returns a list of str, not {type(result).__name__}")
    values = [str(v) for v in result]
    values = [v for v in dict.fromkeys(values) if len(v) <= MAX_COMPLETION_CHARS]
    return values[:MAX_COMPLETION_VALUES], len(values), len(values) > MAX_COMPLETION_VALUES


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One registered function and how it is described to the gateway."""

    name: str
    kind: str
    fn: Callable[..., Any]
    shape: FunctionShape
    description: str
    durable: bool
    streams: bool
    scopes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    examples: tuple[Any, ...] = ()
    uri_template: str = ""
    mime_type: str = ""
    output_schema: dict[str, Any] = field(default_factory=dict)
    completers: Mapping[str, Completer] = field(default_factory=dict)
    rate_limit: str = ""
    task_required: bool = False
    input_before_task: bool = False
    require_approval: bool = False

    def spec(self) -> pb.EndpointSpec:
        return pb.EndpointSpec(
            name=self.name,
            kind=_KINDS[self.kind],
            description=self.description,
            input_schema=_json.encode(self.shape.input_schema),
            output_schema=_json.encode(self.output_schema),
            streams=self.streams,
            durable=self.durable,
            scopes=list(self.scopes),
            tags=list(self.tags),
            examples=_json.encode(list(self.examples)),
            uri_template=self.uri_template,
            mime_type=self.mime_type,
            completions=sorted(self.completers),
            rate_limit=self.rate_limit,
            task_required=self.task_required,
            input_before_task=self.input_before_task,
            require_approval=self.require_approval,
        )

    def encode_output(self, value: Any) -> bytes:
        """JSON of the function's result, in the shape its kind promises."""
        if self.kind == "prompt":
            return _json.encode({"messages": _prompt_messages(value)})
        if self.kind == "resource":
            return _json.encode(self._resource_content(value))
        return self.shape.encode_output(value)

    def _resource_content(self, value: Any) -> dict[str, Any]:
        if isinstance(value, bytes):
            return {
                "mime_type": self.mime_type or "application/octet-stream",
                "blob": base64.b64encode(value).decode(),
            }
        if isinstance(value, str):
            return {"mime_type": self.mime_type or "text/plain", "text": value}
        return {
            "mime_type": self.mime_type or "application/json",
            "text": self.shape.encode_output(value).decode(),
        }


def _prompt_messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": {"type": "text", "text": value}}]
    if isinstance(value, Sequence):
        messages = []
        for item in value:
            if not isinstance(item, dict) or "role" not in item or "content" not in item:
                raise TypeError("a prompt returns a str or a list of {'role': ..., 'content': ...} messages")
            content = item["content"]
            if isinstance(content, str):
                content = {"type": "text", "text": content}
            messages.append({"role": item["role"], "content": content})
        return messages
    raise TypeError(f"a prompt returns a str or a list of messages, not {type(value).__name__}")


class App:
    """An agent application: the endpoints one worker process serves.

    Each App keeps its own registry; nothing is global, so several apps can live in one process (and in
    one test).
    """

    def __init__(self, name: str, *, description: str = "", version: str = "0.0.0") -> None:
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"app name {name!r} must match {NAME_PATTERN.pattern}")
        self.name = name
        self.description = description
        self.version = version
        self._endpoints: dict[str, Endpoint] = {}
        #: the URI patterns of the resources, for ``resource_changed``
        self._resource_uris: list[tuple[str, re.Pattern[str]]] = []
        #: told of each resource change: the workers serving this app (``Worker.run`` attaches itself)
        self._change_listeners: list[Callable[[str], None]] = []
        #: worker-side hooks by point, in registration order (``hook``)
        self.hooks: dict[str, list[WorkerHook]] = {}

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        return dict(self._endpoints)

    def endpoint(self, name: str) -> Endpoint:
        return self._endpoints[name]

    # ------------------------------------------------------------------ resource changes

    def resource_changed(self, uri: str) -> None:
        """Say that the resource at ``uri`` changed: MCP clients subscribed to it are told
        (``notifications/resources/updated``) and read it again.

        ``uri`` must be one of this app's resources: a fixed resource's URI, or a URI one of its templates
        matches (``ValueError`` otherwise). Callable from anywhere in the worker process: an endpoint
        (sync or async), a background task or another thread. Fire and forget: the workers serving the
        app send the notice to their gateway (one sent while a worker is reconnecting goes out when it is
        back); with no worker running, nothing is sent."""
        if not isinstance(uri, str):
            raise TypeError(f"a resource URI is a str, not {type(uri).__name__}")
        if len(uri) > MAX_RESOURCE_URI:
            raise ValueError(f"resource URI is {len(uri)} characters long (at most {MAX_RESOURCE_URI})")
        if _CONTROL.search(uri):
            raise ValueError(f"resource URI {uri[:100]!r} holds a control character")
        if not any(pattern.fullmatch(uri) for _, pattern in self._resource_uris):
            served = ", ".join(template for template, _ in self._resource_uris[:5]) or "none"
            raise ValueError(
                f"{uri[:200]!r} is not a URI of a resource of app {self.name!r} (its resources: {served})"
            )
        for listener in list(self._change_listeners):
            listener(uri)

    def _listen_for_changes(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(uri)`` on every ``resource_changed``; returns what stops it (the worker's hook)."""
        self._change_listeners.append(listener)

        def stop() -> None:
            if listener in self._change_listeners:
                self._change_listeners.remove(listener)

        return stop

    # ------------------------------------------------------------------ worker-side hooks

    def hook(self, point: str) -> Callable[[H], H]:
        """Register a worker-side hook at ``point`` (``on_request``, ``on_response``, ``on_tool_call``,
        ``on_tool_result``): ``fn(context: WorkerHookContext) -> Action | None`` (sync or async; None means
        proceed). Worker-side hooks run in registration order, in the worker, before the gateway's hooks of
        the same point (tool calls through ``ctx.tool`` / ``ctx.check_tool_call``)::

            @app.hook("on_tool_call")
            def no_shell(call: WorkerHookContext) -> Action | None:
                if call.tool == "shell":
                    return Reject("no shell here")
                return None
        """
        if point not in WORKER_POINTS:
            raise ValueError(f"worker-side hooks run at {', '.join(WORKER_POINTS)}, not {point!r}")

        def register(fn: H) -> H:
            if not callable(fn):
                raise TypeError(f"a hook is a function, not {type(fn).__name__}")
            self.hooks.setdefault(point, []).append(fn)
            return fn

        return register

    # ------------------------------------------------------------------ decorators

    @overload
    def agent_endpoint(self, fn: F, /) -> F: ...
    @overload
    def agent_endpoint(
        self,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        durable: bool = True,
        streams: bool = True,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        examples: Sequence[Any] = (),
        rate_limit: str | None = None,
        adapter: Adapter | None = None,
        task_required: bool = False,
        input_before_task: bool = False,
        require_approval: bool = False,
    ) -> Callable[[G], G]: ...

    def agent_endpoint(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        durable: bool = True,
        streams: bool = True,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        examples: Sequence[Any] = (),
        rate_limit: str | None = None,
        adapter: Adapter | None = None,
        task_required: bool = False,
        input_before_task: bool = False,
        require_approval: bool = False,
    ) -> F | Callable[[F], F]:
        """An agent: a run that may stream events and checkpoint. Durable by default.

        ``rate_limit`` (``"60/minute"``): the most calls the gateway admits per caller (principal).

        ``task_required``: MCP clients must run it as a task (``execution.taskSupport: "required"``); a
        plain MCP ``tools/call`` is refused. REST and A2A callers are not affected.

        ``input_before_task``: an MCP client that runs it as a task (the 2026-07-28 tasks extension) is
        asked the questions the run asks first on the call itself (``InputRequiredResult`` rounds), and
        gets the task once the run goes past them (its first event that is not a question); without it
        the task comes at once and the run asks within it. Other callers are not affected.

        ``require_approval``: every call waits for a person's decision (approve, edit the input, reject)
        before a worker runs it, whichever protocol it came through; decided by a principal with the
        gateway's ``approver_scope``. A gateway too old to enforce it refuses the worker.

        ``adapter``: a framework adapter runs the run. The decorated function then maps the endpoint's
        input (its parameters, as for any endpoint) to the adapter's input, and the endpoint's output is
        the adapter's."""
        options: dict[str, Any] = dict(
            rate_limit=rate_limit,
            task_required=task_required,
            input_before_task=input_before_task,
            require_approval=require_approval,
            name=name,
            description=description,
            durable=durable,
            streams=streams,
            scopes=scopes,
            tags=tags,
            examples=examples,
        )
        if adapter is None:
            return self._decorate("agent", fn, options)
        if not is_adapter(adapter):
            raise TypeError(f"adapter= takes an adapter, not {type(adapter).__name__} (see app.agent)")

        def register(mapper: F) -> F:
            function, shape = adapter_function(adapter, mapper)
            if description is None and not shape.description:
                options["description"] = adapter.description
            self._register("agent", function, shape=shape, **options)
            return mapper

        return register(fn) if fn is not None else register

    def agent(
        self,
        target: Any,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        durable: bool = True,
        streams: bool = True,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        examples: Sequence[Any] = (),
        rate_limit: str | None = None,
        task_required: bool = False,
        input_before_task: bool = False,
        require_approval: bool = False,
    ) -> Adapter:
        """Register a framework agent as an agent endpoint: ``app.agent(pydantic_agent, name="support")``.

        ``target`` is an adapter, or an object an adapter is found for (``fastagentic.adapters``: the
        built-in PydanticAI and LangGraph adapters, the ``fastagentic.adapters`` entry points, then
        ``SimpleAdapter`` for a plain callable). The input and output schemas are the adapter's; ``name``
        defaults to the adapter's name. Options as for ``agent_endpoint``. Returns the adapter."""
        adapter = adapter_for(target)
        endpoint_name = name if name is not None else adapter.name
        if not endpoint_name:
            raise ValueError(f"{type(adapter).__name__} has no name of its own: pass name=")
        function, shape = adapter_function(adapter)
        self._register(
            "agent",
            function,
            shape=shape,
            name=endpoint_name,
            description=description if description is not None else adapter.description,
            durable=durable,
            streams=streams,
            scopes=scopes,
            tags=tags,
            examples=examples,
            rate_limit=rate_limit,
            task_required=task_required,
            input_before_task=input_before_task,
            require_approval=require_approval,
        )
        return adapter

    @overload
    def tool(self, fn: F, /) -> F: ...
    @overload
    def tool(
        self,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        durable: bool = False,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        examples: Sequence[Any] = (),
        rate_limit: str | None = None,
        task_required: bool = False,
        input_before_task: bool = False,
        require_approval: bool = False,
    ) -> Callable[[G], G]: ...

    def tool(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        durable: bool = False,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        examples: Sequence[Any] = (),
        rate_limit: str | None = None,
        task_required: bool = False,
        input_before_task: bool = False,
        require_approval: bool = False,
    ) -> F | Callable[[F], F]:
        """A tool: one call, ephemeral by default. ``rate_limit`` and ``require_approval`` as for
        ``agent_endpoint``; ``task_required`` and ``input_before_task`` too, for a durable tool (only durable
        tools run as MCP tasks)."""
        if task_required and not durable:
            raise ValueError("task_required=True needs durable=True: only durable tools run as MCP tasks")
        if input_before_task and not durable:
            raise ValueError("input_before_task=True needs durable=True: only durable tools run as MCP tasks")
        options = dict(
            rate_limit=rate_limit,
            task_required=task_required,
            input_before_task=input_before_task,
            require_approval=require_approval,
            name=name,
            description=description,
            durable=durable,
            streams=False,
            scopes=scopes,
            tags=tags,
            examples=examples,
        )
        return self._decorate("tool", fn, options)

    def resource(
        self,
        uri_template: str,
        *,
        name: str | None = None,
        description: str | None = None,
        mime_type: str = "",
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        complete: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Callable[[F], F]:
        """A resource read by URI; ``{name}`` parts of the template become the function's arguments.

        ``complete`` maps template variables to completers (see ``prompt``)."""
        if "://" not in uri_template:
            raise ValueError(f"resource URI template {uri_template!r} needs a scheme, like docs://{{name}}")
        options = {
            "name": name,
            "description": description,
            "scopes": scopes,
            "tags": tags,
            "durable": False,
            "streams": False,
            "uri_template": uri_template,
            "mime_type": mime_type,
            "complete": complete,
        }

        def register(fn: F) -> F:
            self._decorate("resource", fn, options)
            return fn

        return register

    @overload
    def prompt(self, fn: F, /) -> F: ...
    @overload
    def prompt(
        self,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        complete: Mapping[str, Callable[..., Any]] | None = None,
    ) -> Callable[[G], G]: ...

    def prompt(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        complete: Mapping[str, Callable[..., Any]] | None = None,
    ) -> F | Callable[[F], F]:
        """A prompt rendered with arguments; returns a str or a list of {role, content} messages.

        ``complete`` maps argument names to completers for MCP ``completion/complete``: each is called as
        ``fn(value)`` or ``fn(value, arguments)`` (the partial value typed so far, and the other arguments
        the client already filled in, as strings), sync or async, and returns the candidate values."""
        options = dict(
            name=name,
            description=description,
            durable=False,
            streams=False,
            scopes=scopes,
            tags=tags,
            complete=complete,
        )
        return self._decorate("prompt", fn, options)

    # ------------------------------------------------------------------ registration

    def _decorate(self, kind: str, fn: F | None, options: dict[str, Any]) -> F | Callable[[F], F]:
        def register(fn: F) -> F:
            self._register(kind, fn, **options)
            return fn

        return register(fn) if fn is not None else register

    def _register(
        self,
        kind: str,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        durable: bool,
        streams: bool,
        scopes: Sequence[str] = (),
        tags: Sequence[str] = (),
        examples: Sequence[Any] = (),
        uri_template: str = "",
        mime_type: str = "",
        complete: Mapping[str, Callable[..., Any]] | None = None,
        rate_limit: str | None = None,
        shape: FunctionShape | None = None,
        task_required: bool = False,
        input_before_task: bool = False,
        require_approval: bool = False,
    ) -> None:
        name = fn.__name__ if name is None else name
        if rate_limit is not None:
            parse_rate(rate_limit)  # ValueError naming the mistake, at import time
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"endpoint name {name!r} must match {NAME_PATTERN.pattern}")
        if name in self._endpoints:
            raise ValueError(f"{self.name}: an endpoint named {name!r} is already registered")
        if shape is None:
            shape = inspect_function(fn, context_type=RunContext, kind=kind)
        if uri_template:
            params = set(_TEMPLATE_VAR.findall(uri_template))
            declared = set(shape.input_schema.get("properties", {}))
            if params != declared:
                raise ValueError(
                    f"resource {uri_template!r}: template variables {sorted(params)} must be exactly "
                    f"the parameters of {fn.__name__} {sorted(declared)}"
                )
            not_text = [
                name
                for name, schema in shape.input_schema.get("properties", {}).items()
                if schema.get("type") != "string"
            ]
            if not_text:
                raise ValueError(
                    f"resource {uri_template!r}: parameters {sorted(not_text)} of {fn.__name__} must be str "
                    "(URI template variables arrive as text)"
                )
        completers: dict[str, Completer] = {}
        for argument, completer in (complete or {}).items():
            if argument not in shape.input_schema.get("properties", {}):
                raise ValueError(
                    f"{kind} {name!r}: cannot complete {argument!r}, which is not one of its arguments "
                    f"{sorted(shape.input_schema.get('properties', {}))}"
                )
            completers[argument] = Completer.of(completer, f"{kind} {name!r}, argument {argument!r}")
        output_schema = {
            "prompt": PROMPT_OUTPUT_SCHEMA,
            "resource": RESOURCE_OUTPUT_SCHEMA,
        }.get(kind, shape.output_schema)
        self._endpoints[name] = Endpoint(
            name=name,
            kind=kind,
            fn=fn,
            shape=shape,
            description=description if description is not None else shape.description,
            durable=durable,
            streams=streams,
            scopes=tuple(scopes),
            tags=tuple(tags),
            examples=tuple(examples),
            uri_template=uri_template,
            mime_type=mime_type,
            output_schema=output_schema,
            completers=completers,
            rate_limit=rate_limit.strip() if rate_limit else "",
            task_required=task_required,
            input_before_task=input_before_task,
            require_approval=require_approval,
        )
        if uri_template:
            self._resource_uris.append((uri_template, _uri_pattern(uri_template)))


def _uri_pattern(template: str) -> re.Pattern[str]:
    """The URIs of a resource: its template with each ``{variable}`` one path segment (as the gateway reads it)."""
    parts = _TEMPLATE_VAR.split(template)
    return re.compile(
        "".join("[^/?#]+" if index % 2 else re.escape(part) for index, part in enumerate(parts))
    )
