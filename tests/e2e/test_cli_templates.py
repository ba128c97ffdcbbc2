"""`fastagentic new` for each template, then the generated project's own tests; the plain project's worker
served by a real gateway; the crewai project tested and served from a crewai environment of its own
(tests/framework_venvs.py: skipped with the reason when it cannot be built); `templates list` with a local
registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cluster, Worker, wait_until
from tests.e2e.cli_support import fastagentic
from tests.framework_venvs import framework_venv, report

pytestmark = pytest.mark.e2e
TEMPLATES = ["plain", "pydantic-ai", "langgraph", "langchain"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_new_project_passes_its_own_tests(template: str, tmp_path: Path) -> None:
    made = fastagentic("new", f"shop-{template}", "--template", template, home=tmp_path, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / f"shop-{template}"
    module = f"shop_{template.replace('-', '_')}"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == sorted(
        [
            "Dockerfile",
            "README.md",
            "compose.yaml",
            "pyproject.toml",
            f"{module}/__init__.py",
            f"{module}/worker.py",
            "tests/test_worker.py",
        ]
    )
    assert f'CMD ["fastagentic", "run", "{module}.worker:app"]' in (project / "Dockerfile").read_text()
    extra = "" if template == "plain" else f"[{template}]"
    assert f'"fastagentic{extra}>=' in (project / "pyproject.toml").read_text()
    assert "{{" not in "".join((project / f).read_text() for f in files)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGENTIC_")}
    env["PYTHONPATH"] = str(project)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout


def test_the_plain_project_serves_through_a_gateway(cluster: Cluster, tmp_path: Path) -> None:
    assert fastagentic("new", "helpdesk", home=tmp_path, cwd=tmp_path).returncode == 0
    gateway = cluster.start_gateway()
    worker = Worker(gateway, "helpdesk.worker:app", cluster.logs, "helpdesk")
    worker.env["PYTHONPATH"] = f"{tmp_path / 'helpdesk'}{os.pathsep}{worker.env['PYTHONPATH']}"
    worker.start()
    cluster.processes.append(worker)
    wait_until(
        lambda: {"assistant", "refund"} <= gateway.endpoints(), what="the generated worker's endpoints"
    )
    done = fastagentic(
        "agent", "query", "what is the weather?", "--url", gateway.url, "-e", "assistant", "-f", "json",
        home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["text"] == "It is sunny in Paris, 21 °C."
    assert answer["tools"][0]["name"] == "weather"


def test_the_crewai_project_passes_its_tests_and_serves_from_its_own_environment(
    cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    made = fastagentic("new", "crew-desk", "--template", "crewai", home=tmp_path, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "fastagentic run crew_desk.worker:app --gateway HOST:50051" in made.stdout
    assert "fastagentic dev" not in made.stdout  # crewai and the gateway do not install together
    project = tmp_path / "crew-desk"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == sorted(
        [
            "Dockerfile",
            "README.md",
            "compose.yaml",
            "pyproject.toml",
            "crew_desk/__init__.py",
            "crew_desk/worker.py",
            "tests/test_worker.py",
        ]
    )
    assert '"fastagentic[crewai]>=' in (project / "pyproject.toml").read_text()
    dockerfile = (project / "Dockerfile").read_text()
    assert 'CMD ["fastagentic", "run", "crew_desk.worker:app"]' in dockerfile
    assert "CREWAI_DISABLE_TELEMETRY=true" in dockerfile
    assert "{{" not in "".join((project / f).read_text() for f in files)
    venv = framework_venv("crewai")
    report(request.config, venv)
    env = venv.env()
    env["PYTHONPATH"] = str(project)  # the SDK is installed in the environment: not the checkout's path
    tests = subprocess.run(
        [str(venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout and "failed" not in tests.stdout
    gateway = cluster.start_gateway()
    worker = Worker(gateway, "crew_desk.worker:app", cluster.logs, "crew-desk")
    worker.args[0] = str(venv.python)
    worker.env = env
    worker.start()
    cluster.processes.append(worker)
    wait_until(lambda: not worker.alive or "assistant" in gateway.endpoints(), what="the crew's endpoint")
    assert worker.alive, worker.output()
    with gateway.client() as http:
        done = http.post("/v1/agents/assistant/invoke", json={"question": "add 2 and 40"})
        refused = http.post("/v1/agents/assistant/invoke", json={"topic": "owls"})
    assert done.status_code == 200, done.text
    assert done.json()["output"] == "The sum is 42."
    assert refused.status_code == 422, refused.text


def test_refusals_write_nothing(tmp_path: Path) -> None:
    unknown = fastagentic("new", "x", "--template", "nope", home=tmp_path, cwd=tmp_path)
    assert unknown.returncode == 4
    assert "known: crewai, langchain, langgraph, plain, pydantic-ai" in unknown.stderr
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    taken = fastagentic("new", "taken", home=tmp_path, cwd=tmp_path)
    assert taken.returncode == 2
    assert "exists and is not empty" in taken.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    bad_name = fastagentic("new", "class", home=tmp_path, cwd=tmp_path)
    assert bad_name.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def local_template(registry: Path, name: str, fastagentic_range: str) -> None:
    root = registry / name
    (root / "files" / "__module__").mkdir(parents=True)
    (root / "template.json").write_text(
        json.dumps(
            {
                "format": 1,
                "name": name,
                "version": "2.1.0",
                "description": f"{name} from a registry",
                "fastagentic": fastagentic_range,
            }
        )
    )
    (root / "files" / "__module__" / "worker.py.tmpl").write_text(
        'from fastagentic import App\n\napp = App("{{project}}")\n'
    )
    (root / "files" / "NOTES.md.tmpl").write_text("# {{project}} ({{template}})\n")


def test_local_registry_and_compatibility_ranges(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    local_template(registry, "inhouse", ">=0.1,<1")
    local_template(registry, "future", ">=9.0")
    (registry / "broken").mkdir()
    (registry / "broken" / "template.json").write_text('{"format": 1, "name": "broken"}')
    listed = fastagentic("templates", "list", "--registry", str(registry), home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert set(rows) == {"plain", "pydantic-ai", "langgraph", "langchain", "inhouse", "future", "crewai"}
    assert f"2.1.0    {registry}" in rows["inhouse"] and " ok " in rows["inhouse"]
    assert "needs fastagentic >=9.0 (have 0.1.0)" in rows["future"]
    assert rows["plain"].split()[1:3] == ["1.0.0", "package"]
    assert rows["crewai"].split()[1:4] == ["1.0.0", "package", "ok"]
    assert "skipped" in listed.stderr and "missing or not a string: version" in listed.stderr
    made = fastagentic(
        "new", "tool-box", "-t", "inhouse", home=tmp_path, cwd=tmp_path, FASTAGENTIC_TEMPLATES=str(registry)
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "tool-box" / "NOTES.md").read_text() == "# tool-box (inhouse 2.1.0)\n"
    assert (tmp_path / "tool-box" / "tool_box" / "worker.py").exists()
    assert not (tmp_path / "tool-box" / "Dockerfile").exists()  # registry templates are self-contained
    refused = fastagentic(
        "new", "later", "-t", "future", "--registry", str(registry), home=tmp_path, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "needs fastagentic >=9.0" in refused.stderr
    forced = fastagentic(
        "new", "later", "-t", "future", "--registry", str(registry), "--force", home=tmp_path, cwd=tmp_path
    )
    assert forced.returncode == 0, forced.stderr
