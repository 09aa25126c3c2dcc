"""JSON, NDJSON and YAML as text that keeps its keys (ingest/structured.py), through the
parser: key paths and values on lines, one block per record, invalid files failing with
where they break, and aliases that would expand without end refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import CorruptDocument, EmptyDocument, TooLarge
from ingest.parse import parse_file
from tests.conftest import shared

LIMITS = {"max_bytes": 50_000_000, "max_pages": 1000}


def _parse(path: Path, content: str | bytes) -> str:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return parse_file(path, **LIMITS).text


def test_json_keeps_key_paths_and_values(tmp_path: Path) -> None:
    config = {
        "database": {"primary": {"host": "db1.internal", "ports": [5432, 5433]},
                     "replicas": [{"host": "db2.internal", "lag_alert_s": 30}]},
        "feature_flags": {"new_checkout": True, "beta": None},
        "owner": "Platform team\nBuilding 4",
    }
    text = _parse(tmp_path / "service.json", json.dumps(config, indent=2))
    lines = set(text.splitlines())
    assert {
        "database.primary.host: db1.internal",
        "database.primary.ports: 5432, 5433",
        "database.replicas[0].host: db2.internal",
        "database.replicas[0].lag_alert_s: 30",
        "feature_flags.new_checkout: true",
        "feature_flags.beta: null",
        "owner: Platform team Building 4",  # a value's line break does not start a keyless line
    } <= lines
    # Top-level keys are blocks of their own: chunks break between them.
    assert text.split("\n\n")[0].startswith("database.primary.host")


def test_records_of_json_arrays_and_ndjson_are_blocks(tmp_path: Path) -> None:
    records = [{"id": 7, "customer": "Acme BV", "status": "overdue"},
               {"id": 8, "customer": "Borg AG", "status": "paid"}]
    from_array = _parse(tmp_path / "export.json", json.dumps(records))
    from_lines = _parse(tmp_path / "export.ndjson",
                        "\n".join(json.dumps(r) for r in records) + "\n\n")
    expected = "id: 7\ncustomer: Acme BV\nstatus: overdue\n\nid: 8\ncustomer: Borg AG\nstatus: paid"
    assert from_array == from_lines == expected
    parsed = parse_file(tmp_path / "export.ndjson", **LIMITS)
    assert [e.text for e in parsed.elements] == expected.split("\n\n")
    assert parsed.filetype == "ndjson" and parsed.title == "export"


def test_yaml_documents_and_utf16_json(tmp_path: Path) -> None:
    text = _parse(tmp_path / "deploy.yaml",
                  "service: billing\nlimits:\n  memory: 512Mi\n  replicas: 3\n---\n"
                  "service: search\nreleased: 2024-05-01\n")
    assert "limits.memory: 512Mi" in text and "released: 2024-05-01" in text
    assert text.count("service: ") == 2
    utf16 = _parse(tmp_path / "utf16.json", json.dumps({"naïve": "café"}).encode("utf-16"))
    assert utf16 == "naïve: café"


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("broken.json", '{"a": 1,\n "b": }', "corrupt: invalid JSON at line 2, column 7: Expecting value"),
    ("broken.ndjson", '{"a": 1}\n{"a": 2\n', "corrupt: invalid JSON on line 2: Expecting ','"),
    ("broken.yaml", "a: 1\nb: [1, 2\nc: 3\n", "corrupt: invalid YAML at line 3, column 2:"),
    ("binary.json", b"\xff\xfe\xfd\x00garbage", "corrupt: "),
])
def test_invalid_files_fail_with_where_they_break(
    tmp_path: Path, name: str, content: str | bytes, reason: str
) -> None:
    with pytest.raises(CorruptDocument) as caught:
        _parse(tmp_path / name, content)
    assert str(caught.value).startswith(reason), str(caught.value)
    assert "\n" not in str(caught.value)


def test_yaml_aliases_cannot_blow_up_or_loop(tmp_path: Path) -> None:
    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n, (new, old) in enumerate(zip("bcdefghi", "abcdefgh", strict=True)):
        laughs.append(f"{new}: &{new} [{', '.join('*' + old for _ in range(10))}]")
        assert n < 8
    with pytest.raises(TooLarge, match="million characters"):
        _parse(tmp_path / "laughs.yaml", "\n".join(laughs) + "\n")
    with pytest.raises(CorruptDocument, match="nested more than"):
        _parse(tmp_path / "loop.yaml", "a: &x [1, *x]\n")
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(CorruptDocument, match="nested more than"):
        _parse(tmp_path / "deep.json", deep)


def test_nothing_to_read_is_empty(tmp_path: Path) -> None:
    for name, content in (("none.json", "{}"), ("none.yaml", "# only a comment\n")):
        with pytest.raises(EmptyDocument):
            _parse(tmp_path / name, content)


def test_corpus_files_read_with_their_keys() -> None:
    docs = shared("parsing", "unstructured", "docs")
    text = parse_file(docs / "simple.yaml", **LIMITS).text
    assert "xmas-fifth-day.partridges.location: a pear tree" in text
    records = parse_file(docs / "arbitrary-records.ndjson", **LIMITS).text
    assert "sku: GRD-1290\nname: Watering Can" in records
