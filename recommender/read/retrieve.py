"""Retrieving candidates: the embedding's nearest and the TF-IDF's best, filtered, never the
query itself, gathered into the ``Pool`` that ranking (rerank.py) orders.

The candidate stage does not depend on the ranking weights (only on ``Ranking.candidates``),
so a pool can be ranked again with other settings (``recommend tune`` does).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ..articles import parse_datetime, quoted
from ..errors import InvalidQueryError
from ..lexical import Products, TermVector, cosine_with, outside, rows_matrix
from ..lexical import search as lexical_search
from ..names import names_of, rows_names
from ..storage.columns import SECONDS_PER_DAY, Columns
from ..storage.vectors import is_graph, single_threaded_queries

if TYPE_CHECKING:
    from .snapshot import Snapshot


@dataclass(frozen=True)
class Candidates:
    """Rows of the index and their cosine similarity to the query, nearest first."""

    rows: np.ndarray
    similarities: np.ndarray


@dataclass(frozen=True)
class Filters:
    """Which articles a query may return, as a caller gives them.

    ``same_category``: only articles in the query's category; ``categories``: only articles in
    these; ``since`` / ``until``: only articles published in this range (bounds included; a bare
    date as ``until`` includes that day; undated articles fail either bound); ``exclude``: ids
    never to return; ``same_language``: only articles in the query's language (its effective
    language: the ``lang`` field, else detected when detection is sure). Articles of unknown
    language are then left out. When the query's own language is unknown, ``same_language``
    does nothing (as ``same_category`` for a query without a category): the list is what it
    would be without it.
    """

    same_category: bool = False
    categories: Iterable[str] | None = None
    since: datetime | date | str | None = None
    until: datetime | date | str | None = None
    exclude: Iterable[str] = ()
    same_language: bool = False

    @classmethod
    def merged(cls, given: Filters | None, *fields: Any) -> Filters:
        """``given`` (by default none), with the six fields given as the facade's keywords
        (in field order), each that differs from its default."""
        if fields == _DEFAULT_FIELDS:  # the usual query: nothing to merge
            return given if given is not None else _NO_FILTERS
        defaults = cls()
        names = ("same_category", "categories", "since", "until", "exclude", "same_language")
        keywords = dict(zip(names, fields, strict=True))
        keywords["exclude"] = tuple(keywords["exclude"])
        chosen = {n: v for n, v in keywords.items() if v != getattr(defaults, n)}
        return replace(given or defaults, **chosen)

    def resolve(
        self,
        columns: Columns,
        query_category: int,
        where: object,
        query_language: str | None = None,
    ) -> RowFilter:
        """The row filter of these filters over an index's columns (``where`` names the index
        in errors); InvalidQueryError for an unknown category or a bad date range."""
        codes: set[int] | None = None
        if self.categories is not None:
            names = [self.categories] if isinstance(self.categories, str) else self.categories
            names = list(names)
            unknown = [name for name in names if name not in columns.categories]
            if unknown:
                known = ", ".join(columns.categories[:12]) or "none"
                raise InvalidQueryError(
                    f"category {quoted(unknown[0])} is not in index {where} (known: {known})"
                )
            codes = {columns.category_code(name) for name in names}
        if self.same_category and query_category >= 0:
            codes = {query_category} if codes is None else codes & {query_category}
        since_day = _day(self.since, "since")
        until_day = _day(self.until, "until", end_of_day=True)
        if since_day is not None and until_day is not None and since_day > until_day:
            raise InvalidQueryError(f"since ({self.since}) is after until ({self.until})")
        language = None
        if self.same_language and query_language is not None:
            language = columns.language_code(query_language)  # -2: no article has it
        return RowFilter(
            categories=frozenset(codes) if codes is not None else None,
            since_day=since_day,
            until_day=until_day,
            language=language,
        )


#: The facade's filter keywords left at their defaults (``Filters.merged``), and no filters.
_DEFAULT_FIELDS = (False, None, None, None, (), False)
_NO_FILTERS = Filters()


def _day(
    value: datetime | date | str | None, name: str, *, end_of_day: bool = False
) -> float | None:
    """A bound as days since 1970; a bare date as an ``until`` bound includes that whole day."""
    if value is None:
        return None
    bare_date = (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and len(value.strip()) == 10
    )
    try:
        moment = parse_datetime(value)
    except ValueError as exc:
        raise InvalidQueryError(f"{name} {exc}") from None
    if moment is None:
        raise InvalidQueryError(f"{name} is empty; give a date such as 2026-09-14")
    if bare_date and end_of_day:
        moment += timedelta(days=1) - timedelta(microseconds=1)
    return moment.timestamp() / SECONDS_PER_DAY


@dataclass(frozen=True)
class RowFilter:
    """Which rows may be returned at all (None = no restriction): ``Filters`` resolved."""

    categories: frozenset[int] | None = None
    since_day: float | None = None
    until_day: float | None = None
    language: int | None = None  # a language code (Columns.language_codes); -2 matches none

    @property
    def active(self) -> bool:
        return (
            self.categories is not None
            or self.since_day is not None
            or self.until_day is not None
            or self.language is not None
        )


def allowed_rows(columns: Columns, filters: RowFilter) -> np.ndarray:
    """A boolean mask over all rows; undated articles fail any date bound."""
    mask = np.ones(len(columns.ids), dtype=bool)
    if filters.categories is not None:
        mask &= np.isin(columns.category_codes, np.fromiter(filters.categories, dtype=np.int32))
    if filters.language is not None:
        mask &= columns.language_codes == filters.language
    with np.errstate(invalid="ignore"):
        if filters.since_day is not None:
            mask &= columns.published_days >= filters.since_day
        if filters.until_day is not None:
            mask &= columns.published_days <= filters.until_day
    return mask


def row_allowed(columns: Columns, filters: RowFilter | None, row: int) -> bool:
    """Whether ``filters`` allow one row (``allowed_rows`` for a single row)."""
    if filters is None or not filters.active:
        return True
    categories = filters.categories
    if categories is not None and int(columns.category_codes[row]) not in categories:
        return False
    if filters.language is not None and int(columns.language_codes[row]) != filters.language:
        return False
    day = float(columns.published_days[row])
    if filters.since_day is not None and not day >= filters.since_day:
        return False
    return filters.until_day is None or day <= filters.until_day


#: Below this share of allowed rows a graph (HNSW) index is not walked but its stored vectors
#: scanned: a walk that may return few rows finds too few of them.
GRAPH_MIN_SHARE = 0.2


def graph_walk(index: Any, wanted: int, share: float) -> int | None:
    """The efSearch a graph (HNSW) index is walked with for ``wanted`` rows when ``share`` of
    its rows may be returned; None when that share is too small to walk it (its stored
    vectors are scanned instead).

    FAISS applies a filter only to what a walk returns, not to where it goes: the same
    efSearch walks the same nodes, so a walk that leaves out rows it would not have returned
    returns what it did (what precomputed lists rely on, ``answers``)."""
    if share < GRAPH_MIN_SHARE:
        return None
    return int(max(index.hnsw.efSearch, wanted) / share)


def retrieve(
    index: Any,
    vector: np.ndarray,
    count: int,
    *,
    drop: Collection[int] = (),
    allowed: np.ndarray | None = None,
    bitmap: np.ndarray | None = None,
) -> Candidates:
    """The ``count`` nearest allowed rows to ``vector``, leaving out the rows in ``drop``.

    FAISS is asked for ``count + len(drop)`` so that dropping cannot leave the list short; a
    filter is applied inside the FAISS search (a bitmap selector), not after it: ``bitmap``
    is ``allowed`` packed (little bit order), if the caller has it already.

    A graph index (HNSW) is walked with at least ``efSearch`` candidates, more when a filter
    leaves only a share of the rows; under ``GRAPH_MIN_SHARE`` its vectors are scanned
    instead (exact, like a flat index).
    """
    import faiss

    single_threaded_queries(faiss)
    total = int(index.ntotal)
    wanted = min(total, count + len(drop))
    if wanted <= 0:
        return Candidates(rows=np.empty(0, np.int64), similarities=np.empty(0, np.float32))
    query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
    selector = None
    if allowed is not None:
        if bitmap is None:
            bitmap = np.packbits(allowed[:total], bitorder="little")
        selector = faiss.IDSelectorBitmap(total, faiss.swig_ptr(bitmap))
    if is_graph(index):
        share = 1.0 if allowed is None else int(np.count_nonzero(allowed[:total])) / total
        walk = graph_walk(index, wanted, share)
        if walk is None:
            index = index.storage
            params: Any = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        else:
            params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
                efSearch=walk, sel=selector
            )
        similarities, rows = index.search(query, wanted, params=params)
    elif selector is None:
        similarities, rows = index.search(query, wanted)
    else:
        similarities, rows = index.search(
            query,
            wanted,
            params=faiss.SearchParameters(sel=selector),  # type: ignore[call-arg]
        )
    rows, similarities = rows[0], similarities[0]
    keep = rows >= 0
    if drop:
        keep &= outside(rows, drop)
    rows, similarities = rows[keep][:count], similarities[keep][:count]
    # Equal similarities (copies of one text) in row order, as ``retrieve_parts`` merges
    # parts: FAISS returns them in an order of its own, which would make a list depend on how
    # the index is split into parts (the neighbour term takes the first of equals).
    order = np.lexsort((rows, -similarities))
    return Candidates(rows=rows[order], similarities=similarities[order])


def retrieve_parts(
    parts: Sequence[tuple[int, Any]],
    vector: np.ndarray,
    count: int,
    *,
    drop: Collection[int] = (),
    allowed: np.ndarray | None = None,
    bitmap: np.ndarray | None = None,
) -> Candidates:
    """``retrieve`` over an index kept in parts, each holding the rows from its first row on;
    the parts' nearest rows are merged, nearest first. ``bitmap``: ``allowed`` packed."""
    if len(parts) == 1 and parts[0][0] == 0:
        return retrieve(parts[0][1], vector, count, drop=drop, allowed=allowed, bitmap=bitmap)
    found_rows, found_similarities = [], []
    for first_row, index in parts:
        last_row = first_row + int(index.ntotal)
        inside = [row - first_row for row in drop if first_row <= row < last_row]
        mask = None if allowed is None else allowed[first_row:last_row]
        bits = bitmap if first_row == 0 else None
        found = retrieve(index, vector, count, drop=inside, allowed=mask, bitmap=bits)
        found_rows.append(found.rows + first_row)
        found_similarities.append(found.similarities)
    if not found_rows:
        return Candidates(rows=np.empty(0, np.int64), similarities=np.empty(0, np.float32))
    rows = np.concatenate(found_rows)
    similarities = np.concatenate(found_similarities)
    best = np.lexsort((rows, -similarities))[:count]
    return Candidates(rows=rows[best], similarities=similarities[best])


@dataclass(frozen=True)
class Pool:
    """The candidates of one query, with what ranking them needs.

    ``vectors`` are the candidates' unit embeddings and ``terms`` their TF-IDF rows (a CSR
    matrix or ``lexical.SparseRows``): their pairwise similarities are computed when needed,
    the few columns ranking asks for (``lexical_to``) or all of them (``pair_lexical``).
    """

    dense: np.ndarray  # cosine of the embeddings with the query's
    lexical: np.ndarray  # TF-IDF cosine with the query's text
    vectors: np.ndarray
    terms: Any
    published_days: np.ndarray
    category_codes: np.ndarray
    title_codes: np.ndarray
    url_codes: np.ndarray
    query_terms: int = 0  # terms in the query's TF-IDF vector
    # The candidates' language codes (Columns.language_codes, -1 unknown); None: not known.
    language_codes: np.ndarray | None = None
    # The identity of the candidates with the query (``names``: the cosine of their word names
    # plus that of their figures, 0 to 2); None: the index has no names. ``names``: the
    # candidates' name vectors (``names.rows_names``).
    identity: np.ndarray | None = None
    names: Any = None

    def __len__(self) -> int:
        return len(self.dense)

    @cached_property
    def pair_dense(self) -> np.ndarray:
        return self.dense_between(np.arange(len(self)), np.arange(len(self)))

    @cached_property
    def pair_lexical(self) -> np.ndarray:
        terms = self.terms.tocsr()
        return np.asarray((terms @ terms.T).toarray(), dtype=np.float32)

    def lexical_to(self, columns: np.ndarray) -> np.ndarray:
        """TF-IDF cosines of every candidate with the candidates ``columns``."""
        if "pair_lexical" in self.__dict__:  # computed already (e.g. when tuning)
            return np.asarray(self.pair_lexical[:, columns])
        return self._products(columns)

    @cached_property
    def _products(self) -> Products:
        return Products(self.terms)

    def identity_to(self, columns: np.ndarray) -> np.ndarray:
        """The identity of every candidate with the candidates ``columns`` (0 without names)."""
        if self.names is None:
            return np.zeros((len(self), len(columns)), dtype=np.float32)
        return self._name_products(columns)

    @cached_property
    def _name_products(self) -> Products:
        return Products(self.names)

    def dense_between(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Embedding cosines of the candidates ``rows`` with the candidates ``columns``."""
        if "pair_dense" in self.__dict__:  # computed already (e.g. when tuning)
            return np.asarray(self.pair_dense[np.ix_(rows, columns)])
        return dot(self.vectors[rows], self.vectors[columns])

    def dense_to(self, columns: np.ndarray) -> np.ndarray:
        """Embedding cosines of every candidate with the candidates ``columns``."""
        return self.dense_between(np.arange(len(self)), columns)


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for the small matrices of one query, without BLAS.

    BLAS would run these on its own threads, which then spin beside FAISS's OpenMP threads and
    slow every query down (p50 +18% to +59%, p95 about x3 on 2 cores; benchmarks/RESULTS.md,
    latency);
    numpy's einsum loops stay on the calling thread.
    """
    return np.asarray(np.einsum("id,jd->ij", np.asarray(a, np.float32), np.asarray(b, np.float32)))


def candidate_count(snapshot: Snapshot, k: int, wanted: int) -> int:
    """Candidates to take from each side for a list of ``k``: ``max(wanted, 3k)``, at most all."""
    return min(len(snapshot.columns.ids), max(wanted, 3 * int(k)))


def gather(
    snapshot: Snapshot,
    vector: np.ndarray,
    terms: TermVector,
    count: int,
    *,
    drop: Collection[int] = (),
    filters: RowFilter | None = None,
) -> tuple[np.ndarray, Pool]:
    """The candidate rows of a query (the embedding's ``count`` nearest, then the TF-IDF's
    ``count`` best not among them; live, allowed rows only, none in ``drop``) and their pool."""
    dense, lexical_rows, _ = sides(snapshot, vector, terms, count, drop=drop, filters=filters)
    return pool_of(snapshot, vector, terms, dense.rows, lexical_rows)


def sides(
    snapshot: Snapshot,
    vector: np.ndarray,
    terms: TermVector,
    count: int,
    *,
    drop: Collection[int] = (),
    filters: RowFilter | None = None,
) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """The two sides of ``gather``: the embedding's ``count`` nearest, and the TF-IDF's
    ``count`` best rows with their scores on the query's strongest terms, best first."""
    columns = snapshot.columns
    bitmap = None
    if filters is not None and filters.active:
        allowed: np.ndarray | None = allowed_rows(columns, filters)
        if columns.removed_rows:
            allowed = allowed & columns.alive
    elif columns.removed_rows:
        allowed, bitmap = columns.alive, columns.alive_bitmap  # made once per snapshot
    else:
        allowed = None  # nothing to leave out: no work in proportion to the archive
    dense = retrieve_parts(snapshot.parts, vector, count, drop=drop, allowed=allowed, bitmap=bitmap)
    lexical_rows, lexical_scores = lexical_search(
        snapshot.lexical, terms, count, drop=drop, allowed=allowed
    )
    return dense, lexical_rows, lexical_scores


def pool_of(
    snapshot: Snapshot,
    vector: np.ndarray,
    terms: TermVector,
    dense_rows: np.ndarray,
    lexical_rows: np.ndarray,
) -> tuple[np.ndarray, Pool]:
    """The candidate rows (``dense_rows``, then the ``lexical_rows`` not among them) and their
    pool for the query of ``vector`` and ``terms``."""
    columns = snapshot.columns
    rows = np.concatenate([dense_rows, lexical_rows[outside(lexical_rows, dense_rows)]])
    vectors = snapshot.vectors(rows)
    matrix = rows_matrix(snapshot.lexical, rows)
    names = rows_names(matrix, snapshot.names) if len(snapshot.names) else None
    pool = Pool(
        dense=dot(vectors, np.asarray(vector, dtype=np.float32)[None, :])[:, 0],
        lexical=cosine_with(matrix, terms),
        vectors=vectors,
        terms=matrix,
        published_days=columns.published_days[rows],
        category_codes=columns.category_codes[rows],
        title_codes=columns.title_codes[rows],
        url_codes=columns.url_codes[rows],
        query_terms=len(terms.terms),
        language_codes=columns.language_codes[rows] if columns.language_codes.size else None,
        identity=None if names is None else cosine_with(names, names_of(terms, snapshot.names)),
        names=names,
    )
    return rows, pool
