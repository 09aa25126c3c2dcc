"""The sentences of a model's answer and the citation markers it writes in them.

Sentence boundaries themselves come from the one segmenter, :mod:`core.sentences`.
"""

from __future__ import annotations

import re

from core.sentences import split_sentences

# [1], [1, 2], [1][2], [1-3]; also the full-width brackets some models write.
MARKER = re.compile(r"\s*[\[【]\s*(\d+(?:\s*[-–,;]\s*\d+)*)\s*[\]】]")


def markers(sentence: str) -> list[int]:
    """The passage numbers a sentence cites, in order, without repeats."""
    found: list[int] = []
    for match in MARKER.finditer(sentence):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            bounds = [int(x) for x in re.split(r"\s*[-–]\s*", part) if x]
            numbers = range(bounds[0], bounds[-1] + 1) if len(bounds) == 2 else bounds
            for n in numbers:
                if n not in found and len(found) < 20:
                    found.append(n)
    return found


def strip_markers(sentence: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", sentence)).strip()


def answer_sentences(text: str) -> list[str]:
    """The sentences of a model's answer, each with the markers written right after it.

    Models often write a marker after the full stop ("... 1999. [2]"); such a marker
    belongs to the sentence before it.
    """
    out: list[str] = []
    for start, end in split_sentences(text):
        sentence = text[start:end]
        lead = re.match(rf"(?:{MARKER.pattern})+", sentence)
        if lead and out:
            out[-1] = f"{out[-1]} {lead.group().strip()}"
            sentence = sentence[lead.end() :].strip()
        if strip_markers(sentence):
            out.append(sentence)
        elif out and sentence:
            out[-1] = f"{out[-1]} {sentence}"
    return out


class SentenceFeed:
    """The complete sentences of an answer that arrives token by token.

    A sentence is complete once the next one has begun with words, not just a marker: a
    model often writes a sentence's marker after its full stop ("... 1999. [2]"), and that
    marker belongs to the sentence before it.
    """

    def __init__(self) -> None:
        self.text = ""
        self._given = 0

    def feed(self, piece: str) -> list[str]:
        self.text += piece
        found = answer_sentences(self.text)
        if found and not re.search(r"[^\W\d_]", _LEADING_MARKS.sub("", found[-1])):
            found = found[:-1]  # the last one may be a marker of the one before, half written
        return self._new(found[:-1])

    def close(self) -> list[str]:
        return self._new(answer_sentences(self.text))

    def _new(self, complete: list[str]) -> list[str]:
        new = complete[self._given :]
        self._given = max(self._given, len(complete))
        return new


# Marker characters, whole or half written, at the start of a sentence.
_LEADING_MARKS = re.compile(r"^[\s\[\]【】\d,;–-]*")
# The framing of a passage that a small model copies back: "[1] (handbook.md, page 2)".
_FRAMING = re.compile(r"^\s*(?:passage\s*)?\[\d+\]\s*\([^)\n]*\)\s*:?\s*$", re.IGNORECASE)


def claim(sentence: str, seen: set[str]) -> str | None:
    """The sentence without its markers, if it is a claim to verify; None if it is not.

    Labels and headings a model echoes, the passage framing it copies back, questions
    (often the user's, echoed) and repeats are not claims. ``seen`` collects the claims.
    """
    if _FRAMING.match(sentence):
        return None
    bare = strip_markers(sentence.replace("<<<", " ").replace(">>>", " "))
    key = " ".join(bare.lower().split())
    if not re.search(r"\w", bare) or key in seen or is_label(bare) or bare.endswith("?"):
        return None
    seen.add(key)
    return bare


def is_label(sentence: str) -> bool:
    """A heading or label: a few words without closing punctuation, or ending in a colon."""
    words = sentence.split()
    return sentence.rstrip().endswith(":") or (len(words) < 4 and not re.search(r"[.!?]$", sentence))
