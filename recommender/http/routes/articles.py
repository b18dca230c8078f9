"""The articles: title search (``GET /articles``), one article (``GET /articles/{id}``), and
the writes (``PUT /articles``, ``DELETE /articles/{id}``), which need the token."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from ...articles import Article, parse_article
from ...errors import InvalidArticleError
from ...results import UpdateReport
from ..dependencies import (
    ArticleId,
    Index,
    Options,
    Reply,
    TitleSearch,
    WorkThreads,
    authorize,
    write_wait,
)
from ..errors import ApiError, json_body_problem
from ..schemas import FoundArticles, WriteReport
from ..threads import on_read_threads

router = APIRouter()

WaitQuery = Annotated[
    float | None,
    Query(description="Seconds to wait for another writer (default: the server's)."),
]


def article_json(article: Article) -> dict[str, Any]:
    """An article as JSON: its fields, metadata as an object."""
    data = {f.name: getattr(article, f.name) for f in dataclasses.fields(article)}
    data["metadata"] = dict(article.metadata)
    return data


@router.get(
    "/articles",
    summary="Search articles by title",
    operation_id="searchArticles",
    responses={200: {"model": FoundArticles}},
)
@on_read_threads
def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words of the title")],
    index: Index,
    titles: TitleSearch,
    reply: Reply,
    limit: Annotated[int, Query(ge=1, le=100, description="How many to list")] = 20,
) -> Response:
    """Articles whose title (or id) holds every word of `q`, newest first."""
    rec = index.open()
    words = q.casefold().split()
    if not words:
        raise ApiError("invalid-query", "query parameter 'q' holds no words")

    def found() -> dict[str, Any]:
        found = [
            {
                "id": a.id,
                "title": a.title,
                "category": a.category,
                "published_at": a.published_at,
                "url": a.url,
            }
            for a in titles.search(rec, index.tag(), words, limit)
        ]
        return {"articles": found}

    return reply(found)


@router.get(
    "/articles/{article_id:path}",
    summary="One stored article",
    operation_id="getArticle",
    responses={200: {"model": Article}},
)
@on_read_threads
def get_article(article_id: ArticleId, request: Request, index: Index, reply: Reply) -> Response:
    """The stored article: its fields, metadata and cleaned body."""
    rec = index.open()
    return reply(lambda: article_json(rec.get(article_id)))


@router.put(
    "/articles",
    summary="Add or replace a batch of articles (needs the token)",
    operation_id="putArticles",
    responses={200: {"model": WriteReport}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "title"],
                            "additionalProperties": True,
                        },
                    }
                }
            },
        }
    },
)
async def put_articles(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    wait: WaitQuery = None,
    skip_invalid: Annotated[
        bool, Query(description="Leave out invalid records instead of failing.")
    ] = False,
) -> Response:
    """As `recommend add`: new ids are added, known ones replaced; only changed text is
    embedded again. Every record is validated first; with any invalid (and no
    skip_invalid) nothing is written and each is named by its position."""
    authorize(request, options)
    seconds = write_wait(wait, options)
    body = await request.body()
    try:
        records = json.loads(body)
    except (RecursionError, ValueError) as exc:
        raise ApiError(
            "invalid-json", json_body_problem(exc) or "the request body is not JSON"
        ) from None
    if not isinstance(records, list):
        raise ApiError("invalid-articles", "the body must be a JSON array of article objects")
    articles, invalid = [], []
    for position, record in enumerate(records):
        try:
            articles.append(parse_article(record))
        except InvalidArticleError as exc:
            invalid.append({"position": position, "error": exc.reason})
    if invalid and not skip_invalid:
        first = invalid[0]
        more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
        raise ApiError(
            "invalid-articles",
            f"article at position {first['position']}: {first['error']}{more}; nothing was "
            "written: fix them or pass ?skip_invalid=true",
            invalid=invalid,
        )
    rec = index.open()
    report = await threads.write(lambda: rec.add(articles, wait=seconds or False))
    data = dataclasses.asdict(report)
    data["index"] = Path(data["index"]).name
    data["skipped"] = len(invalid)
    data["invalid"] = invalid
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.delete(
    "/articles/{article_id:path}",
    summary="Remove an article (needs the token)",
    operation_id="deleteArticle",
    responses={200: {"model": UpdateReport}},
)
async def delete_article(
    article_id: ArticleId,
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    wait: WaitQuery = None,
) -> Response:
    """As `recommend remove`: no read returns the article from then on."""
    authorize(request, options)
    seconds = write_wait(wait, options)
    rec = index.open()
    report = await threads.write(lambda: rec.remove([article_id], wait=seconds or False))
    if report.missing:
        raise ApiError(
            "unknown-article", f"article {article_id!r} is not in the index; nothing removed"
        )
    data = dataclasses.asdict(report)
    data["index"] = Path(data["index"]).name
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
