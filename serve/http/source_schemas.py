"""The admin API's shapes for sources, apart from core.sources.Source (converted here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.sources import Source
from serve.http.schemas import JobOut


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    kind: Literal["folder", "smb", "imap", "web"]
    location: str = Field(min_length=1, max_length=2000)
    username: str | None = Field(default=None, max_length=200)
    # Where the password comes from (env:NAME or file:/path); never the password itself.
    credentials: str | None = Field(default=None, max_length=500)
    include: list[str] = Field(default_factory=list, max_length=100)
    exclude: list[str] = Field(default_factory=list, max_length=100)
    # Mailbox and website sources: who may read them ("@public": everyone).
    groups: list[str] = Field(default_factory=list, max_length=100)
    # Share and folder sources: principal -> enclave groups ("@public": everyone).
    mapping: dict[str, list[str]] = Field(default_factory=dict)
    options: dict[str, int | float | bool | str] = Field(default_factory=dict)
    every: str | None = Field(default=None, description="Schedule: 15m, 6h, 1d; none: by hand.")


class SourceUpdate(BaseModel):
    """What to change; fields left out stay as they are. ``every``: a schedule or "off"."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, max_length=200)
    credentials: str | None = Field(default=None, max_length=500)
    include: list[str] | None = Field(default=None, max_length=100)
    exclude: list[str] | None = Field(default=None, max_length=100)
    groups: list[str] | None = Field(default=None, max_length=100)
    mapping: dict[str, list[str]] | None = None
    options: dict[str, int | float | bool | str] | None = None
    every: str | None = None


class SourceOut(BaseModel):
    name: str
    kind: str
    location: str
    username: str | None
    credentials: str | None
    include: list[str]
    exclude: list[str]
    groups: list[str]
    mapping: dict[str, list[str]]
    options: dict[str, Any]
    every_s: int | None
    last_sync_at: datetime | None
    last_job: JobOut | None

    @classmethod
    def of(cls, source: Source, job: JobOut | None = None) -> SourceOut:
        return cls(name=source.name, kind=source.kind, location=source.location,
                   username=source.username, credentials=source.credentials,
                   include=list(source.include), exclude=list(source.exclude),
                   groups=list(source.groups),
                   mapping={k: list(v) for k, v in source.mapping.items()},
                   options=dict(source.options), every_s=source.every_s,
                   last_sync_at=source.last_sync_at, last_job=job)


class SourceList(BaseModel):
    sources: list[SourceOut]


class SourceRemoved(BaseModel):
    name: str
    documents_deleted: int
