"""``fastagentic new`` and ``fastagentic templates list``: project templates shipped in the package
(``fastagentic/templates/``) and in local registries (directories named by ``--registry`` or
``FASTAGENTIC_TEMPLATES``). docs/guides/templates.md describes the format."""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .cli_config import CLIError, Exit

SHIPPED = Path(__file__).resolve().parent / "templates"
COMMON = "_common"
SUFFIX = ".tmpl"  # template files end in it, so that tools do not take them for the project's own code
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    description: str
    fastagentic: str  # a version range, like ">=0.1,<0.2"
    extra: str  # the fastagentic extra the project installs ("" for none)
    root: Path
    source: str  # "package" or the registry directory
    common: bool  # the shipped _common files come first
    dev: bool  # the project's environment can also hold a local gateway (``fastagentic dev``)

    @property
    def compatible(self) -> bool:
        return in_range(installed_version(), self.fastagentic)


def installed_version() -> str:
    try:
        return metadata.version("fastagentic")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _numbers(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version.split("+")[0])
    numbers = tuple(int(p) for p in parts[:3])
    return numbers + (0,) * (3 - len(numbers))


def in_range(version: str, spec: str) -> bool:
    """``version`` against a comma-separated range of ``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=`` clauses."""
    have = _numbers(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.fullmatch(r"(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+){0,2})", clause)
        if match is None:
            raise ValueError(f"bad version clause {clause!r}")
        op, wanted = match.group(1), _numbers(match.group(2))
        ok = {
            ">=": have >= wanted,
            "<=": have <= wanted,
            "==": have == wanted,
            "!=": have != wanted,
            ">": have > wanted,
            "<": have < wanted,
        }[op]
        if not ok:
            return False
    return True


def load_template(directory: Path, source: str) -> Template:
    manifest = directory / "template.json"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CLIError(f"{manifest}: {exc}") from exc
    if not isinstance(data, dict):
        raise CLIError(f"{manifest}: expected a JSON object")
    if data.get("format") != FORMAT_VERSION:
        raise CLIError(f"{manifest}: format {data.get('format')!r}, this fastagentic reads {FORMAT_VERSION}")
    missing = [
        k for k in ("name", "version", "description", "fastagentic") if not isinstance(data.get(k), str)
    ]
    if missing:
        raise CLIError(f"{manifest}: missing or not a string: {', '.join(missing)}")
    try:
        in_range("0.0.0", data["fastagentic"])
    except ValueError as exc:
        raise CLIError(f"{manifest}: fastagentic: {exc}") from exc
    if not isinstance(data.get("dev", True), bool):
        raise CLIError(f"{manifest}: dev: expected true or false")
    if not (directory / "files").is_dir():
        raise CLIError(f"{directory}: no files/ directory")
    return Template(
        name=data["name"],
        version=data["version"],
        description=data["description"],
        fastagentic=data["fastagentic"],
        extra=str(data.get("extra", "")),
        root=directory,
        source=source,
        common=bool(data.get("common", source == "package")),
        dev=bool(data.get("dev", True)),
    )


def registries(extra: list[str] | None) -> list[Path]:
    paths = list(extra or [])
    paths += [p for p in os.environ.get("FASTAGENTIC_TEMPLATES", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in paths]


def all_templates(extra: list[str] | None = None) -> tuple[dict[str, Template], list[str]]:
    """Templates by name (a registry's wins over the package's) and problems found on the way."""
    found: dict[str, Template] = {}
    problems: list[str] = []
    for directory in sorted(SHIPPED.iterdir()):
        if directory.is_dir() and directory.name != COMMON and (directory / "template.json").exists():
            template = load_template(directory, "package")
            found[template.name] = template
    for registry in registries(extra):
        if not registry.is_dir():
            problems.append(f"registry {registry}: not a directory")
            continue
        for directory in sorted(registry.iterdir()):
            if (directory / "template.json").exists():
                try:
                    template = load_template(directory, str(registry))
                except CLIError as exc:
                    problems.append(str(exc))
                    continue
                found[template.name] = template
    return found, problems


def cmd_list(args: argparse.Namespace) -> int:
    found, problems = all_templates(args.registry)
    version = installed_version()
    for template in sorted(found.values(), key=lambda t: t.name):
        state = "ok" if template.compatible else f"needs fastagentic {template.fastagentic} (have {version})"
        print(
            f"{template.name:<12} {template.version:<8} {template.source:<8} {state:<4} {template.description}"
        )
    for problem in problems:
        print(f"fastagentic: skipped {problem}", file=sys.stderr)
    return Exit.OK


def module_name(project: str) -> str:
    module = re.sub(r"[^0-9a-zA-Z_]", "_", project).lower().strip("_")
    if not module or module[0].isdigit() or keyword.iskeyword(module):
        raise CLIError(f"{project!r} does not make a Python module name (letters, digits, - and _)")
    return module


def render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def cmd_new(args: argparse.Namespace) -> int:
    name = args.template
    found, _ = all_templates(args.registry)
    template = found.get(name)
    if template is None:
        raise CLIError(f"no template {name!r} (known: {', '.join(sorted(found))})", Exit.NOT_FOUND)
    if not template.compatible and not args.force:
        raise CLIError(
            f"template {name} {template.version} needs fastagentic {template.fastagentic}, this is "
            f"{installed_version()} (--force to use it anyway)"
        )
    target = Path(args.directory or args.name)
    project = Path(args.name).name
    module = module_name(project)
    if target.exists() and any(target.iterdir()):
        raise CLIError(f"{target} exists and is not empty: nothing written")
    extra = f"[{template.extra}]" if template.extra else ""
    values = {
        "project": project,
        "module": module,
        "fastagentic_requirement": f"fastagentic{extra}>={installed_version()}",
        "template": f"{template.name} {template.version}",
    }
    sources = [SHIPPED / COMMON / "files"] if template.common else []
    sources.append(template.root / "files")
    planned: dict[Path, Path] = {}
    for source in sources:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = render(str(path.relative_to(source)), {"module": module}).replace(
                    "__module__", module
                )
                planned[target / relative.removesuffix(SUFFIX)] = path
    for destination, path in planned.items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(render(path.read_text(), values))
    print(f"created {target} from template {template.name} {template.version} ({len(planned)} files)")
    print(f"  cd {target} && pip install -e '.[test]' && pytest")
    if template.dev:
        print(f"  fastagentic dev {module}.worker:app")
    else:  # the framework cannot sit beside the gateway: the worker dials one that runs elsewhere
        print(f"  fastagentic run {module}.worker:app --gateway HOST:50051")
    return Exit.OK
