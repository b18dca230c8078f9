"""Tests for recommender.lexical: TF-IDF fitting and vectorizing, blobs, parts and search."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.lexical import (
    FULL_MIN_DF_FROM,
    QUERY_TERMS,
    LexicalPart,
    Lexicon,
    TermVector,
    cosine,
    lexical_text,
    outside,
    products,
    rows_matrix,
    search,
    stack,
)
from recommender.text import READ_CHARS
from recommender.write.lexicon import DERIVED_STOP_WORDS_FROM, derived_stop_words, fit

RTOL = 1e-5

CORPUS = [
    "The council approved the new budget for city schools and roads.",
    "City schools face a budget gap as the council delays the vote.",
    "Heavy rain floods roads across the region; schools close early.",
    "The football club signed a striker before the transfer deadline.",
    "Striker scores twice as the club wins the derby in heavy rain.",
    "Council election: turnout low, budget and roads top the agenda.",
    "Rain, rain and more rain: the wettest month on record.",
]

NEW_TEXTS = [
    "Budget budget budget for schools",  # a repeated word: 1 + log(tf)
    "Zeppelin quasar marmalade",  # no word the lexicon holds
    "The striker and the zeppelin",  # known and unknown words
    "",  # nothing at all
    "the and of it is was",  # stop words only
    "CITY SCHOOLS, city schools; City Schools!",  # case and a repeated bigram
    "council approved roads rain club",
]


def _sklearn(ngrams: int, min_df: int = 1) -> TfidfVectorizer:
    return TfidfVectorizer(
        stop_words="english", ngram_range=(1, ngrams), min_df=min_df, sublinear_tf=True
    )


def _dense(vectors: list[TermVector], width: int) -> np.ndarray:
    return np.asarray(stack(vectors, width).toarray())


def _vector(weights: dict[int, float]) -> TermVector:
    """A TermVector of these (unnormalized) weights, scaled to length 1."""
    terms = np.array(sorted(weights), dtype=np.int32)
    values = np.array([weights[int(t)] for t in terms], dtype=np.float64)
    if len(values):
        values /= np.linalg.norm(values)
    return TermVector(terms, values.astype(np.float32))


def _reference(vectors: list[TermVector], width: int) -> np.ndarray:
    """The vectors as a dense float64 matrix, built without ``stack``."""
    out = np.zeros((len(vectors), width))
    for row, vector in enumerate(vectors):
        out[row, vector.terms] = vector.weights
    return out


def _parts(vectors: list[TermVector], width: int, cuts: tuple[int, ...]) -> list[LexicalPart]:
    """The vectors split at ``cuts`` into consecutive parts."""
    bounds = [0, *cuts, len(vectors)]
    return [
        LexicalPart.of(start, vectors[start:end], width)
        for start, end in itertools.pairwise(bounds)
    ]


def _assert_well_formed(vector: TermVector) -> None:
    assert vector.terms.dtype == np.int32
    assert vector.weights.dtype == np.float32
    assert len(vector.terms) == len(vector.weights)
    assert (np.diff(vector.terms) > 0).all()
    if len(vector.terms):
        assert (vector.weights > 0).all()
        assert np.linalg.norm(vector.weights) == pytest.approx(1.0, rel=RTOL)


# fit ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_fit_matches_sklearn_fit_transform(ngrams: int) -> None:
    lexicon, vectors = fit(CORPUS, ngrams, min_df=2)
    reference = _sklearn(ngrams)
    expected = reference.fit_transform(CORPUS).toarray()
    assert lexicon.ngrams == ngrams
    assert lexicon.terms == tuple(reference.get_feature_names_out().tolist())
    assert list(lexicon.terms) == sorted(lexicon.terms)
    assert lexicon.index == {term: i for i, term in enumerate(lexicon.terms)}
    np.testing.assert_allclose(lexicon.idf, reference.idf_, rtol=RTOL)
    assert len(vectors) == len(CORPUS)
    for vector in vectors:
        _assert_well_formed(vector)
    np.testing.assert_allclose(_dense(vectors, len(lexicon.terms)), expected, rtol=RTOL, atol=0)


def test_fit_leaves_out_stop_words_and_keeps_bigrams() -> None:
    lexicon, _ = fit(CORPUS, 2, min_df=1)
    assert "the" not in lexicon.index and "and" not in lexicon.index
    assert "city schools" in lexicon.index and "budget" in lexicon.index
    unigrams, _ = fit(CORPUS, 1, min_df=1)
    assert all(" " not in term for term in unigrams.terms)


def _min_df_corpus(size: int) -> list[str]:
    """``size`` texts sharing common words; "zeppelin" is in the last one only."""
    texts = [f"market report {'rain' if i % 2 else 'sunshine'}" for i in range(size - 1)]
    return [*texts, "market report zeppelin"]


@pytest.mark.parametrize("ngrams", [1, 2])
def test_fit_min_df_applies_from_full_min_df_from(ngrams: int) -> None:
    texts = _min_df_corpus(FULL_MIN_DF_FROM)
    lexicon, vectors = fit(texts, ngrams, min_df=2)
    assert "zeppelin" not in lexicon.index
    assert "report zeppelin" not in lexicon.index
    assert {"market", "report", "rain", "sunshine"} <= set(lexicon.terms)
    reference = _sklearn(ngrams, min_df=2)
    expected = reference.fit_transform(texts).toarray()
    assert lexicon.terms == tuple(reference.get_feature_names_out().tolist())
    np.testing.assert_allclose(_dense(vectors, len(lexicon.terms)), expected, rtol=RTOL, atol=0)
    # The rare word's text keeps its other terms, scaled to length 1 again.
    _assert_well_formed(vectors[-1])
    assert len(vectors[-1].terms) > 0


@pytest.mark.parametrize("size", [5, FULL_MIN_DF_FROM - 1])
def test_fit_small_build_keeps_every_term(size: int) -> None:
    texts = _min_df_corpus(size)
    lexicon, vectors = fit(texts, 1, min_df=2)
    assert "zeppelin" in lexicon.index
    assert lexicon.index["zeppelin"] in vectors[-1].terms.tolist()
    expected = _sklearn(1, min_df=1).fit_transform(texts).toarray()
    np.testing.assert_allclose(_dense(vectors, len(lexicon.terms)), expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("texts", [["the", "and of it", ""], [""], ["<>", "!!! ..."]])
def test_fit_without_any_term_is_empty(texts: list[str]) -> None:
    lexicon, vectors = fit(texts, 2, min_df=1)
    assert lexicon.terms == ()
    assert len(lexicon.idf) == 0
    assert lexicon.ngrams == 2
    assert len(vectors) == len(texts)
    for vector in vectors:
        _assert_well_formed(vector)
        assert len(vector.terms) == 0
    # Such a lexicon still vectorizes (to nothing).
    assert [len(v.terms) for v in lexicon.vectorize(["budget schools", ""])] == [0, 0]


def test_fit_of_no_texts_is_empty() -> None:
    lexicon, vectors = fit([], 1, min_df=1)
    assert lexicon.terms == () and vectors == []


# Lexicon.vectorize --------------------------------------------------------------------------


@pytest.mark.parametrize("ngrams", [1, 2])
def test_vectorize_matches_sklearn_transform(ngrams: int) -> None:
    lexicon, _ = fit(CORPUS, ngrams, min_df=1)
    reference = _sklearn(ngrams).fit(CORPUS)
    vectors = lexicon.vectorize(NEW_TEXTS)
    assert len(vectors) == len(NEW_TEXTS)
    for vector in vectors:
        _assert_well_formed(vector)
    expected = reference.transform(NEW_TEXTS).toarray()
    np.testing.assert_allclose(_dense(vectors, len(lexicon.terms)), expected, rtol=RTOL, atol=0)


def test_vectorize_of_the_corpus_gives_the_fitted_vectors() -> None:
    lexicon, fitted = fit(CORPUS, 2, min_df=1)
    again = lexicon.vectorize(CORPUS)
    for a, b in zip(fitted, again, strict=True):
        assert a.terms.tolist() == b.terms.tolist()
        np.testing.assert_allclose(a.weights, b.weights, rtol=RTOL)


@pytest.mark.parametrize("text", ["", "the and of it is was", "zeppelin quasar", "   \n  "])
def test_vectorize_without_known_terms_is_empty(text: str) -> None:
    lexicon, _ = fit(CORPUS, 2, min_df=1)
    [vector] = lexicon.vectorize([text])
    assert len(vector.terms) == 0 and len(vector.weights) == 0
    assert vector.terms.dtype == np.int32 and vector.weights.dtype == np.float32


def test_vectorize_weighs_repeats_sublinearly() -> None:
    lexicon, _ = fit(CORPUS, 1, min_df=1)
    [vector] = lexicon.vectorize(["budget budget budget striker"])
    budget, striker = lexicon.index["budget"], lexicon.index["striker"]
    assert vector.terms.tolist() == sorted([budget, striker])
    weights = dict(zip(vector.terms.tolist(), vector.weights.tolist(), strict=True))
    expected = (1 + np.log(3)) * lexicon.idf[budget] / lexicon.idf[striker]
    assert weights[budget] / weights[striker] == pytest.approx(expected, rel=RTOL)


def test_vectorize_accepts_a_generator() -> None:
    lexicon, _ = fit(CORPUS, 1, min_df=1)
    vectors = lexicon.vectorize(text for text in ["budget", "rain"])
    assert [lexicon.terms[int(v.terms[0])] for v in vectors] == ["budget", "rain"]


def test_vectorize_of_a_rebuilt_lexicon() -> None:
    """A lexicon read back from storage (terms, idf, ngrams) vectorizes as the fitted one."""
    lexicon, _ = fit(CORPUS, 2, min_df=1)
    stored = Lexicon(tuple(lexicon.terms), np.array(lexicon.idf.tolist()), lexicon.ngrams)
    for a, b in zip(lexicon.vectorize(NEW_TEXTS), stored.vectorize(NEW_TEXTS), strict=True):
        assert a.terms.tolist() == b.terms.tolist()
        assert a.weights.tolist() == b.weights.tolist()


# TermVector blobs ---------------------------------------------------------------------------


def test_blobs_round_trip_exactly() -> None:
    _, vectors = fit(CORPUS, 2, min_df=1)
    for vector in [*vectors, TermVector.empty()]:
        terms, weights = vector.to_blobs()
        assert isinstance(terms, bytes) and isinstance(weights, bytes)
        assert len(terms) == 4 * len(vector.terms) and len(weights) == 4 * len(vector.weights)
        back = TermVector.from_blobs(terms, weights)
        assert back.terms.dtype == np.dtype("<i4") and back.weights.dtype == np.dtype("<f4")
        assert np.array_equal(back.terms, vector.terms)
        assert back.weights.tobytes() == vector.weights.astype("<f4").tobytes()


def test_blobs_are_little_endian() -> None:
    vector = TermVector(np.array([1, 258], dtype=np.int32), np.array([0.6, 0.8], np.float32))
    terms, weights = vector.to_blobs()
    assert terms == b"\x01\x00\x00\x00\x02\x01\x00\x00"
    assert weights == struct.pack("<2f", 0.6, 0.8)
    # Big-endian arrays are written little-endian all the same.
    swapped = TermVector(vector.terms.astype(">i4"), vector.weights.astype(">f4"))
    assert swapped.to_blobs() == (terms, weights)


def test_empty_term_vector() -> None:
    vector = TermVector.empty()
    assert vector.terms.shape == (0,) and vector.weights.shape == (0,)
    assert vector.to_blobs() == (b"", b"")


# stack and LexicalPart ----------------------------------------------------------------------

WIDTH = 6
# Query {0: 2, 1: 1}: rows 0, 1, 4, 5 and 7 share a term with it; 2, 3 and 6 do not.
ROWS = [
    _vector({0: 1.0}),
    _vector({0: 1.0, 1: 1.0}),
    _vector({2: 1.0}),
    _vector({}),
    _vector({0: 3.0, 1: 1.0}),
    _vector({1: 1.0, 3: 2.0}),
    _vector({4: 1.0}),
    _vector({0: 1.0, 5: 1.0}),
]
QUERY = _vector({0: 2.0, 1: 1.0})
SPLITS = [(), (3,), (2, 5), (1, 4, 7), (3, 3, 8)]  # (3, 3, 8): an empty part on each side


def _random_vectors(seed: int, count: int, width: int) -> list[TermVector]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        terms = rng.choice(width, size=rng.integers(0, 5), replace=False)
        out.append(_vector({int(t): float(rng.uniform(0.1, 1.0)) for t in terms}))
    return out


def test_stack_matches_the_vectors() -> None:
    matrix = stack(ROWS, WIDTH)
    assert sparse.issparse(matrix) and matrix.format == "csr"
    assert matrix.shape == (len(ROWS), WIDTH)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix.toarray(), _reference(ROWS, WIDTH))


@pytest.mark.parametrize("vectors", [[], [TermVector.empty(), TermVector.empty()]])
def test_stack_of_nothing(vectors: list[TermVector]) -> None:
    matrix = stack(vectors, WIDTH)
    assert matrix.shape == (len(vectors), WIDTH) and matrix.nnz == 0


def test_part_of_holds_rows_and_terms() -> None:
    part = LexicalPart.of(10, ROWS, WIDTH)
    assert part.first_row == 10 and part.count == len(ROWS)
    assert part.by_row.format == "csr" and part.by_term.format == "csc"
    np.testing.assert_array_equal(part.by_row.toarray(), _reference(ROWS, WIDTH))
    np.testing.assert_array_equal(part.by_term.toarray(), _reference(ROWS, WIDTH))


@pytest.mark.parametrize("cuts", [(0,), (3,), (8,), (2, 5), (1, 4, 7)])
def test_joined_equals_one_part(cuts: tuple[int, ...]) -> None:
    vectors = _random_vectors(1, 12, 9)
    whole = LexicalPart.of(0, vectors, 9)
    parts = _parts(vectors, 9, cuts)
    merged = LexicalPart.joined(parts)
    assert merged.first_row == 0 and merged.count == whole.count
    assert merged.by_row.format == "csr" and merged.by_term.format == "csc"
    np.testing.assert_array_equal(merged.by_row.toarray(), whole.by_row.toarray())
    np.testing.assert_array_equal(merged.by_term.toarray(), whole.by_term.toarray())
    query = _vector({0: 1.0, 3: 0.5, 8: 0.2})
    for a, b in zip(search([merged], query, 5), search([whole], query, 5), strict=True):
        np.testing.assert_array_equal(a, b)


def test_joined_keeps_the_first_row() -> None:
    merged = LexicalPart.joined(
        [LexicalPart.of(20, ROWS[:3], WIDTH), LexicalPart.of(23, ROWS[3:], WIDTH)]
    )
    assert merged.first_row == 20 and merged.count == len(ROWS)


# rows_matrix and cosine ---------------------------------------------------------------------

ASKED = [
    np.array([7, 0, 3, 7, 5, 2, 2, 1]),  # unsorted, repeated
    np.array([6, 4]),
    np.array([0]),
    np.array([7]),
    np.array([3, 3, 3]),
    np.arange(8)[::-1],
    np.array([], dtype=np.int64),
]


@pytest.mark.parametrize("cuts", SPLITS)
@pytest.mark.parametrize("rows", ASKED)
def test_rows_matrix_over_parts_equals_one_part(cuts: tuple[int, ...], rows: np.ndarray) -> None:
    one = rows_matrix([LexicalPart.of(0, ROWS, WIDTH)], rows)
    several = rows_matrix(_parts(ROWS, WIDTH, cuts), rows)
    expected = _reference(ROWS, WIDTH)[rows]
    assert one.shape == several.shape == (len(rows), WIDTH)
    np.testing.assert_array_equal(one.toarray(), expected)
    np.testing.assert_array_equal(several.toarray(), expected)


@pytest.mark.parametrize("cuts", SPLITS)
@pytest.mark.parametrize("rows", ASKED)
def test_cosine_over_parts_equals_one_part(cuts: tuple[int, ...], rows: np.ndarray) -> None:
    one = cosine([LexicalPart.of(0, ROWS, WIDTH)], rows, QUERY)
    several = cosine(_parts(ROWS, WIDTH, cuts), rows, QUERY)
    expected = _reference(ROWS, WIDTH)[rows] @ _reference([QUERY], WIDTH)[0]
    assert one.dtype == several.dtype == np.float32
    assert one.shape == several.shape == (len(rows),)
    np.testing.assert_allclose(one, expected, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(several, expected, rtol=RTOL, atol=1e-7)


def test_cosine_of_a_row_with_itself_is_one() -> None:
    parts = _parts(ROWS, WIDTH, (2, 5))
    for row in [0, 1, 4, 5, 7]:
        [score] = cosine(parts, np.array([row]), ROWS[row])
        assert score == pytest.approx(1.0, rel=RTOL)


def test_cosine_of_an_empty_query_is_zero() -> None:
    parts = [LexicalPart.of(0, ROWS, WIDTH)]
    scores = cosine(parts, np.array([0, 1, 4]), TermVector.empty())
    assert scores.dtype == np.float32 and scores.tolist() == [0.0, 0.0, 0.0]


# search -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cuts", SPLITS)
def test_search_is_best_first_over_rows_sharing_a_term(cuts: tuple[int, ...]) -> None:
    rows, scores = search(_parts(ROWS, WIDTH, cuts), QUERY, 10)
    assert rows.dtype == np.int64 and scores.dtype == np.float32
    assert rows.tolist() == [4, 1, 0, 7, 5]
    expected = _reference(ROWS, WIDTH)[rows] @ _reference([QUERY], WIDTH)[0]
    np.testing.assert_allclose(scores, expected, rtol=RTOL)


@pytest.mark.parametrize("cuts", SPLITS)
def test_search_count_caps_the_best(cuts: tuple[int, ...]) -> None:
    parts = _parts(ROWS, WIDTH, cuts)
    for count, expected in [(1, [4]), (2, [4, 1]), (4, [4, 1, 0, 7]), (5, [4, 1, 0, 7, 5])]:
        rows, scores = search(parts, QUERY, count)
        assert rows.tolist() == expected
        assert len(scores) == len(expected)


@pytest.mark.parametrize("count", [0, -1])
def test_search_for_no_rows_is_empty(count: int) -> None:
    rows, scores = search([LexicalPart.of(0, ROWS, WIDTH)], QUERY, count)
    assert rows.tolist() == [] and scores.tolist() == []


def test_search_of_an_empty_query_or_no_parts_is_empty() -> None:
    for parts, query in [([LexicalPart.of(0, ROWS, WIDTH)], TermVector.empty()), ([], QUERY)]:
        rows, scores = search(parts, query, 5)
        assert rows.dtype == np.int64 and rows.tolist() == [] and scores.tolist() == []


def test_search_only_rows_sharing_a_term() -> None:
    rows, _ = search([LexicalPart.of(0, ROWS, WIDTH)], _vector({2: 1.0, 4: 1.0}), 10)
    assert sorted(rows.tolist()) == [2, 6]
    rows, _ = search([LexicalPart.of(0, ROWS, WIDTH)], _vector({3: 1.0, 5: 0.1}), 10)
    assert rows.tolist() == [5, 7]
    rows, scores = search([LexicalPart.of(0, ROWS[:5], WIDTH)], _vector({4: 1.0}), 10)
    assert rows.tolist() == [] and scores.tolist() == []


@pytest.mark.parametrize("cuts", SPLITS)
def test_search_honours_drop(cuts: tuple[int, ...]) -> None:
    parts = _parts(ROWS, WIDTH, cuts)
    rows, _ = search(parts, QUERY, 10, drop={4, 0})
    assert rows.tolist() == [1, 7, 5]
    rows, _ = search(parts, QUERY, 2, drop=[4, 2, 3])  # dropped rows free their places
    assert rows.tolist() == [1, 0]
    rows, _ = search(parts, QUERY, 10, drop=range(8))
    assert rows.tolist() == []


@pytest.mark.parametrize("cuts", SPLITS)
def test_search_honours_allowed(cuts: tuple[int, ...]) -> None:
    parts = _parts(ROWS, WIDTH, cuts)
    allowed = np.array([True, False, True, True, False, True, True, True])
    rows, _ = search(parts, QUERY, 10, allowed=allowed)
    assert rows.tolist() == [0, 7, 5]
    rows, _ = search(parts, QUERY, 1, allowed=allowed)
    assert rows.tolist() == [0]
    rows, _ = search(parts, QUERY, 10, allowed=allowed, drop=(7,))
    assert rows.tolist() == [0, 5]
    rows, _ = search(parts, QUERY, 10, allowed=np.zeros(8, dtype=bool))
    assert rows.tolist() == []
    rows, _ = search(parts, QUERY, 10, allowed=np.ones(8, dtype=bool))
    assert rows.tolist() == [4, 1, 0, 7, 5]


def test_search_ties_keep_every_tied_row() -> None:
    vectors = [_vector({0: 1.0}) for _ in range(6)]
    rows, scores = search(_parts(vectors, 2, (2, 4)), _vector({0: 1.0}), 10)
    assert sorted(rows.tolist()) == list(range(6))
    np.testing.assert_allclose(scores, np.ones(6), rtol=RTOL)
    rows, _ = search(_parts(vectors, 2, (2, 4)), _vector({0: 1.0}), 3)
    assert len(set(rows.tolist())) == 3


def test_search_picks_with_the_strongest_query_terms_only() -> None:
    """A row sharing only the query's weakest term (past QUERY_TERMS) is no candidate."""
    width = QUERY_TERMS + 1
    weak = QUERY_TERMS  # the weakest term of the query
    query = _vector({t: (2.0 if t < QUERY_TERMS else 0.5) for t in range(width)})
    vectors = [_vector({weak: 1.0}), _vector({0: 1.0}), _vector({weak: 1.0, 1: 1.0})]
    parts = [LexicalPart.of(0, vectors, width)]
    rows, scores = search(parts, query, 10)
    assert sorted(rows.tolist()) == [1, 2]
    # Scores are partial: the weak term does not count in them, but counts in cosine.
    full = cosine(parts, rows, query)
    row_2 = rows.tolist().index(2)
    assert scores[row_2] < full[row_2]
    assert full[row_2] == pytest.approx(
        (2.0 + 0.5) / np.sqrt(2) / np.sqrt(4.0 * QUERY_TERMS + 0.25), rel=RTOL
    )


def test_search_on_fitted_texts() -> None:
    """End to end: the query text's own article first, then articles sharing its words."""
    lexicon, vectors = fit(CORPUS, 2, min_df=1)
    parts = _parts(vectors, len(lexicon.terms), (3, 5))
    [query] = lexicon.vectorize([CORPUS[3]])
    rows, scores = search(parts, query, 3)
    assert rows[0] == 3 and scores[0] == pytest.approx(1.0, rel=RTOL)
    assert rows[1] == 4  # "striker", "club": the only other football story
    rows, _ = search(parts, query, 3, drop={3})
    assert rows[0] == 4


# search: properties -------------------------------------------------------------------------

term_weights = st.floats(min_value=0.01, max_value=1.0)


@st.composite
def search_inputs(draw: st.DrawFn) -> dict:
    width = draw(st.integers(min_value=1, max_value=QUERY_TERMS + 8))
    count = draw(st.integers(min_value=1, max_value=25))
    terms = st.integers(min_value=0, max_value=width - 1)
    rows = draw(
        st.lists(st.dictionaries(terms, term_weights, max_size=6), min_size=count, max_size=count)
    )
    query = draw(st.dictionaries(terms, term_weights, min_size=1, max_size=min(width, QUERY_TERMS)))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=count), max_size=3)))
    return {
        "width": width,
        "vectors": [_vector(row) for row in rows],
        "query": _vector(query),
        "cuts": tuple(cuts),
        "count": draw(st.integers(min_value=1, max_value=count + 2)),
        "allowed": draw(st.none() | st.lists(st.booleans(), min_size=count, max_size=count)),
        "drop": draw(st.sets(st.integers(min_value=0, max_value=count - 1), max_size=4)),
    }


# deadline=None: the first sparse products of a run can take longer than Hypothesis's default.
@settings(max_examples=200, deadline=None)
@given(inputs=search_inputs())
def test_search_property_top_rows_by_full_cosine(inputs: dict) -> None:
    width, vectors, query = inputs["width"], inputs["vectors"], inputs["query"]
    allowed = None if inputs["allowed"] is None else np.array(inputs["allowed"], dtype=bool)
    rows, scores = search(
        _parts(vectors, width, inputs["cuts"]),
        query,
        inputs["count"],
        drop=inputs["drop"],
        allowed=allowed,
    )
    full = _reference(vectors, width) @ _reference([query], width)[0]
    eligible = full > 0
    if allowed is not None:
        eligible &= allowed
    eligible[list(inputs["drop"])] = False
    best = np.sort(full[eligible])[::-1][: inputs["count"]]
    assert len(rows) == len(best) == len(scores)
    assert len(set(rows.tolist())) == len(rows)
    assert eligible[rows].all()
    assert (np.diff(scores) <= 0).all()
    np.testing.assert_allclose(scores, full[rows], rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(scores, best, rtol=RTOL, atol=1e-6)


# lexical_text -------------------------------------------------------------------------------


def test_lexical_text_strips_html_from_the_body() -> None:
    body = (
        "<p>Fish &amp; <b>chips</b></p><script>var tracker = 1;</script>"
        "<div class='ad'>second\n\n paragraph</div><!-- hidden -->"
    )
    assert lexical_text("Title here", body) == "Title here\nFish & chips second paragraph"


def test_lexical_text_keeps_the_whole_body() -> None:
    words = [f"word{i}" for i in range(600)]
    text = lexical_text("Title", "<p>" + " ".join(words) + "</p>")
    assert len(text) > 3000
    assert text == "Title\n" + " ".join(words)


def test_lexical_text_reads_title_and_body_up_to_read_chars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recommender import lexical

    cleaned: list[int] = []
    real = lexical.clean_html

    def clean_html(text: str) -> str:
        cleaned.append(len(text))
        return real(text)

    monkeypatch.setattr(lexical, "clean_html", clean_html)
    title = "Harbour storm " * 750_000  # 10 MB each
    body = "<p>Ferries stay in port.</p> " * 350_000
    text = lexical_text(title, body)
    assert cleaned == [READ_CHARS]
    assert text == lexical_text(title[:READ_CHARS], body[:READ_CHARS])
    assert len(text) <= 2 * READ_CHARS + 1


@pytest.mark.parametrize("body", ["", "<p></p>", "  \n ", "<script>x()</script>"])
def test_lexical_text_without_a_body_is_the_title(body: str) -> None:
    assert lexical_text("Only the title", body) == "Only the title"


def test_lexical_text_markup_is_no_term() -> None:
    texts = [
        lexical_text("Rain", "<div class='story'><span style='x'>floods</span></div>"),
        lexical_text("Budget", '<p><a href="https://example.com">council</a></p>'),
    ]
    lexicon, _ = fit(texts, 1, min_df=1)
    assert set(lexicon.terms) == {"rain", "floods", "budget", "council"}


def test_fit_with_min_df_above_the_build_size_is_a_clear_error() -> None:
    from recommender.errors import SettingsError

    with pytest.raises(SettingsError, match="lexical_min_df 200 is more than the 150"):
        fit(["market report rain"] * 150, 1, min_df=200)


# Languages ------------------------------------------------------------------------------------


def test_stop_words_follow_the_language() -> None:
    from recommender.lexical import analyze, stop_words

    assert {"the", "and"} <= stop_words("en") and stop_words(None) == stop_words("en")
    assert {"что", "это", "как"} <= stop_words("ru")  # one-letter words are never terms
    assert {"ve", "bir", "için"} <= stop_words("tr")
    # Azerbaijani: our own list (stopwordsiso has none), written as ``lower`` writes it.
    assert {"və", "ilə", "üçün", "bu", "olub", "hansı"} <= stop_words("az")
    azerbaijani = "Bakıda və İsmayıllıda zəlzələ olub, bu barədə nazirlik bildirib"
    assert analyze(azerbaijani, "az", 1) == ["bakıda", "ismayıllıda", "zəlzələ", "nazirlik"]
    # Russian: stopwordsiso's list without the content words news is about.
    assert {"москва", "россия", "год", "война", "город"}.isdisjoint(stop_words("ru"))
    assert analyze("Москва и Россия: год войны", "ru", 1) == ["москва", "россия", "год", "войны"]
    russian = "Пожар в горах и эвакуация сёл"
    assert analyze(russian, "ru", 1) == ["пожар", "горах", "эвакуация", "сёл"]
    assert "горах" in analyze(russian, None, 1) and "в" not in analyze(russian, None, 1)
    turkish = "Orman yangını ve tahliye için bir plan"
    assert analyze(turkish, "tr", 1) == ["orman", "yangını", "tahliye", "plan"]
    assert {"ve", "için", "bir"} <= set(analyze(turkish, "en", 1))  # not English stop words


def test_stop_words_go_before_bigrams_as_in_sklearn() -> None:
    from recommender.lexical import analyze

    assert analyze("Лесной пожар и эвакуация", "ru", 2) == [
        "лесной",
        "пожар",
        "эвакуация",
        "лесной пожар",
        "пожар эвакуация",
    ]


def test_unspaced_scripts_become_character_pairs() -> None:
    from recommender.lexical import analyze, words

    assert words("北京发生地震") == ["北京", "京发", "发生", "生地", "地震"]
    assert words("東京で地震 Tokyo") == ["東京", "京で", "で地", "地震", "tokyo"]
    assert words("地") == ["地"]  # a lone character is a word of its own
    assert words("แผ่นดินไหว")[:2] == ["แผ", "ผ่"]  # Thai, marks kept inside the pairs
    assert "我们" not in analyze("我们北京地震", "zh", 1)  # a Chinese stop word


def test_a_chinese_headline_is_not_one_term() -> None:
    texts = ["北京发生强烈地震", "上海发生强烈地震", "北京举行马拉松比赛", "上海举行马拉松比赛"]
    lexicon, vectors = fit(texts, 1, min_df=1, languages=["zh"] * 4)
    assert "地震" in lexicon.terms and "北京发生强烈地震" not in lexicon.terms
    assert all(len(v.terms) >= 4 for v in vectors)
    query = lexicon.vectorize(["北京地震"], ["zh"])[0]
    rows, _ = search([LexicalPart.of(0, vectors, len(lexicon.terms))], query, 4)
    assert rows[0] == 0  # the Beijing earthquake: both words shared


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        (
            "ZƏLZƏLƏ Bakıda: evlər dağılıb, çöldə ŞİKAYƏT",
            "az",
            ["zəlzələ", "bakıda", "evlər", "dağılıb", "çöldə", "şikayət"],
        ),
        (
            "İSTANBUL'DA DEPREM: IĞDIR, İzmir ve Isparta",
            "tr",
            ["istanbul", "deprem", "ığdır", "izmir", "ısparta"],
        ),
        ("Ёлки и ТАВРИН: прошёл дождь", "ru", ["ёлки", "таврин", "прошёл", "дождь"]),
        ("İstanbul marathon", "en", ["istanbul", "marathon"]),  # no combining dot left
    ],
)
def test_letters_of_every_alphabet_survive(text: str, language: str, expected: list[str]) -> None:
    from recommender.lexical import analyze

    assert analyze(text, language, 1) == expected


def test_decomposed_letters_are_composed() -> None:
    from recommender.lexical import words

    assert words("й".replace("й", "и\u0306") + "од") == ["йод"]  # NFD input, one word


def test_fit_and_vectorize_use_each_texts_language() -> None:
    texts = ["Пожар в горах Таврин", "Пожар в городе Лирова", "Orman yangını ve Tavrin"]
    languages = ["ru", "ru", "tr"]
    lexicon, fitted = fit(texts, 1, min_df=1, languages=languages)
    assert "в" not in lexicon.terms and "ve" not in lexicon.terms and "пожар" in lexicon.terms
    again = lexicon.vectorize(texts, languages)
    for a, b in zip(fitted, again, strict=True):
        np.testing.assert_array_equal(a.terms, b.terms)
        np.testing.assert_allclose(a.weights, b.weights, rtol=RTOL)
    with pytest.raises(ValueError, match="2 texts but 1 languages"):
        lexicon.vectorize(texts[:2], ["ru"])


# capped postings -------------------------------------------------------------------------------


def test_capped_keeps_each_terms_strongest_rows() -> None:
    from recommender.lexical import capped

    weights = [0.1, 0.9, 0.5, 0.9, 0.3]  # term 0 in every row, term 1 in row 2 only
    vectors = [
        _vector({0: w, 1: 0.4, 2: 1.0} if row == 2 else {0: w, 2: 1.0})
        for row, w in enumerate(weights)
    ]
    matrix = stack(vectors, 3).tocsc()
    kept = capped(matrix, cap=2)
    assert kept.getcol(0).nonzero()[0].tolist() == [1, 3]  # the two largest, rows ascending
    assert kept.getcol(1).nonzero()[0].tolist() == [2]
    assert kept.getcol(2).nonzero()[0].tolist() == [0, 4]  # weighs most beside a small term 0
    assert capped(matrix, cap=5) is matrix  # nothing to cut


def test_search_walks_only_the_capped_postings() -> None:
    from recommender.lexical import capped

    vectors = [_vector({0: 0.1 * (row + 1), 1: 1.0}) for row in range(8)]
    part = LexicalPart(0, stack(vectors, 2), capped(stack(vectors, 2).tocsc(), 3))
    rows, _ = search([part], _vector({0: 1.0}), 10)
    assert rows.tolist() == [7, 6, 5]  # the term's three strongest rows, not all eight


def test_stack_blobs_equals_stack_of_the_vectors() -> None:
    from recommender.lexical import stack_blobs

    vectors = [*ROWS, TermVector.empty()]
    matrix = stack_blobs([v.to_blobs() for v in vectors], WIDTH)
    np.testing.assert_array_equal(matrix.toarray(), stack(vectors, WIDTH).toarray())
    assert matrix.indices.dtype == np.int32 and matrix.data.dtype == np.float32
    assert stack_blobs([], WIDTH).shape == (0, WIDTH)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 30),
    width=st.integers(1, 25),
    density=st.floats(0.0, 0.6),
    seed=st.integers(0, 10_000),
    picks=st.lists(st.integers(0, 29), max_size=8),
)
def test_products_are_the_pairwise_dot_products(
    n: int, width: int, density: float, seed: int, picks: list[int]
) -> None:
    matrix = sparse.random(n, width, density=density, random_state=seed, format="csr")
    matrix = matrix.astype(np.float32)
    columns = np.array([p % n for p in picks], dtype=np.int64)
    expected = (matrix @ matrix.T).toarray()[:, columns]
    found = products(matrix, columns)
    assert found.shape == (n, len(columns))
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    # The same rows taken from parts (as a query's candidates are) give the same products.
    rows = np.arange(n)[::-1].copy()
    cut = n // 2
    parts = [LexicalPart.of_matrix(0, matrix[:cut]), LexicalPart.of_matrix(cut, matrix[cut:])]
    taken = rows_matrix([p for p in parts if p.count], rows)
    np.testing.assert_allclose(
        products(taken, columns),
        (matrix[rows] @ matrix[rows].T).toarray()[:, columns],
        rtol=1e-5,
        atol=1e-6,
    )


@given(
    values=st.lists(st.integers(-5, 40), max_size=30),
    others=st.lists(st.integers(-5, 40), max_size=30),
)
def test_outside_is_not_isin(values: list[int], others: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    expected = ~np.isin(array, np.array(others, dtype=np.int64))
    for given_as in (set(others), frozenset(others), np.array(others, dtype=np.int64)):
        np.testing.assert_array_equal(outside(array, given_as), expected)


def test_every_own_stop_word_is_one_word_as_words_cuts_it() -> None:
    from recommender.lexical import words
    from recommender.stopwords_az_ru import AZERBAIJANI, RUSSIAN_CONTENT_WORDS

    for word in AZERBAIJANI:
        assert words(word, "az") == [word]
    for word in RUSSIAN_CONTENT_WORDS:
        assert words(word, "ru") == [word]
    import stopwordsiso

    # Each content word taken out is one the published list holds (no typo that removes nothing).
    assert set(RUSSIAN_CONTENT_WORDS) <= set(stopwordsiso.stopwords("ru"))


def test_known_share_counts_the_words_the_lexicon_holds() -> None:
    from recommender.lexical import Lexicon

    lexicon = Lexicon(terms=("quake", "valdoria"), idf=np.ones(2), ngrams=1)
    assert lexicon.known_share("The quake in Valdoria", "en") == 1.0  # "the", "in": stop words
    assert lexicon.known_share("Quake hits Corvena and Valdoria", "en") == 0.5
    assert lexicon.known_share("the and of", "en") == 1.0  # nothing TF-IDF would read


def _kazakh_like(count: int, offset: int = 0) -> list[str]:
    """Texts of a language with no published stop-word list: "және" (and) and "бұл" (this) in
    every one, and a content word shared by a few."""
    return [f"бұл жаңалық{(i + offset) // 3} және сөз{i + offset} тағы" for i in range(count)]


def test_languages_without_a_list_get_stop_words_from_their_own_texts() -> None:
    texts = _kazakh_like(DERIVED_STOP_WORDS_FROM)
    lexicon, vectors = fit(texts, 2, min_df=1, languages=["kk"] * len(texts))
    terms = set(lexicon.terms)
    assert {"және", "бұл"}.isdisjoint(terms), "in every text: stop words"
    assert not any("және" in term.split(" ") for term in terms), "no n-gram holding one"
    assert {"жаңалық0", "сөз1"} <= terms
    # A draft is weighed as the build's texts were: its stop words count in nothing.
    draft = lexicon.vectorize(["және бұл жаңалық0"], ["kk"])[0]
    assert [lexicon.terms[t] for t in draft.terms] == ["жаңалық0"]
    assert all(abs(float(np.linalg.norm(v.weights)) - 1.0) < 1e-5 for v in vectors if v.terms.size)


def test_derived_stop_words_need_enough_texts_and_no_published_list() -> None:
    few = _kazakh_like(DERIVED_STOP_WORDS_FROM - 1)
    lexicon, _ = fit(few, 1, min_df=1, languages=["kk"] * len(few))
    assert "және" in lexicon.terms  # too few texts to tell a function word from a story's
    english = [f"the report number {i} says" for i in range(DERIVED_STOP_WORDS_FROM)]
    assert derived_stop_words(english, ["en"] * len(english)) == frozenset()  # it has a list
    assert derived_stop_words(english, [None] * len(english)) == frozenset()
    mixed = _kazakh_like(DERIVED_STOP_WORDS_FROM) + english
    languages = ["kk"] * DERIVED_STOP_WORDS_FROM + ["en"] * len(english)
    assert derived_stop_words(mixed, languages) == {"және", "бұл", "тағы"}
