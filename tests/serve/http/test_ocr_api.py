"""Scans through the whole service: an admin job ingests an image and a scanned PDF with the
real Tesseract, the job detail and `enclave status` list low-confidence pages, and an
answer's citations of OCR'd text carry ``ocr: true`` on every channel (HTTP, the stored
turn, the audit record, the CLI), as do the chunks in the real store."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core.audit import Filters
from tests.conftest import ENCLAVE
from tests.ingest import ocr_files
from tests.ingest.ocr_files import text_image
from tests.serve.conftest import Api

NOTICE = ["Forklift safety notice for the Lisbon warehouse.",
          "The forklift batteries are replaced every March by the maintenance crew.",
          "Drivers must wear a hard hat in the loading bay at all times."]
LEDGER = ["Porto office ledger.", "The Porto office pays its rent on the first Monday of",
          "each quarter, by bank transfer to the landlord."]
QUESTION = "When are the forklift batteries replaced?"


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    ocr_files.save(text_image(NOTICE), folder / "notice.png")
    ocr_files.pdf(folder / "ledger.pdf", [(["1"], text_image(LEDGER, size_in=(8.5, 11)))])
    (folder / "plain.md").write_text("# Canteen\n\nThe canteen opens at noon on weekdays.\n",
                                     "utf-8")
    return folder


@pytest.fixture
def api(api_factory: Callable[..., Api], scans: Path) -> Iterator[Api]:
    # Every page is read well (about 95) but under this bar: each is listed as low-confidence.
    yield api_factory(jobs={"allowed_roots": [scans]}, answer={"mode": "extractive"},
                      ocr={"min_confidence": 99.5})


def test_scans_ingest_answer_with_ocr_citations_and_list_low_confidence(
    api: Api, scans: Path, cli_env: dict[str, str]
) -> None:
    submitted = api.http.post("/v1/admin/jobs", json={"paths": [str(scans)]})
    assert submitted.status_code == 202, submitted.text
    job = api.http.get(f"/v1/admin/jobs/{submitted.json()['job_id']}").json()
    assert job["status"] == "done" and job["counts"]["done"] == 3, job
    items = {Path(i["source"]).name: i for i in job["items"]}
    for name in ("notice.png", "ledger.pdf"):
        [page] = items[name]["low_confidence_pages"]
        assert page["page"] == 1 and 60 < page["confidence"] < 99.5 and page["words"] > 10
    assert items["plain.md"]["low_confidence_pages"] == []

    # The chunks in the store say they were read by OCR; the Markdown file's do not.
    stored = {Path(str(h.chunk.source)).name: h.chunk
              for h in api.container.searcher.search("forklift batteries Porto canteen",
                                                     _reader(), 10)}
    assert stored["notice.png"].meta["ocr"] is True and stored["ledger.pdf"].meta["ocr"] is True
    assert stored["plain.md"].meta["ocr"] is False
    assert stored["ledger.pdf"].page_start == 1

    employee = api.container.users.add("ines", (), ("employee",))
    headers = {"Authorization": f"Bearer {employee}"}
    with httpx.Client(base_url=api.base, headers=headers, timeout=120) as http:
        reply = http.post("/v1/chat", json={"question": QUESTION})
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["outcome"] == "answered", answer
        cited = [c for c in answer["citations"] if c["source"] == "notice.png"]
        assert cited and all(c["ocr"] is True and c["page"] == 1 for c in cited), answer
        assert "march" in " ".join(c["quote"] for c in cited).lower()
        chunk = http.get(f"/v1/chunks/{cited[0]['chunk_id']}").json()
        assert chunk["ocr"] is True
        turns = http.get(f"/v1/conversations/{answer['conversation_id']}").json()["messages"]
        assert all(c["ocr"] is True for c in turns[-1]["answer"]["citations"])
    [record] = api.container.audit.records(Filters(kind="answer", user="ines"), 10)
    assert [c["ocr"] for c in record.body["citations"]] == [True] * len(record.body["citations"])

    env = {**cli_env, "ENCLAVE_DATA_DIR": str(api.container.settings.data_dir),
           "ENCLAVE_QDRANT__HOLD_OPEN": "false", "ENCLAVE_ANSWER__MODE": "extractive"}
    listed = _cli(env | {"ENCLAVE_OCR__MIN_CONFIDENCE": "99.5"}, "status", "--json")
    low = {Path(d["source"]).name: d["pages"] for d in listed["low_confidence"]}
    assert set(low) == {"notice.png", "ledger.pdf"} and low["notice.png"][0]["page"] == 1
    assert _cli(env, "status", "--json")["low_confidence"] == []  # read well over 60
    asked = _cli(env, "ask", QUESTION, "--json")
    assert asked["citations"] and all(c["ocr"] is True for c in asked["citations"]
                                      if c["source"].endswith("notice.png"))


def _reader():  # type: ignore[no-untyped-def]
    from core.types import Principal

    return Principal("reader")


def _cli(env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return json.loads(done.stdout)
