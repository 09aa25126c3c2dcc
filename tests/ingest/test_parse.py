"""The real parser on real files: the project's samples, and ../shared/data edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import CorruptDocument, EmptyDocument, EncryptedDocument, UnsupportedType
from ingest.parse import parse_file, table_html_to_text
from tests.conftest import shared

LIMITS = {"max_bytes": 50_000_000, "max_pages": 1000}


def test_pdf_keeps_pages_and_offsets(samples):
    parsed = parse_file(samples["finance"] / "expense-policy.pdf", **LIMITS)
    assert parsed.page_count == 2
    assert {e.page for e in parsed.elements} == {1, 2}
    for e in parsed.elements:
        assert parsed.text[e.char_start:e.char_end] == e.text
    assert any("180 euros" in e.text and e.page == 1 for e in parsed.elements)
    assert any("60 euros" in e.text and e.page == 2 for e in parsed.elements)


@pytest.mark.parametrize(
    ("name", "needle", "category"),
    [("product-faq.docx", "What payload can the Atlas arm lift?", "Title"),
     ("security-policy.html", "Critical | 15 minutes", "Table"),
     ("holidays.csv", "2026-12-25 | Christmas Day | all", "Table"),
     ("handbook.md", "Paid leave", "Title"),
     ("all-hands-q3.pptx", "Hiring", "Title"),
     ("welcome.eml", "documents you are allowed to read", None)],
)
def test_formats_keep_categories_and_readable_tables(samples, name, needle, category):
    parsed = parse_file(samples["public"] / name, **LIMITS)
    match = [e for e in parsed.elements if needle in e.text]
    assert match, [e.text for e in parsed.elements]
    if category:
        assert match[0].category == category


def test_spreadsheet_rows_and_sheet_as_page(samples):
    parsed = parse_file(samples["finance"] / "budget-2027.xlsx", **LIMITS)
    assert "Engineering | 4200000 | 61" in parsed.text
    assert parsed.elements[0].page == 1


def test_table_html_to_text():
    html = "<table><tr><th>a</th><th>b c</th></tr><tr><td>1</td><td> 2 </td></tr></table>"
    assert table_html_to_text(html) == "a | b c\n1 | 2"


def test_refusals(tmp_path: Path):
    (tmp_path / "empty.md").write_text("")
    with pytest.raises(EmptyDocument):
        parse_file(tmp_path / "empty.md", **LIMITS)
    (tmp_path / "song.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    with pytest.raises(UnsupportedType):
        parse_file(tmp_path / "song.wav", **LIMITS)
    # Cut short: LibreOffice would read it as a line of plain-text garbage.
    (tmp_path / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(CorruptDocument, match=r"not a \.doc file"):
        parse_file(tmp_path / "old.doc", **LIMITS)
    (tmp_path / "blank.txt").write_text("   \n\n  ")
    with pytest.raises(EmptyDocument):
        parse_file(tmp_path / "blank.txt", **LIMITS)


def test_encrypted_files_are_named_so():
    docs = shared("parsing", "unstructured", "docs")
    with pytest.raises(EncryptedDocument):
        parse_file(docs / "pdf" / "password.pdf", **LIMITS)
    with pytest.raises(EncryptedDocument):
        parse_file(docs / "password_protected.xlsx", **LIMITS)
