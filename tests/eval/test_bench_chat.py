"""`enclave bench chat` against a real server: figures printed, no errors within the slots."""

from __future__ import annotations

from pathlib import Path

from core.container import Container
from core.ports import Embedder
from core.settings import Settings
from eval.bench_chat import bench_chat
from tests.serve.conftest import Api


def test_bench_chat_reports_latency_and_outcomes(
    tmp_path: Path, real_embedder: Embedder, samples: dict[str, Path]
) -> None:
    container = Container(Settings(data_dir=tmp_path / "data", answer={"mode": "extractive"},
                                   serve={"max_concurrent_answers": 2, "rate_per_minute": 10_000}),
                          embedder=real_embedder)
    assert not container.ingestor.ingest([samples["public"]]).failed
    api = Api(container)
    try:
        key = container.users.add("bench", (), ("employee",))
        result = bench_chat(api.base, key, "How many days of paid leave?", [1, 2], requests=6,
                            metrics_key=api.admin_key)
        [unread] = bench_chat(api.base, key, "How many days of paid leave?", [1], requests=1)["runs"]
    finally:
        api.stop()
        container.close()
    for run in result["runs"]:
        assert run["answered"] == 6 and run["errors"] == 0 and run["statuses"] == {"200": 6}
        assert 0 < run["p50_s"] <= run["p95_s"]
        # Extractive: no model ran, so no token was read or written.
        assert run["prompt_tokens_per_answer"] == run["completion_tokens_per_answer"] == 0.0
    assert result["runs"][0]["throughput_vs_first"] == 1.0
    # An employee's key may not read /metrics: no token figures rather than wrong ones.
    assert unread["answered"] == 1 and unread["prompt_tokens_per_answer"] is None


def test_bench_chat_stream_times_the_first_token_sentence_and_answer(
    tmp_path: Path, samples: dict[str, Path], real_embedder: Embedder
) -> None:
    from eval.bench_chat import bench_stream

    # The real model in process, raw tokens on (the debugging setting) so one stream
    # carries the model's first token and the first verified sentence.
    container = Container(Settings(data_dir=tmp_path / "data",
                                   serve={"stream_raw_tokens": True, "rate_per_minute": 10_000}),
                          embedder=real_embedder)
    assert not container.ingestor.ingest([samples["public"]]).failed
    api = Api(container)
    try:
        key = container.users.add("bench", (), ("employee",))
        result = bench_stream(api.base, key, "How many days of paid leave do employees get?",
                              [1], requests=3, metrics_key=api.admin_key)
    finally:
        api.stop()
        container.close()
    [run] = result["runs"]
    assert run["answered"] == 3 and run["statuses"] == {"200": 3}
    token, sentence, whole = (run[k]["p50_s"] for k in
                              ("first_raw_token", "first_verified_sentence", "whole_answer"))
    assert 0 < token <= sentence <= whole
    # SmolLM2 in process counts its own prompt: passages and the chat template, every answer.
    assert run["prompt_tokens_per_answer"] > 100 and run["completion_tokens_per_answer"] > 0
