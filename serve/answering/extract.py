"""The passages' own sentences closest to a question, verbatim: extractive answers, and the
quotes an unverified answer shows instead of the model's words."""

from __future__ import annotations

from collections.abc import Sequence

from core.sentences import split_sentences
from serve.answering.compose import Verified
from serve.answering.verify import Match, PassageIndex, Verifier

# Headings and table captions are not answers.
MIN_ANSWER_WORDS = 5


def best_sentences(verifier: Verifier, questions: Sequence[str], index: PassageIndex,
                   count: int) -> list[Verified]:
    """The ``count`` passage sentences closest to the questions, in reading order.

    ``questions``: the standalone question and the question as asked; a sentence is scored
    against each (embedding similarity and shared content terms, half each), so a
    follow-up's own words count as much as its context.
    """
    candidates = [
        (p, s, e)
        for p, chunk in enumerate(index.chunks)
        for s, e in split_sentences(chunk.text)
        if len(chunk.text[s:e].split()) >= MIN_ANSWER_WORDS
    ]
    texts = [index.chunks[p].text[s:e] for p, s, e in candidates]
    if not texts:
        return []
    unique = list(dict.fromkeys(questions))
    qvectors = verifier.embedder.embed(unique)
    vectors = index.sentence_vectors(candidates, verifier.embedder)
    qterms = [set(verifier.terms(q)) for q in unique]
    scores = []
    for i, text in enumerate(texts):
        terms = set(verifier.terms(text))
        per_question = [
            0.5 * float(vectors[i] @ qv) + 0.5 * (len(qt & terms) / len(qt) if qt else 0.0)
            for qv, qt in zip(qvectors, qterms, strict=True)
        ]
        scores.append(sum(per_question) / len(per_question))
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[:count]
    order.sort(key=lambda i: candidates[i])
    out = []
    for i in order:
        p, s, e = candidates[i]
        # A verbatim sentence supports itself; the match records where it stands.
        out.append(Verified(texts[i], [p + 1], Match(p, s, e, 1.0, 1.0, True), True, False))
    return out
