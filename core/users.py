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

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, false, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.choices import ROLES as ROLES  # where callers have always found it
from core.db import Base, Database
from core.errors import InputError, LastAdmin, NotFound
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
class KeyInfo:
    """An active key as listings show it: never the key, only its first characters."""

    key_id: int
    user_id: str
    shown: str
    created_at: datetime


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
        roles = validate_roles(roles)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            _write_lock(s)
            row = s.get(UserRow, user_id)
            if row is None:
                row = UserRow(user_id=user_id)
                s.add(row)
            elif ADMIN not in roles:
                _keep_an_admin(s, user_id)
            row.groups_json = json.dumps(list(groups))
            row.roles_json = json.dumps(list(roles))
            row.revoked_at = None
            s.flush()
            s.add(ApiKeyRow(user_id=user_id, key_sha256=digest(key), shown=key[:10]))
        return key

    def change(self, user_id: str, groups: Sequence[str] | None = None,
               roles: Sequence[str] | None = None) -> tuple[User, User]:
        """Set an active user's groups and/or roles, keeping their keys; returns the user
        before and after. Taking the admin role from the last admin is refused."""
        with self.db.session() as s:
            _write_lock(s)  # concurrent changes of one user: each one's "before" is true
            row = s.get(UserRow, user_id)
            if row is None or row.revoked_at is not None:
                raise NotFound(f"no active user {user_id!r}")
            before = _user(row, ())
            if groups is not None:
                row.groups_json = json.dumps(list(validate_groups(groups)))
            if roles is not None:
                checked = validate_roles(roles)
                if ADMIN not in checked:
                    _keep_an_admin(s, user_id)
                row.roles_json = json.dumps(list(checked))
            s.flush()
            return before, _user(row, ())

    @staticmethod
    def clean(user_id: str, groups: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        """The user id and groups as :meth:`add` stores them: what a caller should print."""
        return clean_user_id(user_id), validate_groups(groups)

    def revoke(self, user_id: str) -> int:
        """Revoke the user and every key of theirs; returns how many keys were active."""
        with self.db.session() as s:
            _write_lock(s)
            row = s.get(UserRow, user_id)
            if row is None:
                raise NotFound(f"no user {user_id!r}")
            _keep_an_admin(s, user_id)
            row.revoked_at = _now()
            result = s.execute(update(ApiKeyRow).where(ApiKeyRow.user_id == user_id,
                                                       ApiKeyRow.revoked_at.is_(None))
                               .values(revoked_at=_now()))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def keys(self, user_id: str | None = None) -> list[KeyInfo]:
        """Active keys of active users (of one user), oldest first."""
        query = (select(ApiKeyRow).join(UserRow, UserRow.user_id == ApiKeyRow.user_id)
                 .where(ApiKeyRow.revoked_at.is_(None), UserRow.revoked_at.is_(None))
                 .order_by(ApiKeyRow.key_id))
        if user_id is not None:
            query = query.where(ApiKeyRow.user_id == user_id)
        with self.db.session() as s:
            return [KeyInfo(r.key_id, r.user_id, r.shown, r.created_at) for r in s.scalars(query)]

    def revoke_key(self, user_id: str, key_id: int) -> KeyInfo:
        """Revoke one active key of the user; the user and their other keys stay."""
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.user_id != user_id or row.revoked_at is not None:
                raise NotFound(f"no active key {key_id} of {user_id!r}")
            row.revoked_at = _now()
            return KeyInfo(row.key_id, row.user_id, row.shown, row.created_at)

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

    def user(self, user_id: str) -> User:
        """One user, revoked or not, with the shown prefixes of their active keys."""
        with self.db.session() as s:
            row = s.get(UserRow, user_id)
            if row is None:
                raise NotFound(f"no user {user_id!r}")
            keys = s.scalars(select(ApiKeyRow.shown).where(
                ApiKeyRow.user_id == user_id, ApiKeyRow.revoked_at.is_(None))
                .order_by(ApiKeyRow.key_id)).all()
            return _user(row, tuple(keys))

    def users(self) -> list[User]:
        with self.db.session() as s:
            rows = s.scalars(select(UserRow).order_by(UserRow.user_id)).all()
            keys: dict[str, list[str]] = {}
            for user_id, shown in s.execute(select(ApiKeyRow.user_id, ApiKeyRow.shown).where(
                    ApiKeyRow.revoked_at.is_(None)).order_by(ApiKeyRow.key_id)):
                keys.setdefault(user_id, []).append(shown)
            return [_user(r, tuple(keys.get(r.user_id, []))) for r in rows]


ADMIN = "admin"


def _user(row: UserRow, keys: tuple[str, ...]) -> User:
    return User(row.user_id, tuple(json.loads(row.groups_json)), tuple(json.loads(row.roles_json)),
                keys, row.revoked_at is not None)


def _keep_an_admin(s: Session, user_id: str) -> None:
    """Refuse a change that leaves ``user_id`` no admin when they are the last active one.

    Two admins taking the role from each other at once must not both succeed, so the check
    reads under the users' write lock (:func:`_write_lock`)."""
    _write_lock(s)
    rows = s.execute(select(UserRow.user_id, UserRow.roles_json)
                     .where(UserRow.revoked_at.is_(None))).all()
    admins = [uid for uid, roles in rows if ADMIN in json.loads(roles)]
    if admins == [user_id]:
        raise LastAdmin(f"{user_id} is the last admin: make another user an admin first")


def _write_lock(s: Session) -> None:
    """Serialise changes of users: what this session reads next is not changed by another
    writer before it commits. SQLite: its one write lock, which an update that matches
    nothing takes. PostgreSQL: every user's row, always in the same order (no deadlock)."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(update(UserRow).where(false()).values(revoked_at=None))
    else:
        s.execute(select(UserRow.user_id).order_by(UserRow.user_id).with_for_update()).all()
