"""Virtual environments of their own for the frameworks that cannot be installed beside the gateway (CrewAI):
the SDK (``pip install -e <repo>``, no ``gateway`` extra) plus the framework's extra, as a user deploys a
worker. Built once and cached under ``~/.cache/fastagentic/venvs/<framework>-<hash of the requirement spec>``
(``FASTAGENTIC_VENV_CACHE`` moves it), within a bounded time (``FASTAGENTIC_VENV_TIMEOUT``, 600 s). These
environments are not a service the CI promises: when one cannot be built (no network to PyPI, a timeout),
the tests that need it are skipped with the reason, never failed."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, Cluster, Worker, _connected, base_env, wait_until

#: What the inner tests need beside the SDK and the framework.
TEST_TOOLS = ("pytest>=8", "pytest-asyncio>=0.24", "pytest-timeout>=2.3")
STAMP = ".fastagentic-venv"


@dataclass(frozen=True)
class Venv:
    """An environment ``build_venv`` built (or found cached)."""

    name: str
    path: Path
    build_seconds: float  # of the first build (read back from the stamp when cached)
    built_now: bool

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


class FrameworkVenv(Venv):
    @property
    def framework(self) -> str:
        return self.name

    def env(self) -> dict[str, str]:
        env = base_env()
        env.update(
            {
                "CREWAI_DISABLE_TELEMETRY": "true",
                "CREWAI_TRACING_ENABLED": "false",
                "CREWAI_DISABLE_VERSION_CHECK": "true",
                "OTEL_SDK_DISABLED": "true",
            }
        )
        return env


def spec(framework: str) -> list[str]:
    """The requirement spec the environment is built from: the SDK's dependencies, the extra's, the test
    tools (all read from pyproject.toml, so a change to any gives a new environment)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    if framework not in extras:
        raise KeyError(f"pyproject.toml has no extra {framework!r}")
    return [*project["dependencies"], *extras[framework], *TEST_TOOLS]


def _cache() -> Path:
    given = os.environ.get("FASTAGENTIC_VENV_CACHE")
    return Path(given) if given else Path.home() / ".cache" / "fastagentic" / "venvs"


def cached_path(name: str, key: Sequence[str]) -> Path:
    """Where the environment ``name`` built from ``key`` (its requirements, ...) is cached: a change to the
    key or to this Python's version gives a new one."""
    digest = hashlib.sha256("\n".join([*key, sys.version.split()[0]]).encode()).hexdigest()
    return _cache() / f"{name}-{digest[:12]}"


def build_venv(what: str, path: Path, install: Sequence[str]) -> tuple[float, bool]:
    """The virtual environment at ``path`` with ``pip install *install`` done, built if it is not yet (one
    build at a time, a file lock; within ``FASTAGENTIC_VENV_TIMEOUT``): ``(seconds of the first build, built
    now)``. ``pytest.skip`` naming ``what`` (and the build's log) when it cannot be built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (two pytest sessions on one machine)
        stamp = path / STAMP
        if stamp.exists():
            return float(stamp.read_text().split()[0]), False
        shutil.rmtree(path, ignore_errors=True)  # a build that did not finish
        timeout = float(os.environ.get("FASTAGENTIC_VENV_TIMEOUT", "600"))
        started = time.monotonic()
        log = path.parent / f"{path.name}.log"
        try:
            with log.open("w") as out:
                subprocess.run(
                    [sys.executable, "-m", "venv", str(path)], check=True, stdout=out, stderr=out, timeout=60
                )
                remaining = max(timeout - (time.monotonic() - started), 1)
                subprocess.run(
                    [
                        str(path / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        *install,
                    ],
                    check=True,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=remaining,
                )
        except subprocess.TimeoutExpired:
            shutil.rmtree(path, ignore_errors=True)
            pytest.skip(f"the {what} environment was not built within {timeout:.0f}s (log: {log})")
        except (subprocess.CalledProcessError, OSError) as exc:
            shutil.rmtree(path, ignore_errors=True)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            pytest.skip(f"the {what} environment cannot be built ({exc}): {' / '.join(tail)} (log: {log})")
        seconds = time.monotonic() - started
        stamp.write_text(f"{seconds:.1f} seconds to build\n")
        return seconds, True


def say(config: pytest.Config, line: str) -> None:
    """Write ``line`` on the terminal (pytest's reporter, else stderr)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        sys.stderr.write(line + "\n")


def venv_path(framework: str) -> Path:
    return cached_path(framework, [*spec(framework), str(ROOT)])


def framework_venv(framework: str) -> FrameworkVenv:
    """The framework's environment, built if needed; ``pytest.skip`` when it cannot be."""
    path = venv_path(framework)
    return FrameworkVenv(
        framework, path, *build_venv(framework, path, ["-e", f"{ROOT}[{framework}]", *TEST_TOOLS])
    )


def report(config: pytest.Config, venv: FrameworkVenv) -> None:
    """Say on the terminal how long the environment took to build (the CI's cost)."""
    how = "built now" if venv.built_now else "cached"
    say(config, f"{venv.framework} environment ({how}, first build {venv.build_seconds:.0f}s): {venv.path}")


def start_worker(cluster: Cluster, venv: FrameworkVenv, target: str) -> Worker:
    """A worker run by the framework environment's python (``python -m fastagentic run target``), dialling the
    cluster's gateway: started and awaited as ``Cluster.start_worker`` does its own."""
    gateway = cluster.gateway
    assert gateway is not None
    cluster._workers += 1
    worker = Worker(gateway, target, cluster.logs, f"worker{cluster._workers}-{venv.framework}")
    worker.args[0] = str(venv.python)
    worker.env = venv.env()
    worker.start()
    cluster.processes.append(worker)
    wait_until(
        lambda: not worker.alive or _connected(gateway, worker),
        timeout=60,
        what=f"{worker.name} to connect",
    )
    if not worker.alive:
        raise AssertionError(f"{worker.name} exited:\n{worker.output()}")
    return worker
