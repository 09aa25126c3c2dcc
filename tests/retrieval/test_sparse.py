from __future__ import annotations

import json

import pytest

from retrieval.sparse import Bm25SparseEncoder


def test_analysis_stems_and_drops_stop_words():
    enc = Bm25SparseEncoder()
    assert enc.terms("The Running runners ran quickly!") == ["run", "runner", "ran", "quick"]


def test_document_weights_are_bm25_term_frequency_parts():
    enc = Bm25SparseEncoder(k1=1.2, b=0.75, avg_len=4.0)
    vec = enc.encode_document("audit audit budget travel")
    weights = dict(zip(vec.indices, vec.values, strict=True))
    # dl == avg_len, so the length norm is k1: tf * (k1 + 1) / (tf + k1)
    assert weights[enc.term_id("audit")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert weights[enc.term_id("budget")] == pytest.approx(1 * 2.2 / (1 + 1.2))
    assert list(vec.indices) == sorted(vec.indices)


def test_longer_documents_weigh_a_term_less():
    enc = Bm25SparseEncoder(avg_len=10)
    short = enc.encode_document("audit report")
    long = enc.encode_document("audit " + " ".join(f"word{i}" for i in range(40)))
    term = enc.term_id("audit")
    assert dict(zip(short.indices, short.values, strict=True))[term] > dict(
        zip(long.indices, long.values, strict=True))[term]


def test_query_has_unit_weights_and_no_stop_words():
    enc = Bm25SparseEncoder()
    q = enc.encode_query("what is the audit budget")
    assert set(q.values) == {1.0} and len(q.indices) == 2
    assert enc.encode_query("the of and").indices == ()


def test_the_stop_words_are_spacys_read_without_importing_it() -> None:
    import subprocess
    import sys

    from spacy.lang.en.stop_words import STOP_WORDS

    from retrieval.sparse import _stop_words

    assert _stop_words() == frozenset(STOP_WORDS) and len(STOP_WORDS) > 300
    # spaCy's package would import thinc and, with it, PyTorch: seconds of every search.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from retrieval.sparse import _stop_words; "
         "_stop_words(); print(sorted(m for m in sys.modules if m.split('.')[0] in "
         "('spacy', 'thinc', 'torch')))"],
        capture_output=True, text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == "[]"


def test_the_stemmer_is_nltks_imported_without_its_heavy_optional_packages() -> None:
    """The stored sparse vectors' terms are NLTK's Snowball stems; the stemmer imported
    without scikit-learn, SciPy and pandas (1.3 s of every `enclave search`) must stem as
    NLTK imported in full does, and leave those packages importable afterwards."""
    import subprocess
    import sys

    words = ("organizations international universities hematologists added evening "
             "running generously lying skies dying news inning proceed").split()
    script = (
        "import json, sys; from retrieval.sparse import _stemmer; s = _stemmer(); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'sklearn', 'pandas')); "
        "import scipy.stats; "
        f"print(json.dumps([heavy, [s.stem(w) for w in {words!r}]]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    heavy, stems = json.loads(done.stdout)
    assert heavy == []

    import nltk.metrics  # noqa: F401 - NLTK in full, SciPy and all
    from nltk.stem.snowball import SnowballStemmer

    full = SnowballStemmer("english")
    assert stems == [full.stem(w) for w in words]
    assert stems[:2] == ["organ", "intern"]
