"""Reranking candidates: recency, category and duplicates, as pure functions over arrays.

Nothing here reads a clock, a file or the index: every input is passed in, so the rules can be
tested exhaustively. Dates are float days since 1970 (NaN when unknown); categories are integer
codes (-1 when unknown).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ranked:
    """Reranked candidates, best first: positions into the candidate arrays and score parts."""

    order: np.ndarray
    scores: np.ndarray
    recency: np.ndarray
    category: np.ndarray


def recency_factors(
    published_days: np.ndarray,
    reference_day: float | None,
    half_life_days: float | None,
    weight: float,
    *,
    future_is_fresh: bool = False,
) -> np.ndarray:
    """``1 - w + w * 0.5 ** (|age| / half_life)``: between 1 - w (stale) and 1 (same day).

    With no reference date or no half-life every factor is 1. An article without a date gets
    the factor of an article one half-life away (``1 - w / 2``), neither rewarded nor punished.
    Age is the distance in days either way from the reference (a query article's follow-ups
    are as welcome as its background); with ``future_is_fresh`` (the reference is "now"),
    articles dated after it count as age 0.
    """
    published_days = np.asarray(published_days, dtype=np.float64)
    if half_life_days is None or reference_day is None or np.isnan(reference_day) or weight == 0:
        return np.ones(len(published_days), dtype=np.float64)
    age = reference_day - published_days
    age = np.maximum(age, 0.0) if future_is_fresh else np.abs(age)
    decay = np.where(np.isnan(age), 0.5, np.exp2(-np.nan_to_num(age) / half_life_days))
    return 1.0 - weight + weight * decay


def category_factors(category_codes: np.ndarray, query_code: int, boost: float) -> np.ndarray:
    """``1 + boost`` for articles in the query's category, 1 for the rest and when unknown."""
    codes = np.asarray(category_codes)
    if query_code < 0 or boost == 0:
        return np.ones(len(codes), dtype=np.float64)
    return np.where(codes == query_code, 1.0 + boost, 1.0)


def rerank(
    similarities: np.ndarray,
    published_days: np.ndarray,
    category_codes: np.ndarray,
    *,
    reference_day: float | None,
    query_category: int,
    half_life_days: float | None,
    recency_weight: float,
    category_boost: float,
    future_is_fresh: bool = False,
) -> Ranked:
    """Order candidates by ``similarity * recency * category`` (divided when similarity < 0).

    Equal scores go to the newer article first (undated last), then to the earlier candidate.
    """
    similarities = np.asarray(similarities, dtype=np.float64)
    published = np.asarray(published_days, dtype=np.float64)
    recency = recency_factors(
        published, reference_day, half_life_days, recency_weight, future_is_fresh=future_is_fresh
    )
    category = category_factors(category_codes, query_category, category_boost)
    factors = recency * category
    # A factor below 1 must lower a score and one above 1 raise it, also for the (rare,
    # unrelated) articles with a negative cosine: those are divided instead of multiplied.
    # The floor keeps scores finite when recency_weight is 1 and a decay underflows to 0.
    divided = similarities / np.maximum(factors, 1e-12)
    scores = np.where(similarities >= 0, similarities * factors, divided)
    newest_first = -np.nan_to_num(published, nan=-np.inf)
    order = np.lexsort((np.arange(len(scores)), newest_first, -scores))
    return Ranked(order=order, scores=scores, recency=recency, category=category)


def first_of_each(
    order: np.ndarray,
    *keys: np.ndarray,
    taken: tuple[int, ...] = (),
    limit: int | None = None,
) -> np.ndarray:
    """Walk ``order`` and keep an item only if none of its keys (>= 0) was seen before.

    ``keys`` are per-candidate duplicate keys (e.g. title and url codes), -1 meaning none;
    ``taken`` holds, per key array, one value already seen (the query's own), or -1.
    Stops once ``limit`` items are kept.
    """
    seen: list[set[int]] = [{value} if value >= 0 else set() for value in taken]
    seen += [set() for _ in range(len(keys) - len(seen))]
    kept: list[int] = []
    for position in order:
        if limit is not None and len(kept) >= limit:
            break
        values = [int(key[position]) for key in keys]
        if any(value >= 0 and value in known for value, known in zip(values, seen, strict=True)):
            continue
        kept.append(position)
        for value, known in zip(values, seen, strict=True):
            if value >= 0:
                known.add(value)
    return np.array(kept, dtype=np.int64)
