"""``enclave bench ocr``: OCR quality and speed on scans of known text, through the real
parse path; and retrieval over OCR'd abstracts against the same abstracts as text.

The corpus is generated: SciFact abstracts (public, in ../shared/data) rendered to page
images (eval/scanned.py) under three conditions: 300 dpi clean, 200 dpi with noise and a
2-degree skew, and 300 dpi as JPEG quality 60; wrapped as image-only PDFs and parsed by
:func:`ingest.parse.parse_file` with the OCR settings in force. The character error rate
is the edit distance between what OCR read and what the page shows (whitespace collapsed)
over the page's characters, summed over all pages.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.errors import DocumentError, InputError
from core.settings import Settings
from eval.retrieval import Benchmark, eval_retrieval, load
from eval.scanned import CONDITIONS, Condition, scanned_pdfs


def abstracts(corpus: Path, count: int, seed: int = 7) -> list[str]:
    """``count`` SciFact abstracts (title, then text), a fixed sample."""
    bench = _corpus(corpus)
    ids = sorted(bench)
    random.Random(seed).shuffle(ids)
    return [f"{bench[i][0]}\n{bench[i][1]}".strip() for i in ids[:count]]


def bench_ocr(
    corpus: Path,
    pages: int = 30,
    conditions: Sequence[Condition] = CONDITIONS,
    settings: Settings | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """CER and pages/s per condition, over about ``pages`` pages each."""
    from rapidfuzz.distance import Levenshtein

    from ingest.parse import parse_file

    settings = settings or Settings()
    # An abstract fills about one page; a few more than needed, then cut to ``pages``.
    texts = abstracts(corpus, pages)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="enclave-bench-ocr-") as tmp:
        # The first PDF parsed loads the PDF stack (pdfminer, unstructured: seconds); that is
        # start-up, not OCR, so a one-line scan is parsed first, untimed.
        [(warm, _)] = scanned_pdfs(["Warm up."], "clean-300", Path(tmp) / "warm-up")
        parse_file(warm, max_bytes=2**31, max_pages=10, ocr=settings.ocr)
        for condition in conditions:
            errors = characters = done = failed = 0
            confidences: list[float] = []
            per_page: list[float] = []
            seconds = 0.0  # parsing only: generating the scans is not OCR's time
            for path, refs in scanned_pdfs(texts, condition, Path(tmp) / condition,
                                           pages_per_file=min(10, pages)):
                if done + failed >= pages:
                    break
                started = time.perf_counter()
                try:
                    parsed = parse_file(path, max_bytes=2**31, max_pages=10_000,
                                        ocr=settings.ocr)
                except DocumentError:
                    seconds += time.perf_counter() - started
                    failed += len(refs)
                    characters += sum(len(_norm(r.text)) for r in refs)
                    errors += sum(len(_norm(r.text)) for r in refs)
                    continue
                seconds += time.perf_counter() - started
                read = {n: " ".join(e.text for e in parsed.elements if e.page == n)
                        for n in range(1, len(refs) + 1)}
                for n, ref in enumerate(refs, 1):
                    truth, seen = _norm(ref.text), _norm(read.get(n, ""))
                    distance = Levenshtein.distance(seen, truth)
                    errors += distance
                    characters += len(truth)
                    per_page.append(distance / max(1, len(truth)))
                confidences += [p.confidence for p in parsed.ocr_pages if p.confidence is not None]
                done += len(refs)
                if on_progress:
                    on_progress(condition, done + failed, pages)
            count = done + failed
            runs[condition] = {
                "pages": count,
                "failed_pages": failed,
                "cer": round(errors / characters, 4) if characters else None,
                # One hard page (a table of contents full of dot leaders) can dominate the
                # mean; the median page and the worst say how typical that is.
                "cer_median_page": round(statistics.median(per_page), 4) if per_page else None,
                "cer_worst_page": round(max(per_page), 4) if per_page else None,
                "pages_per_s": round(count / seconds, 2) if seconds else None,
                "seconds": round(seconds, 1),
                "mean_confidence": round(sum(confidences) / len(confidences), 1)
                if confidences else None,
            }
    return {"conditions": runs, "settings": {
        "languages": settings.ocr.languages, "dpi": settings.ocr.dpi,
        "workers": settings.ocr.workers, "page_timeout_s": settings.ocr.page_timeout_s}}


def bench_ocr_retrieval(
    corpus: Path, queries: Path, qrels: Path, documents: int = 300,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """nDCG@10 (and the rest of `enclave eval retrieval`'s metrics, hybrid search) over
    ``documents`` SciFact abstracts ingested as image-only PDFs (300 dpi clean), and over
    the same abstracts ingested as text: each in a fresh data dir, the same queries."""
    bench = subset(load(corpus, queries, qrels), documents)
    result: dict[str, Any] = {"documents": len(bench.corpus), "queries": len(bench.queries)}
    writers: dict[str, Callable[[Benchmark, Path], dict[str, str]] | None] = {
        "text": None, "ocr": _write_scans}
    for name, write in writers.items():
        started = time.perf_counter()
        run = eval_retrieval(bench, modes=("hybrid",), on_progress=on_progress, write=write)
        result[name] = {**run["modes"]["hybrid"], "chunks": run["chunks"],
                        "ingest_s": run["ingest"]["seconds"],
                        "parse_s": run["ingest"]["parse_s"],
                        "seconds": round(time.perf_counter() - started, 1)}
    return result


def subset(bench: Benchmark, documents: int) -> Benchmark:
    """The judged queries whose relevant abstracts fit in half of ``documents``, those
    abstracts, and other abstracts (distractors) up to ``documents``."""
    chosen: dict[str, None] = {}
    kept: list[str] = []
    for qid, relevant in bench.qrels.items():
        ids = [d for d in relevant if d in bench.corpus]
        if not ids or len(chosen) + len(ids) > documents // 2:
            continue
        chosen.update(dict.fromkeys(ids))
        kept.append(qid)
    if not kept:
        raise InputError(f"{documents} documents hold no query's relevant abstracts")
    others = [d for d in sorted(bench.corpus) if d not in chosen]
    random.Random(11).shuffle(others)
    for doc_id in others[: documents - len(chosen)]:
        chosen[doc_id] = None
    return Benchmark({d: bench.corpus[d] for d in chosen}, {q: bench.queries[q] for q in kept},
                     {q: bench.qrels[q] for q in kept})


def _write_scans(bench: Benchmark, folder: Path) -> dict[str, str]:
    """Each abstract as an image-only PDF of its own (300 dpi, clean); source -> doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {}
    for doc_id, (title, text) in bench.corpus.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)
        [(made, _)] = scanned_pdfs([f"{title}\n{text}".strip()], "clean-300", folder / safe,
                                   pages_per_file=10_000)
        path = made.rename(folder / f"{safe}.pdf")
        made.parent.rmdir()
        sources[str(path.resolve())] = doc_id
    return sources


def _norm(text: str) -> str:
    return " ".join(text.split())


def _corpus(path: Path) -> dict[str, tuple[str, str]]:
    import json

    docs: dict[str, tuple[str, str]] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    d = json.loads(line)
                    docs[str(d["_id"])] = (str(d.get("title") or ""), str(d.get("text") or ""))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a BEIR corpus: {exc}") from exc
    return docs
