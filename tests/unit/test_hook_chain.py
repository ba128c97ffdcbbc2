"""Hook chains: order, conditions, modifications, allowed actions, timeouts and failure policies, audit
hooks; the hooks settings and how a configured hook is resolved."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fastagentic_gateway.hooks import builtin
from fastagentic_gateway.hooks.chain import Chain, HookEntry, HookFailure
from fastagentic_gateway.hooks.config import HookConfig
from fastagentic_gateway.hooks.model import (
    Action,
    HookContext,
    HookPoint,
    Modify,
    Proceed,
    Reject,
    Retry,
    Skip,
)
from fastagentic_gateway.hooks.stage import HookConfigError, HookStage, resolve
from fastagentic_gateway.settings import SettingsError, load
from fastagentic_gateway.telemetry.metrics import GatewayMetrics


def context(point: HookPoint = HookPoint.ON_REQUEST, payload: Any = None, **fields: Any) -> HookContext:
    values: dict[str, Any] = {"endpoint": "search", "protocol": "rest", "principal": "ada", "tenant": "acme"}
    values.update(fields)
    return HookContext(point=point, payload=payload, **values)


def answering(action: Action, seen: list[str] | None = None, name: str = "") -> Any:
    async def hook(ctx: HookContext) -> Action:
        if seen is not None:
            seen.append(name)
        return action

    return hook


async def test_hooks_run_in_order_and_see_each_others_modifications() -> None:
    seen: list[Any] = []

    async def add(ctx: HookContext) -> Action:
        seen.append(ctx.payload)
        return Modify({"n": ctx.payload["n"] + 1})

    chain = Chain(HookPoint.ON_REQUEST, [HookEntry("a", add), HookEntry("b", add)])
    outcome = await chain.run(context(payload={"n": 0}))
    assert seen == [{"n": 0}, {"n": 1}]
    assert outcome.action == Modify({"n": 2}) and outcome.hook == "b"


async def test_the_first_reject_ends_the_chain() -> None:
    seen: list[str] = []
    chain = Chain(
        HookPoint.ON_REQUEST,
        [
            HookEntry("a", answering(Proceed(), seen, "a")),
            HookEntry("b", answering(Reject("no"), seen, "b")),
            HookEntry("c", answering(Proceed(), seen, "c")),
        ],
    )
    outcome = await chain.run(context())
    assert seen == ["a", "b"]
    assert outcome.action == Reject("no") and outcome.hook == "b"


async def test_conditions_pick_the_hooks_that_apply() -> None:
    seen: list[str] = []
    chain = Chain(
        HookPoint.ON_TOOL_CALL,
        [
            HookEntry("shell", answering(Proceed(), seen, "shell"), tools=["shell*"]),
            HookEntry("acme", answering(Proceed(), seen, "acme"), tenants=["ac*"], protocols=["rest", "mcp"]),
            HookEntry("other", answering(Proceed(), seen, "other"), tenants=["globex"]),
            HookEntry("search", answering(Proceed(), seen, "search"), endpoints=["sea?ch"]),
        ],
    )
    await chain.run(context(HookPoint.ON_TOOL_CALL, tool="shell_exec"))
    await chain.run(context(HookPoint.ON_TOOL_CALL, tool="lookup", protocol="a2a"))
    assert seen == ["shell", "acme", "search", "search"]


async def test_scopes_condition_needs_one_of_the_scopes() -> None:
    seen: list[str] = []
    chain = Chain(
        HookPoint.ON_REQUEST, [HookEntry("admins", answering(Proceed(), seen, "x"), scopes=["admin:*"])]
    )
    await chain.run(context(scopes=frozenset({"read"})))
    await chain.run(context(scopes=frozenset({"read", "admin:write"})))
    assert seen == ["x"]


@pytest.mark.parametrize(
    ("point", "action"),
    [
        (HookPoint.ON_REQUEST, Skip()),
        (HookPoint.ON_REQUEST, Retry()),
        (HookPoint.ON_RESPONSE, Skip()),
        (HookPoint.ON_TOOL_RESULT, Skip()),
        (HookPoint.ON_ERROR, Reject("x")),
        (HookPoint.ON_RETRY, Modify({})),
        (HookPoint.ON_LLM_END, Retry()),
    ],
)
async def test_an_action_the_point_does_not_allow_is_a_hook_failure_even_when_open(
    point: HookPoint, action: Action
) -> None:
    chain = Chain(point, [HookEntry("wrong", answering(action), fail_open=True)])
    with pytest.raises(HookFailure, match=f"hook 'wrong' answered .* at {point.value}, which allows"):
        await chain.run(context(point))


async def test_an_answer_that_is_not_an_action_is_a_hook_failure() -> None:
    async def hook(ctx: HookContext) -> Any:
        return {"type": "proceed"}

    with pytest.raises(HookFailure, match="a dict, not an Action"):
        await Chain(HookPoint.ON_REQUEST, [HookEntry("dict", hook, fail_open=True)]).run(context())


async def test_an_invalid_modification_is_refused_even_when_open() -> None:
    chain = Chain(HookPoint.ON_REQUEST, [HookEntry("bad", answering(Modify({"text": 1})), fail_open=True)])
    with pytest.raises(HookFailure, match="into one that is not valid: text must be a string"):
        await chain.run(context(payload={"text": "a"}), lambda value: "text must be a string")
    unencodable = Chain(HookPoint.ON_REQUEST, [HookEntry("obj", answering(Modify(object())))])
    with pytest.raises(HookFailure, match="cannot be encoded as JSON"):
        await unencodable.run(context())


@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_timeout_follows_the_fail_policy(fail_open: bool) -> None:
    async def slow(ctx: HookContext) -> Action:
        await asyncio.sleep(5)
        return Reject("too late")

    metrics = GatewayMetrics()
    chain = Chain(HookPoint.ON_REQUEST, [HookEntry("slow", slow, timeout=0.05, fail_open=fail_open)], metrics)
    started = time.monotonic()
    if fail_open:
        outcome = await chain.run(context())
        assert outcome.action == Proceed()
    else:
        with pytest.raises(HookFailure, match=r"did not answer within 0\.05 s"):
            await chain.run(context())
    assert time.monotonic() - started < 1
    assert ("slow", "on_request", "timeout") in metrics.hook_seconds.values


@pytest.mark.parametrize("fail_open", [True, False])
async def test_an_exception_follows_the_fail_policy(fail_open: bool) -> None:
    async def crash(ctx: HookContext) -> Action:
        raise ValueError("boom")

    chain = Chain(HookPoint.ON_REQUEST, [HookEntry("crash", crash, fail_open=fail_open)])
    if fail_open:
        assert (await chain.run(context())).action == Proceed()
    else:
        with pytest.raises(HookFailure, match="raised ValueError: boom"):
            await chain.run(context())


async def test_audit_hooks_do_not_delay_and_do_not_decide() -> None:
    done = asyncio.Event()

    async def audit(ctx: HookContext) -> Action:
        await asyncio.sleep(0.2)
        done.set()
        return Reject("ignored")

    metrics = GatewayMetrics()
    chain = Chain(HookPoint.ON_REQUEST, [HookEntry("audit", audit, audit=True, timeout=2)], metrics)
    started = time.monotonic()
    outcome = await chain.run(context())
    assert time.monotonic() - started < 0.1
    assert outcome.action == Proceed()
    await asyncio.wait_for(done.wait(), 2)
    await chain.drain()
    assert ("audit", "on_request", "reject") in metrics.hook_seconds.values


def test_the_histogram_renders_cumulative_buckets() -> None:
    metrics = GatewayMetrics()
    metrics.hook_seconds.observe(0.0003, "h", "on_request", "proceed")
    metrics.hook_seconds.observe(2.0, "h", "on_request", "proceed")
    (family,) = [f for f in metrics.collect() if f.name == "fastagentic_hook_seconds"]
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("fastagentic_hook_seconds_bucket", "0.00025")] == 0
    assert samples[("fastagentic_hook_seconds_bucket", "0.0005")] == 1
    assert samples[("fastagentic_hook_seconds_bucket", "+Inf")] == 2
    assert samples[("fastagentic_hook_seconds_count", None)] == 2


# ---------------------------------------------------------------------------------------------- settings


def test_hooks_settings_are_validated_with_precise_errors() -> None:
    def refused(entry: dict[str, Any]) -> str:
        with pytest.raises(SettingsError) as raised:
            load(environ={"FASTAGENTIC_HOOKS": __import__("json").dumps([entry])})
        return str(raised.value)

    base = {"name": "h", "points": ["on_request"]}
    assert "set exactly one of module, url and type (got none)" in refused(base)
    assert "set exactly one of module, url and type (got module, type)" in refused(
        {**base, "module": "a.b:c", "type": "pii"}
    )
    assert "unknown point(s) on_request_start" in refused(
        {**base, "points": ["on_request_start"], "module": "a:b"}
    )
    assert 'fail must be "open" or "closed"' in refused({**base, "module": "a:b", "fail": "maybe"})
    assert "needs a `secret` of at least 32 characters" in refused({**base, "url": "https://h.example/x"})
    assert "scopes applies at on_request and on_resume only" in refused(
        {"name": "h", "points": ["on_tool_call"], "module": "a:b", "scopes": ["x"]}
    )
    assert "tools applies at on_tool_call and on_tool_result only" in refused(
        {**base, "module": "a:b", "tools": ["x"]}
    )
    with pytest.raises(SettingsError, match="each hook name may be used once"):
        load(
            environ={
                "FASTAGENTIC_HOOKS": '[{"name":"h","points":["on_request"],"module":"a:b"},'
                '{"name":"h","points":["on_response"],"module":"a:b"}]'
            }
        )


def test_a_module_attribute_is_a_hook_or_a_factory() -> None:
    hook = resolve(HookConfig(name="h", points=["on_request"], module="tests.hook_policies:crash"))
    assert hook.__name__ == "crash"
    made = resolve(HookConfig(name="p", points=["on_request"], module="tests.hook_policies:policy"))
    assert type(made).__name__ == "Policy"
    with pytest.raises(HookConfigError, match="is a hook, not a factory: it takes no options"):
        resolve(
            HookConfig(name="h", points=["on_request"], module="tests.hook_policies:crash", options={"a": 1})
        )
    with pytest.raises(HookConfigError, match="has no attribute 'nothing'"):
        resolve(HookConfig(name="h", points=["on_request"], module="tests.hook_policies:nothing"))
    with pytest.raises(HookConfigError, match="not a hook"):
        resolve(HookConfig(name="h", points=["on_request"], module="tests.hook_policies:_text"))


def test_built_in_types_come_from_the_registry() -> None:
    class Noop:
        name = "noop"

        def __init__(self, options: dict[str, Any]) -> None:
            self.options = options

        async def __call__(self, ctx: HookContext) -> Action:
            return Proceed()

    builtin.register("test-noop", Noop)
    made = resolve(HookConfig(name="n", points=["on_request"], type="test-noop", options={"level": 2}))
    assert isinstance(made, Noop) and made.options == {"level": 2}
    with pytest.raises(ValueError, match="registered already"):
        builtin.register("test-noop", lambda options: Noop(options))
    with pytest.raises(HookConfigError, match="no built-in hook type 'nope'"):
        resolve(HookConfig(name="n", points=["on_request"], type="nope"))


def test_a_stage_has_a_chain_only_where_a_hook_runs() -> None:
    assert HookStage.build([]) is None
    stage = HookStage.build(
        [
            HookConfig(
                name="a",
                points=["on_request", "on_tool_call"],
                module="tests.hook_policies:crash",
                timeout=0.5,
            ),
            HookConfig(name="b", points=["on_tool_call"], module="tests.hook_policies:crash", timeout=1.5),
            HookConfig(name="c", points=["on_llm_end"], module="tests.hook_policies:crash"),
        ]
    )
    assert stage is not None
    assert stage.on_request is not None and stage.on_response is None
    assert stage.tool_points == ("on_tool_call",)
    assert stage.tool_check_timeout == pytest.approx(2.0 + 2.0)
    assert list(stage.by_kind) == ["llm_end"]
    assert [e.name for e in stage.chains[HookPoint.ON_TOOL_CALL].entries] == ["a", "b"]
