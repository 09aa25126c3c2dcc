"""``enclave bench pdf``: the two ways of reading a PDF's text layer, pdfminer's (through
unstructured's ``fast`` strategy) and pdfium's (ingest/pdf_text.py), on the same files in
the same run, through the real parser.

Per way: seconds, pages/s, characters per page, and how the other way's text is kept:
the share of pdfminer's words (per page, with repeats) that pdfium's text also holds,
the same for figures (numbers: what a table is made of), and the share of figures that
stand in one line with a word of their row (``Total net sales | 81,797``, not a column of
bare numbers): how readable a table's rows are. OCR is off, so both ways read the text
layer only; pages thinner than OCR's threshold (which OCR would read) are counted.

Retrieval: SciFact abstracts typeset as text-layer PDFs (DejaVu Serif, Letter pages),
ingested under each way and as plain text, each into a fresh data dir, and ranked for
the same claims (hybrid search, eval/retrieval.py).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

from core.errors import DocumentError, InputError
from core.settings import OcrSettings
from core.types import ParsedDocument
from eval.bench_ocr import subset
from eval.retrieval import Benchmark, eval_retrieval, load
from eval.scanned import LEADING, MARGIN_IN, PAGE_IN, POINTS, font_file, paginate
from ingest.pdf_text import PdfText

WAYS: tuple[PdfText, ...] = get_args(PdfText)[::-1]  # pdfminer (today's) first
_WORD = re.compile(r"\w+")
_FIGURE = re.compile(r"\d(?:[\d,.]*\d)?")
_LABEL = re.compile(r"[^\W\d_]{3,}")
# pdfminer's name for a glyph it cannot map: no text, and its digits are no figure.
_CID = re.compile(r"\(cid:\d+\)")
# Not counted as characters: whitespace, and the separator of a table row's columns.
_NOT_TEXT = re.compile(r"\s\|\s|\s")
TITLE_POINTS = 14


def bench_pdf(folder: Path, limit: int | None = None,
              on_progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Parse every PDF under ``folder`` (the first ``limit``) both ways; figures per way."""
    from ingest.parse import parse_file, quiet_parsers

    quiet_parsers()
    files = sorted(folder.rglob("*.pdf"))[:limit]
    if not files:
        raise InputError(f"no PDF under {folder}")
    ocr = OcrSettings(enabled=False)
    with tempfile.TemporaryDirectory(prefix="enclave-bench-pdf-") as tmp:
        # The first PDF each way loads its libraries (seconds): start-up, not parsing.
        warm = text_pdf(["Warm up", "A page of text to load the parsers."], Path(tmp) / "warm.pdf")
        for way in WAYS:
            parse_file(warm, max_bytes=2**31, max_pages=10, ocr=ocr, pdf_text=way)
    runs: dict[str, dict[str, Any]] = {way: {"seconds": 0.0, "pages": 0, "failed": []}
                                       for way in WAYS}
    texts: dict[str, list[dict[int, str]]] = {way: [] for way in WAYS}
    for n, path in enumerate(files):
        # Alternate which way goes first, so that a neighbour's load on the machine falls
        # on both alike.
        for way in WAYS if n % 2 == 0 else WAYS[::-1]:
            started = time.perf_counter()
            try:
                parsed = parse_file(path, max_bytes=2**31, max_pages=100_000, ocr=ocr, pdf_text=way)
            except DocumentError as exc:
                runs[way]["failed"].append(f"{path.name}: {exc}")
                texts[way].append({})
                continue
            finally:
                runs[way]["seconds"] += time.perf_counter() - started
            runs[way]["pages"] += parsed.page_count or 0
            texts[way].append(_pages(parsed))
        if on_progress:
            on_progress("parse", n + 1, len(files))
    base = WAYS[0]
    for way in WAYS:
        run = runs[way]
        pages = [p for doc in texts[way] for p in doc.values()]
        chars = sum(len(_NOT_TEXT.sub("", p)) for p in pages)
        run["seconds"] = round(run["seconds"], 2)
        run["pages_per_s"] = round(run["pages"] / run["seconds"], 2) if run["seconds"] else None
        run["chars_per_page"] = round(chars / run["pages"], 1) if run["pages"] else None
        run["thin_pages"] = sum(1 for doc in texts[way] for p in doc.values()
                                if len(p.strip()) < OcrSettings().min_text_chars)
        run["words_of_base_kept"] = _kept(texts[base], texts[way], _WORD)
        run["figures_of_base_kept"] = _kept(texts[base], texts[way], _FIGURE)
        run["figures_in_labelled_rows"] = _labelled(texts[way])
        run["speed_vs_base"] = round(runs[base]["seconds"] / run["seconds"], 2) if run["seconds"] else None
        run["chars_vs_base"] = (round(run["chars_per_page"] / runs[base]["chars_per_page"], 3)
                                if run["chars_per_page"] and runs[base]["chars_per_page"] else None)
    return {"folder": str(folder), "files": len(files), "base": base, "ways": runs}


def _pages(parsed: ParsedDocument) -> dict[int, str]:
    """Each page's text, its elements one per line (a table's rows stay lines)."""
    pages: dict[int, list[str]] = {n: [] for n in range(1, (parsed.page_count or 0) + 1)}
    for e in parsed.elements:
        pages.setdefault(e.page or 0, []).append(_CID.sub(" ", e.text))
    return {n: "\n".join(parts) for n, parts in pages.items()}


def _kept(base: Sequence[dict[int, str]], other: Sequence[dict[int, str]], token: re.Pattern[str]
          ) -> float | None:
    """Share of the base's tokens (per page, repeats counted) that the other text holds."""
    found = total = 0
    for doc_base, doc_other in zip(base, other, strict=True):
        for page, text in doc_base.items():
            want = Counter(t.lower() for t in token.findall(text))
            have = Counter(t.lower() for t in token.findall(doc_other.get(page, "")))
            total += sum(want.values())
            found += sum((want & have).values())
    return round(found / total, 4) if total else None


def _labelled(docs: Sequence[dict[int, str]]) -> float | None:
    """Share of figures that share a line with a word (a row's label, a sentence)."""
    labelled = total = 0
    for doc in docs:
        for text in doc.values():
            for line in text.splitlines():
                figures = len(_FIGURE.findall(line))
                total += figures
                labelled += figures if _LABEL.search(line) else 0
    return round(labelled / total, 4) if total else None


# -- retrieval ---------------------------------------------------------------------------------


def bench_pdf_retrieval(
    corpus: Path, queries: Path, qrels: Path, documents: int = 300,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """nDCG@10 (hybrid) over ``documents`` SciFact abstracts ingested as text-layer PDFs
    read each way, and as plain text (Markdown): each in a fresh data dir, same claims."""
    bench = subset(load(corpus, queries, qrels), documents)
    result: dict[str, Any] = {"documents": len(bench.corpus), "queries": len(bench.queries)}
    with tempfile.TemporaryDirectory(prefix="enclave-bench-pdf-") as tmp:
        # Typesetting takes about a second a PDF (font subsetting): done once, copied per run.
        made = _write_pdfs(bench, Path(tmp))

        def copies(_: Benchmark, folder: Path) -> dict[str, str]:
            folder.mkdir(parents=True, exist_ok=True)
            return {str(Path(shutil.copy(source, folder)).resolve()): doc_id
                    for source, doc_id in made.items()}

        runs: dict[str, tuple[dict[str, Any] | None, Callable[[Benchmark, Path], dict[str, str]] | None]]
        runs = {"text": (None, None)}
        runs.update({way: ({"ingest": {"pdf_text": way}}, copies) for way in WAYS})
        for name, (overrides, write) in runs.items():
            started = time.perf_counter()
            run = eval_retrieval(bench, modes=("hybrid",), overrides=overrides,
                                 on_progress=on_progress, write=write)
            result[name] = {**run["modes"]["hybrid"], "chunks": run["chunks"],
                            "ingest_s": run["ingest"]["seconds"], "parse_s": run["ingest"]["parse_s"],
                            "seconds": round(time.perf_counter() - started, 1)}
    return result


def _write_pdfs(bench: Benchmark, folder: Path) -> dict[str, str]:
    """Each abstract as a text-layer PDF of its own; source -> doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {}
    for doc_id, (title, text) in bench.corpus.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)
        path = text_pdf([title, text] if title else [text], folder / f"{safe}.pdf")
        sources[str(path.resolve())] = doc_id
    return sources


def text_pdf(paragraphs: Sequence[str], path: Path) -> Path:
    """A PDF with a real text layer, as a word processor prints it: Letter pages, the first
    paragraph a title in a larger size, the rest body paragraphs with space between them.
    TrueType (DejaVu Serif) embedded with its Unicode map, so any text is readable back."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    lines: list[tuple[str, int, bool]] = []  # text, points, starts a paragraph
    for n, paragraph in enumerate(p for p in paragraphs if p.strip()):
        points = TITLE_POINTS if n == 0 and len(paragraphs) > 1 else POINTS
        for i, page in enumerate(paginate(paragraph, dpi=72, points=points)):
            lines += [(line, points, i == 0 and j == 0) for j, line in enumerate(page.lines)]
    bottom = MARGIN_IN * 72
    pages: list[list[tuple[str, int, float]]] = [[]]
    y = (PAGE_IN[1] - MARGIN_IN) * 72
    for text, points, starts in lines:
        y -= points * LEADING + (points * 0.8 if starts and pages[-1] else 0)
        if y < bottom:
            pages.append([])
            y = (PAGE_IN[1] - MARGIN_IN) * 72 - points * LEADING
        pages[-1].append((text, points, y))
    fonts = {p: FontProperties(fname=str(font_file()), size=p) for p in {POINTS, TITLE_POINTS}}
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path) as out:
        for placed in pages:
            figure = Figure(figsize=PAGE_IN)
            for text, points, y in placed:
                figure.text(MARGIN_IN / PAGE_IN[0], y / (PAGE_IN[1] * 72), text,
                            fontproperties=fonts[points], va="baseline")
            out.savefig(figure)
    return path
