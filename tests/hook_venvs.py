"""Virtual environments of their own for the guardrail libraries that cannot be installed beside the gateway
(Guardrails AI, NeMo Guardrails; docs/hooks/guardrails-ai.md, docs/hooks/nemo.md), in which the example hook
services (examples/hooks/) run. Built by tests/framework_venvs.py's ``build_venv``: once from pinned
requirements and cached under ``~/.cache/fastagentic/venvs/hook-<service>-<hash of the requirements>``
(``FASTAGENTIC_VENV_CACHE`` moves it), one build at a time (a file lock), within a bounded time
(``FASTAGENTIC_VENV_TIMEOUT``, 600 s). When one cannot be built (no package index, a timeout), the tests that
need it are skipped with the reason, never failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, base_env
from tests.framework_venvs import Venv, build_venv, cached_path, say

#: The pinned library of each service: the versions the example services were written and tested with.
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "guardrails_ai": ("guardrails-ai==0.11.0",),
    "nemo": ("nemoguardrails==0.24.1",),
}
#: The example service each environment runs.
SCRIPTS = {
    "guardrails_ai": ROOT / "examples" / "hooks" / "guardrails_ai_service.py",
    "nemo": ROOT / "examples" / "hooks" / "nemo_service.py",
}


class HookVenv(Venv):
    @property
    def service(self) -> str:
        return self.name

    @property
    def script(self) -> Path:
        return SCRIPTS[self.service]

    def env(self) -> dict[str, str]:
        env = base_env()
        env.pop("PYTHONPATH", None)  # the service imports nothing of this repository
        return env


def venv_path(service: str) -> Path:
    return cached_path(f"hook-{service}", REQUIREMENTS[service])


def hook_venv(service: str) -> HookVenv:
    """The service's environment, built if needed; ``pytest.skip`` when it cannot be."""
    path = venv_path(service)
    return HookVenv(service, path, *build_venv(service, path, REQUIREMENTS[service]))


def report(config: pytest.Config, venv: HookVenv) -> None:
    """Say on the terminal how long the environment took to build (the CI's cost)."""
    how = "built now" if venv.built_now else "cached"
    line = f"{venv.service} hook service environment ({how}, first build {venv.build_seconds:.0f}s)"
    say(config, f"{line}: {venv.path}")
