"""`fastagentic agent config`: ~/.fastagentic/config.json, FASTAGENTIC_* over it, flags over both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fastagentic(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FASTAGENTIC_")}
    environment.update(HOME=str(home), PYTHONPATH=str(REPO), **env)
    return subprocess.run(
        [sys.executable, "-m", "fastagentic", "agent", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_set_get_list_and_precedence(tmp_path: Path) -> None:
    assert fastagentic(tmp_path, "config", "get", "url").stdout == "http://127.0.0.1:8000\n"
    done = fastagentic(tmp_path, "config", "set", "url", "http://gateway.internal:9000/")
    assert done.returncode == 0, done.stderr
    stored = json.loads((tmp_path / ".fastagentic" / "config.json").read_text())
    assert stored == {"url": "http://gateway.internal:9000"}
    assert fastagentic(tmp_path, "config", "get", "url").stdout == "http://gateway.internal:9000\n"
    # The environment overrides the file.
    env = fastagentic(tmp_path, "config", "get", "url", FASTAGENTIC_URL="http://from-env:1")
    assert env.stdout == "http://from-env:1\n"
    fastagentic(tmp_path, "config", "set", "api_key", "fa_key_abcdefghijkl")
    fastagentic(tmp_path, "config", "set", "format", "json")
    listed = fastagentic(tmp_path, "config", "list", FASTAGENTIC_FORMAT="plain").stdout.splitlines()
    assert "url = http://gateway.internal:9000  (file)" in listed
    assert "format = plain  (env)" in listed
    assert "timeout = 300  (default)" in listed
    assert "api_key = fa_key…  (file)" in listed  # secrets are not printed whole
    assert (tmp_path / ".fastagentic" / "config.json").stat().st_mode & 0o077 == 0
    assert fastagentic(tmp_path, "config", "unset", "format").returncode == 0
    assert fastagentic(tmp_path, "config", "get", "format").stdout == "markdown\n"


def test_bad_keys_and_values_are_refused_and_change_nothing(tmp_path: Path) -> None:
    fastagentic(tmp_path, "config", "set", "timeout", "30")
    path = tmp_path / ".fastagentic" / "config.json"
    before = path.read_text()
    for args, message in [
        (("set", "colour", "red"), "unknown configuration key 'colour'"),
        (("set", "url", "gateway:8000"), "url = 'gateway:8000': expected an http:// or https:// URL"),
        (("set", "timeout", "-1"), "expected a number of seconds above 0"),
        (("set", "format", "yaml"), "expected one of markdown, plain, json"),
        (("set", "history", "maybe"), "expected true or false"),
        (("get", "colour"), "unknown configuration key 'colour'"),
    ]:
        done = fastagentic(tmp_path, "config", *args)
        assert done.returncode == 2, args
        assert message in done.stderr, (args, done.stderr)
    assert path.read_text() == before
    bad_env = fastagentic(tmp_path, "config", "list", FASTAGENTIC_TIMEOUT="soon")
    assert bad_env.returncode == 2
    assert "FASTAGENTIC_TIMEOUT: timeout = 'soon': expected a number of seconds" in bad_env.stderr


def test_a_broken_config_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / ".fastagentic" / "config.json"
    path.parent.mkdir()
    path.write_text("{not json")
    done = fastagentic(tmp_path, "config", "set", "url", "http://x:1")
    assert done.returncode == 2
    assert "is not valid JSON" in done.stderr
    assert path.read_text() == "{not json"
    path.write_text('{"colour": "red"}')
    assert "unknown key(s) colour" in fastagentic(tmp_path, "config", "list").stderr


def test_flags_win_over_env_and_file(tmp_path: Path) -> None:
    fastagentic(tmp_path, "config", "set", "url", "http://127.0.0.1:9")
    # The flag's URL is as unreachable as the file's, but it is the one the error names.
    done = fastagentic(
        tmp_path,
        "query",
        "hi",
        "-e",
        "x",
        "--url",
        "http://127.0.0.1:7",
        FASTAGENTIC_URL="http://127.0.0.1:8",
    )
    assert done.returncode == 5
    assert "fastagentic: http://127.0.0.1:7: GET /v1/endpoints failed: ConnectError" in done.stderr
