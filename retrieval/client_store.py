"""A Qdrant server or cluster through qdrant-client (also its local mode, for tests).

Server deployments use this; the embedded default is :mod:`retrieval.edge_store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from core.errors import StoreError
from core.ports import StoredChunk
from core.types import Chunk, Hit, SparseVector
from retrieval import schema

_FACET_LIMIT = 10_000_000


@dataclass(frozen=True, slots=True)
class Layout:
    """How a new collection spreads over a Qdrant cluster (ENCLAVE_QDRANT__SHARDS etc.)."""

    shards: int = 1
    replication_factor: int = 1
    write_consistency: int = 1


class ClientStore:
    def __init__(self, client: Any, collection: str, layout: Layout = Layout()) -> None:
        self.client = client
        self.collection = collection
        self.layout = layout
        self._ready = False

    @classmethod
    def connect(
        cls,
        collection: str,
        *,
        url: str | None = None,
        path: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        layout: Layout = Layout(),
    ) -> ClientStore:
        from qdrant_client import QdrantClient

        if url:
            client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s))
        elif path:
            client = QdrantClient(path=path)
        else:
            client = QdrantClient(location=":memory:")
        return cls(client, collection, layout)

    def ensure_collection(self, dim: int) -> None:
        from qdrant_client import models

        if self._ready:
            return
        try:
            if not self.client.collection_exists(self.collection):
                self.client.create_collection(
                    self.collection,
                    vectors_config={
                        schema.DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={
                        schema.SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)
                    },
                    # A cluster spreads the collection over its nodes; a single server
                    # takes the defaults (1, 1, 1) as they are.
                    shard_number=self.layout.shards,
                    replication_factor=self.layout.replication_factor,
                    write_consistency_factor=self.layout.write_consistency,
                )
                for field, kind in schema.INDEXED_FIELDS.items():
                    self.client.create_payload_index(
                        self.collection, field, field_schema=_schema_type(kind)
                    )
        except Exception as exc:
            raise StoreError(f"Qdrant: cannot prepare collection {self.collection!r}: {exc}") from exc
        self._ready = True

    def session(self) -> AbstractContextManager[None]:
        # A server takes every call as it comes; nothing to hold open.
        return nullcontext()

    def close(self) -> None:
        self.client.close()

    def upsert(self, points: Sequence[StoredChunk]) -> None:
        from qdrant_client import models

        if not points:
            return
        batch = [
            models.PointStruct(
                id=p.chunk.chunk_id,
                vector={
                    schema.DENSE: [float(x) for x in p.dense],
                    schema.SPARSE: models.SparseVector(
                        indices=list(p.sparse.indices), values=list(p.sparse.values)
                    ),
                },
                payload=schema.payload_of(p),
            )
            for p in points
        ]
        self._call(lambda c: c.upsert(self.collection, points=batch, wait=True))

    def delete(self, doc_id: str, version: str | None = None) -> None:
        from qdrant_client import models

        selector = models.FilterSelector(filter=_doc_filter(doc_id, version))
        self._call(lambda c: c.delete(self.collection, points_selector=selector, wait=True))

    def optimize(self) -> bool:
        # A Qdrant server runs its optimizers in the background by itself.
        return False

    def set_access(self, doc_id: str, groups: Sequence[str]) -> None:
        payload = {"groups": schema.stored_groups(groups), "public": not groups}
        self._call(
            lambda c: c.set_payload(
                self.collection, payload=payload, points=_doc_filter(doc_id, None), wait=True
            )
        )

    def hybrid_search(
        self,
        dense: Sequence[float],
        sparse: SparseVector,
        groups: Sequence[str],
        limit: int,
        prefetch: int,
        fusion: str,
    ) -> list[Hit]:
        from qdrant_client import models

        access = _access_filter(groups)
        prefetches = [
            models.Prefetch(
                query=[float(x) for x in dense], using=schema.DENSE, limit=prefetch, filter=access
            )
        ]
        if sparse.indices:
            prefetches.append(
                models.Prefetch(
                    query=models.SparseVector(
                        indices=list(sparse.indices), values=list(sparse.values)
                    ),
                    using=schema.SPARSE,
                    limit=prefetch,
                    filter=access,
                )
            )
        fuse = (
            models.FusionQuery(fusion=models.Fusion.DBSF)
            if fusion == "dbsf"
            else models.RrfQuery(rrf=models.Rrf(k=60))
        )
        response = self._call(
            lambda c: c.query_points(
                self.collection,
                prefetch=prefetches,
                query=fuse,
                query_filter=access,
                limit=limit,
                with_payload=True,
            )
        )
        return [
            Hit(schema.chunk_of(str(p.id), p.payload or {}), float(p.score))
            for p in response.points
        ]

    def nearest(
        self, vector: Sequence[float] | SparseVector, groups: Sequence[str], limit: int
    ) -> list[Hit]:
        from qdrant_client import models

        query: Any
        if isinstance(vector, SparseVector):
            if not vector.indices:
                return []
            query = models.SparseVector(indices=list(vector.indices), values=list(vector.values))
            using = schema.SPARSE
        else:
            query, using = [float(x) for x in vector], schema.DENSE
        response = self._call(
            lambda c: c.query_points(
                self.collection, query=query, using=using, query_filter=_access_filter(groups),
                limit=limit, with_payload=True,
            )
        )
        return [
            Hit(schema.chunk_of(str(p.id), p.payload or {}), float(p.score))
            for p in response.points
        ]

    def retrieve(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        records = self._call(
            lambda c: c.retrieve(self.collection, ids=list(chunk_ids), with_payload=True)
        )
        return [schema.chunk_of(str(r.id), r.payload or {}) for r in records]

    def count(self, doc_id: str | None = None, version: str | None = None) -> int:
        flt = _doc_filter(doc_id, version) if doc_id else None
        result = self._call(lambda c: c.count(self.collection, count_filter=flt, exact=True))
        return int(result.count)

    def doc_counts(self) -> dict[str, int]:
        response = self._call(
            lambda c: c.facet(self.collection, key="doc_id", limit=_FACET_LIMIT, exact=True)
        )
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def versions_of(self, doc_id: str) -> set[str]:
        response = self._call(
            lambda c: c.facet(
                self.collection,
                key="version",
                facet_filter=_doc_filter(doc_id, None),
                limit=_FACET_LIMIT,
                exact=True,
            )
        )
        return {str(hit.value) for hit in response.hits}

    def _call(self, fn: Any) -> Any:
        try:
            return fn(self.client)
        except Exception as exc:
            raise StoreError(f"Qdrant: {exc}") from exc


def _schema_type(kind: str) -> Any:
    from qdrant_client import models

    return {"keyword": models.PayloadSchemaType.KEYWORD}[kind]


def _doc_filter(doc_id: str | None, version: str | None) -> Any:
    from qdrant_client import models

    must: list[Any] = []
    if doc_id is not None:
        must.append(models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id)))
    if version is not None:
        must.append(models.FieldCondition(key="version", match=models.MatchValue(value=version)))
    return models.Filter(must=must)


def _access_filter(groups: Sequence[str]) -> Any:
    from qdrant_client import models

    readable = schema.readable_by(groups)
    return models.Filter(
        must=[models.FieldCondition(key="groups", match=models.MatchAny(any=readable))]
    )
