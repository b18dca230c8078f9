"""What readers did with the box: a view (the ids shown, in order) and a click (one of them).

The box sends these as JSON objects (``parse_event`` checks one); the service keeps them, and
``recommend report`` and ``recommend tune --clicks`` read them back. No field holds anything
about the reader: ``view`` is a random id the box makes per view, to join a click to its view.

A view may carry how it was made, for what the clicks can teach:
- ``swapped``: exploration; places ``swapped`` and ``swapped + 1`` (0-based) were exchanged
  in this view, which lets position bias be estimated (how much each place is looked at);
- ``teams``: a view interleaving two rankings ("a": the one in force, "b": the one compared);
  ``teams[i]`` names the ranking that put ``shown[i]`` there (team-draft interleaving).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recommender.errors import InvalidQueryError

#: Bounds on one event: longer ids, longer lists or stranger times are refused, not cut.
MAX_ID = 256
MAX_SHOWN = 50
MAX_NAME = 64
#: An article's id is the index's: longer (a URL) than a view's, which the box makes.
MAX_ARTICLE_ID = 1024
#: What no article id holds (``articles._ID_FORBIDDEN``, and lone surrogates).
_NOT_IN_IDS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class View:
    view: str
    article: str
    shown: tuple[str, ...]
    time: datetime
    ranking: str = "default"
    section: str | None = None
    language: str | None = None
    swapped: int | None = None
    teams: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Click:
    view: str
    article: str  # the related article clicked
    position: int  # its 0-based place in the view's ``shown``
    time: datetime


Event = View | Click


def parse_event(raw: Any, *, now: datetime | None = None) -> Event:
    """One event from its JSON object; ``InvalidQueryError`` names the field at fault.

    Times come as ISO-8601 or as milliseconds since the epoch (the box sends ``Date.now()``);
    without one, or one more than a day from ``now``, the event takes ``now`` (a reader's clock
    is not to be trusted, and a stored time in the future would skew every report).
    """
    if not isinstance(raw, dict):
        raise InvalidQueryError("an event must be a JSON object")
    now = now or datetime.now(UTC)
    kind = raw.get("type")
    time = _time(raw.get("time"), now)
    view = _text(raw, "view", MAX_ID)
    if kind == "view":
        shown = raw.get("shown")
        if not isinstance(shown, list) or not shown or len(shown) > MAX_SHOWN:
            raise InvalidQueryError(f"'shown' must be a list of 1 to {MAX_SHOWN} article ids")
        ids = tuple(_id(item, "shown") for item in shown)
        swapped: Any = raw.get("swapped")
        if swapped is not None and not (is_whole(swapped) and 0 <= swapped < len(ids) - 1):
            raise InvalidQueryError("'swapped' must be a place in 'shown' other than the last")
        teams = raw.get("teams")
        if teams is not None:
            if not isinstance(teams, list) or len(teams) != len(ids):
                raise InvalidQueryError("'teams' must name a ranking for each id in 'shown'")
            if any(team not in ("a", "b") for team in teams):
                raise InvalidQueryError("'teams' may hold only 'a' and 'b'")
            teams = tuple(teams)
        return View(
            view=view,
            article=_id(raw.get("article"), "article"),
            shown=ids,
            time=time,
            ranking=_text(raw, "ranking", MAX_NAME, default="default", spaces=True),
            section=_optional(raw, "section"),
            language=_optional(raw, "language"),
            swapped=swapped,
            teams=teams,
        )
    if kind == "click":
        position: Any = raw.get("position")
        if not is_whole(position) or not 0 <= position < MAX_SHOWN:
            raise InvalidQueryError(f"'position' must be a whole number from 0 to {MAX_SHOWN - 1}")
        return Click(
            view=view, article=_id(raw.get("article"), "article"), position=position, time=time
        )
    raise InvalidQueryError("'type' must be 'view' or 'click'")


def is_whole(value: Any) -> bool:
    """An int that is not a bool (JSON's true is not a place)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _id(value: Any, name: str) -> str:
    """An article id, as the index takes one (``articles.py``: any text but control characters
    and lone surrogates; a no-break space, a zero-width joiner are ids' characters too), of at
    most ``MAX_ARTICLE_ID``: a view showing an id the index holds is never refused."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ARTICLE_ID:
        raise InvalidQueryError(
            f"'{name}' must hold article ids of 1 to {MAX_ARTICLE_ID} characters"
        )
    if _NOT_IN_IDS.search(value):
        raise InvalidQueryError(f"'{name}' holds an id with control characters")
    return value


def _text(
    raw: dict[str, Any], name: str, limit: int, default: str | None = None, spaces: bool = False
) -> str:
    value = raw.get(name, default)
    if spaces and isinstance(value, str):  # a name: "World\u00a0News" is "World News"
        value = " ".join(value.split())
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise InvalidQueryError(f"'{name}' must be printable text of 1 to {limit} characters")
    return value


def _optional(raw: dict[str, Any], name: str) -> str | None:
    return None if raw.get(name) is None else _text(raw, name, MAX_NAME, spaces=True)


def aware(when: datetime) -> datetime:
    """``when`` with a zone: a naive time is read as UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _time(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidQueryError("'time' must be ISO-8601 or milliseconds since 1970") from None
        when = aware(when)
    elif is_whole(value) or (isinstance(value, float) and math.isfinite(value)):
        try:
            when = datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return now
    else:
        raise InvalidQueryError("'time' must be ISO-8601 or milliseconds since 1970")
    return when if abs((when - now).total_seconds()) <= 86_400 else now
