"""Bodies of the routes about people: who the caller is, and the users and keys admins
manage."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.choices import ROLES
from core.types import Principal
from core.users import KeyInfo, User

# The web pages, and the role each needs (None: every signed-in user). The API enforces the
# roles on every route; this only spares the pages a tab that would answer 403.
PAGES: dict[str, str | None] = {"chat": None, "audit": "auditor", "admin": "admin"}

# Names are checked and normalised by core/names.py (the one rule for names); these only
# bound the sizes before that.
_NAME = Field(min_length=1, max_length=200)
_ROLES = f"Roles: {', '.join(ROLES)}. Default: employee."


class MeOut(BaseModel):
    user_id: str
    groups: list[str] = Field(description="The groups whose documents the caller may read.")
    roles: list[str] = Field(description="employee, auditor, admin.")
    pages: list[str] = Field(description="The web pages the caller's roles open, in order.")

    @classmethod
    def of(cls, principal: Principal) -> MeOut:
        return cls(user_id=principal.user_id, groups=list(principal.groups),
                   roles=list(principal.roles),
                   pages=[page for page, role in PAGES.items()
                          if role is None or role in principal.roles])


class KeyOut(BaseModel):
    key_id: int
    shown: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime

    @classmethod
    def of(cls, key: KeyInfo) -> KeyOut:
        return cls(key_id=key.key_id, shown=key.shown, created_at=key.created_at)


class UserOut(BaseModel):
    user_id: str
    groups: list[str]
    roles: list[str]
    revoked: bool
    keys: list[KeyOut] = Field(description="Active keys, oldest first.")

    @classmethod
    def of(cls, user: User, keys: list[KeyInfo]) -> UserOut:
        return cls(user_id=user.user_id, groups=list(user.groups), roles=list(user.roles),
                   revoked=user.revoked,
                   keys=[KeyOut.of(k) for k in keys if k.user_id == user.user_id])


class UserList(BaseModel):
    users: list[UserOut]


class UserCreate(BaseModel):
    """A new user, or a new key for one (their groups and roles set as given)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = _NAME
    groups: list[str] = Field(default_factory=list, max_length=200)
    roles: list[str] = Field(default_factory=list, max_length=len(ROLES), description=_ROLES)


class UserChange(BaseModel):
    """What to change; what is left out stays. The keys stay too."""

    model_config = ConfigDict(extra="forbid")

    groups: list[str] | None = Field(default=None, max_length=200)
    roles: list[str] | None = Field(default=None, max_length=len(ROLES), description=_ROLES)


class KeyIssued(UserOut):
    key: str = Field(description="The new API key: shown only in this reply.")
