"""recommend tune: the query split, the search over settings, and storing what wins."""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SAMPLE, FakeEncoder, SampleBuilds, SampleCopy, sample_records
from scipy import sparse

from recommender import (
    Article,
    InvalidQueryError,
    LabelsError,
    Ranking,
    Recommender,
    Settings,
    SettingsError,
)
from recommender.articles import parse_datetime
from recommender.quality import tune as tune_module
from recommender.quality.evaluate import (
    choose_queries,
    evaluate,
    labels_from_field,
    relevance_from_labels,
    relevance_from_pairs,
)
from recommender.quality.tune import (
    GRID,
    Case,
    ListedRow,
    TuneReport,
    replay,
    search,
    split_queries,
)
from recommender.read.pipeline import Gathered
from recommender.read.rerank import Query
from recommender.read.retrieve import Pool
from recommender.results import IndexInfo

NAN = float("nan")
#: Tuning on a seeded sample of the sample's queries keeps each run well under a second.
QUERIES = 12


# split_queries ------------------------------------------------------------------------------


def test_time_split_by_date_leaves_undated_out() -> None:
    ids = [f"q{i:02d}" for i in range(30)]
    days = {q: 20000.0 + 3 * i for i, q in enumerate(ids)}
    days["q05"] = days["q17"] = NAN  # 28 of 30 dated: >= 90%
    tuning, held_out, cutoff = split_queries(ids, days, seed=0)
    dated = [q for q in ids if not math.isnan(days[q])]
    assert cutoff is not None
    assert "q05" not in tuning + held_out and "q17" not in tuning + held_out
    assert sorted(tuning + held_out) == sorted(dated)
    assert not set(tuning) & set(held_out)
    assert all(days[q] <= cutoff for q in tuning)
    assert all(days[q] > cutoff for q in held_out)
    assert cutoff == max(days[q] for q in tuning)
    assert len(tuning) == round(0.7 * len(dated))  # 20 of 28
    # The earliest tune, the latest are held out, whatever the order given.
    assert split_queries(list(reversed(ids)), days, seed=5) == (tuning, held_out, cutoff)


def test_time_split_keeps_a_day_on_one_side() -> None:
    ids = [f"q{i:02d}" for i in range(20)]
    days = {q: 100.0 + i // 4 for i, q in enumerate(ids)}  # 5 days, 4 queries each
    tuning, held_out, cutoff = split_queries(ids, days, seed=0)
    assert cutoff is not None
    assert max(days[q] for q in tuning) == cutoff < min(days[q] for q in held_out)
    assert sorted(tuning + held_out) == sorted(ids)
    assert len(tuning) in (12, 16)  # 70% of 20 lands inside the day of 14 and 15


@pytest.mark.parametrize(("dated", "split"), [(18, "time"), (17, "random")])
def test_ninety_percent_dated_decides_the_split(dated: int, split: str) -> None:
    ids = [f"q{i:02d}" for i in range(20)]
    days = {q: (50.0 + i if i < dated else NAN) for i, q in enumerate(ids)}
    tuning, held_out, cutoff = split_queries(ids, days, seed=0)
    assert (cutoff is not None) == (split == "time")
    covered = sorted(tuning + held_out)
    assert covered == (sorted(ids[:dated]) if split == "time" else sorted(ids))


def test_random_split_is_seeded_disjoint_and_covering() -> None:
    ids = [f"q{i:02d}" for i in range(20)]
    days = {q: (10.0 + i if i % 2 else NAN) for i, q in enumerate(ids)}  # half undated
    splits = {}
    for seed in range(5):
        tuning, held_out, cutoff = split_queries(ids, days, seed=seed)
        assert cutoff is None
        assert not set(tuning) & set(held_out)
        assert sorted(tuning + held_out) == sorted(ids)  # undated ones too
        assert (len(tuning), len(held_out)) == (14, 6)
        assert split_queries(list(reversed(ids)), days, seed=seed) == (tuning, held_out, None)
        splits[seed] = (tuple(tuning), tuple(held_out))
    assert split_queries(ids, days, seed=0) == (list(splits[0][0]), list(splits[0][1]), None)
    assert len(set(splits.values())) > 1  # another seed, another split
    assert splits[0] != splits[1]


def test_dated_on_one_day_falls_back_to_random() -> None:
    ids = [f"q{i}" for i in range(10)]
    days = dict.fromkeys(ids, 300.0)
    tuning, held_out, cutoff = split_queries(ids, days, seed=1)
    assert cutoff is None and tuning and held_out
    assert sorted(tuning + held_out) == sorted(ids)


def test_two_queries_split_one_and_one() -> None:
    tuning, held_out, cutoff = split_queries(["b", "a"], {"a": 1.0, "b": 2.0}, seed=0)
    assert (tuning, held_out, cutoff) == (["a"], ["b"], 1.0)
    tuning, held_out, cutoff = split_queries(["b", "a"], {"a": NAN, "b": NAN}, seed=0)
    assert cutoff is None and sorted(tuning + held_out) == ["a", "b"] and len(tuning) == 1


# search on hand-made pools ------------------------------------------------------------------

QUERY_ROW = 1000


def listed(row: int) -> ListedRow:
    return ListedRow(id=f"r{row}", title=f"title {row}", category=None, published_at=None)


def make_case(
    index: int, dense: list[float], lexical: list[float], relevant: list[int], query_terms: int
) -> Case:
    """A pool whose candidates are orthogonal to each other (no copies, no neighbour or
    diversity effect), undated and uncategorised: only the lexical weights change the order."""
    n = len(dense)
    rows = np.arange(10 * index, 10 * index + n, dtype=np.int64)
    pool = Pool(
        dense=np.array(dense, dtype=np.float32),
        lexical=np.array(lexical, dtype=np.float32),
        vectors=np.eye(n, dtype=np.float32),
        terms=sparse.csr_matrix(np.eye(n, dtype=np.float32)),
        published_days=np.full(n, NAN),
        category_codes=np.full(n, -1, dtype=np.int32),
        title_codes=np.arange(n, dtype=np.int64),
        url_codes=np.full(n, -1, dtype=np.int64),
        query_terms=query_terms,
    )
    return Case(
        query_id=f"q{index}",
        gathered=Gathered(rows, pool, -np.inf, 0.0),
        query=Query(day=None),
        relevant=frozenset(f"r{rows[i]}" for i in relevant),
        row=QUERY_ROW + index,
    )


def balanced_cases(query_terms: int) -> list[Case]:
    """The relevant candidate (0.45, 0.45) beats the embedding's pick (0.8, 0) only for
    weight > 0.4375 and the TF-IDF's pick (0, 0.8) only below 0.5625: of the grid, 0.5."""
    return [make_case(i, [0.45, 0.8, 0.0], [0.45, 0.0, 0.8], [0], query_terms) for i in range(3)]


POOR = Ranking(
    half_life_days=None, lexical_weight=0.0, lexical_weight_short=0.0, category_boost=0.0
)
# By hand: the knobs alone (a learned correction would move the best lexical weights).
START = Ranking(
    lexical_weight=0.0, lexical_weight_short=1.0, neighbour_weight=0.0, combination="hand"
)


def score(cases: list[Case], ranking: Ranking) -> float:
    return replay(cases, ranking, listed).ndcg_at_10


def test_replay_scores_the_listed_order() -> None:
    cases = balanced_cases(query_terms=50)
    assert score(cases, replace(START, lexical_weight=0.5)) == pytest.approx(1.0)
    # At either end the relevant candidate is second, under one of the two picks.
    assert score(cases, replace(START, lexical_weight=0.0)) == pytest.approx(1 / math.log2(3))
    assert score(cases, replace(START, lexical_weight=1.0)) == pytest.approx(1 / math.log2(3))
    report = replay(cases, replace(START, lexical_weight=0.5), listed)
    assert report.queries == 3 and report.mrr == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("query_terms", "tuned", "held"),
    [(50, "lexical_weight", "lexical_weight_short"), (5, "lexical_weight_short", "lexical_weight")],
)
def test_search_finds_the_one_good_lexical_weight(query_terms: int, tuned: str, held: str) -> None:
    cases = balanced_cases(query_terms)
    for first in (0.0, 0.2, 0.9, 1.0):
        start = replace(START, **{tuned: first})
        found = search(cases, start, listed, grid={tuned: GRID[tuned]})
        assert found == replace(start, **{tuned: 0.5})
        found = search(cases, start, listed)  # the whole grid: nothing else matters here
        assert getattr(found, tuned) == 0.5
        assert getattr(found, held) == getattr(start, held)
        assert score(cases, found) == pytest.approx(1.0)


def test_search_keeps_a_start_nothing_beats() -> None:
    cases = balanced_cases(query_terms=50)
    start = replace(START, lexical_weight=0.5)
    assert search(cases, start, listed) == start


def test_search_reports_progress() -> None:
    calls: list[tuple[int, int]] = []
    grid = {"lexical_weight": (0.0, 0.5, 1.0), "mmr_lambda": (1.0, 0.8)}
    search(
        balanced_cases(50),
        START,
        listed,
        grid=grid,
        rounds=3,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[-1] == (15, 15)
    assert {t for _, t in calls} == {15}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] == 1


def random_cases(seed: int, count: int = 6, n: int = 12) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        vectors = rng.normal(size=(n, 8)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        query = rng.normal(size=8).astype(np.float32)
        query /= np.linalg.norm(query)
        weights = rng.random((n, 30)) * (rng.random((n, 30)) < 0.2)
        weights[:, 0] += 0.1  # no empty row
        terms = sparse.csr_matrix(
            (weights / np.linalg.norm(weights, axis=1, keepdims=True)).astype(np.float32)
        )
        query_terms = rng.random(30).astype(np.float32)
        query_terms /= np.linalg.norm(query_terms)
        pool = Pool(
            dense=vectors @ query,
            lexical=np.asarray(terms @ query_terms, dtype=np.float32),
            vectors=vectors,
            terms=terms,
            published_days=np.where(rng.random(n) < 0.2, NAN, 100.0 + rng.integers(0, 30, n)),
            category_codes=rng.integers(-1, 3, n).astype(np.int32),
            title_codes=rng.integers(0, n, n).astype(np.int64),
            url_codes=np.full(n, -1, dtype=np.int64),
            query_terms=int(rng.integers(1, 40)),
        )
        rows = np.arange(100 * index, 100 * index + n, dtype=np.int64)
        relevant = frozenset(f"r{r}" for r in rng.choice(rows, size=3, replace=False))
        day = float(100 + rng.integers(0, 30))
        query = Query(day=day, category=1)
        gathered = Gathered(rows, pool, -np.inf, 0.0)
        cases.append(Case(f"q{index}", gathered, query, relevant, QUERY_ROW + index))
    return cases


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_never_returns_worse_than_the_start(seed: int) -> None:
    cases = random_cases(seed)
    for start in (
        Ranking(),
        Ranking(half_life_days=None, mmr_lambda=0.8, lexical_weight=0.3),
    ):
        found = search(cases, start, listed)
        assert score(cases, found) >= score(cases, start) - 1e-12
        found_values, start_values = asdict(found), asdict(start)
        for name in GRID:  # every value found is the start's or one of the grid's
            assert found_values[name] == start_values[name] or found_values[name] in GRID[name]
        assert {k: v for k, v in found_values.items() if k not in GRID} == {
            k: v for k, v in start_values.items() if k not in GRID
        }


# tune on the bundled sample -----------------------------------------------------------------


# Stored settings far from the sample's best, so that tuning has something to find.
POORLY_RANKED = Settings(ranking=POOR)


@pytest.fixture(scope="module")
def relevance() -> dict[str, frozenset[str]]:
    return relevance_from_labels(labels_from_field([SAMPLE], "story"))


@pytest.fixture
def copy(sample_copy: SampleCopy) -> Path:
    """The sample indexed with POOR as its ranking (once per session), a copy for this test."""
    return sample_copy(POORLY_RANKED, name="copy")


@pytest.fixture
def opened(copy: Path) -> Iterator[Recommender]:
    rec = Recommender.open(copy, encoder=FakeEncoder())
    yield rec
    rec.close()


def spy_on_pools(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, Pool]]:
    """Record each candidate pool tune takes: (query id, until_day, pool)."""
    calls: list[tuple[str, Any, Pool]] = []
    original = tune_module.candidates

    def candidates(snapshot: Any, vector: Any, terms: Any, *args: Any, **options: Any) -> Any:
        gathered = original(snapshot, vector, terms, *args, **options)
        (row,) = options["drop"]
        calls.append((snapshot.columns.ids[row], options["filters"].until_day, gathered.pool))
        return gathered

    monkeypatch.setattr(tune_module, "candidates", candidates)
    return calls


@dataclass
class DryRun:
    rec: Recommender
    before: IndexInfo
    report: TuneReport
    calls: list[tuple[str, Any, Pool]]


@pytest.fixture(scope="module")
def dry(
    sample_builds: SampleBuilds,
    tmp_path_factory: pytest.TempPathFactory,
    relevance: dict[str, frozenset[str]],
) -> Iterator[DryRun]:
    """One dry run on a copy of the POOR index for the module, looked at by several tests."""
    path = sample_builds.copy(tmp_path_factory.mktemp("dry") / "sample-index", POORLY_RANKED)
    rec = Recommender.open(path, encoder=FakeEncoder())
    before = rec.info()
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = spy_on_pools(monkeypatch)
        report = rec.tune(relevance, queries=QUERIES, dry_run=True)
    yield DryRun(rec, before, report, calls)
    rec.close()


def day_of(rec: Recommender, article_id: str) -> float:
    published = rec.get(article_id).published_at
    return NAN if published is None else published.timestamp() / 86400.0


def test_tune_report_on_the_sample(dry: DryRun, relevance: dict[str, frozenset[str]]) -> None:
    report, calls = dry.report, dry.calls
    usable, _ = choose_queries(relevance, dry.rec.__contains__, None, 0)
    days = {q: day_of(dry.rec, q) for q in usable}
    tuning_ids, held_out_ids, cutoff = split_queries(usable, days, 0)
    assert cutoff is not None and len(tuning_ids) + len(held_out_ids) < len(usable)  # undated out
    share = QUERIES / (len(tuning_ids) + len(held_out_ids))
    assert report.split == "time"
    assert report.cutoff is not None
    assert datetime.fromisoformat(report.cutoff).timestamp() / 86400.0 == pytest.approx(cutoff)
    assert report.tuning_queries == round(share * len(tuning_ids))
    assert report.held_out_queries == round(share * len(held_out_ids))
    assert report.tuning_queries + report.held_out_queries == QUERIES
    assert report.old_tuning.queries == report.new_tuning.queries == report.tuning_queries
    assert report.old_held_out.queries == report.new_held_out.queries == report.held_out_queries

    # Tuning queries are from before the cutoff and see only articles up to it; the held-out
    # ones are later and see everything.
    tuning_calls = [c for c in calls if c[1] is not None]
    held_calls = [c for c in calls if c[1] is None]
    assert len(tuning_calls) == report.tuning_queries
    assert len(held_calls) == report.held_out_queries
    assert {c[1] for c in tuning_calls} == {cutoff}
    assert {q for q, _, _ in tuning_calls} <= set(tuning_ids)
    assert {q for q, _, _ in held_calls} <= set(held_out_ids)
    assert all(days[q] <= cutoff for q, _, _ in tuning_calls)
    assert all(days[q] > cutoff for q, _, _ in held_calls)
    assert all((pool.published_days <= cutoff).all() for _, _, pool in tuning_calls)
    assert any((pool.published_days > cutoff).any() for _, _, pool in held_calls)

    assert set(report.old) == set(report.new) == set(GRID)
    assert report.old == {name: dry.before.settings[name] for name in GRID}
    assert report.new_tuning.ndcg_at_10 >= report.old_tuning.ndcg_at_10
    assert report.gain == pytest.approx(
        report.new_held_out.ndcg_at_10 - report.old_held_out.ndcg_at_10
    )


def test_replayed_scores_match_evaluate(dry: DryRun, relevance: dict[str, frozenset[str]]) -> None:
    """The held-out scores are those of the lists the engine gives (the same code ranks)."""
    held = {q: relevance[q] for q, until, _ in dry.calls if until is None}
    old = evaluate(dry.rec, held)
    new = evaluate(dry.rec, held, options=dry.report.new)
    for mine, theirs in ((dry.report.old_held_out, old), (dry.report.new_held_out, new)):
        assert mine.queries == theirs.queries
        assert mine.ndcg_at_10 == pytest.approx(theirs.ndcg_at_10)
        assert mine.precision_at_5 == pytest.approx(theirs.precision_at_5)
        assert mine.mrr == pytest.approx(theirs.mrr)


def manifest_settings(path: Path) -> dict[str, Any]:
    with Recommender.open(path, encoder=FakeEncoder()) as rec:
        return rec.info().settings


def test_dry_run_never_stores(dry: DryRun) -> None:
    report = dry.report
    assert report.gain >= tune_module.MIN_GAIN and report.new != report.old  # it would store
    assert report.stored is False
    assert dry.rec.info().settings == dry.before.settings
    assert dry.rec.info().generation == dry.before.generation
    assert not dry.rec.refresh()
    assert manifest_settings(dry.rec.path) == dry.before.settings


def test_a_win_is_stored_and_seen(
    opened: Recommender,
    copy: Path,
    dry: DryRun,
    relevance: dict[str, frozenset[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same run as the dry one: a gain of exactly the threshold is enough.
    assert dry.report.gain >= tune_module.MIN_GAIN
    monkeypatch.setattr(tune_module, "MIN_GAIN", dry.report.gain)
    watcher = Recommender.open(copy, encoder=FakeEncoder())
    try:
        before = opened.info().settings
        report = opened.tune(relevance, queries=QUERIES)
        assert report.gain == dry.report.gain
        assert report.stored is True
        assert report.new != report.old
        expected = {**before, **report.new}
        assert opened.info().settings == expected  # the tuner sees its own settings at once
        assert manifest_settings(copy) == expected  # so does a fresh open
        assert Recommender.stored_ranking(copy) == replace(opened.settings.ranking)
        assert Settings.from_dict(expected).ranking == opened.settings.ranking
        assert watcher.settings.to_dict() == before  # one opened before, until it refreshes
        assert watcher.refresh()
        assert watcher.info().settings == expected
        assert watcher.settings.to_dict() == expected
        # Queries now rank with the stored settings by default.
        for query in ("a-1001", "a-2016"):
            default = [item.id for item in watcher.similar(query)]
            assert default == [item.id for item in watcher.similar(query, **report.new)]
    finally:
        watcher.close()


def test_a_gain_below_the_threshold_is_not_stored(
    opened: Recommender,
    copy: Path,
    dry: DryRun,
    relevance: dict[str, frozenset[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same run as the dry one (same index, queries and seed): the same gain, just short.
    assert dry.report.gain >= tune_module.MIN_GAIN
    monkeypatch.setattr(tune_module, "MIN_GAIN", dry.report.gain + 1e-6)
    before = opened.info()
    report = opened.tune(relevance, queries=QUERIES)
    assert report.gain == pytest.approx(dry.report.gain)
    assert report.new == dry.report.new and report.new != report.old
    assert report.stored is False
    assert opened.info().settings == before.settings
    assert opened.info().generation == before.generation
    assert manifest_settings(copy) == before.settings


def test_tune_needs_two_queries(opened: Recommender, relevance: dict[str, frozenset[str]]) -> None:
    with pytest.raises(InvalidQueryError, match="queries must be 2 or more"):
        opened.tune(relevance, queries=1)
    with pytest.raises(LabelsError, match="at least 2 indexed articles"):
        opened.tune({"a-1001": frozenset({"nope"}), "nope": frozenset({"a-1001"})})


def test_tune_from_a_pairs_file(
    opened: Recommender, tmp_path: Path, relevance: dict[str, frozenset[str]]
) -> None:
    by_story: dict[str, list[str]] = {}
    for record in sample_records():
        by_story.setdefault(str(record["story"]), []).append(str(record["id"]))
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["article", "read_with"])
        for ids in by_story.values():
            writer.writerows(itertools.pairwise(ids))  # a chain through each story
        writer.writerow(["a-1001", "not-indexed"])
        writer.writerow(["ghost-1", "ghost-2"])  # neither indexed: no query
    related = relevance_from_pairs(pairs)
    assert related["a-1001"] >= {"not-indexed"}
    before = opened.info().settings
    report = opened.tune(related, queries=10, dry_run=True)
    assert report.split == "time" and report.cutoff is not None
    assert report.tuning_queries + report.held_out_queries == 10
    assert 0.0 <= report.old_held_out.ndcg_at_10 <= 1.0
    assert opened.info().settings == before


def test_random_split_on_undated_articles(tmp_path: Path) -> None:
    records = sample_records()[:120]
    articles = [
        Article(
            id=str(r["id"]),
            title=str(r["title"]),
            body=str(r["body"]),
            category=str(r["category"]),
            published_at=parse_datetime(None),
        )
        for r in records
    ]
    path = tmp_path / "undated"
    Recommender.build(articles, path, encoder=FakeEncoder())
    relevance = relevance_from_labels({str(r["id"]): str(r["story"]) for r in records})
    with Recommender.open(path, encoder=FakeEncoder()) as rec:
        first = rec.tune(relevance, queries=6, seed=4, dry_run=True)
        again = rec.tune(relevance, queries=6, seed=4, dry_run=True)
    assert first.split == "random" and first.cutoff is None
    assert first.tuning_queries == 4 and first.held_out_queries == 2
    assert again == first


# store_settings and rebuilds ----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"lexical_ngrams": 1},
        {"max_body_chars": 200},
        {"lexical_min_df": 3},
        {"vector_type": "float32"},
        {"model": "other/model"},
        {"max_body_chars": 200, "lexical_weight": 0.2},
    ],
)
def test_store_settings_refuses_build_time_changes(
    opened: Recommender, copy: Path, change: dict[str, Any]
) -> None:
    before = opened.info()
    settings = opened.settings
    ranking_change = {k: v for k, v in change.items() if k in Ranking.names()}
    build_change = {k: v for k, v in change.items() if k not in ranking_change}
    changed = replace(settings, ranking=replace(settings.ranking, **ranking_change), **build_change)
    with pytest.raises(SettingsError, match="can only change with a new build") as raised:
        opened.store_settings(changed)
    build_time = [name for name in change if name != "lexical_weight"]
    assert all(name in str(raised.value) for name in build_time)
    assert opened.info().settings == before.settings
    assert opened.info().generation == before.generation
    assert manifest_settings(copy) == before.settings


def test_rebuild_keeps_stored_ranking(opened: Recommender, copy: Path) -> None:
    chosen: dict[str, Any] = {"lexical_weight": 0.3, "half_life_days": None, "mmr_lambda": 0.8}
    settings = opened.settings
    opened.store_settings(replace(settings, ranking=replace(settings.ranking, **chosen)))
    stored = Recommender.stored_ranking(copy)
    assert stored is not None
    assert {name: getattr(stored, name) for name in chosen} == chosen
    version = (copy / "CURRENT").read_text().strip()
    Recommender.build_from_files([SAMPLE], copy, encoder=FakeEncoder())
    assert (copy / "CURRENT").read_text().strip() != version  # a new build indeed
    assert Recommender.stored_ranking(copy) == stored
    settings = manifest_settings(copy)
    assert {name: settings[name] for name in chosen} == chosen
    opened.refresh()
    ranking = opened.settings.ranking
    assert ranking.lexical_weight == 0.3 and ranking.half_life_days is None
    # Settings given explicitly win over the stored ones.
    Recommender.build_from_files(
        [SAMPLE],
        copy,
        encoder=FakeEncoder(),
        settings=Settings(ranking=Ranking(lexical_weight=0.9)),
    )
    assert Recommender.stored_ranking(copy) == Ranking(lexical_weight=0.9)


def test_stored_ranking_of_no_index(tmp_path: Path) -> None:
    assert Recommender.stored_ranking(tmp_path / "none") is None


def test_sample_is_mostly_dated() -> None:
    """The sample tests above rely on a time split: at least 90% of it is dated."""
    records = sample_records()
    dated = sum(1 for r in records if r.get("published_at"))
    assert dated >= 0.9 * len(records) and dated < len(records)
