"""Retrieving candidates from the vector index: nearest first, filtered, never the query itself."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .store import Columns


@dataclass(frozen=True)
class Candidates:
    """Rows of the index and their cosine similarity to the query, nearest first."""

    rows: np.ndarray
    similarities: np.ndarray


@dataclass(frozen=True)
class Filters:
    """Which articles may be returned at all (None = no restriction)."""

    categories: frozenset[int] | None = None
    since_day: float | None = None
    until_day: float | None = None

    @property
    def active(self) -> bool:
        return (
            self.categories is not None
            or self.since_day is not None
            or (self.until_day is not None)
        )


def allowed_rows(columns: Columns, filters: Filters) -> np.ndarray:
    """A boolean mask over all rows; undated articles fail any date bound."""
    mask = np.ones(len(columns.ids), dtype=bool)
    if filters.categories is not None:
        mask &= np.isin(columns.category_codes, np.fromiter(filters.categories, dtype=np.int32))
    with np.errstate(invalid="ignore"):
        if filters.since_day is not None:
            mask &= columns.published_days >= filters.since_day
        if filters.until_day is not None:
            mask &= columns.published_days <= filters.until_day
    return mask


def retrieve(
    index: Any,
    vector: np.ndarray,
    count: int,
    *,
    drop: Collection[int] = (),
    allowed: np.ndarray | None = None,
) -> Candidates:
    """The ``count`` nearest allowed rows to ``vector``, leaving out the rows in ``drop``.

    FAISS is asked for ``count + len(drop)`` so that dropping cannot leave the list short; a
    filter is applied inside the FAISS scan (a bitmap selector), not after it.
    """
    import faiss

    total = int(index.ntotal)
    wanted = min(total, count + len(drop))
    if wanted <= 0:
        return Candidates(rows=np.empty(0, np.int64), similarities=np.empty(0, np.float32))
    query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
    if allowed is None:
        similarities, rows = index.search(query, wanted)
    else:
        bitmap = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(total, faiss.swig_ptr(bitmap))
        similarities, rows = index.search(
            query,
            wanted,
            params=faiss.SearchParameters(sel=selector),  # type: ignore[call-arg]
        )
    rows, similarities = rows[0], similarities[0]
    keep = rows >= 0
    if drop:
        keep &= ~np.isin(rows, np.fromiter(drop, dtype=np.int64))
    return Candidates(rows=rows[keep][:count], similarities=similarities[keep][:count])


def retrieve_parts(
    parts: Sequence[tuple[int, Any]],
    vector: np.ndarray,
    count: int,
    *,
    drop: Collection[int] = (),
    allowed: np.ndarray | None = None,
) -> Candidates:
    """``retrieve`` over an index kept in parts, each holding the rows from its first row on;
    the parts' nearest rows are merged, nearest first."""
    if len(parts) == 1 and parts[0][0] == 0:
        return retrieve(parts[0][1], vector, count, drop=drop, allowed=allowed)
    found_rows, found_similarities = [], []
    for first_row, index in parts:
        last_row = first_row + int(index.ntotal)
        inside = [row - first_row for row in drop if first_row <= row < last_row]
        mask = None if allowed is None else allowed[first_row:last_row]
        found = retrieve(index, vector, count, drop=inside, allowed=mask)
        found_rows.append(found.rows + first_row)
        found_similarities.append(found.similarities)
    if not found_rows:
        return Candidates(rows=np.empty(0, np.int64), similarities=np.empty(0, np.float32))
    rows = np.concatenate(found_rows)
    similarities = np.concatenate(found_similarities)
    best = np.lexsort((rows, -similarities))[:count]
    return Candidates(rows=rows[best], similarities=similarities[best])
