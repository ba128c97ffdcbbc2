"""Usage accounting without a store: what an llm_end event's usage may be, the price table, the setting,
and the SDK's ``ctx.usage``."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest

from fastagentic import Caller, RunContext
from fastagentic_gateway.runs.model import NewEvent
from fastagentic_gateway.settings import SettingsError, load
from fastagentic_gateway.store import MemoryRunStore
from fastagentic_gateway.usage.accounting import (
    InvalidUsage,
    LlmUsage,
    Prices,
    UsageAccounting,
    reported_usage,
)


def data(**fields: Any) -> bytes:
    return msgspec.json.encode(fields)


# ---------------------------------------------------------------- what counts as usage


def test_an_llm_end_with_usage_is_read() -> None:
    assert reported_usage(data(model="gpt-4o", input_tokens=12, output_tokens=3, cost=0.5)) == LlmUsage(
        "gpt-4o", 12, 3, 0.5
    )
    assert reported_usage(data(model="m", input_tokens=2**53)) == LlmUsage("m", 2**53, 0, None)
    assert reported_usage(data(model="m", cost=0)) == LlmUsage("m", 0, 0, 0.0)
    assert reported_usage(data(model="m" * 200, output_tokens=0, extra={"x": 1})) == LlmUsage("m" * 200)


@pytest.mark.parametrize(
    "payload",
    [b"{}", b"[]", b'"text"', b"null", data(model="m"), data(text="done"), data(model="m", cost=None)],
)
def test_an_llm_end_without_usage_fields_is_not_usage(payload: bytes) -> None:
    assert reported_usage(payload) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input_tokens": 1}, "model must be a non-empty string of at most 200 characters, not None"),
        ({"model": "", "input_tokens": 1}, "model must be a non-empty string"),
        ({"model": "m" * 201, "input_tokens": 1}, "at most 200 characters"),
        ({"model": 7, "input_tokens": 1}, "not 7"),
        ({"model": "a\x00b", "input_tokens": 1}, "control characters"),
        ({"model": "m", "input_tokens": -1}, "input_tokens must be an integer from 0 to 2**53, not -1"),
        ({"model": "m", "output_tokens": 2**53 + 1}, "output_tokens must be an integer from 0 to 2**53"),
        ({"model": "m", "input_tokens": 1.5}, "input_tokens must be an integer from 0 to 2**53, not 1.5"),
        ({"model": "m", "input_tokens": True}, "input_tokens must be an integer"),
        ({"model": "m", "input_tokens": "12"}, "not '12'"),
        ({"model": "m", "cost": -0.01}, "cost must be a finite number from 0 to 1e+09, not -0.01"),
        ({"model": "m", "cost": 1e10}, "cost must be a finite number from 0 to 1e+09"),
        ({"model": "m", "cost": "1"}, "cost must be a number, not '1'"),
        ({"model": "m", "cost": False}, "cost must be a number"),
    ],
)
def test_invalid_usage_says_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidUsage) as caught:
        reported_usage(data(**fields))
    assert message in str(caught.value)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_cost_that_is_not_finite_is_invalid(value: float) -> None:
    # Not JSON; checked on decoded data (the gateway's JSON decoder refuses these already).
    with pytest.raises(InvalidUsage, match="cost must be a finite number"):
        reported_usage({"model": "m", "cost": value})


def test_a_batch_names_the_run_and_the_seq_of_the_bad_event() -> None:
    accounting = UsageAccounting({}, MemoryRunStore(), MemoryRunStore())
    batch = [
        NewEvent(kind="token", data=b'{"text": "x"}'),
        NewEvent(kind="llm_end", data=data(model="m", input_tokens=1)),
        NewEvent(kind="llm_end", data=data(model="m", input_tokens=-5)),
    ]
    with pytest.raises(InvalidUsage) as caught:
        accounting.parse("run_1", 7, batch)
    assert str(caught.value) == (
        "run run_1: llm_end event (seq 9): input_tokens must be an integer from 0 to 2**53, not -5"
    )
    assert accounting.parse("run_1", 1, batch[:1]) is None
    assert accounting.parse("run_1", 1, [NewEvent(kind="llm_end", data=b"{}")]) is None
    assert accounting.parse("run_1", 1, batch[:2]) == [None, LlmUsage("m", 1, 0, None)]


# ---------------------------------------------------------------- prices


def test_prices_turn_tokens_into_cost_unless_the_worker_gave_one() -> None:
    prices = Prices({"gpt": {"input_per_million": 0.15, "output_per_million": 0.6}})
    assert prices.cost(LlmUsage("gpt", 1_000_000, 2_000_000)) == pytest.approx(1.35)
    assert prices.cost(LlmUsage("gpt", 10, 10, cost=0.01)) == 0.01
    assert prices.cost(LlmUsage("unknown", 10, 10)) is None
    assert prices.cost(LlmUsage("unknown", 10, 10, cost=0.0)) == 0.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"gpt": {"input_per_million": 1.0}}, "prices['gpt']: output_per_million is missing"),
        ({"gpt": {"input_per_million": 1, "output_per_million": -1}}, "output_per_million must be a number"),
        ({"gpt": {"input_per_million": math.nan, "output_per_million": 1}}, "input_per_million must be"),
        ({"gpt": {"input_per_million": 1, "output_per_million": 1, "cached": 1}}, "unknown field 'cached'"),
        ({"": {"input_per_million": 1, "output_per_million": 1}}, "prices: model must be a non-empty"),
        ({"gpt": 3}, "prices['gpt'] must be a table"),
    ],
)
def test_a_bad_price_table_is_refused_naming_the_model(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Prices(table)
    assert message in str(caught.value)


def test_the_prices_setting_is_read_and_checked_at_load() -> None:
    table = {"gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.6}}
    settings = load(environ={"FASTAGENTIC_PRICES": json.dumps(table)})
    assert settings.prices == table
    Prices(settings.prices)
    for bad, message in [
        ({"gpt": {"input_per_million": 1}}, "length >= 2"),
        ({"gpt": {"input_per_million": 1, "output": 1}}, "Invalid enum value 'output'"),
        ({"gpt": {"input_per_million": -1, "output_per_million": 1}}, ">= 0"),
        ({"": {"input_per_million": 1, "output_per_million": 1}}, "length >= 1"),
    ]:
        with pytest.raises(SettingsError) as caught:
            load(environ={"FASTAGENTIC_PRICES": json.dumps(bad)})
        assert "$.prices" in str(caught.value) and message in str(caught.value)


# ---------------------------------------------------------------- the SDK


def context(sink: list[tuple[str, bytes]]) -> RunContext:
    return RunContext(
        run_id="run_1",
        attempt=1,
        endpoint="ask",
        caller=Caller(principal="alice", tenant="acme"),
        sink=lambda kind, payload, _state: sink.append((kind, payload)),
    )


async def test_ctx_usage_emits_an_llm_end_event() -> None:
    sent: list[tuple[str, bytes]] = []
    ctx = context(sent)
    await ctx.usage("gpt-4o", input_tokens=120, output_tokens=45)
    await ctx.usage("gpt-4o", input_tokens=1, cost=0.002)
    assert [(kind, json.loads(payload)) for kind, payload in sent] == [
        ("llm_end", {"model": "gpt-4o", "input_tokens": 120, "output_tokens": 45}),
        ("llm_end", {"model": "gpt-4o", "input_tokens": 1, "output_tokens": 0, "cost": 0.002}),
    ]
    # What the SDK sends is what the gateway counts.
    assert reported_usage(sent[1][1]) == LlmUsage("gpt-4o", 1, 0, 0.002)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("",), {}),
        (("m",), {"input_tokens": -1}),
        (("m",), {"output_tokens": 1.5}),
        (("m",), {"cost": math.inf}),
        (("m",), {"cost": -1.0}),
        (("a\nb",), {}),
    ],
)
async def test_ctx_usage_refuses_what_the_gateway_would(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    sent: list[tuple[str, bytes]] = []
    with pytest.raises(ValueError):
        await context(sent).usage(*args, **kwargs)
    assert sent == []
