"""Section-aware, token-bounded chunks built with llama-index's SentenceSplitter, cutting
at the sentences of enclave's own segmenter (core/sentences.py).

A Title element starts a section; the section's text (title included) is split into
passages that fit the embedding model, and every passage of the section carries its
title as context. Each chunk is a verbatim span of the document's extracted text and
knows its character span and the pages it covers. llama-index objects stay in here.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.sentences import sentence_pieces
from core.types import Chunk, Element, ParsedDocument, make_chunk_id


@dataclass(frozen=True, slots=True)
class _Section:
    title: str
    start: int
    end: int


class SectionChunker:
    def __init__(
        self,
        tokenize: Callable[[str], Sequence[int]],
        max_tokens: int = 200,
        overlap_tokens: int = 20,
        title_max_tokens: int = 32,
    ) -> None:
        from llama_index.core.node_parser import SentenceSplitter

        self._tokenize = tokenize
        self.title_max_tokens = title_max_tokens
        body_tokens = max(16, max_tokens - title_max_tokens)
        self.overlap_tokens = min(overlap_tokens, body_tokens // 4)
        self._splitter = SentenceSplitter(
            chunk_size=body_tokens,
            chunk_overlap=self.overlap_tokens,
            tokenizer=tokenize,
            paragraph_separator="\n\n",
            # enclave's one segmenter (core/sentences.py), not nltk's: a chunk then ends
            # where verification and extraction see a sentence end.
            chunking_tokenizer_fn=sentence_pieces,
            include_metadata=False,
            include_prev_next_rel=False,
        )

    def chunk(self, doc_id: str, version: str, parsed: ParsedDocument) -> list[Chunk]:
        from llama_index.core.schema import Document as LIDocument

        chunks: list[Chunk] = []
        starts = [e.char_start for e in parsed.elements]
        for section in _sections(parsed.elements):
            text = parsed.text[section.start : section.end]
            nodes = self._splitter.get_nodes_from_documents([LIDocument(text=text)])
            previous_start, previous_end = -1, 0
            title = self._short_title(section.title)
            for node in nodes:
                body = node.get_content()
                # Chunks come in text order. Without overlap the next one starts where the
                # last ended, which places it exactly even in repetitive text; with overlap
                # it starts somewhere inside the last one.
                low = previous_end if self.overlap_tokens == 0 else previous_start + 1
                start = text.find(body, low)
                if start < 0:
                    # The splitter rewrote whitespace; fall back to the span it covers.
                    start = min(low, len(text))
                    body = text[start : start + len(body)]
                previous_start, previous_end = start, start + len(body)
                char_start = section.start + start
                char_end = char_start + len(body)
                covered = _covering(parsed.elements, starts, char_start, char_end)
                pages = [e.page for e in covered if e.page is not None]
                ordinal = len(chunks)
                meta: dict[str, object] = {
                    "ordinal": ordinal,
                    "section": title,
                    "categories": sorted({e.category for e in covered}),
                }
                if any(e.ocr for e in covered):
                    # Read by OCR: citations of it say so (it may hold misread words).
                    meta["ocr"] = True
                chunks.append(
                    Chunk(
                        chunk_id=make_chunk_id(doc_id, version, ordinal),
                        doc_id=doc_id,
                        version=version,
                        text=parsed.text[char_start:char_end],
                        page_start=min(pages) if pages else None,
                        page_end=max(pages) if pages else None,
                        char_start=char_start,
                        char_end=char_end,
                        meta=meta,
                    )
                )
        return chunks

    def _short_title(self, title: str) -> str:
        if not title or self.title_max_tokens == 0:
            return ""
        words = title.split()
        # Trim word by word until the model's tokens fit the budget.
        while words and len(self._tokenize(" ".join(words))) > self.title_max_tokens:
            words = words[: max(1, len(words) * 3 // 4)] if len(words) > 1 else []
        return " ".join(words)


def _covering(
    elements: Sequence[Element], starts: Sequence[int], begin: int, end: int
) -> list[Element]:
    # Elements are in text order and do not overlap: find the span's first and last.
    first = max(0, bisect.bisect_right(starts, begin) - 1)
    last = bisect.bisect_left(starts, end)
    return [e for e in elements[first:last] if e.char_end > begin]


def _sections(elements: Sequence[Element]) -> list[_Section]:
    sections: list[_Section] = []
    title, start, end, has_body = "", None, None, False
    for element in elements:
        if element.category == "Title":
            if start is not None and has_body:
                sections.append(_Section(title, start, end or start))
                title, start, has_body = "", None, False
            # Consecutive titles (a heading and its sub-heading) open one section together.
            title = f"{title} / {element.text}" if title and start is not None else element.text
            if start is None:
                start = element.char_start
        else:
            if start is None:
                start = element.char_start
            has_body = True
        end = element.char_end
    if start is not None:
        sections.append(_Section(title, start, end or start))
    return sections
