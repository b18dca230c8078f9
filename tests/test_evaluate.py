"""Scoring related lists against labels, and the evaluate command."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import SAMPLE
from typer.testing import CliRunner

from recommender import Article, InputFileError, LabelsError, Recommender
from recommender.cli import app
from recommender.quality.evaluate import (
    choose_queries,
    evaluate,
    labels_from_field,
    relevance_from_labels,
    relevance_from_pairs,
    score_list,
    summarize,
)


def item(article_id: str, title: str = "", category: str | None = "x", day: int | None = 1):
    published = datetime(2026, 1, day, tzinfo=timezone.utc) if day else None
    return Article(
        id=article_id, title=title or article_id, category=category, published_at=published
    )


def test_score_list_by_hand() -> None:
    query = item("q", "Ferry strike ends", day=1)
    listed = [
        item("a", day=2),
        item("r1", day=3),
        item("dup", "Ferry  strike ENDS!", category="y", day=None),
        item("r2", day=1),
        item("b", "b"),
        item("c", "B"),  # same normalised title as the item above
    ]
    scores = score_list(query, listed, frozenset({"r1", "r2", "r3"}))
    assert scores.precision_at_5 == pytest.approx(2 / 5)
    assert scores.precision_at_10 == pytest.approx(2 / 10)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert scores.ndcg_at_10 == pytest.approx(dcg / ideal)
    assert scores.reciprocal_rank == pytest.approx(1 / 2)
    assert scores.same_category == pytest.approx(5 / 6)
    assert scores.near_duplicates == pytest.approx(2 / 6)
    assert scores.age_gaps_days == (1.0, 2.0, 0.0, 0.0, 0.0)


def test_score_list_edges() -> None:
    query = item("q", category=None, day=None)
    scores = score_list(query, [], frozenset({"r"}))
    assert (scores.precision_at_5, scores.ndcg_at_10, scores.reciprocal_rank) == (0, 0, 0)
    assert scores.same_category is None and scores.age_gaps_days == ()
    perfect = score_list(item("q"), [item("r")], frozenset({"r"}))
    assert perfect.ndcg_at_10 == 1.0 and perfect.reciprocal_rank == 1.0


def test_relevance_from_labels_and_field(tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    rows = [
        {"id": 1, "title": "t", "story": "s1"},
        {"id": 2, "title": "t", "story": "s1"},
        {"id": "3", "title": "t", "story": "s2"},
        {"id": "4", "title": "t", "story": None},
    ]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    labels = labels_from_field([source], "story")
    assert labels == {"1": "s1", "2": "s1", "3": "s2"}
    assert relevance_from_labels(labels) == {
        "1": frozenset({"2"}),
        "2": frozenset({"1"}),
        "3": frozenset(),
    }
    with pytest.raises(LabelsError, match="has a 'topic' field"):
        labels_from_field([source], "topic")


def test_relevance_from_pairs(tmp_path: Path) -> None:
    pairs = tmp_path / "coread.csv"
    pairs.write_text("article,also_read\na,b\nb,c\nc,c\nd,\n")
    assert relevance_from_pairs(pairs) == {
        "a": frozenset({"b"}),
        "b": frozenset({"a", "c"}),
        "c": frozenset({"b"}),
    }
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(InputFileError, match="no related pairs"):
        relevance_from_pairs(tmp_path / "empty.csv")


def test_choose_queries_is_seeded() -> None:
    relevance = {str(i): frozenset({str(i + 1)}) for i in range(100)}
    indexed = {str(i) for i in range(60)}.__contains__
    every, skipped = choose_queries(relevance, indexed, None, 0)
    assert every == sorted(str(i) for i in range(59)) and skipped == 41
    some, _ = choose_queries(relevance, indexed, 10, 7)
    assert len(some) == 10 and set(some) <= set(every)
    assert some == choose_queries(relevance, indexed, 10, 7)[0]
    assert some != choose_queries(relevance, indexed, 10, 8)[0]


def test_summarize_needs_queries() -> None:
    with pytest.raises(LabelsError, match="no query"):
        summarize([], skipped=3, k=10, candidates=100)


def test_evaluate_on_the_sample(sample_rec: Recommender) -> None:
    relevance = relevance_from_labels(labels_from_field([SAMPLE], "story"))
    report = evaluate(sample_rec, relevance, k=10)
    assert report.queries == 338 and report.skipped == 0 and 100 <= report.candidates <= 200
    assert 0 < report.precision_at_10 <= report.precision_at_5 <= 1
    assert 0 < report.ndcg_at_10 <= 1 and 0 < report.mrr <= 1
    assert report.near_duplicates == 0.0  # the engine removes them
    assert report.recall_at_50 is not None and report.candidate_recall is not None
    assert report.recall_at_50 <= report.candidate_recall <= 1
    sampled = evaluate(sample_rec, relevance, k=5, queries=20, seed=1)
    assert sampled.queries == 20 and sampled.k == 5


@pytest.mark.usefixtures("fake_default_model")
def test_evaluate_command(tmp_path: Path) -> None:
    runner = CliRunner()
    index = str(tmp_path / "ix")
    assert runner.invoke(app, ["build-index", str(SAMPLE), "-i", index]).exit_code == 0
    result = runner.invoke(app, ["evaluate", str(SAMPLE), "-i", index, "--label", "story"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("338 queries")
    assert "nDCG@10" in result.stdout and "recall of candidates (" in result.stdout
    result = runner.invoke(
        app,
        ["evaluate", str(SAMPLE), "-i", index, "--label", "story", "--json", "--queries", "30"],
    )
    data = json.loads(result.stdout)
    assert data["queries"] == 30 and 0 < data["precision_at_5"] <= 1
    base = ["evaluate", str(SAMPLE), "-i", index, "--label", "story", "--json"]
    boosted = json.loads(
        runner.invoke(app, [*base, "--no-recency", "--category-boost", "0.5"]).stdout
    )
    off = json.loads(runner.invoke(app, [*base, "--no-recency", "--category-boost", "0"]).stdout)
    assert off["same_category"] < boosted["same_category"]  # the options reach the engine
    recency_only = json.loads(runner.invoke(app, [*base, "--category-boost", "0"]).stdout)
    assert recency_only["ndcg_at_10"] != off["ndcg_at_10"]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b\na-1001,a-1002\na-2016,a-2018\n")
    result = runner.invoke(app, ["evaluate", str(SAMPLE), "-i", index, "--label", str(pairs)])
    assert result.exit_code == 0 and result.stdout.startswith("4 queries")  # both ways


# -- by language ----------------------------------------------------------------------------------


def test_by_language_groups_the_queries() -> None:
    from recommender.quality.evaluate import UNKNOWN_LANGUAGE, ListScores, by_language

    def scores(p5: float) -> ListScores:
        return ListScores(p5, p5 / 2, p5, p5, None, 0.0, ())

    languages = ["en", "en", "az", UNKNOWN_LANGUAGE, "en"]
    found = by_language(
        languages,
        [scores(1.0), scores(0.6), scores(0.2), scores(0.0), scores(0.8)],
        [(1.0, 0.5)] * 5,
        [100, 120, 100, 100, 110],
        10,
    )
    assert list(found) == ["en", "az", UNKNOWN_LANGUAGE]  # most queries first
    assert found["en"].queries == 3 and found["en"].precision_at_5 == pytest.approx(0.8)
    assert found["en"].candidates == 110 and found["az"].precision_at_5 == pytest.approx(0.2)
    assert found["az"].by_language == {}
    # One known language (unknown aside): no breakdown.
    assert by_language(["en", UNKNOWN_LANGUAGE], [scores(1), scores(0)], [], [1, 1], 10) == {}


def test_evaluate_breaks_the_sample_down_by_language(sample_rec: Recommender) -> None:
    relevance = relevance_from_labels(labels_from_field([SAMPLE], "story"))
    report = evaluate(sample_rec, relevance, k=10)
    assert set(report.by_language) == {"en", "az", "ru", "tr"}
    assert [part.queries for part in report.by_language.values()] == [323, 5, 5, 5]
    assert sum(p.queries * p.precision_at_5 for p in report.by_language.values()) == (
        pytest.approx(report.queries * report.precision_at_5)
    )
    english = {q: rel for q, rel in relevance.items() if not q.startswith("a-40")}
    assert evaluate(sample_rec, english, k=10).by_language == {}


@pytest.mark.usefixtures("fake_default_model")
def test_evaluate_command_by_language(tmp_path: Path) -> None:
    runner = CliRunner()
    index = str(tmp_path / "ix")
    assert runner.invoke(app, ["build-index", str(SAMPLE), "-i", index]).exit_code == 0
    base = ["evaluate", str(SAMPLE), "-i", index, "--label", "story"]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "by the query's language" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [row[:2] for row in rows if row and row[0] in ("en", "az", "ru", "tr")] == [
        ["en", "323"],
        ["az", "5"],
        ["ru", "5"],
        ["tr", "5"],
    ]
    data = json.loads(runner.invoke(app, [*base, "--json"]).stdout)
    assert data["by_language"]["az"]["queries"] == 5
    assert 0 <= data["by_language"]["ru"]["precision_at_5"] <= 1
