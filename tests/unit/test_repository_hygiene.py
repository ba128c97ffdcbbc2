"""The repository holds source, not build output: no tracked file over 1 MB (a vendored binary, a
node_modules, a bench dump slips in that way), and nothing under the directories the build fills."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 1_000_000
NEVER_TRACKED = (".tools/", ".venv/", "bench-results/", "node_modules/", "dist/", "build/")


def _tracked() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return [name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_is_over_a_megabyte() -> None:
    large = [
        f"{name} ({(ROOT / name).stat().st_size:,} bytes)"
        for name in _tracked()
        if (ROOT / name).is_file() and (ROOT / name).stat().st_size > MAX_BYTES
    ]
    assert large == [], f"tracked files over {MAX_BYTES:,} bytes: {large}"


def test_build_output_is_not_tracked() -> None:
    found = [
        name for name in _tracked() if any(part in f"/{name}" for part in (f"/{d}" for d in NEVER_TRACKED))
    ]
    assert found == [], f"build output in the repository: {found[:10]}"
