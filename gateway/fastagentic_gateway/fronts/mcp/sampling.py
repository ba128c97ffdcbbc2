"""A run's sampling interrupt (``ctx.sample`` in the SDK) as an MCP ``sampling/createMessage`` request, and
the client's ``CreateMessageResult`` back as the interrupt's answer.

The worker asks with an interrupt whose request is ``{"sampling": <createMessage params>}`` and whose
answer is either the result (``role``, ``content``, ``model``, ``stopReason``) or ``{"unavailable": why}``,
which the SDK raises as ``SamplingUnavailable``. Only the calling client's model can answer, so a client
that cannot (no ``sampling`` capability, or it refuses the request) gets the run answered ``unavailable`` at
once: the agent goes on (falls back, or fails with that reason), nobody waits for an answer that cannot come.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from pydantic import ValidationError

from .elicitation import Interrupt


def sampling_of(interrupt: Interrupt) -> Mapping[str, Any] | None:
    """The ``createMessage`` params a sampling interrupt carries; None for any other interrupt."""
    request = interrupt.request
    if isinstance(request, Mapping):
        params = request.get("sampling")
        if isinstance(params, Mapping):
            return params
    return None


def accepts_sampling(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether the client declared the sampling capability."""
    return capabilities is not None and capabilities.sampling is not None


def sampling_params(
    params: Mapping[str, Any],
    capabilities: types.ClientCapabilities | None,
    meta: dict[str, Any] | None = None,
) -> types.CreateMessageRequestParams:
    """The worker's params as the request params the client may be sent: ``includeContext`` other than
    ``none`` only to a client that declared ``sampling.context`` (the spec), ``_meta`` added. Raises
    ``ValueError`` (with the reasons) when they are not valid ``createMessage`` params."""
    given = dict(params)
    sampling = capabilities.sampling if capabilities is not None else None
    if given.get("includeContext") not in (None, "none") and (sampling is None or sampling.context is None):
        given.pop("includeContext")
    if meta is not None:
        given["_meta"] = meta
    try:
        return types.CreateMessageRequestParams.model_validate(given, by_name=False)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'params'}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(
            f"the run's sampling request is not valid createMessage params: {problems}"
        ) from None


def sampling_request(params: types.CreateMessageRequestParams) -> dict[str, Any]:
    """The ``sampling/createMessage`` request, as an ``inputRequests`` entry carries it."""
    return {
        "method": "sampling/createMessage",
        "params": params.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


def result_of(response: Any) -> types.CreateMessageResult | None:
    """An ``inputResponses`` entry (or a client's reply) as the ``CreateMessageResult`` it must be, or None."""
    if isinstance(response, types.CreateMessageResult):
        return response
    if isinstance(response, types.Result):
        response = response.model_dump(by_alias=True, exclude_none=True)
    try:
        return types.CreateMessageResult.model_validate(response, by_name=False)
    except ValidationError:
        return None


def sampled(result: types.CreateMessageResult) -> dict[str, Any]:
    """The interrupt's answer from the client's result."""
    dumped = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    return {key: dumped[key] for key in ("role", "content", "model", "stopReason") if key in dumped}


def unavailable(why: str) -> dict[str, str]:
    """The interrupt's answer when no model can be asked."""
    return {"unavailable": why[:1000]}
