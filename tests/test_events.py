"""The box's events as the service receives them: parse_event checks each field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recommender.errors import InvalidQueryError
from recommender.events import Click, View, parse_event

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_view_and_a_click() -> None:
    view = parse_event(
        {
            "type": "view",
            "view": "v1",
            "article": "a-1",
            "shown": ["a-2", "a-3", "a-4"],
            "ranking": "default",
            "section": "world",
            "language": "az",
            "swapped": 1,
            "time": "2026-12-07T11:59:00Z",
        },
        now=NOW,
    )
    assert view == View(
        "v1",
        "a-1",
        ("a-2", "a-3", "a-4"),
        NOW - timedelta(minutes=1),
        "default",
        "world",
        "az",
        1,
        None,
    )
    click = parse_event(
        {
            "type": "click",
            "view": "v1",
            "article": "a-3",
            "position": 1,
            "time": int(NOW.timestamp() * 1000),
        },
        now=NOW,
    )
    assert click == Click("v1", "a-3", 1, NOW)


def test_interleaved_view_names_a_team_per_place() -> None:
    view = parse_event(
        {"type": "view", "view": "v", "article": "a", "shown": ["x", "y"], "teams": ["b", "a"]},
        now=NOW,
    )
    assert isinstance(view, View) and view.teams == ("b", "a") and view.time == NOW


def test_times_far_from_now_take_now() -> None:
    for time in ("2099-01-01T00:00:00+00:00", 0, 1e300, "1970-01-01"):
        event = parse_event(
            {"type": "click", "view": "v", "article": "a", "position": 0, "time": time}, now=NOW
        )
        assert event.time == NOW


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "JSON object"),
        ({"type": "seen", "view": "v"}, "'type'"),
        ({"type": "view", "view": "v", "article": "a", "shown": []}, "'shown'"),
        ({"type": "view", "view": "v", "article": "a", "shown": ["x"] * 51}, "'shown'"),
        ({"type": "view", "view": "v", "article": "a", "shown": ["x\x1b[2J"]}, "control"),
        ({"type": "view", "view": "v", "article": "a", "shown": ["x", 3]}, "'shown'"),
        (
            {"type": "view", "view": "v", "article": "a", "shown": ["x", "y"], "swapped": 1},
            "'swapped'",
        ),
        (
            {"type": "view", "view": "v", "article": "a", "shown": ["x", "y"], "swapped": True},
            "'swapped'",
        ),
        ({"type": "view", "view": "v", "article": "a", "shown": ["x"], "teams": ["c"]}, "'teams'"),
        ({"type": "view", "view": "v", "article": "a", "shown": ["x"], "teams": []}, "'teams'"),
        ({"type": "view", "view": "v" * 257, "article": "a", "shown": ["x"]}, "'view'"),
        ({"type": "view", "view": "v", "article": "a", "shown": ["x"], "section": 5}, "'section'"),
        ({"type": "click", "view": "v", "article": "a", "position": -1}, "'position'"),
        ({"type": "click", "view": "v", "article": "a", "position": 1.0}, "'position'"),
        ({"type": "click", "view": "v", "article": "a", "position": 0, "time": "soon"}, "'time'"),
        ({"type": "click", "view": "v", "article": "a", "position": 0, "time": [1]}, "'time'"),
        ({"type": "click", "article": "a", "position": 0}, "'view'"),
    ],
)
def test_bad_events_name_the_field(raw: object, field: str) -> None:
    with pytest.raises(InvalidQueryError, match=field):
        parse_event(raw, now=NOW)
