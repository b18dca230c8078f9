"""The layers around the routes: the outermost (``Edge``): the body limit, the request id, a
log line per request (this module's logger, what the client sent escaped and cut short) and
the request metrics; ``Head``, which answers HEAD as GET without the body; ``Gzip``, which
compresses larger answers; and ``IdPaths``, which hands the article routes their ids as sent."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware

from .errors import PROBLEM_JSON, problem_body
from .logs import REQUEST_ID, request_id
from .metrics import Metrics, method_label, route_label

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(StarletteHTTPException):
    """Raised while reading a body (with no Content-Length) that grows past the limit; an
    HTTPException, so that FastAPI's body parsing passes it on instead of answering 400."""


#: The header that carries a request's id, both ways (``logs.request_id``).
REQUEST_ID_HEADER = b"x-request-id"


class Edge:
    """Outermost layer: refuses bodies over the limit unread, gives each request an id
    (its ``X-Request-ID`` when safe to log, else a new one; echoed in the answer's), logs one
    line per request with its latency, and counts it for /metrics."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics) -> None:
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
        rid = request_id(_header(scope, REQUEST_ID_HEADER))
        token = REQUEST_ID.set(rid)

        async def send_observed(message: Message) -> None:
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                status = int(message["status"])
                sent_start = True
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, rid.encode("ascii")))
                message = {**message, "headers": headers}
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
            try:
                observe(self.metrics, scope, status, time.perf_counter() - started, rid)
            finally:
                REQUEST_ID.reset(token)

    def _too_large_message(self, length: int | None) -> str:
        said = f" ({length} bytes)" if length is not None else ""
        return (
            f"request body too large{said}: the limit is {self.max_body_bytes} bytes (the "
            "server's --max-body-bytes); send smaller batches"
        )

    async def _too_large(self, send: Send, length: int | None) -> None:
        body = problem_body("payload-too-large", self._too_large_message(length))
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def observe(metrics: Metrics, scope: Scope, status: int, seconds: float, rid: str) -> None:
    """Count an answered request in ``metrics`` and log its line (its fields apart too, for
    JSON logs): ``Edge``'s, and ``HotReads``' (routes/related.py) for what it answers."""
    method = str(scope.get("method", ""))
    metrics.observe(method_label(method), route_label(scope), status, seconds)
    if not log.isEnabledFor(logging.INFO):  # --log-level warning: no line to make
        return
    target = scope.get("raw_path") or str(scope.get("path", "")).encode()
    query = scope.get("query_string") or b""
    if query:
        target += b"?" + query
    client = scope.get("client") or ("-", 0)
    fields = {
        "client": _shown(str(client[0]), 64),
        "method": _shown(method, 20),
        "path": _shown_target(bytes(target), 200),
        "status": status,
        "ms": round(seconds * 1000, 1),
    }
    log.info(
        "%s %s %s %s %d %.1f ms",
        fields["client"],
        rid,
        fields["method"],
        fields["path"],
        status,
        seconds * 1000,
        extra={"http": fields, "request_id": rid},
    )


class Head:
    """Answers ``HEAD`` as the ``GET`` of the same URL, without its body: the same status and
    headers (``ETag``, ``Content-Length``, a 304 for a tag the client holds), on every route
    that answers GET, the routes' own code unchanged.

    The layers inside see a GET in a copy of the scope. The server's and ``Edge``'s scope
    keeps HEAD (uvicorn sends no body for it; the metrics count it as HEAD) and is given the
    route that answered, for its label."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        inner = dict(scope, method="GET")
        try:
            await self.app(inner, receive, send_headers)
        finally:
            if "route" in inner:
                scope["route"] = inner["route"]


class Gzip:
    """Answers of ``minimum_size`` bytes and more gzipped for clients that take it
    (Starlette's ``GZipMiddleware``, which adds ``Vary: Accept-Encoding``), with a strong
    ETag made weak where the answer was compressed.

    A strong tag promises these very bytes (RFC 9110 8.8.1): the static files' tags do, and
    the gzipped bytes are others. As weak the tag still matches the file's in
    ``If-None-Match``. The routes' own tags are weak already, and stay as they are."""

    def __init__(self, app: ASGIApp, *, minimum_size: int, compresslevel: int) -> None:
        self.app = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=compresslevel)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_weakened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=message.setdefault("headers", []))
                etag = headers.get("etag")
                if etag and etag.startswith('"') and "content-encoding" in headers:
                    headers["etag"] = f"W/{etag}"
            await send(message)

        await self.app(scope, receive, send_weakened)


#: Where the paths with an article id start (``/articles/{article_id:path}`` and its
#: ``/similar``).
ARTICLE_PATHS = "/articles/"


class IdPaths:
    """Routes ``/articles/...`` on the path as sent, so that an id holding slashes, sent
    percent-encoded (``a-1001%2Fsimilar``), stays one id.

    The server decodes ``%2F`` into ``/`` before routing (``scope["path"]``): the article
    ``a-1001/similar`` would be answered with the related list of ``a-1001``. Here the path
    is cut at the slashes as sent (``raw_path``) and each part percent-encoded again, so
    that only a slash as sent separates the parts; the routes' ``ArticleId`` decodes the id
    once. Other paths pass unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = encoded_path(scope)
            if path is not None:
                scope["path"] = path  # in place: Edge reads the route chosen from this scope
        await self.app(scope, receive, send)


#: A path as sent that holds only what percent-encoding leaves as it is (RFC 3986 unreserved).
_UNRESERVED = re.compile(rb"[A-Za-z0-9._~/-]*")


def encoded_path(scope: Scope) -> str | None:
    """The path of an article route with each part between slashes as sent percent-encoded;
    None for other paths.

    The part routed is found as Starlette finds it (``get_route_path``): the path without
    the server's root path when it starts with it (uvicorn puts the root path in both
    ``path`` and ``raw_path``), else the whole path (servers and test clients that give a
    ``root_path`` but leave it out of the path); the path as sent likewise."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "").rstrip("/")
    prefix = root if root and path.startswith(root + "/") else ""
    route = path[len(prefix) :]
    if not route.startswith(ARTICLE_PATHS):
        return None
    parts = route.split("/")
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and _UNRESERVED.fullmatch(raw) and raw == path.encode():
        return path  # sent with nothing encoded, nothing to encode: as the general case gives
    if isinstance(raw, bytes):
        if prefix and raw.startswith(prefix.encode("utf-8", "replace") + b"/"):
            raw = raw[len(prefix.encode("utf-8", "replace")) :]
        sent = [unquote_to_bytes(part).decode("utf-8", "replace") for part in raw.split(b"/")]
        if "/".join(sent).startswith(ARTICLE_PATHS):  # else not the path routed: keep it
            parts = sent
    return prefix + "/".join(quote(part, safe="") for part in parts)


#: What a log line shows of a request target as it is: printable ASCII (``%`` included).
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _shown(text: str, limit: int) -> str:
    """``text`` for a log line, cut at ``limit`` characters: printable ASCII but for spaces
    and backslashes, the rest escaped as in a Python string (``\\x1b``). A client chose it
    (the method, or the address a proxy's X-Forwarded-For gave): it must neither forge a line
    nor drive the terminal that shows the log."""
    escaped = "".join(
        c if "!" <= c <= "~" and c != "\\" else ascii(c)[1:-1] if c != " " else "\\x20"
        for c in text[: limit + 1]
    )
    return _cut(escaped, limit)


def _shown_target(target: bytes, limit: int) -> str:
    """The request target for a log line: every byte that is not printable ASCII
    percent-encoded (what is already percent-encoded stays), cut at ``limit`` characters."""
    shown = quote(target[: limit + 1], safe=_PRINTABLE)
    return _cut(shown, limit)


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    """The first value of a header (``wanted`` in lowercase, as ASGI servers give names)."""
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
