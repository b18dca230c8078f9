"""Learning the correction of the evidence weights (read/evidence.py) from labelled queries.

The model is linear: a candidate's similarity is its pieces of evidence weighted, and what is
learned is a correction of the hand weights for each kind of query (body text, headline). It is
learned by coordinate ascent on the mean nDCG@10 of the lists themselves (each weight in turn
set to the best of a few steps around it, the others held, for a few rounds), the way a
linear ranking model is fitted to a ranking measure (Metzler and Croft, "Linear
feature-based models for information retrieval", 2007), rather than to a proxy such as the
likelihood of pairs (a pairwise logistic fit on the shared sets, tried while this was
written, lost to the hand weights on every set it was not trained on).

What a list needs is computed once per query (``Case``): its pieces, its recency and category
factors, which candidates are copies of one another and of the query, which are relevant; a
list for given weights is then a product, a sort and a walk (``ndcg``), fast enough to try
thousands of weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ..read import evidence
from ..read.pipeline import Gathered
from ..read.rerank import Query, _copies, calibrate, pieces, query_copies, scored, weighed
from ..settings import Ranking

K = 10
#: The steps tried around each weight, per round (the hand weights are 0.04 to 0.5).
STEPS = (-0.2, -0.1, 0.1, 0.2)
ROUNDS = 2
#: The gain in mean nDCG@10 a step needs to be taken. Smaller steps and gains, tried while
#: this was written, fitted the shared sets' quirks (cross-validated by story they gained
#: nothing, and the sample lost).
MIN_STEP_GAIN = 1e-3
_DISCOUNT = 1.0 / np.log2(np.arange(2, K + 2))


@dataclass(frozen=True)
class Case:
    """One labelled query, ready to be listed under any weights."""

    values: np.ndarray  # n x evidence.WIDTH
    hand: np.ndarray  # the hand weights of its kind (evidence.hand_weights)
    short: bool
    factors: np.ndarray  # recency * category of each candidate
    calibrated: bool
    of_query: np.ndarray
    unit: np.ndarray  # candidates with the same unit are copies of one another
    relevant: np.ndarray  # bool per candidate
    ideal: float


def case_of(
    gathered: Gathered, ranking: Ranking, query: Query, relevant_rows: set[int]
) -> Case | None:
    """The ``Case`` of one query (None when it has no relevant article: nothing to learn
    from)."""
    if not relevant_rows:
        return None
    pool = gathered.pool
    of_query = query_copies(pool, query, ranking)
    found = pieces(pool, ranking, query, of_query)
    ranked = weighed(np.ones(len(pool)), pool, ranking, query)
    # Groups of copies, connected (rank groups a candidate with the first copy above it).
    _, unit = connected_components(csr_matrix(_copies(pool, ranking)), directed=False)
    relevant = np.array([int(row) in relevant_rows for row in gathered.rows], dtype=bool)
    short = pool.query_terms < ranking.short_terms
    return Case(
        values=found.values,
        hand=evidence.hand_weights(ranking, short, query.lexical_share),
        short=short,
        factors=ranked.recency * ranked.category,
        calibrated=ranking.calibration == "pool",
        of_query=of_query,
        unit=unit,
        relevant=relevant & ~of_query,
        ideal=float(_DISCOUNT[: min(len(relevant_rows), K)].sum()),
    )


def ndcg(case: Case, correction: np.ndarray) -> float:
    """nDCG@10 of the case's list under the hand weights plus ``correction`` (copies listed
    once, copies of the query never)."""
    similarity = case.values @ (case.hand + correction)
    if case.calibrated:
        similarity = calibrate(similarity, ~case.of_query)
    scores = scored(similarity, case.factors)
    order = np.argsort(-scores, kind="stable")
    seen: set[int] = set()
    gain = 0.0
    place = 0
    for position in order.tolist():
        if case.of_query[position]:
            continue
        unit = int(case.unit[position])
        if unit in seen:
            continue
        seen.add(unit)
        if case.relevant[position]:
            gain += _DISCOUNT[place]
        place += 1
        if place == K:
            break
    return gain / case.ideal if case.ideal else 0.0


def mean_ndcg(cases: Sequence[Case], correction: np.ndarray) -> float:
    return float(np.mean([ndcg(case, correction) for case in cases])) if cases else 0.0


def fit(
    cases: Sequence[Case],
    start: np.ndarray | None = None,
    *,
    rounds: int = ROUNDS,
    steps: Sequence[float] = STEPS,
    min_gain: float = MIN_STEP_GAIN,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The correction (``evidence.WIDTH`` weights) coordinate ascent finds on ``cases``
    (all of one kind), from ``start`` (none: the hand weights). Only the pieces the hand
    weights count are corrected (``evidence.correctable``), and no total weight goes below 0."""
    best = np.zeros(evidence.WIDTH) if start is None else np.asarray(start, np.float64).copy()
    if not cases:
        return best
    hand = np.min([case.hand for case in cases], axis=0)
    movable = evidence.correctable(hand)
    best_score = mean_ndcg(cases, best)
    total = rounds * evidence.WIDTH * len(steps)
    done = 0
    for _ in range(rounds):
        improved = False
        for piece in range(evidence.WIDTH):
            for step in steps:
                done += 1
                if progress is not None:
                    progress(done, total)
                if not movable[piece] or hand[piece] + best[piece] + step < 0:
                    continue
                trial = best.copy()
                trial[piece] += step
                score = mean_ndcg(cases, trial)
                if score > best_score + min_gain:
                    best, best_score, improved = trial, score, True
        if not improved:
            break
    if progress is not None:
        progress(total, total)
    return np.round(best, 6)


def fit_model(
    cases: Sequence[Case],
    start: evidence.Model | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> evidence.Model:
    """A correction for each kind of query, each fitted on the cases of its kind (a kind with
    no case keeps ``start``'s)."""
    start = start or evidence.Model()
    fitted = {}
    for kind in ("long", "short"):
        mine = [case for case in cases if case.short == (kind == "short")]
        begin = np.asarray(getattr(start, kind), np.float64)
        found = fit(mine, begin, progress=progress) if mine else begin
        fitted[kind] = tuple(float(v) for v in found)
    return evidence.Model(fitted["long"], fitted["short"])


def score_model(cases: Sequence[Case], model: evidence.Model) -> float:
    """Mean nDCG@10 of the cases under a model (each case with its kind's correction)."""
    if not cases:
        return math.nan
    return float(
        np.mean(
            [
                ndcg(case, np.asarray(model.short if case.short else model.long, np.float64))
                for case in cases
            ]
        )
    )
