"""What a principal may see of runs, and which worker ids a credential may take."""

from __future__ import annotations

import msgspec

from fastagentic.v1 import worker_pb2 as pb
from fastagentic_gateway.access.policy import may_see
from fastagentic_gateway.access.principal import ANONYMOUS, Principal
from fastagentic_gateway.runs.model import Caller, EndpointKind, Run, new_run_id
from fastagentic_gateway.workers.connection import WorkerConnection
from fastagentic_gateway.workers.registry import EndpointRegistry


def _run(endpoint: str, tenant: str = "acme") -> Run:
    return Run(
        id=new_run_id(),
        endpoint=endpoint,
        kind=EndpointKind.AGENT,
        durable=True,
        caller=Caller("k", tenant),
        input=b"{}",
    )


def _registry(scopes: list[str]) -> EndpointRegistry:
    registry = EndpointRegistry()
    spec = pb.EndpointSpec(
        name="report",
        kind=pb.ENDPOINT_KIND_AGENT,
        input_schema=msgspec.json.encode({"type": "object"}),
        output_schema=b"{}",
        scopes=scopes,
    )
    registry.register(WorkerConnection("w", "app", 1, ["report"]), [spec])
    return registry


def test_a_run_is_seen_by_its_tenant_with_its_endpoints_scopes() -> None:
    registry = _registry(["reports:read"])
    holder = Principal(subject="a", tenant="acme", scopes=frozenset({"reports:read"}))
    assert may_see(holder, _run("report"), registry)
    assert not may_see(Principal(subject="b", tenant="acme"), _run("report"), registry)
    assert not may_see(holder, _run("report", tenant="other"), registry)


def test_a_run_of_an_endpoint_nobody_knows_is_seen_only_by_an_unrestricted_principal() -> None:
    """Its scopes cannot be checked (retired, or not registered again yet after a restart)."""
    registry = EndpointRegistry()
    holder = Principal(subject="a", tenant="acme", scopes=frozenset({"reports:read"}))
    assert not may_see(holder, _run("report"), registry)
    assert may_see(ANONYMOUS, _run("report"), registry)
