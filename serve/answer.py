"""Grounded answers: retrieve what the asker may read, answer from it, check every sentence.

1. A follow-up question is rewritten to stand alone (the model, guarded; else the
   previous question is carried along), then hybrid search runs with the access filter.
2. Relevance gate: when no passage span is close enough to the question, refuse and list
   the closest passages. No model runs.
3. The passages that fit the model's context are numbered and the model answers from them
   (generative), or the best verbatim sentences are the answer (extractive).
4. Every sentence is aligned to the passages it cites; a sentence without a usable marker
   is attributed to the passage that supports it, if one does. The policy decides what
   happens to unsupported sentences; no supported sentence left means a refusal.

The model's markers are never trusted: a citation reaches the answer only with a verbatim
quote from a passage the asker may read, and its ``supported`` flag comes from verification.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from core import metrics
from core.errors import InputError
from core.logs import content
from core.names import clean_text
from core.ports import Generator, Message
from core.settings import AnswerSettings, LlmSettings
from core.types import Answer, Chunk, Citation, Hit, Principal, SentenceCheck
from retrieval.search import Searcher
from serve import prompt
from serve.sentences import answer_sentences, markers, split_sentences, strip_markers
from serve.verify import Match, PassageIndex, Verifier, pick

log = logging.getLogger(__name__)
REFUSAL = "The documents you can access do not answer this question."
EXTRACTIVE_MODEL = "extractive"
_MIN_ANSWER_WORDS = 5
# Tokens kept free for the chat template's own wrapping of the messages.
_TEMPLATE_TOKENS = 64


def check_question(question: str, limit: int) -> str:
    """The question, stripped; InputError when it is empty, too long, or not text."""
    question = question.strip() if isinstance(question, str) else ""
    if not question:
        raise InputError("the question is empty")
    clean_text(question, "the question")
    if len(question) > limit:
        raise InputError(f"the question is {len(question)} characters long; the limit is {limit}")
    return question


@dataclass(frozen=True, slots=True)
class Turn:
    """An earlier question and the answer enclave gave, for follow-ups."""

    question: str
    answer: str


@dataclass(slots=True)
class _Sentence:
    text: str  # markers removed
    cited: list[int]  # passage numbers (1-based, as in the prompt) after verification
    match: Match | None
    supported: bool
    attributed: bool


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
        # A factory: extractive mode and refusals never load the model.
        self._generator = generator

    @property
    def generative(self) -> bool:
        return self.settings.mode == "generative"

    def answer(
        self,
        question: str,
        principal: Principal,
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        question = self._check(question)
        log.debug("question from %s: %s", principal.user_id, content(question))
        try:
            result = self._timed_answer(question, principal, history, on_token)
        except Exception:
            metrics.ANSWERS.labels("error").inc()
            raise
        outcome = "refused" if result.refused else "answered"
        log.info("%s in %.2f s with %d citations", outcome, result.timings.get("total", 0.0),
                 len(result.citations), extra={"outcome": outcome, "model": result.model})
        log.debug("answer: %s", content(result.text))
        metrics.ANSWERS.labels(outcome).inc()
        for stage, seconds in result.timings.items():
            if stage in metrics.ANSWER_STAGES:
                metrics.ANSWER_STAGE_SECONDS.labels(stage).observe(seconds)
        return result

    def _timed_answer(
        self,
        question: str,
        principal: Principal,
        history: Sequence[Turn],
        on_token: Callable[[str], None] | None,
    ) -> Answer:
        clock = _Clock()
        standalone = self._standalone(question, history[-self.settings.history_turns :])
        clock.lap("rewrite")
        hits = self.searcher.search(standalone, principal, k=self.settings.passages)
        clock.lap("retrieve")
        shown: list[str] = []  # chunk ids the model was given, in prompt order
        result = self._answer(question, standalone, hits, clock, shown, on_token)
        # The audit records what was retrieved and what the model saw, not only what it said.
        return replace(result, retrieved=tuple(hits), shown=tuple(shown))

    def _answer(
        self,
        question: str,
        standalone: str,
        hits: Sequence[Hit],
        clock: _Clock,
        shown_ids: list[str],
        on_token: Callable[[str], None] | None,
    ) -> Answer:
        index = self.verifier.index([h.chunk for h in hits])
        scores = [m.score if m else 0.0 for m in self.verifier.best_per_passage(standalone, index)]
        clock.lap("relevance")
        if not scores or max(scores) < self.settings.min_relevance:
            return self._refuse(hits, index, standalone, clock, "not relevant")
        # Only passages about as relevant as the best one: the others would only give a
        # small model something off the point to copy.
        floor = max(self.settings.min_relevance, max(scores) - self.settings.passage_margin)
        focused = [p for p, score in enumerate(scores) if score >= floor]

        if self.generative:
            focused = self._fit(hits, focused, standalone)
            if not focused:
                return self._refuse(hits, index, standalone, clock, "context")
            shown_ids.extend(hits[p].chunk.chunk_id for p in focused)
            blocks = [prompt.passage_block(n, hits[p].chunk) for n, p in enumerate(focused, 1)]
            messages = prompt.answer_messages(standalone, blocks)
            text = "".join(self._generate(messages, on_token))
            clock.lap("generate")
            if prompt.NOT_ANSWERED.lower() in text.lower() or not text.strip():
                return self._refuse(hits, index, standalone, clock, "model")
            shown = index.subset(focused)
            sentences = self._verify(text, shown, len(focused), standalone)
            model = self._model_name()
        else:
            shown_ids.extend(hits[p].chunk.chunk_id for p in focused)
            shown = index.subset(focused)
            sentences = self._extract([standalone, question], shown)
            model = EXTRACTIVE_MODEL
        clock.lap("verify")
        return self._compose(sentences, shown, hits, index, standalone, clock, model)

    # -- steps ---------------------------------------------------------------------------

    def _check(self, question: str) -> str:
        return check_question(question, self.settings.max_question_chars)

    def _standalone(self, question: str, history: Sequence[Turn]) -> str:
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
        reply = "".join(self._generate(prompt.rewrite_messages(messages, question), None, 96))
        rewritten = reply.strip().splitlines()[0].strip(" \"'") if reply.strip() else ""
        # A small model may answer instead of rewriting, or drop the topic: keep the rewrite
        # only when it is question-sized, keeps every term of the follow-up and carries
        # some of the conversation's.
        terms = set(self.verifier.terms(rewritten))
        sized = 3 <= len(rewritten) <= 2 * len(fallback) + 40
        keeps = set(self.verifier.terms(question)) <= terms
        carries = bool(terms & set(self.verifier.terms(" ".join(t.question for t in history))))
        return rewritten if sized and keeps and carries else fallback

    def _fit(self, hits: Sequence[Hit], positions: Sequence[int], question: str) -> list[int]:
        generator = self._generator()
        budget = (
            generator.context_tokens
            - self.llm.max_tokens
            - _TEMPLATE_TOKENS
            - generator.count_tokens(prompt.SYSTEM)
            - generator.count_tokens(question)
        )
        chosen: list[int] = []
        for p in positions:
            cost = generator.count_tokens(prompt.passage_block(len(chosen) + 1, hits[p].chunk))
            if cost <= budget:
                chosen.append(p)
                budget -= cost
        return chosen

    def _generate(
        self, messages: Sequence[Message], on_token: Callable[[str], None] | None, max_tokens: int = 0
    ) -> list[str]:
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
            # Both servers stream about one token per piece.
            metrics.LLM_TOKENS.labels("completion").inc(len(pieces))
            metrics.LLM_TOKENS.labels("prompt").inc(
                sum(generator.count_tokens(m["content"]) for m in messages))
        return pieces

    def _verify(self, text: str, index: PassageIndex, passages: int, question: str) -> list[_Sentence]:
        raw: list[str] = []
        seen: set[str] = set()
        for sentence in answer_sentences(_unecho(text)):
            bare = strip_markers(sentence)
            key = " ".join(bare.lower().split())
            # Labels and headings the model echoes are not claims; repeats are said once.
            # Questions (often the user's, echoed) are not claims either.
            if not re.search(r"\w", bare) or key in seen or _is_label(bare) or bare.endswith("?"):
                continue
            seen.add(key)
            raw.append(sentence)
        plain = [strip_markers(s) for s in raw]
        cited = [[n for n in markers(s) if 1 <= n <= passages] for s in raw]
        # Each sentence against its own citations, and against every passage the model saw
        # for post-hoc attribution: one batched pass over the embedding model.
        grid = self.verifier.grid(plain, index, question)
        out: list[_Sentence] = []
        for sentence, ns, row in zip(plain, cited, grid, strict=True):
            best = pick(row, range(passages))
            own = pick(row, [n - 1 for n in ns]) if ns else None
            if own is not None and self.verifier.supports(own):
                out.append(_Sentence(sentence, ns, own, True, False))
            elif best is not None and self.verifier.supports(best):
                out.append(_Sentence(sentence, [best.passage + 1], best, True, True))
            else:
                out.append(_Sentence(sentence, ns, own or best, False, False))
        return out

    def _extract(self, questions: Sequence[str], index: PassageIndex) -> list[_Sentence]:
        """The passage sentences closest to the question, verbatim and in reading order.

        ``questions``: the standalone question and the question as asked; a sentence is
        scored against each, so a follow-up's own words count as much as its context.
        """
        candidates = [
            (p, s, e)
            for p, chunk in enumerate(index.chunks)
            for s, e in split_sentences(chunk.text)
            # Headings and table captions are not answers.
            if len(chunk.text[s:e].split()) >= _MIN_ANSWER_WORDS
        ]
        texts = [index.chunks[p].text[s:e] for p, s, e in candidates]
        if not texts:
            return []
        unique = list(dict.fromkeys(questions))
        qvectors = self.verifier.embedder.embed(unique)
        vectors = index.sentence_vectors(candidates, self.verifier.embedder)
        qterms = [set(self.verifier.terms(q)) for q in unique]
        scores = []
        for i, text in enumerate(texts):
            terms = set(self.verifier.terms(text))
            per_question = [
                0.5 * float(vectors[i] @ qv) + 0.5 * (len(qt & terms) / len(qt) if qt else 0.0)
                for qv, qt in zip(qvectors, qterms, strict=True)
            ]
            scores.append(sum(per_question) / len(per_question))
        order = sorted(range(len(texts)), key=lambda i: -scores[i])[: self.settings.extractive_sentences]
        order.sort(key=lambda i: candidates[i])
        out = []
        for i in order:
            p, s, e = candidates[i]
            # A verbatim sentence supports itself; the match records where it stands.
            match = Match(p, s, e, 1.0, 1.0, True)
            out.append(_Sentence(texts[i], [p + 1], match, True, False))
        return out

    def _compose(
        self,
        sentences: list[_Sentence],
        index: PassageIndex,
        hits: Sequence[Hit],
        retrieved: PassageIndex,
        standalone: str,
        clock: _Clock,
        model: str,
    ) -> Answer:
        policy = self.settings.unsupported
        unsupported = [s for s in sentences if not s.supported]
        kept = [s for s in sentences if s.supported or policy == "mark"]
        if not any(s.supported for s in sentences) or (policy == "refuse" and unsupported):
            reason = "unsupported" if sentences else "empty"
            return self._refuse(hits, retrieved, standalone, clock, reason, sentences, model)

        # Citations renumbered in order of first use: [1] is the first passage cited.
        renumber: dict[int, int] = {}
        citations: dict[tuple[int, int, int, bool], Citation] = {}
        parts: list[str] = []
        checks: list[SentenceCheck] = []
        for sentence in sentences:
            is_kept = sentence in kept
            ns: list[int] = []
            if is_kept:
                for passage_n in sentence.cited:
                    n = renumber.setdefault(passage_n, len(renumber) + 1)
                    ns.append(n)
                    match = (
                        sentence.match if sentence.match and sentence.match.passage == passage_n - 1 else None
                    )
                    if match is None:
                        match = self.verifier.best(sentence.text, index, [passage_n - 1], standalone)
                    if match is not None:
                        key = (n, match.start, match.end, sentence.supported)
                        citations.setdefault(
                            key, _citation(n, index.chunks[passage_n - 1], match, sentence.supported)
                        )
                parts.append(_with_marks(sentence.text, ns))
            checks.append(
                SentenceCheck(
                    sentence.text,
                    tuple(ns),
                    sentence.supported,
                    round(sentence.match.score, 4) if sentence.match else 0.0,
                    sentence.attributed,
                    is_kept,
                )
            )
        text = " ".join(parts)
        if dropped := len(sentences) - len(kept):
            text += f"\n\n({_sentences(dropped)} removed: the passages do not support {_them(dropped)}.)"
        return Answer(
            text=text,
            citations=tuple(sorted(citations.values(), key=lambda c: (c.n, c.start))),
            refused=False,
            model=model,
            timings=clock.done(),
            checks=tuple(checks),
            standalone_question=standalone,
        )

    def _refuse(
        self,
        hits: Sequence[Hit],
        index: PassageIndex,
        standalone: str,
        clock: _Clock,
        reason: str,
        sentences: Sequence[_Sentence] = (),
        model: str | None = None,
    ) -> Answer:
        """Say the documents do not answer, and list the closest passages (unsupported)."""
        closest: list[Citation] = []
        lines = [REFUSAL]
        if hits:
            lines.append("Closest passages:")
            matches = self.verifier.best_per_passage(standalone, index, _MIN_ANSWER_WORDS)
            for hit, match in zip(hits[:3], matches, strict=False):
                if match is None:
                    continue
                citation = _citation(len(closest) + 1, hit.chunk, match, False)
                closest.append(citation)
                page = f", page {citation.page}" if citation.page else ""
                lines.append(f'[{citation.n}] {citation.display}{page}: "{_short(citation.quote)}"')
        checks = tuple(
            SentenceCheck(
                s.text, (), s.supported, round(s.match.score, 4) if s.match else 0.0, s.attributed, False
            )
            for s in sentences
        )
        timings = dict(clock.done())
        return Answer(
            text="\n".join(lines),
            citations=tuple(closest),
            refused=True,
            model=model or (self._model_name() if reason in {"model", "unsupported", "empty"} else "none"),
            timings=timings,
            checks=checks,
            standalone_question=standalone,
            refusal_reason=reason,
        )

    def _model_name(self) -> str:
        return self._generator().name if self.generative else EXTRACTIVE_MODEL


def _citation(n: int, chunk: Chunk, match: Match, supported: bool) -> Citation:
    quote = chunk.text[match.start : match.end]
    return Citation(
        n=n,
        chunk_id=chunk.chunk_id,
        doc_id=chunk.doc_id,
        version=chunk.version,
        source=chunk.source,
        display=chunk.display,
        page=chunk.page_start,
        quote=quote,
        # Offsets into the document's extracted text, where the chunk starts at char_start.
        start=chunk.char_start + match.start,
        end=chunk.char_start + match.end,
        supported=supported,
    )


def _sentences(n: int) -> str:
    return f"{n} sentence{'s' if n > 1 else ''} of the model's answer"


def _them(n: int) -> str:
    return "them" if n > 1 else "it"


def _unecho(text: str) -> str:
    """The answer without the passage framing a small model sometimes copies back."""
    text = re.sub(r"(?im)^\s*(?:passage\s*)?\[\d+\]\s*\([^)\n]*\)\s*:?\s*$", "", text)
    return text.replace("<<<", " ").replace(">>>", " ")


def _is_label(sentence: str) -> bool:
    """A heading or label: a few words without closing punctuation, or ending in a colon."""
    words = sentence.split()
    return sentence.rstrip().endswith(":") or (len(words) < 4 and not re.search(r"[.!?]$", sentence))


def _with_marks(sentence: str, ns: Sequence[int]) -> str:
    """The sentence with its markers before the closing punctuation: "... year [1]."."""
    marks = "".join(f"[{n}]" for n in ns)
    if not marks:
        return sentence
    end = re.search(r"[.!?]+[\"')\]]*$", sentence)
    if end is None:
        return f"{sentence} {marks}"
    return f"{sentence[: end.start()].rstrip()} {marks}{sentence[end.start() :]}"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(answer: str) -> str:
    return strip_markers(answer.split("\n\n(")[0])[:1000]


class _Clock:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self.last, 4)
        self.last = now

    def done(self) -> dict[str, float]:
        laps = {k: v for k, v in self.laps.items() if v > 0}
        laps["total"] = round(time.perf_counter() - self.start, 4)
        return laps
