"""An ``enclave`` command line from the docs, checked against the click tree of the real CLI.

A line may show alternatives (``enclave db upgrade | db status [--json]``), usage brackets
(``[--group G]...``), flag pairs (``--refused|--answered``) and shell around it (pipes,
``&&``, comments); each is taken apart the way a reader would.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

OPERATORS = {"|", "||", "&&", ";", "&"}
OPTION = re.compile(r"^--?[A-Za-z][\w-]*$")
# What stands for "a command goes here": ..., COMMAND, <command>, {a,b}.
PLACEHOLDER = re.compile(r"^(\.\.\.|…|[A-Z][A-Z0-9_]*(\.\.\.)?|<.*>|\{.*\})$")
BRACKETS = "[](){}"


@dataclass(frozen=True)
class CommandUse:
    """One command a doc line runs: its path under ``enclave`` and the options written for it."""

    path: tuple[str, ...]
    options: tuple[str, ...]

    @property
    def shown(self) -> str:
        return " ".join(("enclave", *self.path))


@dataclass(frozen=True)
class Checked:
    uses: tuple[CommandUse, ...]
    problems: tuple[str, ...]


def split_line(text: str) -> list[tuple[str, list[str]]]:
    """Shell words in segments, each with the operator before it ("" for the first)."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in prose-like usage: words as written
        words = text.partition(" #")[0].split()
    segments: list[tuple[str, list[str]]] = [("", [])]
    for word in words:
        if word in OPERATORS:
            segments.append((word, []))
        elif re.match(r"^\d*[<>]", word) and not re.fullmatch(r"<[^<>]+>", word):
            segments.append((">", []))  # a redirection: what follows is a file name
        else:
            segments[-1][1].append(word)
    return segments


def option_words(word: str) -> list[str]:
    """The options a usage word names: ``[--refused|--answered]`` -> both, ``--x=V`` -> ``--x``."""
    word = word.strip(BRACKETS + ".,")
    parts = re.split(r"[|]|/(?=-)", word)
    found = []
    for part in parts:
        part = part.strip(BRACKETS).split("=", 1)[0].split("[", 1)[0]
        if OPTION.match(part):
            found.append(part)
    return found


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def _visible(command: Any) -> dict[str, Any]:
    return {n: c for n, c in getattr(command, "commands", {}).items() if not c.hidden}


def _lookup(root: Any, path: tuple[str, ...]) -> Any:
    node = root
    for name in path:
        node = node.commands[name]
    return node


def known_options(command: Any) -> set[str]:
    names = set(command.context_settings.get("help_option_names", ["--help"]))
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return {n for n in names if n.startswith("-")}


def _resolve(root: Any, start: tuple[str, ...], words: list[str],
             problems: list[str]) -> CommandUse:
    path = list(start)
    node = _lookup(root, start)
    i = 0
    while i < len(words) and _is_group(node) and words[i].strip(BRACKETS) in _visible(node):
        path.append(words[i].strip(BRACKETS))
        node = _visible(node)[path[-1]]
        i += 1
    rest = words[i:]
    if _is_group(node) and rest and not rest[0].startswith(("-", "[-")) \
            and not PLACEHOLDER.match(rest[0].strip(BRACKETS)):
        where = " ".join(("enclave", *path))
        problems.append(f"`{where} {rest[0]}`: {where} has no command {rest[0]!r}"
                        f" (it has: {', '.join(_visible(node))})")
    options: list[str] = []
    for word in rest:
        if word == "--":
            break
        options += option_words(word)
    valid = known_options(node)
    shown = " ".join(("enclave", *path))
    problems += [f"`{shown}` has no option {o}" for o in dict.fromkeys(options) if o not in valid]
    return CommandUse(tuple(path), tuple(dict.fromkeys(options)))


def check_command(root: Any, text: str) -> Checked:
    """The commands a doc line runs, and what on it does not exist in the CLI."""
    uses: list[CommandUse] = []
    problems: list[str] = []
    for operator, words in split_line(text):
        if not words:
            continue
        if words[0] == "enclave" or words[0].endswith("/enclave"):
            uses.append(_resolve(root, (), words[1:], problems))
        elif operator == "|" and uses:
            last = uses[-1].path
            head = words[0].strip(BRACKETS)
            if head.startswith("-"):  # `FILE | --set NAME`: another form of the same command
                more = _resolve(root, last, words, problems)
                uses[-1] = CommandUse(last, tuple(dict.fromkeys(uses[-1].options + more.options)))
            elif last and head in _visible(_lookup(root, last[:-1])):
                uses.append(_resolve(root, last[:-1], words, problems))  # `list | export NAME`
            elif head in _visible(root):
                uses.append(_resolve(root, (), words, problems))  # `db upgrade | db status`
            # anything else is a pipe into another program
    return Checked(tuple(uses), tuple(problems))
