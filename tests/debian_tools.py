"""Programs the tests borrow from Debian packages (``prometheus`` and ``promtool``), found or fetched.

A program is the one on ``PATH`` when installed; otherwise the package is downloaded once with
``apt-get download`` (Debian's package registry is one this project's machines reach, and downloading
needs no root) and unpacked with ``dpkg-deb -x`` into ``~/.cache/fastagentic/debian/<package>``, where
later runs find it. Nothing is installed system-wide.

``debian_program`` returns the path, or None with the reason in ``debian_problem``; tests call
``require_debian_program``, which skips saying why, or fails under ``FASTAGENTIC_REQUIRE_SERVICES=1``
(as a missing service does, tests/services.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.services import _unavailable

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastagentic" / "debian"


@functools.cache
def _fetch(package: str) -> tuple[Path | None, str]:
    """The package unpacked under CACHE (fetched now if it is not there yet), or None and why."""
    root = CACHE / package
    if (root / ".unpacked").exists():
        return root, ""
    apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt_get is None or dpkg_deb is None:
        return None, "apt-get and dpkg-deb are needed to fetch it (not a Debian machine)"
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as download:
        fetched = subprocess.run(
            [apt_get, "download", "-q", package], cwd=download, capture_output=True, text=True, timeout=600
        )
        debs = sorted(Path(download).glob(f"{package}_*.deb"))
        if fetched.returncode != 0 or not debs:
            reason = (fetched.stderr or fetched.stdout).strip().splitlines()
            return None, f"apt-get download {package} failed: {reason[-1] if reason else fetched.returncode}"
        staging = Path(tempfile.mkdtemp(dir=CACHE, prefix=f".{package}-"))
        unpacked = subprocess.run(
            [dpkg_deb, "-x", str(debs[0]), str(staging)], capture_output=True, text=True
        )
        if unpacked.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            return None, f"dpkg-deb -x {debs[0].name} failed: {unpacked.stderr.strip()}"
        (staging / ".unpacked").write_text(debs[0].name + "\n")
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)  # whole or not at all: a run killed mid-way leaves only a staging folder
    return root, ""


def debian_program(package: str, program: str) -> tuple[str | None, str]:
    """``program`` from ``package``: its path, or None and why it could not be had."""
    found = shutil.which(program)
    if found is not None:
        return found, ""
    root, problem = _fetch(package)
    if root is None:
        return None, f"{program} is not installed and could not be fetched: {problem}"
    path = root / "usr" / "bin" / program
    if not path.exists():
        return None, f"the Debian package {package} holds no usr/bin/{program}"
    return str(path), ""


def require_debian_program(package: str, program: str) -> str:
    """``program``'s path; the test is skipped (or fails, when services are required) without it."""
    path, problem = debian_program(package, program)
    if path is None:
        _unavailable(problem)
        raise AssertionError("unreachable")  # _unavailable skips or fails
    return path
