"""Property: a search returns only chunks the principal may read, and every readable match.

Real embedded Qdrant engine and the real searcher; the hashing embedder keeps each
example fast (the real model's access behaviour is covered by tests/ingest).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.container import Container
from core.ports import FakeEmbedder, StoredChunk
from core.settings import Settings
from core.types import Chunk, Document, Principal, make_chunk_id, make_doc_id

GROUPS = ["hr", "finance", "eng", "legal", "exec"]
group_sets = st.frozensets(st.sampled_from(GROUPS), max_size=3)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=st.lists(group_sets, min_size=1, max_size=12), asker=group_sets,
       fusion=st.sampled_from(["rrf", "dbsf", "minmax"]))
def test_search_returns_exactly_what_the_groups_allow(docs, asker, fusion):
    with tempfile.TemporaryDirectory() as tmp:
        settings_ = Settings(data_dir=Path(tmp), search={"fusion": fusion})
        container = Container(settings_, embedder=FakeEmbedder())
        try:
            registry = container.registry
            container.store.ensure_collection(container.embedder.dim)
            now = datetime.now(UTC)
            readable = set()
            for i, acl in enumerate(docs):
                source = f"/share/doc{i}.txt"
                doc = Document(make_doc_id(source), source, f"v{i}", tuple(sorted(acl)))
                text = f"quarterly figures report number {i}"
                chunk = Chunk(make_chunk_id(doc.doc_id, doc.version_sha256, 0), doc.doc_id,
                              doc.version_sha256, text, None, None, 0, len(text))
                registry.begin_version(doc.doc_id, source, doc.version_sha256, "t", None)
                container.store.upsert([StoredChunk(
                    chunk, doc, "t", container.embedder.embed([text])[0].tolist(),
                    container.sparse.encode_document(text), now)])
                registry.activate(doc.doc_id, doc.version_sha256, 1, doc.acl, "t")
                if not acl or acl & asker:
                    readable.add(doc.doc_id)
            hits = container.searcher.search("quarterly figures report", Principal("u", tuple(asker)),
                                             k=50)
            assert {h.chunk.doc_id for h in hits} == readable
        finally:
            container.close()
