"""The hook stage of one gateway: its chains by point, built from the ``hooks`` settings.

The run machinery holds a ``HookStage`` only when some hook is configured (``build`` answers None
otherwise), and each point's chain is None when no hook runs there: the path of a call without hooks is
one attribute check.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from ..telemetry.metrics import GatewayMetrics
from .builtin import factory_of
from .chain import Chain, HookEntry
from .config import HookConfig
from .model import HookPoint
from .remote import RemoteHook

log = logging.getLogger("fastagentic.hooks")

__all__ = ["EVENT_POINTS", "HookConfigError", "HookStage", "resolve"]

#: The event kinds whose data the observing points see, as the gateway stores a worker's events.
EVENT_POINTS = {
    "llm_start": HookPoint.ON_LLM_START,
    "llm_end": HookPoint.ON_LLM_END,
    "node_enter": HookPoint.ON_NODE_ENTER,
    "node_exit": HookPoint.ON_NODE_EXIT,
    "checkpoint": HookPoint.ON_CHECKPOINT,
}
#: Seconds a worker waits for a ToolVerdict beyond the longest the gateway's tool chain may take.
TOOL_CHECK_MARGIN = 2.0


class HookConfigError(ValueError):
    """A configured hook cannot be made (its module does not import, its factory fails, ...)."""


def resolve(config: HookConfig, client: httpx.AsyncClient | None = None) -> Any:
    """The hook a ``hooks`` table names. A ``module`` attribute that is a coroutine function, or an object
    whose ``__call__`` is one, is the hook itself; a class or a plain function is a factory, called with
    ``options``. HookConfigError says what failed."""
    where = f"hook {config.name!r}"
    if config.url:
        assert client is not None
        return RemoteHook(config.name, config.url, config.secret, client, config.timeout)
    try:
        if config.type:
            factory: Any = factory_of(config.type)
        else:
            module_name, _, attribute = config.module.partition(":")
            target: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
            if _is_hook(target):
                if config.options:
                    raise HookConfigError(
                        f"{where}: {config.module} is a hook, not a factory: it takes no options"
                    )
                return target
            factory = target
        if not callable(factory):
            raise HookConfigError(f"{where}: {config.module or config.type} is neither a hook nor a factory")
        hook = factory(dict(config.options))
    except HookConfigError:
        raise
    except LookupError as exc:  # an unknown type, or an attribute the module lacks
        raise HookConfigError(f"{where}: {exc}") from exc
    except ImportError as exc:
        raise HookConfigError(f"{where}: cannot import {config.module}: {exc}") from exc
    except Exception as exc:
        raise HookConfigError(f"{where}: making it failed: {type(exc).__name__}: {exc}") from exc
    if not _is_hook(hook):
        raise HookConfigError(
            f"{where}: the factory returned {type(hook).__name__}, not a hook (an object with an async __call__)"
        )
    return hook


def _is_hook(target: Any) -> bool:
    if inspect.isclass(target):
        return False
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(type(target), "__call__", None)  # noqa: B004 - the instance's own __call__, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


class HookStage:
    """Every chain of the gateway; an attribute per point, None where no hook runs."""

    def __init__(
        self,
        chains: dict[HookPoint, Chain],
        hooks: Sequence[Any] = (),
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.chains = chains
        self.hooks = list(hooks)
        self._client = client
        self.on_request = chains.get(HookPoint.ON_REQUEST)
        self.on_response = chains.get(HookPoint.ON_RESPONSE)
        self.on_tool_call = chains.get(HookPoint.ON_TOOL_CALL)
        self.on_tool_result = chains.get(HookPoint.ON_TOOL_RESULT)
        self.on_error = chains.get(HookPoint.ON_ERROR)
        self.on_retry = chains.get(HookPoint.ON_RETRY)
        self.on_resume = chains.get(HookPoint.ON_RESUME)
        #: event kind -> the chain of its observing point (only kinds with one)
        self.by_kind = {kind: chains[point] for kind, point in EVENT_POINTS.items() if point in chains}
        #: the tool points with a chain, as Welcome.tool_checks names them
        self.tool_points = tuple(
            p.value for p in (HookPoint.ON_TOOL_CALL, HookPoint.ON_TOOL_RESULT) if p in chains
        )
        longest = max((chains[HookPoint(p)].inline_timeout for p in self.tool_points), default=0.0)
        #: how long a worker should wait for a ToolVerdict
        self.tool_check_timeout = longest + TOOL_CHECK_MARGIN

    def chain(self, point: HookPoint) -> Chain | None:
        return self.chains.get(point)

    @classmethod
    def build(cls, configs: Sequence[HookConfig], metrics: GatewayMetrics | None = None) -> HookStage | None:
        """The stage of ``configs`` (None when there are none). HookConfigError when a hook cannot be made."""
        if not configs:
            return None
        client = (
            httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
            if any(config.url for config in configs)
            else None
        )
        by_point: dict[HookPoint, list[HookEntry]] = {}
        hooks = []
        for config in configs:
            hook = resolve(config, client)
            hooks.append(hook)
            entry = HookEntry(
                config.name,
                hook,
                timeout=config.timeout,
                fail_open=config.fail == "open",
                audit=config.mode == "audit",
                endpoints=config.endpoints,
                tenants=config.tenants,
                scopes=config.scopes,
                tools=config.tools,
                protocols=config.protocols,
            )
            for point in config.points:
                by_point.setdefault(HookPoint(point), []).append(entry)
        chains = {point: Chain(point, entries, metrics) for point, entries in by_point.items()}
        log.info(
            "hooks: %s",
            "; ".join(
                f"{point.value}: {', '.join(e.name for e in chain.entries)}"
                for point, chain in chains.items()
            ),
        )
        return cls(chains, hooks, client)

    async def close(self) -> None:
        """Let audit hooks finish, close each hook that has ``aclose`` and the hook servers' client."""
        for chain in self.chains.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(chain.drain(), 5.0)
        for hook in self.hooks:
            close = getattr(hook, "aclose", None)
            if close is not None and inspect.iscoroutinefunction(close):
                try:
                    await close()
                except Exception:
                    log.exception("closing hook %r failed", getattr(hook, "name", hook))
        if self._client is not None:
            await self._client.aclose()
