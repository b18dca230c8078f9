"""Tests for recommender.rerank: recency, category, ordering and duplicates, over plain arrays."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from recommender.rerank import category_factors, first_of_each, recency_factors, rerank

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


def test_recency_of_undated_article_is_half_a_weight_down() -> None:
    factors = recency_factors(_array([NAN, 100.0]), 100.0, 7.0, 0.4)
    assert factors.tolist() == pytest.approx([0.8, 1.0], abs=TOLERANCE)


def test_recency_future_is_fresh() -> None:
    published = _array([110.0, 100.0, 93.0, NAN])
    symmetric = recency_factors(published, 100.0, 10.0, 0.5)
    fresh = recency_factors(published, 100.0, 10.0, 0.5, future_is_fresh=True)
    assert symmetric.tolist() == pytest.approx([0.75, 1.0, 0.5 + 0.5 * 2**-0.7, 0.75])
    assert fresh.tolist() == pytest.approx([1.0, 1.0, 0.5 + 0.5 * 2**-0.7, 0.75])


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
    # At or before the reference, and undated, nothing changes.
    assert np.array_equal(fresh[~future], symmetric[~future])


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
    ranked = rerank(
        _array([0.9, 0.8, 0.8, 0.5]),
        _array([93.0, 100.0, NAN, 100.0]),
        np.array([0, 1, 1, -1], dtype=np.int32),
        reference_day=100.0,
        query_category=1,
        half_life_days=7.0,
        recency_weight=0.2,
        category_boost=0.25,
    )
    assert ranked.recency.tolist() == pytest.approx([0.9, 1.0, 0.9, 1.0])
    assert ranked.category.tolist() == [1.0, 1.25, 1.25, 1.0]
    assert ranked.scores.tolist() == pytest.approx([0.81, 1.0, 0.9, 0.5])
    assert ranked.order.tolist() == [1, 2, 0, 3]


def test_rerank_ties_newer_first_then_undated_then_position() -> None:
    ranked = rerank(
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
    ranked = rerank(
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
    near = rerank(
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
    far = rerank(
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
    ranked = rerank(
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
    ranked = rerank(
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
        ranked = rerank(
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
    return rerank(inputs["similarities"], inputs["published"], inputs["codes"], **arguments)


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
    ranked = rerank(
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


# first_of_each ------------------------------------------------------------------------------


def test_first_of_each_example() -> None:
    titles = np.array([0, 1, 0, 2, -1, 3], dtype=np.int64)
    urls = np.array([5, -1, 6, 5, -1, 7], dtype=np.int64)
    order = np.array([0, 1, 2, 3, 4, 5])
    assert first_of_each(order, titles, urls).tolist() == [0, 1, 4, 5]
    assert first_of_each(order, titles, urls, taken=(1, 7)).tolist() == [0, 4]
    assert first_of_each(order[::-1], titles, urls).tolist() == [5, 4, 3, 2, 1]
    assert first_of_each(order, titles, urls, limit=2).tolist() == [0, 1]


def test_first_of_each_empty() -> None:
    result = first_of_each(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert result.dtype == np.int64
    assert result.tolist() == []


def test_first_of_each_limit_zero_keeps_nothing() -> None:
    keys = np.array([0, 1, 2], dtype=np.int64)
    assert first_of_each(np.array([0, 1, 2]), keys, limit=0).tolist() == []


@st.composite
def dedup_inputs(draw: st.DrawFn) -> dict:
    n = draw(st.integers(min_value=0, max_value=20))
    key_count = draw(st.integers(min_value=1, max_value=3))
    keys = [
        np.array(draw(st.lists(codes, min_size=n, max_size=n)), dtype=np.int64)
        for _ in range(key_count)
    ]
    return {
        "order": np.array(draw(st.permutations(range(n))), dtype=np.int64),
        "keys": keys,
        "taken": tuple(draw(st.lists(codes, max_size=key_count))),
    }


@settings(max_examples=200)
@given(inputs=dedup_inputs())
def test_first_of_each_property(inputs: dict) -> None:
    order, keys, taken = inputs["order"], inputs["keys"], inputs["taken"]
    kept = first_of_each(order, *keys, taken=taken)
    kept_list = kept.tolist()
    # A subsequence of order.
    place = _positions(order)
    assert all(item in place for item in kept_list)
    assert [place[item] for item in kept_list] == sorted(place[item] for item in kept_list)
    assert len(set(kept_list)) == len(kept_list)
    for index, key in enumerate(keys):
        values = [int(key[item]) for item in kept_list if key[item] >= 0]
        # No two kept items share a key value, and none repeats the query's own.
        assert len(values) == len(set(values))
        if index < len(taken) and taken[index] >= 0:
            assert taken[index] not in values
    # Nothing is dropped without a reason: a skipped item collides with a taken or kept key.
    kept_set = set(kept_list)
    for item in order.tolist():
        if item in kept_set:
            continue
        earlier = [k for k in kept_list if place[k] < place[item]]
        clashes = any(
            int(key[item]) >= 0
            and (
                (index < len(taken) and int(key[item]) == taken[index])
                or any(int(key[k]) == int(key[item]) for k in earlier)
            )
            for index, key in enumerate(keys)
        )
        assert clashes


@given(inputs=dedup_inputs())
def test_first_of_each_property_minus_one_never_drops(inputs: dict) -> None:
    order = inputs["order"]
    keys = [np.full(len(order), -1, dtype=np.int64) for _ in inputs["keys"]]
    taken = tuple(-1 for _ in inputs["taken"])
    assert first_of_each(order, *keys, taken=taken).tolist() == order.tolist()


@settings(max_examples=200)
@given(inputs=dedup_inputs(), limit=st.integers(min_value=0, max_value=25))
def test_first_of_each_property_limit_is_a_prefix(inputs: dict, limit: int) -> None:
    order, keys, taken = inputs["order"], inputs["keys"], inputs["taken"]
    unlimited = first_of_each(order, *keys, taken=taken).tolist()
    limited = first_of_each(order, *keys, taken=taken, limit=limit).tolist()
    assert limited == unlimited[:limit]
    assert len(limited) == min(limit, len(unlimited))
