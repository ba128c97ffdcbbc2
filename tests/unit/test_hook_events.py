"""The on_event point and the retiring of a reloaded hook stage: the ``event_kinds`` condition, which chain
an event kind reaches, how a modified event is checked, and a replaced stage closed only once idle."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

from fastagentic_gateway.hooks import seam
from fastagentic_gateway.hooks.chain import Chain, HookEntry, HookFailure
from fastagentic_gateway.hooks.config import HookConfig
from fastagentic_gateway.hooks.model import Action, HookContext, HookPoint, Modify, Proceed, Skip
from fastagentic_gateway.hooks.stage import HookConfigError, HookStage


def context(event: str = "token", payload: Any = None) -> HookContext:
    return HookContext(
        point=HookPoint.ON_EVENT,
        endpoint="e",
        protocol="rest",
        principal="p",
        tenant="t",
        event=event,
        payload=payload,
    )


def test_event_kinds_is_a_condition_of_on_event_only() -> None:
    HookConfig(name="a", points=["on_event"], type="pii", event_kinds=["token", "lead.*"])
    with pytest.raises(ValueError, match="event_kinds applies at on_event only"):
        HookConfig(name="a", points=["on_event", "on_request"], type="pii", event_kinds=["token"])
    with pytest.raises(ValueError, match="unknown point"):
        HookConfig(name="a", points=["on_events"], type="pii")


def test_an_entry_applies_to_the_event_kinds_it_names() -> None:
    async def hook(context: HookContext) -> Action:
        return Proceed()

    entry = HookEntry("a", hook, event_kinds=["message", "lead.*"])
    assert entry.applies(context("message")) and entry.applies(context("lead.found"))
    assert not entry.applies(context("token"))
    assert HookEntry("b", hook).applies(context("token"))  # no condition: every kind


def test_the_stage_sends_an_event_kind_to_on_event_only_where_a_hook_may_apply() -> None:
    narrow = HookConfig(
        name="narrow", points=["on_event"], module="tests.hook_policies:proceed", event_kinds=["message"]
    )
    other = HookConfig(name="llm", points=["on_llm_end"], module="tests.hook_policies:proceed")
    stage = HookStage.build([narrow, other])
    assert stage is not None and stage.observes
    assert stage.every_event("message") is stage.on_event
    assert stage.every_event("token") is None
    assert stage.by_kind.keys() == {"llm_end"}
    only_llm = HookStage.build([other])
    assert only_llm is not None and only_llm.observes and only_llm.on_event is None
    assert only_llm.every_event("message") is None
    request = HookStage.build(
        [HookConfig(name="r", points=["on_request"], module="tests.hook_policies:proceed")]
    )
    assert request is not None and not request.observes


def test_a_modified_event_is_checked_by_its_kind() -> None:
    data = seam.observed_check("token", {"text": "x"}, False)
    assert data({"text": "y"}) is None
    assert data("y") == "event data must be a JSON object, not str"
    state = seam.observed_check("checkpoint", {"a": 1}, True)
    assert state([1, 2]) is None  # a checkpoint's state is any JSON value
    original = {"id": "interrupt-1", "request": {"q": "mail jane@example.com?"}, "schema": {"type": "object"}}
    interrupt = seam.observed_check("interrupt", original, False)
    assert interrupt({**original, "request": {"q": "mail [EMAIL]?"}}) is None
    assert interrupt({**original, "id": "other"}) == "an interrupt keeps its id and schema"
    assert interrupt({**original, "schema": None}) == "an interrupt keeps its id and schema"


async def test_on_event_allows_proceed_modify_and_reject_only() -> None:
    async def skip(context: HookContext) -> Action:
        return Skip()

    async def mask(context: HookContext) -> Action:
        return Modify({"text": "[EMAIL]"})

    assert (
        await Chain(HookPoint.ON_EVENT, [HookEntry("m", mask)]).run(context(payload={"text": "a@b.co"}))
    ).action == Modify({"text": "[EMAIL]"})
    with pytest.raises(HookFailure, match="answered skip at on_event"):
        await Chain(HookPoint.ON_EVENT, [HookEntry("s", skip)]).run(context())


class Closing:
    """A hook with resources: slow when asked, and closed by its stage."""

    name = "closing"

    def __init__(self, options: dict[str, Any]) -> None:
        self.closed = False
        self.release = asyncio.Event()

    async def __call__(self, context: HookContext) -> Action:
        await self.release.wait()
        assert not self.closed, "closed while a call was under way"
        return Proceed()

    async def aclose(self) -> None:
        self.closed = True


MADE: list[Closing] = []


def closing(options: dict[str, Any]) -> Closing:
    MADE.append(Closing(options))
    return MADE[-1]


async def test_a_retired_stage_is_closed_only_once_its_chains_are_idle() -> None:
    config = HookConfig(
        name="closing", points=["on_request"], module="tests.unit.test_hook_events:closing", timeout=5
    )
    stage = HookStage.build([config])
    assert stage is not None and stage.on_request is not None
    (hook,) = stage.hooks
    under_way = asyncio.ensure_future(stage.on_request.run(context()))
    await asyncio.sleep(0.01)
    assert stage.busy
    retiring = asyncio.ensure_future(stage.retire(grace=0.0))
    await asyncio.sleep(0.2)
    assert not hook.closed and not retiring.done()  # the call under way keeps it open
    hook.release.set()
    assert (await under_way).action == Proceed()
    await asyncio.wait_for(retiring, 2)
    assert hook.closed and not stage.busy


async def test_a_retired_stage_cancelled_at_shutdown_closes_at_once() -> None:
    config = HookConfig(name="closing", points=["on_request"], module="tests.unit.test_hook_events:closing")
    stage = HookStage.build([config])
    assert stage is not None
    (hook,) = stage.hooks
    retiring = asyncio.ensure_future(stage.retire(grace=60))
    await asyncio.sleep(0.01)
    retiring.cancel()
    with pytest.raises(asyncio.CancelledError):
        await retiring
    assert hook.closed


async def test_hooks_made_for_a_stage_that_fails_to_build_are_closed() -> None:
    made = HookConfig(name="closing", points=["on_request"], module="tests.unit.test_hook_events:closing")
    missing = HookConfig(name="gone", points=["on_request"], module="tests.no_such_module:hook")
    with pytest.raises(HookConfigError, match="hook 'gone': cannot import"):
        HookStage.build([made, missing])
    # The hook was made by the module as the gateway imports it (pytest may import this file under another name).
    hook = importlib.import_module("tests.unit.test_hook_events").MADE[-1]
    for _ in range(100):
        if hook.closed:
            break
        await asyncio.sleep(0.01)
    assert hook.closed
