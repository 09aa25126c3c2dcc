"""Support of a sentence by a passage, with the real embedding model."""

from __future__ import annotations

import pytest

from core.ports import Embedder
from core.types import Chunk
from retrieval.sparse import Bm25SparseEncoder
from serve.answering.verify import Verifier

PASSAGE = (
    "Mount Logan is the highest mountain in Canada. It is located within Kluane National Park "
    "Reserve in southwestern Yukon, less than 40 kilometres north of the Alaska border. "
    "It was named after Sir William Edmond Logan, a Canadian geologist."
)
QUESTION = "Where is Mount Logan located?"


@pytest.fixture(scope="module")
def verifier(real_embedder: Embedder) -> Verifier:
    return Verifier(real_embedder, Bm25SparseEncoder().terms, min_support=0.6)


@pytest.mark.parametrize(
    ("sentence", "supported"),
    [
        ("Mount Logan is in Kluane National Park Reserve in southwestern Yukon.", True),
        ("The answer is: Kluane National Park Reserve, in the Yukon.", True),
        ("It was named after the Canadian geologist William Logan.", True),
        # An invented figure: everything else matches, the number does not.
        ("Mount Logan lies less than 90 kilometres north of the Alaska border.", False),
        # Restating the question claims nothing.
        ("Mount Logan is located somewhere.", False),
        ("Mount Logan is the tallest volcano in Mexico and erupted in 1982.", False),
    ],
)
def test_support(verifier: Verifier, sentence: str, supported: bool) -> None:
    chunk = Chunk("c", "d", "v", PASSAGE, None, None, 100, 100 + len(PASSAGE))
    index = verifier.index([chunk])
    match = verifier.best(sentence, index, question=QUESTION)
    assert verifier.supports(match) is supported, match
    assert match is not None and PASSAGE[match.start : match.end] in PASSAGE


def test_subset_renumbers_passages(verifier: Verifier) -> None:
    a = Chunk("a", "d", "v", "Alpha is first. Alpha stays.", None, None, 0, 27)
    b = Chunk("b", "d", "v", "Beta is second in line.", None, None, 0, 23)
    index = verifier.index([a, b])
    only_b = index.subset([1])
    assert [c.chunk_id for c in only_b.chunks] == ["b"]
    assert {p for p, _, _ in only_b.spans} == {0}
    match = verifier.best("Beta is second in line.", only_b)
    assert match is not None and match.passage == 0 and match.score > 0.9
