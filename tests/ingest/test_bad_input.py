"""The bad-input guarantee, end to end through the real CLI: every file either ingests or
fails alone with a one-line reason of a known kind, the run goes on, and it exits 3.

The corpus test reads the public parsing corpus in ../shared/data/parsing in place (about
518 files in ~30 formats: encrypted, corrupt, empty, UTF-16, images, legacy Office...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ENCLAVE = Path(sys.executable).parent / "enclave"
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "parsing"
KINDS = ("encrypted:", "corrupt:", "empty:", "unsupported type:", "too large:", "unreadable:",
         "unsafe:")

# Files whose outcome was checked by hand, relative to CORPUS: the kind of reason they fail with.
EXPECTED_KIND = {
    "unstructured/docs/pdf/password.pdf": "encrypted:",
    "unstructured/docs/password_protected.xlsx": "encrypted:",
    "unstructured/docs/eml/fake-encrypted.eml": "encrypted:",  # PGP/MIME
    "unstructured/docs/fake-encrypted.msg": "encrypted:",
    "unstructured/docs/empty.txt": "empty:",  # 0 bytes
    "unstructured/docs/fake-text-all-whitespace.txt": "empty:",
    "unstructured/docs/empty.xlsx": "empty:",
    # Read by OCR and found to hold no text: a photo of a flower, three coloured triangles.
    "unstructured/docs/img/example.jpg": "empty:",
    "unstructured/docs/img/bmp_24.bmp": "empty:",
    "docling/docx/sources/Strict.docx": "unsupported type:",  # Strict Open XML
    "unstructured/docs/CantinaBand3.wav": "unsupported type:",
}
# Files that must ingest although they are awkward: odd encodings, ragged or one-column
# CSV, an email whose MP3 attachment cannot be read, PDFs pdfminer returns nothing for.
EXPECTED_INGESTED = (
    "unstructured/docs/fake-text-utf-16-be.txt",
    "unstructured/docs/fake-text-utf-32.txt",
    "unstructured/docs/stanley-cups-utf-16.csv",
    "unstructured/docs/example-steelJIS-datasheet-utf-16.html",
    "unstructured/docs/fake-html-cp1252.html",
    "unstructured/docs/eml/fake-email-utf-16-le.eml",
    "unstructured/docs/eml/mime-attach-mp3.eml",
    "docling/csv/sources/csv-too-many-columns.csv",
    "docling/csv/sources/csv-single-column.csv",
    "unstructured/docs/pdf/copy-protected.pdf",  # encrypted, but with an empty user password
    "unstructured/docs/pdf/failure-after-repair.pdf",
    "unstructured/docs/fake-power-point-malformed.pptx",
    # Read by OCR (ingest/scans.py): a scanned PDF (no text layer), images, a HEIC photo, a
    # two-page TIFF, and Chinese text read with English data (ingested; low confidence).
    "unstructured/docs/pdf/loremipsum-flat.pdf",
    "unstructured/docs/img/DA-1p.png",
    "unstructured/docs/img/DA-1p.heic",
    "unstructured/docs/img/layout-parser-paper-combined.tiff",
    "unstructured/docs/img/chi_sim_image.jpeg",
    # Converted by LibreOffice (ingest/convert.py), or read by xlrd (.xls).
    "unstructured/docs/fake.doc",
    "docling/doc/sources/legacy_sample.doc",
    "unstructured/docs/fake-power-point.ppt",
    "docling/ppt/sources/legacy_sample.ppt",
    "docling/xls/sources/legacy_sample.xls",
    "docling/odf/sources/odf_presentation_01.odp",
    "docling/odf/sources/odf_table_with_title_01.ods",
    # An archive is no document: each member is one, named <archive>!/<member path>.
    "unstructured/docs/simple.zip!/ideas-page.html",
    "unstructured/docs/simple.zip!/stanley-cups.csv",
    # JSON, NDJSON and YAML as key paths and values (ingest/structured.py).
    "unstructured/docs/simple.json",
    "unstructured/docs/simple.ndjson",
    "unstructured/docs/simple.yaml",
)
# Measured before issue 19: 447 of 518 files ingested (71 failed: 56 unsupported type,
# 11 empty, 4 encrypted), in about 9 minutes on 2 cores. With OCR, LibreOffice, archives and
# JSON/YAML (issue 19): 499 of 519 sources (simple.zip is now its two members) ingest; 20 fail
# (10 empty, 6 unsupported type, 4 encrypted). A little slack for parser and OCR upgrades; a
# real drop is a regression.
MIN_INGESTED = 485


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    env["ENCLAVE_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def _enclave(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENCLAVE), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ingest(env: dict[str, str], path: Path, timeout: float) -> tuple[int, dict[str, Any]]:
    proc = _enclave(env, "ingest", str(path), "--json", timeout=timeout)
    assert proc.stdout.strip(), f"no JSON on stdout; stderr:\n{proc.stderr[-4000:]}"
    return proc.returncode, json.loads(proc.stdout)


def _status(env: dict[str, str]) -> dict[str, Any]:
    proc = _enclave(env, "status", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _check_report(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Checks that hold for any run; returns the files by source."""
    summary, files = report["summary"], report["files"]
    assert summary["files"] == len(files)
    assert summary["files"] == (
        summary["ingested"] + summary["unchanged"] + summary["updated"] + summary["failed"]
    )
    for f in files:
        if f["status"] == "failed":
            reason = f["reason"]
            assert reason and reason.strip(), f"{f['source']} failed with no reason"
            assert "\n" not in reason, f"{f['source']}: reason is not one line: {reason!r}"
            assert reason.startswith(KINDS), f"{f['source']}: unknown kind of reason {reason!r}"
            assert f["chunks"] == 0
        else:
            assert f["reason"] is None
            assert f["chunks"] > 0, f"{f['source']} ingested with 0 chunks"
    return {f["source"]: f for f in files}


def _check_agreement(env: dict[str, str], report: dict[str, Any]) -> None:
    """The registry and the store agree: no failed file left chunks behind."""
    status = _status(env)
    assert status["disagreements"] == []
    assert status["stored_chunks"] == status["chunks"]
    ingested = [f for f in report["files"] if f["status"] == "ingested"]
    assert status["chunks"] == sum(f["chunks"] for f in ingested)
    assert status["documents"] == len(ingested)
    assert status["failed"] == report["summary"]["failed"]


@pytest.mark.slow
# The run took 9 minutes on 2 idle cores and 22 with other work beside it (a 1225-page book
# alone embeds 5,600 chunks); an hour leaves room for a slower machine, not for a hang.
@pytest.mark.timeout(3600)
def test_public_corpus_every_file_ingests_or_fails_alone(tmp_path: Path) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is not on this machine (../shared exists only on our machines)")
    env = _env(tmp_path / "data")

    code, report = _ingest(env, CORPUS, timeout=3500)

    assert code == 3, "some files of the corpus fail, so the run must exit 3"
    by_source = _check_report(report)
    for rel, kind in EXPECTED_KIND.items():
        f = by_source[str(CORPUS / rel)]
        assert f["status"] == "failed" and f["reason"].startswith(kind), (rel, f)
    for rel in EXPECTED_INGESTED:
        f = by_source[str(CORPUS / rel)]
        assert f["status"] == "ingested", (rel, f)
    assert report["summary"]["ingested"] >= MIN_INGESTED
    _check_agreement(env, report)


def test_awkward_corpus_files_read_right() -> None:
    """Ingesting is not enough: these once came out as NUL-laden garbage, split on a letter,
    or empty."""
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is not on this machine (../shared exists only on our machines)")
    from ingest.parse import parse_file

    def text(rel: str) -> str:
        return parse_file(CORPUS / rel, max_bytes=50_000_000, max_pages=1000).text

    for name in ("fake-email-utf-16-be.eml", "fake-email-utf-16-le.eml"):
        email = text(f"unstructured/docs/eml/{name}")
        assert "Roses are red" in email and "\x00" not in email
    assert "Maple Leafs | TOR | 13" in text("unstructured/docs/stanley-cups-utf-16.csv")
    assert "Hospitality/Travel" in text("docling/csv/sources/csv-single-column.csv")
    assert "a | b | c | d | e" in text("docling/csv/sources/csv-too-many-columns.csv")
    assert "MP3 attachment" in text("unstructured/docs/eml/mime-attach-mp3.eml")
    assert "Breast Cancer" in text("unstructured/docs/pdf/failure-after-repair.pdf")


def test_bad_files_fail_alone_good_file_ingests(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Quarterly revenue grew by twelve percent in the north region.\n")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "big.txt").write_text("a line of plain text that is long enough\n" * 100)  # ~4 KB
    (docs / "loop_a.txt").symlink_to(docs / "loop_b.txt")
    (docs / "loop_b.txt").symlink_to(docs / "loop_a.txt")
    (docs / "dangling.txt").symlink_to(docs / "missing.txt")
    (docs / "broken.docx").write_bytes(b"this is not a zip archive")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage\n")
    (docs / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64))
    (docs / "bad.json").write_text('{"unterminated": ')
    with zipfile.ZipFile(docs / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("zeros.txt", bytes(50 * 1024 * 1024))  # 50 MB in 50 kB
    # 0.001 MB is 1048 bytes: big.txt is over it, good.txt is not.
    env = _env(tmp_path / "data", ENCLAVE_INGEST__MAX_FILE_MB="0.001")

    code, report = _ingest(env, docs, timeout=600)

    assert code == 3
    by_name = {Path(f["source"]).name: f for f in _check_report(report).values()}
    assert by_name["good.txt"]["status"] == "ingested"
    expected = {
        "empty.txt": "empty:",
        "big.txt": "too large:",
        "loop_a.txt": "unreadable: symlink loop",
        "loop_b.txt": "unreadable: symlink loop",
        "dangling.txt": "unreadable: dangling symlink",
        "broken.docx": "corrupt:",
        "broken.pdf": "corrupt:",
        "old.doc": "corrupt: LibreOffice could not read this .doc file",
        "bad.json": "corrupt: invalid JSON at line 1",
        "bomb.zip": "too large:",
    }
    for name, kind in expected.items():
        assert by_name[name]["status"] == "failed", by_name[name]
        assert by_name[name]["reason"].startswith(kind), by_name[name]
    assert set(by_name) == {"good.txt", *expected}
    _check_agreement(env, report)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads a chmod 000 file anyway, so it cannot be made unreadable here",
)
def test_unreadable_file_fails_alone(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("The north region grew by twelve percent.\n")
    locked = docs / "locked.txt"
    locked.write_text("nobody may read this\n")
    locked.chmod(0)
    try:
        code, report = _ingest(_env(tmp_path / "data"), docs, timeout=600)
    finally:
        locked.chmod(0o600)

    assert code == 3
    by_name = {Path(f["source"]).name: f for f in _check_report(report).values()}
    assert by_name["good.txt"]["status"] == "ingested"
    assert by_name["locked.txt"]["reason"].startswith("unreadable:"), by_name["locked.txt"]
