"""One question as it travels the answer path, whatever channel it came through."""

from __future__ import annotations

from dataclasses import dataclass

# How an answer reached its reader, as its record says: not streamed; streamed sentence by
# sentence, each once verified; or with the model's raw tokens too (a debugging setting,
# ENCLAVE_SERVE__STREAM_RAW_TOKENS, under which unverified words were shown).
NOT_STREAMED, VERIFIED_SENTENCES, RAW_TOKENS = "none", "verified-sentences", "raw-tokens-debug"


@dataclass(frozen=True, slots=True)
class Turn:
    """An earlier question and the answer enclave gave, for follow-ups."""

    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class Exchange:
    question: str
    history: tuple[Turn, ...]
    conversation_id: str | None  # stored turns go here (None: not stored)
    channel: str  # the door it came through: api, openai, cli, eval
    streaming: str = NOT_STREAMED
