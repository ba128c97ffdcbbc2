"""Completer: argument completion by the workers that declared a completer, here or on another replica.

A prompt argument or resource-template variable is completed by a worker that declared a completer for
it (``EndpointSpec.completions``): one connected to this replica when there is one, else, in a cluster,
a replica whose catalogue says its workers complete it (asked over the bus, which asks one of its own
workers). ``None`` means nobody could answer (none declared it, it failed, or it ran out of time): the
front then completes from the schema.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

from .registry import Endpoint, EndpointRegistry

if TYPE_CHECKING:
    from ..bus.base import Bus

log = logging.getLogger("fastagentic.completion")


class CompletionRequest(msgspec.Struct, frozen=True, array_like=True):
    endpoint: str
    argument: str
    value: str
    arguments: dict[str, str]


class Completion(msgspec.Struct, frozen=True, array_like=True):
    values: list[str]
    total: int = 0
    has_more: bool = False


class Completer:
    def __init__(self, registry: EndpointRegistry, bus: Bus, timeout: float) -> None:
        self.registry = registry
        self.bus = bus
        self.timeout = timeout
        self._turns = itertools.count()  # spreads requests over the workers (and replicas) that complete

    async def complete(
        self, endpoint: Endpoint, argument: str, value: str, arguments: Mapping[str, str]
    ) -> Completion | None:
        properties = endpoint.info.input_schema.get("properties", {})
        others = {k: v for k, v in arguments.items() if k != argument and k in properties}
        request = CompletionRequest(endpoint.name, argument, value, others)
        if any(w.completes(endpoint.name, argument) for w in endpoint.workers):
            return await self.complete_here(request)
        replicas = sorted(r for r, args in endpoint.remote_completions.items() if argument in args)
        if not replicas:
            return None
        replica = replicas[next(self._turns) % len(replicas)]
        answer = await self.bus.complete(replica, request, self.timeout)
        if answer is None:
            log.warning("completion of %s.%s: replica %s did not answer", endpoint.name, argument, replica)
        return answer

    async def complete_here(self, request: CompletionRequest) -> Completion | None:
        """Ask a worker connected to this replica (for this replica's fronts and for other replicas)."""
        endpoint = self.registry.get(request.endpoint)
        if endpoint is None:
            return None
        workers = [w for w in endpoint.workers if w.completes(endpoint.name, request.argument)]
        if not workers:
            return None
        worker = workers[next(self._turns) % len(workers)]
        try:
            answer = await worker.complete(
                endpoint.name, request.argument, request.value, request.arguments, self.timeout
            )
        except (TimeoutError, ConnectionError) as exc:
            log.warning(
                "completion of %s.%s by worker %s: %s",
                endpoint.name,
                request.argument,
                worker.worker_id,
                "no answer in time" if isinstance(exc, TimeoutError) else exc,
            )
            return None
        if answer.error:
            log.warning(
                "completion of %s.%s failed on worker %s: %s",
                endpoint.name,
                request.argument,
                worker.worker_id,
                answer.error[:300],
            )
            return None
        return Completion(list(answer.values), answer.total, answer.has_more)
