"""Routes about people: who the caller is."""

from __future__ import annotations

from fastapi import APIRouter

from serve.http.deps import PrincipalDep
from serve.http.people_schemas import MeOut

router = APIRouter(prefix="/v1", tags=["people"])


@router.get("/me", response_model=MeOut)
def me(principal: PrincipalDep) -> MeOut:
    """Who the key or token belongs to: groups, roles, and the web pages those roles open."""
    return MeOut.of(principal)
