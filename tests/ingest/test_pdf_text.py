"""The pdfium text-layer path (ingest/pdf_text.py) through the real parser, on real PDFs:
a 10-Q filing, files of the public parsing corpus, and PDFs made here."""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path

import pytest

from core.errors import CorruptDocument, EmptyDocument, EncryptedDocument
from core.settings import IngestSettings, OcrSettings, Settings
from core.types import ParsedDocument
from eval.bench_pdf import text_pdf
from ingest import pdf_text
from ingest.parse import parse_file
from ingest.pdf_text import PdfText
from tests.conftest import shared
from tests.ingest import ocr_files
from tests.ingest.ocr_files import text_image

NO_OCR = OcrSettings(enabled=False)
PARSING = ("parsing", "unstructured", "docs", "pdf")


def parse(path: Path, way: PdfText = "pdfium", ocr: OcrSettings = NO_OCR) -> ParsedDocument:
    return parse_file(path, ocr=ocr, pdf_text=way, max_bytes=50_000_000, max_pages=1000)


def assert_placed(parsed: ParsedDocument) -> None:
    """Citations quote ``text[start:end]``: it must be each element's text, in order."""
    end = -1
    for e in parsed.elements:
        assert parsed.text[e.char_start:e.char_end] == e.text
        assert e.char_start > end
        end = e.char_end


def words(text: str) -> list[str]:
    # pdfminer keeps ligatures (ﬁ) that pdfium spells out, and words hyphenated at a line's
    # end ("effi- ciently") that pdfium joins: compare words.
    text = re.sub(r"(\w)- (\w)", r"\1\2", unicodedata.normalize("NFKC", text))
    return [w for w in re.findall(r"\w+", text.lower()) if len(w) > 2]


@pytest.fixture(scope="module")
def filing() -> ParsedDocument:
    return parse(shared("sec10q", "docs", "2023 Q3 AAPL.pdf"))


def test_a_filing_keeps_its_pages_and_offsets(filing: ParsedDocument) -> None:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(shared("sec10q", "docs", "2023 Q3 AAPL.pdf")))
    pages = len(pdf)
    pdf.close()
    assert filing.page_count == pages == 29
    assert {e.page for e in filing.elements} == set(range(1, pages + 1))
    assert_placed(filing)
    # Each page's running footer is on that page, and only there.
    for n in (4, 12, 26):
        footer = f"Apple Inc. | Q3 2023 Form 10-Q | {n - 3}"
        assert [e.page for e in filing.elements if e.text == footer] == [n]
    assert filing.elements[0].page == 1 and "FORM 10-Q" in filing.text[:400].upper()


def test_a_filing_s_tables_stay_rows(filing: ParsedDocument) -> None:
    [income] = [e for e in filing.elements if "Total net sales | 81,797" in e.text]
    assert income.category == "Table" and income.page == 4
    rows = income.text.splitlines()
    assert "Products | $ 60,584 | $ 63,355 | $ 230,901 | $ 245,241" in rows
    assert "Total net sales | 81,797 | 82,959 | 293,787 | 304,182" in rows
    titles = [e.text for e in filing.elements if e.category == "Title"]
    assert "Item 1. Financial Statements" in titles


def test_prose_is_mended_and_categorised(tmp_path: Path) -> None:
    body = ("Background: the ofﬁce trial enrolled 1,204 patients across nine sites, and "
            "every well-documented outcome was measured twice over twelve months. ") * 4
    path = text_pdf(["Effects of a daily walk on blood pressure", body,
                     "Results: pressure fell by 4.1 mmHg in the walking arm."], tmp_path / "a.pdf")
    parsed = parse(path)
    assert_placed(parsed)
    assert [e.category for e in parsed.elements] == ["Title", "NarrativeText", "NarrativeText"]
    assert parsed.title == "Effects of a daily walk on blood pressure"
    # Lines are joined into one paragraph with single spaces; the ligature is letters.
    assert parsed.elements[1].text == " ".join(body.replace("ﬁ", "fi").split())
    assert "\r" not in parsed.text and "\x0c" not in parsed.text and "\x02" not in parsed.text


def test_line_end_hyphens_and_debris_are_cleaned() -> None:
    def line(text: str) -> pdf_text._Line:
        return pdf_text._Line((text,), 0, 100, 0, 10, 10)

    assert pdf_text._paragraph([line("an infor-"), line("mation sheet")]) == "an information sheet"
    assert pdf_text._paragraph([line("a soft infor\x02"), line("mation")]) == "a soft information"
    assert pdf_text._paragraph([line("North-"), line("West")]) == "North- West"
    assert pdf_text._clean("a\x0cb\tc\ufffe d  e\x00") == "a b c d e\x00"  # NULs stay: parse.py's guard
    assert pdf_text._clean("\ufb03rm") == "ffirm"


def test_a_page_whose_characters_lack_positions_is_partitioned_as_plain_text() -> None:
    page = pdf_text._Page(3, 612, 792, (), "Annual Leave\r\nEvery employee is given 28 days of "
                          "paid leave per year.\x0c\r\n")
    elements = pdf_text._page_elements(page)
    assert [(e.category, e.text, e.metadata.page_number) for e in elements] == [
        ("Title", "Annual Leave", 3),
        ("NarrativeText", "Every employee is given 28 days of paid leave per year.", 3)]


@pytest.mark.parametrize("name", ["layout-parser-paper-with-table.pdf", "list-item-example.pdf",
                                  "fake-memo.pdf", "multi-column-2p.pdf", "korean-text-with-tables.pdf"])
def test_both_ways_read_the_same_words(name: str) -> None:
    path = shared(*PARSING, name)
    fast, slow = parse(path, "pdfium"), parse(path, "pdfminer")
    assert_placed(fast)
    assert fast.page_count == slow.page_count
    for n in range(1, (slow.page_count or 0) + 1):
        theirs = words(" ".join(e.text for e in slow.elements if e.page == n))
        ours = set(words(" ".join(e.text for e in fast.elements if e.page == n)))
        kept = sum(1 for w in theirs if w in ours)
        assert kept >= 0.97 * len(theirs), (n, sorted(set(theirs) - ours)[:20])


def test_list_items_keep_their_category() -> None:
    parsed = parse(shared(*PARSING, "list-item-example.pdf"))
    items = [e.text for e in parsed.elements if e.category == "ListItem"]
    assert "What are product types?" in items
    assert "What challenges may arise in development?" in items


def test_the_setting_chooses_the_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = text_pdf(["Quarterly report", "Revenue grew by nine percent in the north."],
                    tmp_path / "r.pdf")
    calls: list[Path] = []
    real = pdf_text.pdf_elements

    def spy(p: Path) -> object:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(pdf_text, "pdf_elements", spy)
    assert "north" in parse(path, "pdfminer").text and calls == []
    assert "north" in parse(path, "pdfium").text and calls == [path]
    monkeypatch.setenv("ENCLAVE_INGEST__PDF_TEXT", "pdfium")
    assert Settings().ingest.pdf_text == "pdfium"
    monkeypatch.setenv("ENCLAVE_INGEST__PDF_TEXT", "pdfminer")
    assert Settings().ingest.pdf_text == "pdfminer"
    # parse_file without the argument reads the way IngestSettings defaults to.
    calls.clear()
    parse_file(path, ocr=NO_OCR, max_bytes=50_000_000, max_pages=1000)
    assert bool(calls) == (IngestSettings().pdf_text == "pdfium")


def test_bad_pdfs_fail_with_their_reasons(tmp_path: Path) -> None:
    with pytest.raises(EncryptedDocument):
        parse(shared(*PARSING, "password.pdf"))
    # Past parse.py's guard (pypdf), pdfium's own refusal says the same.
    with pytest.raises(EncryptedDocument, match="password"):
        pdf_text.pdf_elements(shared(*PARSING, "password.pdf"))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage\n")
    with pytest.raises(CorruptDocument):
        parse(tmp_path / "broken.pdf")
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(EmptyDocument, match="0 bytes"):
        parse(tmp_path / "empty.pdf")
    blank = ocr_files.pdf(tmp_path / "blank.pdf", [([], None)])
    with pytest.raises(EmptyDocument, match="no text layer"):
        parse(blank)
    cut = ocr_files.truncated(text_pdf(["Title", "Some text. " * 400], tmp_path / "cut.pdf"), 0.3)
    try:
        parsed = parse(cut)
    except (CorruptDocument, EmptyDocument):
        pass  # what is left may hold no page
    else:
        assert_placed(parsed)


def test_pages_without_text_still_go_to_ocr(tmp_path: Path) -> None:
    text_page = ["The text layer of page one names the Oslo office and its budget of "
                 "four hundred thousand euros for the coming year."]
    scan = text_image(["Scanned page two: the Porto office lease"], size_in=(8.5, 11))
    path = ocr_files.pdf(tmp_path / "mixed.pdf", [(text_page, None), ([], scan)])
    parsed = parse(path, ocr=OcrSettings(workers=1))
    assert [p.page for p in parsed.ocr_pages] == [2]
    page_one = " ".join(e.text for e in parsed.elements if e.page == 1)
    page_two = " ".join(e.text for e in parsed.elements if e.page == 2)
    assert "Oslo office" in page_one and not any(e.ocr for e in parsed.elements if e.page == 1)
    assert "porto office lease" in " ".join(words(page_two))
    assert_placed(parsed)


def test_threads_parse_alike() -> None:
    path = shared(*PARSING, "layout-parser-paper-with-table.pdf")
    alone = parse(path).text
    results: list[str] = []

    def work() -> None:
        for _ in range(3):
            results.append(parse(path).text)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [alone] * 12


def test_a_wedged_pdfium_hands_the_file_to_pdfminer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    path = text_pdf(["Quarterly report", "Revenue grew by nine percent in the north."],
                    tmp_path / "r.pdf")
    monkeypatch.setattr(pdf_text, "_LOCK_WAIT_S", 0.1)
    with pdf_text.PDFIUM_LOCK:  # another thread's pdfium call that never returns
        assert pdf_text.pdf_elements(path) is None
        parsed = parse(path)
    assert "Revenue grew by nine percent in the north." in parsed.text
