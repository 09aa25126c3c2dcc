"""The documents view's one filter judged outside the database: low-confidence OCR."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.registry import Registry
from core.types import PageOcr
from serve.http.documents_view import DocumentFilters, page


def test_low_confidence_lists_the_documents_ocr_read_badly_and_pages_them(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    read = {"clean.pdf": 95.0, "smudged.pdf": 41.0, "faded.png": 55.0, "typed.md": None}
    for name, confidence in read.items():
        pages = () if confidence is None else (PageOcr(page=1, confidence=confidence, words=9),)
        registry.begin_version(name, f"/srv/{name}", "v1", name, 1, ocr_pages=pages)
        registry.activate(name, "v1", 1, ["hr"], name)
    c: Any = SimpleNamespace(settings=SimpleNamespace(ocr=SimpleNamespace(min_confidence=60.0)),
                             registry=registry,
                             store=SimpleNamespace(session=nullcontext, doc_counts=dict))
    low = page(c, DocumentFilters(status="low_confidence"), limit=50, offset=0)
    assert {d.doc_id for d in low.documents} == {"smudged.pdf", "faded.png"} and low.total == 2
    first = page(c, DocumentFilters(status="low_confidence"), limit=1, offset=0)
    second = page(c, DocumentFilters(status="low_confidence"), limit=1, offset=1)
    assert first.total == second.total == 2
    assert {first.documents[0].doc_id, second.documents[0].doc_id} == {"smudged.pdf", "faded.png"}
    narrowed = page(c, DocumentFilters(status="low_confidence", type="png"), limit=50, offset=0)
    assert [d.doc_id for d in narrowed.documents] == ["faded.png"]
    registry.close()
