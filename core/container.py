"""The one place that builds clients from settings. Nothing else constructs them.

Each swappable part has one ``match settings.x.mode:`` factory that imports its
implementation lazily, so ``core`` depends on no other package of the project at
import time and a CLI command pays only for what it uses.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.settings import Settings

# The books too are imported by their factories: `enclave users list` then loads neither
# numpy (core.ports) nor the signing library (the audit's seals), `enclave status` not the
# audit at all.
if TYPE_CHECKING:
    from core.audit import AuditLog
    from core.conversations import ConversationBook
    from core.db import Database
    from core.eval_runs import RunBook
    from core.golden_sets import GoldenBook
    from core.jobs import JobBook
    from core.ports import Embedder, Generator, JobQueue, SparseEncoder, VectorStore
    from core.registry import Registry
    from core.sources import SourceBook
    from core.users import UserBook
    from ingest.jobs import JobRunner
    from ingest.pipeline import Ingestor
    from retrieval.search import Searcher
    from serve.answering.answerer import Answerer
    from serve.answering.service import AnswerService


class Container:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._job_runner: JobRunner | None = None
        # Tests share one loaded model across containers; loading costs seconds.
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        if generator is not None:
            self.__dict__["generator"] = generator

    @cached_property
    def data_dir(self):  # type: ignore[no-untyped-def]
        path = self.settings.resolved_data_dir
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def database(self) -> Database:
        from core.db import Database

        if self.settings.database_url is None:
            self.data_dir  # noqa: B018 - the SQLite file lives there
        return Database(self.settings.resolved_database_url,
                        migrate=self.settings.database_migrate == "auto")

    @cached_property
    def registry(self) -> Registry:
        from core.registry import Registry

        return Registry(self.database)

    @cached_property
    def conversations(self) -> ConversationBook:
        from core.conversations import ConversationBook

        return ConversationBook(self.database)

    @cached_property
    def audit(self) -> AuditLog:
        from core.audit import AuditLog
        from core.audit_checkpoints import open_sealing

        a = self.settings.audit
        sealing = open_sealing(
            self.settings.resolved_seal_key_file, a.seal_key_file is None,
            a.seal_public_keys_file, self.settings.resolved_checkpoint_file,
            a.checkpoint_every_records, a.checkpoint_every_s)
        return AuditLog(self.database, sealing)

    @cached_property
    def users(self) -> UserBook:
        from core.users import UserBook

        return UserBook(self.database)

    @cached_property
    def sources(self) -> SourceBook:
        from core.sources import SourceBook

        return SourceBook(self.database)

    @cached_property
    def golden(self) -> GoldenBook:
        from core.golden_sets import GoldenBook

        return GoldenBook(self.database)

    @cached_property
    def eval_runs(self) -> RunBook:
        from core.eval_runs import RunBook

        return RunBook(self.database)

    @cached_property
    def jobs(self) -> JobBook:
        from core.jobs import JobBook

        return JobBook(self.database)

    @cached_property
    def queue(self) -> JobQueue:
        match self.settings.jobs.mode:
            case "celery":
                from workers.app import create_celery
                from workers.queue import CeleryQueue

                return CeleryQueue(create_celery(self.settings))
            case "inline":
                from ingest.jobs import InlineQueue

                return InlineQueue(self.settings.jobs.inline_workers)
        raise ConfigError(f"unknown jobs mode {self.settings.jobs.mode!r}")

    def job_runner(self, timeouts: tuple[type[BaseException], ...] = ()) -> JobRunner:
        if self._job_runner is None:
            from ingest.jobs import InlineQueue, JobRunner
            from ingest.sources.sync import Connections

            runner = JobRunner(
                self.settings.jobs, self.jobs, self.queue, lambda: self.ingestor,
                timeouts=timeouts, upload_dir=self.settings.resolved_upload_dir,
                private=[self.settings.resolved_data_dir],
                sources=self.sources, connections=Connections(self.settings),
            )
            if isinstance(self.queue, InlineQueue):
                self.queue.runner = runner
            self._job_runner = runner
        return self._job_runner

    @cached_property
    def store(self) -> VectorStore:
        q = self.settings.qdrant
        match q.mode:
            case "edge":
                from retrieval.edge_store import EdgeStore

                return EdgeStore(
                    self.data_dir / "qdrant-edge" / q.collection, q.lock_wait_s, q.hold_open
                )
            case "server":
                from retrieval.client_store import ClientStore, Layout

                return ClientStore.connect(
                    q.collection, url=q.url, api_key=q.api_key, timeout_s=q.timeout_s,
                    layout=Layout(q.shards, q.replication_factor, q.write_consistency),
                )
            case "local":
                from retrieval.client_store import ClientStore

                return ClientStore.connect(q.collection, path=str(self.data_dir / "qdrant-local"))
        raise ConfigError(f"unknown qdrant mode {q.mode!r}")

    @cached_property
    def embedder(self) -> Embedder:
        e = self.settings.embedding
        match e.mode:
            case "sentence-transformers":
                from ingest.embed import SentenceTransformerEmbedder

                return SentenceTransformerEmbedder(e.model_path, e.batch_size, e.threads)
            case "onnx-int8":
                from ingest.embed_onnx import OnnxInt8Embedder

                return OnnxInt8Embedder(
                    e.cache_dir or self.data_dir / "models", e.model_path, e.batch_size, e.threads
                )
            case "fake":
                from core.ports import FakeEmbedder

                return FakeEmbedder()
        raise ConfigError(f"unknown embedding mode {e.mode!r}")

    @cached_property
    def sparse(self) -> SparseEncoder:
        from retrieval.sparse import Bm25SparseEncoder

        return Bm25SparseEncoder()

    @cached_property
    def ingestor(self) -> Ingestor:
        from ingest.pipeline import Ingestor

        return Ingestor(self.settings, self.registry, self.store, self.embedder, self.sparse)

    @cached_property
    def searcher(self) -> Searcher:
        from retrieval.search import Searcher

        return Searcher(self.settings.search, self.store, self.embedder, self.sparse, self.registry)

    @cached_property
    def generator(self) -> Generator:
        llm = self.settings.llm
        match llm.mode:
            case "llama-cpp":
                from serve.answering.llm_local import LlamaCppGenerator

                return LlamaCppGenerator(
                    llm.model_path,
                    context_tokens=llm.context_tokens,
                    timeout_s=llm.timeout_s,
                    temperature=llm.temperature,
                    threads=llm.threads,
                )
            case "openai":
                from serve.answering.llm_openai import OpenAICompatibleGenerator

                assert llm.base_url is not None  # settings validation guarantees it
                return OpenAICompatibleGenerator(
                    llm.base_url,
                    llm.model,
                    api_key=llm.api_key,
                    context_tokens=llm.context_tokens,
                    timeout_s=llm.timeout_s,
                    connect_retries=llm.connect_retries,
                    temperature=llm.temperature,
                )
            case "fake":
                from core.ports import FakeGenerator

                return FakeGenerator(context_tokens=llm.context_tokens)
        raise ConfigError(f"unknown llm mode {llm.mode!r}")

    @cached_property
    def answerer(self) -> Answerer:
        from retrieval.sparse import Bm25SparseEncoder
        from serve.answering.answerer import Answerer
        from serve.answering.verify import Verifier

        analyzer = self.sparse if isinstance(self.sparse, Bm25SparseEncoder) else Bm25SparseEncoder()
        a = self.settings.answer
        verifier = Verifier(self.embedder, analyzer.terms, a.min_support)
        return Answerer(
            self.settings.answer, self.settings.llm, self.searcher, verifier, lambda: self.generator
        )

    @cached_property
    def answer_service(self) -> AnswerService:
        """The one way an answer leaves enclave (serve/answering/service.py)."""
        from serve.answering.service import AnswerService

        return AnswerService(self.answerer, self.registry, self.audit, self.conversations,
                             self.settings.answer.max_question_chars)

    def forget_connections(self) -> None:
        """After a fork: let go of the parent's pooled database connections, untouched."""
        if "database" in self.__dict__:
            self.database.engine.dispose(close=False)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "database" in self.__dict__:
            self.database.close()
