"""Learning from clicks, on simulated readers: tuning from clicks and interleaving.

The readers. A reader of article q sees its box: the engine's first K = 10 for q under the
ranking in force, from the articles published up to q's day (all of them on an undated set).
She looks at place i (0-based) with chance 1 / (i + 1) (a power law, eta 1), and clicks an
article she looked at with chance 0.5 when it is of q's story (the shared set's ``story``: the
readers' truth, which the engine never reads) and 0.02 when it is not (noise). The query of
each view is drawn uniformly from the site's history queries. In 5% of the views the box swaps
two adjacent places, drawn uniformly (the exploration that measures position bias).

The split. A seeded sample of the labelled queries is split as ``recommend tune`` splits (by
the query's date, 70 / 30; at random when undated): the earlier 70% are the site's history
(readers view their boxes; story labels of these queries for tuning on labels), the later 30%
the future, on which every ranking is scored (nDCG@10 by story, all articles visible; plain and
with copies counted once, benchmarks/quality.py). Tuning (quality.tune.tune, as ``recommend
tune``) splits the history again by time and keeps the new settings only when they win on its
own held-out part, as it does for a site; when it keeps the old ones, the row scores them.

Tuning from clicks: the readers' events -> quality.clicks.click_labels (with and without the
position correction) -> tune, at several view counts; "recovered" is the click tuning's
future gain over the ranking in force, as a share of the label tuning's. Two rankings in force:
the defaults, and the previous defaults (half-life 7 days, weight 0.1, no calibration), which
leave more to gain.

Interleaving: the defaults ("a") against another ranking ("b"): one clearly worse (embedding
only, weighting off) and one closer (lower TF-IDF weights), merged by team draft
(quality.clicks.team_draft; 64 merges drawn per query beforehand, a view takes one at random) in
every view of a run, readers as above; the run picks the ranking whose articles won more views
(quality.clicks.preference_of, what interleaving_preference computes from stored events); the
better one is the one with the higher mean nDCG@10 by story over the history queries' boxes.
Share of runs that pick it, at several view counts, and of runs whose 95% Wilson interval
excludes 50% on its side (the verdict the report prints).

Usage: python benchmarks/clicks.py [--sets uci-news-2014-04 ecbplus-dev]
       [--tune-sets uci-news-2014-04] [--queries 600] [--views 1000 5000 20000 50000]
       [--interleaved 100 300 ...] [--runs 200] [--seed 0] [--indexes DIR] [--no-write]

Tuning is slow on the full-text set (about 2.5 minutes a tune on 2 busy cores) and gains
nothing there from the defaults (they were chosen on it), so only the UCI headlines are tuned
by default; both sets are interleaved. About 13 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from common import INDEXES, dataset, header, table, write_section
from quality import PREVIOUS, CopiesOnce

from recommender import Recommender
from recommender.errors import LabelsError
from recommender.events import Click, Event, View
from recommender.quality.clicks import click_labels, preference_of, team_draft
from recommender.quality.evaluate import choose_queries, labels_from_field, relevance_from_labels
from recommender.quality.tune import GRID, MIN_GAIN, split_queries, tune
from recommender.read.pipeline import Gathered, candidates, first_groups
from recommender.read.retrieve import RowFilter
from recommender.settings import Ranking

K = 10
ETA = 1.0
CLICK_RELATED = 0.5
CLICK_OTHER = 0.02
SWAP_SHARE = 0.05
LOOKS = [1.0 / (i + 1) ** ETA for i in range(K)]
VIEW_COUNTS = (1_000, 5_000, 20_000, 50_000)
INTERLEAVED_VIEWS = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)
#: Rankings compared with the defaults by interleaving: one clearly worse, one close.
PAIRS = {
    "worse: embedding only, weighting off": {
        "lexical_weight": 0.0,
        "lexical_weight_short": 0.0,
        "neighbour_weight": 0.0,
        "half_life_days": None,
        "category_boost": 0.0,
    },
    "closer: TF-IDF weights 0.4 / 0.1 (defaults 0.7 / 0.3)": {
        "lexical_weight": 0.4,
        "lexical_weight_short": 0.1,
    },
}
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class World:
    """One set's engine, truth and query split, with each ranking's lists cached."""

    name: str
    rec: Recommender
    relevance: dict[str, frozenset[str]]
    history: list[str]
    future: list[str]
    boxes: dict[str, tuple[Gathered, Any, int]]  # history query -> candidates, query, row
    futures: dict[str, tuple[Gathered, Any, int]]
    copies: CopiesOnce
    cache: dict[tuple[str, str], dict[str, list[str]]]

    def lists(self, ranking: Ranking, which: str) -> dict[str, list[str]]:
        """Each query's first K ids under ``ranking``: the boxes (history) or the future."""
        key = (repr(ranking), which)
        if key not in self.cache:
            cases = self.boxes if which == "history" else self.futures
            ids = self.rec.snapshot.columns.ids
            self.cache[key] = {
                q: [ids[e.row] for e in first_groups(g, ranking, query, K)]
                for q, (g, query, _) in cases.items()
            }
        return self.cache[key]

    def ndcg(self, ranking: Ranking, which: str = "future") -> tuple[float, float]:
        """Mean nDCG@10 by story (plain, copies once) of ``ranking``'s lists."""
        plain, once = [], []
        for q, listed in self.lists(ranking, which).items():
            relevant = self.relevance[q]
            hits = [i for i, item in enumerate(listed) if item in relevant]
            ideal = sum(1 / np.log2(i + 2) for i in range(min(len(relevant), K)))
            plain.append(sum(1 / np.log2(i + 2) for i in hits) / ideal)
            once.append(self.copies.ndcg(q, listed, relevant))
        return statistics.fmean(plain), statistics.fmean(once)


def world(name: str, indexes: Path, queries: int, seed: int) -> World:
    rec = Recommender.open(indexes / f"bench-{name}")
    relevance = relevance_from_labels(labels_from_field([dataset(name)], "story"))
    snapshot = rec.snapshot
    columns = snapshot.columns
    chosen, _ = choose_queries(relevance, columns.row_of.__contains__, queries, seed)
    relevance = {q: frozenset(r for r in relevance[q] if r in columns.row_of) for q in relevance}
    days = {q: float(columns.published_days[columns.row_of[q]]) for q in chosen}
    history, future, _ = split_queries(chosen, days, seed)

    def gather(q: str, until_day: float | None) -> tuple[Gathered, Any, int]:
        row = columns.row_of[q]
        gathered = candidates(
            snapshot,
            snapshot.vector(row),
            snapshot.terms(row),
            K,
            snapshot.settings.ranking,
            drop={row},
            filters=RowFilter(until_day=until_day),
        )
        return gathered, snapshot.query(row), row

    # A box shows what was published up to its article's day; the future sees everything.
    boxes = {q: gather(q, None if np.isnan(days[q]) else days[q]) for q in history}
    futures = {q: gather(q, None) for q in future}
    return World(name, rec, relevance, history, future, boxes, futures, CopiesOnce(rec), {})


def readers(
    w: World, ranking: Ranking, views: int, rng: random.Random, swap_share: float = SWAP_SHARE
) -> list[Event]:
    """``views`` simulated views of the history queries' boxes under ``ranking``."""
    boxes = w.lists(ranking, "history")
    columns = w.rec.snapshot.columns
    events: list[Event] = []
    for n in range(views):
        q = rng.choice(w.history)
        shown = list(boxes[q])
        swapped = None
        if len(shown) > 1 and rng.random() < swap_share:
            swapped = rng.randrange(len(shown) - 1)
            shown[swapped], shown[swapped + 1] = shown[swapped + 1], shown[swapped]
        day = float(columns.published_days[columns.row_of[q]])
        when = START if np.isnan(day) else datetime.fromtimestamp(day * 86400.0, UTC)
        when += timedelta(seconds=rng.randrange(86400))
        events.append(View(f"v{n}", q, tuple(shown), when, swapped=swapped))
        events += clicks_on(f"v{n}", shown, w.relevance[q], when, rng)
    return events


def clicks_on(
    view: str, shown: Sequence[str], relevant: frozenset[str], when: datetime, rng: random.Random
) -> list[Click]:
    out = []
    for place, article in enumerate(shown):
        chance = CLICK_RELATED if article in relevant else CLICK_OTHER
        if rng.random() < LOOKS[place] and rng.random() < chance:
            out.append(Click(view, article, place, when))
    return out


def tuned(w: World, relevance: dict[str, frozenset[str]], start: Ranking, seed: int) -> Ranking:
    """What ``recommend tune`` leaves in force: the new settings if they win, else ``start``."""
    report = tune(
        w.rec.snapshot, relevance, queries=len(relevance), seed=seed, start=start, store=None
    )
    return replace(start, **report.new) if report.gain >= MIN_GAIN else start


def fmt(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.3f} / {pair[1]:.3f}"


def changed(ranking: Ranking, start: Ranking) -> str:
    diffs = [
        f"{name} {getattr(ranking, name)}"
        for name in GRID
        if getattr(ranking, name) != getattr(start, name)
    ]
    return ", ".join(diffs) or "kept"


@dataclass
class Targets:
    """What the issue asks, gathered over the run for the summary table."""

    recovered: list[tuple[str, int, float]]  # (set and ranking in force, views, share)
    worst: list[tuple[str, float, float]]  # (set, lowest click-tuned nDCG@10, defaults')
    interleaving: list[tuple[str, str, str, int | None]]  # set, pair, delta, views for 95%


def tuning_rows(
    w: World,
    start: Ranking,
    label: str,
    seed: int,
    view_counts: Sequence[int],
    targets: Targets,
) -> list[list[str]]:
    start = replace(start, recency_from="query")
    base = w.ndcg(start)
    by_labels = tuned(w, {q: w.relevance[q] for q in w.history}, start, seed)
    labelled = w.ndcg(by_labels)
    gain = labelled[0] - base[0]
    rows = [
        [label, "in force (no tuning)", "-", fmt(base), "-", "-"],
        [label, "tuned on story labels", "-", fmt(labelled), "100%", changed(by_labels, start)],
    ]
    rng = random.Random(seed)
    for views in view_counts:
        events = readers(w, start, views, rng)
        clicks = sum(isinstance(e, Click) for e in events)
        for correct in (True, False):
            how = "clicks, corrected" if correct else "clicks, uncorrected"
            try:
                labels = click_labels(events, correct=correct)
            except LabelsError as exc:
                rows.append([label, how, f"{views:,} ({clicks:,})", "refused", "-", str(exc)])
                continue
            ranking = tuned(w, dict(labels.relevance), start, seed)
            got = w.ndcg(ranking)
            share = (got[0] - base[0]) / gain if gain > 1e-9 else float("nan")
            note = changed(ranking, start)
            if correct and labels.bias is not None:
                looks = " ".join(f"{x:.2f}" for x in labels.bias.looks[:5])
                note += f"; looks 1-5 measured {looks}"
            elif correct:
                note += "; too few clicks on swapped places: not corrected"
            if correct:
                targets.recovered.append((f"{w.name}, {label}", views, share))
            defaults = w.ndcg(replace(Ranking(), recency_from="query"))[0]
            targets.worst.append((w.name, got[0], defaults))
            rows.append(
                [
                    label,
                    how,
                    f"{views:,} ({clicks:,})",
                    fmt(got),
                    f"{share:.0%}" if share == share else "-",
                    note,
                ]
            )
        print(f"  {w.name} {label}: {views} views done", flush=True)
    return rows


#: Team-draft merges drawn in advance for each query: a view takes one of them at random.
MERGES = 64


def interleaving_rows(
    w: World, runs: int, seed: int, view_counts: Sequence[int], targets: Targets
) -> list[list[str]]:
    """Runs of interleaved views of the defaults ("a") and each ranking of PAIRS ("b"). A run
    of n views draws n queries, and for each a team-draft merge (quality.clicks.team_draft;
    MERGES drawn per query beforehand, as the coin flips have few outcomes), then the readers'
    clicks (numpy, the same chances as ``clicks_on``); quality.clicks.preference_of decides."""
    a = replace(Ranking(), recency_from="query")
    rows = []
    rng = random.Random(seed)
    draws = np.random.default_rng(seed)
    looks = np.array(LOOKS)
    for name, overrides in PAIRS.items():
        b = replace(a, **overrides)
        lists_a, lists_b = w.lists(a, "history"), w.lists(b, "history")
        quality_a, quality_b = w.ndcg(a, "history")[0], w.ndcg(b, "history")[0]
        better = "a" if quality_a > quality_b else "b"
        differ = sum(lists_a[q] != lists_b[q] for q in w.history) / len(w.history)
        # Per query and merge: each place's chance of a click when looked at, and its team
        # (+1 "b", -1 "a", 0 an empty place).
        chance = np.zeros((len(w.history), MERGES, K))
        team = np.zeros((len(w.history), MERGES, K))
        for n, q in enumerate(w.history):
            for m in range(MERGES):
                shown, teams = team_draft(lists_a[q], lists_b[q], K, rng)
                for place, (item, side) in enumerate(zip(shown, teams, strict=True)):
                    related = item in w.relevance[q]
                    chance[n, m, place] = CLICK_RELATED if related else CLICK_OTHER
                    team[n, m, place] = 1 if side == "b" else -1
        for views in view_counts:
            picked = confident = wrong = 0
            for _ in range(runs):
                q = draws.integers(len(w.history), size=views)
                m = draws.integers(MERGES, size=views)
                clicked = draws.random((views, K)) < looks * chance[q, m]
                credit = (clicked * team[q, m]).sum(axis=1)
                try:
                    preference = preference_of(np.sign(credit).astype(int).tolist())
                except LabelsError:
                    continue
                if preference.share_b != 0.5:
                    picked += ("b" if preference.share_b > 0.5 else "a") == better
                confident += preference.verdict == better
                wrong += preference.verdict not in (better, "neither yet")
            rows.append(
                [
                    name,
                    f"{quality_a:.4f} vs {quality_b:.4f}",
                    f"{differ:.0%}",
                    f"{views:,}",
                    f"{picked / runs:.1%}",
                    f"{confident / runs:.1%}",
                    f"{wrong / runs:.1%}",
                ]
            )
        enough = [
            int(r[3].replace(",", "")) for r in rows[-len(view_counts) :] if float(r[4][:-1]) >= 95
        ]
        delta = f"{abs(quality_a - quality_b):.4f}"
        targets.interleaving.append((w.name, name.split(":")[0], delta, min(enough, default=None)))
        print(f"  {w.name} interleaving {name} done", flush=True)
    return rows


def summary(targets: Targets) -> str:
    """The issue's targets against what this run measured."""
    rows = []
    if targets.recovered:
        low = min(targets.recovered, key=lambda item: item[2])
        rows.append(
            [
                "tuning from clicks recovers >= 80% of the label tuning's nDCG@10 gain",
                f"lowest of {len(targets.recovered)} runs (corrected): {low[2]:.0%} "
                f"({low[0]}, {low[1]:,} views)",
                "yes" if low[2] >= 0.8 else "no",
            ]
        )
    if targets.worst:
        worst = min(targets.worst, key=lambda item: item[1] - item[2])
        rows.append(
            [
                "tuning from clicks is never worse than the defaults",
                f"lowest of {len(targets.worst)} runs: {worst[1]:.3f} against the defaults' "
                f"{worst[2]:.3f} ({worst[0]})",
                "yes" if worst[1] >= worst[2] else "no",
            ]
        )
    for name, pair, delta, views in targets.interleaving:
        rows.append(
            [
                f"interleaving picks the better in >= 95% of runs ({name}, {pair}, "
                f"nDCG@10 apart by {delta})",
                "not within the views tried" if views is None else f"from {views:,} views a run",
                "no" if views is None else "yes",
            ]
        )
    return table(["target", "measured", "met"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["uci-news-2014-04", "ecbplus-dev"])
    parser.add_argument(
        "--tune-sets", nargs="+", default=["uci-news-2014-04"], help="of --sets, those tuned"
    )
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--indexes", type=Path, default=INDEXES, help="where bench-SET is")
    parser.add_argument("--views", type=int, nargs="+", default=list(VIEW_COUNTS))
    parser.add_argument("--interleaved", type=int, nargs="+", default=list(INTERLEAVED_VIEWS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    began = time.perf_counter()
    parts = []
    targets = Targets([], [], [])
    for name in args.sets:
        w = world(name, args.indexes, args.queries, args.seed)
        print(f"{name}: {len(w.history)} history and {len(w.future)} future queries", flush=True)
        tuning: list[list[str]] = []
        if name in args.tune_sets:
            # From the defaults, only the most views: there is less to gain there.
            for label, start, views in (
                ("previous defaults", PREVIOUS, args.views),
                ("defaults", Ranking(), args.views[-1:]),
            ):
                tuning += tuning_rows(w, start, label, args.seed, views, targets)
        inter = interleaving_rows(w, args.runs, args.seed, args.interleaved, targets)
        tuned_table = (
            table(
                [
                    "in force",
                    "tuned on",
                    "views (clicks)",
                    "future nDCG@10 / copies once",
                    "gain recovered",
                    "settings changed",
                ],
                tuning,
            )
            + "\n\n"
            if tuning
            else ""
        )
        text = (
            f"### {name}: {len(w.history)} history queries (readers' views, labels), "
            f"{len(w.future)} future queries (scored)\n\n"
            + tuned_table
            + table(
                [
                    "b, against the defaults (a)",
                    "nDCG@10 a vs b (boxes)",
                    "lists that differ",
                    "views a run",
                    "runs that pick the better",
                    "runs whose 95% CI picks it",
                    "... picks the worse",
                ],
                inter,
            )
        )
        print(text, flush=True)
        parts.append(text)
        w.rec.close()
    seconds = time.perf_counter() - began
    section = header("Learning from clicks (benchmarks/clicks.py)", seconds) + (
        f"\nSimulated readers (docstring of benchmarks/clicks.py): look at place i with "
        f"1/(i+1)^{ETA:g}, click a same-story article looked at with {CLICK_RELATED:g}, any "
        f"other with {CLICK_OTHER:g}; {SWAP_SHARE:.0%} of views swap two adjacent places. "
        f"nDCG@10 on the future queries (all articles visible), plain / copies counted once; "
        f"gain recovered: the click tuning's plain nDCG@10 gain over the ranking in force as a "
        f"share of the label tuning's. Interleaving: {args.runs} runs a row.\n\n"
        + summary(targets)
        + "\n\n"
        + "\n\n".join(parts)
    )
    if not args.no_write:
        write_section("clicks", section)


if __name__ == "__main__":
    main()
