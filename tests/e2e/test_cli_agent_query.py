"""`fastagentic agent query` in a pipe against a real gateway and worker: answers, formats, files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.e2e.cli_support import cli_cluster, fastagentic

pytestmark = pytest.mark.e2e
__all__ = ["cli_cluster"]


def test_a_question_as_argument_prints_the_answer(cli_cluster: Cluster, tmp_path: Path) -> None:
    assert cli_cluster.gateway is not None
    done = fastagentic(
        "agent", "query", "hello there", "--url", cli_cluster.gateway.url, "-e", "assistant", home=tmp_path
    )
    assert done.returncode == 0, done.stderr
    # In a pipe, markdown is not rendered: the answer as the agent wrote it.
    assert done.stdout == "You said: *hello there*\n\n- one\n- two\n\n"


def test_stdin_json_format_and_settings_from_env(cli_cluster: Cluster, tmp_path: Path) -> None:
    assert cli_cluster.gateway is not None
    done = fastagentic(
        "agent",
        "query",
        "--format",
        "json",
        home=tmp_path,
        stdin="what is the weather?\n",
        FASTAGENTIC_URL=cli_cluster.gateway.url,
        FASTAGENTIC_ENDPOINT="assistant",
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "succeeded"
    assert answer["endpoint"] == "assistant"
    assert answer["run_id"].startswith("run_")
    assert answer["text"] == "# Weather\n\nIt is **sunny** in Paris, 21 °C."
    [tool] = answer["tools"]
    assert tool["name"] == "lookup"
    assert tool["arguments"] == {"city": "Paris"}
    assert tool["result"] == {"city": "Paris", "sky": "sunny", "celsius": 21}


def test_output_file_and_file_input(cli_cluster: Cluster, tmp_path: Path) -> None:
    assert cli_cluster.gateway is not None
    notes = tmp_path / "notes.txt"
    notes.write_text("from a file")
    target = tmp_path / "answer.md"
    url = cli_cluster.gateway.url
    done = fastagentic(
        "agent", "query", "read @" + str(notes), "--url", url, "-e", "assistant", "-f", "plain",
        "--output", str(target), home=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "from a file" in target.read_text()
    missing = fastagentic(
        "agent", "query", "read @/no/such/file", "--url", url, "-e", "assistant", home=tmp_path
    )
    assert missing.returncode == 2
    assert "@/no/such/file: no such file" in missing.stderr
    appended = fastagentic(
        "agent", "query", "summarize", "--file", str(notes), "--url", url, "-e", "assistant", home=tmp_path
    )
    assert appended.returncode == 0, appended.stderr
    assert "summarize" in appended.stdout and "from a file" in appended.stdout


def test_json_input_for_an_agent_without_a_text_field(cli_cluster: Cluster, tmp_path: Path) -> None:
    assert cli_cluster.gateway is not None
    url = cli_cluster.gateway.url
    done = fastagentic("agent", "query", '{"a": 2, "b": 40}', "--url", url, "-e", "adder", home=tmp_path)
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    bad = fastagentic("agent", "query", "two and forty", "--url", url, "-e", "adder", home=tmp_path)
    assert bad.returncode == 2
    assert "not valid JSON" in bad.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-e", "broken", "hi"], 1, "failed: RuntimeError: cannot answer 'hi'"),
        (["hi"], 2, "choose an agent with --endpoint (served: adder, assistant, broken, refund)"),
        (["-e", "nope", "hi"], 4, "no agent endpoint 'nope' is served"),
        (["-e", "adder", '{"a": 1}'], 6, "$.b: 'b' is a required property"),
        (["-e", "refund", "shoes"], 7, "waits for input (interrupt interrupt-1: How much should I refund"),
        (["-e", "assistant", "--format", "yaml", "hi"], 2, "invalid choice: 'yaml'"),
    ],
)
def test_exit_codes(cli_cluster: Cluster, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    assert cli_cluster.gateway is not None
    done = fastagentic("agent", "query", "--url", cli_cluster.gateway.url, *args, home=tmp_path)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr


def test_an_empty_question_on_stdin_is_a_usage_error(cli_cluster: Cluster, tmp_path: Path) -> None:
    assert cli_cluster.gateway is not None
    done = fastagentic("agent", "query", "--url", cli_cluster.gateway.url, home=tmp_path, stdin="  \n")
    assert done.returncode == 2
    assert "the question is empty" in done.stderr


def test_unreachable_gateway_exits_5(tmp_path: Path) -> None:
    done = fastagentic("agent", "query", "hi", "--url", "http://127.0.0.1:9", "-e", "x", home=tmp_path)
    assert done.returncode == 5
    assert "ConnectError" in done.stderr


def test_authentication_failure_exits_3(cluster: Cluster, tmp_path: Path) -> None:
    gateway = cluster.start_gateway(auth="required")
    done = fastagentic("agent", "query", "hi", "--url", gateway.url, "-e", "assistant", home=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "401" in done.stderr
    wrong = fastagentic(
        "agent", "query", "hi", "--url", gateway.url, "--api-key", "fa_key_wrong", "-e", "x", home=tmp_path
    )
    assert wrong.returncode == 3, wrong.stderr
