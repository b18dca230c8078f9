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


def test_an_id_the_index_holds_is_never_refused() -> None:
    """The index takes any id but control characters and lone surrogates, of any length; the
    events took only printable ids of 256 characters: a view that showed an article whose id
    holds a no-break space, a zero-width joiner or a soft hyphen, or is a URL of 300
    characters, was refused whole, and the box never hears of it."""
    ids = ["a\u00a0b", "emoji\u200d1", "soft\u00adhyphen", "https://news.example/" + "x" * 300]
    for article_id in ids:
        raw = {"type": "view", "view": "v", "article": article_id, "shown": [article_id, "b"]}
        event = parse_event(raw, now=NOW)
        assert event.article == article_id and event.shown[0] == article_id  # type: ignore[union-attr]
        click = {"type": "click", "view": "v", "article": article_id, "position": 0}
        assert parse_event(click, now=NOW).article == article_id
    for refused in ("x\x1b[2J", "\ud800", "a\u2028b", " ", "x" * 1025):
        with pytest.raises(InvalidQueryError, match="'shown'"):
            parse_event({"type": "view", "view": "v", "article": "a", "shown": [refused]}, now=NOW)


def test_names_take_any_space_as_one() -> None:
    """A section from a CMS with a no-break space (`Dünya&nbsp;xəbərləri`) is not printable
    to Python, so the whole view was refused; spaces of any kind in a section, language or
    ranking are now one space, and an escape is still refused."""
    raw = {
        "type": "view",
        "view": "v",
        "article": "a",
        "shown": ["b"],
        "section": " Dünya\u00a0xəbərləri ",
        "ranking": "fresh\u2003one",
    }
    event = parse_event(raw, now=NOW)
    assert (event.section, event.ranking) == ("Dünya xəbərləri", "fresh one")  # type: ignore[union-attr]
    with pytest.raises(InvalidQueryError, match="'section'"):
        parse_event({**raw, "section": "red\x1b[31m"}, now=NOW)
    with pytest.raises(InvalidQueryError, match="'section'"):
        parse_event({**raw, "section": "\u00a0"}, now=NOW)
