"""An offline stand-in for the spaCy model unstructured would download on first use.

unstructured 0.27 fetches ``en_core_web_sm`` from the internet the first time it needs
sentences or part-of-speech tags, and offline the fetch fails (the fast PDF path then
silently yields nothing). A blank English pipeline with a sentencizer gives sentences
with no download; a tiny rule-based tagger marks likely verbs, because unstructured's
narrative-text heuristic asks whether a one-sentence element contains a verb.
"""

from __future__ import annotations

from functools import lru_cache

import spacy
from spacy.language import Language
from spacy.tokens import Doc

_AUXILIARIES = frozenset(
    "is are was were be been being am has have had having do does did will would shall "
    "should can could may might must need needs include includes included provide provides "
    "provided make makes made take takes took use uses used get gets got see sees saw "
    "go goes went give gives gave show shows shown find finds found report reports "
    "require requires contain contains describe describes allow allows".split()
)


@Language.component("enclave_verb_tagger")
def _verb_tagger(doc: Doc) -> Doc:
    for token in doc:
        lower = token.lower_
        if lower in _AUXILIARIES:
            token.tag_ = "VBZ"
        elif token.is_alpha and len(lower) > 4 and lower.endswith(("ed", "ing")):
            token.tag_ = "VBD" if lower.endswith("ed") else "VBG"
    return doc


@lru_cache(maxsize=1)
def offline_pipeline() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("enclave_verb_tagger")
    return nlp


def install() -> None:
    """Hand the offline pipeline to unstructured's tokenizer hook (idempotent)."""
    from unstructured.nlp import tokenize

    tokenize._get_nlp = offline_pipeline  # type: ignore[assignment]
