"""When a stored precomputed list still holds: ``similar(id)`` is then a lookup.

A version's precomputed lists (``storage.precomputed``, computed by ``write.precompute`` with the
one query pipeline) hold what ``similar`` would answer as long as the article's candidates are
what they were, so a query uses its row's list only when

- it asks what was computed: the ranking the lists were made with (``Ranking`` compared whole),
  no filters and no excluded ids, ``k`` no larger than the lists and the same number of
  candidates;
- the row itself is unchanged since, and no row changed since (added, removed, or edited in
  place) could be among its candidates: its embedding cosine with the query article is below
  the lowest of the query's embedding candidates (``dense_floor``) and its TF-IDF score on the
  query's strongest terms below the lowest of its TF-IDF candidates (``lexical_floor``).
  Vectors and terms of the changed rows are held once per snapshot (``Changed``); past
  ``MAX_CHANGED`` rows changed since the lists are not used (a compaction or build computes
  them again, ``recommend precompute`` those the changes touched);
- a graph (HNSW) search is walked as it was for them (``walk``: removals widen it once they
  are a large enough share) and the reader has seen every removal (one not refreshed since a
  removal elsewhere searches, as its search then asks FAISS for more rows).

The editorial overrides are applied on top of the list looked up, as the pipeline applies them
on top of a searched one (``pipeline.placed``), so they need no recomputing.

Otherwise the query is searched, so a list can be missing, stale or damaged without any answer
changing: only its speed does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..lexical import QUERY_TERMS, SparseRows, TermVector, cosine_with, rows_matrix
from ..results import Recommendation
from ..settings import Ranking
from ..storage.precomputed import Precomputed, StoredList, parse
from .pipeline import Entry, checked_k, edits_for, entry_json, placed, recommendations
from .retrieve import candidate_count, dot

if TYPE_CHECKING:
    from .reader import Reader
    from .snapshot import Snapshot

T = TypeVar("T")

#: Past this many rows changed since the lists were computed, they are not used: checking a
#: query against every changed row would cost more than answering it.
MAX_CHANGED = 5000
#: Cosines computed here and by FAISS or the TF-IDF search may differ in their last bits: a
#: changed row this close to a floor counts as a candidate.
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Changed:
    """The rows of a snapshot changed since its lists were computed, with their vectors and
    TF-IDF rows: what a query checks its list against."""

    rows: np.ndarray
    vectors: np.ndarray
    terms: SparseRows

    @classmethod
    def of(cls, snapshot: Snapshot, rows: np.ndarray) -> Changed:
        rows = np.asarray(rows, dtype=np.int64)
        return cls(rows, snapshot.vectors(rows), rows_matrix(snapshot.lexical, rows))

    @cached_property
    def members(self) -> frozenset[int]:
        return frozenset(self.rows.tolist())


def lookup(
    snapshot: Snapshot, row: int, k: int, ranking: Ranking, removed: frozenset[int]
) -> list[Recommendation] | None:
    """``similar`` of ``row`` (no filters) from the snapshot's precomputed lists, when they
    hold what the pipeline would answer now; None otherwise (search it)."""
    found = _listed(snapshot, row, k, ranking, removed, snapshot.shown)
    return None if found is None else recommendations(snapshot, *found)


def lookup_json(
    snapshot: Snapshot, row: int, k: int, ranking: Ranking, removed: frozenset[int]
) -> str | None:
    """``lookup``'s list as JSON, what ``to_json`` (``RelatedList.json``) writes of it, made
    from the articles' pieces of JSON without its ``Recommendation`` objects (the HTTP
    service's most asked read); None where ``lookup`` gives None, or for a list holding a
    number JSON would write otherwise (then ask ``lookup``)."""
    found = _listed(snapshot, row, k, ranking, removed, snapshot.shown_pieces)
    if found is None:
        return None
    entries, pieces = found
    ids = snapshot.columns.ids
    items = []
    for entry in entries:
        article_id, piece = pieces[entry.row]
        item = entry_json(article_id, entry, [ids[r] for r in entry.copies], piece)
        if item is None:
            return None
        items.append(item)
    return "[" + ", ".join(items) + "]"


class Lists:
    """``similar(id, k)`` with the index's ranking and no filters, as JSON, from the
    precomputed lists: the facade's ``lists``, for the HTTP service's most asked read."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def json(self, article_id: str, k: int) -> str | None:
        """What ``to_json(similar(article_id, k))`` writes, when a precomputed list holds it
        (counted as ``similar`` counts its answers); None otherwise, for ``similar`` to
        answer. UnknownArticleError as ``similar``."""
        reader = self._reader
        snapshot, removed = reader.current_and_removed()
        row = reader.live_row(snapshot, article_id, removed)
        if not checked_k(k):  # as ``similar``: a list of none is searched
            return None
        found = lookup_json(snapshot, row, k, snapshot.settings.ranking, removed)
        if found is not None:
            reader.answered(precomputed=True)
        return found


def _listed(
    snapshot: Snapshot,
    row: int,
    k: int,
    ranking: Ranking,
    removed: frozenset[int],
    read: Callable[[list[int]], Mapping[int, T]],
) -> tuple[list[Entry], Mapping[int, T]] | None:
    """``lookup``'s places and what ``read`` gives of their articles (stored ones only)."""
    found = snapshot.precomputed
    if found is None or ranking.recency_from != "query":
        return None
    if not found.serves(k, ranking, candidate_count(snapshot, k, ranking.candidates)):
        return None
    if removed:
        # Rows removed since the snapshot are dropped from its search, which asks FAISS for
        # as many more: of copies with equal cosines at the cut it then keeps others than the
        # list holds. Searched until the next refresh.
        return None
    changed = snapshot.changed_rows
    held = None if changed is None else current_list(snapshot, found, changed, row)
    if held is None:
        return None
    edits = edits_for(snapshot, row)
    listed = held[1]
    ranked = [e for e in entries_of(listed, found.k) if e.row not in edits.left_out][:k]
    if len(ranked) < k and len(listed.heads) >= found.k:
        return None  # overrides left out more than the list holds beyond k: search
    heads = [entry.row for entry in ranked]
    stored = read([*heads, *(pin for pin, _ in edits.pins)])
    if any(head not in stored for head in heads):
        return None  # removed meanwhile
    return placed(snapshot, ranked, edits, stored, k), stored


def entries_of(listed: StoredList, k: int) -> list[Entry]:
    """The first ``k`` places of a stored list, as the pipeline gives them."""
    return [
        Entry(*fields)
        for fields in zip(
            listed.heads[:k],
            listed.copies[:k],
            listed.score,
            listed.similarity,
            listed.recency,
            listed.category,
            listed.dense,
            listed.lexical,
            strict=False,
        )
    ]


def current_list(
    snapshot: Snapshot, found: Precomputed, changed: Changed, row: int
) -> tuple[memoryview, StoredList] | None:
    """The row's stored record and list when the list still holds for ``snapshot``: the row
    unchanged since, its graph search walked as it was for the list, its record sound, and
    none of the ``changed`` rows among its candidates (``unaffected``); else None."""
    if row in changed.members or found.walk != snapshot.graph_walk(found.candidates + 1):
        return None
    data = found.stored(row)
    listed = None if data is None else parse(data, found.rows)
    if data is None or listed is None:
        return None
    if len(changed.rows) and not unaffected(
        listed, snapshot.vector(row), snapshot.terms(row), changed
    ):
        return None
    return data, listed


def unaffected(listed: StoredList, vector: np.ndarray, terms: TermVector, changed: Changed) -> bool:
    """Whether none of the ``changed`` rows could be among the candidates of the query whose
    list is ``listed`` (``vector`` and ``terms``: the query's): then the list is current."""
    if not len(changed.rows):
        return True
    dense = dot(changed.vectors, np.asarray(vector, np.float32)[None, :])[:, 0]
    if bool((dense >= listed.dense_floor - TOLERANCE).any()):
        return False
    # The TF-IDF side ranks rows by their score on the query's strongest terms (lexical.search).
    strongest = np.argsort(-terms.weights, kind="stable")[:QUERY_TERMS]
    partial = cosine_with(
        changed.terms, TermVector(terms.terms[strongest], terms.weights[strongest])
    )
    return not bool(((partial > 0) & (partial >= listed.lexical_floor - TOLERANCE)).any())
