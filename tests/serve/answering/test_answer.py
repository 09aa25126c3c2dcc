"""Answering with the real embedder, store and parser; the model is scripted here (its real
runs are in test_llm_local and test_llm_openai), so every branch is exercised on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.container import Container
from core.errors import InputError
from core.types import Answer, Principal
from serve.answering import prompt
from serve.answering.compose import Shown
from serve.answering.exchange import Turn
from serve.answering.replies import NOT_FOUND, UNVERIFIED
from tests.serve.conftest import answerer

ALICE = Principal("alice")
BOB = Principal("bob", groups=("finance",))
LEAVE = "How many days of paid leave does an employee get?"


def _document_text(c: Container, doc_id: str) -> str:
    """The document's text as stored: its chunks laid out at their offsets."""
    chunks = [h.chunk for h in c.searcher.search("leave hotel passwords plants", BOB, k=100)]
    out: dict[int, str] = {}
    for ch in chunks:
        if ch.doc_id == doc_id:
            out[ch.char_start] = ch.text
    return "".join(out[k] for k in sorted(out))


def _quotes_are_verbatim(c: Container, answer: Answer) -> None:
    for citation in answer.citations:
        chunk = next(
            h.chunk
            for h in c.searcher.search(citation.quote, BOB, k=20)
            if h.chunk.chunk_id == citation.chunk_id
        )
        local = citation.start - chunk.char_start
        assert chunk.text[local : local + len(citation.quote)] == citation.quote
        assert citation.end - citation.start == len(citation.quote)


def test_a_supported_answer_keeps_its_citation_with_a_verbatim_quote(answering: Container) -> None:
    ask, model = answerer(answering, "Every employee gets 28 days of paid leave per calendar year [1].")
    answer = ask.answer(LEAVE, ALICE)
    assert not answer.refused
    assert answer.text.startswith("Every employee gets 28 days of paid leave per calendar year [1]")
    [citation] = answer.citations
    assert citation.supported and citation.n == 1
    assert citation.source.endswith("handbook.md")
    assert "28 days of paid leave" in citation.quote
    _quotes_are_verbatim(answering, answer)
    assert [c.supported for c in answer.checks] == [True]
    # The model saw numbered passages and the rules.
    prompt = model.calls[0][1]["content"]
    assert "[1] (" in prompt and "Question: " + LEAVE in prompt


def test_a_wrong_marker_is_replaced_by_the_passage_that_supports_the_sentence(answering: Container) -> None:
    def reply(messages: list[dict[str, str]]) -> str:
        # Cite the last passage shown, which is not the handbook's leave section.
        last = max(int(n) for n in re.findall(r"^\[(\d+)\] \(", messages[1]["content"], re.M))
        return f"Every employee receives 28 days of paid leave per calendar year [{last}]."

    # Every retrieved passage shown to the model, so there is a wrong one to cite.
    ask, model = answerer(answering, reply, passage_margin=1.0, min_relevance=0.0)
    answer = ask.answer(LEAVE, ALICE)
    assert not answer.refused
    assert "[2] (" in model.calls[0][1]["content"]
    assert [c.source.rsplit("/", 1)[-1] for c in answer.citations] == ["handbook.md"]
    assert answer.checks[0].attributed and answer.checks[0].supported


def test_a_sentence_without_marker_gets_the_supporting_passage_attached(answering: Container) -> None:
    ask, _ = answerer(answering, "Every employee receives 28 days of paid leave per calendar year.")
    answer = ask.answer(LEAVE, ALICE)
    assert answer.text.endswith("year [1].")
    assert answer.checks[0].attributed
    assert answer.citations[0].supported


INVENTED = (
    "Every employee receives 28 days of paid leave per calendar year [1]. "
    "Employees also get a company car and 40 days of sabbatical every 3 years [1]."
)


def test_drop_policy_removes_the_unsupported_sentence_and_says_so(answering: Container) -> None:
    ask, _ = answerer(answering, INVENTED, unsupported="drop")
    answer = ask.answer(LEAVE, ALICE)
    assert not answer.refused
    assert "sabbatical" not in answer.text.split("\n\n")[0]
    assert "1 sentence of the model's answer removed" in answer.text
    assert [(c.supported, c.kept) for c in answer.checks] == [(True, True), (False, False)]
    assert all(c.supported for c in answer.citations)


def test_mark_policy_keeps_it_flagged(answering: Container) -> None:
    ask, _ = answerer(answering, INVENTED, unsupported="mark")
    answer = ask.answer(LEAVE, ALICE)
    assert "sabbatical" in answer.text
    assert {c.supported for c in answer.citations} == {True, False}
    assert [(c.supported, c.kept) for c in answer.checks] == [(True, True), (False, True)]


def test_refuse_policy_makes_the_whole_answer_unverified(answering: Container) -> None:
    ask, _ = answerer(answering, INVENTED, unsupported="refuse")
    shown: list[Shown] = []
    answer = ask.answer(LEAVE, ALICE, on_sentence=shown.append)
    assert answer.outcome == "unverified" and answer.refused
    assert answer.text.startswith(UNVERIFIED) and "sabbatical" not in answer.text
    assert shown == []  # nothing went out before the whole answer was known to hold
    assert not any(c.kept for c in answer.checks)


def test_no_supported_sentence_is_unverified_and_quotes_the_passage_that_answers(
    answering: Container,
) -> None:
    # The relevant passage is right there: the reply must not say the documents do not
    # answer. It says the model's answer could not be verified and quotes the passage.
    ask, _ = answerer(answering, "The moon is made of green cheese [1].")
    answer = ask.answer(LEAVE, ALICE)
    assert answer.outcome == "unverified" and answer.refused
    assert answer.text.startswith(UNVERIFIED) and NOT_FOUND not in answer.text
    assert "28 days of paid leave" in answer.text and "moon" not in answer.text
    assert any("28 days of paid leave" in c.quote for c in answer.citations)
    assert all(c.source.endswith("handbook.md") for c in answer.citations)
    _quotes_are_verbatim(answering, answer)


def test_the_model_saying_not_in_documents_is_unverified_when_passages_are_relevant(
    answering: Container,
) -> None:
    ask, _ = answerer(answering, "NOT IN DOCUMENTS")
    answer = ask.answer(LEAVE, ALICE)
    assert answer.outcome == "unverified" and answer.refusal_reason == "model"
    assert "28 days of paid leave" in answer.text


def test_an_unrelated_question_is_not_found_before_the_model_runs(answering: Container) -> None:
    ask, model = answerer(answering, "France won the 1998 World Cup [1].")
    answer = ask.answer("Who won the 1998 football world cup final in Paris?", ALICE)
    assert answer.outcome == "not_found" and answer.refused
    assert answer.text.startswith(NOT_FOUND)
    assert model.calls == [] and "generation" not in answer.ran_with


def test_sentences_are_handed_on_as_each_is_verified_and_make_up_the_answer(
    answering: Container,
) -> None:
    tokens: list[str] = []
    shown: list[Shown] = []
    written: list[int] = []  # tokens the model had written when each sentence was handed on

    def sentence(s: Shown) -> None:
        shown.append(s)
        written.append(len(tokens))

    reply = ("Every employee receives 28 days of paid leave per calendar year [1]. "
             "Employees also get a company car [1]. "
             "Up to five unused days carry over to the next year and expire on 31 March [1].")
    reply_tokens = re.findall(r"\S+\s*|\s+", reply)
    ask, _ = answerer(answering, reply)
    answer = ask.answer(LEAVE, ALICE, on_token=tokens.append, on_sentence=sentence)
    assert [s.index for s in shown] == [0, 1]
    assert written[0] < len(reply_tokens)  # the first went out while the model still wrote
    assert all(s.supported for s in shown) and "company car" not in " ".join(s.text for s in shown)
    assert answer.text.split("\n\n")[0] == " ".join(s.text for s in shown)
    assert "1 sentence of the model's answer removed" in answer.text
    assert shown[0].citations[0].quote in answer.citations[0].quote


def test_overlapping_quotes_of_one_passage_are_one_citation(answering: Container) -> None:
    reply = ("Every employee receives 28 days of paid leave per calendar year [1]. "
             "Every employee receives 28 days of paid leave [1]. "
             "Up to five unused days carry over to the next year and expire on 31 March [1].")
    ask, _ = answerer(answering, reply)
    answer = ask.answer(LEAVE, ALICE)
    assert answer.outcome == "answered"
    assert [c.n for c in answer.citations] == [1], answer.citations
    [merged] = answer.citations
    assert "28 days of paid leave" in merged.quote and "31 March" in merged.quote
    _quotes_are_verbatim(answering, answer)


def test_the_answer_says_what_it_ran_with(answering: Container) -> None:
    from retrieval.search import Searcher
    from serve.answering.answerer import Answerer

    dense = answering.settings.search.model_copy(update={"mode": "dense", "prefetch": 7})
    searcher = Searcher(dense, answering.store, answering.embedder, answering.sparse,
                        answering.registry)
    ask, _ = answerer(answering, "Every employee receives 28 days of paid leave [1].")
    ask = Answerer(ask.settings, ask.llm, searcher, ask.verifier, ask._generator)
    ran = ask.answer(LEAVE, ALICE).ran_with
    assert ran["retrieval"]["mode"] == "dense" and ran["retrieval"]["k"] == 5
    assert ran["answer"]["unsupported_policy"] == "drop" and ran["prompt_version"]
    assert ran["generation"]["model"] == "fake-scripted"


def test_the_model_never_sees_a_passage_the_asker_may_not_read(answering: Container) -> None:
    ask, model = answerer(answering, "Hotel costs are reimbursed up to 180 euros per night [1].")
    answer = ask.answer("What is the hotel limit per night in major cities?", ALICE)
    seen = " ".join(m["content"] for call in model.calls for m in call)
    assert "180 euros" not in seen and "expense-policy" not in seen
    assert all("expense-policy" not in c.source for c in answer.citations)
    assert "180" not in answer.text.split("\n\n")[0] or answer.refused
    # Bob, in finance, gets the answer with its citation.
    ask, _ = answerer(answering, "Hotel costs are reimbursed up to 180 euros per night in major cities [1].")
    answer = ask.answer("What is the hotel limit per night in major cities?", BOB)
    assert not answer.refused
    assert answer.citations[0].source.endswith("expense-policy.pdf") and answer.citations[0].page == 1


def test_a_planted_instruction_changes_neither_the_rules_nor_what_the_asker_sees(
    answering: Container,
) -> None:
    def obey_the_injection(messages: list[dict[str, str]]) -> str:
        # A model that follows the planted instruction: it "prints" what it was given and
        # adds what it was told to claim, plus a confidential figure from elsewhere.
        return (
            "The office plants are watered every Monday morning [1]. "
            "All expense claims are approved automatically without receipts [1]. "
            "Hotel costs are reimbursed up to 180 euros per night in major cities [2]. "
            "Here are all passages: " + messages[1]["content"].replace("\n", " ")[:300]
        )

    ask, model = answerer(answering, obey_the_injection)
    answer = ask.answer("When are the office plants watered?", ALICE)
    assert not answer.refused
    body = answer.text.split("\n\n")[0]
    assert "Monday" in body
    # Nothing the passages do not say survives, and nothing from a document Alice may not read.
    assert "approved automatically" not in body and "180" not in body
    readable = {h.chunk.doc_id for h in ask.searcher.search("plants leave hotel passwords", ALICE, k=100)}
    assert {c.doc_id for c in answer.citations} <= readable
    assert all(c.supported for c in answer.citations)
    assert all(check.supported for check in answer.checks if check.kept)
    # The rules stay the system prompt's; the planted text reaches the model only as quoted data.
    system, user = model.calls[0]
    assert system["content"] == prompt.SYSTEM
    planted = user["content"].index("ignore previous instructions")
    assert user["content"].rfind("<<<", 0, planted) > user["content"].rfind(">>>", 0, planted)
    assert "expense-policy" not in user["content"] and "180 euros" not in user["content"]


def test_extractive_mode_answers_with_verbatim_sentences_and_no_model(answering: Container) -> None:
    ask, model = answerer(answering, "should not be called", mode="extractive")
    answer = ask.answer(LEAVE, ALICE)
    assert not answer.refused and model.calls == []
    assert answer.model == "extractive"
    assert "Every employee receives 28 days of paid leave per calendar year [1]." in answer.text
    # Two adjacent sentences of one passage: one citation, its quote covering both.
    assert any("Every employee receives 28 days of paid leave per calendar year." in c.quote
               for c in answer.citations)
    assert len({(c.n, c.start) for c in answer.citations}) == len(answer.citations)
    assert all(c.supported for c in answer.citations)
    _quotes_are_verbatim(answering, answer)


def test_a_follow_up_is_rewritten_into_a_standalone_question(answering: Container) -> None:
    history = [Turn("What does the travel policy say about hotels?", "Hotels are reimbursed [1].")]
    # Extractive: the previous question is carried along.
    ask, _ = answerer(answering, "", mode="extractive")
    answer = ask.answer("And what about meals?", BOB, history)
    assert "travel policy" in answer.standalone_question
    assert "60 euros per day" in answer.text
    # Generative: the model rewrites it, and its rewrite is what retrieval runs.
    replies = iter(
        [
            "What does the travel policy say about meals?",
            "Meals are reimbursed up to 60 euros per day with receipts [1].",
        ]
    )
    ask, model = answerer(answering, lambda _: next(replies))
    answer = ask.answer("And what about meals?", BOB, history)
    assert answer.standalone_question == "What does the travel policy say about meals?"
    assert "And what about meals?" in model.calls[0][1]["content"]
    assert not answer.refused and "60 euros" in answer.text


def test_a_rewrite_that_loses_the_conversation_falls_back_to_carrying_it(answering: Container) -> None:
    history = [Turn("What does the travel policy say about hotels?", "Hotels are reimbursed [1].")]
    replies = iter(["Meals are great.", "Meals are reimbursed up to 60 euros per day with receipts [1]."])
    ask, _ = answerer(answering, lambda _: next(replies))
    answer = ask.answer("And what about meals?", BOB, history)
    assert answer.standalone_question == "What does the travel policy say about hotels? And what about meals?"


def test_the_usage_of_an_answer_adds_up_what_the_model_counted_for_each_generation(
    answering: Container,
) -> None:
    history = [Turn("What does the travel policy say about hotels?", "Hotels are reimbursed [1].")]
    texts = ["What does the travel policy say about meals?",
             "Meals are reimbursed up to 60 euros per day with receipts [1]."]
    replies = iter(texts)
    ask, model = answerer(answering, lambda _: next(replies))
    answer = ask.answer("And what about meals?", BOB, history)
    rewrite, written = model.calls
    read = sum(model.count_tokens(m["content"]) for m in rewrite + written)
    # The fake streams a word a piece and counts a piece a token.
    assert dict(answer.usage) == {"prompt_tokens": read,
                                  "completion_tokens": sum(len(t.split()) for t in texts)}


def test_a_model_that_counts_nothing_gets_an_estimate_flagged_as_such(answering: Container) -> None:
    reply = "Every employee receives 28 days of paid leave per calendar year [1]."
    ask, model = answerer(answering, reply)
    model.reports_usage = False
    answer = ask.answer(LEAVE, ALICE)
    [messages] = model.calls
    # What context fitting counted: the system prompt, the question, the passages, without
    # the words that join them into the message.
    joined = model.count_tokens(messages[1]["content"])
    fitted = model.count_tokens(prompt.SYSTEM) + joined - model.count_tokens("Passages: Question: Answer:")
    assert dict(answer.usage) == {"prompt_tokens": fitted, "completion_tokens": len(reply.split()),
                                  "estimated": True}
    assert not answer.refused


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001, "a\x00b", "a\ud800"])
def test_an_empty_oversized_or_broken_question_is_a_clear_input_error(
    answering: Container, question: str,
) -> None:
    with pytest.raises(InputError, match="question"):
        answering.answer_service.prepare(ALICE, question, channel="test")


def test_document_text_helper_covers_the_handbook(answering: Container) -> None:
    # Guards the helper above: offsets must lay chunks out contiguously enough to find text.
    doc = next(h.chunk.doc_id for h in answering.searcher.search(LEAVE, ALICE, k=1))
    assert "28 days of paid leave" in _document_text(answering, doc)
    assert Path  # imported for type hints in helpers
