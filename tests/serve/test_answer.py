"""Answering with the real embedder, store and parser; the model is scripted here (its real
runs are in test_llm_local and test_llm_openai), so every branch is exercised on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.container import Container
from core.errors import InputError
from core.types import Answer, Principal
from serve import prompt
from serve.answer import REFUSAL, Turn
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


def test_refuse_policy_refuses_the_whole_answer(answering: Container) -> None:
    ask, _ = answerer(answering, INVENTED, unsupported="refuse")
    answer = ask.answer(LEAVE, ALICE)
    assert answer.refused and answer.text.startswith(REFUSAL)
    assert not any(c.supported for c in answer.citations)


def test_an_answer_with_no_supported_sentence_is_a_refusal_listing_the_closest_passages(
    answering: Container,
) -> None:
    ask, _ = answerer(answering, "The moon is made of green cheese [1].")
    answer = ask.answer(LEAVE, ALICE)
    assert answer.refused
    assert "Closest passages:" in answer.text and "handbook.md" in answer.text
    assert answer.citations and not any(c.supported for c in answer.citations)
    _quotes_are_verbatim(answering, answer)


def test_the_model_saying_not_in_documents_is_a_refusal(answering: Container) -> None:
    ask, _ = answerer(answering, "NOT IN DOCUMENTS")
    assert ask.answer(LEAVE, ALICE).refused


def test_an_unrelated_question_is_refused_before_the_model_runs(answering: Container) -> None:
    ask, model = answerer(answering, "France won the 1998 World Cup [1].")
    answer = ask.answer("Who won the 1998 football world cup final in Paris?", ALICE)
    assert answer.refused
    assert model.calls == []


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
    assert "Every employee receives 28 days of paid leave per calendar year." in {
        c.quote for c in answer.citations
    }
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


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001])
def test_an_empty_or_oversized_question_is_a_clear_input_error(answering: Container, question: str) -> None:
    ask, _ = answerer(answering, "unused")
    with pytest.raises(InputError, match="question"):
        ask.answer(question, ALICE)


def test_document_text_helper_covers_the_handbook(answering: Container) -> None:
    # Guards the helper above: offsets must lay chunks out contiguously enough to find text.
    doc = next(h.chunk.doc_id for h in answering.searcher.search(LEAVE, ALICE, k=1))
    assert "28 days of paid leave" in _document_text(answering, doc)
    assert Path  # imported for type hints in helpers
