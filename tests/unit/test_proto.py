"""The committed gRPC stubs are exactly what `make proto` generates from proto/ (no stale stubs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROTO = "proto/fastagentic/v1/worker.proto"
COMMITTED = REPO / "sdk" / "fastagentic" / "v1"
GENERATED = ["worker_pb2.py", "worker_pb2.pyi", "worker_pb2_grpc.py"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stubs")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            PROTO,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out / "fastagentic" / "v1"


@pytest.mark.parametrize("name", GENERATED)
def test_committed_stub_matches_a_fresh_generation(regenerated: Path, name: str) -> None:
    fresh = (regenerated / name).read_bytes()
    committed = (COMMITTED / name).read_bytes()
    assert committed == fresh, f"sdk/fastagentic/v1/{name} is stale: run `make proto` and commit the result"


def test_generation_produces_only_the_committed_stubs(regenerated: Path) -> None:
    assert sorted(path.name for path in regenerated.iterdir()) == sorted(GENERATED)
