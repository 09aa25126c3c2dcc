"""Request and response bodies of feedback on answers; ``core.feedback`` is converted here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.feedback import MAX_COMMENT_CHARS, Feedback


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"] = Field(description="Thumbs up or thumbs down.")
    # Several lines are fine; control characters are refused (400) by the one rule for text.
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS,
                                description="Why, in your words (optional).")


class FeedbackOut(BaseModel):
    """Feedback as recorded: its own audit record names the answer's record."""

    answer_record_id: str
    rating: str
    comment: str | None
    feedback_record_id: str
    at: str

    @classmethod
    def of(cls, f: Feedback) -> FeedbackOut:
        return cls(answer_record_id=f.answer_record_id, rating=f.rating, comment=f.comment,
                   feedback_record_id=f.feedback_record_id, at=f.at)
