"""The docs against the code: generated references current, every `enclave` command, option
and `ENCLAVE_*` name the docs show real, every relative link and anchor resolving.

Each case is named by the file and line of the claim, so a failure says where to look.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from serve.cli.docs import checks as doc_checks
from serve.cli.docs.checks import Found
from serve.cli.docs.cli_ref import cli_root
from serve.cli.docs.commands import check_command
from serve.cli.docs.generate import render_all, stale_files
from serve.cli.docs.settings_ref import section_prefixes, setting_env_names
from serve.cli.main import app

ROOT = Path(__file__).resolve().parents[4]


def _scan(files: list[Path], find: Callable[[str, str], list[Found]]) -> list[Found]:
    found: list[Found] = []
    for name, _, text in doc_checks.iter_files(ROOT, files):
        found += find(name, text)
    return found


COMMANDS = _scan(doc_checks.markdown_files(ROOT), doc_checks.find_commands)
SETTING_FILES = doc_checks.setting_files(ROOT)
LINK_FILES = doc_checks.markdown_files(ROOT)


def _id(found: Found) -> str:
    return f"{found.file}:{found.line}: {found.text[:60]}"


@pytest.fixture(scope="module")
def rendered() -> dict[Path, str]:
    return render_all()


def test_generated_references_are_current(rendered: dict[Path, str]):
    stale = stale_files(ROOT, rendered)
    assert not stale, (
        "generated references differ from what the code gives now: "
        + ", ".join(p.as_posix() for p in stale) + "; run make docs"
    )


def test_references_name_nothing_of_this_machine(rendered: dict[Path, str]):
    machine = {str(ROOT), str(ROOT.parent), str(Path.home()), str(Path.cwd())} - {"/"}
    for path, content in rendered.items():
        leaks = [m for m in machine if m in content]
        assert not leaks, f"{path} holds {leaks}: write defaults as the code spells them"


@pytest.fixture(scope="module")
def command_tree():
    return cli_root()


@pytest.mark.parametrize("found", COMMANDS, ids=[_id(f) for f in COMMANDS])
def test_every_enclave_command_in_the_docs_exists(found: Found, command_tree):
    checked = check_command(command_tree, found.text)
    where = f"{found.file}:{found.line}: {found.text}"
    assert checked.uses, f"{where}: no enclave command recognised"
    assert not checked.problems, f"{where}: " + "; ".join(checked.problems)
    for use in checked.uses:
        result = _help(use.path)
        assert result.exit_code == 0, (
            f"{where}: `{use.shown} --help` exited {result.exit_code}"
            f" ({result.exception!r}): {result.output[-300:]}")


@functools.cache
def _help(path: tuple[str, ...]) -> Result:
    # In process, once per command: the docs show the same few dozen commands hundreds of times.
    return CliRunner().invoke(app, [*path, "--help"])


@pytest.fixture(scope="module")
def known_names() -> tuple[set[str], set[str], set[str]]:
    others = doc_checks.code_env_names(ROOT) | doc_checks.compose_variables(ROOT)
    return setting_env_names(), section_prefixes(), others


@pytest.mark.parametrize("path", SETTING_FILES, ids=[p.relative_to(ROOT).as_posix() for p in SETTING_FILES])
def test_every_enclave_setting_named_in_the_docs_is_real(path: Path, known_names):
    leaves, prefixes, others = known_names
    name = path.relative_to(ROOT).as_posix()
    problems = []
    for found in doc_checks.find_settings(name, path.read_text(encoding="utf-8")):
        problem = doc_checks.setting_problem(found.text, leaves, prefixes, others)
        if problem:
            problems.append(f"{found.file}:{found.line}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", LINK_FILES, ids=[p.relative_to(ROOT).as_posix() for p in LINK_FILES])
def test_relative_links_resolve(path: Path):
    name = path.relative_to(ROOT).as_posix()
    problems = []
    for found in doc_checks.find_links(name, path.read_text(encoding="utf-8")):
        problem = doc_checks.link_problem(ROOT, path, found.text)
        if problem:
            problems.append(f"{found.file}:{found.line}: {problem}")
    assert not problems, "\n".join(problems)


def test_the_configuration_guide_explains_every_setting(known_names):
    """docs/configuration.md's table: every setting the code has, and nothing it has not."""
    leaves, _, others = known_names
    named = doc_checks.table_settings((ROOT / "docs" / "configuration.md").read_text("utf-8"))
    assert not sorted(leaves - named), "settings the guide does not explain"
    assert not sorted(named - leaves - others), "names in the guide that are no setting"


def test_every_screenshot_the_docs_show_is_taken_by_a_browser_test():
    """A picture no test takes would go stale unseen: each one must come from shot(page, ...)."""
    import re

    taken = set()
    for source in (ROOT / "tests").rglob("test_web*.py"):
        taken |= set(re.findall(r'shot\(\w+, "([\w-]+)"\)', source.read_text("utf-8")))
    shown = set()
    for _, _, text in doc_checks.iter_files(ROOT, doc_checks.markdown_files(ROOT)):
        shown |= set(re.findall(r"screenshots/([\w-]+)\.png", text))
    assert shown, "the docs show no screenshot"
    assert not sorted(shown - taken), "screenshots no browser test takes"
