"""Learning from clicks (quality/clicks.py): the estimators on synthetic events of known truth."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SAMPLE, sample_records
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recommender import Recommender
from recommender.cli import app
from recommender.errors import LabelsError
from recommender.events import Click, Event, View
from recommender.quality.clicks import (
    MIN_DECIDED,
    Joined,
    click_labels,
    click_rates,
    estimate_position_bias,
    interleaving_preference,
    join,
    preference_of,
    team_draft,
)
from recommender.storage.events import append_events, read_events

START = datetime(2026, 10, 1, tzinfo=UTC)


def looks_power(places: int, eta: float = 1.0) -> list[float]:
    return [(i + 1) ** -eta for i in range(places)]


def simulate(
    shown_of: dict[str, list[str]],
    relevance: dict[tuple[str, str], float],
    looks: list[float],
    views: int,
    *,
    swap_share: float = 0.0,
    seed: int = 0,
) -> list[Event]:
    """Readers: view a random article's box, look at place i with ``looks[i]``, click a
    looked-at article with its ``relevance`` (query, article) chance; some views swap two
    adjacent places at random."""
    rng = random.Random(seed)
    queries = sorted(shown_of)
    events: list[Event] = []
    for n in range(views):
        query = rng.choice(queries)
        shown = list(shown_of[query])
        swapped = None
        if rng.random() < swap_share:
            swapped = rng.randrange(len(shown) - 1)
            shown[swapped], shown[swapped + 1] = shown[swapped + 1], shown[swapped]
        time = START + timedelta(seconds=n)
        events.append(View(f"v{n}", query, tuple(shown), time, swapped=swapped))
        for place, article in enumerate(shown):
            if rng.random() < looks[place] and rng.random() < relevance.get((query, article), 0):
                events.append(Click(f"v{n}", article, place, time))
    return events


def test_join_drops_clicks_that_match_no_view() -> None:
    view = View("v1", "q", ("a", "b"), START)
    events: list[Event] = [
        view,
        Click("v1", "a", 0, START),
        Click("v1", "a", 0, START),  # twice on one place: once
        Click("v1", "a", 1, START),  # place 1 holds b
        Click("v1", "b", 7, START),  # no place 7
        Click("v9", "b", 1, START),  # no such view
    ]
    joined = join(events)
    assert joined.clicks == 1
    assert joined.stray_clicks == 3
    assert joined.seen[0].clicked == frozenset({0})


def test_swaps_recover_a_known_look_curve() -> None:
    rng = random.Random(1)
    shown_of = {f"q{i}": [f"q{i}-{j}" for j in range(10)] for i in range(40)}
    relevance = {(q, d): rng.uniform(0.2, 0.9) for q, ids in shown_of.items() for d in ids}
    truth = looks_power(10, eta=1.0)
    events = simulate(shown_of, relevance, truth, 60_000, swap_share=0.5, seed=2)
    bias = estimate_position_bias(join(events).seen)
    assert len(bias.looks) == 10
    for place, look in enumerate(truth):
        assert bias.looks[place] == pytest.approx(look, rel=0.2, abs=0.02), place
    assert bias.eta == pytest.approx(1.0, abs=0.15)


def test_position_bias_refuses_without_swaps() -> None:
    shown_of = {"q": ["a", "b", "c"]}
    events = simulate(shown_of, {("q", "a"): 0.5, ("q", "b"): 0.5}, [1, 0.5, 0.3], 500)
    with pytest.raises(LabelsError, match=r"swapped places .* found 0 in 0 swapped views"):
        estimate_position_bias(join(events).seen)


def test_corrected_rates_put_the_better_article_first_despite_its_place() -> None:
    # "better" is clicked more by those who look, but it always stands low in the box.
    shown_of = {f"q{i}": ["worse", "x1", "x2", "x3", "better"] for i in range(3)}
    relevance = {}
    for q in shown_of:
        relevance |= {(q, "worse"): 0.3, (q, "better"): 0.6, (q, "x1"): 0.2, (q, "x2"): 0.2}
        relevance |= {(q, "x3"): 0.2}
    looks = looks_power(5, eta=1.2)
    events = simulate(shown_of, relevance, looks, 40_000, swap_share=0.3, seed=3)
    joined = join(events)
    plain = click_rates(joined, None)
    corrected = click_rates(joined, estimate_position_bias(joined.seen))
    for q in shown_of:
        assert plain[(q, "worse")].rate > plain[(q, "better")].rate  # the bias, uncorrected
        assert corrected[(q, "better")].rate > corrected[(q, "worse")].rate
        assert corrected[(q, "better")].rate == pytest.approx(0.6, rel=0.2)


def test_click_labels_keep_clicked_related_pairs() -> None:
    shown_of = {f"q{i}": [f"r{i}", f"n{i}", f"s{i}"] for i in range(20)}
    relevance = {(f"q{i}", f"r{i}"): 0.7 for i in range(20)}
    relevance |= {(f"q{i}", f"s{i}"): 0.7 for i in range(20)}
    relevance |= {(f"q{i}", f"n{i}"): 0.01 for i in range(20)}
    events = simulate(shown_of, relevance, [1.0, 0.6, 0.4], 4000, swap_share=0.2, seed=4)
    labels = click_labels(events)
    assert labels.bias is not None
    assert labels.queries == 20
    for i in range(20):
        assert labels.relevance[f"q{i}"] == {f"r{i}", f"s{i}"}
    uncorrected = click_labels(events, correct=False)
    assert uncorrected.bias is None and uncorrected.uncorrected_because is None


def test_click_labels_say_why_they_are_uncorrected() -> None:
    shown_of = {f"q{i}": [f"r{i}", f"n{i}"] for i in range(20)}
    relevance = {(f"q{i}", f"r{i}"): 0.8 for i in range(20)}
    events = simulate(shown_of, relevance, [1.0, 0.5], 2000, seed=5)
    labels = click_labels(events)
    assert labels.bias is None
    assert labels.uncorrected_because is not None
    assert "exploration swap" in labels.uncorrected_because


def test_click_labels_refuse_too_few_events() -> None:
    shown_of = {f"q{i}": [f"r{i}", f"n{i}"] for i in range(3)}
    relevance = {(f"q{i}", f"r{i}"): 0.9 for i in range(3)}
    events = simulate(shown_of, relevance, [1.0, 0.5], 60, seed=6)
    with pytest.raises(LabelsError, match=r"too few events to tune on: 60 views and \d+ clicks"):
        click_labels(events)
    with pytest.raises(LabelsError, match="0 views and 0 clicks"):
        click_labels([])


ids = st.lists(st.sampled_from([f"a{i}" for i in range(12)]), min_size=0, max_size=12, unique=True)


@settings(max_examples=300, deadline=None)
@given(a=ids, b=ids, k=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_team_draft_merges_without_duplicates_and_honours_each_list(
    a: list[str], b: list[str], k: int, seed: int
) -> None:
    shown, teams = team_draft(a, b, k, random.Random(seed))
    assert len(shown) == len(teams) == min(k, len(set(a) | set(b)))
    assert len(set(shown)) == len(shown)
    lists = {"a": a, "b": b}
    for place, (item, team) in enumerate(zip(shown, teams, strict=True)):
        ranked = lists[team]
        assert item in ranked
        # The team picked its best article not shown yet.
        assert set(ranked[: ranked.index(item)]) <= set(shown[:place])


@settings(max_examples=200, deadline=None)
@given(
    items=st.permutations([f"a{i}" for i in range(10)]),
    other=st.permutations([f"a{i}" for i in range(10)]),
    k=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_team_draft_keeps_teams_balanced(
    items: list[str], other: list[str], k: int, seed: int
) -> None:
    _, teams = team_draft(items, other, k, random.Random(seed))
    for place in range(1, len(teams) + 1):
        assert abs(teams[:place].count("a") - teams[:place].count("b")) <= 1


def test_team_draft_flips_a_coin_for_the_first_pick() -> None:
    firsts = {team_draft(["x"], ["y"], 1, random.Random(seed))[1][0] for seed in range(40)}
    assert firsts == {"a", "b"}


def interleaved(b_wins: float, views: int, rng: random.Random) -> list[Event]:
    """Interleaved views where a decided view goes to "b" with chance ``b_wins``."""
    events: list[Event] = []
    for n in range(views):
        shown, teams = team_draft(["x1", "x2", "x3"], ["y1", "y2", "y3"], 4, rng)
        events.append(View(f"v{n}", "q", shown, START, ranking="trial", teams=teams))
        if rng.random() < 0.5:  # half the views get no click: ties
            continue
        team = "b" if rng.random() < b_wins else "a"
        place = teams.index(team)
        events.append(Click(f"v{n}", shown[place], place, START))
    return events


def test_preference_interval_covers_the_truth() -> None:
    rng = random.Random(7)
    covered = 0
    runs = 200
    for _ in range(runs):
        preference = interleaving_preference(interleaved(0.6, 300, rng))
        covered += preference.low <= 0.6 <= preference.high
    assert covered / runs >= 0.9  # a 95% interval, up to the runs' own noise


def test_preference_names_the_winner() -> None:
    preference = interleaving_preference(interleaved(0.8, 400, random.Random(8)), "trial")
    assert preference.verdict == "b"
    assert preference.wins_b > preference.wins_a
    assert preference.views == 400
    assert preference.wins_a + preference.wins_b + preference.ties == 400
    assert "interleaving (trial)" in preference.line()
    assert "readers prefer b, the one compared" in preference.line()
    other = interleaving_preference(interleaved(0.2, 400, random.Random(9)))
    assert other.verdict == "a"


def test_preference_refuses_too_few_decided_views() -> None:
    events = interleaved(0.5, 8, random.Random(10))
    with pytest.raises(LabelsError, match=rf"8 views, \d+ decided .* at least {MIN_DECIDED}"):
        interleaving_preference(events)
    with pytest.raises(LabelsError, match="of ranking 'other'"):
        interleaving_preference(interleaved(0.5, 100, random.Random(11)), "other")


def test_joined_events_are_taken_as_they_are() -> None:
    events = interleaved(0.7, 100, random.Random(12))
    joined = join(events)
    assert isinstance(joined, Joined)
    assert interleaving_preference(joined) == interleaving_preference(events)


# recommend tune --clicks, end to end on the sample, with events written through the store.


def write_reader_events(index: Path, views_per_article: int, seed: int = 0) -> dict[str, str]:
    """Readers of each sample article see its box (the index's lists of 10), look at place i
    with 1 / (i + 1), click an article of the same story with 0.6, any other with 0.02; a
    tenth of the views swap two adjacent places. Returns the story of each article."""
    story = {str(r["id"]): str(r["story"]) for r in sample_records()}
    rng = random.Random(seed)
    events: list[Event] = []
    with Recommender.open(index) as rec:
        boxes = {q: [item.id for item in rec.similar(q, k=10)] for q in sorted(story)}
        published = {q: rec.get(q).published_at or START for q in boxes}
    for query, box in boxes.items():
        for n in range(views_per_article):
            shown = list(box)
            swapped = None
            if rng.random() < 0.1:
                swapped = rng.randrange(len(shown) - 1)
                shown[swapped], shown[swapped + 1] = shown[swapped + 1], shown[swapped]
            view = f"{query}-{n}"
            time = published[query] + timedelta(minutes=n)
            events.append(View(view, query, tuple(shown), time, swapped=swapped))
            for place, article in enumerate(shown):
                chance = 0.6 if story[article] == story[query] else 0.02
                if rng.random() < 1 / (place + 1) and rng.random() < chance:
                    events.append(Click(view, article, place, time))
    append_events(index, events)
    return story


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_tune_from_clicks_end_to_end(sample_index: Path) -> None:
    story = write_reader_events(sample_index, views_per_article=30)
    base = ["tune", "--clicks", "--index", str(sample_index), "--dry-run", "--queries", "12"]
    code, out, err = run_cli(*base)
    assert code == 0, err
    lines = out.splitlines()
    views, clicks = (int(n) for n in re.findall(r"^(\d+) views, (\d+) clicks", lines[0])[0])
    assert views == 30 * len(story)
    assert clicks > views / 10
    assert lines[1].startswith("position bias from ")
    looks = [float(x) for x in lines[1].split("looks by place: ")[1].split()]
    assert looks[0] == 1.0 and looks[1] == pytest.approx(0.5, abs=0.15)
    assert "held-out queries, split by time: tuned on queries published up to 2026-" in lines[2]
    assert lines[-1].startswith("not stored (--dry-run); held-out nDCG@10 ")

    code, out, err = run_cli(*base, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["clicks"]["views"] == views and report["clicks"]["bias"]["looks"][0] == 1.0
    assert report["split"] == "time" and report["stored"] is False
    # The clicks' labels are the stories, nearly: a reader clicks outside it 1 time in 50.
    labels = click_labels(read_events(sample_index))
    pairs = [(q, r) for q, related in labels.relevance.items() for r in related]
    assert len(pairs) > len(story)
    assert sum(story[q] == story[r] for q, r in pairs) / len(pairs) >= 0.95


def test_tune_from_clicks_stores_what_wins(sample_index: Path) -> None:
    write_reader_events(sample_index, views_per_article=30, seed=1)
    code, out, err = run_cli("tune", "--clicks", "-i", str(sample_index), "--queries", "12")
    assert code == 0, err
    verdict = out.splitlines()[-1]
    assert verdict.startswith((f"stored in {sample_index}", "kept the old settings"))


def test_tune_from_clicks_refuses_too_few_events(sample_index: Path) -> None:
    code, out, err = run_cli("tune", "--clicks", "-i", str(sample_index))
    assert code == 1 and out == ""
    assert err.startswith("error: too few events to tune on: 0 views and 0 clicks")
    assert "tuning needs at least 50 clicks and 10 such articles" in err
    assert len(err.strip().splitlines()) == 1
    write_reader_events(sample_index, views_per_article=1)
    code, out, err = run_cli("tune", "--clicks", "-i", str(sample_index))
    assert code == 1 and err.startswith("error: too few events to tune on: 338 views and ")


def test_tune_takes_labels_or_clicks(sample_index: Path) -> None:
    code, _, err = run_cli("tune", "--clicks", str(SAMPLE), "--label", "story")
    assert code == 2 and "give ARTICLES and --label, or --clicks (not both)" in err
    for args in (["--label", "story"], [str(SAMPLE)], []):
        code, _, err = run_cli("tune", "-i", str(sample_index), *args)
        assert code == 2 and "give ARTICLES and --label, or --clicks" in err
        assert "not both" not in err
    code, _, err = run_cli("tune", "--clicks", "-i", str(sample_index / "none"))
    assert code == 1 and err.startswith("error: no index at")


def test_preference_of_outcomes_counts_and_interval() -> None:
    preference = preference_of([1] * 30 + [-1] * 10 + [0] * 5)
    assert (preference.wins_b, preference.wins_a, preference.ties) == (30, 10, 5)
    assert preference.share_b == 0.75
    # The Wilson interval of 30 / 40 at 95%, worked by hand.
    assert preference.low == pytest.approx(0.598, abs=0.002)
    assert preference.high == pytest.approx(0.858, abs=0.002)
    assert preference.verdict == "b"
    assert preference_of([1] * 6 + [-1] * 5).verdict == "neither yet"
