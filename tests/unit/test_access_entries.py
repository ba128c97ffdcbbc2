"""Bad input on the access settings and the credential commands gets a precise error, and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastagentic_gateway.cli import main
from fastagentic_gateway.settings import SettingsError, load


def run(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--data-dir", str(data)])
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FASTAGENTIC_AUTH": "yes"}, 'auth must be "required" or "none"'),
        ({"FASTAGENTIC_OIDC_ISSUERS": "not json"}, "FASTAGENTIC_OIDC_ISSUERS must be JSON"),
        ({"FASTAGENTIC_OIDC_ISSUERS": '[{"issuer": "https://idp.example.com"}]'}, "audiences"),
        (
            {
                "FASTAGENTIC_OIDC_ISSUERS": '[{"issuer": "https://i", "audiences": ["a"], "algorithms": ["HS256"]}]'
            },
            "HS256",
        ),
        (
            {"FASTAGENTIC_OIDC_ISSUERS": json.dumps([{"issuer": "https://i", "audiences": ["a"]}] * 2)},
            "each issuer may be configured once",
        ),
        ({"FASTAGENTIC_AUTH_ROLES": '{"analyst": "reports:read"}'}, "invalid setting"),
        ({"FASTAGENTIC_TLS_CERT_FILE": "/nonexistent.pem"}, "tls_cert_file and tls_key_file go together"),
        (
            {"FASTAGENTIC_TLS_CERT_FILE": "/nonexistent.pem", "FASTAGENTIC_TLS_KEY_FILE": "/nonexistent.key"},
            "is not a readable file",
        ),
        ({"FASTAGENTIC_WORKER_CA_FILE": "/ca.pem"}, "needs tls_cert_file"),
        ({"FASTAGENTIC_PUBLIC_URL": "agents.example.com"}, "public_url must be an http"),
        ({"FASTAGENTIC_AUTH": "required", "FASTAGENTIC_WORKER_TOKEN": "short"}, "at least 16 characters"),
        ({"FASTAGENTIC_JWT_LEEWAY": "3600"}, "invalid setting"),
    ],
)
def test_bad_access_settings_are_refused_by_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(environ=environ)
    assert message in str(info.value)


def test_issuers_and_roles_load_from_the_environment() -> None:
    issuers = [
        {"issuer": "https://idp.example.com/realms/a", "audiences": ["fastagentic"], "tenant_claim": "t"}
    ]
    settings = load(
        environ={
            "FASTAGENTIC_OIDC_ISSUERS": json.dumps(issuers),
            "FASTAGENTIC_AUTH_ROLES": '{"analyst": ["reports:read"]}',
        }
    )
    assert settings.oidc_issuers[0].issuer == issuers[0]["issuer"]
    assert settings.auth_roles == {"analyst": ["reports:read"]}


def test_serve_refuses_to_start_until_auth_is_chosen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, tmp_path, "serve")
    assert code == 2
    assert 'Set auth = "required"' in err and 'auth = "none"' in err


# ------------------------------------------------------------------------------ the commands


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--name", "bad name"], "name 'bad name' is not valid"),
        (["keys", "create", "--name", "ok", "--tenant", "a/b"], "tenant 'a/b' is not valid"),
        (["keys", "create", "--name", "ok", "--scope", 'x"y'], "scope"),
        (["keys", "create", "--name", "ok", "--expires-in", "soon"], "expected a duration"),
        (["keys", "create", "--name", "ok", "--expires-in", "0"], "expected a duration"),
        (["keys", "revoke", "key_0123456789abcdef"], "no api key 'key_0123456789abcdef'"),
        (["workers", "create-token", "--name", "w"], "give --endpoint at least once"),
        (["workers", "create-token", "--name", "w", "--endpoint", "no spaces"], "endpoint 'no spaces'"),
        (["workers", "revoke-token", "key_0123456789abcdef"], "no worker token"),
    ],
)
def test_bad_commands_say_what_is_wrong(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, out, err = run(capsys, tmp_path, *args)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in err
    assert run(capsys, tmp_path, "keys", "list", "--json")[1].strip() == "[]"  # nothing was created


def test_a_key_is_shown_once_and_stored_only_as_its_hash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, token, err = run(capsys, tmp_path, "keys", "create", "--name", "ci", "--scope", "reports:read")
    assert code == 0 and token.startswith("fa_key_") and "only time" in err
    listed = json.loads(run(capsys, tmp_path, "keys", "list", "--json")[1])
    assert [k["name"] for k in listed] == ["ci"] and listed[0]["scopes"] == ["reports:read"]
    assert token.strip() not in json.dumps(listed)
    secret = token.strip()[len("fa_key_0123456789abcdef_") :].encode()
    assert all(secret not in path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    code, out, _ = run(capsys, tmp_path, "keys", "revoke", listed[0]["id"])
    assert code == 0 and "revoked" in out
    assert "revoked" in run(capsys, tmp_path, "keys", "list")[1]


def test_a_memory_store_keeps_no_credentials(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["keys", "create", "--name", "x", "--store-url", "memory://"])
    assert code == 2
    assert "memory://" in capsys.readouterr().err
