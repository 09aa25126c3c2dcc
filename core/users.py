"""Users and their API keys. A key is shown once, at creation; only its SHA-256 is stored.

Keys are 256 random bits, so a plain SHA-256 is enough (nothing to brute-force), and a
lookup by hash needs no per-user salt. Each user is a principal: an id, access groups
and roles (employee, auditor, admin).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core.choices import ROLES as ROLES  # where callers have always found it
from core.db import Base, Database
from core.errors import InputError, NotFound
from core.names import clean_user_id, validate_groups
from core.types import Principal

KEY_PREFIX = "enc_"


def _now() -> datetime:
    return datetime.now(UTC)


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    groups_json: Mapped[str] = mapped_column(Text, default="[]")
    roles_json: Mapped[str] = mapped_column(Text, default='["employee"]')
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    key_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id", ondelete="CASCADE"),
                                         index=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, to tell keys apart in listings without revealing them.
    shown: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    keys: tuple[str, ...]  # the shown prefixes of active keys
    revoked: bool

    @property
    def principal(self) -> Principal:
        return Principal(self.user_id, self.groups, self.roles)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def validate_roles(roles: Sequence[str]) -> tuple[str, ...]:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise InputError(f"unknown role(s) {', '.join(unknown)}: use {', '.join(ROLES)}")
    return tuple(sorted(set(roles) or {"employee"}))


class UserBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, user_id: str, groups: Sequence[str], roles: Sequence[str]) -> str:
        """Create the user, or update their groups and roles; returns a new API key.

        The id and groups are stored as core/names.py normalises them (:meth:`clean`)."""
        user_id = clean_user_id(user_id)
        groups = validate_groups(groups)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            row = s.get(UserRow, user_id)
            if row is None:
                row = UserRow(user_id=user_id)
                s.add(row)
            row.groups_json = json.dumps(list(groups))
            row.roles_json = json.dumps(list(validate_roles(roles)))
            row.revoked_at = None
            s.flush()
            s.add(ApiKeyRow(user_id=user_id, key_sha256=digest(key), shown=key[:10]))
        return key

    @staticmethod
    def clean(user_id: str, groups: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        """The user id and groups as :meth:`add` stores them: what a caller should print."""
        return clean_user_id(user_id), validate_groups(groups)

    def revoke(self, user_id: str) -> int:
        """Revoke the user and every key of theirs; returns how many keys were active."""
        with self.db.session() as s:
            row = s.get(UserRow, user_id)
            if row is None:
                raise NotFound(f"no user {user_id!r}")
            row.revoked_at = _now()
            result = s.execute(update(ApiKeyRow).where(ApiKeyRow.user_id == user_id,
                                                       ApiKeyRow.revoked_at.is_(None))
                               .values(revoked_at=_now()))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def authenticate(self, key: str) -> Principal | None:
        """The principal an active key belongs to; None for an unknown or revoked key."""
        with self.db.session() as s:
            row = s.execute(
                select(UserRow).join(ApiKeyRow, ApiKeyRow.user_id == UserRow.user_id).where(
                    ApiKeyRow.key_sha256 == digest(key), ApiKeyRow.revoked_at.is_(None),
                    UserRow.revoked_at.is_(None))
            ).scalar_one_or_none()
            if row is None:
                return None
            return Principal(row.user_id, tuple(json.loads(row.groups_json)),
                             tuple(json.loads(row.roles_json)))

    def users(self) -> list[User]:
        with self.db.session() as s:
            rows = s.scalars(select(UserRow).order_by(UserRow.user_id)).all()
            keys: dict[str, list[str]] = {}
            for user_id, shown in s.execute(select(ApiKeyRow.user_id, ApiKeyRow.shown).where(
                    ApiKeyRow.revoked_at.is_(None)).order_by(ApiKeyRow.key_id)):
                keys.setdefault(user_id, []).append(shown)
            return [User(r.user_id, tuple(json.loads(r.groups_json)),
                         tuple(json.loads(r.roles_json)), tuple(keys.get(r.user_id, [])),
                         r.revoked_at is not None) for r in rows]
