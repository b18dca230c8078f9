"""Learning from the box's events: position bias, relevance from clicks, interleaving.

Readers click what they look at, and they look at the first places more: a click count says as
much about the place as about the article. Three estimates correct for it:

- **Position bias** (``estimate_position_bias``), from the exploration swaps: in a few views the
  box exchanges two adjacent places ``i`` and ``i + 1`` (``View.swapped``), chosen at random. The
  same articles then stand one place apart, so (the swap intervention of Joachims et al., 2017,
  on adjacent pairs, as in RandPair) the clicks a view at place ``i + 1`` over those at place
  ``i``, pooled over the article the ranking put at ``i`` (seen at ``i + 1`` in swapped views)
  and the one it put at ``i + 1`` (at ``i + 1`` in the other views), measure
  look(i + 1) / look(i); chained from place 0 (look 1), they give each place's relative chance
  of being looked at. A pair with fewer than ``MIN_SWAP_CLICKS`` clicks in its swapped views
  takes the ratio of a power law look(i) = (i + 1) ** -eta fitted to all the pairs' ratios
  (weighted by their clicks), so a few swapped views a pair still give a curve.
- **Relevance from clicks** (``click_labels``): an article ``d`` shown in the box of ``q`` gets
  the rate (sum over those views of clicked(d) / look(place of d)) / views, an estimate of the
  chance that a reader who looks at it clicks it (inverse propensity weighting). ``d`` counts as
  related to ``q`` when that rate is at least ``MIN_RATE`` from at least ``MIN_PAIR_CLICKS``
  clicks. These labels are what ``recommend tune --clicks`` tunes on, with the same split as
  labels by hand (``quality.tune``).
- **Interleaving** (``team_draft``, ``interleaving_preference``): a view may merge the lists of
  the ranking in force ("a") and one compared ("b") by team draft; each click is credited to
  the team that placed its article, a view goes to the team with more clicks (a tie with none
  or equal clicks), and the share of decided views won by "b" comes with a Wilson interval.

Each estimate refuses (``LabelsError``, naming what it found and what it needs) when the events
are too few to say anything.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import LabelsError
from ..events import Click, Event, View

#: Clicks in a pair's swapped views for its own look ratio (else the fitted power law's).
MIN_SWAP_CLICKS = 20
#: Clicks on the swapped places of swapped views, all pairs together, for any estimate.
MIN_BIAS_CLICKS = 30
#: The lowest relative look a place gets (bounds the weight of one click far down).
MIN_LOOK = 0.05
#: A pair (article, related) counts as related from this corrected click rate ...
MIN_RATE = 0.1
#: ... and this many clicks.
MIN_PAIR_CLICKS = 2
#: What tuning from clicks needs: clicks in all, and articles given a related one by them.
MIN_CLICKS = 50
MIN_QUERIES = 10
#: Interleaved views decided one way or the other, for a preference.
MIN_DECIDED = 10
#: The z of the 95% interval.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Seen:
    """A view and the places clicked in it (each place once)."""

    view: View
    clicked: frozenset[int]


@dataclass(frozen=True)
class Joined:
    """Views joined with their clicks, and the clicks that matched no view."""

    seen: tuple[Seen, ...]
    clicks: int
    stray_clicks: int  # no such view, or the place does not hold that article


def join(events: Iterable[Event]) -> Joined:
    """Each view with its clicks. A click joins its view by id when the view's place
    ``position`` holds the clicked article; repeated clicks on one place count once."""
    views: dict[str, View] = {}
    clicks: list[Click] = []
    for event in events:
        if isinstance(event, View):
            views.setdefault(event.view, event)
        else:
            clicks.append(event)
    clicked: dict[str, set[int]] = defaultdict(set)
    stray = 0
    for click in clicks:
        view = views.get(click.view)
        if view is None or view.shown[click.position : click.position + 1] != (click.article,):
            stray += 1
        else:
            clicked[click.view].add(click.position)
    seen = tuple(Seen(view, frozenset(clicked.get(view.view, ()))) for view in views.values())
    return Joined(seen, sum(len(places) for places in clicked.values()), stray)


@dataclass(frozen=True)
class PairLook:
    """The measured look(place + 1) / look(place), from the views that swapped the pair."""

    place: int
    swapped_views: int
    swapped_clicks: int  # clicks on the two places in those views
    ratio: float | None  # None: no click on one of the two places

    @property
    def trusted(self) -> bool:
        """Enough clicks for its own ratio to stand (else the fitted power law's does)."""
        return self.ratio is not None and self.swapped_clicks >= MIN_SWAP_CLICKS


@dataclass(frozen=True)
class PositionBias:
    """The relative chance of each place being looked at (place 0: 1)."""

    looks: tuple[float, ...]
    pairs: tuple[PairLook, ...]
    eta: float  # the fitted power law's exponent
    swapped_views: int

    def look(self, place: int) -> float:
        """Place ``place``'s look; past the last estimated place, the power law's."""
        if place < len(self.looks):
            return self.looks[place]
        last = len(self.looks) - 1
        return max(MIN_LOOK, self.looks[last] * math.pow((last + 1) / (place + 1), self.eta))


def estimate_position_bias(seen: Sequence[Seen], places: int = 10) -> PositionBias:
    """Position bias from the exploration swaps of ``seen`` (see the module docstring) for
    the first ``places`` places; ``LabelsError`` when the swapped views have too few clicks."""
    plain = [s for s in seen if s.view.teams is None]
    deepest = max((len(s.view.shown) for s in plain), default=0)
    places = max(2, min(places, deepest))
    pairs = [_pair_look(plain, i) for i in range(places - 1)]
    measured = [p for p in pairs if p.ratio is not None]
    swapped_clicks = sum(p.swapped_clicks for p in pairs)
    if swapped_clicks < MIN_BIAS_CLICKS or not measured:
        raise LabelsError(
            f"position bias needs at least {MIN_BIAS_CLICKS} clicks on the swapped places of "
            f"views with an exploration swap; found {swapped_clicks} in "
            f"{sum(p.swapped_views for p in pairs)} swapped views"
        )
    # Weighted least squares through 0 of log(ratio) = -eta * log((i + 2) / (i + 1)).
    top = sum(p.swapped_clicks * _step(p.place) * math.log(p.ratio or 1.0) for p in measured)
    bottom = sum(p.swapped_clicks * _step(p.place) ** 2 for p in measured)
    eta = max(0.0, -top / bottom)
    looks = [1.0]
    for pair in pairs:
        ratio = math.exp(-eta * _step(pair.place))
        if pair.trusted and pair.ratio is not None:
            ratio = pair.ratio
        looks.append(max(MIN_LOOK, looks[-1] * ratio))
    return PositionBias(
        looks=tuple(looks),
        pairs=tuple(pairs),
        eta=eta,
        swapped_views=sum(p.swapped_views for p in pairs),
    )


def _step(place: int) -> float:
    """log((place + 2) / (place + 1)): the power law's log ratio per unit of eta."""
    return math.log((place + 2) / (place + 1))


def _pair_look(plain: Sequence[Seen], i: int) -> PairLook:
    swapped = [s for s in plain if s.view.swapped == i]
    # The other views where places i and i + 1 hold what the ranking put there.
    control = [
        s for s in plain if len(s.view.shown) > i + 1 and s.view.swapped not in (i - 1, i, i + 1)
    ]
    ranked_i_below = sum((i + 1) in s.clicked for s in swapped)
    ranked_next_above = sum(i in s.clicked for s in swapped)
    clicks = ranked_i_below + ranked_next_above
    ratio = None
    if swapped and control and clicks:
        # Clicks a view at place i + 1 over those at place i, each summed over both articles
        # (the ranking's i and i + 1): look(i + 1) (r_i + r_i+1) / look(i) (r_i + r_i+1).
        below = ranked_i_below / len(swapped) + sum((i + 1) in s.clicked for s in control) / len(
            control
        )
        above = ranked_next_above / len(swapped) + sum(i in s.clicked for s in control) / len(
            control
        )
        if below > 0 and above > 0:
            ratio = below / above
    return PairLook(place=i, swapped_views=len(swapped), swapped_clicks=clicks, ratio=ratio)


@dataclass(frozen=True)
class ClickLabels:
    """Related articles by clicks, for ``quality.tune``, and what they came from."""

    relevance: dict[str, frozenset[str]]  # article -> the articles its readers' clicks relate
    views: int
    clicks: int
    stray_clicks: int
    pairs_shown: int  # (article, shown article) pairs with at least one view
    bias: PositionBias | None  # None: not corrected
    uncorrected_because: str | None  # why not, when it was asked for

    @property
    def queries(self) -> int:
        return len(self.relevance)


@dataclass(frozen=True)
class ClickRate:
    """What the views of one article's box say of one article shown in it."""

    views: int  # views that showed it
    clicks: int
    rate: float  # clicks over views, each click weighted by 1 / look(its place)


def click_rates(joined: Joined, bias: PositionBias | None) -> dict[tuple[str, str], ClickRate]:
    """(article, shown article) -> its corrected click rate (``bias`` None: not corrected)."""
    weighted: dict[tuple[str, str], float] = defaultdict(float)
    shown: dict[tuple[str, str], int] = defaultdict(int)
    clicked: dict[tuple[str, str], int] = defaultdict(int)
    for item in joined.seen:
        query = item.view.article
        for place, article in enumerate(item.view.shown):
            if article == query:
                continue
            pair = (query, article)
            shown[pair] += 1
            if place in item.clicked:
                clicked[pair] += 1
                weighted[pair] += 1.0 / (bias.look(place) if bias is not None else 1.0)
    return {
        pair: ClickRate(views, clicked[pair], weighted[pair] / views)
        for pair, views in shown.items()
    }


def click_labels(
    events: Iterable[Event] | Joined,
    *,
    correct: bool = True,
    min_rate: float = MIN_RATE,
    min_clicks: int = MIN_PAIR_CLICKS,
) -> ClickLabels:
    """Each article's related articles by its readers' clicks, corrected for position bias
    when ``correct`` and the exploration swaps allow it (see the module docstring).

    ``LabelsError`` when the events are too few to tune on: fewer than ``MIN_CLICKS`` clicks,
    or fewer than ``MIN_QUERIES`` articles given a related article."""
    joined = events if isinstance(events, Joined) else join(events)
    bias: PositionBias | None = None
    reason = None
    if correct:
        try:
            bias = estimate_position_bias(joined.seen)
        except LabelsError as exc:
            reason = str(exc)
    rates = click_rates(joined, bias)
    related: dict[str, set[str]] = defaultdict(set)
    for (query, article), rate in rates.items():
        if rate.clicks >= min_clicks and rate.rate >= min_rate:
            related[query].add(article)
    labels = ClickLabels(
        relevance={q: frozenset(ids) for q, ids in sorted(related.items())},
        views=len(joined.seen),
        clicks=joined.clicks,
        stray_clicks=joined.stray_clicks,
        pairs_shown=len(rates),
        bias=bias,
        uncorrected_because=reason,
    )
    if labels.clicks < MIN_CLICKS or labels.queries < MIN_QUERIES:
        raise LabelsError(
            f"too few events to tune on: {labels.views} views and {labels.clicks} clicks give "
            f"{labels.queries} articles a related article by clicks ({min_clicks} or more "
            f"clicks at a corrected rate of {min_rate:g} or more); tuning needs at least "
            f"{MIN_CLICKS} clicks and {MIN_QUERIES} such articles"
        )
    return labels


def team_draft(
    a: Sequence[str], b: Sequence[str], k: int, rng: random.Random
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Team-draft interleaving of the lists ``a`` and ``b``, as the box does it: the shown
    ids and, for each place, the team ("a" or "b") that put it there.

    Each round the team with fewer picks so far picks next (a coin flip when equal); a team
    picks its highest-ranked article not shown yet (when it has none left, the other picks);
    it stops at ``k`` places or when both lists are spent."""
    lists = {"a": list(a), "b": list(b)}
    cursor = {"a": 0, "b": 0}
    picks = {"a": 0, "b": 0}
    shown: list[str] = []
    teams: list[str] = []
    taken: set[str] = set()

    def next_of(team: str) -> str | None:
        items = lists[team]
        while cursor[team] < len(items) and items[cursor[team]] in taken:
            cursor[team] += 1
        return items[cursor[team]] if cursor[team] < len(items) else None

    while len(shown) < k:
        if picks["a"] != picks["b"]:
            team = "a" if picks["a"] < picks["b"] else "b"
        else:
            team = "a" if rng.random() < 0.5 else "b"
        item = next_of(team)
        if item is None:
            team = "b" if team == "a" else "a"
            item = next_of(team)
            if item is None:
                break
        shown.append(item)
        teams.append(team)
        taken.add(item)
        picks[team] += 1
    return tuple(shown), tuple(teams)


@dataclass(frozen=True)
class Preference:
    """Which of two interleaved rankings readers prefer."""

    ranking: str | None  # the views' ranking name, when asked for one
    views: int  # interleaved views
    wins_a: int  # views with more clicks on "a"'s articles
    wins_b: int
    ties: int  # no click, or as many on each
    share_b: float  # of the decided views, the share "b" won
    low: float  # its 95% Wilson interval
    high: float

    @property
    def verdict(self) -> str:
        if self.low > 0.5:
            return "b"
        if self.high < 0.5:
            return "a"
        return "neither yet"

    def line(self) -> str:
        """One line for a report."""
        name = f" ({self.ranking})" if self.ranking else ""
        said = {
            "a": "readers prefer a, the ranking in force",
            "b": "readers prefer b, the one compared",
            "neither yet": "no preference yet (the interval holds 50%)",
        }[self.verdict]
        return (
            f"interleaving{name}: b won {self.wins_b} and a {self.wins_a} of "
            f"{self.views} views ({self.ties} ties); b's share {self.share_b:.1%} "
            f"(95% CI {self.low:.1%} to {self.high:.1%}): {said}"
        )


def view_outcome(item: Seen) -> int:
    """+1 when "b"'s articles got more of the view's clicks, -1 when "a"'s did, else 0."""
    teams = item.view.teams or ()
    b = sum(teams[place] == "b" for place in item.clicked if place < len(teams))
    a = sum(teams[place] == "a" for place in item.clicked if place < len(teams))
    return (b > a) - (a > b)


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a share ``successes / trials``."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    half /= 1 + z * z / trials
    return max(0.0, centre - half), min(1.0, centre + half)


def interleaving_preference(
    events: Iterable[Event] | Joined, ranking: str | None = None
) -> Preference:
    """Readers' preference between the two rankings of the interleaved views (those of
    ``ranking``, by the view's ranking name, when given); ``LabelsError`` when fewer than
    ``MIN_DECIDED`` of them were decided by clicks."""
    joined = events if isinstance(events, Joined) else join(events)
    outcomes = [
        view_outcome(item)
        for item in joined.seen
        if item.view.teams is not None and (ranking is None or item.view.ranking == ranking)
    ]
    return preference_of(outcomes, ranking)


def preference_of(outcomes: Sequence[int], ranking: str | None = None) -> Preference:
    """The preference from each interleaved view's outcome (``view_outcome``: +1 "b",
    -1 "a", 0 a tie); ``LabelsError`` below ``MIN_DECIDED`` decided views."""
    wins_b = sum(1 for outcome in outcomes if outcome > 0)
    wins_a = sum(1 for outcome in outcomes if outcome < 0)
    decided = wins_a + wins_b
    if decided < MIN_DECIDED:
        name = f" of ranking {ranking!r}" if ranking else ""
        raise LabelsError(
            f"too few interleaved views{name} to compare: {len(outcomes)} views, {decided} "
            f"decided by clicks; a preference needs at least {MIN_DECIDED} decided views"
        )
    low, high = wilson(wins_b, decided)
    return Preference(
        ranking=ranking,
        views=len(outcomes),
        wins_a=wins_a,
        wins_b=wins_b,
        ties=len(outcomes) - decided,
        share_b=wins_b / decided,
        low=low,
        high=high,
    )
