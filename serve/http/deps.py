"""What routes receive, as ``Annotated`` dependency aliases (the container comes from the app)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from core.container import Container
from core.errors import AccessDenied, Unauthenticated
from core.names import clean_text
from core.settings import Settings
from core.types import Principal
from core.users import KEY_PREFIX
from ingest.jobs import JobRunner
from serve.answering.service import AnswerService
from serve.http.limits import AnswerGate


def clean_params(request: Request) -> None:
    """Every query and path parameter of every route, under the one rule for text
    (core/names.py): a control character or a lone surrogate is a 400 naming it."""
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        if isinstance(value, str):
            clean_text(value, f"the parameter {name!r}", multiline=False)


def get_container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[Container, Depends(get_container)]


def get_runner(container: ContainerDep) -> JobRunner:
    return container.job_runner()


RunnerDep = Annotated[JobRunner, Depends(get_runner)]


def get_principal(request: Request, container: ContainerDep) -> Principal:
    """The caller, from ``Authorization: Bearer <API key or OIDC token>``."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("send your API key as 'Authorization: Bearer <key>'")
    key = key.strip()
    oidc = request.app.state.oidc
    if oidc is not None and not key.startswith(KEY_PREFIX) and key.count(".") == 2:
        principal = oidc.principal(key)
    else:
        principal = container.users.authenticate(key)
        if principal is None:
            raise Unauthenticated("unknown or revoked API key")
    request.app.state.rate.check(principal.user_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(role: str) -> Callable[[Principal], Principal]:
    def check(principal: PrincipalDep) -> Principal:
        if role not in principal.roles:
            raise AccessDenied(f"this route needs the {role} role")
        return principal

    return check


def require_any_role(*roles: str) -> Callable[[Principal], Principal]:
    """Routes two roles share (evaluation: admins run it, auditors feed it golden questions)."""
    def check(principal: PrincipalDep) -> Principal:
        if not set(roles) & set(principal.roles):
            raise AccessDenied(f"this route needs the {' or the '.join(roles)} role")
        return principal

    return check


AdminDep = Annotated[Principal, Depends(require_role("admin"))]
AuditorDep = Annotated[Principal, Depends(require_role("auditor"))]
EvaluatorDep = Annotated[Principal, Depends(require_any_role("admin", "auditor"))]


def get_gate(request: Request) -> AnswerGate:
    return request.app.state.gate  # type: ignore[no-any-return]


GateDep = Annotated[AnswerGate, Depends(get_gate)]


def get_service(container: ContainerDep) -> AnswerService:
    return container.answer_service


ServiceDep = Annotated[AnswerService, Depends(get_service)]


def get_settings(container: ContainerDep) -> Settings:
    return container.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
