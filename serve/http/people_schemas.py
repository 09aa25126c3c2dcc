"""Bodies of the routes about people: who the caller is (and, with the admin console, the
users and their keys)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.types import Principal

# The web pages, and the role each needs (None: every signed-in user). The API enforces the
# roles on every route; this only spares the pages a tab that would answer 403.
PAGES: dict[str, str | None] = {"chat": None, "audit": "auditor", "admin": "admin"}


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
