"""`enclave bench ocr` end to end on two pages per condition, and the retrieval subset it
builds. No timing assertions: the machine is noisy."""

from __future__ import annotations

import json
import subprocess

from eval.bench_ocr import subset
from eval.retrieval import Benchmark
from eval.scanned import paginate
from tests.conftest import ENCLAVE, shared


def test_bench_ocr_reports_cer_and_pages_per_s_per_condition(cli_env: dict[str, str]) -> None:
    corpus = shared("scifact", "corpus.jsonl")
    done = subprocess.run([str(ENCLAVE), "bench", "ocr", "--pages", "2", "--corpus", str(corpus),
                           "--json"], env=cli_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)["conditions"]
    assert list(figures) == ["clean-300", "noisy-200", "jpeg-60"]
    for name, run in figures.items():
        assert run["pages"] >= 2 and run["failed_pages"] == 0, (name, run)
        assert run["pages_per_s"] > 0 and 0 < run["mean_confidence"] <= 100
        # Known text, typeset cleanly: OCR reads nearly all of it (a failure reads as 1.0).
        assert run["cer"] < 0.1, (name, run)
    assert figures["clean-300"]["cer"] < 0.03


def test_pages_hold_the_text_exactly() -> None:
    text = "Title of the abstract\n" + " ".join(f"word{n}" for n in range(900))
    pages = paginate(text)
    assert len(pages) > 1
    assert " ".join(p.text for p in pages) == " ".join(text.split())


def test_the_retrieval_subset_keeps_whole_queries_and_fills_with_distractors() -> None:
    corpus = {str(n): (f"t{n}", f"text {n}") for n in range(40)}
    qrels = {"q1": {"1": 1, "2": 1}, "q2": {"3": 1}, "q3": {"99": 1}, "q4": {str(n): 1 for n in
                                                                           range(10, 30)}}
    bench = Benchmark(corpus, {q: q for q in qrels}, qrels)
    small = subset(bench, 10)
    assert set(small.queries) == {"q1", "q2"}  # q3's abstract is missing; q4's do not fit
    assert len(small.corpus) == 10 and {"1", "2", "3"} <= set(small.corpus)
