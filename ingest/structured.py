"""JSON, NDJSON and YAML as text that keeps its keys.

Exported records and configuration files are searched by their key names as much as by
their values ("which service sets max_connections?"), so every value is written on a
line of its own after its full key path::

    database.primary.host: db1.internal
    database.primary.ports: 5432, 5433
    users[2].email: ana@example.com

Records (the items of a top-level list, the lines of NDJSON, the documents of a YAML
stream) and the top-level keys of an object are blocks of their own, separated by blank
lines, so chunks break between records rather than inside one. A list of plain values
stays on one line. Invalid input fails with the line and column where it breaks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from core.errors import CorruptDocument, TooLarge, UnreadableFile

EXTENSIONS = frozenset({".json", ".ndjson", ".jsonl", ".yaml", ".yml"})

# Deeper than any real document; a YAML alias that contains itself would otherwise recurse
# for ever.
MAX_NESTING = 100
# Key paths repeat on every line: deep records render to a few times their size, aliases
# to any size.
_EXPANSION = 20
_MIN_CHARS = 10_000_000


def render(path: Path, max_bytes: int) -> list[str]:
    """The blocks of text of ``path``, a JSON, NDJSON or YAML file.

    YAML aliases can make a 1 kB file stand for gigabytes (the "billion laughs"), so the
    text is measured as it is made: at most ``_EXPANSION`` times the file's size (at least
    ``_MIN_CHARS``), and never more than ``max_bytes``, the limit for a file.
    """
    ext = path.suffix.lower()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    max_chars = min(max_bytes, max(_EXPANSION * len(data), _MIN_CHARS))
    if ext in (".yaml", ".yml"):
        records = _records_of_yaml(data)
    elif ext in (".ndjson", ".jsonl"):
        records = _records_of_ndjson(data)
    else:
        records = _records_of_json(data)
    blocks: list[str] = []
    budget = _Budget(max_chars)
    try:
        for record, top in records:
            blocks.extend(_blocks(record, top, budget))
    except RecursionError as exc:
        raise CorruptDocument(f"nested more than {MAX_NESTING} levels deep") from exc
    return [b for b in blocks if b.strip()]


class _Budget:
    def __init__(self, max_chars: int) -> None:
        self.left = max_chars
        self.max_chars = max_chars

    def take(self, line: str) -> str:
        self.left -= len(line) + 1
        if self.left < 0:
            raise TooLarge(
                f"renders to more than {self.max_chars / 1e6:.1f} million characters "
                "(aliases that repeat a part many times?)"
            )
        return line


def _records_of_json(data: bytes) -> Iterator[tuple[Any, bool]]:
    value = _load_json(data, where="")
    if isinstance(value, list):
        for item in value:
            yield item, False
    else:
        yield value, True


def _records_of_ndjson(data: bytes) -> Iterator[tuple[Any, bool]]:
    text = _decode(data)
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield _load_json(line, where=f"on line {number}"), False


def _records_of_yaml(data: bytes) -> Iterator[tuple[Any, bool]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader, where built
    try:
        # Loaded whole before rendering: an error anywhere fails the file, not half of it.
        documents = list(yaml.load_all(data, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CorruptDocument(f"invalid YAML{where}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:  # a reader error: bytes that are not text
        raise CorruptDocument(f"invalid YAML: {str(exc).splitlines()[0]}") from exc
    except RecursionError as exc:
        raise CorruptDocument(f"nested more than {MAX_NESTING} levels deep") from exc
    for document in documents:
        if isinstance(document, list):
            for item in document:
                yield item, False
        elif document is not None:
            yield document, True


def _load_json(data: bytes | str, where: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        place = where or f"at line {exc.lineno}, column {exc.colno}"
        raise CorruptDocument(f"invalid JSON {place}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise CorruptDocument("not JSON text: not UTF-8, UTF-16 or UTF-32") from exc
    except RecursionError as exc:
        raise CorruptDocument(f"nested more than {MAX_NESTING} levels deep") from exc


def _decode(data: bytes) -> str:
    # What json.loads accepts for bytes: UTF-8 (a BOM allowed), UTF-16 and UTF-32.
    try:
        return data.decode(json.detect_encoding(data))
    except UnicodeDecodeError as exc:
        raise CorruptDocument("not JSON text: not UTF-8, UTF-16 or UTF-32") from exc


def _blocks(record: Any, top: bool, budget: _Budget) -> Iterator[str]:
    """One block per top-level key of an object that is the whole document, else one."""
    if top and isinstance(record, dict):
        for key, value in record.items():
            yield "\n".join(_lines(value, _key(key), 1, budget))
    else:
        yield "\n".join(_lines(record, "", 0, budget))


def _lines(value: Any, path: str, depth: int, budget: _Budget) -> Iterator[str]:
    if depth > MAX_NESTING:
        raise CorruptDocument(f"nested more than {MAX_NESTING} levels deep (or refers to itself)")
    if isinstance(value, dict):
        if not value:
            yield budget.take(f"{path}: {{}}" if path else "{}")
        for key, item in value.items():
            yield from _lines(item, f"{path}.{_key(key)}" if path else _key(key), depth + 1, budget)
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if all(_is_scalar(i) for i in items):
            joined = ", ".join(_scalar(i) for i in items) if items else "[]"
            yield budget.take(f"{path}: {joined}" if path else joined)
            return
        for n, item in enumerate(items):
            yield from _lines(item, f"{path}[{n}]", depth + 1, budget)
    else:
        yield budget.take(f"{path}: {_scalar(value)}" if path else _scalar(value))


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list | tuple | set | frozenset)


def _key(key: Any) -> str:
    return " ".join(_scalar(key).split()) or '""'


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes of binary data>"
    # Line breaks inside a value would read as lines of their own, without a key.
    return " ".join(str(value).split())
