"""recommend report: what readers saw and clicked, from the events store (storage/events.py).

Views and clicks, and click-through (clicks per view), by position, section, language,
ranking and day. A click is joined to its view by the view's id (the box makes one per view):
its section, language and ranking are its view's; a click whose view is not in the period
(``--since`` cut it off, or it was never kept) counts in the totals, by position and by day,
and under no section (``null``). A view id or a click (view, position) sent twice counts once
(``duplicates``). How many views were explored (two places swapped) and how many interleaved
two rankings is counted here, and the interleaved views of each ranking name say which of the
two rankings readers prefer (``clicks.preference_of``: a Wilson 95% interval); what the
explored views teach is ``recommend tune --clicks``'s part.

``position`` is 0-based, as in the events: 0 is the first place of the box.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from ..articles import quoted
from ..errors import InvalidQueryError, LabelsError
from ..events import Event, View, aware
from ..storage.events import Events
from .clicks import Seen, preference_of, view_outcome

#: Rows of a section, language or ranking at most, those with the most views: each name comes
#: from the box, so a stranger sending a new one with each view would make a row of each.
MAX_GROUPS = 100

#: The longest ``since`` read: an ISO-8601 time with microseconds and a zone is 32 characters.
MAX_SINCE = 64


def parse_since(value: str) -> datetime:
    """``--since`` and ``?since=``: a day (2026-12-01, from its midnight) or an ISO-8601 time;
    UTC unless it says otherwise. ``InvalidQueryError`` names the value (cut when long)."""
    try:
        if len(value) > MAX_SINCE:  # fromisoformat reads a fraction of 10,000 digits
            raise ValueError(value)
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidQueryError(
            f"since {quoted(value, 40)} is not a date (2026-12-01) or an ISO-8601 time"
        ) from None
    return aware(when)


@dataclass(frozen=True)
class Count:
    """Views and clicks of one group, and clicks per view (0 without views)."""

    key: str | int | None
    views: int
    clicks: int

    @property
    def click_through(self) -> float:
        return round(self.clicks / self.views, 6) if self.views else 0.0


@dataclass(frozen=True)
class Report:
    """What ``report_of`` found; ``as_json`` is the stable shape of ``--json`` and /report."""

    since: datetime | None
    views: int
    clicks: int
    explored: int  # views with two places swapped (data-explore)
    interleaved: int  # views interleaving two rankings (data-compare)
    clicks_without_view: int
    duplicates: int
    damaged: int  # records of the store that could not be read
    by_position: list[Count] = field(default_factory=list)
    by_section: list[Count] = field(default_factory=list)
    by_language: list[Count] = field(default_factory=list)
    by_ranking: list[Count] = field(default_factory=list)
    by_day: list[Count] = field(default_factory=list)
    # Rows past MAX_GROUPS left out of by_section, by_language, by_ranking (their views and
    # clicks are in the totals all the same).
    left_out: dict[str, int] = field(default_factory=dict)
    # Per ranking name with interleaved views: readers' preference, or why there is none yet.
    interleaving: list[Comparison] = field(default_factory=list)

    @property
    def click_through(self) -> float:
        return round(self.clicks / self.views, 6) if self.views else 0.0

    def as_json(self) -> dict[str, object]:
        groups = {
            "by_position": "position",
            "by_section": "section",
            "by_language": "language",
            "by_ranking": "ranking",
            "by_day": "day",
        }
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "views": self.views,
            "clicks": self.clicks,
            "click_through": self.click_through,
            "explored": self.explored,
            "interleaved": self.interleaved,
            "clicks_without_view": self.clicks_without_view,
            "duplicates": self.duplicates,
            "damaged": self.damaged,
            **{
                name: [
                    {
                        key: c.key,
                        "views": c.views,
                        "clicks": c.clicks,
                        "click_through": c.click_through,
                    }
                    for c in getattr(self, name)
                ]
                for name, key in groups.items()
            },
            "left_out": {
                name: self.left_out.get(name, 0)
                for name in ("by_section", "by_language", "by_ranking")
            },
            "interleaving": [c.as_json() for c in self.interleaving],
        }


@dataclass(frozen=True)
class Comparison:
    """The interleaved views of one ranking name: "a" (the ranking in force) against "b"
    (``data-compare``); ``line`` is the report's sentence."""

    ranking: str
    views: int
    wins_a: int
    wins_b: int
    ties: int
    share_b: float | None  # of the views decided by clicks, the share b won; its interval:
    low: float | None
    high: float | None
    verdict: str  # "a", "b", "neither yet", or "too few" (fewer decided views than needed)
    line: str

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def comparison(ranking: str, outcomes: list[int]) -> Comparison:
    """The ``Comparison`` of a ranking's interleaved views from their outcomes (+1 b, -1 a)."""
    wins_b, wins_a = outcomes.count(1), outcomes.count(-1)
    ties = len(outcomes) - wins_a - wins_b
    try:
        found = preference_of(outcomes, ranking)
    except LabelsError as exc:
        return Comparison(
            ranking, len(outcomes), wins_a, wins_b, ties, None, None, None, "too few", str(exc)
        )
    return Comparison(
        ranking,
        found.views,
        found.wins_a,
        found.wins_b,
        found.ties,
        round(found.share_b, 6),
        round(found.low, 6),
        round(found.high, 6),
        found.verdict,
        found.line(),
    )


def report_of(
    events: Iterable[Event], *, since: datetime | None = None, damaged: int = 0
) -> Report:
    """The report of ``events`` (those of the period: ``since`` is only recorded); ``damaged``
    adds to the records a store skipped (``Events.damaged``, read once they are all read).

    A view is tallied as it is read, and only what its clicks need of it is kept (its section,
    language and ranking, one tuple for each such combination): a million events take the
    memory of their view ids, not of every id they showed."""
    tallies: dict[str, dict[str | int | None, list[int]]] = {
        name: {} for name in ("position", "section", "language", "ranking", "day")
    }

    def tally(name: str, key: str | int | None, column: int) -> None:
        tallies[name].setdefault(key, [0, 0])[column] += 1

    Kind = tuple[str | None, str | None, str]
    views: dict[str, Kind] = {}
    kinds: dict[Kind, Kind] = {}
    clicks: dict[tuple[str, int], str] = {}  # (view, position): the click's day
    duplicates = explored = interleaved = 0
    compared: dict[str, View] = {}  # the interleaved views, by id
    for event in events:
        if isinstance(event, View):
            if event.view in views:
                duplicates += 1
                continue
            kind = (event.section, event.language, event.ranking)
            views[event.view] = kinds.setdefault(kind, kind)
            explored += event.swapped is not None
            if event.teams is not None:
                interleaved += 1
                compared[event.view] = event
            for position in range(len(event.shown)):
                tally("position", position, 0)
            tally("section", event.section, 0)
            tally("language", event.language, 0)
            tally("ranking", event.ranking, 0)
            tally("day", f"{event.time:%Y-%m-%d}", 0)
        elif (event.view, event.position) in clicks:
            duplicates += 1
        else:
            clicks[(event.view, event.position)] = f"{event.time:%Y-%m-%d}"

    without_view = 0
    for (view_id, position), day in clicks.items():
        seen = views.get(view_id)
        without_view += seen is None
        section, language, ranking = seen or (None, None, None)
        tally("position", position, 1)
        tally("section", section, 1)
        tally("language", language, 1)
        tally("ranking", ranking, 1)
        tally("day", day, 1)

    def counts(name: str) -> list[Count]:
        found = tallies[name]
        # Positions and days in order; the others by views, most first, then by name.
        if name in ("position", "day"):
            keys = sorted(found, key=lambda k: (k is None, k if k is not None else 0))
        else:
            keys = sorted(found, key=lambda k: (-found[k][0], k is None, str(k or "")))
            if len(keys) > MAX_GROUPS:
                left_out[f"by_{name}"] = len(keys) - MAX_GROUPS
                keys = keys[:MAX_GROUPS]
        return [Count(key, *found[key]) for key in keys]

    left_out: dict[str, int] = {}
    if isinstance(events, Events):  # its count is known only now that it has been read
        damaged += events.damaged

    places: dict[str, set[int]] = {}
    for view_id, position in clicks:
        if view_id in compared:
            places.setdefault(view_id, set()).add(position)
    outcomes: dict[str, list[int]] = {}
    for view_id, view in compared.items():
        joined = Seen(view, frozenset(places.get(view_id, ())))
        outcomes.setdefault(view.ranking, []).append(view_outcome(joined))
    interleaving = [comparison(name, found) for name, found in sorted(outcomes.items())]

    return Report(
        since=since,
        views=len(views),
        clicks=len(clicks),
        explored=explored,
        interleaved=interleaved,
        clicks_without_view=without_view,
        duplicates=duplicates,
        damaged=damaged,
        by_position=counts("position"),
        by_section=counts("section"),
        by_language=counts("language"),
        by_ranking=counts("ranking"),
        by_day=counts("day"),
        left_out=left_out,
        interleaving=interleaving[:MAX_GROUPS],
    )
