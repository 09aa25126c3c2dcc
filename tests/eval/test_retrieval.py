"""`enclave eval retrieval` end to end on a slice of SciFact, read in place from ../shared.

The slice: the documents judged relevant to the first 12 train claims, plus 60 others as
distractors, so the real pipeline (parse, chunk, embed, store, search) runs in seconds.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.errors import InputError
from eval.retrieval import eval_retrieval, load
from tests.conftest import ENCLAVE, shared


@pytest.fixture(scope="module")
def beir_slice(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    scifact = shared("scifact")
    folder = tmp_path_factory.mktemp("beir")
    queries = [json.loads(line) for line in (scifact / "queries.jsonl").open()][:12]
    qrels = (scifact / "qrels" / "train.tsv").read_text().splitlines()
    wanted = {q["_id"] for q in queries}
    kept = [r for r in qrels[1:] if r.split("\t")[0] in wanted]
    relevant = {r.split("\t")[1] for r in kept}
    docs, others = [], 0
    for line in (scifact / "corpus.jsonl").open():
        doc = json.loads(line)
        if doc["_id"] in relevant or others < 60:
            others += doc["_id"] not in relevant
            docs.append(line.rstrip("\n"))
    (folder / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels.tsv").write_text("\n".join([qrels[0], *kept]) + "\n")
    return {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl",
            "qrels": folder / "qrels.tsv"}


def test_every_mode_finds_the_judged_documents(beir_slice: dict[str, Path]) -> None:
    bench = load(beir_slice["corpus"], beir_slice["queries"], beir_slice["qrels"])
    assert len(bench.queries) == 12 and len(bench.corpus) > 60
    result = eval_retrieval(bench, overrides={"qdrant": {"hold_open": True}})
    assert result["chunks"] >= result["documents"]
    for mode, m in result["modes"].items():
        # Among ~70 documents the dense side ranks every one; sparse only those sharing a term.
        assert m["recall@100"] == 1.0 or (mode == "sparse" and m["recall@100"] >= 0.8), (mode, m)
        assert 0.5 < m["ndcg@10"] <= 1.0 and 0.5 < m["mrr@10"] <= 1.0, (mode, m)
        assert m["queries"] == 12 and m["query_p50_ms"] > 0
    assert result["ingest"]["docs_per_s"] > 0


def test_the_cli_prints_and_writes_the_figures(beir_slice: dict[str, Path], tmp_path: Path,
                                                cli_env: dict[str, str]) -> None:
    out = tmp_path / "figures.json"
    args = [str(ENCLAVE), "eval", "retrieval", "--corpus", str(beir_slice["corpus"]),
            "--queries", str(beir_slice["queries"]), "--qrels", str(beir_slice["qrels"]),
            "--limit", "5", "--json", str(out), "--keep", str(tmp_path / "kept")]
    run = subprocess.run([*args, "--mode", "sparse"], env=cli_env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "5 queries" in run.stdout and run.stdout.count("nDCG@10") == 1
    first = json.loads(out.read_text())
    assert list(first["modes"]) == ["sparse"] and first["reused"] == 0
    # Kept: the second run finds every document unchanged and compares both fusions.
    again = subprocess.run([*args, "--mode", "hybrid-rrf", "--mode", "hybrid-dbsf"],
                           env=cli_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    second = json.loads(out.read_text())
    assert second["reused"] == second["documents"] and second["chunks"] == first["chunks"]
    assert list(second["modes"]) == ["hybrid-rrf", "hybrid-dbsf"]
    assert all(0 < m["ndcg@10"] <= 1 for m in second["modes"].values())


def test_bad_benchmark_files_are_usage_errors(tmp_path: Path, beir_slice: dict[str, Path]) -> None:
    bad = tmp_path / "qrels.tsv"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match="not a BEIR qrels file"):
        load(beir_slice["corpus"], beir_slice["queries"], bad)
    with pytest.raises(InputError, match="unknown mode"):
        eval_retrieval(load(beir_slice["corpus"], beir_slice["queries"], beir_slice["qrels"]),
                       ["fuzzy"])


def test_the_report_has_every_method_and_both_anchors(beir_slice: dict[str, Path], tmp_path: Path,
                                                      cli_env: dict[str, str]) -> None:
    report = tmp_path / "README.md"
    run = subprocess.run(
        [str(ENCLAVE), "eval", "report", "--corpus", str(beir_slice["corpus"]),
         "--queries", str(beir_slice["queries"]), "--qrels", str(beir_slice["qrels"]),
         "--limit", "6", "--output", str(report), "--json", str(tmp_path / "r.json")],
        env=cli_env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    text = report.read_text()
    for row in ("BM25, `bm25s` package (anchor)", "cosine, same model", "enclave sparse only",
                "enclave dense only", "enclave hybrid"):
        assert f"| {row}" in text, row
    figures = json.loads((tmp_path / "r.json").read_text())
    assert set(figures["anchors"]) == {"bm25s", "cosine"}
    # The anchors rank the whole small corpus too: each finds what is judged relevant.
    assert figures["anchors"]["bm25s"]["recall@100"] >= 0.8
    assert figures["anchors"]["cosine"]["recall@100"] == 1.0
    assert "Goal: hybrid nDCG@10 of at least 0.74" in text
    # The fusions other than the configured one (dbsf) are compared on the same ingest.
    assert set(figures["modes"]) == {"sparse", "dense", "hybrid", "hybrid-rrf", "hybrid-minmax"}
    assert "| enclave hybrid, `rrf` fusion instead" in text
