"""Reranking candidates: fusion, neighbours, recency, category, copies and diversity.

Pure functions over arrays: nothing here reads a clock, a file or the index; every input is
passed in, so the rules can be tested exhaustively, and ``recommend tune`` replays them on
stored candidate pools. Dates are float days since 1970 (NaN when unknown); categories and
duplicate keys are integer codes (-1 when unknown).

The order of one list (see README, "How results are ranked"):

1. fusion: ``fused = (1 - w) * dense + w * lexical`` with ``w = lexical_weight``, or
   ``lexical_weight_short`` when the query's TF-IDF vector has fewer than ``short_terms``
   terms (a headline: TF-IDF is unreliable on a few words, the model is not);
   plus ``identity_weight`` times their identity (``names``: the cosine of their word names,
   places, people and organisations, plus the cosine of their figures; 0 for an index without
   names): the same kind of event elsewhere shares the topic's words, not its names;
2. neighbours: ``similarity = (fused + b * mean fused similarity to the query's
   top-``neighbours`` candidates) / (1 + b)`` with ``b = neighbour_weight`` (a top candidate's
   similarity to itself is not counted; names count between candidates too): an article
   close to the query's nearest ones is more likely on the same story than one close to the
   query alone. Steps 1 and 2 are one weighted sum of six pieces of evidence (``pieces``,
   read/evidence.py), whose weights are those of the knobs plus, with
   ``combination="learned"``, a learned correction;
3. calibration (``calibration="pool"``): the similarities are standardised over the query's
   candidates and put on one reference scale (``calibrate``), so that the recency and category
   weights mean the same whatever the model's cosines look like;
4. ``score = similarity * recency * category`` (see ``weigh``);
5. copies: walking down the scores, a candidate that is a copy of the query is dropped and a
   copy of an article above it joins that article's group (same normalised title, same url,
   or TF-IDF cosine >= ``duplicate_threshold``); a group is listed once, at its best score,
   shown by its best-scored copy (the earliest published among equals), with the number of
   copies behind it;
6. diversity: with ``mmr_lambda < 1`` the groups are picked by maximal marginal relevance,
   ``mmr_lambda * score - (1 - mmr_lambda) * max similarity to the groups already picked``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..settings import Ranking
from . import evidence
from .retrieve import Pool


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

    With no reference date or no half-life every factor is 1. An article without a date is
    neither rewarded nor punished among the candidates it is ranked with: it gets the median
    decay of the dated ones (``0.5``, one half-life, when none is dated). A fixed age would not
    be neutral: with a half-life of a day, most candidates are days or weeks away and one
    half-life would put every undated article above them.
    Age is the distance in days either way from the reference (a query article's follow-ups
    are as welcome as its background); with ``future_is_fresh`` (the reference is "now"),
    articles dated after it count as age 0.
    """
    published_days = np.asarray(published_days, dtype=np.float64)
    if half_life_days is None or reference_day is None or np.isnan(reference_day) or weight == 0:
        return np.ones(len(published_days), dtype=np.float64)
    age = reference_day - published_days
    age = np.maximum(age, 0.0) if future_is_fresh else np.abs(age)
    undated = np.isnan(age)
    decay = np.exp2(np.where(undated, 0.0, age) / -half_life_days)
    if undated.any():
        decay[undated] = float(np.median(decay[~undated])) if not undated.all() else 0.5
    return 1.0 - weight + weight * decay


#: The scale ``calibrate`` puts similarities on: the mean and standard deviation of
#: all-MiniLM-L6-v2's fused similarity over a headline's candidates (200 queries on
#: uci-news-2014-04: 0.355 and 0.138), the scale on which the recency defaults were measured.
#: e5's cosines sit higher and closer together (0.649 and 0.052 on the same queries), so a
#: fixed recency weight meant far more for e5 than for MiniLM before calibration.
REFERENCE_MEAN = 0.35
REFERENCE_SPREAD = 0.14
#: Fewer candidates than this say too little about the scale: left as they are.
MIN_CALIBRATION_POOL = 5


def calibrate(similarity: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """``REFERENCE_MEAN + REFERENCE_SPREAD * z`` with ``z`` the similarity's standard score over
    the ``counted`` candidates (all by default): an affine map, so the order of the candidates
    is kept and only the scale the recency and category factors act on changes.

    Pools of fewer than ``MIN_CALIBRATION_POOL`` counted candidates are returned unchanged; a
    pool of equal similarities maps to ``REFERENCE_MEAN``.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    sample = similarity if counted is None else similarity[counted]
    if len(sample) < MIN_CALIBRATION_POOL:
        return similarity
    mean = float(sample.sum()) / len(sample)  # np.mean and np.std cost more on a few hundred
    centred = sample - mean
    spread = math.sqrt(float((centred * centred).sum()) / len(sample))
    if spread < 1e-9:
        return np.full(len(similarity), REFERENCE_MEAN)
    return REFERENCE_MEAN + REFERENCE_SPREAD * (similarity - mean) / spread


def category_factors(category_codes: np.ndarray, query_code: int, boost: float) -> np.ndarray:
    """``1 + boost`` for articles in the query's category, 1 for the rest and when unknown."""
    codes = np.asarray(category_codes)
    if query_code < 0 or boost == 0:
        return np.ones(len(codes), dtype=np.float64)
    return np.where(codes == query_code, 1.0 + boost, 1.0)


def weigh(
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
    scores = scored(similarities, factors)
    newest_first = -np.where(np.isnan(published), -np.inf, published)
    order = np.lexsort((np.arange(len(scores)), newest_first, -scores))
    return Ranked(order=order, scores=scores, recency=recency, category=category)


def scored(similarities: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``similarity * factor``: a factor below 1 must lower a score and one above 1 raise it,
    also for the (rare, unrelated) articles with a negative cosine: those are divided instead
    of multiplied. The floor keeps scores finite when recency_weight is 1 and a decay
    underflows to 0."""
    divided = similarities / np.maximum(factors, 1e-12)
    return np.where(similarities >= 0, similarities * factors, divided)  # type: ignore[no-any-return]


def weighed(similarity: np.ndarray, pool: Pool, ranking: Ranking, query: Query) -> Ranked:
    """``weigh`` a pool's similarities with the ranking's recency and category settings."""
    return weigh(
        similarity,
        pool.published_days,
        pool.category_codes,
        reference_day=query.day,
        query_category=query.category,
        half_life_days=ranking.half_life_days,
        recency_weight=ranking.recency_weight,
        category_boost=ranking.category_boost,
        future_is_fresh=ranking.recency_from == "now",
    )


@dataclass(frozen=True)
class Query:
    """What the query article contributes to ranking. Copies of an ``indexed`` query are
    left out; a text that is not indexed has none."""

    day: float | None  # the recency reference, None for none
    category: int = -1
    title_code: int = -1
    url_code: int = -1
    indexed: bool = True
    # Its language's code (``Columns.language_codes``; -1 unknown, -2 one no article has):
    # TF-IDF sees only candidates of the same language (``blind``).
    language: int = -1
    # How much its TF-IDF terms can say (0-1): the share of a new text's words the index's
    # lexicon knows, counted full from ``KNOWN_FOR_FULL_WEIGHT`` (``lexical_share``).
    lexical_share: float = 1.0


#: A new text whose words the lexicon knows at least this share of gets the full TF-IDF
#: weight; below, the weight shrinks in proportion (``lexical_share``).
KNOWN_FOR_FULL_WEIGHT = 0.5


def lexical_share(known: float) -> float:
    """``Query.lexical_share`` of a text of which the lexicon knows the share ``known`` of its
    words: full from ``KNOWN_FOR_FULL_WEIGHT``, in proportion below."""
    return min(1.0, max(0.0, known) / KNOWN_FOR_FULL_WEIGHT)


@dataclass(frozen=True)
class Listing:
    """A ranked list over a pool: each group's positions (its shown copy first), best first,
    and per-candidate score parts."""

    groups: list[np.ndarray]
    similarity: np.ndarray
    scores: np.ndarray
    recency: np.ndarray
    category: np.ndarray
    pieces: Pieces  # the evidence the similarity was combined from


def fusion_weight(pool: Pool, ranking: Ranking, query: Query | None = None) -> float:
    """The TF-IDF share of the similarity for this pool's query (short or not), times what
    its terms can say (``Query.lexical_share``)."""
    short = pool.query_terms < ranking.short_terms
    weight = ranking.lexical_weight_short if short else ranking.lexical_weight
    return weight * (1.0 if query is None else query.lexical_share)


@dataclass(frozen=True)
class Imputed:
    """The TF-IDF cosine a pair of articles in two languages would have, from their embedding
    cosine: TF-IDF compares words, so across languages a 0 says nothing (the articles share
    few terms whatever their story); counting it would push every article in another language
    down by the TF-IDF share. The TF-IDF cosine that goes with such an embedding cosine among
    the candidates in the query's own language is counted instead (``imputation``: a line
    fitted on them). A pair that
    does share terms across languages (names, figures, the words Azerbaijani and Turkish
    have in common) keeps its real cosine where that is higher (``Fusion``)."""

    slope: float
    intercept: float

    def __call__(self, dense: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(dense, np.float64)


def blind(codes: np.ndarray | None, language: int) -> np.ndarray | None:
    """Which candidates (``codes``: their language codes) TF-IDF cannot compare with an
    article of ``language``: both known and different. None when there are none."""
    if codes is None or language == -1:
        return None
    found = (codes >= 0) & (codes != language)
    return found if found.any() else None


def imputation(pool: Pool, seen: np.ndarray) -> Imputed | None:
    """``Imputed`` from the ``seen`` candidates (those TF-IDF can compare with the query): the
    least-squares line of their TF-IDF cosines on their embedding cosines, the TF-IDF cosine
    to expect of an embedding cosine. None when they are fewer than ``MIN_CALIBRATION_POOL``
    (``fusion``)."""
    if int(seen.sum()) < MIN_CALIBRATION_POOL:
        return None
    dense = np.asarray(pool.dense, np.float64)[seen]
    lexical = np.asarray(pool.lexical, np.float64)[seen]
    centred = dense - dense.mean()
    spread = float((centred * centred).sum())
    slope = float((centred * (lexical - lexical.mean())).sum()) / spread if spread > 1e-12 else 0.0
    return Imputed(slope, float(lexical.mean()) - slope * float(dense.mean()))


@dataclass(frozen=True)
class Fusion:
    """How one query's similarities fuse (``fuse``): the TF-IDF ``weight`` and, where some
    candidates are in another language than the query's ``language`` (``blind``), their
    language ``codes`` and the ``imputed`` TF-IDF cosines of the pairs across two languages."""

    weight: float
    language: int = -1
    codes: np.ndarray | None = None
    imputed: Imputed | None = None

    def to_query(self, dense: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        """The fused similarity of each candidate with the query."""
        if self.imputed is not None and self.codes is not None:
            hidden = (self.codes >= 0) & (self.codes != self.language)  # ``blind``, as fitted
            lexical = np.where(hidden, np.maximum(self.imputed(dense), lexical), lexical)
        return fuse(dense, lexical, self.weight)

    def between(
        self, dense: np.ndarray, lexical: np.ndarray, rows: np.ndarray, columns: np.ndarray
    ) -> np.ndarray:
        """The fused similarities of candidates ``rows`` with candidates ``columns`` (their
        ``dense`` and ``lexical`` cosines, rows x columns)."""
        if self.imputed is not None and self.codes is not None:
            down, across = self.codes[rows][:, None], self.codes[columns][None, :]
            apart = (down >= 0) & (across >= 0) & (down != across)
            lexical = np.where(apart, np.maximum(self.imputed(dense), lexical), lexical)
        return fuse(dense, lexical, self.weight)


def fusion(pool: Pool, ranking: Ranking, query: Query, of_query: np.ndarray) -> Fusion:
    """The fusion of this query's pool (``of_query``: the candidates that are copies of it,
    which would inflate the scale ``imputation`` reads). Where fewer than
    ``MIN_CALIBRATION_POOL`` candidates share the query's language (a small edition, or a
    language no article has), they tell too little of the scale to impute from: the cosines
    are fused as they are, as before imputation (those few are often the query's own story,
    and the terms shared across languages, names and figures, still count)."""
    weight = fusion_weight(pool, ranking, query)
    hidden = blind(pool.language_codes, query.language) if weight > 0 else None
    imputed = None if hidden is None else imputation(pool, ~hidden & ~of_query)
    if imputed is None:
        return Fusion(weight)
    return Fusion(weight, query.language, pool.language_codes, imputed)


def fuse(dense: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * dense + weight * lexical``."""
    return (1.0 - weight) * np.asarray(dense, np.float64) + weight * np.asarray(lexical, np.float64)


def _copies(pool: Pool, ranking: Ranking, columns: np.ndarray | None = None) -> np.ndarray:
    """n x m: candidate i is a copy of candidate ``columns[j]`` (of candidate j: all)."""
    chosen = np.arange(len(pool)) if columns is None else np.asarray(columns, dtype=np.int64)
    titles, urls = pool.title_codes, pool.url_codes
    same = (titles[:, None] == titles[chosen][None, :]) & (titles[:, None] >= 0)
    same |= (urls[:, None] == urls[chosen][None, :]) & (urls[:, None] >= 0)
    return same | (pool.lexical_to(chosen) >= ranking.duplicate_threshold)  # type: ignore[no-any-return]


def query_copies(pool: Pool, query: Query, ranking: Ranking) -> np.ndarray:
    """Which candidates are copies of the indexed query article (same title, url, or TF-IDF
    cosine at ``duplicate_threshold`` or more): they are never listed, and never read for
    the query's scale."""
    if not query.indexed:
        return np.zeros(len(pool), dtype=bool)
    copies = pool.lexical >= ranking.duplicate_threshold
    if query.title_code >= 0:
        copies |= pool.title_codes == query.title_code
    if query.url_code >= 0:
        copies |= pool.url_codes == query.url_code
    return copies


def group_copies(
    order: np.ndarray, copies: np.ndarray, of_query: np.ndarray, limit: int | None = None
) -> list[list[int]]:
    """Walk ``order``: drop copies of the query, put a copy of an earlier group's head in that
    group (the earliest such group), start a group otherwise. Groups in order, heads first.

    With ``limit``, at most that many groups; later candidates still join them as copies.
    ``copies``: n x n, candidate i is a copy of candidate j.
    """
    order = np.asarray(order, dtype=np.int64)
    groups = _grouped(order, copies[:, order], of_query, limit)
    assert groups is not None  # every column is there
    return groups


def _grouped(
    order: np.ndarray, block: np.ndarray, of_query: np.ndarray, limit: int | None
) -> list[list[int]] | None:
    """``group_copies`` from the copies of the first m candidates of ``order`` only: ``block``
    is n x m, candidate i is a copy of candidate ``order[j]``. None when the walk needs more
    than m of them (many copies or copies of the query early in the order)."""
    width = block.shape[1]
    groups: list[list[int]] = []
    heads: list[int] = []
    head_columns: list[int] = []  # where each head is in ``order`` (its column in ``block``)
    walked = 0
    # A candidate that is a copy of none before it in the order starts a group (if it is no
    # copy of the query): most candidates, told apart in one step rather than one by one.
    has_earlier = np.tril(block[order[:width]], -1).any(axis=1).tolist()
    skip = of_query[order].tolist()
    for at, position in enumerate(order.tolist()):
        if limit is not None and len(groups) >= limit:
            break
        if at >= width:
            return None
        walked += 1
        if skip[at]:
            continue
        if has_earlier[at]:
            found = np.flatnonzero(block[position, head_columns])
            if len(found):
                groups[int(found[0])].append(position)  # heads in order: the first is earliest
                continue
        heads.append(position)
        head_columns.append(at)
        groups.append([position])
    rest = order[walked:]
    if len(rest) and heads:
        rest = rest[~of_query[rest]]
        matches = block[np.ix_(rest, head_columns)]
        joins = matches.any(axis=1)
        first = matches.argmax(axis=1)  # the earliest head each is a copy of
        for position, group in zip(rest[joins].tolist(), first[joins].tolist(), strict=True):
            groups[group].append(position)
    return groups


def _group_ranked(
    pool: Pool, ranking: Ranking, order: np.ndarray, of_query: np.ndarray, limit: int | None
) -> list[list[int]]:
    """``group_copies`` of the pool in ``order``, computing the copies of only as many of the
    first candidates as the walk to ``limit`` groups needs (all without a limit)."""
    count = len(order)
    width = count if limit is None else min(count, limit + 5)
    while True:
        groups = _grouped(order, _copies(pool, ranking, order[:width]), of_query, limit)
        if groups is not None:
            return groups
        width = min(count, 2 * width)


def shown_copy(group: list[int], scores: np.ndarray, published_days: np.ndarray) -> list[int]:
    """The group with the copy to show first: the best scored (with recency on, the copy
    closest in time to the query), and among equal scores the earliest published, the original
    (undated ones count as latest)."""
    if len(group) == 1:
        return group
    best = np.asarray(scores, np.float64)[group]
    days = np.asarray(published_days, np.float64)[group]
    days = np.where(np.isnan(days), np.inf, days)
    tied = np.flatnonzero(best >= best.max() - 1e-9)
    first = int(tied[np.argmin(days[tied])])  # the first minimum: the best ranked among equals
    return [group[first], *group[:first], *group[first + 1 :]]


def mmr(scores: np.ndarray, similarity: np.ndarray, lam: float, limit: int) -> np.ndarray:
    """Maximal marginal relevance: the best score first, then repeatedly the item maximising
    ``lam * score - (1 - lam) * max similarity to the items taken``. Positions, taken order."""
    count = len(scores)
    taken: list[int] = []
    closest = np.full(count, -np.inf)
    left = np.ones(count, dtype=bool)
    while len(taken) < min(limit, count):
        if taken:
            value = np.where(left, lam * scores - (1.0 - lam) * closest, -np.inf)
        else:  # nothing to differ from yet: the best score first
            value = np.asarray(scores, dtype=np.float64)
        best = int(np.argmax(value))
        taken.append(best)
        left[best] = False
        closest = np.maximum(closest, similarity[best])
    return np.array(taken, dtype=np.int64)


@dataclass(frozen=True)
class Pieces:
    """One query's evidence (read/evidence.py): n x ``evidence.WIDTH`` values, the weights
    they are combined with, and the fusion its pairs were computed with."""

    values: np.ndarray
    weights: np.ndarray
    fusing: Fusion


def pieces(pool: Pool, ranking: Ranking, query: Query, of_query: np.ndarray) -> Pieces:
    """The evidence of each candidate (``evidence.PIECES``) and its weights for this query."""
    count = len(pool)
    fusing = fusion(pool, ranking, query, of_query)
    short = pool.query_terms < ranking.short_terms
    hand = evidence.hand_weights(ranking, short, query.lexical_share)
    weights = evidence.corrected(hand, ranking, short)
    # The TF-IDF cosines as the fusion sees them (imputed across languages): fused at weight 1.
    words_fusion = Fusion(1.0, fusing.language, fusing.codes, fusing.imputed)
    topic = np.asarray(pool.dense, np.float64)
    words = words_fusion.to_query(pool.dense, pool.lexical)
    names = np.asarray(pool.identity, np.float64) if pool.identity is not None else np.zeros(count)
    values = np.empty((count, evidence.WIDTH), dtype=np.float64)
    values[:, 0], values[:, 1], values[:, 2] = topic, words, names
    values[:, 3:] = values[:, :3]  # a candidate with no neighbour left: its own
    if count and ranking.neighbours > 0 and np.any(weights[3:] != 0):
        # The neighbours are the best by the hand weights, whatever the learned correction:
        # it is learned on the evidence of these.
        direct = values[:, :3] @ hand[:3]
        by_direct = np.lexsort((np.arange(count), -direct))
        top = by_direct[~of_query[by_direct]][: ranking.neighbours]
        if len(top):
            everyone = np.arange(count)
            dense_pairs = pool.dense_to(top)
            pairs = (
                dense_pairs,
                words_fusion.between(dense_pairs, pool.lexical_to(top), everyone, top),
                pool.identity_to(top),
            )
            counted = np.ones((count, len(top)), dtype=bool)
            counted[top, np.arange(len(top))] = False  # a neighbour's own similarity: not counted
            counts = counted.sum(axis=1)
            some = counts > 0
            for column, pair in enumerate(pairs, start=3):
                sums = np.where(counted, pair, 0.0).sum(axis=1)
                values[some, column] = sums[some] / counts[some]
    return Pieces(values, weights, fusing)


def rank(pool: Pool, ranking: Ranking, query: Query, limit: int | None = None) -> Listing:
    """The list over ``pool`` (see the module docstring); at most ``limit`` groups."""
    of_query = query_copies(pool, query, ranking)
    found = pieces(pool, ranking, query, of_query)
    fusing = found.fusing
    similarity = evidence.combine(found.values, found.weights)
    if ranking.calibration == "pool":
        similarity = calibrate(similarity, ~of_query)  # copies of the query would inflate it
    ranked = weighed(similarity, pool, ranking, query)
    diverse = ranking.mmr_lambda < 1.0
    order = np.asarray(ranked.order, dtype=np.int64)
    groups = _group_ranked(pool, ranking, order, of_query, None if diverse else limit)
    if diverse and len(groups) > 1:
        heads = np.array([group[0] for group in groups], dtype=np.int64)
        dense = pool.dense_between(heads, heads)
        pair = fusing.between(dense, pool.lexical_to(heads)[heads], heads, heads)
        picked = mmr(ranked.scores[heads], pair, ranking.mmr_lambda, limit or len(groups))
        groups = [groups[i] for i in picked]
    if limit is not None:
        groups = groups[:limit]
    shown = [
        np.array(shown_copy(group, ranked.scores, pool.published_days), dtype=np.int64)
        for group in groups
    ]
    return Listing(
        groups=shown,
        similarity=np.asarray(similarity, np.float64),
        scores=ranked.scores,
        recency=ranked.recency,
        category=ranked.category,
        pieces=found,
    )
