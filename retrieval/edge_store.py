"""The embedded default: Qdrant's own engine (qdrant-edge-py) in a directory, no server.

The same collection shape, the same queries and the same results as a Qdrant server;
tests/retrieval/test_store_congruence.py holds the two to that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from core.errors import StoreError
from core.ports import StoredChunk
from core.types import Chunk, Hit, SparseVector
from retrieval import schema
from retrieval.edge_lock import StoreLock

log = logging.getLogger(__name__)

_FACET_LIMIT = 10_000_000
# How often a yielding holder looks for a waiter: a writer waits at most this long, plus
# the search in progress, before the store is its.
_WATCH_S = 0.025

Sharing = Literal["hold", "yield", "per-operation"]


def sharing_of(hold_open: bool | str) -> Sharing:
    """ENCLAVE_QDRANT__HOLD_OPEN as a sharing mode: true, false or yield."""
    if hold_open is True:
        return "hold"
    if hold_open is False:
        return "per-operation"
    if hold_open in ("hold", "yield", "per-operation"):
        return hold_open  # type: ignore[return-value]
    raise ValueError(f"hold_open must be true, false or 'yield', not {hold_open!r}")


class EdgeStore:
    """Qdrant's engine in a directory; one process at a time works in it.

    The engine's own lock does not cover what loading does (it tidies leftover segments
    before it locks), and two processes interleaving there corrupt the store. So a process
    takes our own lock (retrieval/edge_lock.py: it asks through ``<dir>.want``, then holds
    ``<dir>.lock``) before it creates, loads or touches the directory, and keeps it until
    the store is closed. How long it keeps it is ``hold_open``:

    - ``True`` (hold): the first operation opens the store and this process keeps it until
      :meth:`close` (fastest; another process waits up to ``lock_wait_s`` and then fails
      with a clear message). `enclave ingest` and the other one-shot commands.
    - ``False`` (per-operation): every operation, or every :meth:`session` block, opens it
      and closes it again, so processes take turns, each waiting up to ``lock_wait_s``.
      Workers: they parse and embed without the store and hold it only for the writes.
    - ``"yield"``: held open between operations, as with hold, but given up as soon as
      another process asks for it (a thread watches ``.want``), never in the middle of an
      operation or session; the next operation opens it again. `enclave serve`: searches
      cost what they cost held open while nobody writes, and a worker still gets its turn.
      The store is always read again from disk after another process had it, so a search
      never misses a write that process finished.
    """

    def __init__(
        self, path: Path, lock_wait_s: float = 10.0, hold_open: bool | Literal["yield"] = True
    ) -> None:
        self.path = path
        self.lock_wait_s = lock_wait_s
        self.sharing: Sharing = sharing_of(hold_open)
        self._shard: Any = None
        self._dir_lock = StoreLock(path)
        self._dim: int | None = None
        # Bumped at every open and close: a watcher thread belongs to one open period.
        self._opened = 0
        # Sessions entered and not left yet (nested ones included): a yield waits for 0.
        self._depth = 0
        # Set by the watcher when a waiter appears (yield mode).
        self._give_way = False
        # A change was made and not flushed yet (see _changing).
        self._unflushed = False
        # One shard object per process; its calls are not meant to interleave.
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_collection(self, dim: int) -> None:
        with self._lock:
            if self._dim is not None:
                return
            self._dim = dim
            if self.sharing != "per-operation":
                self._open()
            else:
                with self.session():
                    pass

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep the store open for a block of operations (one open instead of many)."""
        deadline = time.monotonic() + self.lock_wait_s
        # Threads of this process queue here while one of them waits for the store (serve
        # under load): each gives up within lock_wait_s of asking, not after the others.
        if not self._lock.acquire(timeout=self.lock_wait_s):
            raise self._in_use()
        try:
            if self._depth == 0 and self._give_way and self._shard is not None:
                self._give_way = False
                if self._dir_lock.wanted():
                    # The watcher saw a waiter but threads of ours kept the lock: Python's
                    # locks are not fair, so the first operation after that lets it in.
                    self._yield()
            self._depth += 1
            try:
                if self._shard is not None:
                    yield
                    return
                self._open(deadline)
                try:
                    yield
                finally:
                    if self.sharing == "per-operation":
                        self._close()
            finally:
                self._depth -= 1
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _in_use(self) -> StoreError:
        return StoreError(
            f"the embedded Qdrant store at {self.path} is in use by another enclave "
            "process (an ingest still running?). The embedded store serves one "
            "process at a time; for concurrent use run a Qdrant server and set "
            "ENCLAVE_QDRANT__URL."
        )

    def _open(self, deadline: float | None = None) -> None:
        wait_s = self.lock_wait_s if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._dir_lock.acquire(wait_s):
            raise self._in_use()
        try:
            if not self._exists():
                if self._dim is None:
                    raise StoreError("the embedded store is not open: call ensure_collection first")
                self._create(self._dim)
            self._shard = self._load()
            if not _indexes_current(self.path):
                self._finish_creation()
        except BaseException:
            shard, self._shard = self._shard, None
            if shard is not None:
                shard.close()
            self._dir_lock.release()
            raise
        self._opened += 1
        self._give_way = False
        if self.sharing == "yield":
            threading.Thread(target=self._watch, args=(self._opened,), daemon=True,
                             name=f"yield {self.path.name}").start()

    def _close(self) -> None:
        shard, self._shard = self._shard, None
        self._opened += 1
        unflushed, self._unflushed = self._unflushed, False
        try:
            if shard is not None:
                if unflushed:
                    shard.flush()
                shard.close()
        except Exception as exc:
            raise StoreError(f"embedded Qdrant store at {self.path}: {exc}") from exc
        finally:
            self._dir_lock.release()

    def _watch(self, opened: int) -> None:
        """Give the store up when another process waits for it (sharing mode yield).

        Under the store's lock, so never in the middle of a search or a session. Reopening
        is left to the next operation rather than done as soon as the other process is
        through: a worker writing document after document would otherwise make this process
        load the whole store again after each one, searched or not (README, "Search
        latency")."""
        while self._opened == opened:
            time.sleep(_WATCH_S)
            if self._opened != opened or not self._dir_lock.wanted():
                continue
            self._give_way = True
            with self._lock:
                if self._opened != opened:
                    return  # an operation yielded first (see session)
                # Asked again under the lock: the waiter seen before the search in progress
                # ended may have given up since.
                if self._depth == 0 and self._dir_lock.wanted():
                    self._yield()
                    return
                self._give_way = False

    def _yield(self) -> None:
        try:
            self._close()
        except StoreError as exc:  # closed and unlocked all the same; the next open reads it
            log.warning("giving the embedded store up: %s", exc)

    def _create(self, dim: int) -> None:
        import qdrant_edge as qe

        config = qe.EdgeConfig(
            vectors={schema.DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={schema.SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            qe.EdgeShard.create(str(self.path), config).close()
        except Exception as exc:
            raise StoreError(f"cannot create the embedded Qdrant store at {self.path}: {exc}") from exc

    def _finish_creation(self) -> None:
        """The payload indexes, then the marker that says they are there.

        Creation is two steps, and a process killed between them (a worker over its time
        limit, say) left a store without its indexes, which faceting and filters need. So a
        store without the marker gets them on its next open; creating an index that exists
        is a no-op. A store whose marker names an older layout gets its indexes rebuilt in
        the current one the same way, once (3 s at 100,000 chunks here).
        """
        import qdrant_edge as qe

        try:
            for field, kind in schema.INDEXED_FIELDS.items():
                self._shard.update(
                    qe.UpdateOperation.create_field_index(field, _index_params(field, kind)))
            self._shard.flush()
        except Exception as exc:
            raise StoreError(f"cannot index the embedded Qdrant store at {self.path}: {exc}") from exc
        (self.path / _READY).write_text(_INDEX_LAYOUT)

    def _exists(self) -> bool:
        return (self.path / "edge_config.json").exists() or _has_segments(self.path)

    def _load(self) -> Any:
        import qdrant_edge as qe

        try:
            return qe.EdgeShard.load(str(self.path))
        except Exception as exc:
            raise StoreError(f"cannot open the embedded Qdrant store at {self.path}: {exc}") from exc

    # -- writes ----------------------------------------------------------------------------

    def upsert(self, points: Sequence[StoredChunk]) -> None:
        import qdrant_edge as qe

        if not points:
            return
        batch = [
            qe.Point(
                id=p.chunk.chunk_id,
                vector={
                    schema.DENSE: [float(x) for x in p.dense],
                    schema.SPARSE: qe.SparseVector(
                        indices=list(p.sparse.indices), values=list(p.sparse.values)
                    ),
                },
                payload=schema.payload_of(p),
            )
            for p in points
        ]
        with self._changing():
            self._call(lambda s: s.update(qe.UpdateOperation.upsert_points(batch)))

    def delete(self, doc_id: str, version: str | None = None) -> None:
        import qdrant_edge as qe

        with self._changing():
            self._call(
                lambda s: s.update(
                    qe.UpdateOperation.delete_points_by_filter(_doc_filter(doc_id, version))
                )
            )

    def set_access(self, doc_id: str, groups: Sequence[str]) -> None:
        import qdrant_edge as qe

        payload = {"groups": schema.stored_groups(groups), "public": not groups}
        with self._changing():
            self._call(
                lambda s: s.update(
                    qe.UpdateOperation.set_payload_by_filter(_doc_filter(doc_id, None), payload)
                )
            )

    def optimize(self) -> bool:
        """Index and merge segments: the embedded engine never does it by itself, and an
        unindexed segment is searched by brute force (`enclave bench search` times both)."""
        with self._changing():
            done = bool(self._call(lambda s: s.optimize()))
        return done

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """A change, flushed at its end: so closing (every yield, in yield mode) has
        nothing to flush unless a change failed half-way."""
        with self.session():
            self._unflushed = True
            yield
            self._call(lambda s: s.flush())
            self._unflushed = False

    # -- reads -----------------------------------------------------------------------------

    def hybrid_search(
        self,
        dense: Sequence[float],
        sparse: SparseVector,
        groups: Sequence[str],
        limit: int,
        prefetch: int,
        fusion: str,
    ) -> list[Hit]:
        import qdrant_edge as qe

        access = _access_filter(groups)
        prefetches = [
            qe.Prefetch(
                limit=prefetch,
                query=qe.Query.Nearest([float(x) for x in dense], using=schema.DENSE),
                filter=access,
            )
        ]
        if sparse.indices:
            prefetches.append(
                qe.Prefetch(
                    limit=prefetch,
                    query=qe.Query.Nearest(
                        qe.SparseVector(indices=list(sparse.indices), values=list(sparse.values)),
                        using=schema.SPARSE,
                    ),
                    filter=access,
                )
            )
        fuse: Any = qe.Fusion.Dbsf() if fusion == "dbsf" else qe.Fusion.Rrf(k=60)
        request = qe.QueryRequest(
            limit=limit, prefetches=prefetches, query=fuse, filter=access, with_payload=True
        )
        with self.session():
            points = self._call(lambda s: s.query(request))
        return [Hit(schema.chunk_of(str(p.id), p.payload or {}), float(p.score)) for p in points]

    def nearest(
        self, vector: Sequence[float] | SparseVector, groups: Sequence[str], limit: int
    ) -> list[Hit]:
        import qdrant_edge as qe

        if isinstance(vector, SparseVector):
            if not vector.indices:
                return []
            query = qe.Query.Nearest(
                qe.SparseVector(indices=list(vector.indices), values=list(vector.values)),
                using=schema.SPARSE,
            )
        else:
            query = qe.Query.Nearest([float(x) for x in vector], using=schema.DENSE)
        request = qe.QueryRequest(
            limit=limit, query=query, filter=_access_filter(groups), with_payload=True
        )
        with self.session():
            points = self._call(lambda s: s.query(request))
        return [Hit(schema.chunk_of(str(p.id), p.payload or {}), float(p.score)) for p in points]

    def retrieve(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        with self.session():
            records = self._call(lambda s: s.retrieve(list(chunk_ids), with_payload=True, with_vector=False))
        return [schema.chunk_of(str(r.id), r.payload or {}) for r in records]

    def count(self, doc_id: str | None = None, version: str | None = None) -> int:
        import qdrant_edge as qe

        flt = _doc_filter(doc_id, version) if doc_id else None
        with self.session():
            return int(self._call(lambda s: s.count(qe.CountRequest(filter=flt, exact=True))))

    def doc_counts(self) -> dict[str, int]:
        import qdrant_edge as qe

        request = qe.FacetRequest(key="doc_id", limit=_FACET_LIMIT, exact=True)
        with self.session():
            response = self._call(lambda s: s.facet(request))
        # The edge facet keeps values of deleted points with a count of 0; a server does not.
        return {str(hit.value): int(hit.count) for hit in response.hits if hit.count > 0}

    def versions_of(self, doc_id: str) -> set[str]:
        import qdrant_edge as qe

        request = qe.FacetRequest(
            key="version", limit=_FACET_LIMIT, exact=True, filter=_doc_filter(doc_id, None)
        )
        with self.session():
            response = self._call(lambda s: s.facet(request))
        return {str(hit.value) for hit in response.hits if hit.count > 0}

    def _call(self, fn: Any) -> Any:
        with self.session():
            try:
                return fn(self._shard)
            except Exception as exc:
                raise StoreError(f"embedded Qdrant store: {exc}") from exc


# Written once the store's payload indexes exist (see EdgeStore._finish_creation).
_READY = "enclave-indexes-ready"
# What the marker holds: the indexes' layout. Empty (before): every keyword index read into
# memory at every open, which at 100,000 chunks was most of what an open cost, and
# processes taking turns at the store open it again and again (see _index_params).
_INDEX_LAYOUT = "doc_id and version memory-mapped"


def _indexes_current(path: Path) -> bool:
    try:
        return (path / _READY).read_text() == _INDEX_LAYOUT
    except FileNotFoundError:
        return False


def _has_segments(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _index_params(field: str, kind: str) -> Any:
    """``groups``, which the access filter of every search reads, is read into memory (a
    mapped one cost searches about 2 ms at 100,000 chunks); ``doc_id`` and ``version``,
    which only writes, counts and the document list read, stay files mapped into memory,
    which an open does not read: opening at 100,000 chunks went from 0.42 to 0.18 s."""
    import qdrant_edge as qe

    assert kind == "keyword", kind
    memory = qe.Memory.Pinned if field == "groups" else qe.Memory.Cached
    return qe.KeywordIndexParams(memory=memory)


def _doc_filter(doc_id: str | None, version: str | None) -> Any:
    import qdrant_edge as qe

    must: list[Any] = []
    if doc_id is not None:
        must.append(qe.FieldCondition(key="doc_id", match=qe.MatchValue(doc_id)))
    if version is not None:
        must.append(qe.FieldCondition(key="version", match=qe.MatchValue(version)))
    return qe.Filter(must=must)


def _access_filter(groups: Sequence[str]) -> Any:
    import qdrant_edge as qe

    readable = schema.readable_by(groups)
    return qe.Filter(must=[qe.FieldCondition(key="groups", match=qe.MatchAny(readable))])
