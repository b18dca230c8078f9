"""Tuning the ranking settings to a site's own labelled history (``recommend tune``).

The candidate stage does not depend on the ranking settings, so each query's candidates are
gathered once (``read.pipeline.candidates``) and ranked again (``read.pipeline.first_groups``,
the pipeline that answers queries) for every setting tried. The queries are split in two:

- by time where the articles are dated: the earliest 70% of the queries tune, and see (and are
  scored on) only articles published up to the last of them (a site tunes on its past); the
  latest 30% are held out, and see everything (it serves its future);
- else at random (seeded), 70 / 30.

The search is coordinate ascent on the tuning queries' mean nDCG@10: each setting in turn is
set to the best value of its grid, the others held, for ``rounds`` rounds, starting from the
index's settings. Then, with ``combination="learned"``, the correction of the evidence
weights (read/evidence.py) is learned on the tuning queries under the settings found
(``quality.learn``, from the index's correction or the packaged one), and kept only if the
held-out queries score higher with it than with the settings found alone. The held-out
queries then score the old and the new ranking; the new one wins only if it is better there
by at least ``MIN_GAIN`` nDCG@10.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import InvalidQueryError, LabelsError
from ..read import evidence
from ..read.pipeline import Gathered, candidates, first_groups
from ..read.rerank import Query
from ..read.retrieve import RowFilter
from ..read.snapshot import Snapshot
from ..settings import Ranking
from .evaluate import EvaluationReport, choose_queries, score_list, summarize
from .learn import case_of, fit_model

#: The values tried for each setting (the index's own value is always tried too).
GRID: dict[str, tuple[Any, ...]] = {
    "lexical_weight": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    "lexical_weight_short": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    "neighbour_weight": (0.0, 0.25, 0.5, 1.0, 2.0),
    "half_life_days": (None, 0.5, 1.0, 2.0, 3.0, 7.0, 14.0, 30.0),
    "recency_weight": (0.05, 0.1, 0.2, 0.3, 0.5, 0.7),
    "category_boost": (0.0, 0.05, 0.1, 0.2, 0.3),
    "mmr_lambda": (1.0, 0.9, 0.8, 0.7),
}
#: The held-out gain in nDCG@10 the new settings need to be stored.
MIN_GAIN = 0.001
TUNE_SHARE = 0.7
K = 10


@dataclass(frozen=True)
class Case:
    """One query's candidates, ready to be ranked again and scored."""

    query_id: str
    gathered: Gathered
    query: Query
    relevant: frozenset[str]
    row: int  # the query article's own row


@dataclass(frozen=True)
class TuneReport:
    """What ``recommend tune`` found."""

    split: str  # "time" or "random"
    cutoff: str | None  # the last tuning query's date, for a time split
    tuning_queries: int
    held_out_queries: int
    old: dict[str, Any]  # the index's ranking settings
    new: dict[str, Any]
    old_tuning: EvaluationReport
    new_tuning: EvaluationReport
    old_held_out: EvaluationReport
    new_held_out: EvaluationReport
    stored: bool
    # The learned correction of the evidence weights (``evidence.Model.flat``) before and
    # after, and what the one learned now gained on the held-out queries over the settings
    # found alone (kept only when above 0; None: not learned, ``combination="hand"``).
    old_model: tuple[float, ...] = ()
    new_model: tuple[float, ...] = ()
    model_gain: float | None = None

    @property
    def gain(self) -> float:
        return self.new_held_out.ndcg_at_10 - self.old_held_out.ndcg_at_10


@dataclass(frozen=True)
class ListedRow:
    id: str
    title: str
    category: str | None
    published_at: datetime | None


def split_queries(
    query_ids: Sequence[str], days: Mapping[str, float], seed: int
) -> tuple[list[str], list[str], float | None]:
    """(tuning ids, held-out ids, cutoff day or None): by time when at least 90% of the
    queries are dated (undated ones are left out), else at random."""
    dated = [q for q in query_ids if not np.isnan(days[q])]
    if len(dated) >= 0.9 * len(query_ids) and len(dated) >= 2:
        ordered = sorted(dated, key=lambda q: (days[q], q))
        cut = max(1, min(len(ordered) - 1, round(TUNE_SHARE * len(ordered))))
        cutoff_day = days[ordered[cut - 1]]
        tuning = [q for q in ordered if days[q] <= cutoff_day]
        held_out = [q for q in ordered if days[q] > cutoff_day]
        if tuning and held_out:
            return tuning, held_out, cutoff_day
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    cut = max(1, min(len(shuffled) - 1, round(TUNE_SHARE * len(shuffled))))
    return sorted(shuffled[:cut]), sorted(shuffled[cut:]), None


def replay(
    cases: Sequence[Case], ranking: Ranking, listed: Callable[[int], ListedRow], k: int = K
) -> EvaluationReport:
    """The metrics of the lists that ``ranking`` gives on these cases."""
    scores = []
    for case in cases:
        entries = first_groups(case.gathered, ranking, case.query, k)
        items = [listed(entry.row) for entry in entries]
        scores.append(score_list(listed(case.row), items, case.relevant))
    return summarize(scores, skipped=0, k=k, candidates=0)


def search(
    cases: Sequence[Case],
    start: Ranking,
    listed: Callable[[int], ListedRow],
    *,
    rounds: int = 2,
    grid: Mapping[str, Sequence[Any]] = GRID,
    progress: Callable[[int, int], None] | None = None,
) -> Ranking:
    """Coordinate ascent on mean nDCG@10 from ``start``; the best settings found."""
    best = start
    best_score = replay(cases, best, listed).ndcg_at_10
    total = rounds * sum(len(values) for values in grid.values())
    done = 0
    for _ in range(rounds):
        improved = False
        for name, values in grid.items():
            for value in values:
                done += 1
                if progress is not None:
                    progress(done, total)
                if value == getattr(best, name):
                    continue
                trial = replace(best, **{name: value})
                trial_score = replay(cases, trial, listed).ndcg_at_10
                if trial_score > best_score + 1e-9:
                    best, best_score, improved = trial, trial_score, True
        if not improved:
            break
    if progress is not None:
        progress(total, total)
    return best


def tune(
    snapshot: Snapshot,
    relevance: Mapping[str, frozenset[str]],
    *,
    queries: int = 2000,
    seed: int = 0,
    start: Ranking | None = None,
    store: Callable[[Ranking], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> TuneReport:
    """Search the ranking settings of an index (its ``snapshot``) on labelled history, from
    ``start`` (by default the index's ranking); ``store`` the new ones if they win on the
    held-out queries (with no ``store``, only report)."""
    if queries < 2:
        raise InvalidQueryError(f"queries must be 2 or more, got {queries}")
    columns = snapshot.columns
    live = columns.row_of
    usable, _ = choose_queries(relevance, live.__contains__, None, seed)
    if len(usable) < 2:
        raise LabelsError(
            "tuning needs at least 2 indexed articles with an indexed related article"
        )
    days = {q: float(columns.published_days[live[q]]) for q in usable}
    tuning_ids, held_out_ids, cutoff = split_queries(usable, days, seed)
    share = queries / (len(tuning_ids) + len(held_out_ids))
    if share < 1:
        rng = random.Random(seed)
        tuning_ids = sorted(rng.sample(tuning_ids, max(1, round(share * len(tuning_ids)))))
        held_out_ids = sorted(rng.sample(held_out_ids, max(1, round(share * len(held_out_ids)))))

    def visible(article_id: str, until_day: float | None) -> bool:
        if article_id not in live:
            return False
        day = columns.published_days[live[article_id]]
        return until_day is None or bool(day <= until_day)  # undated: not before the cutoff

    def cases(ids: Sequence[str], until_day: float | None, what: str) -> list[Case]:
        out = []
        for done, query_id in enumerate(ids, start=1):
            # Tuning queries can only find, and are only scored on, the articles they see.
            relevant = frozenset(r for r in relevance[query_id] if visible(r, until_day))
            if relevant:
                row = live[query_id]
                gathered = candidates(
                    snapshot,
                    snapshot.vector(row),
                    snapshot.terms(row),
                    K,
                    snapshot.settings.ranking,
                    drop={row},
                    filters=RowFilter(until_day=until_day),
                )
                out.append(Case(query_id, gathered, snapshot.query(row), relevant, row))
            if progress is not None:
                progress(what, done, len(ids))
        return out

    tuning_cases = cases(tuning_ids, cutoff, "candidates (tuning)")
    held_out_cases = cases(held_out_ids, None, "candidates (held out)")
    if not tuning_cases or not held_out_cases:
        raise LabelsError(
            "too few labelled queries with a related article on each side of the split"
        )

    titles = snapshot.table.titles()

    def listed(row: int) -> ListedRow:
        day = columns.published_days[row]
        code = columns.category_codes[row]
        return ListedRow(
            id=columns.ids[row],
            title=titles.get(row, ""),
            category=columns.categories[code] if code >= 0 else None,
            published_at=None
            if np.isnan(day)
            else datetime.fromtimestamp(day * 86400.0, tz=timezone.utc),
        )

    base = start or snapshot.settings.ranking
    # Replayed lists measure age from the query's date.
    old_ranking = replace(base, recency_from="query")
    step = None if progress is None else (lambda d, t: progress("settings", d, t))
    found = search(tuning_cases, old_ranking, listed, progress=step)
    model_gain = None
    if found.combination == "learned":
        learning = None if progress is None else (lambda d, t: progress("evidence weights", d, t))
        found, model_gain = learned(tuning_cases, held_out_cases, found, listed, live, learning)
    report = TuneReport(
        split="time" if cutoff is not None else "random",
        cutoff=None
        if cutoff is None
        else datetime.fromtimestamp(cutoff * 86400.0, tz=timezone.utc).isoformat(),
        tuning_queries=len(tuning_cases),
        held_out_queries=len(held_out_cases),
        old={name: getattr(old_ranking, name) for name in GRID},
        new={name: getattr(found, name) for name in GRID},
        old_tuning=replay(tuning_cases, old_ranking, listed),
        new_tuning=replay(tuning_cases, found, listed),
        old_held_out=replay(held_out_cases, old_ranking, listed),
        new_held_out=replay(held_out_cases, found, listed),
        stored=False,
        old_model=evidence.model_of(old_ranking).flat(),
        new_model=evidence.model_of(found).flat(),
        model_gain=model_gain,
    )
    if report.gain >= MIN_GAIN and store is not None:
        store(replace(found, recency_from=base.recency_from))
        report = replace(report, stored=True)
    return report


def learned(
    tuning: Sequence[Case],
    held_out: Sequence[Case],
    ranking: Ranking,
    listed: Callable[[int], ListedRow],
    rows: Mapping[str, int],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Ranking, float]:
    """``ranking`` with the correction of the evidence weights learned on the ``tuning``
    cases, if the ``held_out`` ones score higher with it; and what it gained there."""
    cases = [
        case_of(case.gathered, ranking, case.query, {rows[r] for r in case.relevant})
        for case in tuning
    ]
    model = fit_model([case for case in cases if case is not None], evidence.model_of(ranking))
    trial = replace(ranking, evidence=model.flat())
    gain = replay(held_out, trial, listed).ndcg_at_10 - replay(held_out, ranking, listed).ndcg_at_10
    return (trial, gain) if gain > 0 else (ranking, gain)
