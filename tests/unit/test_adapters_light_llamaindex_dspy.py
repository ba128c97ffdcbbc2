"""The LlamaIndex and DSPy adapters keep the SDK light: importing fastagentic imports neither framework,
registering one framework's object imports no other, and each is an extra with a tested range, in dev."""

from __future__ import annotations

import re
import tomllib

from tests.unit.test_sdk_light import REPO, modules_loaded_by, requirement_name


def test_importing_fastagentic_imports_neither_framework() -> None:
    loaded = modules_loaded_by("import fastagentic, fastagentic.adapters, fastagentic.testing")
    assert sorted(loaded & {"llama_index", "workflows", "dspy", "litellm"}) == []


def test_registering_a_llamaindex_agent_imports_no_other_framework() -> None:
    loaded = modules_loaded_by(
        "from llama_index.core.agent.workflow import FunctionAgent; "
        "from llama_index.core.llms.mock import MockFunctionCallingLLM; "
        "from fastagentic import App; App('a').agent(FunctionAgent(name='x', llm=MockFunctionCallingLLM()))"
    )
    assert "llama_index" in loaded
    assert sorted(loaded & {"dspy", "langgraph", "langchain", "pydantic_ai", "agents"}) == []


def test_registering_a_dspy_module_imports_no_other_framework() -> None:
    loaded = modules_loaded_by(
        "import dspy; from fastagentic import App; App('a').agent(dspy.Predict('question -> answer'), name='x')"
    )
    assert "dspy" in loaded
    assert sorted(loaded & {"llama_index", "langgraph", "langchain", "pydantic_ai", "agents"}) == []


def test_each_framework_is_an_extra_with_a_tested_range_and_in_dev() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [requirement_name(r) for r in extras["llama-index"]] == ["llama-index-core"]
    assert [requirement_name(r) for r in extras["dspy"]] == ["dspy"]
    for extra in ("llama-index", "dspy"):
        for requirement in extras[extra]:
            assert re.search(r">=[\d.]+,<[\d.]+", requirement), requirement
        assert re.search(rf"fastagentic\[.*\b{extra}\b.*\]", extras["dev"][0]), extra
    # Semantic Kernel cannot be co-installed with the gateway (mcp <2 against mcp >=2.3): its extra is for
    # the worker's own environment, not part of dev (tests/unit/test_adapters_semantic_kernel.py).
    assert "semantic-kernel" not in extras["dev"][0]
