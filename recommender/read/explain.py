"""Why each article of a related list is there: the evidence that counted (``explain``).

The list is ranked as ``similar`` ranks it when searched (the query's candidates, then
``rerank.rank``), and each listed article's similarity is taken apart into its pieces of
evidence times their weights (read/evidence.py): topic, shared words, shared names, each with
its neighbours' part. Beside them, what turns the similarity into the score: its
standardisation over the query's candidates (``calibrated``), the recency and the category
factors. Editorial overrides are not applied (they are no evidence): a pinned article is
explained where the ranking would put it, if at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..lexical import TermVector
from . import evidence
from .pipeline import candidates, checked_k, ranking_with, row_query
from .rerank import rank

if TYPE_CHECKING:
    from .snapshot import Snapshot


@dataclass(frozen=True)
class Explanation:
    """One listed article and the parts of its score.

    ``evidence``: each piece's part of the similarity (``evidence.PIECES``: its value times
    its weight), which add up to ``similarity``; ``by_kind``: the same added up into topic,
    shared words and shared names (each with its neighbours' part); ``shared_names``: the
    names (and figures) it shares with the query, those that count most first, at most
    ``SHARED_NAMES``. ``score`` is
    ``calibrated * recency_factor * category_factor`` (divided for a negative similarity)."""

    id: str
    title: str
    score: float
    similarity: float
    calibrated: float
    recency_factor: float
    category_factor: float
    evidence: dict[str, float]
    by_kind: dict[str, float]
    weights: dict[str, float]
    combination: str
    copies: int
    shared_names: tuple[str, ...] = ()


#: The most shared names an explanation lists.
SHARED_NAMES = 8


def shared_names(query: TermVector, terms: Any, position: int, kinds: np.ndarray) -> list[int]:
    """The lexicon ids of the names the query (its TF-IDF ``query`` vector) shares with the
    candidate at ``position`` of a pool's TF-IDF rows ``terms``, by the product of their two
    weights, largest first (none when the index has no names)."""
    if not len(kinds):
        return []
    start, end = int(terms.indptr[position]), int(terms.indptr[position + 1])
    ids = np.asarray(terms.indices[start:end], dtype=np.int64)
    weights = np.asarray(terms.data[start:end], dtype=np.float64)
    mine = dict(zip(query.terms.tolist(), query.weights.tolist(), strict=True))
    found = [
        (weight * mine[term], term)
        for term, weight in zip(ids.tolist(), weights.tolist(), strict=True)
        if term in mine and 0 <= term < len(kinds) and kinds[term] > 0
    ]
    return [term for _, term in sorted(found, key=lambda pair: (-pair[0], pair[1]))]


def explain(
    snapshot: Snapshot,
    row: int,
    k: object,
    overrides: Mapping[str, Any],
    removed: Collection[int],
) -> list[Explanation]:
    """The explained list of ``k`` for the indexed article at ``row`` under the index's ranking
    with ``overrides`` (fields of ``Ranking``), none of the ``removed`` rows in it."""
    k = checked_k(k)
    ranking = ranking_with(snapshot.settings.ranking, overrides)
    query = row_query(snapshot, row, ranking, None)
    asked = snapshot.terms(row)
    gathered = candidates(snapshot, snapshot.vector(row), asked, k, ranking, drop={row, *removed})
    pool = gathered.pool
    listing = rank(pool, ranking, query, limit=k)
    found = listing.pieces
    weights = dict(zip(evidence.PIECES, found.weights.tolist(), strict=True))
    vocabulary = snapshot.lexicon().terms if len(snapshot.names) else ()
    shown_rows = [int(gathered.rows[int(group[0])]) for group in listing.groups]
    stored = snapshot.table.articles(shown_rows)
    out = []
    for group in listing.groups:
        shown = int(group[0])
        article = int(gathered.rows[shown])
        shares = evidence.parts(found.values[shown], found.weights)
        out.append(
            Explanation(
                id=snapshot.columns.ids[article],
                title=stored[article].title if article in stored else "",
                score=float(listing.scores[group].max()),
                similarity=float(evidence.combine(found.values[shown], found.weights)),
                calibrated=float(listing.similarity[shown]),
                recency_factor=float(listing.recency[shown]),
                category_factor=float(listing.category[shown]),
                evidence=shares,
                by_kind=evidence.by_kind(shares),
                weights=weights,
                combination=ranking.combination,
                copies=len(group),
                shared_names=tuple(
                    vocabulary[term]
                    for term in shared_names(asked, pool.terms, shown, snapshot.names)[
                        :SHARED_NAMES
                    ]
                ),
            )
        )
    return out
