"""Exports of the audit trail: JSONL that verifies offline, and CSV for spreadsheets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from core.audit import HASHED, Record
from core.errors import InputError

CSV_COLUMNS = ("seq", "record_id", "at", "kind", "actor", "question", "answer", "refused",
               "unsupported", "citations", "model", "hash", "prev_hash")


def jsonl_line(record: Record) -> str:
    """One record as it is hashed, plus its hash and its seal: an export ``verify_chain``
    can check, seals included for whoever holds the public keys."""
    return json.dumps({**record.fields(), "hash": record.hash, "seal": record.seal},
                      ensure_ascii=False) + "\n"


def record_from_json(line: str) -> Record:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise InputError("not an audit export line: not a JSON object")
    try:
        return Record(**{k: data[k] for k in (*HASHED, "hash")}, seal=data.get("seal"))
    except KeyError as exc:
        raise InputError(f"not an audit export line: {exc} is missing") from exc


def csv_header() -> str:
    return _csv_row(CSV_COLUMNS)


def csv_line(record: Record) -> str:
    body = record.body
    return _csv_row([
        record.seq, record.record_id, record.at, record.kind, record.actor,
        record.question or "", record.answer or "",
        "" if record.refused is None else str(record.refused).lower(), record.unsupported,
        len(body.get("citations", ())), body.get("model", ""), record.hash, record.prev_hash,
    ])


def export_lines(records: Iterable[Record], format: str) -> Iterator[str]:
    """An export, line by line: JSONL (verifiable offline) or CSV with its header."""
    if format == "csv":
        yield csv_header()
    for r in records:
        yield csv_line(r) if format == "csv" else jsonl_line(r)


def _csv_row(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([_cell(v) for v in values])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A spreadsheet must not run a question as a formula: such text is quoted with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
