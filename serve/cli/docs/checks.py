"""What the Markdown docs claim about the code, found by scanning them: ``enclave`` command
lines, ``ENCLAVE_*`` names and relative links. tests/serve/cli/docs checks each claim against the code;
``python -m serve.cli.docs --stats`` counts them.

Scanning is plain text work (no CLI, no settings imported) so that it can be tested on
strings; checking a command line needs the click tree and lives in ``commands``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

# Fences whose lines are data, not shell: a YAML `command: enclave serve` is not a command line.
DATA_FENCES = {"json", "yaml", "yml", "toml", "ini", "python", "py", "mermaid", "html", "js",
               "javascript", "css", "sql", "csv", "diff"}
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
# `enclave ...`, `.venv/bin/enclave ...`, `$ enclave ...`, and compose's
# `docker compose exec [-T] api enclave ...` (the deployment docs run commands that way).
COMMAND = re.compile(
    r"^(?:\$\s+)?(?:docker[ -]compose\s+(?:exec|run)(?:\s+-{1,2}[\w-]+)*\s+[\w-]+\s+)?"
    r"(?:\.venv/bin/)?(enclave)(?=\s|$)")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
SETTING = re.compile(r"(?<![A-Za-z0-9_])ENCLAVE_[A-Z0-9_*]*")
LINK = re.compile(r"\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"\b(?:src|href)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.I)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


@dataclass(frozen=True)
class Found:
    """Something the docs say, and where: ``file`` is relative to the repository."""

    file: str
    line: int
    text: str


def markdown_files(root: Path) -> list[Path]:
    """README.md, docs/**/*.md and eval/README.md: what readers read."""
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md")), root / "eval" / "README.md"]
    return [f for f in files if f.is_file()]


def setting_files(root: Path) -> list[Path]:
    """The Markdown docs and the deployment files that name ``ENCLAVE_*`` variables."""
    deploy = [root / n for n in ("compose.yaml", "Dockerfile", ".env.example")]
    deploy += sorted((root / "deploy").rglob("*")) if (root / "deploy").is_dir() else []
    return [*markdown_files(root), *(f for f in deploy if f.is_file())]


def fence_mask(text: str) -> list[str | None]:
    """Per line: None outside fenced code, else the fence's info string ("" when bare)."""
    mask: list[str | None] = []
    fence: str | None = None
    info = ""
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence is None and m:
            fence, info = m.group(1), m.group(2).lower()
            mask.append(info)
        elif fence is not None and m and m.group(1).startswith(fence[0] * len(fence)) and not m.group(2):
            mask.append(info)
            fence = None
        else:
            mask.append(info if fence is not None else None)
    return mask


def prose(text: str) -> str:
    """The text with fenced blocks blanked (line numbers kept)."""
    lines = text.splitlines()
    return "\n".join("" if m is not None else line for line, m in zip(lines, fence_mask(text), strict=True))


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def find_commands(file: str, text: str) -> list[Found]:
    """``enclave`` command lines in shell fences and inline code, from ``enclave`` on."""
    found: list[Found] = []
    lines = text.splitlines()
    mask = fence_mask(text)
    i = 0
    while i < len(lines):
        info, start = mask[i], i
        line = lines[i].strip()
        # A fence's backslash continuations are one command.
        while info is not None and line.endswith("\\") and i + 1 < len(lines) and mask[i + 1] is not None:
            i += 1
            line = line[:-1].rstrip() + " " + lines[i].strip()
        i += 1
        if info is None or info in DATA_FENCES or FENCE.match(lines[start]):
            continue
        m = COMMAND.match(line)
        if m and line[m.end(1):].strip():
            found.append(Found(file, start + 1, line[m.start(1):]))
    body = prose(text)
    for span in CODE_SPAN.finditer(body):
        content = " ".join(span.group(2).split())
        m = COMMAND.match(content) if "\n\n" not in span.group(2) else None
        if m and content[m.end(1):].strip():  # `enclave` alone names the program
            found.append(Found(file, _line_of(body, span.start()), content[m.start(1):]))
    return sorted(found, key=lambda f: f.line)


def find_settings(file: str, text: str) -> list[Found]:
    """Every ``ENCLAVE_*`` token, fenced or not (env files in code blocks count)."""
    return [Found(file, _line_of(text, m.start()), m.group()) for m in SETTING.finditer(text)]


def code_env_names(root: Path, packages: tuple[str, ...] = (
        "core", "ingest", "retrieval", "serve", "workers", "eval")) -> set[str]:
    """``"ENCLAVE_..."`` string literals in the Python sources: variables the code reads itself."""
    import ast

    names: set[str] = set()
    for package in packages:
        for source in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and re.fullmatch(r"ENCLAVE_[A-Z0-9_]+", node.value):
                    names.add(node.value)
    return names


def compose_variables(root: Path) -> set[str]:
    """``${ENCLAVE_...}`` variables compose.yaml interpolates (image tag, host port)."""
    compose = root / "compose.yaml"
    text = compose.read_text(encoding="utf-8") if compose.is_file() else ""
    return set(re.findall(r"\$\{(ENCLAVE_[A-Z0-9_]+)", text))


def table_settings(text: str) -> set[str]:
    """The settings named in the first cells of a Markdown table, with the shorthand the
    guides use expanded: ``ENCLAVE_SERVE__HOST`` / ``__PORT`` names ``ENCLAVE_SERVE__PORT``."""
    names: set[str] = set()
    for line in text.splitlines():
        cells = line.split("|")
        if not line.startswith("|") or len(cells) < 3:
            continue
        first = cells[1]
        for token in SETTING.findall(first):
            names.add(token)
            stem = token[:token.rindex("__")] if "__" in token else token
            names.update(stem + extra for extra in re.findall(r"`(__[A-Z0-9_]+)`", first))
    return names


def setting_problem(token: str, leaves: set[str], prefixes: set[str], others: set[str]) -> str | None:
    """Why an ``ENCLAVE_*`` token names nothing real, or None. ``leaves``: the settings' variables;
    ``prefixes``: their sections (``ENCLAVE_SERVE__``); ``others``: names the code or compose reads."""
    known = leaves | others
    if "*" in token:
        pattern = re.compile(re.escape(token).replace(r"\*", "[A-Z0-9_]*") + "$")
        return None if any(pattern.match(n) for n in known) else f"{token} matches no setting"
    if token == "ENCLAVE_" or token in known:
        return None
    if token.endswith("__"):
        return None if token in prefixes else f"{token} is not a settings section"
    return f"{token} is not a setting nor a variable the code reads"


def github_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (and explicit HTML anchors)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    lines = prose(text).splitlines()
    for i, line in enumerate(lines):
        m = HEADING.match(line)
        title = m.group(2) if m else None
        if title is None and i and re.fullmatch(r"\s{0,3}(=+|-+)\s*", line) and lines[i - 1].strip() \
                and not HEADING.match(lines[i - 1]) and "|" not in lines[i - 1]:
            title = lines[i - 1].strip()  # a setext heading: the line above is its text
        if title is None:
            continue
        slug = slugify(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    anchors.update(HTML_ANCHOR.findall(text))
    return anchors


def slugify(title: str) -> str:
    """GitHub's rule: rendered text, lowercased, punctuation but ``-`` and ``_`` dropped,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def find_links(file: str, text: str) -> list[Found]:
    """Link targets of Markdown links, images, reference definitions and HTML src/href,
    outside fenced blocks and inline code."""
    body = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), prose(text))
    found = [Found(file, _line_of(body, m.start()), m.group(1)) for m in LINK.finditer(body)]
    found += [Found(file, _line_of(body, m.start()), m.group(1)) for m in REFERENCE_LINK.finditer(body)]
    found += [Found(file, _line_of(body, m.start()), m.group(1) or m.group(2))
              for m in HTML_LINK.finditer(body)]
    return sorted(found, key=lambda f: f.line)


def link_problem(root: Path, file: Path, target: str) -> str | None:
    """Why a relative link from ``file`` leads nowhere, or None (external links: None)."""
    if not target or EXTERNAL.match(target):
        return None
    path_part, _, fragment = target.partition("#")
    if path_part.startswith("/"):
        resolved = root / unquote(path_part).lstrip("/")
    else:
        resolved = (file.parent / unquote(path_part)) if path_part else file
    if not resolved.exists():
        return f"{target}: {_shown(root, resolved)} does not exist"
    if fragment and resolved.is_file() and resolved.suffix.lower() == ".md":
        if unquote(fragment) not in github_anchors(resolved.read_text(encoding="utf-8")):
            return f"{target}: no heading in {_shown(root, resolved)} has the anchor #{fragment}"
    return None


def _shown(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def iter_files(root: Path, files: list[Path]) -> Iterator[tuple[str, Path, str]]:
    for f in files:
        yield f.relative_to(root).as_posix(), f, f.read_text(encoding="utf-8")
