"""Employees' feedback on their own answers: thumbs up or down, with an optional comment.

Anyone signed in may rate the answers they were given, and only those: another person's
answer, a record that is no answer and an unknown id are all the same 404. Rate limits
apply per key, as for chat (``get_principal``).
"""

from __future__ import annotations

from fastapi import APIRouter

from core.errors import NotFound
from core.feedback import feedback_on, give_feedback, own_answer
from serve.http.deps import ContainerDep, PrincipalDep
from serve.http.feedback_schemas import FeedbackIn, FeedbackOut

router = APIRouter(prefix="/v1/answers", tags=["chat"])

NO_FEEDBACK = "no feedback of yours on this answer"


@router.post("/{audit_id}/feedback", response_model=FeedbackOut)
def give(audit_id: str, body: FeedbackIn, principal: PrincipalDep,
         container: ContainerDep) -> FeedbackOut:
    """Rate one of your answers (its ``audit_id``). Each call is one more audit record; the
    latest is the answer's rating."""
    return FeedbackOut.of(give_feedback(container.audit, principal, audit_id, body.rating,
                                        body.comment, "api"))


@router.get("/{audit_id}/feedback", response_model=FeedbackOut)
def mine(audit_id: str, principal: PrincipalDep, container: ContainerDep) -> FeedbackOut:
    """Your latest feedback on one of your answers; 404 when there is none."""
    try:
        own_answer(container.audit, principal, audit_id)
    except NotFound:
        raise NotFound(NO_FEEDBACK) from None  # one message: nothing to tell answers apart
    found = feedback_on(container.audit, audit_id)
    if found is None or found.user_id != principal.user_id:
        raise NotFound(NO_FEEDBACK)
    return FeedbackOut.of(found)
