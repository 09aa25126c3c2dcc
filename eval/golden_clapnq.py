"""ClapNQ as a golden set: its 300 questions (150 the passages answer, 150 they do not),
with the annotators' answers as references, and its passages as a corpus to ingest.

The expected document of an answerable question is the file holding its gold passage
(and any identical copy of it in the pool); unanswerable questions expect none.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.golden import GoldenQuestion, dump_golden
from eval.answers import FILES, load


def convert(clapnq: Path, output: Path, corpus: Path) -> tuple[int, int]:
    """Write the golden file and the corpus folder; (questions, passages) written."""
    questions, passages = load(clapnq)
    references: dict[str, str] = {}
    for line in (clapnq / FILES["answerable"]).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        answers = [o.get("answer", "") for o in row.get("output", ()) if o.get("answer")]
        if answers:
            references[row["id"]] = answers[0]
    golden = [
        GoldenQuestion(qid=f"clapnq-{q.qid}", question=q.text, answerable=q.answerable,
                       documents=tuple(sorted(q.gold)) if q.answerable else (),
                       reference=references.get(q.qid) if q.answerable else None,
                       added_by="clapnq")
        for q in questions
    ]
    corpus.mkdir(parents=True, exist_ok=True)
    for name, text in passages.items():
        (corpus / name).write_text(text, encoding="utf-8")
    output.write_text(dump_golden(golden), encoding="utf-8")
    return len(golden), len(passages)
