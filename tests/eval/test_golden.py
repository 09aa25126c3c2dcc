"""Golden sets asked through the real answer path: the embedded model, extractive mode, and
a model server that cannot be reached, side by side; the regression gate; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.audit import Filters
from core.container import Container
from core.errors import InputError
from core.golden import GoldenQuestion, parse_golden
from core.ports import Embedder
from core.settings import Settings
from eval.golden import Config, run_golden
from eval.golden_score import gate, parse_condition, regressions, token_f1
from tests.conftest import ENCLAVE, free_port

# Over the demo samples (serve/cli/demo.py): public documents for everyone, the expense
# policy for the finance group only.
GOLDEN = [
    {"id": "leave", "question": "How many days of paid leave do employees get?",
     "user": "alice", "documents": ["handbook.md"], "facts": ["28 days"]},
    {"id": "hotel", "question": "What is the hotel limit per night?", "groups": ["finance"],
     "documents": ["expense-policy.pdf"], "facts": ["180 euros"]},
    # The same question from someone who may not read the expense policy.
    {"id": "hotel-outsider", "question": "What is the hotel limit per night?",
     "answerable": False},
    {"id": "world-cup", "question": "Who won the 1998 football world cup?", "answerable": False},
    # The model says only what was asked; extractive mode also quotes the FAQ's heading.
    {"id": "payload", "question": "What payload can the Atlas arm lift?",
     "documents": ["product-faq.docx"], "facts": ["12 kilograms"],
     "reference": "The Atlas arm lifts up to 12 kilograms at full reach of 1.4 metres."},
]
EXTRACTIVE = {"ENCLAVE_ANSWER__MODE": "extractive"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, real_embedder: Embedder,
         samples: dict[str, Path]) -> Iterator[Container]:
    root = tmp_path_factory.mktemp("golden")
    settings = Settings(data_dir=root / "data")
    writer = Container(settings, embedder=real_embedder)
    try:
        assert not writer.ingestor.ingest([samples["public"]]).failed
        assert not writer.ingestor.ingest([samples["finance"]], ["finance"]).failed
    finally:
        writer.close()  # the embedded store is locked by whoever holds it open
    c = Container(settings, embedder=real_embedder)
    c.users.add("alice", (), ())
    yield c
    c.close()


@pytest.fixture(scope="module")
def golden_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("golden-file") / "samples.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in GOLDEN), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def side_by_side(home: Container) -> dict[str, dict]:
    questions = parse_golden("\n".join(json.dumps(r) for r in GOLDEN))
    down = {"ENCLAVE_LLM__BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
            "ENCLAVE_LLM__TIMEOUT_S": "5"}
    runs = run_golden(home, questions, "samples", "sha", [
        Config("smollm2", {}, "test"), Config("extractive", EXTRACTIVE, "test"),
        Config("down", down, "test")], "test")
    return {r.config: r for r in runs}


def outcomes(run) -> dict[str, str]:
    return {r["id"]: r["outcome"] for r in run.results}


def test_each_configuration_has_its_exact_outcomes(side_by_side, home: Container) -> None:
    smollm2, extractive = side_by_side["smollm2"], side_by_side["extractive"]
    assert smollm2.status == extractive.status == "done"
    # SmolLM2-135M answers two of the three answerable questions in words the passages
    # support; its hotel answer could not be verified, so the reply quotes the passages.
    assert outcomes(smollm2) == {"leave": "answered", "hotel": "unverified",
                                 "hotel-outsider": "not_found", "world-cup": "not_found",
                                 "payload": "answered"}
    assert outcomes(extractive) == {"leave": "answered", "hotel": "answered",
                                    "hotel-outsider": "not_found", "world-cup": "not_found",
                                    "payload": "answered"}
    f = extractive.figures
    assert f["answerable_answered"] == 1.0 and f["unanswerable_not_found"] == 1.0
    assert f["outcome_accuracy"] == 1.0 and f["citation_precision"] == 1.0
    assert f["citation_recall"] == 1.0 and f["facts_recall"] == 1.0
    assert f["prompt_tokens"] is None  # no model ran
    g = smollm2.figures
    assert g["answerable_answered"] == pytest.approx(2 / 3, abs=1e-3)
    assert g["answerable_unverified"] == pytest.approx(1 / 3, abs=1e-3)
    assert g["outcome_accuracy"] == 0.8 and g["facts_recall"] == pytest.approx(2 / 3, abs=1e-3)
    assert g["prompt_tokens"] > 100 and g["completion_tokens"] > 5
    assert g["latency_p95_s"] >= g["latency_p50_s"] > 0
    by_id = {r["id"]: r for r in smollm2.results}
    assert by_id["payload"]["token_f1"] == pytest.approx(12 / 13, abs=0.01)
    assert 0.8 < by_id["payload"]["similarity"] <= 1.0
    # Asked through the answer service: each answer is on the audit trail as shown.
    record = home.audit.get(by_id["leave"]["audit_id"])
    assert record.body["channel"] == "eval" and record.actor == "alice"
    assert record.answer == by_id["leave"]["answer"]
    assert record.body["usage"]["prompt_tokens"] > 0


def test_an_unreachable_endpoint_fails_its_configuration_alone(side_by_side) -> None:
    down = side_by_side["down"]
    assert down.status == "failed" and "cannot be reached" in (down.reason or "")
    assert down.results == () and side_by_side["extractive"].status == "done"


def test_runs_are_stored_and_compared(side_by_side, home: Container) -> None:
    stored = home.eval_runs.get(side_by_side["smollm2"].run_id[:8])
    assert stored.results == side_by_side["smollm2"].results
    assert {r.config for r in home.eval_runs.runs()} >= {"smollm2", "extractive", "down"}
    # Dropping the model (extractive) against the generative baseline: the payload answer
    # moves away from its reference (the FAQ's heading is quoted back), and the gate fails.
    extractive, smollm2 = side_by_side["extractive"], side_by_side["smollm2"]
    changed = regressions(extractive.results, smollm2.results)
    assert [c.split(":")[0] for c in changed] == ["payload"]
    failures = gate(extractive.figures, [], smollm2.figures, 0.02)
    assert any(f.startswith("token_f1") for f in failures)
    # ...while the generative run against the extractive one regresses on the hotel question.
    assert [c.split(":")[0] for c in regressions(smollm2.results, extractive.results)] == ["hotel"]


def test_cli_gate_report_and_exit_codes(side_by_side, home: Container, golden_file: Path,
                                        tmp_path: Path) -> None:
    env_file = tmp_path / "extractive.env"
    env_file.write_text("ENCLAVE_ANSWER__MODE=extractive\n")
    down_file = tmp_path / "down.env"
    down_file.write_text(f"ENCLAVE_LLM__BASE_URL=http://127.0.0.1:{free_port()}/v1\n")
    env = _env(home)
    baseline = side_by_side["smollm2"].run_id
    html, report = tmp_path / "report.html", tmp_path / "report.json"
    gated = _cli(env, "eval", "golden", str(golden_file), "--config", f"extractive={env_file}",
                 "--baseline", baseline[:10], "--max-regressions", "0", "--html", str(html),
                 "--json", str(report))
    assert gated.returncode == 5, gated.stderr
    assert "regression (extractive): payload" in gated.stderr
    assert "gate failed (extractive): token_f1" in gated.stderr
    data = json.loads(report.read_text())
    assert data["baseline"] == baseline and data["runs"][0]["status"] == "done"
    page = html.read_text()
    assert page.count("<svg") == 3 and "payload" in page and "<script" not in page

    passing = _cli(env, "eval", "golden", str(golden_file), "--config", f"extractive={env_file}",
                   "--fail-if", "citation_precision<0.9", "--fail-if", "outcome_accuracy<1")
    assert passing.returncode == 0, passing.stderr
    assert "citation precision" in passing.stdout and "100.0%" in passing.stdout
    failing = _cli(env, "eval", "golden", str(golden_file), "--config", f"extractive={env_file}",
                   "--fail-if", "latency_p95_s>0")
    assert failing.returncode == 5 and "latency_p95_s>0" in failing.stderr
    down = _cli(env, "eval", "golden", str(golden_file), "--config", f"down={down_file}")
    assert down.returncode == 6 and "configuration down failed" in down.stderr
    assert "cannot be reached" in down.stderr and "Traceback" not in down.stderr
    failed_base = _cli(env, "eval", "golden", str(golden_file), "--baseline",
                       side_by_side["down"].run_id)
    assert failed_base.returncode == 2 and "did not finish" in failed_base.stderr


def test_a_malformed_line_names_line_and_column_and_runs_nothing(home: Container,
                                                                 tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOLDEN[0]) + "\n" + '{"id": "x", "question": "Why?",, }\n')
    env = _env(home)
    before = len(home.eval_runs.runs(limit=500))
    done = _cli(env, "eval", "golden", str(bad))
    assert done.returncode == 2 and f"{bad}:2:32: not JSON" in done.stderr, done.stderr
    assert len(home.eval_runs.runs(limit=500)) == before


@pytest.mark.parametrize(("text", "where"), [
    ('{"question": "a"}\n{"question": 3}', ":2:2: 'question' must be a string"),
    ('{"question": "a", "answerabel": true}', ":1:19: unknown field 'answerabel'"),
    ('{"question": "a", "documents": "x.md"}', ":1:19: 'documents' must be a list"),
    ('{"id": "a", "question": "q"}\n\n{"id": "a", "question": "r"}', ":3:2: id 'a' is already"),
    ('{"question": "   "}', ":1:2: 'question' is required"),
    ('{"question": "a\\u0007"}', ":1:2: the field 'question' holds the control character U+0007"),
    ('[1, 2]', ":1:1: a line must hold one JSON object"),
    ("", ": holds no question"),
])
def test_format_errors_name_the_line_and_column(text: str, where: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_golden(text, "g.jsonl")
    assert str(caught.value).startswith("g.jsonl") and where in str(caught.value)


def test_round_trip_and_scoring_units() -> None:
    q = GoldenQuestion("a", "Why?", user="ann", groups=("hr",), documents=("x.md",),
                       facts=("y",), reference="z", added_by="me", from_record="r1")
    assert parse_golden(json.dumps(q.to_json()))[0] == q
    assert token_f1("The answer is 28 days [1].", "28 days") == pytest.approx(2 * (2 / 4) / 1.5)
    assert token_f1("", "x") == 0.0
    assert str(parse_condition(" citation_precision < 0.9 ")) == "citation_precision<0.9"
    for bad in ("precision<0.9", "citation_precision=0.9", "citation_precision<x"):
        with pytest.raises(InputError):
            parse_condition(bad)
    assert gate({"token_f1": None}, [parse_condition("token_f1<0.5")], None, 0.02) == [
        "token_f1<0.5: token_f1 was not measured"]
    assert gate({"citation_recall": 0.79}, [], {"citation_recall": 0.8}, 0.02) == []


def _env(home: Container) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    return {**env, "ENCLAVE_DATA_DIR": str(home.settings.data_dir)}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                          timeout=900)


def test_an_answer_promoted_into_a_set_is_asked_from_the_set(side_by_side, home: Container,
                                                              tmp_path: Path) -> None:
    env, env_file = _env(home), tmp_path / "extractive.env"
    env_file.write_text("ENCLAVE_ANSWER__MODE=extractive\n")
    hotel = {r["id"]: r for r in side_by_side["smollm2"].results}["hotel"]
    # The model's hotel answer was unverified; the auditor says what it should have cited.
    added = _cli(env, "golden", "add-from-audit", hotel["audit_id"], "--set", "promoted",
                 "--answerable", "--document", "expense-policy.pdf", "--fact", "180 euros")
    assert added.returncode == 0, added.stderr
    exported = _cli(env, "golden", "export", "promoted")
    [q] = parse_golden(exported.stdout)
    assert q.from_record == hotel["audit_id"] and q.added_by and q.answerable
    assert q.groups == ("finance",) and q.question == hotel["question"]
    assert q.documents == ("expense-policy.pdf",) and q.facts == ("180 euros",)
    assert any(r.kind == "golden.added" for r in home.audit.records(Filters(kind="golden.added")))
    again = _cli(env, "golden", "add-from-audit", hotel["audit_id"], "--set", "promoted")
    assert again.returncode == 2 and "already holds" in again.stderr
    asked = _cli(env, "eval", "golden", "--set", "promoted", "--config",
                 f"extractive={env_file}", "--fail-if", "facts_recall<1", "--json",
                 str(tmp_path / "r.json"))
    assert asked.returncode == 0, asked.stderr
    [run] = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert run["golden"] == "set:promoted" and run["results"][0]["outcome"] == "answered"
    assert _cli(env, "eval", "golden").returncode == 2  # neither a file nor a set


def test_a_golden_file_imported_into_a_set(home: Container, golden_file: Path) -> None:
    env = _env(home)
    done = _cli(env, "golden", "import", str(golden_file), "--set", "imported")
    assert done.returncode == 0 and "added 5 questions" in done.stdout, done.stderr
    listed = {s["name"]: s for s in json.loads(_cli(env, "golden", "list", "--json").stdout)}
    assert listed["imported"]["questions"] == 5
    kept = home.golden.questions("imported")
    assert [q.qid for q in kept] == [r["id"] for r in GOLDEN] and all(q.added_by for q in kept)
    bad = _cli(env, "golden", "import", str(golden_file), "--set", "Bad Name")
    assert bad.returncode == 2 and "golden set name" in bad.stderr
    assert _cli(env, "golden", "remove", "imported", "payload").returncode == 0
    assert len(home.golden.questions("imported")) == 4
    assert _cli(env, "golden", "remove", "imported", "payload").returncode == 2
