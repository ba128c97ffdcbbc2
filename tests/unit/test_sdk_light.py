"""`pip install fastagentic` is the light SDK: importing it pulls in none of the gateway's weight."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = [
    "litestar",
    "uvicorn",
    "jsonschema",
    "fastagentic_gateway",
    "pydantic",
    "mcp",
    "mcp_types",
    "starlette",
]


def modules_loaded_by(statement: str) -> set[str]:
    """Top-level packages in sys.modules after running ``statement`` in a fresh interpreter."""
    code = textwrap.dedent(
        f"""
        import sys
        {statement}
        print("\\n".join(sorted({{name.split(".")[0] for name in sys.modules}})))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_importing_the_sdk_loads_no_gateway_dependency() -> None:
    loaded = modules_loaded_by(
        "import fastagentic, fastagentic.worker, fastagentic.cli, fastagentic.content, fastagentic.mcp_bridge"
    )
    assert "fastagentic" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_the_check_would_see_a_heavy_import() -> None:
    # Guards the test above: the subprocess really reports what an import loads.
    assert "jsonschema" in modules_loaded_by("import fastagentic, jsonschema")


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def test_sdk_dependencies_are_exactly_grpcio_protobuf_msgspec_httpx() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [requirement_name(requirement) for requirement in project["dependencies"]]
    assert sorted(names) == ["grpcio", "httpx", "msgspec", "protobuf"]


def test_the_cli_loads_its_extras_only_when_a_command_needs_them() -> None:
    # rich (the cli extra) and the validators' official clients (the gateway extra) are imported lazily.
    loaded = modules_loaded_by(
        "import fastagentic.cli, fastagentic.cli_config; fastagentic.cli.build_parser().parse_args(['agent', 'query'])"
    )
    assert sorted(loaded & {"rich", "a2a", "mcp", "prompt_toolkit", "pydantic", "fastagentic_gateway"}) == []
    # The guard: a renderer for a terminal does load it.
    assert "rich" in modules_loaded_by(
        "import io, fastagentic.cli_agent as a; t = io.StringIO(); t.isatty = lambda: True; "
        "a.renderer_for(t, 'markdown')"
    )


def test_rich_is_an_optional_extra_not_a_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert [requirement_name(r) for r in project["optional-dependencies"]["cli"]] == ["rich"]
