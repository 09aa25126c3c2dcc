"""The admin console's views that are not the CLI's routes already: the health view."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serve.http.console_schemas import HealthOut
from serve.http.deps import ContainerDep, require_role
from serve.http.overview import overview

router = APIRouter(prefix="/v1/admin", tags=["console"], dependencies=[Depends(require_role("admin"))])


@router.get("/health", response_model=HealthOut)
def health(container: ContainerDep) -> HealthOut:
    """The readiness checks, the counts, the disk used by the store, the database and the
    uploads, and the models in use. A figure that cannot be read is null, with the reason
    under ``problems``: the view answers 200 when the service is half down."""
    return HealthOut.model_validate(overview(container))
