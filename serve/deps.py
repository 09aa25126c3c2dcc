"""What routes receive, as ``Annotated`` dependency aliases (the container comes from the app)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from core.container import Container
from core.errors import AccessDenied
from ingest.jobs import JobRunner


def get_container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[Container, Depends(get_container)]


def get_runner(container: ContainerDep) -> JobRunner:
    return container.job_runner()


RunnerDep = Annotated[JobRunner, Depends(get_runner)]


def require_loopback(request: Request) -> str:
    """Admin routes answer only this machine until authentication arrives; returns the caller."""
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise AccessDenied("admin routes answer only clients on this machine (loopback)")
    return f"admin@{host}"


AdminDep = Annotated[str, Depends(require_loopback)]
