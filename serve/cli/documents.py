"""``enclave ingest``, ``search``, ``status`` and ``delete``: the documents themselves."""


from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.names import validate_groups
from core.types import Hit, is_uuid, make_doc_id
from serve.cli.common import (
    EXIT_SOME_FAILED,
    GroupOpt,
    JsonOpt,
    cli_principal,
    container_scope,
    out,
    progress,
    run_cli,
)

if TYPE_CHECKING:
    from ingest.deletion import Deletion
    from ingest.pipeline import FileResult, IngestReport


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    group: GroupOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Parse, chunk, embed and store files; unchanged files are skipped."""

    def work() -> IngestReport:
        from core.admin_records import record_admin

        groups = validate_groups(group or ())  # printed as stored (core/names.py)
        with container_scope() as c:
            shown = progress(enabled=not as_json and sys.stderr.isatty())
            with shown as bar:
                task = bar.add_task("ingesting", total=None) if bar else None

                def on_file(result: FileResult) -> None:
                    if bar is not None and task is not None:
                        bar.update(task, advance=1, description=Path(result.source).name[:40])

                report = c.ingestor.ingest(paths, groups, on_file=on_file)
            record_admin(c.audit, getpass.getuser(), "ingest.ran", "cli",
                         paths=[str(p.absolute()) for p in paths], groups=list(groups),
                         summary=_summary(report))
            return report

    report = run_cli(work)
    summary = _summary(report)
    if as_json:
        out.print_json(
            data={
                "summary": summary,
                "files": [
                    {"source": f.source, "status": f.status, "doc_id": f.doc_id,
                     "chunks": f.chunks, "pages": f.pages, "reason": f.reason,
                     "ocr_pages": f.ocr_pages,
                     "low_confidence_pages": list(f.low_confidence_pages)}
                    for f in report.files
                ],
            }
        )
    else:
        for f in report.files:
            if f.status == "failed":
                out.print(f"FAILED  {f.source}: {f.reason}")
            else:
                out.print(f"{f.status:<9} {f.source} ({f.chunks} chunks{_ocr_note(f)})")
        access = ", ".join(validate_groups(group or ())) or "public"
        out.print(
            f"{summary['files']} files: {summary['ingested']} ingested, "
            f"{summary['unchanged']} unchanged, {summary['updated']} updated, "
            f"{summary['failed']} failed (access: {access})"
        )
    if report.failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _ocr_note(f: FileResult) -> str:
    if not f.ocr_pages:
        return ""
    low = ", ".join(str(p) for p in f.low_confidence_pages)
    return (f", {f.ocr_pages} page{'s' if f.ocr_pages > 1 else ''} read by OCR"
            + (f"; low confidence: page {low}" if low else ""))


def _summary(report: IngestReport) -> dict[str, int]:
    return {
        "files": len(report.files),
        "ingested": report.count("ingested"),
        "unchanged": report.count("unchanged"),
        "updated": report.count("updated"),
        "failed": report.count("failed"),
        "repaired": report.repaired,
    }


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Who is asking.")] = "cli",
    group: GroupOpt = None,
    k: Annotated[int, typer.Option("-k", help="How many results.", min=1, max=100)] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid search over what the user's groups may read (plus public documents)."""
    principal = run_cli(lambda: cli_principal(user, group))

    def work() -> list[Hit]:
        with container_scope() as c:
            return c.searcher.search(query, principal, k)

    hits = run_cli(work)
    if as_json:
        out.print_json(data={"query": query, "results": [_hit_json(h) for h in hits]})
        return
    if not hits:
        out.print("no results")
    for rank, hit in enumerate(hits, 1):
        ch = hit.chunk
        out.print(f"{rank}. {ch.meta.get('source')}  page {_pages(hit)}  score {hit.score:.3f}")
        out.print(f"   {_snippet(ch.text)}")


def delete(
    ref: Annotated[str, typer.Argument(help="A doc_id, or the path the document came from.")],
    legal_reason: Annotated[str | None, typer.Option(
        "--legal-reason", help="A deletion for legal reasons: also purge the texts the audit "
        "keeps of it; the reason is recorded.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a document everywhere: its chunks in Qdrant and its registry rows."""

    def work() -> Deletion:
        from ingest.deletion import delete_document_recorded

        with container_scope() as c:
            info = c.ingestor.find(ref)
            doc_id = info.doc_id if info else (ref if is_uuid(ref) else make_doc_id(
                str(Path(ref).resolve())))
            return delete_document_recorded(c.ingestor, c.audit, c.conversations,
                                            getpass.getuser(), "cli", doc_id, legal_reason)

    done = run_cli(work)
    if as_json:
        out.print_json(data={"deleted": done.doc_id, "source": done.source,
                             "texts_purged": done.texts_purged,
                             "turns_redacted": done.turns_redacted})
    else:
        purged = (f"; {done.texts_purged} kept text(s) purged from the audit, "
                  f"{done.turns_redacted} conversation answer(s) redacted"
                  if done.texts_purged is not None else "")
        out.print(f"deleted {done.source} ({done.doc_id}){purged}")


def status(as_json: JsonOpt = False) -> None:
    """Documents, chunks and failures; checks that the registry and the store agree."""

    def work() -> dict[str, Any]:
        from ingest.upkeep import disagreements

        with container_scope() as c:
            # The registry and the store are all it reads. The ingestor would also load the
            # parsers and the chunker (llama-index, unstructured): a second of imports.
            c.store.ensure_collection(c.embedder.dim)
            totals = c.registry.totals()
            docs = c.registry.documents()
            minimum = c.settings.ocr.min_confidence
            return {
                **totals,
                "stored_chunks": c.store.count(),
                "disagreements": disagreements(c.registry, c.store),
                # Who wrote the active versions' vectors: more than one is a mix, which the
                # next ingest or sync re-embeds with the configured embedder.
                "embedder": c.embedder.fingerprint,
                "embedded_by": {name or "unrecorded": n
                                for name, n in sorted(c.registry.embedders().items(),
                                                      key=lambda kv: -kv[1])},
                "failures": [
                    {"source": d.source, "doc_id": d.doc_id, "reason": d.last_error}
                    for d in docs
                    if d.last_status == "failed"
                ],
                # Ingested, but OCR read these pages with too little confidence (or not at
                # all): their text may be wrong.
                "low_confidence": [
                    {"source": d.source, "doc_id": d.doc_id,
                     "pages": [p.as_json() for p in d.low_confidence(minimum)]}
                    for d in docs
                    if d.active_version and d.low_confidence(minimum)
                ],
                "min_confidence": minimum,
            }

    data = run_cli(work)
    if as_json:
        out.print_json(data=data)
        return
    out.print(f"documents: {data['documents']}")
    out.print(f"chunks:    {data['chunks']} (in the store: {data['stored_chunks']})")
    out.print(f"failed:    {data['failed']}")
    configured = data["embedder"]
    for name, count in data["embedded_by"].items():
        if name == configured:
            out.print(f"embedded:  {count} documents by {name}")
        else:
            out.print(f"MIXED:     {count} documents embedded by {name}, not the configured "
                      f"{configured}: the next `enclave ingest` or sync re-embeds them")
    for failure in data["failures"]:
        out.print(f"  {failure['source']}: {failure['reason']}")
    if data["low_confidence"]:
        out.print(f"low-confidence OCR (under {data['min_confidence']:g}): "
                  f"{len(data['low_confidence'])} documents")
    for doc in data["low_confidence"]:
        pages = ", ".join(
            f"page {p['page']} ({p['error']})" if p.get("error")
            else f"page {p['page']} ({p['confidence']:g}%)" for p in doc["pages"])
        out.print(f"  {doc['source']}: {pages}")
    for problem in data["disagreements"]:
        out.print(f"DISAGREEMENT {problem} (run `enclave ingest` again to repair)")


def _hit_json(hit: Hit) -> dict[str, Any]:
    ch = hit.chunk
    return {
        "chunk_id": ch.chunk_id,
        "doc_id": ch.doc_id,
        "version": ch.version,
        "source": ch.meta.get("source"),
        "title": ch.meta.get("title"),
        "section": ch.section,
        "page_start": ch.page_start,
        "page_end": ch.page_end,
        "char_start": ch.char_start,
        "char_end": ch.char_end,
        "score": hit.score,
        "text": ch.text,
    }


def _pages(hit: Hit) -> str:
    start, end = hit.chunk.page_start, hit.chunk.page_end
    if start is None:
        return "-"
    return str(start) if end in (None, start) else f"{start}-{end}"


def _snippet(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
