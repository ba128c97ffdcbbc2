"""Gateway settings: defaults, then a TOML file, then FASTAGENTIC_* variables, then explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastagentic_gateway import settings
from fastagentic_gateway.settings import Settings, SettingsError, load

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fastagentic.toml"
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- precedence


def test_without_file_or_environment_every_setting_has_its_default() -> None:
    assert load(environ={}) == Settings()


def test_defaults_are_the_documented_local_values() -> None:
    defaults = Settings()
    assert (defaults.http_host, defaults.http_port) == ("127.0.0.1", 8000)
    assert (defaults.grpc_host, defaults.grpc_port) == ("127.0.0.1", 50051)
    assert defaults.store_url == ""
    assert defaults.heartbeat_interval < defaults.lease_ttl
    assert defaults.debug is False
    assert defaults.log_level == "info"


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'http_port = 9000\nlog_level = "debug"\n')
    loaded = load(path, environ={})
    assert loaded.http_port == 9000
    assert loaded.log_level == "debug"
    assert loaded.grpc_port == Settings().grpc_port


def test_config_file_is_found_through_fastagentic_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http_port = 9001\n")
    assert load(environ={"FASTAGENTIC_CONFIG": path}).http_port == 9001


def test_explicit_config_file_wins_over_fastagentic_config(tmp_path: Path) -> None:
    chosen = write_config(tmp_path, "http_port = 9002\n")
    other = tmp_path / "other.toml"
    other.write_text("http_port = 9003\n")
    assert load(chosen, environ={"FASTAGENTIC_CONFIG": str(other)}).http_port == 9002


def test_environment_overrides_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'http_port = 9000\ndata_dir = "/from/file"\n')
    loaded = load(path, environ={"FASTAGENTIC_HTTP_PORT": "9100"})
    assert loaded.http_port == 9100
    assert loaded.data_dir == "/from/file"


def test_process_environment_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTAGENTIC_GRPC_PORT", "50999")
    assert load().grpc_port == 50999


def test_explicit_overrides_win_over_file_and_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http_port = 9000\n")
    loaded = load(path, environ={"FASTAGENTIC_HTTP_PORT": "9100"}, http_port=9200)
    assert loaded.http_port == 9200


def test_overrides_set_to_none_are_ignored() -> None:
    loaded = load(environ={"FASTAGENTIC_HTTP_PORT": "9100"}, http_port=None)
    assert loaded.http_port == 9100


def test_unrelated_environment_variables_are_ignored() -> None:
    assert load(environ={"PATH": "/bin", "HTTP_PORT": "1"}) == Settings()


# ---------------------------------------------------------------- environment strings


def test_environment_string_becomes_int() -> None:
    loaded = load(environ={"FASTAGENTIC_MAX_ATTEMPTS": "7"})
    assert loaded.max_attempts == 7
    assert isinstance(loaded.max_attempts, int)


def test_environment_string_becomes_float() -> None:
    loaded = load(environ={"FASTAGENTIC_LEASE_TTL": "12.5"})
    assert loaded.lease_ttl == 12.5


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("false", False), ("1", True), ("0", False)])
def test_environment_string_becomes_bool(raw: str, expected: bool) -> None:
    assert load(environ={"FASTAGENTIC_DEBUG": raw}).debug is expected


def test_environment_string_stays_str_for_str_settings() -> None:
    assert load(environ={"FASTAGENTIC_WORKER_TOKEN": "12345"}).worker_token == "12345"


# ---------------------------------------------------------------- refusals


def test_unknown_key_in_config_file_is_refused_by_name(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http_port = 9000\nhttp_prot = 9001\n")
    with pytest.raises(SettingsError, match="http_prot"):
        load(path, environ={})


def test_non_numeric_port_in_environment_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="http_port"):
        load(environ={"FASTAGENTIC_HTTP_PORT": "abc"})


def test_port_above_65535_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="http_port"):
        load(environ={"FASTAGENTIC_HTTP_PORT": "70000"})


def test_wrong_type_in_config_file_is_refused_by_name(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'max_attempts = "many"\n')
    with pytest.raises(SettingsError, match="max_attempts"):
        load(path, environ={})


def test_unparseable_bool_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="debug"):
        load(environ={"FASTAGENTIC_DEBUG": "perhaps"})


@pytest.mark.parametrize("heartbeat", ["30", "45"])
def test_heartbeat_interval_not_shorter_than_lease_ttl_is_refused(heartbeat: str) -> None:
    with pytest.raises(SettingsError, match="heartbeat_interval"):
        load(environ={"FASTAGENTIC_HEARTBEAT_INTERVAL": heartbeat, "FASTAGENTIC_LEASE_TTL": "30"})


def test_unknown_log_level_is_refused() -> None:
    with pytest.raises(SettingsError, match="log_level"):
        load(environ={"FASTAGENTIC_LOG_LEVEL": "chatty"})


def test_missing_config_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError, match="does not exist") as caught:
        load(str(missing), environ={})
    assert str(missing) in str(caught.value)


def test_invalid_toml_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http_port = = 9000\n")
    with pytest.raises(SettingsError, match="not valid TOML") as caught:
        load(path, environ={})
    assert path in str(caught.value)


# ---------------------------------------------------------------- the generated reference


def test_reference_lists_every_setting_with_its_environment_variable() -> None:
    markdown = settings.reference_markdown()
    for name in Settings.__struct_fields__:
        assert f"| `{name}` | `FASTAGENTIC_{name.upper()}` |" in markdown


def test_configuration_reference_in_docs_is_generated_from_settings() -> None:
    documented = REPO / "docs" / "reference" / "configuration.md"
    assert documented.is_file(), (
        "run `python -m fastagentic_gateway.settings > docs/reference/configuration.md`"
    )
    assert documented.read_text() == settings.reference_markdown()
