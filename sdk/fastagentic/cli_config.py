"""The agent CLI's settings: ``~/.fastagentic/config.json``, overridden by ``FASTAGENTIC_*`` variables, overridden
by flags. Also where chat histories are kept (``~/.fastagentic/history/``) and the exit codes scripts test."""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Exit(enum.IntEnum):
    """``fastagentic agent`` exit codes (docs/guides/cli.md)."""

    OK = 0
    RUN_FAILED = 1  # the run failed, timed out or was cancelled
    USAGE = 2  # bad flags, bad input, a file that cannot be read, a bad configuration value
    AUTH = 3  # 401 / 403: no credential, a wrong one, or a missing scope
    NOT_FOUND = 4  # no such endpoint (or run)
    UNAVAILABLE = 5  # the gateway cannot be reached, answers 503, or refuses with 429
    REJECTED = 6  # the gateway refused the input (400, 409, 422)
    WAITING = 7  # the run waits for input (an interrupt) and the command cannot answer it


class CLIError(Exception):
    """An error the CLI reports in one line and exits with ``code``."""

    def __init__(self, message: str, code: Exit = Exit.USAGE) -> None:
        super().__init__(message)
        self.code = code


FORMATS = ("markdown", "plain", "json")


def _format(value: str) -> str:
    if value not in FORMATS:
        raise ValueError(f"expected one of {', '.join(FORMATS)}")
    return value


def _url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


def _timeout(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not number > 0:
        raise ValueError("expected a number of seconds above 0")
    return value


def _boolean(value: str) -> str:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return "true"
    if lowered in ("false", "0", "no", "off"):
        return "false"
    raise ValueError("expected true or false")


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("expected a non-empty value")
    return value


@dataclass(frozen=True)
class Key:
    name: str
    default: str | None
    check: Callable[[str], str]
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return f"FASTAGENTIC_{self.name.upper()}"


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("url", "http://127.0.0.1:8000", _url, "the gateway's base URL"),
        Key("api_key", None, _text, "an API key, sent as X-API-Key", secret=True),
        Key("token", None, _text, "a bearer token, sent as Authorization: Bearer", secret=True),
        Key("endpoint", None, _text, "the agent endpoint to talk to (default: the only agent served)"),
        Key("format", "markdown", _format, "output format: markdown, plain or json"),
        Key("timeout", "300", _timeout, "seconds a run may take (its Run-Timeout)"),
        Key("history", "true", _boolean, "save each chat in ~/.fastagentic/history"),
    )
}


def home() -> Path:
    return Path.home() / ".fastagentic"


def config_path() -> Path:
    return home() / "config.json"


def history_dir() -> Path:
    return home() / "history"


def read_file() -> dict[str, str]:
    path = config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{path} is not valid JSON ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise CLIError(f"{path} must hold a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise CLIError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    return {name: str(value) for name, value in data.items() if value is not None}


def check(name: str, value: str, where: str) -> str:
    key = KEYS.get(name)
    if key is None:
        raise CLIError(f"unknown configuration key {name!r} (known: {', '.join(KEYS)})")
    try:
        return key.check(value)
    except ValueError as exc:
        raise CLIError(f"{where}: {name} = {value!r}: {exc}") from exc


def write_key(name: str, value: str | None) -> None:
    """Set (or with None, remove) one key in the config file, keeping the others."""
    data = read_file()
    if value is None:
        data.pop(name, None)
    else:
        data[name] = check(name, value, "config set")
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    if any(KEYS[k].secret for k in data):
        temporary.chmod(0o600)
    temporary.replace(path)


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # flag, env, file or default


def resolve(flags: Mapping[str, Any] | None = None) -> dict[str, Setting]:
    """Every key's value and where it came from: a flag, then ``FASTAGENTIC_*``, then the file, then the default."""
    flags = flags or {}
    stored = read_file()
    settings: dict[str, Setting] = {}
    for name, key in KEYS.items():
        flag = flags.get(name)
        if flag is not None:
            settings[name] = Setting(check(name, str(flag), f"--{name.replace('_', '-')}"), "flag")
        elif os.environ.get(key.env):
            settings[name] = Setting(check(name, os.environ[key.env], key.env), "env")
        elif name in stored:
            settings[name] = Setting(check(name, stored[name], str(config_path())), "file")
        else:
            settings[name] = Setting(key.default, "default")
    return settings


def shown(name: str, value: str | None) -> str:
    if value is None:
        return ""
    if KEYS[name].secret:
        return value[:6] + "…" if len(value) > 8 else "…"
    return value
