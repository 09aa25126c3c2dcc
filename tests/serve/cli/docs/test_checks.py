"""The doc scanners on made-up text: each kind of defect the docs tests look for is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve.cli.docs import checks as doc_checks
from serve.cli.docs.cli_ref import _meanings, cli_root, stable
from serve.cli.docs.commands import check_command
from serve.cli.docs.generate import stale_files
from serve.cli.docs.settings_ref import field_comments, section_prefixes, setting_env_names

FENCE = "```"
PAGE = f"""# Title

Run `enclave frobnicate --help` or `enclave ask` (not `enclave`, nor `enclave:0.1.0`).

{FENCE}
$ enclave ingest PATH [--grup G]   # a comment
.venv/bin/enclave ask Q \\
    --json
docker compose exec -T api enclave users add x --role admin
cd somewhere && enclave status
{FENCE}

{FENCE}yaml
command: enclave serve
enclave: not a command line
{FENCE}
"""


@pytest.fixture(scope="module")
def tree():
    return cli_root()


def test_command_lines_are_found_in_fences_and_inline_code():
    found = [(f.line, f.text) for f in doc_checks.find_commands("page.md", PAGE)]
    assert found == [
        (3, "enclave frobnicate --help"),
        (3, "enclave ask"),
        (6, "enclave ingest PATH [--grup G]   # a comment"),
        (7, "enclave ask Q --json"),
        (9, "enclave users add x --role admin"),
    ]


def test_a_command_that_does_not_exist_fails(tree):
    assert check_command(tree, "enclave frobnicate --help").problems
    assert check_command(tree, "enclave golden frobnicate NAME").problems
    assert check_command(tree, "enclave db upgrade | db frob").problems


def test_an_option_the_command_does_not_have_fails(tree):
    checked = check_command(tree, "enclave ingest PATH [--grup G]   # a comment")
    assert checked.problems == ("`enclave ingest` has no option --grup",)
    assert check_command(tree, "enclave search QUERY -z 3").problems
    # An option of a sibling command is not an option of this one.
    assert check_command(tree, "enclave golden list --set NAME").problems


def test_usage_notation_is_read_as_a_reader_would(tree):
    cases = {
        "enclave search QUERY [--user U] [--group G]... [-k N] [--json]": [("search",)],
        "enclave audit list [--refused|--answered] [--feedback up|down|any|none]": [("audit", "list")],
        "enclave golden add-from-audit R --set S --answerable/--not-answerable": [
            ("golden", "add-from-audit")],
        "enclave eval golden FILE|--set NAME [--config NAME[=ENVFILE]]... [--fail-if \"M<V\"]...": [
            ("eval", "golden")],
        "enclave golden list | export NAME | import FILE --set NAME": [
            ("golden", "list"), ("golden", "export"), ("golden", "import")],
        "enclave db upgrade | db status [--json]": [("db", "upgrade"), ("db", "status")],
        "enclave audit export --format jsonl | gzip > audit.jsonl.gz": [("audit", "export")],
        "enclave jobs ...": [("jobs",)],
        "enclave audit show <record-id>": [("audit", "show")],
    }
    for line, paths in cases.items():
        checked = check_command(tree, line)
        assert not checked.problems, (line, checked.problems)
        assert [u.path for u in checked.uses] == paths, line


KNOWN = ({"ENCLAVE_SERVE__PORT", "ENCLAVE_SERVE__OIDC__USER_CLAIM", "ENCLAVE_SERVE__OIDC__GROUPS_CLAIM"},
         {"ENCLAVE_SERVE__", "ENCLAVE_SERVE__OIDC__"}, {"ENCLAVE_PORT"})


@pytest.mark.parametrize("token", ["ENCLAVE_SERVE__PORT", "ENCLAVE_SERVE__OIDC__", "ENCLAVE_*",
                                   "ENCLAVE_SERVE__*", "ENCLAVE_SERVE__OIDC__*_CLAIM", "ENCLAVE_PORT",
                                   "ENCLAVE_"])
def test_real_setting_names_and_patterns_pass(token: str):
    assert doc_checks.setting_problem(token, *KNOWN) is None


@pytest.mark.parametrize("token", ["ENCLAVE_SERVE__PROT", "ENCLAVE_SERVE_PORT", "ENCLAVE_SERVE__NOPE__",
                                   "ENCLAVE_NOPE__*", "ENCLAVE_SERVE__OIDC__*_SECRET",
                                   "ENCLAVE_SERVE__PORT_"])
def test_a_setting_that_does_not_exist_fails(token: str):
    assert doc_checks.setting_problem(token, *KNOWN)


def test_setting_names_come_from_the_settings_model_and_the_code(tmp_path: Path):
    assert {"ENCLAVE_SERVE__PORT", "ENCLAVE_DATA_DIR", "ENCLAVE_SERVE__OIDC__ISSUER"} <= setting_env_names()
    assert "ENCLAVE_SERVE__OIDC__" in section_prefixes() and "ENCLAVE_SERVE__PORT" not in section_prefixes()
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "x.py").write_text('A = "ENCLAVE_EXTRA"\nB = "ENCLAVE_ needs this"\n')
    (tmp_path / "compose.yaml").write_text("image: enclave:${ENCLAVE_VERSION:-0.1.0}\n")
    assert doc_checks.code_env_names(tmp_path) == {"ENCLAVE_EXTRA"}
    assert doc_checks.compose_variables(tmp_path) == {"ENCLAVE_VERSION"}
    found = doc_checks.find_settings("a.md", "x\nset `ENCLAVE_SERVE__PROT=1` and ENCLAVE_SEARCH__*\n")
    assert [(f.line, f.text) for f in found] == [(2, "ENCLAVE_SERVE__PROT"), (2, "ENCLAVE_SEARCH__*")]


def test_github_anchors():
    text = ("# Sources: shares, mailboxes and intranet sites\n## `enclave ask`, in depth\n"
            "## Notes\n### Notes\nSetext title\n---\n```\n# not a heading\n```\n"
            '<a name="custom"></a>\n## [Linked](x.md) heading_with_underscore\n')
    assert doc_checks.github_anchors(text) == {
        "sources-shares-mailboxes-and-intranet-sites", "enclave-ask-in-depth", "notes", "notes-1",
        "setext-title", "custom", "linked-heading_with_underscore"}


def test_broken_links_and_anchors_fail(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Intro\n## Intro\n")
    (tmp_path / "img.png").write_bytes(b"")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/b.md#intro-1) ![i](img.png) [top](#readme) [ext](https://x.org/nope)\n"
        "[gone](docs/missing.md) [bad anchor](docs/b.md#outro) [self](#nowhere)\n"
        '<img src="nothing.png"> `[code](not-a-link.md)`\n'
        "```\n[fenced](skipped.md)\n```\n# Readme\n")
    found = doc_checks.find_links("README.md", page.read_text())
    problems = {f.text: doc_checks.link_problem(tmp_path, page, f.text) for f in found}
    assert {t for t, p in problems.items() if p} == {
        "docs/missing.md", "docs/b.md#outro", "#nowhere", "nothing.png"}
    assert "skipped.md" not in problems and "not-a-link.md" not in problems


def test_stale_references_are_named(tmp_path: Path):
    rendered = {Path("docs/reference/cli.md"): "new\n", Path("docs/reference/settings.md"): "same\n"}
    (tmp_path / "docs" / "reference").mkdir(parents=True)
    (tmp_path / "docs" / "reference" / "cli.md").write_text("old\n")
    (tmp_path / "docs" / "reference" / "settings.md").write_text("same\n")
    assert stale_files(tmp_path, rendered) == [Path("docs/reference/cli.md")]


def test_exit_code_meanings_and_defaults_are_read_from_the_code():
    doc = "The CLI.\n\nExit codes: 0 success; 1 a backend is\ndown; 3 ``ingest`` failed.\n\nMore."
    assert _meanings(doc) == {0: "success", 1: "a backend is down", 3: "`ingest` failed"}
    here = Path(__file__).resolve()
    assert stable(here) == "tests/serve/cli/docs/test_checks.py"
    assert stable(here.parents[5] / "shared" / "x") == "../shared/x"


def test_settings_comments_are_read_from_above_each_field():
    class Example:
        # first line
        # second line
        a: int = 1
        b: int = 2  # not above

        # edge: one
        # server: two
        c: str = "x"

    comments = field_comments(Example)
    assert comments == {"a": "first line second line", "b": "", "c": "edge: one\nserver: two"}


def test_table_settings_expands_the_guides_shorthand() -> None:
    table = ("| variable | default |\n| --- | --- |\n"
             "| `ENCLAVE_SERVE__HOST` / `__PORT` | x |\n"
             "| `ENCLAVE_SERVE__OIDC__JWKS_FILE` / `__JWKS_URL` | `ENCLAVE_NOT_A_NAME` |\n")
    assert doc_checks.table_settings(table) == {
        "ENCLAVE_SERVE__HOST", "ENCLAVE_SERVE__PORT", "ENCLAVE_SERVE__OIDC__JWKS_FILE",
        "ENCLAVE_SERVE__OIDC__JWKS_URL"}
