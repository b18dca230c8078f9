"""The HTTP app: ``create_app`` builds it over one index; ``app_from_environment`` builds a
worker process's from what ``recommend serve`` left in its environment."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware

from ..embedding.encode import Encoder
from ..engine import Recommender
from .errors import add_error_handlers
from .events import EventWriter, RateLimit, ReportCache
from .metrics import Metrics
from .middleware import Edge, Gzip, Head, IdPaths
from .openapi import install as install_openapi
from .options import INDEX_ENV, OPTIONS_ENV, TOKEN_ENV, ServeOptions
from .routes import articles, events, overrides, pages, related, service
from .state import IndexState, Titles
from .threads import Threads

#: Answers of a kilobyte and more are gzipped for clients that take it, at gzip's own level.
GZIP_MINIMUM_SIZE = 1000
GZIP_LEVEL = 6


def _version() -> str:
    try:
        return importlib_metadata.version("recommender")
    except importlib_metadata.PackageNotFoundError:
        return "0"


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the index as the app starts (a failure is answered 503 until it opens); close
    what the app opened as it stops."""
    index: IndexState = app.state.index
    await anyio.to_thread.run_sync(lambda: index.is_open)
    yield
    app.state.event_writer.close()
    app.state.threads.close()
    index.close()


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
    app = FastAPI(
        title="recommender",
        version=_version(),
        summary="Related articles for news sites.",
        description=(
            "Related-article lists for indexed articles and drafts, the articles themselves, "
            "title search and writes. Reads are cacheable (ETag, Cache-Control); writes need "
            "`Authorization: Bearer $RECOMMENDER_TOKEN`."
        ),
        lifespan=_lifespan,
        docs_url=None,  # pages.py serves them, from a package instead of a CDN
        redoc_url=None,
    )
    # What the endpoints share (see dependencies.py).
    path = Path(index) if index is not None else None
    app.state.index = IndexState(
        path,
        recommender,
        encoder,
        options.refresh_seconds,
        options.threads,
        cached_articles=options.cached_articles,
    )
    app.state.titles = Titles()
    app.state.threads = Threads(options.read_threads)
    state = app.state.index
    app.state.metrics = metrics = Metrics(options.multiprocess_metrics, lambda: state.loaded)
    app.state.options = options
    assert state.path is not None  # given, or the recommender's
    app.state.event_writer = EventWriter(state.path, events.complete_view(state))
    app.state.event_rate = RateLimit(
        options.events_rate, max(options.events_burst, events.MAX_EVENTS)
    )
    app.state.report_cache = ReportCache()
    app.state.report_rate = RateLimit(1 / events.REPORT_SECONDS, events.REPORT_BURST)
    app.state.version = app.version

    add_error_handlers(app)
    install_openapi(app)
    for routes in (related, articles, overrides, events, service, pages):
        app.include_router(routes.router)
    with resources.as_file(pages.STATIC) as static_dir:
        app.mount("/static", StaticFiles(directory=static_dir), name="static")
    with resources.as_file(pages.DOCS_ASSETS) as assets_dir:
        app.mount(pages.DOCS_ASSETS_URL, StaticFiles(directory=assets_dir), name="docs-assets")

    cors: dict[str, Any] | None = None
    if options.cors_origins:
        cors = {
            "allow_origins": list(options.cors_origins),
            "allow_methods": ["GET", "POST", "PUT", "DELETE"],
            "allow_headers": ["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
            "expose_headers": ["ETag", "X-Request-ID"],
            "max_age": 600,
        }
        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(IdPaths)
    # Answers of a kilobyte and more, to clients that take gzip: a related list of 10 is
    # 6.6 KB of JSON, 1.8 KB gzipped in about 45 us at level 6 (gzip's own default; level 9
    # saves a few bytes for a fifth more time). The routes' ETag stays: it is weak, so it
    # may name the same answer in either coding. Inside Head, so that a HEAD has its GET's
    # Content-Encoding and Content-Length.
    gzip = {"minimum_size": GZIP_MINIMUM_SIZE, "compresslevel": GZIP_LEVEL}
    app.add_middleware(Gzip, **gzip)
    app.add_middleware(Head)
    app.add_middleware(Edge, max_body_bytes=options.max_body_bytes, metrics=metrics)
    # Outermost: answers the most asked read as all the layers above would (routes/related.py).
    app.add_middleware(related.HotReads, metrics=metrics, cors=cors, **gzip)
    return app


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process, from what ``recommend serve`` left in its
    environment (the index folder, the options and the token)."""
    data = json.loads(os.environ.get(OPTIONS_ENV, "{}"))
    data["cors_origins"] = tuple(data.get("cors_origins", ()))
    options = ServeOptions(token=os.environ.get(TOKEN_ENV) or None, **data)
    return create_app(os.environ[INDEX_ENV], options=options)
