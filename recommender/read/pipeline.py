"""The one query pipeline: candidates -> rank -> the first k groups.

Everything that ranks goes through here: the facade's ``similar`` and ``similar_to_text``, the
precomputed lists (``write.precompute`` computes each row's list with ``first_groups``, and a
lookup answers what this would), and ``recommend tune`` (which gathers each query's candidates
once with ``candidates`` and ranks them again under every setting it tries).

- ``candidates``: the embedding's nearest rows and the TF-IDF's best (``retrieve.sides``),
  pooled with what ranking needs (``retrieve.pool_of``), and the lowest score of each side
  (the floors a precomputed list is checked against).
- ``first_groups``: ``rerank.rank`` over a pool, as ``Entry`` values: each group's shown row,
  its other copies and its score parts, best first.
- ``related``: both, for a live query, and the stored articles of the entries; a row removed
  by a writer between the candidate step and the article read is passed over.
- ``edits_for`` and ``placed``: the editorial overrides (``storage.overrides``), applied after
  ranking, the same way to a searched list and to a precomputed one (``held.lookup``): hidden
  and blocked articles left out of the ranked list, then pinned ones put at their places.
- ``answer``: a query as the facade gives it (its filters, the rows it may not list) through
  ``related``; ``row_query`` and ``text_query`` make the query of an indexed article and of a
  new text. The facade only embeds the text (the read path never loads a model).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..articles import parse_datetime
from ..errors import InvalidQueryError, SettingsError
from ..language import effective as effective_language
from ..lexical import TermVector, lexical_text
from ..results import Recommendation, RelatedList, item_json, recommendation
from ..settings import Ranking
from ..storage.columns import SECONDS_PER_DAY
from ..text import clean_html, embedding_text, query_chars
from .rerank import Listing, Query, fusion, lexical_share, query_copies, rank
from .retrieve import Filters, Pool, RowFilter, candidate_count, pool_of, row_allowed, sides

if TYPE_CHECKING:
    from .shown import Shown
    from .snapshot import Snapshot

#: Groups ranked beyond ``k``, so that a row removed meanwhile (its article no longer stored)
#: can be passed over without ranking again.
SLACK = 5


@dataclass(frozen=True)
class Gathered:
    """One query's candidates: their rows, their pool and the lowest score of each side
    (``-inf`` / 0 when a side found fewer rows than it was asked for)."""

    rows: np.ndarray
    pool: Pool
    dense_floor: float
    lexical_floor: float


class Entry(NamedTuple):
    """One place of a related list: the row shown, its other copies, and its score parts.

    A named tuple rather than a frozen dataclass (immutable all the same): every list makes
    ten or more, and a named tuple is made in a third of the time (1.1 against 3.9 us)."""

    row: int
    copies: tuple[int, ...]
    score: float
    similarity: float
    recency: float
    category: float
    dense: float
    lexical: float


def candidates(
    snapshot: Snapshot,
    vector: np.ndarray,
    terms: TermVector,
    k: int,
    ranking: Ranking,
    *,
    drop: Collection[int] = (),
    filters: RowFilter | None = None,
) -> Gathered:
    """The candidates of a list of ``k`` for the query of ``vector`` and ``terms``: live
    rows allowed by ``filters``, none in ``drop``."""
    count = candidate_count(snapshot, k, ranking.candidates)
    dense, lexical_rows, lexical_scores = sides(
        snapshot, vector, terms, count, drop=drop, filters=filters
    )
    rows, pool = pool_of(snapshot, vector, terms, dense.rows, lexical_rows)
    return Gathered(
        rows=rows,
        pool=pool,
        dense_floor=float(dense.similarities[-1]) if len(dense.rows) == count else -np.inf,
        lexical_floor=float(lexical_scores[-1]) if len(lexical_rows) == count else 0.0,
    )


def first_groups(gathered: Gathered, ranking: Ranking, query: Query, limit: int) -> list[Entry]:
    """The first ``limit`` groups that ``ranking`` lists from ``gathered``."""
    listing = rank(gathered.pool, ranking, query, limit=limit)
    return [_entry(gathered.rows, gathered.pool, listing, group) for group in listing.groups]


def _entry(rows: np.ndarray, pool: Pool, listing: Listing, group: np.ndarray) -> Entry:
    shown = int(group[0])
    return Entry(
        row=int(rows[shown]),
        copies=tuple(int(rows[i]) for i in group[1:]),
        score=float(listing.scores[group].max()),
        similarity=float(listing.similarity[shown]),
        recency=float(listing.recency[shown]),
        category=float(listing.category[shown]),
        dense=float(pool.dense[shown]),
        lexical=float(pool.lexical[shown]),
    )


@dataclass(frozen=True)
class Edits:
    """One query's editorial overrides, as rows: those its ranked list leaves out (hidden,
    blocked, and pinned ones, which are placed instead, never twice) and its pins, (row,
    0-based place) by place, of the query article at ``row``."""

    left_out: frozenset[int] = frozenset()
    pins: tuple[tuple[int, int], ...] = ()
    row: int = -1


NO_EDITS = Edits()


def edits_for(
    snapshot: Snapshot,
    row: int | None,
    *,
    drop: Collection[int] = (),
    filters: RowFilter | None = None,
) -> Edits:
    """The overrides of the query of the indexed article at ``row`` (None: a new text, which
    only hidden articles concern). A pin is dropped when its article is hidden, blocked there,
    in ``drop`` (the query's removed and excluded rows) or not allowed by ``filters``."""
    found = snapshot.overrides
    if not found:
        return NO_EDITS
    row_of = snapshot.columns.row_of
    left_out = set(snapshot.hidden_rows)
    pins = []
    if row is not None:
        article = snapshot.columns.ids[row]
        left_out.update(row_of[i] for i in found.blocked.get(article, ()) if i in row_of)
        unpinned = set(left_out)
        for related_id, position in found.pinned.get(article, ()):
            pinned = row_of.get(related_id)
            if pinned is None:
                continue
            left_out.add(pinned)
            if pinned in unpinned or pinned in drop or pinned == row:
                continue
            if row_allowed(snapshot.columns, filters, pinned):
                pins.append((pinned, position - 1))
    return Edits(frozenset(left_out), tuple(pins), -1 if row is None else row)


def placed(
    snapshot: Snapshot, ranked: Sequence[Entry], edits: Edits, stored: Mapping[int, object], k: int
) -> list[Entry]:
    """The first ``k`` of ``ranked`` (overrides' rows already left out) with the pinned
    articles still stored put at their places (or last, when the list is shorter)."""
    kept = list(ranked[:k])
    for row, place in edits.pins:
        if row in stored:
            kept.insert(min(place, len(kept)), pinned_entry(snapshot, edits.row, row))
    return kept[:k]


def pinned_entry(snapshot: Snapshot, query_row: int, row: int) -> Entry:
    """A pinned place: not ranked, so its score is 0 and its factors 1; its similarities are
    measured (embedding cosine, TF-IDF cosine), the same wherever the list comes from."""
    dense = float(np.dot(snapshot.vector(query_row), snapshot.vector(row)))
    ours, theirs = snapshot.terms(query_row), snapshot.terms(row)
    _, at, to = np.intersect1d(ours.terms, theirs.terms, assume_unique=True, return_indices=True)
    lexical = float(np.dot(ours.weights[at], theirs.weights[to]))
    return Entry(row, (), 0.0, dense, 1.0, 1.0, dense, lexical)


def related(
    snapshot: Snapshot,
    vector: np.ndarray,
    terms: TermVector,
    k: int,
    query: Query,
    ranking: Ranking,
    *,
    drop: Collection[int] = (),
    filters: RowFilter | None = None,
    edits: Edits = NO_EDITS,
) -> list[Recommendation]:
    """The ``k`` articles related to the query of ``vector`` and ``terms``, with their stored
    fields, ``edits`` applied; a row whose article was removed after the candidate step is
    passed over."""
    if k == 0:
        return RelatedList()
    gathered = candidates(snapshot, vector, terms, k, ranking, drop=drop, filters=filters)
    limit = k + SLACK + len(edits.left_out)
    pinned = [row for row, _ in edits.pins]
    while True:
        entries = first_groups(gathered, ranking, query, limit)
        ranked = [entry for entry in entries if entry.row not in edits.left_out]
        heads = [entry.row for entry in ranked]
        stored = snapshot.shown([*heads[:k], *pinned])
        if any(head not in stored for head in heads[:k]):  # removed meanwhile: rank further
            stored.update(snapshot.shown(heads[k:]))
        kept = [entry for entry in ranked if entry.row in stored][:k]
        if len(kept) == k or len(entries) < limit:
            return recommendations(snapshot, placed(snapshot, kept, edits, stored, k), stored)
        limit *= 2


def recommendations(
    snapshot: Snapshot, entries: Sequence[Entry], stored: Mapping[int, Shown]
) -> RelatedList:
    """The entries as the facade returns them, with their articles' stored fields (and the
    JSON of those, which the HTTP service writes them with: ``RelatedList.json``)."""
    ids = snapshot.columns.ids
    return RelatedList(
        _recommendation(stored[entry.row], entry, [ids[r] for r in entry.copies])
        for entry in entries
    )


def _recommendation(shown: Shown, entry: Entry, copy_ids: list[str]) -> tuple[Recommendation, str]:
    found = recommendation(
        shown[0],  # the id
        entry.score,
        entry.similarity,
        entry.recency,
        entry.category,
        *shown[1:9],  # title to tags (``shown.Shown``)
        {} if shown[9] is None else json.loads(shown[9]),  # metadata: the caller's own
        entry.dense,
        entry.lexical,
        len(copy_ids) + 1,
        tuple(copy_ids),
    )
    return found, shown[10]


def entry_json(article_id: str, entry: Entry, copy_ids: list[str], piece: str) -> str | None:
    """What ``RelatedList.json`` writes of the ``Recommendation`` that ``_recommendation``
    makes of these (``piece``: its article's ``Shown`` JSON), without making it; None for
    numbers JSON spells otherwise."""
    numbers = (entry.score, entry.similarity, entry.recency, entry.category, entry.dense)
    return item_json(article_id, (*numbers, entry.lexical), len(copy_ids) + 1, copy_ids, piece)


def checked_k(k: object) -> int:
    """``k`` checked: a whole number, 0 or more (InvalidQueryError otherwise)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidQueryError(f"k must be a whole number, got {k!r}")
    if k < 0:
        raise InvalidQueryError(f"k must be 0 or more, got {k}")
    return int(k)


def ranking_with(base: Ranking, overrides: Mapping[str, Any]) -> Ranking:
    """The ranking of one query: ``base`` with ``overrides`` (fields of ``Ranking``)."""
    if not overrides:
        return base
    unknown = sorted(set(overrides) - {f.name for f in fields(Ranking)})
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r}")
    try:
        return replace(base, **overrides) if overrides else base
    except SettingsError as exc:
        raise InvalidQueryError(str(exc)) from None


def days(moment: datetime) -> float:
    """A moment as days since 1970, as the columns hold dates."""
    return moment.timestamp() / SECONDS_PER_DAY


def row_query(snapshot: Snapshot, row: int, ranking: Ranking, now: datetime | None) -> Query:
    """The query of the indexed article at ``row``; its age reference is ``now`` (by default
    the current time) when the ranking measures recency from now."""
    query = snapshot.query(row)
    if ranking.recency_from == "now":
        query = replace(query, day=days(now or datetime.now(timezone.utc)))
    return query


@dataclass(frozen=True)
class TextQuery:
    """A new text made ready to query with: what to embed, its TF-IDF terms, its language
    and what it contributes to ranking."""

    embedded: str
    terms: TermVector
    language: str | None
    query: Query


def text_query(
    snapshot: Snapshot,
    text: str,
    ranking: Ranking,
    category: str | None,
    published_at: datetime | str | None,
    lang: str | None,
    now: datetime | None,
) -> TextQuery:
    """``text`` as an article would be indexed: HTML cleaned, its first line the title, its
    language ``lang`` or detected; undated, it is taken to be published ``now``. Only its first
    ``query_chars`` characters are read: cleaning, detection and TF-IDF cost no more for a
    10 MB text."""
    cleaned = clean_html(text[: query_chars(snapshot.settings.max_body_chars)])
    if not cleaned:
        raise InvalidQueryError("the query text is empty")
    try:
        moment = parse_datetime(published_at) if published_at is not None else None
    except ValueError as exc:
        raise InvalidQueryError(f"published_at {exc}") from None
    title, _, body = cleaned.partition("\n")
    language = effective_language(lang, title, body)
    terms, known = snapshot.lexicon().vector_and_share(lexical_text(title, body), language)
    current = days(now or datetime.now(timezone.utc))
    day = current if moment is None or ranking.recency_from == "now" else days(moment)
    columns = snapshot.columns
    query = Query(
        day=day,
        category=columns.category_code(category),
        indexed=False,
        language=columns.language_code(language),
        lexical_share=lexical_share(known),
    )
    return TextQuery(
        embedded=embedding_text(title, body, snapshot.settings.max_body_chars),
        terms=terms,
        language=language,
        query=query,
    )


def answer(
    snapshot: Snapshot,
    vector: np.ndarray,
    terms: TermVector,
    k: int,
    query: Query,
    ranking: Ranking,
    filters: Filters,
    language: str | None,
    *,
    drop: Collection[int],
    where: object,
    row: int | None = None,
) -> list[Recommendation]:
    """A query as the facade gives it: ``filters`` resolved over the snapshot (``where``
    names the index in errors; ``language`` is the query's), the rows in ``drop`` and the
    excluded ids left out, then ``related`` with the overrides (of the article at ``row``)."""
    k = checked_k(k)
    columns = snapshot.columns
    row_filter = filters.resolve(columns, query.category, where, language)
    if k == 0:
        return RelatedList()
    left_out = set(drop)
    left_out.update(columns.row_of[i] for i in filters.exclude if i in columns.row_of)
    edits = edits_for(snapshot, row, drop=left_out, filters=row_filter)
    options: dict[str, Any] = {"drop": left_out, "filters": row_filter, "edits": edits}
    return related(snapshot, vector, terms, k, query, ranking, **options)


def fused_candidates(
    snapshot: Snapshot, row: int, k: int, *, drop: Collection[int]
) -> list[tuple[str, float]]:
    """The candidates of the article at ``row`` for a list of ``k`` with the index's ranking,
    unfiltered, by their fused similarity: (id, similarity) pairs, best first."""
    ranking = snapshot.settings.ranking
    found = candidates(snapshot, snapshot.vector(row), snapshot.terms(row), k, ranking, drop=drop)
    rows, pool = found.rows, found.pool
    query = snapshot.query(row)
    of_query = query_copies(pool, query, ranking)  # as ``rank`` fits the imputation
    fused = fusion(pool, ranking, query, of_query).to_query(pool.dense, pool.lexical)
    order = np.lexsort((rows, -fused))
    ids = snapshot.columns.ids
    return [(ids[int(rows[i])], float(fused[i])) for i in order]


def for_row(
    snapshot: Snapshot,
    row: int,
    k: int,
    ranking: Ranking,
    filters: Filters,
    now: datetime | None,
    removed: Collection[int],
    where: object,
) -> list[Recommendation]:
    """``answer`` for the indexed article at ``row`` (it and the ``removed`` rows left out)."""
    query = row_query(snapshot, row, ranking, now)
    language = snapshot.columns.language(row)
    vector, terms = snapshot.vector(row), snapshot.terms(row)
    return answer(
        snapshot,
        vector,
        terms,
        k,
        query,
        ranking,
        filters,
        language,
        drop={row, *removed},
        where=where,
        row=row,
    )


def for_text(
    snapshot: Snapshot,
    asked: TextQuery,
    vector: np.ndarray,
    k: int,
    ranking: Ranking,
    filters: Filters,
    removed: Collection[int],
    where: object,
) -> list[Recommendation]:
    """``answer`` for a new text (``text_query``), embedded as ``vector``."""
    return answer(
        snapshot,
        vector,
        asked.terms,
        k,
        asked.query,
        ranking,
        filters,
        asked.language,
        drop=removed,
        where=where,
    )
