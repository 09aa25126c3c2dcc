"""Registry.find, the admin console's document listing, filtered and paged by the database:
on SQLite and PostgreSQL it must list exactly what reading every document and judging each
one in Python lists, hostile search text included."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

import pytest
from sqlalchemy import update

from core.db import Database
from core.registry import DocumentInfo, DocumentRow, Registry
from core.types import PageOcr

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

# source, groups, title, OCR'd, failed afterwards
DOCUMENTS: list[tuple[str, tuple[str, ...], str, bool, bool]] = [
    ("/srv/share/hr/Handbook.PDF", ("hr",), "Employee handbook", True, False),
    ("/srv/share/hr/leave.md", ("hr", "staff"), "Leave", False, False),
    ("/srv/share/fin/100% bonus_plan.xlsx", ("finance",), "Bonus plan", False, False),
    ("/srv/share/fin/budget.xlsx", ("finance", "fin_ops"), "Budget", False, True),
    ("/srv/share/pub/Überblick.docx", (), "Überblick 2026", False, False),
    ("/srv/share/pub/archive.zip!/inner/scan.pdf", (), "Scan", True, False),
    ("/srv/share/pub/notes.pdf!/readme.txt", ("staff",), "Readme", False, False),
    ("/srv/share/pub/report.tar.gz", ("hr_x",), "Report", False, False),
    ("/srv/share/pub/dir.pdf/plain", (), "No extension", False, False),
    ("/srv/share/legal/contract.pdf", ("légal",), "Contract", True, True),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    url = (f"sqlite:///{tmp_path / 'registry.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    db = Database(url)
    reg = Registry(db)
    for n, (source, groups, title, ocr, failed) in enumerate(DOCUMENTS):
        doc_id = f"doc-{n:02d}"
        pages = (PageOcr(page=1, confidence=40.0 + 10 * n, words=100),) if ocr else ()
        reg.begin_version(doc_id, source, "v1", title, 3, ocr_pages=pages,
                          display_name=PurePath(source).name)
        reg.activate(doc_id, "v1", 4, groups, title, display_name=PurePath(source).name)
        if failed:
            reg.record_failure(doc_id, source, "v2", "corrupt: not a readable PDF")
        with db.session() as s:  # one document changed every 6 hours
            s.execute(update(DocumentRow).where(DocumentRow.doc_id == doc_id)
                      .values(updated_at=T0 + timedelta(hours=6 * n)))
    yield reg
    db.close()


def _oracle(docs: list[DocumentInfo], text: str | None = None, group: str | None = None,
            status: str | None = None, suffix: str | None = None,
            since: datetime | None = None, until: datetime | None = None) -> list[str]:
    def utc(moment: datetime) -> datetime:
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    kept = []
    for d in docs:
        if text and not any(text.lower() in field.lower()
                            for field in (d.source, d.display_name, d.title)):
            continue
        if group and group not in d.groups:
            continue
        member = d.source.rsplit("!/", 1)[-1]
        if suffix is not None and PurePath(member).suffix.lower() != f".{suffix.lower()}":
            continue
        if status == "active" and d.active_version is None:
            continue
        if status == "failed" and d.last_status != "failed":
            continue
        if status == "ocr" and not d.ocr_pages:
            continue
        if since and utc(d.updated_at) < utc(since):
            continue
        if until and utc(d.updated_at) >= utc(until):
            continue
        kept.append(d)
    kept.sort(key=lambda d: (utc(d.updated_at), d.doc_id), reverse=True)
    return [d.doc_id for d in kept]


FILTERS: list[dict[str, Any]] = [
    {},
    {"text": "HANDBOOK"}, {"text": "%"}, {"text": "_"}, {"text": "100%"}, {"text": "über"},
    {"text": "ÜBERBLICK 2026"}, {"text": "zip!/inner"}, {"text": "no such thing"},
    {"group": "hr"}, {"group": "fin"}, {"group": "fin_ops"}, {"group": "hr_x"},
    {"group": "légal"}, {"group": '"hr"'}, {"group": "%"},
    {"suffix": "pdf"}, {"suffix": "PDF"}, {"suffix": "txt"}, {"suffix": "gz"},
    {"suffix": "tar.gz"}, {"suffix": "pdf/plain"}, {"suffix": "xlsx"}, {"suffix": "%"},
    {"status": "active"}, {"status": "failed"}, {"status": "ocr"},
    {"since": T0 + timedelta(hours=12)}, {"until": T0 + timedelta(hours=12)},
    {"since": (T0 + timedelta(hours=12)).astimezone(UTC).replace(tzinfo=None)},
    {"since": T0 + timedelta(hours=6), "until": T0 + timedelta(days=2)},
    {"text": "share", "group": "finance", "suffix": "xlsx", "status": "failed"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[repr(f) for f in FILTERS])
def test_find_lists_what_judging_every_document_lists(registry: Registry,
                                                      filters: dict[str, Any]) -> None:
    expected = _oracle(registry.documents(), **filters)
    found, total = registry.find(**filters)
    assert [d.doc_id for d in found] == expected
    assert total == len(expected)


def test_pages_cover_the_listing_once_in_order(registry: Registry) -> None:
    whole, total = registry.find()
    assert total == len(DOCUMENTS) == len(whole)
    paged = list(itertools.chain.from_iterable(
        registry.find(limit=3, offset=offset)[0] for offset in range(0, total, 3)))
    assert [d.doc_id for d in paged] == [d.doc_id for d in whole]
    assert registry.find(limit=3, offset=3)[1] == total  # the total counts every match
    assert registry.find(limit=5, offset=100) == ([], total)


def test_what_find_returns_is_what_get_returns(registry: Registry) -> None:
    for d in registry.find()[0]:
        assert d == registry.get(d.doc_id)
