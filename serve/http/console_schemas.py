"""Bodies of the admin console's views (the health view; documents to come)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthCounts(BaseModel):
    documents: int | None = Field(description="Documents with an active version.")
    chunks: int | None = Field(description="Chunks of the active versions, by the registry.")
    stored_chunks: int | None = Field(description="Chunks the store holds.")
    failed_documents: int | None
    failed_items: int | None = Field(description="Job items that failed, every job.")
    open_items: int | None = Field(description="Job items pending, queued or running.")
    queue_depth: int | None = Field(description="Messages in the broker (Celery jobs only).")


class HealthOut(BaseModel):
    ready: bool = Field(description="Every readiness check is ok.")
    checks: dict[str, str] = Field(description="database, store, model, broker: ok or why not.")
    counts: HealthCounts
    disagreements: list[str] = Field(description="Where the registry and the store differ.")
    disk_bytes: dict[str, int | None] = Field(
        description="store (null for a Qdrant server), database, uploads.")
    models: dict[str, str] = Field(description="answers, llm_mode, embedder.")
    problems: dict[str, str] = Field(description="Figures that could not be read, and why.")
    checked_at: str
