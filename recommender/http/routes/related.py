"""Related lists: of an indexed article (``GET /articles/{id}/similar``) and of a draft
(``POST /similar``), each an object holding the list under ``related`` (``schemas``); and
``HotReads``, the shortcut of the first for the request it is asked most: no options but ``k``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from ...engine import Recommender
from ...results import Recommendation
from ..dependencies import ArticleId, Cached, Index, Options, Reply, check_k
from ..middleware import ASGIApp, Receive, Scope, Send
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
    return reply(lambda: related_to_article(rec, article_id, values))


def related_to_article(rec: Recommender, article_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """The answer of ``GET /articles/{id}/similar`` with these query values (``SimilarParams``,
    dumped): the route's and ``HotReads``'."""
    filters = query_filters(values, values["category"])
    ranking = query_ranking(values)
    found = rec.similar(article_id, values["k"], filters=filters, **ranking)
    return {"article": article_id, **_envelope(rec, values["k"], found)}


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
        "related": found,  # written as asdict would make them (results.json_default)
    }


#: The query strings ``HotReads`` answers: none, or ``k`` alone, as a number written the one
#: way (``k=010`` has another ETag than ``k=10``: left to the route).
HOT_QUERY = re.compile(rb"(?:k=(0|[1-9][0-9]{0,5}))?")
#: The paths it answers, as ``middleware.IdPaths`` leaves them: the id one part, encoded.
HOT_PATH = re.compile(r"/articles/([^/]+)/similar")


class HotReads:
    """The related list of an indexed article with no options but ``k`` (``GET
    /articles/ID/similar?k=10``, most of what a site asks), answered without FastAPI's routing
    and its validation of the twenty query parameters the route declares: what it answers is
    the route's, byte for byte, from the same parts (``related_to_article``, ``Cached``, the
    read threads).

    It is the innermost layer (inside ``Edge``, ``Head``, ``Gzip``, ``IdPaths`` and CORS, which
    treat its answers as the route's) and answers only a plain 200: a request with
    ``If-None-Match``, another query, a path under a root path, or one whose answer is an error
    (an unknown id, an unopened index, ``k`` over ``--max-k``) goes on to the route, which
    answers it as it always does. It gives the scope the route, for ``Edge``'s metrics label.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route = next(
            r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is similar
        )
        self.defaults: dict[str, Any] = SimilarParams().model_dump()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._answer(scope) if scope["type"] == "http" else None
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _answer(self, scope: Scope) -> Response | None:
        """The route's answer when it is a 200 this layer may give; else None."""
        if scope["method"] != "GET" or scope.get("root_path"):
            return None
        path = HOT_PATH.fullmatch(scope["path"])
        query = HOT_QUERY.fullmatch(scope["query_string"])
        if path is None or query is None:
            return None
        if any(name == b"if-none-match" for name, _ in scope["headers"]):
            return None
        state = scope["app"].state
        k = self.defaults["k"] if query[1] is None else int(query[1])
        if k > state.options.max_k:
            return None
        values = dict(self.defaults, k=k)
        article_id = unquote(path[1])
        scope["route"] = self.route
        reply = Cached(Request(scope), state.index, state.options.max_age, state.version)

        def answer() -> Response | None:
            try:
                rec = state.index.open()
                return reply(lambda: related_to_article(rec, article_id, values))
            except Exception:  # an error is the route's to answer, as it always has
                return None

        # Quick unless the index is to be opened or looked at for changes (``tag()``): a
        # lookup, or a search of 2 ms when the lists do not hold.
        response: Response | None = await state.threads.read(answer, quick=state.index.settled)
        return response
