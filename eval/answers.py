"""``enclave eval answers``: grounded answering measured on ClapNQ through the real pipeline.

Every passage of both files (answerable and unanswerable questions) is written as one
Markdown file and ingested into a fresh collection; every question is then asked through
the same :class:`serve.answering.service.AnswerService` the CLI and the API use. Printed: answerable
questions answered %, citation precision (citations of answered answerable questions that
point at the question's gold passage / all their citations), unanswerable questions
refused %, supported-sentence %, and seconds per answer (median, p95).

``relevance_sweep`` reports, for the relevance gate alone, the refusal rates over a range
of thresholds: how ``answer.min_relevance`` was calibrated.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.container import Container
from core.settings import Settings
from core.types import Answer, Principal

FILES = {"answerable": "answerable.jsonl", "unanswerable": "unanswerable.jsonl"}
ASKER = Principal("eval")


@dataclass(frozen=True, slots=True)
class Question:
    qid: str
    text: str
    answerable: bool
    gold: frozenset[str]  # sources holding the question's passage (identical copies too)


def load(clapnq: Path) -> tuple[list[Question], dict[str, str]]:
    """Questions, and the corpus as {file name: Markdown text}."""
    corpus: dict[str, str] = {}
    by_text: dict[str, set[str]] = {}
    rows: list[tuple[str, str, bool, str]] = []
    for kind, name in FILES.items():
        path = clapnq / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: --clapnq must name the ClapNQ folder")
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            passage = row["passages"][0]
            file = f"{row['id']}.md"
            corpus[file] = f"# {passage['title']}\n\n{passage['text'].strip()}\n"
            digest = hashlib.sha256(passage["text"].encode()).hexdigest()
            by_text.setdefault(digest, set()).add(file)
            rows.append((row["id"], row["input"], kind == "answerable", digest))
    questions = [Question(q, text, a, frozenset(by_text[d])) for q, text, a, d in rows]
    return questions, corpus


@contextmanager
def clapnq_container(
    clapnq: Path, settings: Settings | None = None, **build: Any
) -> Iterator[tuple[Container, list[Question], float]]:
    """A container over a fresh collection holding the pooled ClapNQ passages."""
    from ingest.parse import quiet_parsers

    quiet_parsers()
    questions, corpus = load(clapnq)
    with tempfile.TemporaryDirectory(prefix="enclave-eval-") as tmp:
        folder = Path(tmp) / "corpus"
        folder.mkdir()
        for name, text in corpus.items():
            (folder / name).write_text(text, encoding="utf-8")
        base = settings or Settings()
        container = Container(base.model_copy(update={"data_dir": Path(tmp) / "data"}), **build)
        try:
            started = time.perf_counter()
            report = container.ingestor.ingest([folder])
            ingest_s = time.perf_counter() - started
            if report.failed:
                raise RuntimeError(f"{len(report.failed)} ClapNQ passages failed to ingest")
            yield container, questions, ingest_s
        finally:
            container.close()


def eval_answers(
    clapnq: Path,
    settings: Settings | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **build: Any,
) -> dict[str, Any]:
    with clapnq_container(clapnq, settings, **build) as (container, questions, ingest_s):
        asked = _balanced(questions, limit)
        rows = []
        for i, q in enumerate(asked, 1):
            started = time.perf_counter()
            # Through the same service as every other channel: checked, recorded.
            service = container.answer_service
            answer = service.answer(ASKER, service.prepare(ASKER, q.text, channel="eval")).answer
            rows.append((q, answer, time.perf_counter() - started))
            if progress:
                progress(i, len(asked))
        figures = score(rows)
        figures["ingest_s"] = round(ingest_s, 1)
        figures["mode"] = container.settings.answer.mode
        models = [a.model for _, a, _ in rows if a.model != "none"]
        figures["model"] = max(set(models), key=models.count) if models else "none"
        figures["llm_mode"] = container.settings.llm.mode
        figures["settings"] = {
            "min_relevance": container.settings.answer.min_relevance,
            "min_support": container.settings.answer.min_support,
            "unsupported": container.settings.answer.unsupported,
            "passages": container.settings.answer.passages,
        }
        figures["questions"] = [_row_json(q, a, s) for q, a, s in rows]
        return figures


def score(rows: list[tuple[Question, Answer, float]]) -> dict[str, Any]:
    answerable = [(q, a) for q, a, _ in rows if q.answerable]
    unanswerable = [(q, a) for q, a, _ in rows if not q.answerable]
    answered = [(q, a) for q, a in answerable if not a.refused]
    citations = [(q, c) for q, a in answered for c in a.citations]
    precise = sum(1 for q, c in citations if c.source.rsplit("/", 1)[-1] in q.gold)
    checks = [c for _, a, _ in rows for c in a.checks]
    seconds = sorted(s for _, _, s in rows)
    outcomes = {
        f"{kind}_{outcome}_pct": _pct(sum(a.outcome == outcome for _, a in group), len(group))
        for kind, group in (("answerable", answerable), ("unanswerable", unanswerable))
        for outcome in ("answered", "not_found", "unverified")
    }
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        **outcomes,
        "answered_pct": _pct(len(answered), len(answerable)),
        "citation_precision": round(precise / len(citations), 3) if citations else None,
        "unanswerable_refused_pct": _pct(sum(a.refused for _, a in unanswerable), len(unanswerable)),
        "supported_sentence_pct": _pct(sum(c.supported for c in checks), len(checks)),
        "sentences_checked": len(checks),
        "seconds_p50": round(statistics.median(seconds), 3) if seconds else None,
        "seconds_p95": round(float(np.percentile(seconds, 95)), 3) if seconds else None,
    }


def relevance_sweep(clapnq: Path, settings: Settings | None = None, **build: Any) -> dict[str, Any]:
    """Refusal rates of the relevance gate alone at thresholds 0.30 .. 0.80."""
    with clapnq_container(clapnq, settings, **build) as (container, questions, _):
        answerer = container.answerer
        scored = []
        for q in questions:
            hits = answerer.searcher.search(q.text, ASKER, k=answerer.settings.passages)
            index = answerer.verifier.index([h.chunk for h in hits])
            best = answerer.verifier.best(q.text, index) if hits else None
            scored.append((q, best.score if best else 0.0))
    table = []
    for step in range(30, 81, 2):
        t = step / 100
        table.append(
            {
                "min_relevance": t,
                "answerable_kept_pct": _pct(sum(s >= t for q, s in scored if q.answerable), 150),
                "unanswerable_refused_pct": _pct(sum(s < t for q, s in scored if not q.answerable), 150),
            }
        )
    return {"thresholds": table, "scores": [(q.qid, q.answerable, round(s, 4)) for q, s in scored]}


def support_sweep(clapnq: Path, embedder: Any = None) -> dict[str, Any]:
    """How the support score separates supported from unsupported sentences.

    Positives: each sentence of an answerable question's reference answer (written by an
    annotator from the gold passage) against that passage. Negatives: the same sentence
    against the most similar other passage of the pool (by embedding): close in topic,
    but not where the sentence came from.
    """
    from core.sentences import split_sentences
    from core.types import Chunk
    from retrieval.sparse import Bm25SparseEncoder
    from serve.answering.verify import Verifier

    if embedder is None:
        # The configured embedder (ENCLAVE_EMBEDDING__MODE): the calibration is its own.
        embedder = Container(Settings()).embedder
    verifier = Verifier(embedder, Bm25SparseEncoder().terms, 0.0)
    rows = [json.loads(x) for x in (clapnq / FILES["answerable"]).read_text(encoding="utf-8").splitlines()]
    chunks = [Chunk(r["id"], r["id"], "v", r["passages"][0]["text"], None, None, 0, 0) for r in rows]
    vectors = embedder.embed([c.text for c in chunks])
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -1.0)
    positive: list[float] = []
    negative: list[float] = []
    for i, row in enumerate(rows):
        answer = row["output"][0]["answer"]
        sentences = [answer[a:b] for a, b in split_sentences(answer)]
        if not sentences:
            continue
        index = verifier.index([chunks[i], chunks[int(similar[i].argmax())]])
        question = row["input"]
        for row in verifier.grid(sentences, index, question):
            positive.append(row[0].score if row[0] else 0.0)
            negative.append(row[1].score if row[1] else 0.0)
    table = []
    for step in range(30, 81, 5):
        t = step / 100
        table.append(
            {
                "min_support": t,
                "reference_supported_pct": _pct(sum(x >= t for x in positive), len(positive)),
                "wrong_passage_supported_pct": _pct(sum(x >= t for x in negative), len(negative)),
            }
        )
    return {"thresholds": table, "positives": len(positive), "negatives": len(negative)}


def _balanced(questions: list[Question], limit: int | None) -> list[Question]:
    """The first ``limit`` questions, half answerable and half not."""
    if limit is None:
        return questions
    yes = [q for q in questions if q.answerable][: (limit + 1) // 2]
    no = [q for q in questions if not q.answerable][: limit // 2]
    return yes + no


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _row_json(q: Question, a: Answer, seconds: float) -> dict[str, Any]:
    return {
        "id": q.qid,
        "answerable": q.answerable,
        "question": q.text,
        "outcome": a.outcome,
        "refused": a.refused,
        "refusal_reason": a.refusal_reason or None,
        "answer": a.text,
        "cited_gold": [c.source.rsplit("/", 1)[-1] in q.gold for c in a.citations],
        "supported": [c.supported for c in a.checks],
        "seconds": round(seconds, 3),
    }
