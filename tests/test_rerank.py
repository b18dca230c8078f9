"""Tests for recommender.read.rerank: fusion, neighbours, recency, category, copies, diversity."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import sparse

from recommender.read.rerank import (
    MIN_CALIBRATION_POOL,
    REFERENCE_MEAN,
    REFERENCE_SPREAD,
    Fusion,
    Query,
    _grouped,
    blind,
    calibrate,
    category_factors,
    fuse,
    fusion,
    fusion_weight,
    group_copies,
    imputation,
    lexical_share,
    mmr,
    rank,
    recency_factors,
    shown_copy,
    weigh,
)
from recommender.read.retrieve import Pool
from recommender.settings import Ranking

NAN = float("nan")
TOLERANCE = 1e-12

# Strategies ---------------------------------------------------------------------------------

weights = st.floats(min_value=0.0, max_value=1.0)
half_lives = st.floats(min_value=0.5, max_value=3650.0)
days = st.floats(min_value=0.0, max_value=30000.0)
days_or_nan = st.one_of(days, st.just(NAN))
references = st.floats(min_value=0.0, max_value=40000.0)
similarities = st.floats(min_value=-1.0, max_value=1.0)
codes = st.integers(min_value=-1, max_value=4)


def _array(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _date_key(day: float) -> float:
    """Newest first, undated last: the tie-break rerank promises."""
    return math.inf if math.isnan(day) else -day


def _expected_order(scores: np.ndarray, published: np.ndarray) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], _date_key(float(published[i])), i))


def _positions(order: np.ndarray) -> dict[int, int]:
    return {int(item): place for place, item in enumerate(order)}


@st.composite
def candidates(draw: st.DrawFn, *, sims: st.SearchStrategy[float] = similarities) -> dict:
    n = draw(st.integers(min_value=0, max_value=25))
    return {
        "similarities": _array(draw(st.lists(sims, min_size=n, max_size=n))),
        "published": _array(draw(st.lists(days_or_nan, min_size=n, max_size=n))),
        "codes": np.array(draw(st.lists(codes, min_size=n, max_size=n)), dtype=np.int32),
    }


# recency_factors: examples ------------------------------------------------------------------


def test_recency_is_one_at_age_zero() -> None:
    factors = recency_factors(_array([100.0]), 100.0, 7.0, 0.3)
    assert factors.tolist() == pytest.approx([1.0], abs=TOLERANCE)


def test_recency_at_one_and_two_half_lives() -> None:
    factors = recency_factors(_array([93.0, 107.0, 86.0]), 100.0, 7.0, 0.4)
    assert factors.tolist() == pytest.approx([0.8, 0.8, 0.7], abs=TOLERANCE)


def test_recency_of_undated_article_is_the_median_of_the_dated_ones() -> None:
    factors = recency_factors(_array([NAN, 100.0, 93.0, 86.0]), 100.0, 7.0, 0.4)
    assert factors.tolist() == pytest.approx([0.8, 1.0, 0.8, 0.7], abs=TOLERANCE)
    # Neither rewarded nor punished: however near the dated ones are.
    factors = recency_factors(_array([NAN, 100.0, 100.0, 1.0]), 100.0, 1.0, 0.5)
    assert factors[0] == pytest.approx(1.0)
    # None dated: one half-life.
    assert recency_factors(_array([NAN, NAN]), 100.0, 1.0, 0.5).tolist() == [0.75, 0.75]


def test_recency_future_is_fresh() -> None:
    published = _array([110.0, 100.0, 93.0, NAN])
    symmetric = recency_factors(published, 100.0, 10.0, 0.5)
    fresh = recency_factors(published, 100.0, 10.0, 0.5, future_is_fresh=True)
    week = 0.5 + 0.5 * 2**-0.7
    assert symmetric.tolist() == pytest.approx([0.75, 1.0, week, week])  # undated: the median
    assert fresh.tolist() == pytest.approx([1.0, 1.0, week, 1.0])


@pytest.mark.parametrize(
    ("reference", "half_life", "weight"),
    [(None, 7.0, 0.5), (NAN, 7.0, 0.5), (100.0, None, 0.5), (100.0, 7.0, 0.0)],
)
def test_recency_off_gives_ones(
    reference: float | None, half_life: float | None, weight: float
) -> None:
    factors = recency_factors(_array([100.0, 0.0, NAN, 5000.0]), reference, half_life, weight)
    assert factors.dtype == np.float64
    assert factors.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_recency_of_no_articles_is_empty() -> None:
    assert recency_factors(_array([]), 100.0, 7.0, 0.5).tolist() == []
    assert recency_factors(_array([]), None, 7.0, 0.5).tolist() == []


# recency_factors: properties ----------------------------------------------------------------


@given(reference=references, half_life=half_lives, weight=weights, fresh=st.booleans())
def test_recency_property_age_zero_is_one(
    reference: float, half_life: float, weight: float, fresh: bool
) -> None:
    factors = recency_factors(_array([reference]), reference, half_life, weight)
    assert factors[0] == pytest.approx(1.0, abs=TOLERANCE)
    factors = recency_factors(
        _array([reference]), reference, half_life, weight, future_is_fresh=fresh
    )
    assert factors[0] == pytest.approx(1.0, abs=TOLERANCE)


@given(
    reference=st.integers(min_value=0, max_value=30000),
    half_life=st.integers(min_value=1, max_value=3650),
    weight=weights,
)
def test_recency_property_one_half_life_and_undated(
    reference: int, half_life: int, weight: float
) -> None:
    # Whole days keep reference - published exact, so the age is exactly one half-life.
    published = _array([reference - half_life, reference + half_life, NAN])
    factors = recency_factors(published, float(reference), float(half_life), weight)
    assert factors.tolist() == pytest.approx([1 - weight / 2] * 3, abs=TOLERANCE)


@given(
    published=st.lists(days_or_nan, max_size=30),
    reference=references,
    half_life=half_lives,
    weight=weights,
    fresh=st.booleans(),
)
def test_recency_property_bounded(
    published: list[float], reference: float, half_life: float, weight: float, fresh: bool
) -> None:
    factors = recency_factors(
        _array(published), reference, half_life, weight, future_is_fresh=fresh
    )
    assert len(factors) == len(published)
    assert not np.isnan(factors).any()
    assert (factors >= 1 - weight - TOLERANCE).all()
    assert (factors <= 1 + TOLERANCE).all()


@given(
    published=st.lists(days, min_size=1, max_size=30),
    reference=references,
    half_life=half_lives,
    weight=weights,
)
def test_recency_property_monotone_in_age(
    published: list[float], reference: float, half_life: float, weight: float
) -> None:
    values = _array(published)
    factors = recency_factors(values, reference, half_life, weight)
    by_age = np.argsort(np.abs(reference - values), kind="stable")
    assert (np.diff(factors[by_age]) <= 0).all()


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=20000), max_size=30),
    reference=st.integers(min_value=0, max_value=20000),
    half_life=half_lives,
    weight=weights,
)
def test_recency_property_symmetric_by_default(
    offsets: list[int], reference: int, half_life: float, weight: float
) -> None:
    before = _array([reference - offset for offset in offsets])
    after = _array([reference + offset for offset in offsets])
    assert np.array_equal(
        recency_factors(before, float(reference), half_life, weight),
        recency_factors(after, float(reference), half_life, weight),
    )


@given(
    published=st.lists(days_or_nan, max_size=30),
    reference=references,
    half_life=half_lives,
    weight=weights,
)
def test_recency_property_future_is_fresh(
    published: list[float], reference: float, half_life: float, weight: float
) -> None:
    values = _array(published)
    fresh = recency_factors(values, reference, half_life, weight, future_is_fresh=True)
    symmetric = recency_factors(values, reference, half_life, weight)
    future = values > reference
    assert fresh[future].tolist() == pytest.approx([1.0] * int(future.sum()), abs=TOLERANCE)
    # At or before the reference nothing changes; undated ones take the median of the dated.
    past = ~future & ~np.isnan(values)
    assert np.array_equal(fresh[past], symmetric[past])
    undated = np.isnan(values)
    if undated.any() and not undated.all():
        assert fresh[undated] == pytest.approx(float(np.median(fresh[~undated])), abs=TOLERANCE)


@given(
    published=st.lists(days_or_nan, max_size=30),
    switch=st.sampled_from(["no reference", "NaN reference", "no half-life", "no weight"]),
    reference=references,
    half_life=half_lives,
    weight=weights,
    fresh=st.booleans(),
)
def test_recency_property_all_ones_when_off(
    published: list[float],
    switch: str,
    reference: float,
    half_life: float,
    weight: float,
    fresh: bool,
) -> None:
    arguments: dict[str, float | None] = {
        "reference_day": reference,
        "half_life_days": half_life,
        "weight": weight,
    }
    off: dict[str, tuple[str, float | None]] = {
        "no reference": ("reference_day", None),
        "NaN reference": ("reference_day", NAN),
        "no half-life": ("half_life_days", None),
        "no weight": ("weight", 0.0),
    }
    name, value = off[switch]
    arguments[name] = value
    factors = recency_factors(
        _array(published),
        arguments["reference_day"],
        arguments["half_life_days"],
        arguments["weight"],  # type: ignore[arg-type]
        future_is_fresh=fresh,
    )
    assert factors.tolist() == [1.0] * len(published)


# category_factors ---------------------------------------------------------------------------


def test_category_boosts_the_query_category_only() -> None:
    factors = category_factors(np.array([0, 1, -1, 1, 2], dtype=np.int32), 1, 0.5)
    assert factors.tolist() == [1.0, 1.5, 1.0, 1.5, 1.0]


def test_category_unknown_query_or_no_boost_gives_ones() -> None:
    assert category_factors(np.array([-1, 0, -1]), -1, 0.5).tolist() == [1.0, 1.0, 1.0]
    assert category_factors(np.array([1, 1, 0]), 1, 0.0).tolist() == [1.0, 1.0, 1.0]
    assert category_factors(np.array([], dtype=np.int32), 1, 0.5).tolist() == []


@given(
    codes_list=st.lists(codes, max_size=30),
    query=codes,
    boost=st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=2.0)),
)
def test_category_property(codes_list: list[int], query: int, boost: float) -> None:
    factors = category_factors(np.array(codes_list, dtype=np.int32), query, boost)
    expected = [1.0 + boost if query >= 0 and code == query else 1.0 for code in codes_list]
    assert factors.tolist() == expected
    assert all(f == 1.0 for f, code in zip(factors, codes_list, strict=True) if code == -1)


# rerank: examples ---------------------------------------------------------------------------


def test_rerank_example_scores_and_order() -> None:
    ranked = weigh(
        _array([0.9, 0.8, 0.8, 0.5]),
        _array([93.0, 100.0, NAN, 100.0]),
        np.array([0, 1, 1, -1], dtype=np.int32),
        reference_day=100.0,
        query_category=1,
        half_life_days=7.0,
        recency_weight=0.2,
        category_boost=0.25,
    )
    # The undated one gets the median decay of the dated ones (1: two of three are same-day).
    assert ranked.recency.tolist() == pytest.approx([0.9, 1.0, 1.0, 1.0])
    assert ranked.category.tolist() == [1.0, 1.25, 1.25, 1.0]
    assert ranked.scores.tolist() == pytest.approx([0.81, 1.0, 1.0, 0.5])
    assert ranked.order.tolist() == [1, 2, 0, 3]  # a tie: the dated one first


def test_rerank_ties_newer_first_then_undated_then_position() -> None:
    ranked = weigh(
        _array([0.5, 0.5, 0.5, 0.5, 0.5, 0.7]),
        _array([NAN, 10.0, 30.0, NAN, 30.0, 0.0]),
        np.array([-1] * 6, dtype=np.int32),
        reference_day=None,
        query_category=-1,
        half_life_days=7.0,
        recency_weight=0.5,
        category_boost=0.5,
    )
    assert ranked.scores.tolist() == [0.5, 0.5, 0.5, 0.5, 0.5, 0.7]
    assert ranked.order.tolist() == [5, 2, 4, 1, 0, 3]


def test_rerank_no_candidates() -> None:
    ranked = weigh(
        _array([]),
        _array([]),
        np.array([], dtype=np.int32),
        reference_day=100.0,
        query_category=0,
        half_life_days=7.0,
        recency_weight=0.5,
        category_boost=0.5,
    )
    assert ranked.order.tolist() == []
    assert ranked.scores.tolist() == []


def test_rerank_recency_reorders_a_near_tie_only() -> None:
    # 0.80 (fresh) vs 0.82 (one half-life old): recency wins a near-tie...
    near = weigh(
        _array([0.82, 0.80]),
        _array([93.0, 100.0]),
        np.array([-1, -1], dtype=np.int32),
        reference_day=100.0,
        query_category=-1,
        half_life_days=7.0,
        recency_weight=0.2,
        category_boost=0.0,
    )
    assert near.order.tolist() == [1, 0]
    # ...but a fresh unrelated article cannot pass a clearly related old one.
    far = weigh(
        _array([0.82, 0.30]),
        _array([0.0, 100.0]),
        np.array([-1, -1], dtype=np.int32),
        reference_day=100.0,
        query_category=-1,
        half_life_days=7.0,
        recency_weight=0.2,
        category_boost=0.0,
    )
    assert far.order.tolist() == [0, 1]


def test_rerank_newer_not_below_older_with_negative_similarity() -> None:
    ranked = weigh(
        _array([-0.5, -0.5]),
        _array([100.0, 0.0]),
        np.array([-1, -1], dtype=np.int32),
        reference_day=100.0,
        query_category=-1,
        half_life_days=7.0,
        recency_weight=0.5,
        category_boost=0.0,
        future_is_fresh=True,
    )
    assert ranked.scores.tolist() == pytest.approx([-0.5, -0.5 / (0.5 + 0.5 * 2 ** (-100 / 7))])
    assert ranked.order.tolist() == [0, 1]


def test_rerank_category_boost_not_a_penalty_with_negative_similarity() -> None:
    ranked = weigh(
        _array([-0.5, -0.5]),
        _array([100.0, 100.0]),
        np.array([0, 1], dtype=np.int32),
        reference_day=None,
        query_category=1,
        half_life_days=None,
        recency_weight=0.0,
        category_boost=0.2,
    )
    assert ranked.scores.tolist() == pytest.approx([-0.5, -0.5 / 1.2])
    assert ranked.order.tolist() == [1, 0]


def test_rerank_scores_finite_with_full_recency_weight_and_negative_similarity() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ranked = weigh(
            _array([-0.5, 0.5]),
            _array([0.0, 0.0]),
            np.array([-1, -1], dtype=np.int32),
            reference_day=30000.0,
            query_category=-1,
            half_life_days=7.0,
            recency_weight=1.0,
            category_boost=0.0,
        )
    assert ranked.recency.tolist() == [0.0, 0.0]
    assert np.isfinite(ranked.scores).all()
    assert ranked.order.tolist() == [1, 0]


# rerank: properties -------------------------------------------------------------------------


@st.composite
def rerank_inputs(draw: st.DrawFn, *, sims: st.SearchStrategy[float] = similarities) -> dict:
    data = draw(candidates(sims=sims))
    return {
        **data,
        "reference": draw(st.one_of(st.none(), references)),
        "query_category": draw(codes),
        "half_life": draw(st.one_of(st.none(), half_lives)),
        # Weight 1 can make a recency factor exactly 0: see the -inf test above.
        "weight": draw(st.floats(min_value=0.0, max_value=1.0, exclude_max=True)),
        "boost": draw(st.floats(min_value=0.0, max_value=1.0)),
        "fresh": draw(st.booleans()),
    }


def _rerank(inputs: dict, **overrides: object):  # type: ignore[no-untyped-def]
    arguments = {
        "reference_day": inputs["reference"],
        "query_category": inputs["query_category"],
        "half_life_days": inputs["half_life"],
        "recency_weight": inputs["weight"],
        "category_boost": inputs["boost"],
        "future_is_fresh": inputs["fresh"],
    }
    arguments.update(overrides)
    return weigh(inputs["similarities"], inputs["published"], inputs["codes"], **arguments)


@settings(max_examples=200)
@given(inputs=rerank_inputs())
@example(  # found in CI: a recency factor below the 1e-12 floor
    inputs={
        "similarities": np.array([-1.0]),
        "published": np.array([40.0]),
        "codes": np.array([0], dtype=np.int32),
        "reference": 0.0,
        "query_category": 0,
        "half_life": 1.0,
        "weight": 0.9999999999999998,
        "boost": 0.0,
        "fresh": False,
    }
)
def test_rerank_property_order_scores_and_ties(inputs: dict) -> None:
    ranked = _rerank(inputs)
    n = len(inputs["similarities"])
    assert sorted(ranked.order.tolist()) == list(range(n))
    recency = recency_factors(
        inputs["published"],
        inputs["reference"],
        inputs["half_life"],
        inputs["weight"],
        future_is_fresh=inputs["fresh"],
    )
    category = category_factors(inputs["codes"], inputs["query_category"], inputs["boost"])
    assert np.array_equal(ranked.recency, recency)
    assert np.array_equal(ranked.category, category)
    # Factors raise or lower a score whatever its sign: negative similarities are divided
    # (by factors floored at 1e-12, so that scores stay finite).
    sims = inputs["similarities"]
    factors = recency * category
    expected = np.where(sims >= 0, sims * factors, sims / np.maximum(factors, 1e-12))
    assert ranked.scores.tolist() == pytest.approx(expected.tolist(), rel=1e-12, abs=0)
    assert (np.diff(ranked.scores[ranked.order]) <= 0).all()
    # Equal scores: newer first, undated last, then the earlier candidate.
    assert ranked.order.tolist() == _expected_order(ranked.scores, inputs["published"])


@settings(max_examples=200)
@given(inputs=rerank_inputs(), similarity=similarities)
def test_rerank_property_newer_never_below_older(inputs: dict, similarity: float) -> None:
    n = len(inputs["similarities"])
    ranked = _rerank(
        {**inputs, "similarities": np.full(n, similarity)},
        future_is_fresh=True,
        reference_day=inputs["reference"] if inputs["reference"] is not None else 40000.0,
        category_boost=0.0,
    )
    place = _positions(ranked.order)
    published = inputs["published"]
    for newer in range(n):
        for older in range(n):
            if published[newer] > published[older]:
                assert place[newer] < place[older]


@given(
    data=candidates(),
    similarity=similarities,
    reference=references,
    half_life=half_lives,
    weight=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    boost=st.floats(min_value=0.0, max_value=1.0),
)
def test_rerank_property_newer_never_below_older_from_now(
    data: dict, similarity: float, reference: float, half_life: float, weight: float, boost: float
) -> None:
    # Reference after every date, same similarity and same category everywhere.
    n = len(data["similarities"])
    dated = data["published"][~np.isnan(data["published"])]
    now = max(reference, float(dated.max()) if len(dated) else 0.0)
    ranked = weigh(
        np.full(n, similarity),
        data["published"],
        np.full(n, 2, dtype=np.int32),
        reference_day=now,
        query_category=2,
        half_life_days=half_life,
        recency_weight=weight,
        category_boost=boost,
        future_is_fresh=True,
    )
    place = _positions(ranked.order)
    published = data["published"]
    for newer in range(n):
        for older in range(n):
            if published[newer] > published[older]:
                assert place[newer] < place[older]


@given(inputs=rerank_inputs())
def test_rerank_property_plain_similarity_when_off(inputs: dict) -> None:
    ranked = _rerank(inputs, half_life_days=None, category_boost=0.0)
    assert np.array_equal(ranked.scores, inputs["similarities"])
    assert ranked.order.tolist() == _expected_order(inputs["similarities"], inputs["published"])


@settings(max_examples=200)
@given(
    inputs=rerank_inputs(sims=st.floats(min_value=0.0, max_value=1.0)),
    weight=st.floats(min_value=0.0, max_value=0.99),
)
def test_rerank_property_recency_cannot_lift_unrelated_above_related(
    inputs: dict, weight: float
) -> None:
    # Similarity ahead by more than a factor 1 / (1 - w): recency alone cannot reverse it.
    ranked = _rerank(inputs, recency_weight=weight, category_boost=0.0)
    place = _positions(ranked.order)
    sims = inputs["similarities"]
    n = len(sims)
    for related in range(n):
        for other in range(n):
            if sims[related] * (1 - weight) > sims[other] + 1e-9:
                assert place[related] < place[other]


@settings(max_examples=200)
@given(inputs=rerank_inputs(), weight=st.floats(min_value=0.0, max_value=0.99))
def test_rerank_property_recency_bounds_with_negative_similarities(
    inputs: dict, weight: float
) -> None:
    # Recency only lowers a score, by at most a factor 1 - w (a divisor for negative ones).
    ranked = _rerank(inputs, recency_weight=weight, category_boost=0.0)
    sims = inputs["similarities"]
    lowest = np.where(sims >= 0, sims * (1 - weight), sims / (1 - weight))
    assert (ranked.scores <= sims + 1e-12).all()
    assert (ranked.scores >= lowest - 1e-12).all()
    place = _positions(ranked.order)
    for related in range(len(sims)):
        for other in range(len(sims)):
            if lowest[related] > sims[other] + 1e-9:
                assert place[related] < place[other]


# fusion -------------------------------------------------------------------------------------


def test_fuse_ends_and_middle() -> None:
    dense, lexical = _array([0.8, 0.2]), _array([0.1, 0.9])
    assert fuse(dense, lexical, 0.0).tolist() == dense.tolist()
    assert fuse(dense, lexical, 1.0).tolist() == lexical.tolist()
    assert fuse(dense, lexical, 0.5) == pytest.approx([0.45, 0.55])


def test_short_queries_get_their_own_lexical_weight() -> None:
    ranking = Ranking(lexical_weight=0.7, lexical_weight_short=0.2, short_terms=20)
    assert fusion_weight(_pool(3, query_terms=19), ranking) == 0.2
    assert fusion_weight(_pool(3, query_terms=20), ranking) == 0.7


# copies -------------------------------------------------------------------------------------


def test_group_copies_example() -> None:
    # 0~2 and 1~4 are copies, 2~4 too; 3 copies the query. Groups form around heads only:
    # 4 copies head 1 (2 is no head), and the head walked first wins.
    copies = np.eye(5, dtype=bool)
    for a, b in ((0, 2), (1, 4), (2, 4)):
        copies[a, b] = copies[b, a] = True
    of_query = np.array([False, False, False, True, False])
    order = np.array([0, 1, 2, 3, 4])
    assert group_copies(order, copies, of_query) == [[0, 2], [1, 4]]
    assert group_copies(order, copies, of_query, limit=1) == [[0, 2]]
    assert group_copies(np.array([4, 3, 2, 1, 0]), copies, of_query) == [[4, 2, 1], [0]]


@st.composite
def copy_inputs(draw: st.DrawFn) -> dict:
    n = draw(st.integers(min_value=0, max_value=14))
    pairs = draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, max(n - 1, 0)))))
    copies = np.eye(n, dtype=bool)
    for a, b in pairs:
        if n:
            copies[a, b] = copies[b, a] = True
    return {
        "order": np.array(draw(st.permutations(range(n))), dtype=np.int64),
        "copies": copies,
        "of_query": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
    }


@settings(max_examples=200)
@given(inputs=copy_inputs(), limit=st.integers(min_value=0, max_value=16))
def test_group_copies_property(inputs: dict, limit: int) -> None:
    order, copies, of_query = inputs["order"], inputs["copies"], inputs["of_query"]
    groups = group_copies(order, copies, of_query)
    place = {int(p): i for i, p in enumerate(order)}
    listed = [p for group in groups for p in group]
    # Every candidate that is not a copy of the query is in exactly one group.
    assert sorted(listed) == sorted(int(p) for p in order if not of_query[p])
    heads = [group[0] for group in groups]
    assert [place[h] for h in heads] == sorted(place[h] for h in heads)
    for i, group in enumerate(groups):
        head = group[0]
        # No head copies an earlier head; every member copies its head and comes after it,
        # and no earlier head.
        assert not any(copies[head, earlier] for earlier in heads[:i])
        for member in group[1:]:
            assert copies[member, head] and place[member] > place[head]
            assert not any(copies[member, earlier] for earlier in heads[:i])
    # A limit keeps the first groups whole.
    assert group_copies(order, copies, of_query, limit=limit) == groups[:limit]


def test_shown_copy_is_the_best_scored_then_the_earliest_published() -> None:
    days = _array([NAN, 5.0, 3.0, 3.0])
    equal = _array([0.5, 0.5, 0.5, 0.5])
    assert shown_copy([0, 1, 2, 3], equal, days) == [2, 0, 1, 3]  # the first of equal days
    assert shown_copy([1, 2], _array([0.0, 0.6, 0.5, 0.0]), days) == [1, 2]  # best score wins
    assert shown_copy([0], equal, days) == [0]
    assert shown_copy([0, 1], equal, _array([NAN, NAN])) == [0, 1]  # undated: order kept


# diversity ----------------------------------------------------------------------------------


def test_mmr_lambda_one_is_score_order_and_lower_spreads() -> None:
    scores = _array([0.9, 0.89, 0.5])
    similarity = np.array([[1.0, 0.99, 0.1], [0.99, 1.0, 0.1], [0.1, 0.1, 1.0]])
    assert mmr(scores, similarity, 1.0, 3).tolist() == [0, 1, 2]
    assert mmr(scores, similarity, 0.5, 3).tolist() == [0, 2, 1]
    assert mmr(scores, similarity, 0.5, 1).tolist() == [0]


@settings(max_examples=100)
@given(
    scores=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10),
    lam=st.floats(0.0, 1.0),
    limit=st.integers(1, 12),
    seed=st.integers(0, 1000),
)
def test_mmr_property(scores: list[float], lam: float, limit: int, seed: int) -> None:
    n = len(scores)
    vectors = np.random.default_rng(seed).normal(size=(n, 4))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picked = mmr(_array(scores), vectors @ vectors.T, lam, limit).tolist()
    assert len(picked) == min(n, limit) and len(set(picked)) == len(picked)
    assert scores[picked[0]] == max(scores)  # nothing taken yet: the best score first


# rank ---------------------------------------------------------------------------------------


def _pool(
    n: int,
    *,
    seed: int = 0,
    query_terms: int = 50,
    titles: list[int] | None = None,
    days: list[float] | None = None,
) -> Pool:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = rng.normal(size=8).astype(np.float32)
    query /= np.linalg.norm(query)
    terms = sparse.random(n, 30, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    norms = np.sqrt(np.asarray(terms.multiply(terms).sum(axis=1))).ravel()
    terms = sparse.csr_matrix(sparse.diags(1.0 / np.maximum(norms, 1e-9)) @ terms)
    query_terms_vector = np.abs(rng.normal(size=30)).astype(np.float32)
    query_terms_vector /= np.linalg.norm(query_terms_vector)
    return Pool(
        dense=vectors @ query,
        lexical=np.asarray(terms @ query_terms_vector, dtype=np.float32),
        vectors=vectors,
        terms=terms,
        published_days=_array(days if days is not None else [100.0] * n),
        category_codes=np.zeros(n, dtype=np.int32),
        title_codes=np.array(titles if titles is not None else range(n), dtype=np.int64),
        url_codes=np.full(n, -1, dtype=np.int64),
        query_terms=query_terms,
    )


def test_rank_without_neighbours_or_copies_is_fused_order() -> None:
    pool = _pool(12, seed=3)
    ranking = Ranking(
        neighbours=0, half_life_days=None, category_boost=0.0, duplicate_threshold=1.0
    )
    listing = rank(pool, ranking, Query(day=None))
    fused = fuse(pool.dense, pool.lexical, ranking.lexical_weight)
    assert [int(g[0]) for g in listing.groups] == np.argsort(-fused, kind="stable").tolist()
    assert all(len(g) == 1 for g in listing.groups)


def test_rank_groups_copies_and_drops_those_of_the_query() -> None:
    # Candidates 0, 1 and 4 share a title; 2 has the query's title.
    pool = _pool(5, titles=[7, 7, 9, 8, 7], days=[10.0, 5.0, 10.0, 10.0, 20.0])
    listing = rank(pool, Ranking(), Query(day=None, title_code=9))
    members = [sorted(g.tolist()) for g in listing.groups]
    assert [0, 1, 4] in members and [3] in members and len(members) == 2
    copies = next(g for g in listing.groups if len(g) == 3)
    best = max((0, 1, 4), key=lambda i: listing.scores[i])
    assert int(copies[0]) == best  # the best-scored copy is shown
    assert 2 not in [p for g in listing.groups for p in g.tolist()]


def test_neighbour_term_rewards_agreement_with_the_nearest() -> None:
    # 0 and 1 are the query's nearest; 2 and 3 are equally close to the query, but 2 is close
    # to 0 and 1 and 3 is not: the neighbour term puts 2 first.
    vectors = np.array(
        [[1, 0, 0, 0], [0.9, 0.436, 0, 0], [0.8, 0.3, 0.52, 0], [0.1, -0.3, 0, 0.95]],
        dtype=np.float32,
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pool = Pool(
        dense=np.array([0.9, 0.85, 0.5, 0.5], dtype=np.float32),
        lexical=np.zeros(4, dtype=np.float32),
        vectors=vectors,
        terms=sparse.csr_matrix((4, 3), dtype=np.float32),
        published_days=np.full(4, NAN),
        category_codes=np.full(4, -1, dtype=np.int32),
        title_codes=np.arange(4, dtype=np.int64),
        url_codes=np.full(4, -1, dtype=np.int64),
        query_terms=50,
    )
    ranking = Ranking(lexical_weight=0.0, half_life_days=None, category_boost=0.0)
    order = [int(g[0]) for g in rank(pool, ranking, Query(day=None)).groups]
    assert order.index(2) < order.index(3)
    flat = rank(pool, Ranking(lexical_weight=0.0, neighbour_weight=0.0), Query(day=None))
    assert flat.similarity.tolist() == pytest.approx(pool.dense.tolist())


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=25),
    seed=st.integers(0, 10_000),
    lexical=weights,
    neighbour=st.floats(0.0, 3.0),
    lam=st.floats(0.0, 1.0),
    threshold=st.floats(0.3, 1.0),
    limit=st.one_of(st.none(), st.integers(0, 30)),
)
def test_rank_property(
    n: int,
    seed: int,
    lexical: float,
    neighbour: float,
    lam: float,
    threshold: float,
    limit: int | None,
) -> None:
    rng = np.random.default_rng(seed)
    titles = rng.integers(-1, max(n // 2, 1), size=n).tolist()
    pool = _pool(n, seed=seed, titles=titles, days=rng.uniform(0, 30, size=n).tolist())
    ranking = Ranking(
        lexical_weight=lexical,
        neighbour_weight=neighbour,
        mmr_lambda=lam,
        duplicate_threshold=threshold,
    )
    query_title = int(rng.integers(-1, 3))
    listing = rank(pool, ranking, Query(day=15.0, title_code=query_title), limit=limit)
    listed = [int(p) for g in listing.groups for p in g]
    assert len(listed) == len(set(listed)) and all(0 <= p < n for p in listed)
    if limit is not None:
        assert len(listing.groups) <= limit
    for group in listing.groups:
        # No copy of the query; the copy shown is the best scored of its group.
        assert all(query_title < 0 or titles[int(p)] != query_title for p in group)
        assert all(pool.lexical[int(p)] < threshold for p in group)
        assert listing.scores[group[0]] >= listing.scores[group].max() - 1e-9
    # Uncalibrated, the similarity stays a weighted mean of cosines: within [-1, 1]; the
    # calibrated one is an increasing map of it (the candidates' order by similarity is kept).
    query = Query(day=15.0, title_code=query_title)
    raw = rank(pool, replace(ranking, calibration="none"), query, limit=limit)
    assert np.all(np.abs(raw.similarity) <= 1.0 + 1e-6)
    by_raw = np.argsort(raw.similarity, kind="stable")
    assert np.all(np.diff(listing.similarity[by_raw]) >= -1e-9)
    if lam == 1.0:
        best = [float(listing.scores[g].max()) for g in listing.groups]
        assert best == sorted(best, reverse=True)


# calibration ---------------------------------------------------------------------------------


def test_calibration_puts_the_pool_on_the_reference_scale() -> None:
    similarity = np.array([0.9, 0.8, 0.75, 0.72, 0.7, 0.95])
    out = calibrate(similarity)
    assert out.mean() == pytest.approx(REFERENCE_MEAN)
    assert out.std() == pytest.approx(REFERENCE_SPREAD)
    assert list(np.argsort(out)) == list(np.argsort(similarity))  # the order is kept


def test_calibration_counts_only_the_counted_candidates() -> None:
    similarity = np.array([0.2, 0.3, 0.4, 0.5, 0.6, 0.99])
    counted = np.array([True] * 5 + [False])  # a copy of the query left out of the statistics
    out = calibrate(similarity, counted)
    assert out[:5].mean() == pytest.approx(REFERENCE_MEAN)
    assert out[5] > out[:5].max()


def test_small_or_flat_pools_are_left_alone_or_neutral() -> None:
    few = np.linspace(0.1, 0.9, MIN_CALIBRATION_POOL - 1)
    assert np.array_equal(calibrate(few), few)
    flat = np.full(MIN_CALIBRATION_POOL + 3, 0.8)
    assert np.allclose(calibrate(flat), REFERENCE_MEAN)


def test_one_ranking_serves_models_of_different_scales() -> None:
    """A model whose cosines are squeezed into 0.7-1.0 (e5) ranks as one spread over 0-1 (MiniLM)
    once calibrated; raw, the same recency weight lets time override it."""
    pool = _pool(40, seed=3, days=[float(d) for d in np.linspace(0.0, 30.0, 40)])
    squeezed = replace(pool, dense=0.85 + 0.15 * pool.dense)
    ranking = Ranking(lexical_weight=0.0, lexical_weight_short=0.0, neighbour_weight=0.0)
    query = Query(day=0.0)
    wide = rank(pool, ranking, query)
    narrow = rank(squeezed, ranking, query)
    assert [list(g) for g in narrow.groups] == [list(g) for g in wide.groups]
    raw = replace(ranking, calibration="none")
    assert [list(g) for g in rank(squeezed, raw, query).groups] != [
        list(g) for g in rank(pool, raw, query).groups
    ]


@settings(max_examples=300)
@given(inputs=copy_inputs(), limit=st.integers(min_value=0, max_value=16), width=st.integers(0, 16))
def test_grouping_from_the_first_columns_equals_grouping_from_all(
    inputs: dict, limit: int, width: int
) -> None:
    """What ``rank`` does to avoid computing every pair: the copies of the first ``width``
    candidates of the order only; either the same groups or None (it needs more columns)."""
    order, copies, of_query = inputs["order"], inputs["copies"], inputs["of_query"]
    width = min(width, len(order))
    found = _grouped(order, copies[:, order[:width]], of_query, limit)
    if width == len(order):
        assert found is not None
    if found is not None:
        assert found == group_copies(order, copies, of_query, limit)


def test_rank_with_a_limit_lists_what_ranking_everything_lists_first() -> None:
    """Many copies early in the order make the walk ask for more columns than it started with:
    the groups are still those of grouping with every pair."""
    n = 60
    titles = [i // 4 for i in range(n)]  # runs of four copies
    pool = _pool(n, seed=5, titles=titles)
    ranking = Ranking(half_life_days=None, category_boost=0.0)
    everything = rank(pool, ranking, Query(day=None))
    for limit in (1, 3, 10, 15, 40):
        limited = rank(pool, ranking, Query(day=None), limit=limit)
        assert [g.tolist() for g in limited.groups] == [
            g.tolist() for g in everything.groups[:limit]
        ]


# TF-IDF across languages --------------------------------------------------------------------


def _languages(pool: Pool, codes: list[int]) -> Pool:
    return replace(pool, language_codes=np.array(codes, dtype=np.int32))


def test_one_language_ranks_as_before_whatever_the_codes() -> None:
    pool = _pool(12, seed=5)
    ranking = Ranking(half_life_days=None, category_boost=0.0)
    before = rank(pool, ranking, Query(day=None))
    for codes, language in (([0] * 12, 0), ([-1] * 12, 0), ([0, -1] * 6, 0), ([1] * 12, -1)):
        after = rank(_languages(pool, codes), ranking, Query(day=None, language=language))
        assert [g.tolist() for g in after.groups] == [g.tolist() for g in before.groups]
        assert after.scores == pytest.approx(before.scores)


def test_another_language_is_not_pushed_down_by_the_words_it_cannot_share() -> None:
    # Candidate 0, in another language, is the closest by embedding; its TF-IDF cosine is 0
    # as for every article in another language. Counted as 0 it fell below same-language
    # articles the embedding finds far less close; imputed, it keeps its place.
    n = 12
    pool = _pool(n, seed=2)
    dense = np.linspace(0.2, 0.6, n).astype(np.float32)
    dense[0] = 0.9
    lexical = np.linspace(0.05, 0.3, n).astype(np.float32)
    lexical[0] = 0.0
    pool = replace(pool, dense=dense, lexical=lexical)
    ranking = Ranking(half_life_days=None, category_boost=0.0, neighbours=0)
    blind_to_it = rank(pool, ranking, Query(day=None))
    assert int(blind_to_it.groups[0][0]) != 0
    seen = rank(_languages(pool, [1] + [0] * (n - 1)), ranking, Query(day=None, language=0))
    assert int(seen.groups[0][0]) == 0


def test_imputed_cosines_sit_on_the_scale_of_the_query_language() -> None:
    n = 10
    pool = _pool(n, seed=1)
    dense = np.linspace(0.1, 0.9, n)
    lexical = 0.05 + 0.5 * (dense - 0.1)  # a perfect line: slope 0.5, through (0.1, 0.05)
    pool = replace(pool, dense=dense.astype(np.float32), lexical=lexical.astype(np.float32))
    imputed = imputation(pool, np.ones(n, dtype=bool))
    assert imputed is not None
    assert imputed(np.array([0.1, 0.5])) == pytest.approx([0.05, 0.25], abs=1e-6)


def test_too_few_candidates_in_the_query_language_give_no_scale_to_impute_from() -> None:
    pool = _languages(_pool(12, seed=4), [0] * 4 + [1] * 8)
    query = Query(day=None, language=0)
    assert fusion(pool, Ranking(), query, np.zeros(12, dtype=bool)) == Fusion(0.7)
    # Copies of the query are not counted among them.
    pool = _languages(pool, [0] * 5 + [1] * 7)
    copies = np.array([True] + [False] * 11)
    assert fusion(pool, Ranking(), query, copies) == Fusion(0.7)
    fused = fusion(pool, Ranking(), query, np.zeros(12, dtype=bool))
    assert fused.weight == 0.7 and fused.imputed is not None
    assert blind(pool.language_codes, 0) is not None
    assert blind(pool.language_codes, -1) is None
    assert blind(np.array([0, -1, 0]), 0) is None  # unknown: TF-IDF may see it


def test_a_text_the_lexicon_barely_knows_weighs_tfidf_less() -> None:
    assert lexical_share(1.0) == 1.0
    assert lexical_share(0.5) == 1.0
    assert lexical_share(0.25) == 0.5
    assert lexical_share(0.0) == 0.0
    ranking = Ranking(lexical_weight=0.7, lexical_weight_short=0.3, short_terms=20)
    assert fusion_weight(_pool(3), ranking, Query(day=None, lexical_share=0.5)) == 0.35


def test_terms_shared_across_languages_still_count() -> None:
    # Names, figures and cognates do cross languages: a real cosine above the imputed one is kept.
    n = 12
    pool = _languages(_pool(n, seed=6), [1] + [0] * (n - 1))
    lexical = np.full(n, 0.1, dtype=np.float32)
    lexical[0] = 0.9
    pool = replace(pool, lexical=lexical)
    fused = fusion(pool, Ranking(), Query(day=None, language=0), np.zeros(n, dtype=bool))
    assert fused.imputed is not None
    imputed = fused.imputed(pool.dense[:1])[0]
    assert imputed < 0.9
    expected = 0.3 * pool.dense[0] + 0.7 * 0.9
    assert fused.to_query(pool.dense, pool.lexical)[0] == pytest.approx(expected, rel=1e-6)


def test_shared_names_put_the_same_story_above_the_same_kind_of_event() -> None:
    # 0 and 1 are the query's story (they share its names); 2 is the same kind of event
    # elsewhere: closer in wording to the query (dense), no name in common with it or with 0, 1.
    vectors = np.array(
        [[1, 0, 0, 0], [0.9, 0.436, 0, 0], [0.95, 0, 0.31, 0], [0, 0, 0, 1]], dtype=np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = sparse.csr_matrix(
        np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
    )
    pool = Pool(
        dense=np.array([0.7, 0.6, 0.72, 0.1], dtype=np.float32),
        lexical=np.zeros(4, dtype=np.float32),
        vectors=vectors,
        terms=sparse.csr_matrix((4, 3), dtype=np.float32),
        published_days=np.full(4, NAN),
        category_codes=np.full(4, -1, dtype=np.int32),
        title_codes=np.arange(4, dtype=np.int64),
        url_codes=np.full(4, -1, dtype=np.int64),
        query_terms=50,
        identity=np.array([0.9, 0.7, 0.0, 0.0], dtype=np.float32),
        names=names,
    )
    plain = Ranking(lexical_weight=0.0, half_life_days=None, category_boost=0.0)
    off = [
        int(g[0]) for g in rank(pool, replace(plain, identity_weight=0.0), Query(day=None)).groups
    ]
    on = [
        int(g[0]) for g in rank(pool, replace(plain, identity_weight=0.2), Query(day=None)).groups
    ]
    assert off.index(2) < off.index(1) and on[:2] == [0, 1]
    # Between candidates: 1 shares names with 0, the query's nearest, and 2 does not.
    assert pool.identity_to(np.array([0]))[:, 0].tolist() == pytest.approx([1.0, 0.8, 0.0, 0.0])
    # Without names (an index built before them) the weight changes nothing.
    bare = replace(pool, identity=None, names=None)
    assert [
        int(g[0]) for g in rank(bare, replace(plain, identity_weight=0.2), Query(day=None)).groups
    ] == off
