"""The Semantic Kernel adapter. semantic-kernel cannot be installed beside the gateway
(docs/adapters/semantic-kernel.md), so its tests run where a user runs an agent: in a worker environment of its
own, the SDK and ``fastagentic[semantic-kernel]`` (tests/framework_venvs.py builds it once, cached; skipped when
it cannot be built). Here, in the main environment: the adapter's module is lazy (``import fastagentic``
imports no semantic_kernel), and the inner suite (tests/unit/adapter_semantic_kernel_inside.py) is run by that
environment's python and must pass."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.framework_venvs import framework_venv, report, spec

INSIDE = "tests/unit/adapter_semantic_kernel_inside.py"


def test_the_extra_is_not_part_of_dev_and_pins_the_tested_minor() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["semantic-kernel"] == ["semantic-kernel>=1.45,<1.46"]
    assert "semantic-kernel" not in extras["dev"][0]
    assert not any("litestar" in line for line in spec("semantic-kernel"))  # the SDK only: no gateway stack


def test_importing_fastagentic_imports_no_semantic_kernel() -> None:
    code = (
        "import sys, fastagentic, fastagentic.adapters; "
        "assert 'semantic_kernel' not in sys.modules "
        "and 'fastagentic.adapters.semantic_kernel' not in sys.modules; "
        "print(fastagentic.adapters.__all__.count('SemanticKernelAdapter'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


@pytest.mark.skipif(
    importlib.util.find_spec("semantic_kernel") is not None, reason="semantic-kernel is installed here"
)
def test_without_semantic_kernel_naming_the_adapter_says_what_is_missing() -> None:
    import fastagentic.adapters

    with pytest.raises(ModuleNotFoundError, match="semantic_kernel"):
        fastagentic.adapters.SemanticKernelAdapter  # noqa: B018


def test_the_adapter_passes_its_suite_inside_the_semantic_kernel_environment(
    request: pytest.FixtureRequest,
) -> None:
    venv = framework_venv("semantic-kernel")
    report(request.config, venv)
    done = subprocess.run(
        [
            str(venv.python),
            "-m",
            "pytest",
            INSIDE,
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::DeprecationWarning",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=venv.env(),
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    summary = re.search(r"(\d+) passed", output)
    assert summary and int(summary.group(1)) >= 15 and "failed" not in output.splitlines()[-1], output[-3000:]
