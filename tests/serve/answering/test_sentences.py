from core.sentences import split_sentences
from serve.answering.sentences import answer_sentences, markers, strip_markers


def _split(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_split_keeps_abbreviations_and_decimals_inside_sentences() -> None:
    text = "Acme was founded in 1999 by Dr. Smith. It sells U.S. goods, e.g. tools. Revenue grew 3.5%."
    assert _split(text) == [
        "Acme was founded in 1999 by Dr. Smith.",
        "It sells U.S. goods, e.g. tools.",
        "Revenue grew 3.5%.",
    ]


def test_split_offsets_index_the_original_text() -> None:
    text = "  First one here.\n\nSecond line without stop\nThird? Yes! "
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["First one here.", "Second line without stop", "Third?", "Yes!"]


def test_markers_in_every_form_a_model_writes() -> None:
    assert markers("A fact [1].") == [1]
    assert markers("A fact [2][3] and [2].") == [2, 3]
    assert markers("A fact [1, 4].") == [1, 4]
    assert markers("A fact [1-3].") == [1, 2, 3]
    assert markers("No marker (1).") == []
    assert strip_markers("A fact [2][3] here [1].") == "A fact here."


def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    text = "Leave is 28 days. [1] Hotels cost 180 euros [2]. [3]"
    assert answer_sentences(text) == ["Leave is 28 days. [1]", "Hotels cost 180 euros [2]. [3]"]
