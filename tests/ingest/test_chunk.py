from __future__ import annotations

from core.ports import Embedder
from core.types import Element, ParsedDocument
from ingest.chunk import SectionChunker, _sections


def _doc(parts: list[tuple[str, str, int | None]]) -> ParsedDocument:
    elements, text, offset = [], "", 0
    for body, category, page in parts:
        if text:
            text += "\n\n"
            offset += 2
        elements.append(Element(body, category, page, offset, offset + len(body)))
        text += body
        offset += len(body)
    return ParsedDocument(text, tuple(elements), "t", None, "txt")


def test_titles_start_sections_and_consecutive_titles_merge():
    doc = _doc([("Intro text.", "NarrativeText", 1), ("Part A", "Title", 1),
                ("Scope", "Title", 1), ("Body A.", "NarrativeText", 2), ("Part B", "Title", 3),
                ("Body B.", "NarrativeText", 3)])
    sections = _sections(doc.elements)
    assert [s.title for s in sections] == ["", "Part A / Scope", "Part B"]
    assert doc.text[sections[1].start:sections[1].end] == "Part A\n\nScope\n\nBody A."


def test_chunks_fit_the_model_carry_titles_and_are_verbatim(real_embedder: Embedder):
    sentence = "The maintenance crew inspects every joint of the arm for wear and corrosion. "
    doc = _doc([("Maintenance schedule", "Title", 1), (sentence * 30, "NarrativeText", 1),
                (sentence * 30, "NarrativeText", 2), ("Safety", "Title", 3),
                ("Wear gloves.", "NarrativeText", 3)])
    chunker = SectionChunker(real_embedder.tokenize, max_tokens=120, overlap_tokens=0,
                             title_max_tokens=16)
    chunks = chunker.chunk("doc", "v1", doc)
    assert len(chunks) > 4
    for c in chunks:
        assert doc.text[c.char_start:c.char_end] == c.text
        assert len(real_embedder.tokenize(c.embedding_text())) <= 120
    first_section = [c for c in chunks if c.section == "Maintenance schedule"]
    assert len(first_section) == len(chunks) - 1
    assert first_section[-1].embedding_text().startswith("Maintenance schedule\n")
    # Chunks tile the section in order, so pages follow the text even when it repeats itself.
    assert [c.char_start for c in chunks] == sorted(c.char_start for c in chunks)
    assert first_section[0].page_start == 1 and first_section[-1].page_end == 2
    assert {c.page_start for c in first_section} == {1, 2}
    assert chunks[-1].section == "Safety" and chunks[-1].page_start == 3
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    again = chunker.chunk("doc", "v1", doc)
    assert [c.chunk_id for c in again] == [c.chunk_id for c in chunks]  # deterministic ids
