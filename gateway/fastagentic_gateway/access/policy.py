"""Policy: what a principal may do. One set of rules for every front.

- An endpoint declares the scopes it requires (``@app.agent_endpoint(scopes=[...])``, the same for tools,
  resources and prompts); a principal holding all of them may call it, see it in every catalogue
  (``/v1/endpoints``, ``/openapi.json``, MCP lists, A2A cards) and use its runs. One lacking any gets
  403 ``insufficient_scope`` naming them; catalogues leave the endpoint out.
- Runs belong to their creator's tenant: a principal reads, follows, cancels and replays only runs of its
  own tenant; another tenant's run is "not found" (404), never a 403 that confirms it exists (the run
  stores scope every read by tenant).
- The admin routes (``GET /v1/audit``) need ``admin_scope``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import Forbidden
from ..runs.model import Run
from ..workers.registry import EndpointInfo, EndpointRegistry
from .principal import Principal


def authorize(principal: Principal, info: EndpointInfo) -> None:
    """Forbidden unless ``principal`` holds every scope ``info`` requires."""
    missing = principal.missing(info.scopes)
    if missing:
        raise Forbidden(
            f"{info.kind.value} {info.name!r} requires the scope(s) {', '.join(missing)}", scopes=missing
        )


def visible(principal: Principal, info: EndpointInfo) -> bool:
    """Whether ``principal`` may see (and so use) the endpoint ``info``."""
    return not principal.missing(info.scopes)


def visible_only(principal: Principal, infos: Iterable[EndpointInfo]) -> list[EndpointInfo]:
    if principal.unrestricted:
        return list(infos)
    return [info for info in infos if visible(principal, info)]


def may_see(principal: Principal, run: Run, registry: EndpointRegistry) -> bool:
    """Whether ``principal`` may read, follow, cancel or replay ``run``: a run of its tenant whose endpoint
    it may use. An endpoint the gateway does not know (retired, or not registered again yet after a
    restart) has scopes nobody can check: its runs are shown to nobody but an unrestricted principal."""
    if principal.unrestricted:
        return True
    if run.caller.tenant != principal.tenant:
        return False
    endpoint = registry.get(run.endpoint)
    return endpoint is not None and visible(principal, endpoint.info)


def require_scope(principal: Principal, scope: str, what: str) -> None:
    if principal.missing([scope]):
        raise Forbidden(f"{what} requires the scope {scope}", scopes=[scope])


__all__ = ["authorize", "may_see", "require_scope", "visible", "visible_only"]
