"""Grounded answers: retrieve what the asker may read, answer from it, check every sentence.

1. A follow-up question is rewritten to stand alone (the model, guarded; else the
   previous question is carried along), then hybrid search runs with the access filter.
2. Relevance gate: when no passage span is close enough to the question, the answer is
   ``not_found`` and lists the closest passages. No model runs.
3. The passages that fit the model's context are numbered and the model answers from them
   (generative), or the best verbatim sentences are the answer (extractive).
4. Each sentence is verified as soon as the model has finished writing it: aligned to the
   passages it cites, or attributed to the passage that supports it. The policy keeps or
   drops it, and a kept one is handed to ``on_sentence`` at once, numbered and quoted: a
   stream shows verified sentences only, never the model's raw words.
5. No supported sentence at all (or one unsupported under the ``refuse`` policy) makes the
   answer ``unverified``: relevant passages exist, so the reply quotes their sentences
   closest to the question instead of claiming the documents do not answer.

The model's markers are never trusted: a citation reaches the answer only with a verbatim
quote from a passage the asker may read, and its ``supported`` flag comes from verification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from core import metrics
from core.errors import InputError
from core.logs import content
from core.ports import Generator, Message, Usage
from core.settings import AnswerSettings, LlmSettings
from core.types import Answer, Hit, Principal
from retrieval.search import Searcher
from serve.answering import prompt
from serve.answering.compose import Composer, Shown, Verified
from serve.answering.exchange import Turn
from serve.answering.extract import best_sentences
from serve.answering.replies import Clock, not_found, unverified
from serve.answering.sentences import SentenceFeed, claim, markers, strip_markers
from serve.answering.verify import PassageIndex, Verifier, pick

log = logging.getLogger(__name__)
EXTRACTIVE_MODEL = "extractive"
# Tokens kept free for the chat template's own wrapping of the messages.
_TEMPLATE_TOKENS = 64

OnSentence = Callable[[Shown], None]
OnToken = Callable[[str], None]


class Answerer:
    def __init__(
        self,
        settings: AnswerSettings,
        llm: LlmSettings,
        searcher: Searcher,
        verifier: Verifier,
        generator: Callable[[], Generator],
    ) -> None:
        self.settings = settings
        self.llm = llm
        self.searcher = searcher
        self.verifier = verifier
        # A factory: extractive mode and answers nothing is relevant to never load the model.
        self._generator = generator

    @property
    def generative(self) -> bool:
        return self.settings.mode == "generative"

    def answer(self, question: str, principal: Principal, history: Sequence[Turn] = (), *,
               on_token: OnToken | None = None, on_sentence: OnSentence | None = None) -> Answer:
        """Answer ``question`` (checked by the caller: see AnswerService) for ``principal``.

        ``on_token`` gets the model's raw pieces (debugging only: they are unverified);
        ``on_sentence`` each sentence of the answer once it is verified and kept.
        """
        if not question.strip():
            raise InputError("the question is empty")
        log.debug("question from %s: %s", principal.user_id, content(question))
        try:
            result = self._answer(question, principal, history, on_token, on_sentence)
        except Exception:
            metrics.ANSWERS.labels("error").inc()
            raise
        log.info("%s in %.2f s with %d citations", result.outcome,
                 result.timings.get("total", 0.0), len(result.citations),
                 extra={"outcome": result.outcome, "model": result.model})
        log.debug("answer: %s", content(result.text))
        metrics.ANSWERS.labels(result.outcome).inc()
        for stage, seconds in result.timings.items():
            if stage in metrics.ANSWER_STAGES:
                metrics.ANSWER_STAGE_SECONDS.labels(stage).observe(seconds)
        return result

    def _answer(self, question: str, principal: Principal, history: Sequence[Turn],
                on_token: OnToken | None, on_sentence: OnSentence | None) -> Answer:
        usage: dict[str, int] = {}
        answer = self._answer_counted(question, principal, history, on_token, on_sentence, usage)
        return replace(answer, usage=usage) if usage else answer

    def _answer_counted(self, question: str, principal: Principal, history: Sequence[Turn],
                        on_token: OnToken | None, on_sentence: OnSentence | None,
                        usage: dict[str, int]) -> Answer:
        clock = Clock()
        standalone = self._standalone(question, history[-self.settings.history_turns :], usage)
        clock.lap("rewrite")
        k = self.settings.passages
        hits = self.searcher.search(standalone, principal, k=k)
        clock.lap("retrieve")
        ran = self._ran_with(k)
        index = self.verifier.index([h.chunk for h in hits])
        scores = [m.score if m else 0.0 for m in self.verifier.best_per_passage(standalone, index)]
        clock.lap("relevance")
        base: dict[str, Any] = {"standalone_question": standalone, "retrieved": tuple(hits)}
        if not scores or max(scores) < self.settings.min_relevance:
            text, closest = not_found(self.verifier, hits, index, standalone)
            return Answer(text, closest, True, "none", clock.done(), refusal_reason="not relevant",
                          outcome="not_found", ran_with=ran, **base)
        # Only passages about as relevant as the best one: the others would only give a
        # small model something off the point to copy.
        floor = max(self.settings.min_relevance, max(scores) - self.settings.passage_margin)
        focused = [p for p, score in enumerate(scores) if score >= floor]
        if self.generative:
            fitted, prompt_tokens = self._fit(hits, focused, standalone)
            ran = {**ran, "generation": self._generation()}
            if not fitted:  # relevant passages, none of which fits the model's context
                return self._unverified(index.subset(focused), [standalone, question], None,
                                        "context", clock, ran, base)
            base["shown"] = tuple(hits[p].chunk.chunk_id for p in fitted)
            shown = index.subset(fitted)
            composer = Composer(shown, self.verifier, standalone,
                                keep_unsupported=self.settings.unsupported == "mark")
            feed = self._write(standalone, hits, fitted, prompt_tokens, shown, composer, clock,
                               on_token, on_sentence, usage)
            model = self._generator().name
            if not composer.supported or (self.settings.unsupported == "refuse"
                                          and composer.supported < len(composer.checks)):
                reason = ("model" if prompt.NOT_ANSWERED.lower() in feed.text.lower()
                          or not feed.text.strip() else "unsupported")
                return self._unverified(shown, [standalone, question], composer, reason, clock,
                                        ran, base, model)
        else:
            base["shown"] = tuple(hits[p].chunk.chunk_id for p in focused)
            shown = index.subset(focused)
            composer = Composer(shown, self.verifier, standalone, keep_unsupported=False)
            for sentence in best_sentences(self.verifier, [standalone, question], shown,
                                           self.settings.extractive_sentences):
                added = composer.add(sentence)
                if added is not None and on_sentence is not None:
                    on_sentence(added)
            clock.lap("verify")
            model = EXTRACTIVE_MODEL
            if not composer.shown:  # no passage sentence long enough to be an answer
                text, closest = not_found(self.verifier, hits, index, standalone)
                return Answer(text, closest, True, model, clock.done(), refusal_reason="empty",
                              outcome="not_found", ran_with=ran, **base)
        return Answer(composer.text(), composer.citations(), False, model, clock.done(),
                      tuple(composer.checks), outcome="answered", ran_with=ran, **base)

    # -- the model writes, verification follows sentence by sentence ----------------------

    def _write(self, question: str, hits: Sequence[Hit], fitted: Sequence[int], prompt_tokens: int,
               shown: PassageIndex, composer: Composer, clock: Clock,
               on_token: OnToken | None, on_sentence: OnSentence | None,
               usage: dict[str, int]) -> SentenceFeed:
        blocks = [prompt.passage_block(n, hits[p].chunk) for n, p in enumerate(fitted, 1)]
        messages = prompt.answer_messages(question, blocks)
        feed, seen = SentenceFeed(), set[str]()
        release = _Release(on_sentence, self.settings.unsupported)
        verifying = 0.0

        def take(sentence: str) -> None:
            nonlocal verifying
            started = time.perf_counter()
            verified = self._verify(sentence, shown, len(fitted), question, seen)
            if verified is not None:
                release.add(composer.add(verified), verified.supported)
            verifying += time.perf_counter() - started

        def on_piece(piece: str) -> None:
            if on_token is not None:
                on_token(piece)
            for sentence in feed.feed(piece):
                take(sentence)

        self._generate(messages, on_piece, usage=usage, prompt_tokens=prompt_tokens)
        for sentence in feed.close():
            take(sentence)
        clock.lap("generate")
        # Verification ran while the model wrote: its time is its own, not the model's.
        clock.laps["generate"] = round(clock.laps["generate"] - verifying, 4)
        clock.laps["verify"] = round(clock.laps.get("verify", 0.0) + verifying, 4)
        if composer.supported and not (self.settings.unsupported == "refuse"
                                       and composer.supported < len(composer.checks)):
            release.finish()
        return feed

    def _verify(self, sentence: str, index: PassageIndex, passages: int, question: str,
                seen: set[str]) -> Verified | None:
        """One sentence of the model's against the passages it saw; None if not a claim."""
        plain = claim(sentence, seen)
        if plain is None:
            return None
        cited = [n for n in markers(sentence) if 1 <= n <= passages]
        row = self.verifier.grid([plain], index, question)[0]
        best = pick(row, range(passages))
        own = pick(row, [n - 1 for n in cited]) if cited else None
        if own is not None and self.verifier.supports(own):
            return Verified(plain, cited, own, True, False)
        if best is not None and self.verifier.supports(best):
            return Verified(plain, [best.passage + 1], best, True, True)
        return Verified(plain, cited, own or best, False, False)

    def _unverified(self, shown: PassageIndex, questions: list[str], composer: Composer | None,
                    reason: str, clock: Clock, ran: dict[str, Any], base: dict[str, Any],
                    model: str | None = None) -> Answer:
        quotes = best_sentences(self.verifier, questions, shown, self.settings.extractive_sentences)
        text, cited = unverified(shown, quotes)
        # Nothing the model wrote is in the reply: every sentence's check says so.
        checks = tuple(replace(c, cited=(), kept=False) for c in (composer.checks if composer else ()))
        return Answer(text, cited, True, model or self._generator().name, clock.done(), checks,
                      refusal_reason=reason, outcome="unverified", ran_with=ran, **base)

    # -- what the answer runs with ----------------------------------------------------------

    def _ran_with(self, k: int) -> dict[str, Any]:
        a = self.settings
        return {
            "retrieval": self.searcher.describe(k),
            "relevance": {"min_relevance": a.min_relevance, "passage_margin": a.passage_margin},
            "answer": {"mode": a.mode, "unsupported_policy": a.unsupported,
                       "min_support": self.verifier.min_support,
                       "extractive_sentences": a.extractive_sentences,
                       "history_turns": a.history_turns},
            "prompt_version": prompt.PROMPT_VERSION,
        }

    def _generation(self) -> dict[str, Any]:
        generator = self._generator()
        return {"model": generator.name, "temperature": self.llm.temperature,
                "max_tokens": self.llm.max_tokens, "context_tokens": generator.context_tokens}

    # -- steps ------------------------------------------------------------------------------

    def _standalone(self, question: str, history: Sequence[Turn], usage: dict[str, int]) -> str:
        if not history:
            return question
        previous = history[-1].question
        fallback = f"{previous} {question}"
        if not self.generative:
            return fallback
        messages: list[Message] = []
        for turn in history:
            messages += [
                {"role": "user", "content": turn.question},
                {"role": "assistant", "content": _clean(turn.answer)},
            ]
        reply = "".join(self._generate(prompt.rewrite_messages(messages, question), None, 96,
                                       usage))
        rewritten = reply.strip().splitlines()[0].strip(" \"'") if reply.strip() else ""
        # A small model may answer instead of rewriting, or drop the topic: keep the rewrite
        # only when it is question-sized, keeps every term of the follow-up and carries
        # some of the conversation's.
        terms = set(self.verifier.terms(rewritten))
        sized = 3 <= len(rewritten) <= 2 * len(fallback) + 40
        keeps = set(self.verifier.terms(question)) <= terms
        carries = bool(terms & set(self.verifier.terms(" ".join(t.question for t in history))))
        return rewritten if sized and keeps and carries else fallback

    def _fit(self, hits: Sequence[Hit], positions: Sequence[int], question: str) -> tuple[list[int], int]:
        """The passages that fit the model's context, and the tokens of the prompt they make
        (system prompt, question, passage blocks): the estimate of what the model reads, should
        it not count that itself."""
        generator = self._generator()
        prompt_tokens = generator.count_tokens(prompt.SYSTEM) + generator.count_tokens(question)
        budget = generator.context_tokens - self.llm.max_tokens - _TEMPLATE_TOKENS - prompt_tokens
        chosen: list[int] = []
        for p in positions:
            cost = generator.count_tokens(prompt.passage_block(len(chosen) + 1, hits[p].chunk))
            if cost <= budget:
                chosen.append(p)
                budget -= cost
                prompt_tokens += cost
        return chosen, prompt_tokens

    def _generate(
        self, messages: Sequence[Message], on_token: Callable[[str], None] | None,
        max_tokens: int = 0, usage: dict[str, int] | None = None, prompt_tokens: int | None = None,
    ) -> list[str]:
        """The model's reply to ``messages``, its tokens added to ``usage``: as the model
        counted them, else estimated (``prompt_tokens``, already counted by the caller, or a
        count of the messages; one token a piece) and ``usage["estimated"]`` says so."""
        pieces: list[str] = []
        generator = self._generator()
        stream = generator.stream(messages, max_tokens or self.llm.max_tokens)
        try:
            for piece in stream:
                pieces.append(piece)
                if on_token is not None:
                    on_token(piece)
        finally:
            # A stop midway (the reader went away) must end the generation now: a suspended
            # llama.cpp stream holds the model's lock until it is closed.
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            # None from a server that sends no counts, a reply cut short, and a bare iterator
            # (test doubles that wrap a generator's stream).
            reported: Usage | None = getattr(stream, "usage", None)
            if reported is not None:
                read, written = reported.prompt_tokens, reported.completion_tokens
            else:
                read = (prompt_tokens if prompt_tokens is not None
                        else sum(generator.count_tokens(m["content"]) for m in messages))
                written = len(pieces)  # every model here streams about one token a piece
            metrics.LLM_TOKENS.labels("completion").inc(written)
            metrics.LLM_TOKENS.labels("prompt").inc(read)
            if usage is not None:
                usage["prompt_tokens"] = usage.get("prompt_tokens", 0) + read
                usage["completion_tokens"] = usage.get("completion_tokens", 0) + written
                if reported is None:
                    usage["estimated"] = True
        return pieces


class _Release:
    """When a verified sentence may reach the reader.

    At once, normally. Under the ``refuse`` policy only once the whole answer is known to
    be supported; under ``mark``, an unsupported sentence waits for a supported one, so an
    answer that ends unverified has shown nothing.
    """

    def __init__(self, emit: OnSentence | None, policy: str) -> None:
        self.emit = emit
        self.hold = policy == "refuse"
        self.open = False
        self.pending: list[Shown] = []

    def add(self, shown: Shown | None, supported: bool) -> None:
        if shown is None or self.emit is None:
            return
        self.open = self.open or supported
        if self.hold or not self.open:
            self.pending.append(shown)
            return
        self.finish()
        self.emit(shown)

    def finish(self) -> None:
        if self.emit is not None:
            for shown in self.pending:
                self.emit(shown)
        self.pending = []


def _clean(answer: str) -> str:
    return strip_markers(answer.split("\n\n(")[0])[:1000]
