"""The one rule for text a caller hands us: names of users and groups, and every other string.

Names (user ids, group names) are compared, stored and printed, so what a person sees must
be exactly what is stored and compared:

- normalised to Unicode NFKC (a full-width "ｆｉｎａｎｃｅ" is "finance"), outer blanks removed;
- no blanks inside, and no control, format (zero-width), private-use, surrogate or
  unassigned characters: an ANSI escape or a zero-width joiner cannot colour a listing or
  make two different names look the same;
- the letters of one name come from one script (Latin, Cyrillic, Greek, ...; Chinese,
  Japanese and Korean may mix with the ideographs they use), so "finаnce" with a Cyrillic
  "а" is refused rather than stored as a look-alike of "finance";
- at most 200 characters; a group is never "*" (the store's marker for public documents).

Other strings (questions, paths, filters, file names) keep their characters, but a string
with a surrogate (text that is not Unicode) or a control character other than tab and line
breaks is refused: the databases cannot store the first, and the second hides in logs and
terminals (a NUL even cuts a filter short in SQLite).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from core.errors import InputError

MAX_NAME_CHARS = 200
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
# Scripts that legitimately share one name: Japanese and Korean writing use the Han ideographs.
_COMPATIBLE = ({"CJK", "HIRAGANA", "KATAKANA"}, {"CJK", "HANGUL"})


def text_problem(value: str, *, multiline: bool = True) -> str | None:
    """Why ``value`` is not acceptable text (None when it is)."""
    for ch in value:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return "holds a lone surrogate (not valid Unicode)"
        if ch in _ALLOWED_CONTROLS and multiline:
            continue
        if unicodedata.category(ch) == "Cc":
            return f"holds the control character U+{code:04X}"
    return None


def clean_text(value: str, field: str, *, multiline: bool = True) -> str:
    """``value`` unchanged, or InputError naming ``field`` and what is wrong with it."""
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        raise InputError(f"{field} {problem}")
    return value


def storable(value: str) -> str:
    """Text that can be stored and shown whatever it held: surrogates and controls escaped.

    For the record of a refused request, never for anything that is answered or compared.
    """
    return "".join(ch if text_problem(ch) is None else f"\\u{ord(ch):04x}" for ch in value)


def printable(value: str) -> str:
    """``value`` for a terminal: anything that is not printable shown as an escape."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in value)


def _script(ch: str) -> str | None:
    """The script of a letter, from its Unicode name; None for digits, marks and symbols."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0]
    return first or None


def clean_name(value: str, kind: str) -> str:
    """A user id or group name under the rule above, normalised; InputError when it breaks it."""
    if not isinstance(value, str):
        raise InputError(f"invalid {kind}: not text")
    problem = text_problem(value, multiline=False)
    name = unicodedata.normalize("NFKC", value).strip() if problem is None else ""
    shown = ascii(value)
    if problem is not None:
        raise InputError(f"invalid {kind} {shown}: it {problem}")
    if not name:
        raise InputError(f"invalid {kind} {shown}: it is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"invalid {kind} {shown}: over {MAX_NAME_CHARS} characters")
    for ch in name:
        if ch.isspace():
            raise InputError(f"invalid {kind} {shown}: no blanks inside a name")
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise InputError(f"invalid {kind} {shown}: it holds the invisible or control "
                             f"character U+{ord(ch):04X}")
    scripts = {s for s in map(_script, name) if s is not None}
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _COMPATIBLE):
        raise InputError(f"invalid {kind} {shown}: it mixes the scripts "
                         f"{', '.join(sorted(s.title() for s in scripts))}")
    return name


def clean_group(value: str) -> str:
    name = clean_name(value, "group name")
    if name == "*":
        raise InputError("invalid group name '*': it marks public documents")
    return name


def clean_user_id(value: str) -> str:
    return clean_name(value, "user id")


def validate_groups(groups: Iterable[str]) -> tuple[str, ...]:
    """Group names under the rule, normalised, sorted, without repeats."""
    return tuple(sorted({clean_group(g) for g in groups}))
