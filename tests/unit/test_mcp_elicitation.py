"""Interrupts as MCP elicitation forms, and the signed ``requestState`` of 2026-07-28 input-required results."""

from __future__ import annotations

import base64
import enum
import time
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from mcp.shared.exceptions import MCPError

from fastagentic.context import Decision
from fastagentic.schema import AnswerType
from fastagentic_gateway.access.principal import ANONYMOUS, Principal
from fastagentic_gateway.fronts.mcp.elicitation import Form, Interrupt, message_of
from fastagentic_gateway.fronts.mcp.request_state import RequestState, RequestStates, arguments_digest, who_of


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(msgspec.Struct):
    x: int


class Profile(msgspec.Struct):
    name: str
    age: int | None = None
    color: Color = Color.RED
    tags: list[Literal["a", "b"]] = []
    inner: Inner | None = None
    ok: bool = False
    ratio: float = 0.5


def form(tp: Any, request: Any = "?") -> Form:
    return Form(Interrupt("i", request, AnswerType(tp).schema if tp is not None else None, 4))


# ---------------------------------------------------------------- forms


def test_an_object_answer_is_one_field_per_property_with_what_forms_allow() -> None:
    fields = form(Profile).schema()["properties"]
    assert fields["name"] == {"type": "string"}
    assert fields["age"] == {"type": "integer"}  # int | None: the field, left out for None
    assert fields["color"] == {"title": "Color", "type": "string", "enum": ["blue", "red"], "default": "red"}
    assert fields["tags"] == {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "default": []}
    assert fields["ok"] == {"type": "boolean", "default": False}
    assert fields["ratio"] == {"type": "number", "default": 0.5}
    assert form(Profile).schema()["required"] == ["name"]


def test_a_property_forms_cannot_express_is_a_json_field() -> None:
    profile = form(Profile)
    inner = profile.schema()["properties"]["inner"]
    assert inner["type"] == "string" and inner["title"] == "Inner (JSON)"
    assert '"required":["x"]' in inner["description"]
    assert profile.answer({"name": "a", "inner": '{"x": 1}'}) == ({"name": "a", "inner": {"x": 1}}, [])
    assert profile.answer({"name": "a", "inner": ""}) == ({"name": "a"}, [])  # left out
    value, problems = profile.answer({"name": "a", "inner": "{x"})
    assert value == {"name": "a"} and problems[0].startswith("inner: not JSON")


def test_an_approval_is_a_choice_a_json_payload_and_a_reason() -> None:
    approval = form(Decision, {"approval": {"action": "refund", "details": {"amount": 3}}})
    assert approval.message == 'Approve refund?\n{"amount": 3}'
    fields = approval.schema()["properties"]
    assert fields["decision"] == {"type": "string", "enum": ["approve", "edit", "reject"]}
    assert fields["payload"] == {"type": "string", "title": "payload (JSON)", "description": "any JSON value"}
    assert approval.answer({"decision": "edit", "payload": "[1]", "reason": None}) == (
        {"decision": "edit", "payload": [1]},
        [],
    )


def test_any_other_answer_is_the_one_field_answer() -> None:
    assert form(int).schema() == {
        "type": "object",
        "properties": {"answer": {"type": "integer", "title": "Answer"}},
        "required": ["answer"],
    }
    assert form(int).answer({"answer": 5.0}) == (5, [])  # a float that is an integer, as some clients send
    assert form(int).answer({}) == (None, ["answer: an answer is required"])
    assert form(Literal["yes", "no"]).schema()["properties"]["answer"]["enum"] == ["no", "yes"]
    listed = form(list[int])
    assert listed.json_fields == {"answer"}
    assert listed.answer({"answer": "[1, 2]"}) == ([1, 2], [])


def test_without_a_schema_the_answer_is_the_text() -> None:
    free = form(None)
    assert free.schema()["properties"] == {"answer": {"type": "string", "title": "Answer"}}
    assert free.answer({"answer": "yes, go"}) == ("yes, go", [])


def test_unknown_fields_of_the_content_are_ignored() -> None:
    assert form(Profile).answer({"name": "a", "extra": 1}) == ({"name": "a"}, [])


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"question": "How much?"}, "How much?"),
        ({"message": "Your name?"}, "Your name?"),
        ("plain text", "plain text"),
        ({"what": [1]}, '{"what": [1]}'),
    ],
)
def test_the_message_is_the_question(request_: Any, message: str) -> None:
    assert message_of(request_) == message


def test_a_request_for_the_form_and_its_note() -> None:
    request = form(int, "n?").request("Try again.")
    assert request["method"] == "elicitation/create"
    assert request["params"]["mode"] == "form"
    assert request["params"]["message"] == "n?\n\nTry again."


# ---------------------------------------------------------------- request states

ALICE = Principal(subject="alice", tenant="acme")


def states(tmp_path: Path, secret: str = "", ttl: float = 60) -> RequestStates:
    return RequestStates(secret, str(tmp_path), ttl)


def mint(keeper: RequestStates, who: Principal = ALICE, arguments: Any = None) -> str:
    return keeper.mint(
        run="run_1",
        interrupt="i",
        seq=4,
        who=who_of(who),
        tool="ask",
        args=arguments_digest(arguments or {"q": 1}),
        asked=1,
    )


def reason(
    keeper: RequestStates, token: str, who: Principal = ALICE, tool: str = "ask", args: Any = None
) -> str:
    with pytest.raises(MCPError) as refused:
        keeper.open(token, who, tool, args or {"q": 1})
    assert refused.value.code == -32602 and refused.value.message == "Invalid or expired requestState"
    assert isinstance(refused.value.data, dict)
    return str(refused.value.data["reason"])


def test_a_state_opens_for_its_caller_and_call(tmp_path: Path) -> None:
    keeper = states(tmp_path)
    state = keeper.open(mint(keeper), ALICE, "ask", {"q": 1})
    assert (state.run, state.interrupt, state.seq, state.asked) == ("run_1", "i", 4, 1)


def test_a_tampered_state_is_refused(tmp_path: Path) -> None:
    keeper = states(tmp_path)
    token = mint(keeper)
    body, mac = token.rsplit(".", 1)
    forged = msgspec.json.encode(
        RequestState("run_2", "i", 4, who_of(ALICE), "ask", "x", 1, time.time() + 60)
    )
    swapped = "fa1." + base64.urlsafe_b64encode(forged).rstrip(b"=").decode() + "." + mac
    assert reason(keeper, swapped) == "invalid"
    assert reason(keeper, body + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB")) == "invalid"
    assert reason(keeper, "not a state") == "invalid"
    assert reason(states(tmp_path / "other"), token) == "invalid"  # another gateway's secret


def test_a_state_is_bound_to_its_principal_tenant_and_call(tmp_path: Path) -> None:
    keeper = states(tmp_path)
    token = mint(keeper)
    assert reason(keeper, token, who=Principal(subject="bob", tenant="acme")) == "invalid"
    assert reason(keeper, token, who=Principal(subject="alice", tenant="other")) == "invalid"
    assert reason(keeper, token, who=ANONYMOUS) == "invalid"
    assert reason(keeper, token, tool="other") == "invalid"
    assert reason(keeper, token, args={"q": 2}) == "invalid"


def test_an_expired_state_is_refused(tmp_path: Path) -> None:
    keeper = states(tmp_path, ttl=0.01)
    token = mint(keeper)
    time.sleep(0.05)
    assert reason(keeper, token) == "expired"


def test_the_secret_is_kept_in_the_data_directory_or_set(tmp_path: Path) -> None:
    token = mint(states(tmp_path))
    assert (tmp_path / "mcp_state_secret").stat().st_mode & 0o777 == 0o600
    assert states(tmp_path).open(token, ALICE, "ask", {"q": 1}).run == "run_1"  # a restart: the same secret
    shared = "s" * 32
    assert states(tmp_path / "b", shared).open(mint(states(tmp_path / "a", shared)), ALICE, "ask", {"q": 1})
