"""The HTTP service: ``recommend serve`` runs ``create_app`` on uvicorn, one Recommender a worker.

Reads (related lists, articles, title search, info) are JSON shaped like ``similar --json``,
cached by ETag and ``Cache-Control``; writes (``PUT /articles``, ``DELETE /articles/{id}``)
need the bearer token. The editor's page (``/``) and the embeddable box (``/box.js``) are
static files in ``recommender/static`` that call the same endpoints. Library errors become
JSON with a message and a status (see ``_STATUS``), never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import os
import socket
import sys
import threading
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from ..articles import Article, parse_article
from ..embedding.encode import Encoder, threads_setting, use_threads
from ..engine import Recommender
from ..errors import (
    IncompatibleIndexError,
    IndexBusyError,
    IndexDamagedError,
    IndexNotFoundError,
    InputFileError,
    InvalidArticleError,
    InvalidArticlesError,
    InvalidQueryError,
    ModelError,
    RecommenderError,
    SettingsError,
    UnknownArticleError,
)
from ..results import Recommendation
from ..settings import Ranking

log = logging.getLogger("recommender.serve")

#: Where ``recommend serve`` hands its options to worker processes (JSON of ServeOptions,
#: without the token, which workers read from RECOMMENDER_TOKEN themselves).
OPTIONS_ENV = "RECOMMENDER_SERVE_OPTIONS"
TOKEN_ENV = "RECOMMENDER_TOKEN"
INDEX_ENV = "RECOMMENDER_SERVE_INDEX"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The longest a write may wait for another writer (``?wait=``): it holds a worker thread.
MAX_WRITE_WAIT = 60.0
STATIC = resources.files("recommender") / "static"

#: Library errors and the HTTP status each one becomes.
_STATUS: tuple[tuple[type[RecommenderError], int], ...] = (
    (UnknownArticleError, 404),
    (InvalidQueryError, 422),
    (SettingsError, 422),
    (InvalidArticlesError, 422),
    (InvalidArticleError, 422),
    (InputFileError, 422),
    (IndexBusyError, 409),
    (IndexNotFoundError, 503),
    (IndexDamagedError, 503),
    (IncompatibleIndexError, 503),
    (ModelError, 503),
)


@dataclass(frozen=True)
class ServeOptions:
    """How the service behaves; ``recommend serve`` fills it from its options.

    token: the bearer token writes need; None refuses every write.
    max_age: seconds a browser or CDN may keep a read (``Cache-Control: max-age``).
    cors_origins: origins whose pages may call the service (``*`` for any).
    max_body_bytes: larger request bodies get 413 before they are read.
    write_wait: seconds a write waits for another writer by default before 409.
    max_k: the largest ``k`` a request may ask for.
    refresh_seconds: how often a worker looks for changes written by others.
    multiprocess_metrics: the workers share /metrics through prometheus-client's files.
    read_threads: reads (related lists, articles, title search) a worker computes at once;
        the others wait their turn. A read is mostly Python holding the GIL: more threads
        only take turns more often (measured, 16 requests in flight on one worker: 201 req/s
        and p99 121 ms with 40 threads, 264 req/s and 71 ms with 1).
    """

    token: str | None = None
    max_age: int = 60
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    write_wait: float = 0.0
    max_k: int = 100
    refresh_seconds: float = 1.0
    multiprocess_metrics: bool = False
    read_threads: int = 1

    def public(self) -> dict[str, Any]:
        """The options without the token, for handing to worker processes."""
        data = dataclasses.asdict(self)
        del data["token"]
        return data


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with this status."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


# -- the request shapes, derived from the ranking settings ----------------------------------


def ranking_options() -> list[dict[str, Any]]:
    """Each per-query ranking option, from the fields of ``Ranking``: name, JSON type, choices
    and help (for the editor's page and the request shapes)."""
    hints = typing.get_type_hints(Ranking)
    options = []
    for field in dataclasses.fields(Ranking):
        hint = hints[field.name]
        choices = [a for a in typing.get_args(hint) if isinstance(a, str)]
        if typing.get_origin(hint) is Literal:
            kind = "choice"
        else:
            kind = "integer" if int in (hint, *typing.get_args(hint)) else "number"
        options.append(
            {
                "name": field.name,
                "type": kind,
                "choices": choices,
                "default": field.default,
                "help": field.metadata["help"],
            }
        )
    return options


def _ranking_fields() -> dict[str, Any]:
    """Pydantic fields for the ranking options, each optional: left out, the index's value
    counts."""
    hints = typing.get_type_hints(Ranking)
    fields: dict[str, Any] = {}
    for option in ranking_options():
        hint = hints[option["name"]]
        # None means "not given" here; recency is turned off by no_recency instead.
        base = {"choice": hint, "integer": int}.get(option["type"], float)
        fields[option["name"]] = (base | None, Field(None, description=option["help"]))
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
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

if TYPE_CHECKING:
    SimilarParams = BaseModel
    TextQuery = BaseModel
else:
    SimilarParams = create_model(
        "SimilarParams",
        __config__=_STRICT,
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
        __config__=_STRICT,
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


def _query_options(params: Mapping[str, Any], categories: list[str]) -> dict[str, Any]:
    """Keyword arguments of ``similar`` / ``similar_to_text`` from a request's options."""
    options: dict[str, Any] = {
        name: params[name] for name in Ranking.names() if params.get(name) is not None
    }
    if params.get("no_recency"):
        options["half_life_days"] = None
    options.update(
        same_category=bool(params.get("same_category")),
        categories=categories or None,
        since=params.get("since"),
        until=params.get("until"),
        exclude=tuple(params.get("exclude") or ()),
        same_language=bool(params.get("same_language")),
    )
    return options


# -- JSON -------------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(data: object) -> bytes:
    """JSON as ``similar --json`` writes it: ISO dates ending in Z, tuples as lists."""
    return json.dumps(data, default=_json_default, ensure_ascii=False).encode()


def recommendation_json(item: Recommendation) -> dict[str, Any]:
    return dataclasses.asdict(item)


def article_json(article: Article) -> dict[str, Any]:
    data = {f.name: getattr(article, f.name) for f in dataclasses.fields(article)}
    data["metadata"] = dict(article.metadata)
    return data


# -- the index, opened once per worker --------------------------------------------------------


class _Index:
    """The worker's Recommender (opened on first use if it could not be at start) and a
    cheap tag of its state for ETags, looked up at most every ``refresh_seconds``."""

    def __init__(
        self,
        path: Path | None,
        recommender: Recommender | None,
        encoder: Encoder | None,
        refresh_seconds: float,
    ) -> None:
        self.path = path if path is not None else (recommender.path if recommender else None)
        self._rec = recommender
        self._encoder = encoder
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._tag: tuple[float, str] | None = None
        self._failure = "not opened yet"
        self._next_try = 0.0

    def open(self) -> Recommender:
        rec = self._rec
        if rec is not None:
            return rec
        with self._lock:
            if self._rec is None:
                now = time.monotonic()
                if now >= self._next_try and self.path is not None:
                    self._next_try = now + 1.0
                    try:
                        self._rec = Recommender.open(
                            self.path,
                            encoder=self._encoder,
                            auto_refresh=self._refresh or False,
                        )
                    except RecommenderError as exc:
                        self._failure = _public_message(str(exc), self.path)
                        log.warning("cannot open the index: %s", exc)
            if self._rec is None:
                raise ApiError(503, f"the index is not open: {self._failure}")
            return self._rec

    @property
    def is_open(self) -> bool:
        try:
            self.open()
        except ApiError:
            return False
        return True

    def tag(self) -> str:
        """The index version and generation answers are computed from (may lag the data by
        up to ``refresh_seconds``, as the workers' own refresh does)."""
        now = time.monotonic()
        cached = self._tag
        if cached is not None and now < cached[0]:
            return cached[1]
        info = self.open().info()
        tag = f"{info.version}:{info.generation}"
        self._tag = (now + self._refresh, tag)
        return tag

    def changed(self) -> None:
        """Forget the tag after this worker wrote to the index."""
        self._tag = None

    def close(self) -> None:
        if self._rec is not None:
            self._rec.close()


def _public_message(message: str, path: Path | None) -> str:
    """A library message without the server's folder names."""
    if path is not None:
        message = message.replace(f"index at {path}", "the index")
        message = message.replace(f"index {path}", "the index").replace(str(path), "the index")
    return message


class _Titles:
    """Title search over the index, from public facade calls only (ids() and get()).

    Titles are read once (with ``get``), then on a change of generation only for new ids;
    a new index version (a rebuild or compaction) reads them all again. Matches are read
    again before they are returned, so a listed title is always the current one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tag = ""
        self._version = ""
        self._rows: dict[str, tuple[str, str, str | None, datetime | None]] = {}

    def search(self, rec: Recommender, tag: str, words: list[str], limit: int) -> list[Article]:
        with self._lock:
            if tag != self._tag:
                self._update(rec, tag)
            rows = self._rows
        found: list[tuple[float, str]] = []
        for article_id, (folded, _, _, published) in rows.items():
            if all(word in folded for word in words) or article_id.casefold() == " ".join(words):
                found.append((-(published.timestamp() if published else 0.0), article_id))
        found.sort()
        out: list[Article] = []
        for _, article_id in found:
            if len(out) >= limit:
                break
            try:
                article = rec.get(article_id)
            except UnknownArticleError:
                continue
            out.append(article)
        return out

    def _update(self, rec: Recommender, tag: str) -> None:
        version = tag.split(":", 1)[0]
        ids = rec.ids()
        rows = dict(self._rows) if version == self._version else {}
        present = set(ids)
        for gone in [i for i in rows if i not in present]:
            del rows[gone]
        for article_id in ids:
            if article_id not in rows:
                try:
                    article = rec.get(article_id)
                except UnknownArticleError:
                    continue
                rows[article_id] = (
                    f"{article.title} {article.id}".casefold(),
                    article.title,
                    article.category,
                    article.published_at,
                )
        self._rows, self._tag, self._version = rows, tag, version


# -- metrics, logs and the body limit ----------------------------------------------------------


class _Metrics:
    """Request counts and a latency histogram, per route template (not per raw path)."""

    def __init__(self, multiprocess: bool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = multiprocess
        # Multiprocess mode keeps values in files that /metrics adds up; a registry per app
        # otherwise, so several apps in one process (tests) never clash.
        self.registry = None if multiprocess else CollectorRegistry()
        self.requests = Counter(
            "recommender_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "recommender_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(StarletteHTTPException):
    """Raised while reading a body (with no Content-Length) that grows past the limit; an
    HTTPException, so that FastAPI's body parsing passes it on instead of answering 400."""


class _Edge:
    """Outermost layer: refuses bodies over the limit unread, logs one line per request with
    its latency, and counts it for /metrics."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: _Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent_start = False

        async def send_observed(message: Message) -> None:
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                status = int(message["status"])
                sent_start = True
            await send(message)

        try:
            length = _content_length(scope)
            if length is not None and length > self.max_body_bytes:
                # Answered from the headers alone: the body is never read.
                await self._too_large(send_observed, length)
                return
            received = 0

            async def receive_limited() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise _BodyTooLarge(413, self._too_large_message(None))
                return message

            try:
                await self.app(scope, receive_limited, send_observed)
            except _BodyTooLarge:
                if sent_start:
                    raise
                await self._too_large(send_observed, None)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or (
                "/static" if str(scope.get("path", "")).startswith("/static/") else "unmatched"
            )
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(seconds)
            target = scope.get("raw_path") or str(scope.get("path", "")).encode()
            query = scope.get("query_string") or b""
            if query:
                target += b"?" + query
            shown = target.decode("latin-1")  # percent-encoded: no newlines to forge a line
            if len(shown) > 200:
                shown = shown[:200] + "..."
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %d %.1f ms", client[0], method, shown, status, seconds * 1000)

    def _too_large_message(self, length: int | None) -> str:
        said = f" ({length} bytes)" if length is not None else ""
        return (
            f"request body too large{said}: the limit is {self.max_body_bytes} bytes (the "
            "server's --max-body-bytes); send smaller batches"
        )

    async def _too_large(self, send: Send, length: int | None) -> None:
        body = to_json({"error": self._too_large_message(length)})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# -- the app ------------------------------------------------------------------------------------


def _version() -> str:
    try:
        return importlib_metadata.version("recommender")
    except importlib_metadata.PackageNotFoundError:
        return "0"


#: How much lower the writer thread's CPU priority is than the readers' (a nice value): on a
#: machine whose cores are busy answering, embedding new articles takes the idle time.
WRITER_NICENESS = 10


def _lower_this_thread_priority() -> None:
    """Lower the calling thread's CPU priority (Linux keeps a nice value per thread); where
    that is not possible, nothing changes."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(
            os.PRIO_PROCESS,
            threading.get_native_id(),
            os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + WRITER_NICENESS,
        )


F = typing.TypeVar("F", bound=Callable[..., Any])


class _Threads:
    """Where a worker runs blocking work: reads on ``read_threads`` threads (requests beyond
    that wait their turn, instead of 40 threads taking turns on the GIL), writes on one thread
    of lower CPU priority (``WRITER_NICENESS``), so that embedding never starves the reads."""

    def __init__(self, read_threads: int) -> None:
        self.read_threads = max(1, read_threads)
        self._reads: anyio.CapacityLimiter | None = None  # made in the event loop, when first used
        self._writer: ThreadPoolExecutor | None = None

    def reads(self, endpoint: F) -> F:
        """The synchronous endpoint ``endpoint``, run on the read threads."""

        @functools.wraps(endpoint)
        async def run(*args: Any, **kwargs: Any) -> Any:
            if self._reads is None:
                self._reads = anyio.CapacityLimiter(self.read_threads)
            call = functools.partial(endpoint, *args, **kwargs)
            return await anyio.to_thread.run_sync(call, limiter=self._reads)

        return typing.cast(F, run)

    async def write(self, call: Callable[[], Any]) -> Any:
        """``call()`` on the writer thread."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(
                1, thread_name_prefix="recommender-writer", initializer=_lower_this_thread_priority
            )
        return await asyncio.get_running_loop().run_in_executor(self._writer, call)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)


def create_app(
    index: str | Path | None = None,
    *,
    recommender: Recommender | None = None,
    encoder: Encoder | None = None,
    options: ServeOptions | None = None,
) -> FastAPI:
    """The HTTP service over one index.

    Args:
        index: the index folder; opened when the app starts, with auto refresh (a missing
            index answers 503 and is opened as soon as it exists).
        recommender: an opened Recommender to serve instead (tests, or an embedding app).
        encoder: the encoder for drafts and writes; by default the index's model.
        options: caching, CORS, limits and the write token.
    """
    if (index is None) == (recommender is None):
        raise ValueError("give create_app either an index folder or a recommender")
    options = options or ServeOptions()
    state = _Index(
        Path(index) if index is not None else None,
        recommender,
        encoder,
        options.refresh_seconds,
    )
    titles = _Titles()
    threads = _Threads(options.read_threads)
    metrics = _Metrics(options.multiprocess_metrics)
    package_version = _version()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(lambda: state.is_open)
        yield
        threads.close()
        if recommender is None:
            state.close()

    app = FastAPI(
        title="recommender",
        version=package_version,
        summary="Related articles for news sites.",
        description=(
            "Related-article lists for indexed articles and drafts, the articles themselves, "
            "title search and writes. Reads are cacheable (ETag, Cache-Control); writes need "
            "`Authorization: Bearer $RECOMMENDER_TOKEN`."
        ),
        lifespan=lifespan,
    )
    app.state.index = state

    # -- helpers used by the endpoints

    def cached(request: Request, body: bytes, build: Callable[[], object]) -> Response:
        """A read: 304 if the client holds the current answer, else the answer with its tag."""
        tag = state.tag()
        query = sorted((k, v) for k, v in request.query_params.multi_items())
        digest = hashlib.blake2b(digest_size=12)
        for part in (package_version, tag, request.method, request.url.path, repr(query)):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(body)
        etag = f'W/"{digest.hexdigest()}"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={options.max_age}"}
        if request.method == "POST":
            headers["Cache-Control"] = "no-store"
        held = request.headers.get("if-none-match", "")
        if etag in {t.strip() for t in held.split(",")} or held.strip() == "*":
            return Response(status_code=304, headers=headers)
        return Response(to_json(build()), media_type="application/json", headers=headers)

    def check_k(k: int) -> None:
        if k > options.max_k:
            raise ApiError(
                422, f"k must be at most {options.max_k} (the server's --max-k), got {k}"
            )

    def authorize(request: Request) -> None:
        if not options.token:
            raise ApiError(
                403,
                f"writes are disabled: the server was started without {TOKEN_ENV} set",
            )
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "this write needs the header 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(token.strip().encode(), options.token.encode()):
            raise ApiError(403, "the bearer token is wrong")

    def write_wait(wait: float | None) -> float:
        chosen = options.write_wait if wait is None else wait
        if not 0 <= chosen <= MAX_WRITE_WAIT:
            raise ApiError(422, f"wait must be between 0 and {MAX_WRITE_WAIT:g} seconds")
        return chosen

    # -- errors

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.message, headers=exc.headers, **exc.extra)

    @app.exception_handler(RecommenderError)
    async def library_error(_: Request, exc: RecommenderError) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        message = _public_message(str(exc), state.path)
        if isinstance(exc, IndexBusyError):
            message = (
                "the index is being written by another writer; retry when it is done, or "
                f"pass ?wait=SECONDS (at most {MAX_WRITE_WAIT:g}) to wait for it"
            )
        if status >= 500:
            log.error("%s", exc)
        return _error(status, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            where = [str(part) for part in error.get("loc", ())]
            if error.get("type") == "json_invalid":
                reason = (error.get("ctx") or {}).get("error") or error.get("msg")
                return _error(400, f"the request body is not valid JSON: {reason}")
            kind = where[0] if where else "request"
            name = ".".join(where[1:]) or kind
            problems.append({"parameter": name, "in": kind, "message": error.get("msg", "invalid")})
        text = "; ".join(
            f"{p['in']} parameter {p['parameter']!r}: {p['message']}" for p in problems
        )
        return _error(422, f"invalid request: {text}", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs for the API"
        elif exc.status_code == 405:
            message = "this method is not allowed here; see /docs for the API"
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return _error(500, "internal error; the server log has the details")

    # -- reads

    @app.get(
        "/articles/{article_id:path}/similar",
        summary="Related articles of an indexed article",
        responses={200: {"model": list[Recommendation]}},
    )
    @threads.reads
    def similar(
        article_id: str, request: Request, params: Annotated[SimilarParams, Query()]
    ) -> Response:
        """The k articles most related to `article_id`, best first, with the score's parts.

        Every ranking option left out takes the index's stored setting.
        """
        values = params.model_dump()
        check_k(values["k"])
        rec = state.open()
        kwargs = _query_options(values, values["category"])
        return cached(
            request,
            b"",
            lambda: [
                recommendation_json(item) for item in rec.similar(article_id, values["k"], **kwargs)
            ],
        )

    @app.post(
        "/similar",
        summary="Related articles of a draft (a text not in the index)",
        responses={200: {"model": list[Recommendation]}},
    )
    @threads.reads
    def similar_to_text(request: Request, query: TextQuery) -> Response:
        """The indexed articles most related to a text: its first line is the title."""
        values = query.model_dump()
        check_k(values["k"])
        rec = state.open()
        kwargs = _query_options(values, values["categories"])
        return cached(
            request,
            to_json(values),
            lambda: [
                recommendation_json(item)
                for item in rec.similar_to_text(
                    values["text"],
                    values["k"],
                    category=values["category"],
                    published_at=values["published_at"],
                    lang=values["lang"],
                    **kwargs,
                )
            ],
        )

    @app.get("/articles", summary="Search articles by title")
    @threads.reads
    def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=200, description="Words of the title")],
        limit: Annotated[int, Query(ge=1, le=100, description="How many to list")] = 20,
    ) -> Response:
        """Articles whose title (or id) holds every word of `q`, newest first."""
        rec = state.open()
        words = q.casefold().split()
        if not words:
            raise ApiError(422, "query parameter 'q' holds no words")

        def found() -> list[dict[str, Any]]:
            return [
                {
                    "id": a.id,
                    "title": a.title,
                    "category": a.category,
                    "published_at": a.published_at,
                    "url": a.url,
                }
                for a in titles.search(rec, state.tag(), words, limit)
            ]

        return cached(request, b"", found)

    @app.get("/articles/{article_id:path}", summary="One stored article")
    @threads.reads
    def get_article(article_id: str, request: Request) -> Response:
        """The stored article: its fields, metadata and cleaned body."""
        rec = state.open()
        return cached(request, b"", lambda: article_json(rec.get(article_id)))

    @app.get("/info", summary="What the index holds")
    def info(request: Request) -> Response:
        """As `recommend info --json`; `index` is the folder's name only."""
        rec = state.open()

        def details() -> dict[str, Any]:
            data = dataclasses.asdict(rec.info())
            data["index"] = Path(data["index"]).name
            return data

        return cached(request, b"", details)

    @app.get("/healthz", summary="The process is alive")
    def healthz() -> Response:
        return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})

    @app.get("/readyz", summary="The index is open")
    def readyz() -> Response:
        if not state.is_open:
            return _error(503, "the index is not open yet; see the server log")
        return JSONResponse(
            {"status": "ready", "articles": len(state.open())},
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    # -- writes

    @app.put(
        "/articles",
        summary="Add or replace a batch of articles (needs the token)",
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
        wait: Annotated[
            float | None,
            Query(description="Seconds to wait for another writer (default: the server's)."),
        ] = None,
        skip_invalid: Annotated[
            bool, Query(description="Leave out invalid records instead of failing.")
        ] = False,
    ) -> Response:
        """As `recommend add`: new ids are added, known ones replaced; only changed text is
        embedded again. Every record is validated first; with any invalid (and no
        skip_invalid) nothing is written and each is named by its position."""
        authorize(request)
        seconds = write_wait(wait)
        try:
            records = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(records, list):
            raise ApiError(422, "the body must be a JSON array of article objects")
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
                422,
                f"article at position {first['position']}: {first['error']}{more}; nothing was "
                "written: fix them or pass ?skip_invalid=true",
                invalid=invalid,
            )
        rec = state.open()
        report = await threads.write(lambda: rec.add(articles, wait=seconds or False))
        state.changed()
        data = dataclasses.asdict(report)
        data["index"] = Path(data["index"]).name
        data["skipped"] = len(invalid)
        data["invalid"] = invalid
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    @app.delete("/articles/{article_id:path}", summary="Remove an article (needs the token)")
    async def delete_article(
        article_id: str,
        request: Request,
        wait: Annotated[
            float | None,
            Query(description="Seconds to wait for another writer (default: the server's)."),
        ] = None,
    ) -> Response:
        """As `recommend remove`: no read returns the article from then on."""
        authorize(request)
        seconds = write_wait(wait)
        rec = state.open()
        report = await threads.write(lambda: rec.remove([article_id], wait=seconds or False))
        state.changed()
        if report.missing:
            raise ApiError(404, f"article {article_id!r} is not in the index; nothing removed")
        data = dataclasses.asdict(report)
        data["index"] = Path(data["index"]).name
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    # -- the editor's page and the box

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        data = json.dumps(ranking_options()).replace("<", "\\u003c")
        html = html.replace("__RANKING_OPTIONS__", data)
        return Response(html, media_type="text/html; charset=utf-8")

    @app.get("/box.js", include_in_schema=False)
    def box() -> Response:
        script = (STATIC / "box.js").read_bytes()
        return Response(
            script,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": f"public, max-age={options.max_age}"},
        )

    with resources.as_file(STATIC) as static_dir:
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    if options.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag"],
            max_age=600,
        )
    app.add_middleware(_Edge, max_body_bytes=options.max_body_bytes, metrics=metrics)
    return app


def _error(
    status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    return Response(
        to_json({"error": message, **extra}),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


# -- running it ------------------------------------------------------------------------------


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process, from what ``recommend serve`` left in its
    environment (the index folder, the options and the token)."""
    data = json.loads(os.environ.get(OPTIONS_ENV, "{}"))
    data["cors_origins"] = tuple(data.get("cors_origins", ()))
    options = ServeOptions(token=os.environ.get(TOKEN_ENV) or None, **data)
    use_threads(threads_setting(os.environ.get("RECOMMENDER_THREADS")))  # as the CLI does
    return create_app(os.environ[INDEX_ENV], options=options)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging with our one-line-per-request log (uvicorn's access log is off)."""
    formatter = {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "recommender": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def run(
    index: Path,
    *,
    host: str,
    port: int,
    workers: int,
    options: ServeOptions,
    log_level: str = "info",
) -> None:
    """Serve ``index`` until interrupted: in this process for one worker, else in ``workers``
    processes each opening the index (prometheus-client's multiprocess mode for /metrics)."""
    import tempfile

    import uvicorn

    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,
        "log_config": log_config(log_level),
        "server_header": False,
    }
    if workers <= 1:
        uvicorn.run(create_app(index, options=options), **common)
        return
    with tempfile.TemporaryDirectory(prefix="recommender-metrics-") as metrics_dir:
        os.environ.setdefault(METRICS_ENV, metrics_dir)
        shared = dataclasses.replace(options, multiprocess_metrics=True)
        os.environ[OPTIONS_ENV] = json.dumps(shared.public())
        os.environ[INDEX_ENV] = str(index)
        if options.token:
            os.environ[TOKEN_ENV] = options.token
        if hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux"):
            _Workers(common, workers).run()
        else:  # pragma: no cover - one socket shared by the workers (uvicorn's own)
            uvicorn.run(
                "recommender.serve:app_from_environment", factory=True, workers=workers, **common
            )


#: uvicorn's exit code for a worker whose start-up failed (uvicorn.config.STARTUP_FAILURE).
STARTUP_FAILURE = 3


def _serve_worker(common: dict[str, Any], sock: socket.socket) -> None:
    """One worker process: uvicorn on its own listening socket (see ``_Workers``)."""
    import uvicorn

    config = uvicorn.Config("recommender.serve:app_from_environment", factory=True, **common)
    uvicorn.Server(config).run(sockets=[sock])


class _Workers:
    """Worker processes, each listening on its own socket bound to the same address with
    SO_REUSEPORT, so that the kernel spreads new connections over them. With one shared
    socket (uvicorn's --workers), whichever worker wakes first accepts every connection
    waiting, and a client opening a few at once (a proxy, a load test) gets one worker.

    A worker that dies is started again; one that fails to start (uvicorn's start-up failure,
    or an error exit within ``STARTUP_SECONDS`` of its start) stops the server: it would fail
    the same way again. A worker killed by a signal is always replaced. SIGINT and SIGTERM
    stop the workers and wait for them."""

    STARTUP_SECONDS = 10.0

    def __init__(self, common: dict[str, Any], count: int) -> None:
        self.common = common
        self.count = count
        self.stopping = threading.Event()

    @staticmethod
    def _free_port(host: str, port: int) -> int:
        """``port`` (or a free one for 0), checked free first: sockets with SO_REUSEPORT
        would otherwise share it, silently, with another server of the same user."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise RecommenderError(
                    f"cannot listen on {host}:{port} ({(exc.strerror or str(exc)).lower()}); "
                    "choose another --port or --host"
                ) from None
            return int(probe.getsockname()[1])

    def _socket(self, port: int) -> socket.socket:
        host = self.common["host"]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
        # connections whose socket says so; with 0, every answer waited ~40 ms for an ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
        sock.set_inheritable(True)
        return sock

    def run(self) -> None:
        import multiprocessing
        import signal

        logger = logging.getLogger("uvicorn.error")
        port = self._free_port(self.common["host"], self.common["port"])
        sockets = [self._socket(port) for _ in range(self.count)]
        common = dict(self.common, port=port)
        context = multiprocessing.get_context("spawn")

        def start(sock: socket.socket) -> tuple[Any, float]:
            process = context.Process(target=_serve_worker, args=(common, sock), daemon=False)
            process.start()
            return process, time.monotonic()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        running = [start(sock) for sock in sockets]
        failed = False
        try:
            while not self.stopping.wait(0.5):
                for at, (process, started) in enumerate(running):
                    if process.is_alive():
                        continue
                    code = process.exitcode or 0
                    soon = time.monotonic() - started < self.STARTUP_SECONDS
                    if code == STARTUP_FAILURE or (code > 0 and soon):
                        logger.error(
                            "worker %s stopped at start (exit code %s); stopping the server",
                            process.pid,
                            process.exitcode,
                        )
                        failed = True
                        self.stopping.set()
                        break
                    logger.warning(
                        "worker %s died (exit code %s); starting another",
                        process.pid,
                        process.exitcode,
                    )
                    running[at] = start(sockets[at])
        finally:
            for process, _ in running:
                if process.is_alive():
                    process.terminate()
            for process, _ in running:
                process.join(30)
                if process.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
                    process.kill()
                    process.join()
            for sock in sockets:
                sock.close()
        if failed:
            raise SystemExit(1)


__all__ = ["ServeOptions", "app_from_environment", "create_app", "run"]
