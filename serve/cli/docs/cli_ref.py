"""``docs/reference/cli.md``, written from the typer app itself: what ``--help`` says, in one page.

The exit codes come from the ``EXIT_*`` constants of ``serve/cli`` and the meanings the
``serve/cli/main.py`` docstring gives them: a new code without a meaning there stops
``make docs`` (and tests/serve/cli/docs) until it is explained.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.errors import MarkupError
from rich.text import Text

import serve.cli
from serve.cli import main as cli_main
from serve.cli.main import app

PROG = "enclave"
CLI_DIR = Path(serve.cli.__file__).parent
ROOT = CLI_DIR.parents[1]


def cli_root() -> Any:
    """The click command tree typer builds for ``enclave``."""
    return typer.main.get_command(app)


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every visible command and group, depth first, in the order ``--help`` lists them."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from walk(sub, (*path, name))


def plain(text: str | None) -> str:
    """Help text as the terminal shows it: Rich markup removed, paragraphs kept."""
    if not text:
        return ""
    text = inspect.cleandoc(text).partition("\f")[0]
    try:
        return Text.from_markup(text).plain
    except MarkupError:
        # Brackets that are not markup (e.g. "[x]" in prose) are shown as written.
        return text


def stable(value: Any) -> str:
    """A default as text that is the same on every machine: paths relative to the repository."""
    if isinstance(value, Path) and value.is_absolute():
        return Path(_relpath(value)).as_posix()
    if isinstance(value, list | tuple):
        return ", ".join(stable(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _relpath(path: Path) -> str:
    return os.path.relpath(path, ROOT)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, and angle brackets
    that are not HTML (``<data dir>``) escaped outside code spans, where entities would show."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(
        part if part.startswith("`") else part.replace("<", "&lt;").replace(">", "&gt;")
        for part in parts
    ).replace("|", "\\|")


def code(text: str) -> str:
    return f"`{text}`" if text else ""


def _context(command: Any, path: tuple[str, ...]) -> Any:
    return command.context_class(command, info_name=" ".join((PROG, *path)))


def _range(param: Any) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    parts = [f"≥ {low}"] if low is not None else []
    parts += [f"≤ {high}"] if high is not None else []
    return f" ({', '.join(parts)})" if parts else ""


def _type(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    shown = param.metavar or param.display_type(ctx).strip("<>")
    return shown.replace(" range", "") + _range(param)


def _default(param: Any) -> str:
    default = param.default
    if default is None or callable(default) or param.required:
        return ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        # A flag pair: the default is the switch that is on, as --help shows it.
        return (param.opts if default else param.secondary_opts)[0]
    if getattr(param, "is_flag", False):
        return "on" if default else "off"
    return code(stable(default))


def _names(param: Any) -> str:
    names = ", ".join(code(o) for o in param.opts)
    if param.secondary_opts:
        names += " / " + ", ".join(code(o) for o in param.secondary_opts)
    return names


def _command_section(path: tuple[str, ...], command: Any) -> list[str]:
    ctx = _context(command, path)
    # Joined here, not get_usage(): that wraps at the terminal's width.
    usage = " ".join((ctx.command_path, *command.collect_usage_pieces(ctx)))
    lines = [f"## {' '.join((PROG, *path))}", "", "```", usage, "```", ""]
    if command.help:
        lines += [plain(command.help), ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    arguments = [p for p in params if p.param_type_name == "argument"]
    options = [p for p in params if p.param_type_name == "option"]
    if arguments:
        lines += ["| argument | type | required | default | description |", "| --- | --- | --- | --- | --- |"]
        for p in arguments:
            name = (p.metavar or p.name) + ("..." if p.nargs != 1 else "")
            lines.append(f"| {code(name)} | {cell(_type(p, ctx))} | {'yes' if p.required else 'no'} | "
                         f"{cell(_default(p))} | {cell(plain(p.help))} |")
        lines.append("")
    if options:
        lines += ["| option | type | default | description |", "| --- | --- | --- | --- |"]
        for p in options:
            help_text = plain(p.help)
            help_text += " Repeatable." if p.multiple and "repeat" not in help_text.lower() else ""
            help_text += " Required." if p.required else ""
            lines.append(f"| {_names(p)} | {cell(_type(p, ctx))} | {cell(_default(p))} | "
                         f"{cell(help_text.strip())} |")
        lines.append("")
    commands = [n for n, c in getattr(command, "commands", {}).items() if not c.hidden]
    if commands:
        lines += ["Commands: " + ", ".join(f"[{n}](#{slug(' '.join((PROG, *path, n)))})" for n in commands),
                  ""]
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (first occurrence)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@dataclass(frozen=True)
class ExitCode:
    code: int
    names: tuple[str, ...]
    meaning: str
    commands: tuple[str, ...]  # commands whose own code raises it
    helpers: tuple[str, ...]  # shared functions that raise it for any command using them


def exit_codes() -> list[ExitCode]:
    """The ``EXIT_*`` constants with their meanings and the commands that raise each."""
    constants: dict[str, int] = {}
    raises: dict[str, set[tuple[bool, str]]] = {}
    commands = _command_functions()
    for source in sorted(CLI_DIR.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        constants.update(_constants(tree))
        # Module-level functions only: a nested one's exit belongs to the function around it.
        for fn in tree.body:
            if isinstance(fn, ast.FunctionDef):
                command = commands.get((source.stem, fn.name))
                place = (False, command) if command else (True, f"`{source.stem}.{fn.name}`")
                for name in _exits(fn):
                    raises.setdefault(name, set()).add(place)
    meanings = _meanings(inspect.getdoc(cli_main) or "")
    codes = sorted(set(constants.values()))
    if set(codes) != set(meanings):
        raise ValueError(f"EXIT_* codes {codes} and the codes serve/cli/main.py's docstring "
                         f"explains {sorted(meanings)} differ: document every exit code there")
    result = []
    for value in codes:
        names = tuple(sorted(n for n, v in constants.items() if v == value))
        places = sorted({p for n in names for p in raises.get(n, ())})
        result.append(ExitCode(value, names, meanings[value],
                               tuple(w for helper, w in places if not helper),
                               tuple(w for helper, w in places if helper)))
    return result


def _constants(tree: ast.Module) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for name, value in zip(names, values, strict=False):
                if (isinstance(name, ast.Name) and name.id.startswith("EXIT_")
                        and isinstance(value, ast.Constant) and isinstance(value.value, int)):
                    found[name.id] = value.value
    return found


def _exits(fn: ast.FunctionDef) -> Iterator[str]:
    """Names passed to ``typer.Exit(...)`` or ``sys.exit(...)`` in one function's body."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            args = [*node.args, *(k.value for k in node.keywords if k.arg == "code")]
            if called in ("Exit", "exit") and args and isinstance(args[0], ast.Name):
                yield args[0].id


def _command_functions() -> dict[tuple[str, str], str]:
    """(module stem, function name) -> the command it implements, e.g. ``enclave ingest``."""
    found: dict[tuple[str, str], str] = {}
    for path, command in walk(cli_root()):
        callback = getattr(command, "callback", None)
        if path and callback is not None:
            fn = inspect.unwrap(callback)
            found[(fn.__module__.rpartition(".")[2], fn.__name__)] = code(" ".join((PROG, *path)))
    return found


def _meanings(doc: str) -> dict[int, str]:
    """``Exit codes: 0 success; 1 ...; 2 ...`` in a docstring, as {code: meaning}."""
    match = re.search(r"Exit codes:(.*?)(?:\n\s*\n|$)", doc, re.S)
    if not match:
        return {}
    text = " ".join(match.group(1).split()).replace("``", "`")
    parts = re.split(r";\s*(?=\d+\s)", text)
    found = {}
    for part in parts:
        m = re.match(r"\s*(\d+)\s+(.*?)\.?\s*$", part)
        if m:
            found[int(m.group(1))] = m.group(2)
    return found


def render_cli() -> str:
    root = cli_root()
    lines = [
        "<!-- Generated by `make docs` from the code (serve/cli/docs/cli_ref.py); do not edit. -->",
        "",
        f"# `{PROG}` command reference",
        "",
        plain(root.help),
        "",
        "Every command prints this with `--help`. Settings (`ENCLAVE_*`) apply to every command: "
        "see [settings.md](settings.md).",
        "",
        "## Exit codes",
        "",
        "| code | constant | meaning | raised by |",
        "| --- | --- | --- | --- |",
    ]
    for ec in exit_codes():
        # A helper's exit (run_cli, main) can end any command that goes through it.
        via = [f"any command, via {', '.join(ec.helpers)}"] if ec.helpers else []
        raised = ", ".join([*ec.commands, *via]) or "every command, when it succeeds"
        lines.append(f"| {ec.code} | {', '.join(code(n) for n in ec.names)} | {cell(ec.meaning)} | "
                     f"{cell(raised)} |")
    lines += ["", "A command line the parser rejects (an unknown option, a missing argument) "
              "also exits 2.", ""]
    for path, command in walk(root):
        if path:
            lines += _command_section(path, command)
    return "\n".join(lines).rstrip("\n") + "\n"
