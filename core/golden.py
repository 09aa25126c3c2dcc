"""Golden sets: the owner's own questions, with what a good answer to each looks like.

A golden file is JSON Lines, one question per line::

    {"id": "leave-1", "question": "How many days of leave do I get?",
     "user": "ana", "groups": ["staff"], "answerable": true,
     "documents": ["public/handbook.md"], "reference": "25 days a year.",
     "facts": ["25 days"]}

- ``question`` (required): asked as written.
- ``user`` and/or ``groups``: who asks. A known ``user`` is asked as with their groups and
  roles today; ``groups`` (alone, or for a user enclave does not know) are the groups the
  question is asked with. Neither: no groups (documents readable by everyone only).
- ``answerable`` (default true): whether the documents should answer it.
- ``documents``: what an answer should cite, each a document id or a source path (a path
  matches a cited source equal to it or ending in ``/`` + it).
- ``reference``: a reference answer; ``facts``: strings the answer must contain
  (case and spacing ignored).
- ``id`` (default ``line-N``), ``added_by`` and ``from_record`` (who added it, and the
  audit record it was promoted from) are kept and shown.

A malformed line names its line and column, and nothing runs. Named golden sets are also
kept in the database (``core.golden_sets``): auditors promote recorded answers into them
(``enclave golden add-from-audit``), and ``enclave golden export`` writes one as a file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.names import clean_text, validate_groups

MAX_QUESTIONS = 10_000
_SET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_QID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_FIELDS = {"id", "question", "user", "groups", "answerable", "documents", "reference", "facts",
           "added_by", "from_record"}


class GoldenFormatError(InputError):
    """A golden file that cannot be read: which line and column, and why."""


@dataclass(frozen=True, slots=True)
class GoldenQuestion:
    qid: str
    question: str
    user: str | None = None
    groups: tuple[str, ...] = ()
    answerable: bool = True
    documents: tuple[str, ...] = ()
    reference: str | None = None
    facts: tuple[str, ...] = ()
    added_by: str | None = None
    from_record: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The line of a golden file, without the fields left at their defaults."""
        row = asdict(self)
        out: dict[str, Any] = {"id": row.pop("qid")}
        for key, value in row.items():
            if value not in (None, (), []) and not (key == "answerable" and value is True):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


def check_set_name(name: str) -> str:
    if not isinstance(name, str) or not _SET_NAME.match(name):
        raise InputError(f"golden set name {name!r}: use 1-63 of a-z, 0-9, '.', '_', '-', "
                         "starting with a letter or digit")
    return name


def question_of(row: Any, default_id: str) -> GoldenQuestion:
    """One golden question from a parsed line; InputError (naming the field) if wrong."""
    if not isinstance(row, dict):
        raise InputError("a line must hold one JSON object")
    unknown = sorted(set(row) - _FIELDS)
    if unknown:
        raise _FieldError(unknown[0], f"unknown field {unknown[0]!r} (known: "
                          f"{', '.join(sorted(_FIELDS))})")
    qid = _text(row, "id", default_id) or default_id
    if not _QID.match(qid):
        raise _FieldError("id", f"id {qid!r}: use letters, digits, '.', '_', ':' or '-'")
    question = _text(row, "question", None)
    if question is None or not question.strip():
        raise _FieldError("question", "'question' is required and must not be empty")
    answerable = row.get("answerable", True)
    if not isinstance(answerable, bool):
        raise _FieldError("answerable", "'answerable' must be true or false")
    try:
        groups = validate_groups(_texts(row, "groups"))
    except InputError as exc:
        raise _FieldError("groups", str(exc)) from exc
    return GoldenQuestion(
        qid=qid, question=question.strip(), user=_text(row, "user", None),
        groups=tuple(groups), answerable=answerable, documents=_texts(row, "documents"),
        reference=_text(row, "reference", None), facts=_texts(row, "facts"),
        added_by=_text(row, "added_by", None), from_record=_text(row, "from_record", None))


def parse_golden(text: str, name: str = "golden file") -> list[GoldenQuestion]:
    """Every question of a golden file's text; GoldenFormatError at the first bad line."""
    questions: list[GoldenQuestion] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldenFormatError(f"{name}:{number}:{exc.colno}: not JSON: {exc.msg}") from exc
        try:
            question = question_of(row, f"line-{number}")
        except _FieldError as exc:
            raise GoldenFormatError(
                f"{name}:{number}:{_column(line, exc.field)}: {exc}") from exc
        except InputError as exc:
            raise GoldenFormatError(f"{name}:{number}:1: {exc}") from exc
        if question.qid in seen:
            raise GoldenFormatError(f"{name}:{number}:{_column(line, 'id')}: id "
                                    f"{question.qid!r} is already used on line {seen[question.qid]}")
        seen[question.qid] = number
        questions.append(question)
        if len(questions) > MAX_QUESTIONS:
            raise GoldenFormatError(f"{name}:{number}:1: more than {MAX_QUESTIONS} questions")
    if not questions:
        raise GoldenFormatError(f"{name}: holds no question")
    return questions


def load_golden(path: Path) -> tuple[list[GoldenQuestion], str]:
    """A golden file's questions and the SHA-256 of its bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the golden file {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GoldenFormatError(f"{path}:{line}: not UTF-8") from exc
    return parse_golden(text, str(path)), hashlib.sha256(data).hexdigest()


def dump_golden(questions: Sequence[GoldenQuestion]) -> str:
    return "".join(json.dumps(q.to_json(), ensure_ascii=False) + "\n" for q in questions)


def golden_sha256(questions: Sequence[GoldenQuestion]) -> str:
    return hashlib.sha256(dump_golden(questions).encode("utf-8")).hexdigest()


class _FieldError(InputError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _column(line: str, field: str) -> int:
    """Where a field's key starts on its line (1-based); 1 when it is not there."""
    found = line.find(json.dumps(field))
    return found + 1 if found >= 0 else 1


def _text(row: dict[str, Any], key: str, default: str | None) -> str | None:
    value = row.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _FieldError(key, f"{key!r} must be a string")
    try:
        clean_text(value, f"the field {key!r}", multiline=key in {"question", "reference"})
    except InputError as exc:
        raise _FieldError(key, str(exc)) from exc
    return value


def _texts(row: dict[str, Any], key: str) -> tuple[str, ...]:
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _FieldError(key, f"{key!r} must be a list of non-empty strings")
    for v in value:
        try:
            clean_text(v, f"an item of {key!r}", multiline=False)
        except InputError as exc:
            raise _FieldError(key, str(exc)) from exc
    return tuple(v.strip() for v in value)
