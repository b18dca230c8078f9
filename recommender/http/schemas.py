"""The request shapes, their ranking options derived from ``settings.ranking_options``, and
what a request's values become: the ranking overrides and the ``Filters`` of a query; and
the shapes of the answers, for the OpenAPI document.

Answers are JSON objects, a list under a name (``related``, ``articles``): fields are added
in later versions, never removed or renamed under the same path."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..read.retrieve import Filters
from ..results import Recommendation, UpdateReport
from ..settings import ranking_options, ranking_overrides


def _ranking_fields() -> dict[str, Any]:
    """Pydantic fields for the ranking options, each optional: left out, the index's value
    counts."""
    fields: dict[str, Any] = {}
    for option in ranking_options():
        # None means "not given" here; recency is turned off by no_recency instead.
        base: Any = {"integer": int, "number": float}.get(option.kind)
        if base is None:
            base = Literal[option.choices]
        fields[option.name] = (base | None, Field(None, description=option.help))
    return fields


_FILTER_FIELDS: dict[str, Any] = {
    "no_recency": (bool, Field(False, description="Turn recency off.")),
    "same_category": (bool, Field(False, description="Only articles in the query's category.")),
    "since": (str | None, Field(None, description="Only articles published on or after.")),
    "until": (str | None, Field(None, description="Only articles published on or before.")),
    "exclude": (list[str], Field([], description="Never return these ids (repeatable).")),
    "same_language": (
        bool,
        Field(
            False,
            description="Only articles in the query's language (not applied when it is unknown).",
        ),
    ),
}
#: A query string also carries what the client's page or tools add (``utm_source``,
#: ``fbclid``, jQuery's ``_`` cache-buster): names a route does not know are ignored, as
#: ``dependencies.Cached`` leaves them out of the ETag. A JSON body is written for this API
#: alone: a name it does not know is a mistake, refused.
_QUERY = ConfigDict(extra="ignore", allow_inf_nan=False)
_BODY = ConfigDict(extra="forbid", allow_inf_nan=False)

if TYPE_CHECKING:
    SimilarParams = BaseModel
    TextQuery = BaseModel
else:
    SimilarParams = create_model(
        "SimilarParams",
        __config__=_QUERY,
        k=(int, Field(10, ge=0, description="How many related articles.")),
        category=(
            list[str],
            Field([], description="Only articles in this category (repeatable)."),
        ),
        **_FILTER_FIELDS,
        **_ranking_fields(),
    )
    TextQuery = create_model(
        "TextQuery",
        __config__=_BODY,
        text=(
            str,
            Field(min_length=1, description="The draft: first line the title, then the body."),
        ),
        category=(str | None, Field(None, description="The draft's category.")),
        published_at=(
            str | None,
            Field(None, description="The draft's date, ISO-8601 (default: now)."),
        ),
        lang=(
            str | None,
            Field(None, description="The draft's language, e.g. az (default: detected)."),
        ),
        k=(int, Field(10, ge=0, description="How many related articles.")),
        categories=(
            list[str],
            Field([], description="Only articles in these categories."),
        ),
        **_FILTER_FIELDS,
        **_ranking_fields(),
    )


def query_ranking(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ranking options a request gave, as overrides of the index's ranking."""
    return ranking_overrides(values, no_recency=bool(values.get("no_recency")))


def query_filters(values: Mapping[str, Any], categories: list[str]) -> Filters:
    """The filters a request gave (``categories``: its ``category`` or ``categories``)."""
    return Filters(
        same_category=bool(values.get("same_category")),
        categories=categories or None,
        since=values.get("since"),
        until=values.get("until"),
        exclude=tuple(values.get("exclude") or ()),
        same_language=bool(values.get("same_language")),
    )


class _Related(BaseModel):
    k: int = Field(description="How many were asked for (the list may hold fewer).")
    version: str = Field(description="The index version the list comes from.")
    generation: int = Field(description="Updates committed to that version (its build is 1).")
    related: list[Recommendation] = Field(description="The related articles, best first.")


class RelatedToArticle(_Related):
    """The related list of an indexed article."""

    article: str = Field(description="The id asked about.")


class RelatedToText(_Related):
    """The related list of a draft."""


class FoundArticle(BaseModel):
    """An article found by title."""

    id: str
    title: str
    category: str | None
    published_at: str | None = Field(description="ISO 8601, in UTC.")
    url: str | None


class FoundArticles(BaseModel):
    """The articles found by title, newest first."""

    articles: list[FoundArticle]


class InvalidRecord(BaseModel):
    """A record of ``PUT /articles`` that was left out or refused, by its place in the array."""

    position: int
    error: str


if TYPE_CHECKING:
    WriteReport = BaseModel
else:
    WriteReport = create_model(
        "WriteReport",
        __doc__="What PUT /articles did: the update report, and the records left out.",
        **{
            f.name: (hint, Field(...) if f.name == "index" else f.default)
            for f in dataclasses.fields(UpdateReport)
            for hint in [get_type_hints(UpdateReport)[f.name]]
        },
        invalid=(list[InvalidRecord], Field(description="The records left out (skip_invalid).")),
    )


class RefusedEvent(BaseModel):
    """An event of ``POST /events`` that was refused, by its place in the batch."""

    index: int
    error: str


class EventsTaken(BaseModel):
    """What ``POST /events`` kept: how many (on disk), and each one refused."""

    accepted: int
    rejected: list[RefusedEvent]


class ReportRow(BaseModel):
    """Views, clicks and clicks per view of one position (0-based), section, language,
    ranking or day: the one of these keys that names the group is set."""

    position: int | None = None
    section: str | None = None
    language: str | None = None
    ranking: str | None = None
    day: str | None = None
    views: int
    clicks: int
    click_through: float


class ReportComparison(BaseModel):
    """Readers' preference between two interleaved rankings, the views of one ranking name."""

    ranking: str
    views: int
    wins_a: int
    wins_b: int
    ties: int
    share_b: float | None = Field(description="Of the views decided by clicks, b's share.")
    low: float | None = Field(description="Its 95% Wilson interval, low end.")
    high: float | None
    verdict: Literal["a", "b", "neither yet", "too few"]
    line: str


class ReportAnswer(BaseModel):
    """As ``recommend report --json`` (docs/events.md)."""

    since: str | None
    views: int
    clicks: int
    click_through: float
    explored: int = Field(description="Views with two places swapped (data-explore).")
    interleaved: int = Field(description="Views interleaving two rankings (data-compare).")
    clicks_without_view: int
    duplicates: int
    damaged: int
    by_position: list[ReportRow]
    by_section: list[ReportRow]
    by_language: list[ReportRow]
    by_ranking: list[ReportRow]
    by_day: list[ReportRow]
    left_out: dict[str, int] = Field(
        description="Rows past the first 100 (by views) left out of by_section, by_language "
        "and by_ranking."
    )
    interleaving: list[ReportComparison] = Field(
        description="Per ranking name with interleaved views (data-compare): which ranking "
        "readers prefer, a (in force) or b (compared)."
    )


class OverrideItem(BaseModel):
    """One editorial override (``results.Override``)."""

    kind: Literal["pin", "block", "hide"]
    article_id: str
    related_id: str | None
    position: int | None = Field(description="A pin's place, 1 for the first; else null.")


class OverrideList(BaseModel):
    """The editorial overrides, by article: pins (by position), blocks, hidden."""

    overrides: list[OverrideItem]


class OverrideWrite(OverrideItem):
    """What a write of ``/overrides/...`` did: the override set, or taken back (``undone``)."""

    undone: bool


class Health(BaseModel):
    """The process is alive."""

    status: Literal["alive"]


class Ready(BaseModel):
    """The index is open, with this many live articles."""

    status: Literal["ready"]
    articles: int


class QueryProblem(BaseModel):
    """One parameter of a ``validation`` problem."""

    parameter: str
    in_: str = Field(alias="in")
    message: str


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (``errors.PROBLEMS``)."""

    model_config = ConfigDict(title="Problem", extra="allow")

    type: str = Field(description="The kind of error, a URI to compare: never changes.")
    title: str = Field(description="The kind of error, in words.")
    status: int
    detail: str = Field(description="What is wrong with this request.")
    error: str = Field(description="The same as detail, for older clients.")
    problems: list[QueryProblem] | None = Field(None, description="validation: each parameter.")
    invalid: list[InvalidRecord] | None = Field(None, description="invalid-articles: each one.")
