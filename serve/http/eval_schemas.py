"""The evaluation API's shapes, apart from core.golden and core.eval_runs (converted here)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.eval_runs import EvalRun
from core.golden import GoldenQuestion
from core.golden_sets import GoldenSet

MAX_ITEMS = 50  # documents or facts of one question: more is a mistake, not a golden question
Item = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class RunSummary(BaseModel):
    run_id: str
    batch_id: str  # runs started together by one `enclave eval golden`: side by side
    golden: str  # the file or set asked
    golden_sha256: str
    config: str
    status: str  # running, done or failed
    reason: str | None  # why it failed
    settings: dict[str, Any]  # what it ran with (no secrets)
    figures: dict[str, Any]  # empty until it is done
    created_by: str
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, run: EvalRun) -> RunSummary:
        return cls(run_id=run.run_id, batch_id=run.batch_id, golden=run.golden,
                   golden_sha256=run.golden_sha256, config=run.config, status=run.status,
                   reason=run.reason, settings=run.settings, figures=run.figures,
                   created_by=run.created_by, started_at=run.started_at,
                   finished_at=run.finished_at)


class RunList(BaseModel):
    runs: list[RunSummary]
    # Pass as ``before`` for the next (older) page; null on the last page.
    next_before: datetime | None


class RunDetail(RunSummary):
    results: list[dict[str, Any]]  # per question, in the golden set's order

    @classmethod
    def load(cls, run: EvalRun) -> RunDetail:
        return cls(**RunSummary.of(run).model_dump(), results=list(run.results))


class GoldenSetOut(BaseModel):
    name: str
    questions: int
    updated_at: datetime

    @classmethod
    def of(cls, found: GoldenSet) -> GoldenSetOut:
        return cls(name=found.name, questions=found.questions, updated_at=found.updated_at)


class GoldenSetList(BaseModel):
    sets: list[GoldenSetOut]


class GoldenQuestionOut(BaseModel):
    id: str
    question: str
    user: str | None
    groups: list[str]
    answerable: bool
    documents: list[str]
    reference: str | None
    facts: list[str]
    added_by: str | None
    from_record: str | None  # the audit record it was promoted from

    @classmethod
    def of(cls, q: GoldenQuestion) -> GoldenQuestionOut:
        return cls(id=q.qid, question=q.question, user=q.user, groups=list(q.groups),
                   answerable=q.answerable, documents=list(q.documents), reference=q.reference,
                   facts=list(q.facts), added_by=q.added_by, from_record=q.from_record)


class GoldenSetDetail(BaseModel):
    name: str
    questions: list[GoldenQuestionOut]


class GoldenPromote(BaseModel):
    """An answer's audit record made a golden question; what is left out comes from the record
    (the documents it cited, answerable when it was answered)."""

    model_config = ConfigDict(extra="forbid")

    from_record: str = Field(min_length=1, max_length=64)
    id: str | None = Field(default=None, min_length=1, max_length=128)
    documents: list[Item] | None = Field(default=None, max_length=MAX_ITEMS)
    answerable: bool | None = None
    reference: str | None = Field(default=None, min_length=1, max_length=4000)
    facts: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)


class GoldenRemoved(BaseModel):
    set: str
    id: str
    removed: bool
