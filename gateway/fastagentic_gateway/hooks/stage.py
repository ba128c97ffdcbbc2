"""The hook stage of one gateway: its chains by point, built from the ``hooks`` settings.

The run machinery holds a ``HookStage`` only when some hook is configured (``build`` answers None
otherwise), and each point's chain is None when no hook runs there: the path of a call without hooks is
one attribute check.

A reload (SIGHUP) builds a new stage and swaps it in whole (``RunService.reload_hooks``): each point reads
the stage in force when it is reached, so a run under way takes the new chains at its next point, and a
chain already running finishes on the old one. The old stage is then retired: closed once nothing runs
on it (``HookStage.retire``).
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

__all__ = ["EVENT_POINTS", "RETIRE_GRACE", "HookConfigError", "HookStage", "resolve"]

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
#: Event kinds whose on_event applicability is remembered (workers may invent kinds)
MAX_KINDS = 1024
#: Seconds a stage replaced by a reload stays open at least (see ``HookStage.retire``) ...
RETIRE_GRACE = 5.0
#: ... and at most while its chains still run (the longest hook timeout is 120 s).
RETIRE_LONGEST = 600.0


_RETIRING: set[asyncio.Task[None]] = set()  # stages being retired (a reference keeps their task alive)


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
        #: every event a worker sends, after its kind's own point (by_kind)
        self.on_event = chains.get(HookPoint.ON_EVENT)
        #: event kind -> the chain of its observing point (only kinds with one)
        self.by_kind = {kind: chains[point] for kind, point in EVENT_POINTS.items() if point in chains}
        #: whether a worker's events pass a chain before they are stored
        self.observes = bool(self.by_kind) or self.on_event is not None
        self._every: dict[str, bool] = {}  # event kind -> whether an on_event hook may apply to it
        #: the tool points with a chain, as Welcome.tool_checks names them
        self.tool_points = tuple(
            p.value for p in (HookPoint.ON_TOOL_CALL, HookPoint.ON_TOOL_RESULT) if p in chains
        )
        longest = max((chains[HookPoint(p)].inline_timeout for p in self.tool_points), default=0.0)
        #: how long a worker should wait for a ToolVerdict
        self.tool_check_timeout = longest + TOOL_CHECK_MARGIN

    def chain(self, point: HookPoint) -> Chain | None:
        return self.chains.get(point)

    def every_event(self, kind: str) -> Chain | None:
        """The on_event chain when one of its hooks may apply to events of ``kind`` (its ``event_kinds``),
        else None: an event no hook could see is not even decoded."""
        chain = self.on_event
        if chain is None:
            return None
        known = self._every.get(kind)
        if known is None:
            known = any(entry.event_kinds.match(kind) for entry in chain.entries)
            if len(self._every) < MAX_KINDS:
                self._every[kind] = known
        return chain if known else None

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
        hooks: list[Any] = []
        for config in configs:
            try:
                hook = resolve(config, client)
            except BaseException:
                _discard(hooks, client)  # a reload refused: what was made for it is closed
                raise
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
                event_kinds=config.event_kinds,
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

    @property
    def busy(self) -> bool:
        """Whether a chain of the stage is running (or an audit hook of it)."""
        return any(chain.busy for chain in self.chains.values())

    def retire_later(self) -> None:
        """``retire`` in a task of its own (kept until done; cancelled at shutdown, it closes the stage)."""
        task = asyncio.get_running_loop().create_task(self.retire(), name="hooks.retire")
        _RETIRING.add(task)
        task.add_done_callback(_RETIRING.discard)

    async def retire(self, grace: float = RETIRE_GRACE, longest: float = RETIRE_LONGEST) -> None:
        """Close the stage once a reload replaced it: after ``grace`` seconds (a call that took the stage
        just before the swap reaches its chain within them) and once no chain of it runs any more (at most
        ``longest`` seconds: a chain is bounded by its hooks' timeouts), so no call under way loses the
        client or the resources its hooks use. Cancelled (at shutdown), it closes the stage at once."""
        try:
            await asyncio.sleep(grace)
            loop = asyncio.get_running_loop()
            until = loop.time() + longest
            # Polled: an Event set by every chain run would cost the hot path what only a reload needs.
            while self.busy and loop.time() < until:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            await self.close()
            log.info("hooks replaced by a reload are closed")

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


def _discard(hooks: list[Any], client: httpx.AsyncClient | None) -> None:
    """Close, in the background, the hooks (and client) made for a stage that will not be (at start, with
    no event loop running, the process is about to exit and nothing needs closing)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    stage = HookStage({}, hooks, client)
    task = loop.create_task(stage.close(), name="hooks.discard")
    _RETIRING.add(task)
    task.add_done_callback(_RETIRING.discard)
