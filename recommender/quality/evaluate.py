"""Measuring the related lists against labels (a story field, or a file of related pairs).

Only this module reads labels; the engine never does. Metrics, for a query q with the set R of
relevant articles (the others with q's label) and the returned list L:

- P@n: |L[:n] ∩ R| / n (a list shorter than n counts the missing places as misses);
- nDCG@10: sum of 1/log2(i + 1) over relevant L[i] (i from 1), divided by its best value,
  sum over i <= min(|R|, 10);
- MRR: mean of 1 / (rank of the first relevant item in L), 0 when none is;
- candidate recall: |C ∩ R| / |R| for the candidates C that ranking chooses from (the
  embedding's nearest and the TF-IDF's best), and recall@50 for the 50 most similar of them;
- same category: the share of L in q's category (queries with a category);
- near-duplicates: the share of L whose normalised title equals q's or that of an item above;
- median age gap: the median of |date(q) - date(item)| in days over all dated pairs.

When the queries are in more than one language (the language the index keeps for each query
article, see ``Recommender.language``), the report also gives the same metrics for the queries
of each language (``by_language``; ``und`` for those of unknown language).
"""

from __future__ import annotations

import csv
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..articles import iter_records
from ..errors import InputFileError, InvalidQueryError, LabelsError
from ..text import title_key

if TYPE_CHECKING:
    from ..articles import Article
    from ..results import Recommendation

Relevance = Mapping[str, frozenset[str]]


class Answering(Protocol):
    """What evaluation asks of an opened index (a ``Recommender``)."""

    def __contains__(self, article_id: object) -> bool: ...
    def language(self, article_id: str) -> str | None: ...
    def similar(self, article_id: str, k: int = 10, **options: Any) -> list[Recommendation]: ...
    def get(self, article_id: str) -> Article: ...
    def candidates(self, article_id: str, k: int = 10) -> list[tuple[str, float]]: ...


class Listed(Protocol):
    """What the metrics need of an article: Article and Recommendation both fit."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def published_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class ListScores:
    """The metrics of one related list."""

    precision_at_5: float
    precision_at_10: float
    ndcg_at_10: float
    reciprocal_rank: float
    same_category: float | None
    near_duplicates: float
    age_gaps_days: tuple[float, ...]


@dataclass(frozen=True)
class EvaluationReport:
    """Mean metrics over the queries (see the module docstring for the formulas)."""

    queries: int
    skipped: int
    k: int
    candidates: int  # candidates a query, on average
    precision_at_5: float
    precision_at_10: float
    ndcg_at_10: float
    mrr: float
    candidate_recall: float | None
    recall_at_50: float | None
    same_category: float | None
    near_duplicates: float
    median_age_gap_days: float | None
    # The same metrics over the queries in each language (query article's), when there are
    # two or more known languages among them; their ``skipped`` is 0 (it counts in the whole).
    by_language: dict[str, EvaluationReport] = field(default_factory=dict)


#: The key of queries of unknown language in ``EvaluationReport.by_language``.
UNKNOWN_LANGUAGE = "und"


def labels_from_field(
    paths: Sequence[str | Path], label: str, id_column: str = "id"
) -> dict[str, str]:
    """Article id -> label, read from the ``label`` field of the input files."""
    labels: dict[str, str] = {}
    for path in paths:
        for _, record, error in iter_records(Path(path)):
            if error is not None or not isinstance(record, Mapping):
                continue
            article_id, value = record.get(id_column), record.get(label)
            if isinstance(article_id, str | int) and isinstance(value, str | int):
                labels[str(article_id)] = str(value)  # ids exactly as the reader keeps them
    if not labels:
        raise LabelsError(f"no article in {', '.join(map(str, paths))} has a {label!r} field")
    return labels


def relevance_from_labels(labels: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Each article's relevant set: the other articles with its label."""
    groups: dict[str, set[str]] = defaultdict(set)
    for article_id, label in labels.items():
        groups[label].add(article_id)
    return {
        article_id: frozenset(groups[label] - {article_id}) for article_id, label in labels.items()
    }


def relevance_from_pairs(path: str | Path) -> dict[str, frozenset[str]]:
    """Related pairs from a CSV file: a header row, then two ids per row (either order)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = [row for row in csv.reader(handle) if len(row) >= 2][1:]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from None
    related: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        a, b = row[0].strip(), row[1].strip()
        if a and b and a != b:
            related[a].add(b)
            related[b].add(a)
    if not related:
        raise InputFileError(f"{path} holds no related pairs (two ids per row)")
    return {article_id: frozenset(ids) for article_id, ids in related.items()}


def score_list(query: Listed, listed: Sequence[Listed], relevant: frozenset[str]) -> ListScores:
    """The metrics of one list (pure; also used for baselines in benchmarks)."""
    hits = [item.id in relevant for item in listed]
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits[:10]) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    first = next((i for i, hit in enumerate(hits) if hit), None)
    seen = {title_key(query.title)}
    duplicates = 0
    for item in listed:
        key = title_key(item.title)
        duplicates += key in seen
        seen.add(key)
    gaps = tuple(
        abs((query.published_at - item.published_at).total_seconds()) / 86400.0
        for item in listed
        if query.published_at is not None and item.published_at is not None
    )
    same = (
        sum(item.category == query.category for item in listed) / len(listed)
        if query.category is not None and listed
        else None
    )
    return ListScores(
        precision_at_5=sum(hits[:5]) / 5,
        precision_at_10=sum(hits[:10]) / 10,
        ndcg_at_10=dcg / ideal if ideal else 0.0,
        reciprocal_rank=1.0 / (first + 1) if first is not None else 0.0,
        same_category=same,
        near_duplicates=duplicates / len(listed) if listed else 0.0,
        age_gaps_days=gaps,
    )


def choose_queries(
    relevance: Relevance, indexed: Callable[[str], bool], count: int | None, seed: int
) -> tuple[list[str], int]:
    """Queries that are indexed and have an indexed relevant article; a seeded sample of
    ``count`` of them when given. Returns them and how many labelled ids were left out."""
    usable = sorted(
        q for q, rel in relevance.items() if indexed(q) and any(indexed(r) for r in rel)
    )
    skipped = len(relevance) - len(usable)
    if count is not None and count < len(usable):
        usable = sorted(random.Random(seed).sample(usable, count))
    return usable, skipped


def summarize(
    scores: Sequence[ListScores],
    *,
    skipped: int,
    k: int,
    candidates: int,
    recalls: Sequence[tuple[float, float]] = (),
) -> EvaluationReport:
    """Mean metrics over queries."""
    if not scores:
        raise LabelsError("no query has a relevant article in the index")

    def mean(values: Iterable[float]) -> float:
        return statistics.fmean(values)

    categorised = [s.same_category for s in scores if s.same_category is not None]
    gaps = [gap for s in scores for gap in s.age_gaps_days]
    return EvaluationReport(
        queries=len(scores),
        skipped=skipped,
        k=k,
        candidates=candidates,
        precision_at_5=mean(s.precision_at_5 for s in scores),
        precision_at_10=mean(s.precision_at_10 for s in scores),
        ndcg_at_10=mean(s.ndcg_at_10 for s in scores),
        mrr=mean(s.reciprocal_rank for s in scores),
        candidate_recall=mean(r[0] for r in recalls) if recalls else None,
        recall_at_50=mean(r[1] for r in recalls) if recalls else None,
        same_category=mean(categorised) if categorised else None,
        near_duplicates=mean(s.near_duplicates for s in scores),
        median_age_gap_days=statistics.median(gaps) if gaps else None,
    )


def evaluate(
    recommender: Answering,
    relevance: Relevance,
    *,
    k: int = 10,
    queries: int | None = None,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationReport:
    """Ask ``recommender`` (a Recommender) for each query's related list and score it.

    ``options`` are passed to ``similar``: any ``Ranking`` field by name (e.g.
    ``half_life_days=None``), or ``ranking=`` / ``filters=``.
    """
    if k < 1:
        raise InvalidQueryError(f"k must be 1 or more, got {k}")
    chosen, skipped = choose_queries(relevance, recommender.__contains__, queries, seed)
    scores: list[ListScores] = []
    recalls: list[tuple[float, float]] = []
    pool_sizes: list[int] = []
    languages: list[str] = []
    for done, query_id in enumerate(chosen, start=1):
        languages.append(recommender.language(query_id) or UNKNOWN_LANGUAGE)
        relevant = frozenset(r for r in relevance[query_id] if r in recommender)
        listed = recommender.similar(query_id, k=k, **(options or {}))
        scores.append(score_list(recommender.get(query_id), listed, relevant))
        candidates = [article_id for article_id, _ in recommender.candidates(query_id, k=k)]
        pool_sizes.append(len(candidates))
        recalls.append(
            (
                len(relevant.intersection(candidates)) / len(relevant),
                len(relevant.intersection(candidates[:50])) / len(relevant),
            )
        )
        if progress is not None:
            progress(done, len(chosen))
    mean_pool = round(statistics.fmean(pool_sizes)) if pool_sizes else 0
    report = summarize(scores, skipped=skipped, k=k, candidates=mean_pool, recalls=recalls)
    return replace(report, by_language=by_language(languages, scores, recalls, pool_sizes, k))


def by_language(
    languages: Sequence[str],
    scores: Sequence[ListScores],
    recalls: Sequence[tuple[float, float]],
    pool_sizes: Sequence[int],
    k: int,
) -> dict[str, EvaluationReport]:
    """The metrics of the queries of each language (``languages[i]`` is query i's, or
    ``UNKNOWN_LANGUAGE``), most queries first; empty unless two or more are known."""
    known = {code for code in languages if code != UNKNOWN_LANGUAGE}
    if len(known) < 2:
        return {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, code in enumerate(languages):
        groups[code].append(i)
    out = {}
    for code, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        out[code] = summarize(
            [scores[i] for i in members],
            skipped=0,
            k=k,
            candidates=round(statistics.fmean(pool_sizes[i] for i in members)),
            recalls=[recalls[i] for i in members] if recalls else (),
        )
    return out
