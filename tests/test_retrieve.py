"""Tests for recommender.read.retrieve against a real FAISS flat index and numpy brute force."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.read.retrieve import RowFilter, allowed_rows, retrieve
from recommender.storage.columns import Columns

# 50 rows: not a multiple of 8, so the last byte of the filter bitmap is only partly used.
ROWS = 50
DIMENSION = 16
NAN = float("nan")


def _unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


VECTORS = _unit_vectors(np.random.default_rng(7), ROWS)
QUERY = _unit_vectors(np.random.default_rng(8), 1)[0]
# Exact similarities and the nearest-first order that retrieve must reproduce.
EXACT = VECTORS.astype(np.float64) @ QUERY.astype(np.float64)
NEAREST = np.argsort(-EXACT, kind="stable")


@pytest.fixture(scope="module")
def index() -> faiss.IndexFlatIP:
    flat = faiss.IndexFlatIP(DIMENSION)
    flat.add(VECTORS)
    return flat


def _expected(
    count: int, drop: set[int] | frozenset[int] = frozenset(), allowed: np.ndarray | None = None
) -> list[int]:
    rows = [int(r) for r in NEAREST if r not in drop and (allowed is None or allowed[r])]
    return rows[:count]


def test_data_has_no_near_ties() -> None:
    # Guards the other tests: float32 search must not be able to swap two neighbours.
    assert np.min(-np.diff(EXACT[NEAREST])) > 1e-5


# retrieve -----------------------------------------------------------------------------------


def test_retrieve_nearest_first_with_dot_products(index: faiss.IndexFlatIP) -> None:
    found = retrieve(index, QUERY, 10)
    assert found.rows.dtype == np.int64
    assert found.rows.tolist() == NEAREST[:10].tolist()
    assert found.similarities.tolist() == pytest.approx(EXACT[NEAREST[:10]].tolist(), abs=1e-5)
    assert (np.diff(found.similarities) <= 0).all()


def test_retrieve_accepts_a_float64_row_or_column_vector(index: faiss.IndexFlatIP) -> None:
    for vector in (QUERY.astype(np.float64), QUERY.reshape(1, -1), QUERY.reshape(-1, 1)):
        assert retrieve(index, vector, 5).rows.tolist() == NEAREST[:5].tolist()


def test_retrieve_drops_rows_and_still_returns_count(index: faiss.IndexFlatIP) -> None:
    drop = {int(NEAREST[0]), int(NEAREST[2]), int(NEAREST[3]), int(NEAREST[40])}
    found = retrieve(index, QUERY, 10, drop=drop)
    assert len(found.rows) == 10
    assert found.rows.tolist() == _expected(10, drop)
    assert not set(found.rows.tolist()) & drop
    assert found.similarities.tolist() == pytest.approx(EXACT[found.rows].tolist(), abs=1e-5)


@pytest.mark.parametrize("kind", [list, tuple, set, frozenset])
def test_retrieve_drop_any_collection(index: faiss.IndexFlatIP, kind: type) -> None:
    drop = kind([int(NEAREST[0]), int(NEAREST[1])])
    assert retrieve(index, QUERY, 3, drop=drop).rows.tolist() == NEAREST[2:5].tolist()


def test_retrieve_drop_near_the_end_of_the_index(index: faiss.IndexFlatIP) -> None:
    # count + len(drop) exceeds the index: every row that is left comes back.
    drop = {int(NEAREST[0]), int(NEAREST[10]), int(NEAREST[49])}
    found = retrieve(index, QUERY, ROWS - 3, drop=drop)
    assert len(found.rows) == ROWS - 3
    assert found.rows.tolist() == _expected(ROWS, drop)
    assert len(retrieve(index, QUERY, ROWS, drop=drop).rows) == ROWS - 3


def test_retrieve_count_larger_than_index(index: faiss.IndexFlatIP) -> None:
    found = retrieve(index, QUERY, 500)
    assert found.rows.tolist() == NEAREST.tolist()
    assert found.similarities.tolist() == pytest.approx(EXACT[NEAREST].tolist(), abs=1e-5)


def test_retrieve_count_zero(index: faiss.IndexFlatIP) -> None:
    assert retrieve(index, QUERY, 0).rows.tolist() == []
    assert retrieve(index, QUERY, 0, drop={1, 2}).rows.tolist() == []


def test_retrieve_empty_index() -> None:
    found = retrieve(faiss.IndexFlatIP(DIMENSION), QUERY, 10, drop={0})
    assert found.rows.dtype == np.int64
    assert found.similarities.dtype == np.float32
    assert found.rows.tolist() == []
    assert found.similarities.tolist() == []
    found = retrieve(faiss.IndexFlatIP(DIMENSION), QUERY, 10, allowed=np.zeros(0, dtype=bool))
    assert found.rows.tolist() == []


def test_retrieve_respects_allowed(index: faiss.IndexFlatIP) -> None:
    allowed = np.random.default_rng(3).random(ROWS) < 0.4
    found = retrieve(index, QUERY, 8, allowed=allowed)
    assert found.rows.tolist() == _expected(8, allowed=allowed)
    assert allowed[found.rows].all()
    assert found.similarities.tolist() == pytest.approx(EXACT[found.rows].tolist(), abs=1e-5)


def test_retrieve_allowed_and_drop_together(index: faiss.IndexFlatIP) -> None:
    allowed = np.random.default_rng(4).random(ROWS) < 0.5
    allowed_nearest = [int(r) for r in NEAREST if allowed[r]]
    drop = {allowed_nearest[0], allowed_nearest[1], int(np.flatnonzero(~allowed)[0])}
    found = retrieve(index, QUERY, 5, drop=drop, allowed=allowed)
    assert len(found.rows) == 5
    assert found.rows.tolist() == _expected(5, drop, allowed)


def test_retrieve_fewer_allowed_than_count(index: faiss.IndexFlatIP) -> None:
    allowed = np.zeros(ROWS, dtype=bool)
    allowed[[3, 17, 41]] = True
    found = retrieve(index, QUERY, 10, drop={17}, allowed=allowed)
    assert found.rows.tolist() == _expected(10, {17}, allowed)
    assert sorted(found.rows.tolist()) == [3, 41]


def test_retrieve_nothing_allowed(index: faiss.IndexFlatIP) -> None:
    found = retrieve(index, QUERY, 10, allowed=np.zeros(ROWS, dtype=bool))
    assert found.rows.tolist() == []
    assert found.similarities.tolist() == []


@pytest.mark.parametrize("row", [0, 1, 7, 8, 9, 31, 32, 47, 48, 49])
def test_retrieve_single_allowed_row(index: faiss.IndexFlatIP, row: int) -> None:
    # One bit set at a time: the bitmap must be packed in FAISS's (little-endian) bit order.
    allowed = np.zeros(ROWS, dtype=bool)
    allowed[row] = True
    found = retrieve(index, QUERY, 5, allowed=allowed)
    assert found.rows.tolist() == [row]
    assert found.similarities.tolist() == pytest.approx([EXACT[row]], abs=1e-5)


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=ROWS + 5),
    drop=st.sets(st.integers(min_value=0, max_value=ROWS - 1), max_size=10),
    mask=st.one_of(st.none(), st.lists(st.booleans(), min_size=ROWS, max_size=ROWS)),
)
def test_retrieve_property_matches_brute_force(
    count: int, drop: set[int], mask: list[bool] | None
) -> None:
    flat = faiss.IndexFlatIP(DIMENSION)
    flat.add(VECTORS)
    allowed = None if mask is None else np.array(mask, dtype=bool)
    found = retrieve(flat, QUERY, count, drop=drop, allowed=allowed)
    expected = _expected(count, drop, allowed)
    assert found.rows.tolist() == expected
    assert found.similarities.tolist() == pytest.approx(EXACT[expected].tolist(), abs=1e-5)


# allowed_rows and RowFilter -------------------------------------------------------------------


@pytest.fixture
def columns() -> Columns:
    ids = ["a", "b", "c", "d", "e", "f"]
    return Columns(
        ids=ids,
        published_days=np.array([10.0, 20.0, NAN, 30.0, 40.0, NAN], dtype=np.float64),
        category_codes=np.array([0, 1, 0, -1, 2, 1], dtype=np.int32),
        categories=("news", "sport", "tech"),
        title_codes=np.array([0, 1, 2, 3, 4, 5], dtype=np.int64),
        url_codes=np.array([0, -1, 1, 2, -1, 3], dtype=np.int64),
        alive=np.ones(len(ids), dtype=bool),
        row_of={article_id: row for row, article_id in enumerate(ids)},
    )


def test_allowed_rows_without_filters(columns: Columns) -> None:
    mask = allowed_rows(columns, RowFilter())
    assert mask.dtype == np.bool_
    assert mask.tolist() == [True] * 6


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        (frozenset({0}), [True, False, True, False, False, False]),
        (frozenset({1}), [False, True, False, False, False, True]),
        (frozenset({0, 2}), [True, False, True, False, True, False]),
        (frozenset({5}), [False] * 6),
        (frozenset(), [False] * 6),
    ],
)
def test_allowed_rows_categories(
    columns: Columns, categories: frozenset[int], expected: list[bool]
) -> None:
    assert allowed_rows(columns, RowFilter(categories=categories)).tolist() == expected


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (20.0, None, [False, True, False, True, True, False]),
        (None, 30.0, [True, True, False, True, False, False]),
        (20.0, 30.0, [False, True, False, True, False, False]),
        (20.0, 20.0, [False, True, False, False, False, False]),
        (15.5, 15.5, [False] * 6),
        (0.0, None, [True, True, False, True, True, False]),
        (None, 1e9, [True, True, False, True, True, False]),
        (35.0, 25.0, [False] * 6),
    ],
)
def test_allowed_rows_dates_exclude_undated(
    columns: Columns, since: float | None, until: float | None, expected: list[bool]
) -> None:
    filters = RowFilter(since_day=since, until_day=until)
    assert allowed_rows(columns, filters).tolist() == expected


def test_allowed_rows_categories_and_dates(columns: Columns) -> None:
    filters = RowFilter(categories=frozenset({0, 1}), since_day=15.0)
    assert allowed_rows(columns, filters).tolist() == [False, True, False, False, False, False]


def test_allowed_rows_feed_retrieve(index: faiss.IndexFlatIP) -> None:
    rng = np.random.default_rng(5)
    days = rng.uniform(0, 100, ROWS)
    days[rng.random(ROWS) < 0.2] = NAN
    ids = [f"id{row}" for row in range(ROWS)]
    columns = Columns(
        ids=ids,
        published_days=days,
        category_codes=rng.integers(-1, 3, ROWS).astype(np.int32),
        categories=("a", "b", "c"),
        title_codes=np.arange(ROWS, dtype=np.int64),
        url_codes=np.full(ROWS, -1, dtype=np.int64),
        alive=np.ones(ROWS, dtype=bool),
        row_of={article_id: row for row, article_id in enumerate(ids)},
    )
    filters = RowFilter(categories=frozenset({0, 2}), since_day=30.0)
    mask = allowed_rows(columns, filters)
    expected_mask = np.isin(columns.category_codes, [0, 2]) & (np.nan_to_num(days) >= 30.0)
    assert mask.tolist() == expected_mask.tolist()
    found = retrieve(index, QUERY, 6, allowed=mask)
    assert found.rows.tolist() == _expected(6, allowed=mask)


@pytest.mark.parametrize(
    ("filters", "active"),
    [
        (RowFilter(), False),
        (RowFilter(categories=frozenset({1})), True),
        (RowFilter(categories=frozenset()), True),
        (RowFilter(since_day=0.0), True),
        (RowFilter(until_day=0.0), True),
        (RowFilter(since_day=-5.0, until_day=5.0), True),
    ],
)
def test_filters_active(filters: RowFilter, active: bool) -> None:
    assert filters.active is active


# same_language --------------------------------------------------------------------------------


def _with_languages(columns: Columns) -> Columns:
    from dataclasses import replace

    return replace(
        columns,
        language_codes=np.array([0, 1, 0, -1, 2, 1], dtype=np.int32),
        languages=("az", "ru", "tr"),
    )


@pytest.mark.parametrize(
    ("query_language", "expected"),
    [
        ("az", [True, False, True, False, False, False]),
        ("ru", [False, True, False, False, False, True]),
        ("de", [False] * 6),  # a language no article is in: nothing qualifies
        (None, [True] * 6),  # the query's language is unknown: not applied
    ],
)
def test_same_language_keeps_to_the_query_language(
    columns: Columns, query_language: str | None, expected: list[bool]
) -> None:
    from recommender.read.retrieve import Filters

    columns = _with_languages(columns)
    row_filter = Filters(same_language=True).resolve(columns, -1, "ix", query_language)
    assert row_filter.active is (query_language is not None)
    assert allowed_rows(columns, row_filter).tolist() == expected
    unfiltered = Filters().resolve(columns, -1, "ix", query_language)
    assert unfiltered.language is None and not unfiltered.active


def test_same_language_with_other_filters(columns: Columns) -> None:
    from recommender.read.retrieve import Filters

    columns = _with_languages(columns)
    row_filter = Filters(same_language=True, same_category=True).resolve(columns, 1, "ix", "ru")
    assert allowed_rows(columns, row_filter).tolist() == [False, True, False, False, False, True]
    row_filter = Filters(same_language=True, categories=["news"]).resolve(columns, 1, "ix", "az")
    assert allowed_rows(columns, row_filter).tolist() == [True, False, True, False, False, False]


# a graph index (HNSW) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> object:
    from recommender.storage.vectors import built_vector_index, search_of

    search = search_of({"vector_search": "hnsw"}, ROWS)
    return built_vector_index(DIMENSION, "float32", search, VECTORS)


def test_retrieve_from_a_graph_is_nearest_first(graph: object) -> None:
    found = retrieve(graph, QUERY, 10)  # 50 rows, efSearch 128: the walk sees them all
    assert found.rows.tolist() == NEAREST[:10].tolist()
    assert found.similarities.tolist() == pytest.approx(EXACT[NEAREST[:10]].tolist(), abs=1e-5)


def test_retrieve_from_a_graph_honours_allowed_and_drop(graph: object) -> None:
    drop = {int(NEAREST[0]), int(NEAREST[3])}
    wide = np.ones(ROWS, dtype=bool)
    wide[NEAREST[1]] = False  # most rows allowed: the graph is walked
    found = retrieve(graph, QUERY, 8, drop=drop, allowed=wide)
    assert found.rows.tolist() == _expected(8, drop, wide)
    narrow = np.zeros(ROWS, dtype=bool)
    narrow[NEAREST[[5, 17, 30, 44]]] = True  # few allowed: its vectors are scanned
    found = retrieve(graph, QUERY, 8, allowed=narrow)
    assert found.rows.tolist() == _expected(8, allowed=narrow)
    bitmap = np.packbits(narrow, bitorder="little")
    assert retrieve(graph, QUERY, 8, allowed=narrow, bitmap=bitmap).rows.tolist() == (
        found.rows.tolist()
    )
