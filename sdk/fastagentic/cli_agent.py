"""``fastagentic agent``: talk to agents from a terminal or a script (``query``, ``chat``) and keep the
settings (``config``) and chats (``history``) between calls. Built on ``fastagentic.client``; rich renders
markdown on a terminal when it is installed (``pip install "fastagentic[cli]"``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
import msgspec

from . import cli_config as config
from .cli_config import CLIError, Exit
from .client import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Endpoint,
    FastAgenticClient,
    FastAgenticError,
    Interrupt,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Retries,
    RunFailedError,
    StreamEvent,
    UnavailableError,
    ValidationError,
)

HISTORY_VERSION = 1
#: Property names an agent's text input is most likely in, best first.
TEXT_FIELDS = ("prompt", "question", "message", "text", "query", "input", "content")


# ---------------------------------------------------------------------------------------------- plumbing


def exit_code_of(exc: FastAgenticError) -> Exit:
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return Exit.AUTH
    if isinstance(exc, NotFoundError):
        return Exit.NOT_FOUND
    if isinstance(exc, APIConnectionError | UnavailableError | RateLimitError):
        return Exit.UNAVAILABLE
    if isinstance(exc, ValidationError | BadRequestError | ConflictError):
        return Exit.REJECTED
    if isinstance(exc, RunFailedError):
        return Exit.RUN_FAILED
    return Exit.UNAVAILABLE if (exc.status or 0) >= 500 else Exit.REJECTED


def describe(exc: FastAgenticError) -> str:
    text = str(exc)
    if isinstance(exc, ValidationError):
        text += "".join(f"\n  {e.path}: {e.message}" for e in exc.errors)
    if isinstance(exc, PermissionDeniedError) and exc.required_scopes:
        text += f" (needs scopes: {', '.join(exc.required_scopes)})"
    return text


def settings_of(args: argparse.Namespace) -> dict[str, config.Setting]:
    flags = {name: getattr(args, name, None) for name in config.KEYS}
    return config.resolve(flags)


def make_client(settings: dict[str, config.Setting]) -> FastAgenticClient:
    return FastAgenticClient(
        settings["url"].value or config.KEYS["url"].default or "",
        api_key=settings["api_key"].value,
        token=settings["token"].value,
        retries=Retries(max_retries=2, backoff=0.3, max_delay=5.0),
    )


def pick_endpoint(client: FastAgenticClient, name: str | None) -> Endpoint:
    """The agent ``name`` (None: the only agent served), or a CLIError naming what is served."""
    agents = client.endpoints("agent")
    names = ", ".join(sorted(a.name for a in agents)) or "none"
    if name is None:
        if len(agents) == 1:
            return agents[0]
        raise CLIError(
            f"choose an agent with --endpoint (served: {names})", Exit.USAGE if agents else Exit.NOT_FOUND
        )
    for agent in agents:
        if agent.name == name:
            return agent
    raise CLIError(f"no agent endpoint {name!r} is served (served: {names})", Exit.NOT_FOUND)


def text_field(schema: dict[str, Any]) -> str | None:
    """The property a line of text goes in: "" when the whole input is a string, None when there is none."""
    if schema.get("type") == "string":
        return ""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return None
    strings = [n for n, p in properties.items() if isinstance(p, dict) and p.get("type") == "string"]
    required = [n for n in schema.get("required") or [] if n in strings]
    others = [n for n in schema.get("required") or [] if n not in strings]
    if others or not strings:
        return None  # a required field that is not text: the input must be JSON
    candidates = required or strings
    for preferred in TEXT_FIELDS:
        if preferred in candidates:
            return preferred
    return candidates[0] if len(candidates) == 1 else None


def to_input(endpoint: Endpoint, text: str, as_json: bool) -> Any:
    """The endpoint's input for ``text``: the text in the endpoint's text field, or (``as_json``, or an
    endpoint without one) the text parsed as JSON."""
    field = None if as_json else text_field(endpoint.input_schema)
    if field is None:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            hint = "" if as_json else f" ({endpoint.name!r} takes no text field: its input is JSON)"
            raise CLIError(f"the input is not valid JSON{hint}: {exc}", Exit.USAGE) from exc
    return text if field == "" else {field: text}


def expand_files(text: str) -> str:
    """``@path`` words become the file's content; a missing file is an error (nothing is sent)."""

    def read(match: re.Match[str]) -> str:
        path = Path(match.group(1)).expanduser()
        try:
            content = path.read_text()
        except FileNotFoundError:
            raise CLIError(f"@{match.group(1)}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CLIError(f"@{match.group(1)}: cannot read it: {exc}") from exc
        return f"\n--- {path.name} ---\n{content}\n--- end of {path.name} ---\n"

    return re.sub(r"(?:(?<=\s)|^)@(\S+)", read, text)


def read_file_arg(path: str | None) -> str:
    if path is None:
        return ""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"--file {path}: {exc}") from exc


def answer_text(text: str, output: Any) -> str:
    """What a run said: its streamed text, else its output (a string as is, anything else as JSON)."""
    if text:
        return text
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    return json.dumps(output, indent=2, ensure_ascii=False)


def jsonable(value: Any) -> Any:
    return msgspec.to_builtins(value)


def short_json(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def question_of(request: Any) -> str:
    if isinstance(request, str):
        return request
    if isinstance(request, dict):
        for key in ("question", "message", "prompt", "text"):
            if isinstance(request.get(key), str):
                return str(request[key])
    return json.dumps(request, ensure_ascii=False)


def schema_hint(schema: dict[str, Any] | None) -> str:
    if not schema:
        return "any JSON value"
    properties = schema.get("properties")
    if schema.get("type") == "object" and isinstance(properties, dict):
        required = set(schema.get("required") or [])
        fields = [
            f"{name}{'' if name in required else '?'}: {prop.get('type', 'any') if isinstance(prop, dict) else 'any'}"
            for name, prop in properties.items()
        ]
        return "JSON {" + ", ".join(fields) + "}"
    return f"a JSON {schema.get('type', 'value')}"


def parse_answer(text: str, schema: dict[str, Any] | None) -> Any:
    """An interrupt answer: JSON when it parses, else the text (or ``{field: text}`` for a one-text-field schema)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    field = text_field(schema or {}) if schema else ""
    if field:
        return {field: text}
    return text


def health(settings: dict[str, config.Setting]) -> str:
    """One line about the gateway's ``/readyz`` (the client has no call for it)."""
    url = settings["url"].value or ""
    try:
        response = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.HTTPError as exc:
        return f"{url}: unreachable ({type(exc).__name__})"
    try:
        body = response.json()
    except ValueError:
        body = {}
    workers = body.get("workers") if isinstance(body, dict) else None
    state = body.get("status", response.status_code) if isinstance(body, dict) else response.status_code
    return f"{url}: {state}" + (f", {workers} worker(s)" if workers is not None else "")


# ---------------------------------------------------------------------------------------------- rendering


def rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class Renderer:
    """Shows a run as it happens: plain text (a pipe), or markdown through rich (a terminal)."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.open_line = False  # tokens were written without a line end

    def start(self) -> None:
        pass

    def token(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.open_line = not text.endswith("\n")

    def pause(self) -> None:
        """Stop live output (before a question or a tool line)."""
        if self.open_line:
            self.out.write("\n")
            self.open_line = False

    def line(self, text: str, style: str = "") -> None:
        self.pause()
        self.out.write(text + "\n")
        self.out.flush()

    def event(self, event: StreamEvent) -> None:
        if self.fmt == "json":
            self.out.write(json.dumps(jsonable(event), ensure_ascii=False) + "\n")
            self.out.flush()

    def tool_call(self, name: str, arguments: Any) -> None:
        self.line(f"\n⚙ {name}({short_json(arguments)})", "bold cyan")

    def tool_result(self, name: str, result: Any, error: Any) -> None:
        if error is not None:
            self.line(f"✗ {name} failed: {error.type}: {error.message}", "bold red")
        else:
            self.line(f"↳ {name} → {short_json(result)}", "cyan")

    def finish(self, text: str, streamed: bool) -> None:
        """The run ended: ``text`` is its answer; ``streamed`` says it was shown already."""
        streamed_line = self.open_line
        self.pause()
        if not streamed and text:
            self.out.write(text + "\n")
        elif not streamed_line:
            self.out.write("\n")
        self.out.flush()

    def markdown(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


class RichRenderer(Renderer):
    def __init__(self, out: IO[str], fmt: str) -> None:
        super().__init__(out, fmt)
        from rich.console import Console

        self.console = Console(file=out, highlight=False)
        self.live: Any = None
        self.segment = ""

    def _markdown(self, text: str) -> Any:
        if self.fmt == "plain":
            from rich.text import Text

            return Text(text)
        from rich.markdown import Markdown

        return Markdown(text)

    def token(self, text: str) -> None:
        from rich.live import Live

        self.segment += text
        if self.live is None:
            self.live = Live(
                self._markdown(self.segment),
                console=self.console,
                refresh_per_second=12,
                vertical_overflow="visible",
            )
            self.live.start()
        else:
            self.live.update(self._markdown(self.segment))

    def pause(self) -> None:
        if self.live is not None:
            self.live.update(self._markdown(self.segment))
            self.live.stop()
            self.live = None
        self.segment = ""

    def line(self, text: str, style: str = "") -> None:
        from rich.text import Text

        self.pause()
        self.console.print(Text(text, style=style))

    def event(self, event: StreamEvent) -> None:
        if self.fmt == "json":
            self.pause()
            self.console.print_json(data=jsonable(event))

    def finish(self, text: str, streamed: bool) -> None:
        self.pause()
        if not streamed and text:
            self.console.print(self._markdown(text))

    def markdown(self, text: str) -> None:
        self.console.print(self._markdown(text))


def renderer_for(out: IO[str], fmt: str) -> Renderer:
    if fmt != "json" and out.isatty() and rich_available():
        return RichRenderer(out, fmt)
    return Renderer(out, fmt)


# ---------------------------------------------------------------------------------------------- one run


class Turn:
    """What one run did, as the history keeps it."""

    def __init__(self, endpoint: str, prompt: str, input: Any) -> None:
        self.endpoint = endpoint
        self.prompt = prompt
        self.input = input
        self.run_id: str | None = None
        self.status = "running"
        self.text = ""
        self.output: Any = None
        self.error: dict[str, str] | None = None
        self.tools: list[dict[str, Any]] = []
        self.interrupts: list[dict[str, Any]] = []

    def messages(self) -> list[dict[str, Any]]:
        user = {"role": "user", "text": self.prompt, "input": self.input, "endpoint": self.endpoint}
        agent = {
            "role": "agent",
            "endpoint": self.endpoint,
            "run_id": self.run_id,
            "status": self.status,
            "text": answer_text(self.text, self.output),
            "output": self.output,
            "error": self.error,
            "tools": self.tools,
            "interrupts": self.interrupts,
        }
        return [user, agent]


#: What an Answerer returns to cancel the run rather than answer.
CANCEL = object()

#: Answers an interrupt of a run (run id, the interrupt): resumes the run with an answer and returns it, or
#: returns ``CANCEL`` to cancel the run.
Answerer = Callable[[str, Interrupt], Any]


def run_turn(
    client: FastAgenticClient,
    turn: Turn,
    renderer: Renderer,
    run_timeout: float | None,
    answer: Answerer | None,
) -> Turn:
    """Stream one run of ``turn.endpoint`` to ``renderer``, answering interrupts with ``answer`` (None:
    stop following and leave the run waiting, status ``waiting_input``)."""
    renderer.start()
    names: dict[str, str] = {}
    stream = client.stream(turn.endpoint, turn.input, run_timeout=run_timeout)
    try:
        with stream:
            for event in stream:
                turn.run_id = event.run_id
                renderer.event(event)
                kind = event.kind
                if kind in ("token", "message"):
                    turn.text += event.text
                    if renderer.fmt != "json":
                        renderer.token(event.text)
                elif kind == "tool_call" and event.tool_call is not None:
                    call = event.tool_call
                    names[call.id] = call.name
                    turn.tools.append({"id": call.id, "name": call.name, "arguments": call.arguments})
                    if renderer.fmt != "json":
                        renderer.tool_call(call.name, call.arguments)
                elif kind == "tool_result" and event.tool_result is not None:
                    result = event.tool_result
                    for tool in turn.tools:
                        if tool["id"] == result.id:
                            tool["result"] = result.result
                            tool["error"] = jsonable(result.error)
                    if renderer.fmt != "json":
                        renderer.tool_result(names.get(result.id, result.name), result.result, result.error)
                elif kind == "interrupt" and event.interrupt is not None:
                    asked = event.interrupt
                    record: dict[str, Any] = {"id": asked.id, "request": asked.request}
                    turn.interrupts.append(record)
                    if answer is None:
                        turn.status = "waiting_input"
                        return turn
                    renderer.pause()
                    reply = answer(event.run_id, asked)
                    if reply is CANCEL:
                        client.cancel(event.run_id)
                        record["answer"] = None
                    else:
                        record["answer"] = reply
                elif event.terminal:
                    turn.status = {
                        "run.completed": "succeeded",
                        "run.cancelled": "cancelled",
                    }.get(kind, "failed")
                    turn.output = event.output
                    if event.error is not None:
                        turn.error = {"type": event.error.type, "message": event.error.message}
                        if event.error.type == "Timeout":
                            turn.status = "timed_out"
    except KeyboardInterrupt:
        if stream.run_id is not None:
            with contextlib.suppress(FastAgenticError):
                client.cancel(stream.run_id)
        turn.run_id = stream.run_id
        turn.status = "cancelled"
        renderer.pause()
        renderer.line("(cancelled)", "yellow")
        return turn
    turn.run_id = turn.run_id or stream.run_id
    if renderer.fmt != "json":
        renderer.finish(answer_text(turn.text, turn.output), streamed=bool(turn.text))
    return turn


# ---------------------------------------------------------------------------------------------- query


def cmd_query(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    fmt = settings["format"].value or "markdown"
    if args.question is not None:
        text = args.question
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        raise CLIError(
            "no question: pass it as an argument or on stdin (echo '...' | fastagentic agent query)"
        )
    text = expand_files(text) if not args.json else text
    extra = read_file_arg(args.file)
    if extra:
        text = f"{text.rstrip()}\n\n{extra}" if text.strip() else extra
    if not text.strip():
        raise CLIError("the question is empty")
    timeout = float(settings["timeout"].value or 300)
    with make_client(settings) as client:
        try:
            endpoint = pick_endpoint(client, settings["endpoint"].value)
            turn = Turn(endpoint.name, text, to_input(endpoint, text, args.json))
            progress = Renderer(sys.stderr, "plain") if args.verbose else None
            run_turn(client, turn, progress or _Silent(), timeout, None)
        except APIConnectionError as exc:
            raise CLIError(f"{client.base_url}: {exc}", Exit.UNAVAILABLE) from exc
    answer = answer_text(turn.text, turn.output)
    if fmt == "json":
        rendered = json.dumps(
            {
                "run_id": turn.run_id,
                "endpoint": turn.endpoint,
                "status": turn.status,
                "text": answer,
                "output": turn.output,
                "error": turn.error,
                "tools": turn.tools,
                "interrupts": turn.interrupts,
            },
            ensure_ascii=False,
            indent=2,
        )
    else:
        rendered = answer
    if args.output:
        try:
            Path(args.output).write_text(rendered + "\n")
        except OSError as exc:
            print(rendered)
            raise CLIError(f"--output {args.output}: {exc} (the answer is on stdout)") from exc
    elif fmt == "markdown" and sys.stdout.isatty() and rich_available():
        RichRenderer(sys.stdout, "markdown").markdown(rendered)
    elif rendered or turn.status == "succeeded":
        sys.stdout.write(rendered + "\n")
        sys.stdout.flush()
    if turn.status == "waiting_input":
        pending = turn.interrupts[-1]
        print(
            f"fastagentic: run {turn.run_id} waits for input (interrupt {pending['id']}: "
            f"{question_of(pending['request'])}); answer it with POST /v1/runs/{turn.run_id}/resume "
            "or in `fastagentic agent chat`",
            file=sys.stderr,
        )
        return Exit.WAITING
    if turn.status != "succeeded":
        error = turn.error or {"type": turn.status, "message": ""}
        print(
            f"fastagentic: run {turn.run_id} {turn.status}: {error['type']}: {error['message']}",
            file=sys.stderr,
        )
        return Exit.RUN_FAILED
    return Exit.OK


class _Silent(Renderer):
    def __init__(self) -> None:
        super().__init__(sys.stderr, "plain")

    def token(self, text: str) -> None:
        pass

    def line(self, text: str, style: str = "") -> None:
        pass

    def finish(self, text: str, streamed: bool) -> None:
        pass


# ---------------------------------------------------------------------------------------------- history


def new_session(endpoint: str | None, url: str) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return {
        "version": HISTORY_VERSION,
        "id": f"{stamp}-{uuid.uuid4().hex[:6]}",
        "url": url,
        "endpoint": endpoint,
        "created_at": time.time(),
        "updated_at": time.time(),
        "messages": [],
    }


def check_session(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise CLIError(f"{where} is not a fastagentic chat history (no messages list)")
    if data.get("version") != HISTORY_VERSION:
        raise CLIError(f"{where}: history version {data.get('version')!r}, expected {HISTORY_VERSION}")
    for i, message in enumerate(data["messages"]):
        if not isinstance(message, dict) or message.get("role") not in ("user", "agent"):
            raise CLIError(f"{where}: messages[{i}] is not a user or agent message")
    return data


def read_session(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file", Exit.NOT_FOUND) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"{path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CLIError(f"{path} is not JSON: {exc}") from exc
    return check_session(data, str(path))


def write_session(session: dict[str, Any], path: Path) -> None:
    session["updated_at"] = time.time()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(session, indent=2, ensure_ascii=False, default=str) + "\n")
    temporary.replace(path)


def history_path(session_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", session_id):
        raise CLIError(f"{session_id!r} is not a history id (see `fastagentic agent history list`)")
    return config.history_dir() / f"{session_id.removesuffix('.json')}.json"


def session_source(name: str) -> Path:
    """A history id or a file path."""
    path = Path(name).expanduser()
    if path.suffix == ".json" or "/" in name or path.exists():
        return path
    return history_path(name)


def transcript(session: dict[str, Any]) -> str:
    lines: list[str] = []
    for message in session["messages"]:
        if message["role"] == "user":
            lines.append(f"you ({message.get('endpoint') or '?'}): {message.get('text', '')}")
            continue
        for tool in message.get("tools") or []:
            lines.append(f"  ⚙ {tool['name']}({short_json(tool.get('arguments'))})")
            if tool.get("error"):
                lines.append(f"  ✗ {tool['name']} failed: {tool['error']}")
            elif "result" in tool:
                lines.append(f"  ↳ {tool['name']} → {short_json(tool['result'])}")
        lines.extend(
            f"  ? {question_of(asked.get('request'))} → {short_json(asked.get('answer'))}"
            for asked in message.get("interrupts") or []
        )
        status = message.get("status")
        suffix = "" if status == "succeeded" else f" [{status}]"
        lines.append(f"agent{suffix}: {message.get('text', '')}")
    return "\n".join(lines)


def cmd_history(args: argparse.Namespace) -> int:
    directory = config.history_dir()
    if args.history_command == "list":
        paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
        if not paths:
            print(f"no saved chats in {directory}")
            return Exit.OK
        for path in paths:
            try:
                session = read_session(path)
            except CLIError as exc:
                print(f"{path.stem}  (unreadable: {exc})")
                continue
            first = next((m.get("text", "") for m in session["messages"] if m["role"] == "user"), "")
            turns = sum(1 for m in session["messages"] if m["role"] == "user")
            updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.get("updated_at", 0)))
            summary = " ".join(str(first).split())[:60]
            print(f"{path.stem}  {updated}  {session.get('endpoint') or '-'}  {turns} turn(s)  {summary}")
        return Exit.OK
    if args.history_command == "show":
        session = read_session(session_source(args.id))
        if args.json:
            print(json.dumps(session, indent=2, ensure_ascii=False))
        else:
            print(transcript(session))
        return Exit.OK
    for name in args.ids:
        path = history_path(name)
        if not path.exists():
            raise CLIError(f"no saved chat {name!r} in {directory}", Exit.NOT_FOUND)
    for name in args.ids:
        history_path(name).unlink()
        print(f"deleted {name}")
    return Exit.OK


# ---------------------------------------------------------------------------------------------- config


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_command == "set":
        config.check(args.key, args.value, "config set")
        config.write_key(args.key, args.value)
        print(f"{args.key} = {config.shown(args.key, args.value)} (in {config.config_path()})")
        return Exit.OK
    if args.config_command == "unset":
        if args.key not in config.KEYS:
            raise CLIError(f"unknown configuration key {args.key!r} (known: {', '.join(config.KEYS)})")
        config.write_key(args.key, None)
        print(f"{args.key} removed from {config.config_path()}")
        return Exit.OK
    settings = config.resolve()
    if args.config_command == "get":
        if args.key not in config.KEYS:
            raise CLIError(f"unknown configuration key {args.key!r} (known: {', '.join(config.KEYS)})")
        value = settings[args.key].value
        print("" if value is None else value)
        return Exit.OK
    for name, setting in settings.items():
        print(f"{name} = {config.shown(name, setting.value)}  ({setting.source})")
    return Exit.OK


# ---------------------------------------------------------------------------------------------- chat

HELP = """\
Type a message and press Enter. @path inserts a file's content.
  /endpoint [NAME]    show the agents served, or talk to NAME
  /history            show this chat
  /save [FILE]        save this chat as JSON (default: its file in ~/.fastagentic/history)
  /load FILE|ID       load a saved chat (replaces this one's messages)
  /clear              forget this chat's messages
  /format FORMAT      markdown, plain or json
  /health             the gateway's readiness
  /help               this text
  /quit               leave (also Ctrl-D)
While a run waits for input, type the answer (JSON, or text), or /cancel to cancel the run.
Ctrl-C during a run cancels it."""


class LineReader:
    """Lines from the terminal (with line editing, via readline) or from a pipe."""

    def __init__(self, stdin: IO[str], prompt_out: IO[str]) -> None:
        self.stdin = stdin
        self.tty = stdin.isatty()
        self.prompt_out = prompt_out
        if self.tty:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())

    def read(self, prompt: str) -> str | None:
        """A line without its newline; None at end of input."""
        if self.tty:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\n")


class Chat:
    def __init__(self, args: argparse.Namespace) -> None:
        self.settings = settings_of(args)
        self.fmt = self.settings["format"].value or "markdown"
        self.out = sys.stdout
        self.reader = LineReader(sys.stdin, sys.stdout)
        self.client = make_client(self.settings)
        self.timeout = float(self.settings["timeout"].value or 300)
        self.save_history = self.settings["history"].value == "true"
        self.endpoint: Endpoint | None = None
        self.session = new_session(None, self.settings["url"].value or "")
        self.file_text = read_file_arg(args.file)
        self.renderer = renderer_for(self.out, self.fmt)
        if args.load:
            self.load(args.load)

    def say(self, text: str, style: str = "") -> None:
        self.renderer.line(text, style)

    def run(self) -> int:
        self.say(f"fastagentic chat · {health(self.settings)}", "dim")
        try:
            self.endpoint = pick_endpoint(self.client, self.settings["endpoint"].value)
        except CLIError as exc:
            if exc.code != Exit.USAGE:
                raise
            self.say(f"{exc}; use /endpoint NAME", "yellow")
        except FastAgenticError as exc:
            raise CLIError(describe(exc), exit_code_of(exc)) from exc
        if self.endpoint is not None:
            self.session["endpoint"] = self.endpoint.name
            self.say(f"talking to {self.endpoint.name} · /help for commands", "dim")
        while True:
            prompt = f"{self.endpoint.name if self.endpoint else '?'}> "
            try:
                line = self.reader.read(prompt)
            except KeyboardInterrupt:
                self.out.write("\n")
                continue
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        break
                else:
                    self.send(line)
            except CLIError as exc:
                self.say(f"error: {exc}", "bold red")
            except FastAgenticError as exc:
                self.say(f"error: {describe(exc)}", "bold red")
        self.client.close()
        return Exit.OK

    def send(self, line: str) -> None:
        if self.endpoint is None:
            raise CLIError("no agent chosen: /endpoint NAME")
        text = expand_files(line)
        if self.file_text:
            text, self.file_text = f"{text}\n\n{self.file_text}", ""
        turn = Turn(self.endpoint.name, line, to_input(self.endpoint, text, False))
        run_turn(self.client, turn, self.renderer, self.timeout, self.answer)
        if turn.status != "succeeded":
            error = turn.error or {"type": turn.status, "message": ""}
            self.say(f"run {turn.run_id} {turn.status}: {error['type']}: {error['message']}", "bold red")
        self.session["messages"].extend(turn.messages())
        self.session["endpoint"] = self.endpoint.name
        if self.save_history:
            write_session(self.session, history_path(self.session["id"]))

    def answer(self, run_id: str, asked: Interrupt) -> Any:
        """Ask the interrupt's question until an answer is accepted (or /cancel)."""
        self.say(f"? {question_of(asked.request)}", "bold yellow")
        self.say(f"  answer with {schema_hint(asked.schema)}, or /cancel", "dim")
        while True:
            line = self.reader.read("answer> ")
            if line is None or line.strip() == "/cancel":
                return CANCEL
            if not line.strip():
                continue
            reply = parse_answer(line.strip(), asked.schema)
            try:
                self.client.resume(run_id, reply, interrupt=asked.id)
            except ValidationError as exc:
                self.say(f"not accepted: {describe(exc)}", "red")
                continue
            return reply

    def command(self, line: str) -> bool:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.say(HELP)
        elif name == "/health":
            self.say(health(self.settings))
        elif name == "/endpoint":
            if rest:
                self.endpoint = pick_endpoint(self.client, rest)
                self.session["endpoint"] = self.endpoint.name
                self.say(f"talking to {self.endpoint.name}")
            else:
                for agent in self.client.endpoints("agent"):
                    mark = "*" if self.endpoint and agent.name == self.endpoint.name else " "
                    self.say(f"{mark} {agent.name}  {agent.description}")
        elif name == "/history":
            self.say(transcript(self.session) or "(no messages yet)")
        elif name == "/save":
            path = Path(rest).expanduser() if rest else history_path(self.session["id"])
            try:
                write_session(self.session, path)
            except OSError as exc:
                raise CLIError(f"cannot save to {path}: {exc}") from exc
            self.say(f"saved {len(self.session['messages'])} message(s) to {path}")
        elif name == "/load":
            if not rest:
                raise CLIError("/load FILE or history id")
            self.load(rest)
        elif name == "/clear":
            self.session["messages"] = []
            self.say("cleared")
        elif name == "/format":
            if rest not in config.FORMATS:
                raise CLIError(f"/format {' | '.join(config.FORMATS)} (now {self.fmt})")
            self.fmt = rest
            self.renderer = renderer_for(self.out, self.fmt)
            self.say(f"format: {self.fmt}")
        else:
            raise CLIError(f"unknown command {name} (/help lists them)")
        return True

    def load(self, name: str) -> None:
        loaded = read_session(session_source(name))
        self.session["messages"] = loaded["messages"]
        turns = sum(1 for m in loaded["messages"] if m["role"] == "user")
        self.say(f"loaded {turns} turn(s) from {name}")
        wanted = loaded.get("endpoint")
        if wanted and (self.endpoint is None or self.endpoint.name != wanted):
            try:
                self.endpoint = pick_endpoint(self.client, wanted)
                self.session["endpoint"] = wanted
                self.say(f"talking to {wanted}")
            except (CLIError, FastAgenticError) as exc:
                self.say(f"its endpoint {wanted!r} is not available: {exc}", "yellow")


def cmd_chat(args: argparse.Namespace) -> int:
    chat = Chat(args)
    return chat.run()
