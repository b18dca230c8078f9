"""Related lists: of an indexed article (``GET /articles/{id}/similar``) and of a draft
(``POST /similar``), each an object holding the list under ``related`` (``schemas``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...engine import Recommender
from ...results import Recommendation
from ..dependencies import ArticleId, Index, Options, Reply, check_k
from ..schemas import (
    RelatedToArticle,
    RelatedToText,
    SimilarParams,
    TextQuery,
    query_filters,
    query_ranking,
)
from ..threads import on_read_threads

router = APIRouter()


@router.get(
    "/articles/{article_id:path}/similar",
    summary="Related articles of an indexed article",
    operation_id="similar",
    responses={200: {"model": RelatedToArticle}},
)
@on_read_threads
def similar(
    article_id: ArticleId,
    request: Request,
    params: Annotated[SimilarParams, Query()],
    index: Index,
    options: Options,
    reply: Reply,
) -> Response:
    """The k articles most related to `article_id`, best first, with the score's parts.

    Every ranking option left out takes the index's stored setting.
    """
    values = params.model_dump()
    check_k(values["k"], options)
    rec = index.open()
    filters = query_filters(values, values["category"])
    ranking = query_ranking(values)

    def related() -> dict[str, Any]:
        found = rec.similar(article_id, values["k"], filters=filters, **ranking)
        return {"article": article_id, **_envelope(rec, values["k"], found)}

    return reply(related)


@router.post(
    "/similar",
    summary="Related articles of a draft (a text not in the index)",
    operation_id="similarToText",
    responses={200: {"model": RelatedToText}},
)
@on_read_threads
def similar_to_text(
    request: Request, query: TextQuery, index: Index, options: Options, reply: Reply
) -> Response:
    """The indexed articles most related to a text: its first line is the title."""
    values = query.model_dump()
    check_k(values["k"], options)
    rec = index.open()
    filters = query_filters(values, values["categories"])
    ranking = query_ranking(values)

    def related() -> dict[str, Any]:
        found = rec.similar_to_text(
            values["text"],
            values["k"],
            category=values["category"],
            published_at=values["published_at"],
            lang=values["lang"],
            filters=filters,
            **ranking,
        )
        return _envelope(rec, values["k"], found)

    return reply(related)


def _envelope(rec: Recommender, k: int, found: list[Recommendation]) -> dict[str, Any]:
    """What both lists answer besides the query: ``k``, the index version and generation
    the list comes from, and the list under ``related``."""
    snapshot = rec.snapshot  # as the ETag reads it (``IndexState.tag``): no file read
    return {
        "k": k,
        "version": snapshot.version.name,
        "generation": snapshot.generation,
        "related": [asdict(item) for item in found],
    }
