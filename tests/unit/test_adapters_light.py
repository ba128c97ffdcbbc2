"""The adapters keep the SDK light: importing fastagentic, its adapter seam and its contract kit imports no
framework; registering one framework's agent imports that framework only; each framework is an extra."""

from __future__ import annotations

import re
import tomllib

from tests.unit.test_sdk_light import REPO, modules_loaded_by, requirement_name

FRAMEWORKS = {"pydantic_ai", "langgraph", "langchain_core", "pydantic"}


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
    assert sorted(loaded & {"langgraph", "langchain_core"}) == []


def test_each_framework_is_an_extra_with_a_tested_range_and_in_dev() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [requirement_name(r) for r in extras["pydantic-ai"]] == ["pydantic-ai-slim"]
    assert "langgraph" in [requirement_name(r) for r in extras["langgraph"]]
    for requirement in extras["pydantic-ai"] + extras["langgraph"]:
        assert re.search(r">=[\d.]+,<\d+", requirement), requirement  # a lower and an upper bound
    assert re.search(r"fastagentic\[.*pydantic-ai.*\]", extras["dev"][0])
    assert re.search(r"fastagentic\[.*langgraph.*\]", extras["dev"][0])
