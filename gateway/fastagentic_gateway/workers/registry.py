"""The endpoint registry: which endpoints exist, how they are described, which workers serve them.

It follows workers live. Two workers registering the same endpoint name are replicas sharing the load;
a registration whose description differs from the one already served is refused. An endpoint whose last
worker left stays known (so callers get 503 "no worker", not 404) until the gateway restarts.

In a cluster, peers' catalogues arrive through the bus (``set_remote``): an endpoint served only on another
replica is listed and accepts calls here (its runs are dispatched there); it is ``served`` while any
replica serves it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from fastagentic.rates import parse_rate
from fastagentic.v1 import worker_pb2 as pb

from ..runs.model import EndpointKind
from ..validation import InputValidator, unresolvable_refs
from .connection import ProtocolViolation

if TYPE_CHECKING:
    from .connection import WorkerConnection

log = logging.getLogger("fastagentic.registry")

#: The longest resource URI a worker may announce as changed (ResourceChanged).
MAX_RESOURCE_URI = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
#: RFC 6749 scope-token: what can stand in a WWW-Authenticate challenge and a token's scope claim.
SCOPE_PATTERN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_TEMPLATE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

_KINDS = {
    pb.ENDPOINT_KIND_AGENT: EndpointKind.AGENT,
    pb.ENDPOINT_KIND_TOOL: EndpointKind.TOOL,
    pb.ENDPOINT_KIND_RESOURCE: EndpointKind.RESOURCE,
    pb.ENDPOINT_KIND_PROMPT: EndpointKind.PROMPT,
}


class RegistrationError(Exception):
    """A worker described an endpoint the gateway cannot accept."""


class EndpointInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The public description of an endpoint (GET /v1/endpoints)."""

    name: str
    kind: EndpointKind
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    streams: bool
    durable: bool
    scopes: list[str]
    tags: list[str]
    examples: list[Any]
    uri_template: str | None = None
    mime_type: str | None = None
    rate_limit: str | None = None  # what the endpoint's author allows each principal ("60/minute")
    task_required: bool = False  # MCP clients must run it as a task (agents and durable tools)
    #: MCP clients running it as a task are asked its first questions before the task exists (SEP-2663)
    input_before_task: bool = False
    require_approval: bool = False  # every call waits for an approver's decision (runs/approval.py)


class Endpoint:
    """A registered endpoint, with what the gateway needs to serve it fast."""

    __slots__ = (
        "_uri_pattern",
        "fingerprint",
        "info",
        "remote",
        "remote_completions",
        "validator",
        "workers",
    )

    def __init__(self, info: EndpointInfo, fingerprint: bytes | None = None) -> None:
        self.info = info
        self.fingerprint = fingerprint if fingerprint is not None else fingerprint_of(info)
        self.validator = InputValidator(info.input_schema)
        self.workers: list[WorkerConnection] = []  # connected to this replica
        self.remote: set[str] = set()  # ids of other replicas with workers serving it
        self.remote_completions: dict[str, frozenset[str]] = {}  # replica -> arguments its workers complete
        self._uri_pattern = _template_regex(info.uri_template) if info.uri_template else None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def served(self) -> bool:
        """Some worker, here or on another replica, serves it."""
        return bool(self.workers or self.remote)

    def match_uri(self, uri: str) -> dict[str, str] | None:
        """The template variables when ``uri`` is one of this resource's URIs."""
        if self._uri_pattern is None:
            return None
        match = self._uri_pattern.fullmatch(uri)
        return match.groupdict() if match else None


def _template_regex(template: str) -> re.Pattern[str]:
    parts = _TEMPLATE_VAR.split(template)
    regex = "".join(
        f"(?P<{part}>[^/?#]+)" if index % 2 else re.escape(part) for index, part in enumerate(parts)
    )
    return re.compile(regex)


def _json(raw: bytes, what: str, name: str, default: Any) -> Any:
    if not raw:
        return default
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise RegistrationError(f"endpoint {name!r}: {what} is not valid JSON: {exc}") from exc


def endpoint_from_spec(spec: pb.EndpointSpec) -> Endpoint:
    """Validate a worker's EndpointSpec; raise RegistrationError naming the problem."""
    if not NAME_PATTERN.fullmatch(spec.name):
        raise RegistrationError(f"endpoint name {spec.name!r} must match {NAME_PATTERN.pattern}")
    for scope in spec.scopes:
        if not SCOPE_PATTERN.fullmatch(scope):
            raise RegistrationError(
                f"endpoint {spec.name!r}: scope {scope[:64]!r} is not an OAuth scope token "
                "(1-128 printable ASCII characters, no space, quote or backslash)"
            )
    kind = _KINDS.get(spec.kind)
    if kind is None:
        raise RegistrationError(f"endpoint {spec.name!r}: unknown kind {spec.kind}")
    input_schema = _json(spec.input_schema, "input_schema", spec.name, {})
    output_schema = _json(spec.output_schema, "output_schema", spec.name, {})
    examples = _json(spec.examples, "examples", spec.name, [])
    for what, schema in (("input_schema", input_schema), ("output_schema", output_schema)):
        if not isinstance(schema, dict | bool):
            raise RegistrationError(f"endpoint {spec.name!r}: {what} must be a JSON Schema object")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise RegistrationError(
                f"endpoint {spec.name!r}: {what} is not a valid JSON Schema: {exc.message}"
            ) from exc
        dangling = unresolvable_refs(schema)
        if dangling:
            raise RegistrationError(
                f"endpoint {spec.name!r}: {what} has $ref(s) that do not resolve within it: {', '.join(dangling[:5])}"
            )
    if not isinstance(examples, list):
        raise RegistrationError(f"endpoint {spec.name!r}: examples must be a JSON array")
    if kind is EndpointKind.RESOURCE:
        if "://" not in spec.uri_template:
            raise RegistrationError(
                f"resource {spec.name!r}: uri_template {spec.uri_template!r} needs a scheme"
            )
        variables = set(_TEMPLATE_VAR.findall(spec.uri_template))
        properties = set(input_schema.get("properties", {})) if isinstance(input_schema, dict) else set()
        if variables != properties:
            raise RegistrationError(
                f"resource {spec.name!r}: template variables {sorted(variables)} must be exactly the input "
                f"properties {sorted(properties)}"
            )
    runs_as_task = kind is EndpointKind.AGENT or (kind is EndpointKind.TOOL and spec.durable)
    if spec.task_required and not runs_as_task:
        raise RegistrationError(
            f"endpoint {spec.name!r}: only agents and durable tools run as tasks, so only they may require one"
        )
    if spec.input_before_task and not runs_as_task:
        raise RegistrationError(
            f"endpoint {spec.name!r}: only agents and durable tools run as tasks, so only they may ask for "
            "input before their task"
        )
    info = EndpointInfo(
        name=spec.name,
        kind=kind,
        description=spec.description,
        input_schema=input_schema,
        output_schema=output_schema,
        streams=spec.streams,
        durable=spec.durable,
        scopes=list(spec.scopes),
        tags=list(spec.tags),
        examples=examples,
        uri_template=spec.uri_template or None,
        mime_type=spec.mime_type or None,
        rate_limit=_rate_limit(spec),
        task_required=spec.task_required,
        input_before_task=spec.input_before_task,
        require_approval=spec.require_approval,
    )
    return Endpoint(info)


def _rate_limit(spec: pb.EndpointSpec) -> str | None:
    if not spec.rate_limit:
        return None
    try:
        return parse_rate(spec.rate_limit).text
    except ValueError as exc:
        raise RegistrationError(f"endpoint {spec.name!r}: rate_limit: {exc}") from None


def fingerprint_of(info: EndpointInfo) -> bytes:
    """What must agree between replicas of an endpoint: everything a caller relies on."""
    described: list[Any] = [info.kind, info.input_schema, info.output_schema, info.durable, info.uri_template]
    if (
        info.task_required
    ):  # only then: the fingerprints of endpoints that do not require a task are unchanged
        described.append("task_required")
    if info.require_approval:  # likewise: replicas of an endpoint agree on whether calls need approval
        described.append("require_approval")
    if info.input_before_task:  # and on whether an MCP task is created before or after the first questions
        described.append("input_before_task")
    return msgspec.json.encode(described, order="deterministic")


class EndpointRegistry:
    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self.version = 0  # bumped on every change, so derived documents can be cached
        self._listeners: list[Callable[[], None]] = []
        self._resource_listeners: list[Callable[[str], None]] = []
        self.warm_at = 0.0  # monotonic time until which workers may still be reconnecting (after a start)

    def warming(self) -> bool:
        """Right after the gateway started: an unknown name may belong to a worker still reconnecting."""
        return time.monotonic() < self.warm_at

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self._endpoints.values())

    def get(self, name: str) -> Endpoint | None:
        return self._endpoints.get(name)

    def served(self) -> list[Endpoint]:
        return [endpoint for endpoint in self._endpoints.values() if endpoint.served]

    def local(self) -> list[EndpointInfo]:
        """What this replica's workers serve (the catalogue it advertises to its peers)."""
        return [endpoint.info for endpoint in self._endpoints.values() if endpoint.workers]

    def local_completions(self) -> dict[str, list[str]]:
        """Endpoint name -> the arguments some worker of this replica completes."""
        completions: dict[str, list[str]] = {}
        for endpoint in self._endpoints.values():
            arguments = {a for worker in endpoint.workers for a in worker.completions.get(endpoint.name, ())}
            if arguments:
                completions[endpoint.name] = sorted(arguments)
        return completions

    def resource_for(self, uri: str) -> tuple[Endpoint, dict[str, str]] | None:
        for endpoint in self._endpoints.values():
            if endpoint.info.kind is EndpointKind.RESOURCE:
                params = endpoint.match_uri(uri)
                if params is not None:
                    return endpoint, params
        return None

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def on_resource_changed(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(uri)`` whenever a worker announces that one of its resources changed."""
        self._resource_listeners.append(listener)

    def resource_changed(self, worker: WorkerConnection, uri: str) -> None:
        """A worker's ResourceChanged. The URI must be one of the resources it registered (a fixed one's URI,
        or one its template matches), else ProtocolViolation: a worker only speaks for what it serves."""
        shown = uri if len(uri) <= 100 else uri[:100] + "…"
        if not uri or len(uri) > MAX_RESOURCE_URI or _CONTROL.search(uri):
            raise ProtocolViolation(
                f"ResourceChanged uri {shown!r} is not a URI (1 to {MAX_RESOURCE_URI} characters, no control characters)"
            )
        for name in worker.endpoints:
            endpoint = self._endpoints.get(name)
            if (
                endpoint is not None
                and endpoint.info.kind is EndpointKind.RESOURCE
                and worker in endpoint.workers
                and endpoint.match_uri(uri) is not None
            ):
                break
        else:
            raise ProtocolViolation(
                f"ResourceChanged uri {shown!r} is not a URI of a resource this worker serves"
            )
        for listener in self._resource_listeners:
            listener(uri)

    def register(self, worker: WorkerConnection, specs: list[pb.EndpointSpec]) -> list[Endpoint]:
        """Add ``worker`` as a server of every endpoint in ``specs``, all or nothing."""
        candidates = [endpoint_from_spec(spec) for spec in specs]
        names = [c.name for c in candidates]
        if len(set(names)) != len(names):
            raise RegistrationError("the same endpoint name is registered twice")
        for candidate in candidates:
            existing = self._endpoints.get(candidate.name)
            owners = {w.credential for w in existing.workers} if existing is not None else set()
            if owners and worker.credential not in owners:
                raise RegistrationError(
                    f"endpoint {candidate.name!r} is served by workers of another worker token; one "
                    "endpoint is served under one credential (revoke the other, or use another name)"
                )
            if existing is not None and existing.fingerprint != candidate.fingerprint and existing.served:
                raise RegistrationError(
                    f"endpoint {candidate.name!r} is already served with a different kind, schema or durability; "
                    "replicas of an endpoint must describe it identically (deploy the new version under a new name "
                    "or stop the old workers first)"
                )
        registered = []
        for candidate in candidates:
            existing = self._endpoints.get(candidate.name)
            if existing is None or existing.fingerprint != candidate.fingerprint:
                if existing is not None:
                    candidate.workers.extend(existing.workers)
                self._endpoints[candidate.name] = existing = candidate
            existing.workers.append(worker)
            registered.append(existing)
        self._changed()
        return registered

    def unregister(self, worker: WorkerConnection) -> None:
        for endpoint in self._endpoints.values():
            if worker in endpoint.workers:
                endpoint.workers.remove(worker)
        self._changed()

    def set_remote(
        self, replica: str, infos: list[EndpointInfo], completions: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """Replace what ``replica`` serves with ``infos`` ([] when it left) and the arguments its workers
        complete. An endpoint described differently from the one served here is ignored (with a log
        line) rather than mixed in."""
        changed = False
        wanted = {info.name: info for info in infos}
        completions = completions or {}
        for endpoint in self._endpoints.values():
            if replica in endpoint.remote and endpoint.name not in wanted:
                endpoint.remote.discard(replica)
                changed = True
            endpoint.remote_completions.pop(replica, None)
        for name, info in wanted.items():
            existing = self._endpoints.get(name)
            fingerprint = fingerprint_of(info)
            if existing is None or (existing.fingerprint != fingerprint and not existing.served):
                replacement = Endpoint(info, fingerprint)
                if existing is not None:
                    replacement.workers.extend(existing.workers)
                self._endpoints[name] = existing = replacement
                changed = True
            elif existing.fingerprint != fingerprint:
                if replica in existing.remote:
                    existing.remote.discard(replica)
                    changed = True
                log.warning(
                    "replica %s serves endpoint %r described differently from the one served here; ignored",
                    replica,
                    name,
                )
                continue
            if replica not in existing.remote:
                existing.remote.add(replica)
                changed = True
            if completions.get(name):
                existing.remote_completions[replica] = frozenset(completions[name])
        if changed:
            self._changed()

    def _changed(self) -> None:
        self.version += 1
        for listener in self._listeners:
            listener()
