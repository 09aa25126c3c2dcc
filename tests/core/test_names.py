"""The one rule for names and text (core/names.py), and the CLI printing what it stores."""

from __future__ import annotations

import json
import subprocess

import pytest

from core.errors import InputError
from core.names import clean_group, clean_text, clean_user_id, printable, storable, validate_groups
from tests.conftest import ENCLAVE


@pytest.mark.parametrize(("given", "stored"), [
    ("finance ", "finance"),
    ("ｆｉｎａｎｃｅ", "finance"),  # full-width letters: NFKC
    ("Ölmühle", "Ölmühle"),
    ("経理", "経理"),
    ("日本語カタカナ", "日本語カタカナ"),  # Han with Katakana: one writing system
    ("eng-ops_2.0", "eng-ops_2.0"),
])
def test_names_are_normalised(given: str, stored: str) -> None:
    assert clean_group(given) == stored


@pytest.mark.parametrize(("given", "why"), [
    ("adm\x1b[31m", "control character U+001B"),
    ("fin\u200bance", "U+200B"),  # zero-width space
    ("fin\u200dance", "U+200D"),  # zero-width joiner
    ("finаnce", "mixes the scripts Cyrillic, Latin"),  # a Cyrillic "а"
    ("fin ance", "no blanks"),
    ("   ", "empty"),
    ("*", "marks public documents"),
    ("x" * 201, "over 200 characters"),
    ("a\ud800", "surrogate"),
    ("a\u2028b", "no blanks"),  # a line separator is a blank
    ("\ue000abc", "U+E000"),  # private use
])
def test_deceptive_names_are_refused(given: str, why: str) -> None:
    with pytest.raises(InputError, match=why.replace("(", r"\(").replace("+", r"\+")):
        clean_group(given)


def test_user_ids_and_group_lists() -> None:
    assert clean_user_id(" alice@example.com ") == "alice@example.com"
    assert validate_groups(["b", "a ", "ａ"]) == ("a", "b")
    with pytest.raises(InputError):
        clean_user_id("bob\x00")


def test_text_keeps_its_characters_but_refuses_controls_and_surrogates() -> None:
    assert clean_text("two\nlines\tand a tab", "q") == "two\nlines\tand a tab"
    with pytest.raises(InputError, match="control character U\\+0000"):
        clean_text("a\x00b", "the filter")
    with pytest.raises(InputError, match="the question holds a lone surrogate"):
        clean_text("a\udc00", "the question")
    with pytest.raises(InputError, match="U\\+000A"):
        clean_text("one\nline", "a path", multiline=False)
    assert storable("a\ud800\x00b") == "a\\ud800\\u0000b"
    assert printable("adm\x1b[31m") == "adm\\x1b[31m"


def _enclave(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENCLAVE), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_cli_prints_what_it_stores(cli_env: dict[str, str]) -> None:
    added = _enclave(cli_env, "users", "add", " bob ", "--group", "finance ", "--group", "ｈｒ")
    assert added.returncode == 0, added.stderr
    assert "user bob: groups finance, hr;" in added.stdout
    listed = json.loads(_enclave(cli_env, "users", "list", "--json").stdout)["users"]
    assert [(u["user_id"], u["groups"]) for u in listed] == [("bob", ["finance", "hr"])]
    for bad in ("adm\x1b[31m", "fin\u200bance", "finаnce"):
        refused = _enclave(cli_env, "users", "add", "eve", "--group", bad)
        assert refused.returncode == 2 and "invalid group name" in refused.stderr, refused
        assert "\x1b" not in refused.stderr  # the refusal shows it escaped, not acted upon
    assert _enclave(cli_env, "users", "add", "ev\u200be").returncode == 2
    assert len(json.loads(_enclave(cli_env, "users", "list", "--json").stdout)["users"]) == 1
