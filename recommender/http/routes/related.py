"""Related lists: of an indexed article (``GET /articles/{id}/similar``) and of a draft
(``POST /similar``), each an object holding the list under ``related`` (``schemas``); and
``HotReads``, the shortcut of the first for the request it is asked most: no options but ``k``.
"""

from __future__ import annotations

import re
import time
import zlib
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware

from ...engine import Recommender
from ...read.retrieve import Filters
from ...results import Recommendation, to_json
from ..dependencies import ArticleId, Index, Options, Reply, answer_json, check_k, etag_of
from ..logs import REQUEST_ID, request_id
from ..metrics import Metrics
from ..middleware import (
    REQUEST_ID_HEADER,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    encoded_path,
    observe,
)
from ..schemas import (
    RelatedToArticle,
    RelatedToText,
    SimilarParams,
    TextQuery,
    query_filters,
    query_ranking,
)
from ..state import IndexState
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
#: Request headers that send a request to the layers: a condition (``If-None-Match``) and a
#: body (``Edge`` limits it).
_TO_LAYERS = frozenset({b"if-none-match", b"content-length", b"transfer-encoding"})


class HotReads:
    """The related list of an indexed article with no options but ``k`` (``GET`` or ``HEAD``
    ``/articles/ID/similar?k=10``, most of what a site asks), answered in one layer: what the
    route answers through every layer, byte for byte, its log line and metrics included.

    It is the outermost layer. The layers it stands in for, and what it does of each:
    ``Edge`` (the request id, the log line and the metrics: ``middleware.observe``),
    ``Head`` (HEAD: the GET's headers, no body), ``Gzip`` (the same bytes as Starlette's
    ``GZipMiddleware`` at the same level, ``Vary: Accept-Encoding`` on answers of its
    ``minimum_size`` and more), ``IdPaths`` (the id as sent, ``middleware.encoded_path``), and
    the route's ``Cached`` (the ETag, ``Cache-Control``). FastAPI's routing and its
    validation of the twenty query parameters the route declares are left out, and so are
    the objects each layer makes per request (its JSON: ``dependencies.answer_json``); the list
    is written straight from the precomputed one when it holds (``Recommender.lists``: the
    same bytes, without a ``Recommendation`` per article), else as the route makes it.

    CORS's headers are ``CORSMiddleware``'s own (``send``, with the options it was given).

    It answers only a plain 200: a request with ``If-None-Match``, a body, another query, a
    root path, or one whose answer is an error (an unknown id, an unopened index, ``k`` over
    ``--max-k``) goes through the layers to the route, which answers it as it always does.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        minimum_size: int,
        compresslevel: int,
        cors: dict[str, Any] | None,
    ) -> None:
        """``minimum_size``, ``compresslevel``: ``Gzip``'s; ``cors``: ``CORSMiddleware``'s
        options, None when CORS is off."""
        self.app = app
        self.metrics = metrics
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.cors = None if cors is None else CORSMiddleware(app, **cors)
        self.route = next(
            r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is similar
        )
        values = SimilarParams().model_dump()
        self.k = values["k"]
        self.filters = query_filters(values, values["category"])
        self.ranking = query_ranking(values)
        # No option given: the list is the precomputed one, written as JSON without its
        # objects (``Recommender.lists``), when it holds.
        self.plain = self.filters == Filters() and not self.ranking

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not await self._answered(scope, send):
            await self.app(scope, receive, send)

    async def _answered(self, scope: Scope, send: Send) -> bool:
        """Whether the request was answered here (else nothing was sent)."""
        started = time.perf_counter()
        method = scope["method"]
        if (method != "GET" and method != "HEAD") or scope.get("root_path"):
            return False
        query = HOT_QUERY.fullmatch(scope["query_string"])
        path = encoded_path(scope) if query is not None else None
        found = HOT_PATH.fullmatch(path) if path is not None else None
        if path is None or found is None or query is None:
            return False
        sent_id = accepts = None
        for name, value in scope["headers"]:
            if name in _TO_LAYERS:
                return False
            if name == REQUEST_ID_HEADER and sent_id is None:
                sent_id = value
            elif name == b"accept-encoding" and accepts is None:
                accepts = value
        state = scope["app"].state
        k = self.k if query[1] is None else int(query[1])
        if k > state.options.max_k:
            return False
        rid = request_id(sent_id)
        token = REQUEST_ID.set(rid)
        try:
            answer = await self._answer(state, path, unquote(found[1]), k, query[1])
            if answer is None:
                return False
            cache_control = f"public, max-age={state.options.max_age}".encode("latin-1")
            gzip = accepts is not None and "gzip" in accepts.decode("latin-1")
            headers, body = await self._encoded(scope, answer, cache_control, gzip)
            headers.append((REQUEST_ID_HEADER, rid.encode("ascii")))
            try:
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body if method == "GET" else b""})
            finally:
                scope["route"] = self.route  # for the metrics' label, as the route's
                observe(self.metrics, scope, 200, time.perf_counter() - started, rid)
            return True
        finally:
            REQUEST_ID.reset(token)

    async def _answer(
        self, state: Any, path: str, article_id: str, k: int, sent_k: bytes | None
    ) -> tuple[str, bytes] | None:
        """The route's ETag and JSON, when its answer is a 200; else None."""
        index: IndexState = state.index
        known = [] if sent_k is None else [("k", sent_k.decode())]  # as ``known_query`` gives

        def answer() -> tuple[str, bytes] | None:
            try:
                rec = index.open()
                tag = index.tag()
                listed = rec.lists.json(article_id, k) if self.plain else None
                if listed is None:
                    related = rec.similar(article_id, k, filters=self.filters, **self.ranking)
            except Exception:  # an error is the route's to answer, as it always has
                return None
            if listed is None:
                envelope = {"article": article_id, **_envelope(rec, k, related)}
                body = answer_json(envelope)
            else:  # as answer_json writes the envelope, with the list's JSON last
                envelope = {"article": article_id, **_envelope(rec, k, [])}
                del envelope["related"]
                body = f'{to_json(envelope)[:-1]}, "related": {listed}}}'
            return etag_of(state.version, tag, path, known), body.encode()

        # Quick unless the index is to be opened or looked at for changes (``tag()``): a
        # lookup, or a search of 2 ms when the lists do not hold.
        found: tuple[str, bytes] | None = await state.threads.read(answer, quick=index.settled)
        return found

    async def _encoded(
        self, scope: Scope, answer: tuple[str, bytes], cache_control: bytes, gzip: bool
    ) -> tuple[list[Any], bytes]:
        """The headers and body the layers give the route's answer (before ``Edge``'s
        request id): the route's, then CORS's and ``Gzip``'s, each as that layer writes them."""
        etag, body = answer
        message: dict[str, Any] = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"etag", etag.encode("latin-1")),
                (b"cache-control", cache_control),
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"content-type", b"application/json"),
            ],
        }
        if self.cors is not None:  # its headers written into the message
            await self.cors.send(message, _nowhere, request_headers=Headers(scope=scope))
        if len(body) >= self.minimum_size and self.cors is None and not gzip:
            message["headers"].append((b"vary", b"Accept-Encoding"))  # as add_vary_header does
        elif len(body) >= self.minimum_size:
            headers = MutableHeaders(raw=message["headers"])
            headers.add_vary_header("Accept-Encoding")
            if gzip:
                packer = zlib.compressobj(self.compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                body = packer.compress(body) + packer.flush()
                headers["Content-Encoding"] = "gzip"
                headers["Content-Length"] = str(len(body))
        return message["headers"], body


async def _nowhere(message: Message) -> None:
    """A send that sends nothing (``CORSMiddleware.send`` writes into the message first)."""
