"""What readers saw and clicked: ``POST /events`` keeps the box's events (``http/events.py``
writes them), ``GET /report`` answers as ``recommend report --json`` (the editor's chart).

``POST /events`` needs no token (the box runs on the site's pages) and takes a body of JSON as
any media type: ``navigator.sendBeacon`` sends ``text/plain``, which needs no CORS preflight.
The body is read up to ``MAX_EVENTS_BYTES`` and refused beyond, before it is parsed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from ...errors import IndexNotFoundError, IndexWriteError, RecommenderError
from ...events import Event, View, parse_event
from ...quality.report import parse_since, report_of
from ...storage.events import read_events
from ..dependencies import Index, Options, RequestMetrics, WorkThreads, authorize
from ..errors import ApiError, json_body_problem, public_message
from ..events import EventWriter, RateLimit, ReportCache, client_key
from ..metrics import Metrics
from ..schemas import EventsTaken, ReportAnswer
from ..state import IndexState

router = APIRouter()

#: A batch holds at most this many events, in at most this many bytes (the box sends one
#: view, or one click, per batch; a client that queues them sends a few dozen).
MAX_EVENTS = 100
MAX_EVENTS_BYTES = 64 * 1024
#: The whole body of a batch comes within this many seconds (a beacon's is a few hundred bytes).
BODY_SECONDS = 10.0
#: A batch costs the rate limit one event per event, or per this many bytes when more.
EVENT_BYTES = 1024
NO_STORE = {"Cache-Control": "no-store"}
#: A server without a token computes a new report for a client every this many seconds on
#: average (``REPORT_BURST`` at once); answers from ``ReportCache`` are free.
REPORT_SECONDS = 10
REPORT_BURST = 5


@router.post(
    "/events",
    summary="Keep the box's views and clicks",
    operation_id="postEvents",
    responses={200: {"model": EventsTaken}},
)
async def post_events(request: Request, index: Index, metrics: RequestMetrics) -> Response:
    """A batch `{"events": [...]}` of views and clicks (docs/events.md): answered once the
    accepted ones are on disk, with the index and reason of each one refused."""
    raw = await _body(request)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError("invalid-json", json_body_problem(exc) or str(exc)) from None
    batch = body.get("events") if isinstance(body, dict) else None
    if not isinstance(batch, list):
        raise ApiError("validation", 'the body must be a JSON object {"events": [...]}')
    if len(batch) > MAX_EVENTS:
        raise ApiError("validation", f"a batch holds at most {MAX_EVENTS} events, got {len(batch)}")
    limit: RateLimit = request.app.state.event_rate
    # Bytes count too: a view of 50 ids of 256 characters is up to 50 KB on disk, and a client
    # held to 10 events a second would otherwise write 500 KB a second (over 40 GB a day).
    cost = max(len(batch), math.ceil(len(raw) / EVENT_BYTES))
    wait = limit.take(_client(request), cost)
    if wait:
        metrics.count_events("rate_limited", len(batch))
        raise _too_many(
            f"too many events from this client: at most {limit.rate:g} a second "
            f"(or {limit.rate * EVENT_BYTES / 1024:g} KiB)",
            wait,
        )
    now = datetime.now(UTC)
    accepted: list[Event] = []
    rejected: list[dict[str, object]] = []
    for number, item in enumerate(batch):
        try:
            accepted.append(parse_event(item, now=now))
        except RecommenderError as exc:
            rejected.append({"index": number, "error": str(exc)})
    await _keep(request, index.path, accepted, metrics)
    metrics.count_events("accepted", len(accepted))
    metrics.count_events("rejected", len(rejected))
    return JSONResponse({"accepted": len(accepted), "rejected": rejected}, headers=NO_STORE)


async def _body(request: Request) -> bytes:
    """The body, read up to ``MAX_EVENTS_BYTES``; 413 beyond, before any of it is parsed; 400
    when it has not all come within ``BODY_SECONDS`` or the client went away meanwhile."""
    said = request.headers.get("content-length", "")
    if said.isdigit() and int(said) > MAX_EVENTS_BYTES:
        raise _too_large()
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_EVENTS_BYTES:
                    raise _too_large()
                chunks.append(chunk)
    except TimeoutError:  # a body trickled in a byte at a time holds its connection for ever
        raise ApiError("bad-request", f"the body did not come within {BODY_SECONDS:g} s") from None
    except ClientDisconnect:  # not an error of the service's: no traceback in its log
        raise ApiError("bad-request", "the client went away before its body came") from None
    return b"".join(chunks)


def _client(request: Request) -> str:
    return client_key(request.client.host if request.client else "-")


def _too_many(said: str, wait: float) -> ApiError:
    seconds = max(1, math.ceil(wait))
    return ApiError(
        "too-many-requests",
        f"{said}; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


def _too_large() -> ApiError:
    return ApiError(
        "payload-too-large",
        f"a batch of events is at most {MAX_EVENTS_BYTES} bytes; send smaller batches",
    )


async def _keep(request: Request, path: Path | None, events: list[Event], metrics: Metrics) -> None:
    """``events`` on disk, or the ApiError saying why they are not (each then counted)."""
    if not events:
        return
    writer: EventWriter = request.app.state.event_writer
    try:
        if await writer.write(events):
            return
        failure = ApiError(
            "events-unavailable",
            "events are coming faster than the disk takes them; try again",
            headers={"Retry-After": "1"},
        )
    except IndexNotFoundError as exc:
        failure = ApiError("index-unavailable", public_message(str(exc), path))
    except IndexWriteError as exc:  # EventsReadOnlyError too: read-only, disk full
        failure = ApiError("events-unavailable", public_message(str(exc), path))
    metrics.count_events("refused", len(events))
    raise failure


def complete_view(index: IndexState) -> Callable[[Event], Event]:
    """A view with what the box did not say filled in from the index: its article's section
    and language, read from the columns a reader holds (``EventWriter``'s ``complete``, run on
    its thread; an article not in the index leaves the view as it is)."""

    def complete(view: Event) -> Event:
        rec = index.loaded
        if rec is None or not isinstance(view, View):
            return view
        snapshot = rec.snapshot
        row = snapshot.row(view.article)  # UnknownArticleError: the view is kept as sent
        columns = snapshot.columns
        code = int(columns.category_codes[row])
        return dataclasses.replace(
            view,
            section=view.section or (columns.categories[code] if code >= 0 else None),
            language=view.language or columns.language(row),
        )

    return complete


@router.get(
    "/report",
    summary="Views, clicks and click-through of the box",
    operation_id="getReport",
    responses={200: {"model": ReportAnswer}},
)
async def get_report(
    request: Request,
    index: Index,
    options: Options,
    threads: WorkThreads,
    since: Annotated[
        str | None,
        Query(description="Only events at or after this day (2026-12-01) or ISO-8601 time."),
    ] = None,
) -> Response:
    """As `recommend report --json`; needs the token when the server has one. Computed on the
    writer thread: reading the whole store never holds up a related list. An answer is reused
    for a minute (``ReportCache``); a client without the token may have a new one computed
    every ``REPORT_SECONDS`` on average (a few at once), 429 beyond."""
    if options.token:
        authorize(request, options)
    when = None if since is None else parse_since(since)
    index.open()  # 503 while there is no index
    cache: ReportCache = request.app.state.report_cache
    key = "" if when is None else when.isoformat()
    answer = cache.cached(key)
    if answer is None:
        if not options.token:  # anyone may ask: each new report is seconds of a core
            limit: RateLimit = request.app.state.report_rate
            wait = limit.take(_client(request), 1)
            if wait:
                raise _too_many(
                    f"too many reports for this client: one every {REPORT_SECONDS} s", wait
                )

        def build() -> dict[str, object]:
            events = read_events(index.path, when) if index.path else iter(())
            found = report_of(events, since=when)
            return found.as_json()

        answer = cache.compute(key, threads.write(build))
    return JSONResponse(await asyncio.shield(answer), headers=NO_STORE)
