"""`fastagentic agent chat` against a real gateway and worker: driven in a pipe (lines on stdin), and in a real
terminal (tmux send-keys / capture-pane) where rich renders markdown as it streams."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Cluster, wait_until
from tests.e2e.cli_support import cli_cluster, cli_env, fastagentic

pytestmark = pytest.mark.e2e
__all__ = ["cli_cluster"]


def chat(cluster: Cluster, home: Path, *lines: str, args: tuple[str, ...] = ()) -> str:
    assert cluster.gateway is not None
    done = fastagentic(
        "agent", "chat", "--url", cluster.gateway.url, *args, home=home, stdin="\n".join(lines) + "\n"
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def test_pipe_streams_tools_interrupts_and_history(cli_cluster: Cluster, tmp_path: Path) -> None:
    saved = tmp_path / "chat.json"
    out = chat(
        cli_cluster,
        tmp_path,
        "hi there",
        "what is the weather",
        "/endpoint refund",
        "shoes",
        '{"amount": "lots"}',  # refused by the interrupt's schema: asked again
        '{"amount": 12, "note": "late"}',
        f"/save {saved}",
        "/quit",
        "never sent",
        args=("-e", "assistant"),
    )
    assert "ready, 1 worker(s)" in out  # the gateway's /readyz
    assert "You said: *hi there*" in out
    assert '⚙ lookup({"city": "Paris"})' in out
    assert '↳ lookup → {"city": "Paris", "sky": "sunny", "celsius": 21}' in out
    assert "? How much should I refund for shoes?" in out
    assert "answer with JSON {amount: integer, note?: string}" in out
    assert "$.amount: 'lots' is not of type 'integer'" in out
    assert "Refunded 12 EUR." in out
    assert "never sent" not in out
    session = json.loads(saved.read_text())
    assert session["version"] == 1
    assert [m["role"] for m in session["messages"]] == ["user", "agent"] * 3
    refund = session["messages"][5]
    assert refund["endpoint"] == "refund"
    assert refund["status"] == "succeeded"
    assert refund["output"] == {"amount": 12, "note": "late"}
    assert refund["interrupts"][0]["answer"] == {"amount": 12, "note": "late"}
    assert session["messages"][3]["tools"][0]["result"]["sky"] == "sunny"
    # Saved on every turn under ~/.fastagentic/history as well.
    [auto] = (tmp_path / ".fastagentic" / "history").glob("*.json")
    assert json.loads(auto.read_text())["messages"] == session["messages"]


def test_pipe_load_clear_history_format_and_errors(cli_cluster: Cluster, tmp_path: Path) -> None:
    first = chat(cli_cluster, tmp_path, "remember me", "/save", "/quit", args=("-e", "assistant"))
    assert "saved 2 message(s)" in first
    [saved] = (tmp_path / ".fastagentic" / "history").glob("*.json")
    notes = tmp_path / "notes.txt"
    notes.write_text("file content here")
    out = chat(
        cli_cluster,
        tmp_path,
        "/history",
        f"/load {saved.stem}",
        "/history",
        "/clear",
        "/history",
        "/format json",
        "again",
        "/format plain",
        f"look at @{notes}",
        "look at @/no/such/file",
        "/format yaml",
        "/endpoint",
        "/endpoint nope",
        "/bogus",
        "/help",
        args=("--no-history",),
    )
    assert "choose an agent with --endpoint" in out  # no -e and four agents: the user picks
    assert "(no messages yet)" in out
    assert f"loaded 1 turn(s) from {saved.stem}" in out
    assert "talking to assistant" in out  # the loaded chat's endpoint
    assert "you (assistant): remember me" in out
    assert "cleared" in out
    assert '"kind": "run.started"' in out  # /format json: each event as a JSON line
    assert "file content here" in out
    assert "error: @/no/such/file: no such file" in out
    assert "error: /format markdown | plain | json (now plain)" in out
    assert "  adder  Adds two numbers (JSON input only)." in out
    assert "error: no agent endpoint 'nope' is served" in out
    assert "error: unknown command /bogus" in out
    assert "/save [FILE]" in out
    assert len(list((tmp_path / ".fastagentic" / "history").glob("*.json"))) == 1  # --no-history


def test_history_commands(cli_cluster: Cluster, tmp_path: Path) -> None:
    chat(cli_cluster, tmp_path, "first chat", args=("-e", "assistant"))
    listed = fastagentic("agent", "history", "list", home=tmp_path)
    assert listed.returncode == 0
    [line] = listed.stdout.splitlines()
    session_id = line.split()[0]
    assert "assistant  1 turn(s)  first chat" in line
    shown = fastagentic("agent", "history", "show", session_id, home=tmp_path)
    assert shown.stdout.splitlines()[0] == "you (assistant): first chat"
    raw = fastagentic("agent", "history", "show", session_id, "--json", home=tmp_path)
    assert json.loads(raw.stdout)["id"] == session_id
    missing = fastagentic("agent", "history", "delete", "nope", session_id, home=tmp_path)
    assert missing.returncode == 4  # nothing deleted when one id is wrong
    assert "no saved chat 'nope'" in missing.stderr
    assert fastagentic("agent", "history", "delete", session_id, home=tmp_path).returncode == 0
    empty = fastagentic("agent", "history", "list", home=tmp_path)
    assert "no saved chats" in empty.stdout
    hostile = fastagentic("agent", "history", "delete", "../config", home=tmp_path)
    assert hostile.returncode == 2


# ------------------------------------------------------------------------------------------ a real terminal


class Terminal:
    """A tmux session running one command in a 120x50 terminal."""

    def __init__(self, name: str, command: str) -> None:
        self.name = name
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "50", command], check=True
        )

    def send(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)
        subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-S", "-200", "-t", self.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        return wait_until(lambda: text in self.screen() and self.screen(), timeout=timeout, what=repr(text))

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False, capture_output=True)


@pytest.fixture
def terminal(cli_cluster: Cluster, tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: the real-terminal test needs it (apt-get install tmux)")
    assert cli_cluster.gateway is not None
    env = cli_env(tmp_path, TERM="xterm-256color")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("HOME", "PYTHONPATH", "TERM"))
    command = (
        f"cd {shlex.quote(str(ROOT))} && env {exports} {shlex.quote(sys.executable)} -m fastagentic agent chat "
        f"--url {cli_cluster.gateway.url} -e assistant; echo EXITED $?; sleep 600"
    )
    term = Terminal(f"fa-cli-{int(time.time() * 1000)}", command)
    try:
        yield term
    finally:
        term.close()


def test_terminal_streams_markdown_tools_interrupts_and_history(terminal: Terminal, tmp_path: Path) -> None:
    terminal.wait_for("assistant>")
    # Streaming: the answer shows word by word, before the run ends.
    terminal.send("count for me")
    early = terminal.wait_for("word-03")
    assert "word-10" not in early
    terminal.wait_for("word-10")
    # Markdown rendered by rich (the heading's "#" and the "**" are gone), the tool call and its result.
    terminal.send("what is the weather")
    screen = terminal.wait_for("It is sunny in Paris")
    assert '⚙ lookup({"city": "Paris"})' in screen
    assert '↳ lookup → {"city": "Paris", "sky": "sunny", "celsius": 21}' in screen
    assert "**sunny**" not in screen and "# Weather" not in screen
    # An interrupt answered inline.
    terminal.send("/endpoint refund")
    terminal.wait_for("refund>")
    terminal.send("shoes")
    terminal.wait_for("answer>")
    assert "? How much should I refund for shoes?" in terminal.screen()
    terminal.send('{"amount": 7}')
    terminal.wait_for("Refunded 7 EUR.")
    # Save, clear, load, show.
    saved = tmp_path / "terminal-chat.json"
    terminal.send(f"/save {saved}")
    terminal.wait_for("saved 6 message(s)")
    terminal.send("/clear")
    terminal.wait_for("cleared")
    terminal.send(f"/load {saved}")
    terminal.wait_for("loaded 3 turn(s)")
    terminal.send("/history")
    screen = terminal.wait_for("you (refund): shoes")
    assert '? How much should I refund for shoes? → {"amount": 7}' in screen
    terminal.send("/quit")
    terminal.wait_for("EXITED 0")
    assert json.loads(saved.read_text())["messages"][5]["output"] == {"amount": 7, "note": ""}
