"""The adapters keep the SDK light: importing fastagentic, its adapter seam and its contract kit imports no
framework; registering one framework's agent imports that framework only; each framework is an extra."""

from __future__ import annotations

import re
import tomllib

from tests.unit.test_sdk_light import REPO, modules_loaded_by, requirement_name

FRAMEWORKS = {"pydantic_ai", "langgraph", "langchain", "langchain_core", "agents", "openai", "pydantic"}


def test_the_seam_and_the_kit_import_no_framework() -> None:
    loaded = modules_loaded_by("import fastagentic, fastagentic.adapters, fastagentic.testing")
    assert {"fastagentic"} <= loaded
    assert sorted(loaded & FRAMEWORKS) == []


def test_registering_a_pydantic_ai_agent_imports_no_other_framework() -> None:
    loaded = modules_loaded_by(
        "from pydantic_ai import Agent; from pydantic_ai.models.test import TestModel; "
        "from fastagentic import App; App('a').agent(Agent(TestModel(), name='x'))"
    )
    assert "pydantic_ai" in loaded
    assert sorted(loaded & {"langgraph", "langchain", "langchain_core", "agents"}) == []


def test_registering_a_langgraph_graph_imports_neither_langchain_nor_another_framework() -> None:
    # The LangChain adapter is asked first for a graph (it takes create_agent's): it needs langchain_core and
    # langgraph only, which a graph has already loaded.
    loaded = modules_loaded_by(
        "from langgraph.graph import StateGraph, START; from typing_extensions import TypedDict; "
        "g = StateGraph(TypedDict('S', {'n': int})); g.add_node('one', lambda s: s); g.add_edge(START, 'one'); "
        "from fastagentic import App; App('a').agent(g.compile(name='x'))"
    )
    assert "langgraph" in loaded
    assert sorted(loaded & {"langchain", "pydantic_ai", "agents"}) == []


def test_registering_an_openai_agents_agent_imports_no_other_framework() -> None:
    loaded = modules_loaded_by(
        "from agents import Agent; from fastagentic import App; App('a').agent(Agent(name='x'))"
    )
    assert "agents" in loaded
    assert sorted(loaded & {"pydantic_ai", "langgraph", "langchain", "langchain_core"}) == []


def test_registering_a_langchain_agent_imports_no_other_framework() -> None:
    loaded = modules_loaded_by(
        "from langchain.agents import create_agent; "
        "from langchain_core.language_models.fake_chat_models import FakeListChatModel; "
        "from fastagentic import App; App('a').agent(create_agent(FakeListChatModel(responses=['x']), name='x'))"
    )
    assert {"langchain", "langgraph"} <= loaded
    assert sorted(loaded & {"pydantic_ai", "agents"}) == []


def test_each_framework_is_an_extra_with_a_tested_range_and_in_dev() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [requirement_name(r) for r in extras["pydantic-ai"]] == ["pydantic-ai-slim"]
    assert "langgraph" in [requirement_name(r) for r in extras["langgraph"]]
    assert {"langchain", "langgraph"} <= {requirement_name(r) for r in extras["langchain"]}
    assert [requirement_name(r) for r in extras["openai-agents"]] == ["openai-agents"]
    for extra in ("pydantic-ai", "langgraph", "langchain", "openai-agents"):
        for requirement in extras[extra]:
            assert re.search(r">=[\d.]+,<\d+", requirement), requirement  # a lower and an upper bound
        assert re.search(rf"fastagentic\[.*\b{extra}\b.*\]", extras["dev"][0]), extra
    # AutoGen AgentChat cannot be co-installed (autogen-core pins protobuf below the stubs' 7.35): no extra.
    assert not any("autogen" in name for name in extras)
