"""Errors as HTTP answers: RFC 9457 problem details (``application/problem+json``), never a
stack trace.

Every error is one of the kinds in ``PROBLEMS``: its ``type`` (a URI a client can compare,
``https://recommender.invalid/problems/unknown-article``), title and status. The body is
``{"type", "title", "status", "detail", "error"}``: ``error`` is ``detail`` again, for the
clients written when it was the only field; a kind may add fields (``problems``,
``invalid``). Library errors take their kind from ``LIBRARY_PROBLEMS``; ``ApiError`` is the
service's own. The handlers read the index folder (to keep it out of messages) from
``app.state.index``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from ..results import to_json
from .options import MAX_WRITE_WAIT

log = logging.getLogger(__name__)

#: Where the problem types live: a name under a domain that never resolves (RFC 2606), so
#: that a type is the same string on every deployment, for clients to compare, not fetch.
PROBLEM_BASE = "https://recommender.invalid/problems/"


@dataclass(frozen=True)
class Problem:
    """A kind of error: its name (the last part of its ``type``), status and title."""

    name: str
    status: int
    title: str

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.name


#: Every kind of error the service answers, by name (docs/http.md has the same table).
PROBLEMS: dict[str, Problem] = {
    problem.name: problem
    for problem in (
        Problem("invalid-json", 400, "The request body is not valid JSON"),
        Problem("bad-request", 400, "The request cannot be read"),
        Problem("unauthorized", 401, "The write token is missing"),
        Problem("forbidden", 403, "Writes are not allowed with this token"),
        Problem("unknown-article", 404, "No such article in the index"),
        Problem("not-found", 404, "No such endpoint"),
        Problem("method-not-allowed", 405, "Method not allowed on this endpoint"),
        Problem("index-busy", 409, "The index is being written by another writer"),
        Problem("payload-too-large", 413, "The request body is over the server's limit"),
        Problem("validation", 422, "The request does not match the API"),
        Problem("invalid-query", 422, "A value of the query is out of range"),
        Problem("invalid-articles", 422, "Articles in the body are invalid"),
        Problem("too-many-requests", 429, "Too many requests from this client"),
        Problem("internal-error", 500, "Internal error"),
        Problem("index-unavailable", 503, "The index cannot be opened"),
        Problem("model-unavailable", 503, "The embedding model cannot be loaded"),
        Problem("events-unavailable", 503, "Events cannot be kept now; reads are unaffected"),
    )
}

#: Library errors and the kind each one becomes; any other is an internal error.
LIBRARY_PROBLEMS: tuple[tuple[type[RecommenderError], str], ...] = (
    (UnknownArticleError, "unknown-article"),
    (InvalidQueryError, "invalid-query"),
    (SettingsError, "invalid-query"),
    (InvalidArticlesError, "invalid-articles"),
    (InvalidArticleError, "invalid-articles"),
    (InputFileError, "invalid-articles"),
    (IndexBusyError, "index-busy"),
    (IndexNotFoundError, "index-unavailable"),
    (IndexDamagedError, "index-unavailable"),
    (IncompatibleIndexError, "index-unavailable"),
    (ModelError, "model-unavailable"),
)

#: The kind of an error Starlette or FastAPI raised, by its status.
_HTTP_PROBLEMS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
}


class ApiError(Exception):
    """An error of one of the ``PROBLEMS`` (by name), answered with its status."""

    def __init__(
        self, kind: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.problem = PROBLEMS[kind]
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    @property
    def status(self) -> int:
        return self.problem.status


def problem_body(kind: str, message: str, **extra: Any) -> bytes:
    """The problem details of an error of ``kind``, as JSON bytes."""
    problem = PROBLEMS[kind]
    fields = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "detail": message,
        "error": message,
    }
    return to_json({**fields, **extra}).encode()


#: The media type of every error (RFC 9457).
PROBLEM_JSON = "application/problem+json"


def error_response(
    kind: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    """The answer of an error of ``kind``: its problem details, never cached."""
    return Response(
        problem_body(kind, message, **extra),
        status_code=PROBLEMS[kind].status,
        media_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def json_body_problem(exc: BaseException) -> str | None:
    """Why a request body could not be read as JSON (the exception ``json.loads`` raised), for
    a 400; None for an exception that is not about the body."""
    prefix = "the request body is not valid JSON"
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return f"{prefix}: {exc}"
    if isinstance(exc, RecursionError):  # deeper than Python's json module reads
        return f"{prefix}: nested too deeply"
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"{prefix}: a number has more than {sys.get_int_max_str_digits():,} digits"
    return None


def public_message(message: str, path: Path | None) -> str:
    """A library message without the server's folder names: the index's folder ``path``,
    however the message names it ("the index at DIR", "no index at DIR", "index DIR", "DIR"),
    becomes "the index" ("no index"), a file in it its name (``LOCK``), and a command's
    ``--index DIR`` the placeholder ``DIR``."""
    if path is None:
        return message
    forms = {str(path), str(path.absolute()), str(path.resolve())}
    for form in sorted(forms, key=len, reverse=True):  # the longest first: a prefix of another
        folder = rf"(?<![\w.~/-]){re.escape(form)}"
        end = r"(?![\w.~-])"
        message = re.sub(rf"--index {folder}{end}", "--index DIR", message)
        message = re.sub(rf"{folder}/", "", message)
        message = re.sub(rf"\bno (?:index (?:at )?)?{folder}{end}", "no index", message)
        message = re.sub(
            rf"(?:\b(?:the|an?) )?(?:\bindex (?:at )?)?{folder}{end}", "the index", message
        )
    return message


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.problem.name, exc.message, headers=exc.headers, **exc.extra)


async def _library_error(request: Request, exc: Exception) -> Response:
    # Any other library error is a write that failed (disk full): its message still helps.
    kind = next((name for error, name in LIBRARY_PROBLEMS if isinstance(exc, error)), "")
    message = public_message(str(exc), request.app.state.index.path)
    if isinstance(exc, IndexBusyError):
        message = (
            "the index is being written by another writer; retry when it is done, or "
            f"pass ?wait=SECONDS (at most {MAX_WRITE_WAIT:g}) to wait for it"
        )
    kind = kind or "internal-error"
    if PROBLEMS[kind].status >= 500:
        log.error("%s", exc)
    return error_response(kind, message)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error") or error.get("msg")
            return error_response("invalid-json", f"the request body is not valid JSON: {reason}")
        kind = where[0] if where else "request"
        name = ".".join(where[1:]) or kind
        problems.append({"parameter": name, "in": kind, "message": error.get("msg", "invalid")})
    text = "; ".join(f"{p['in']} parameter {p['parameter']!r}: {p['message']}" for p in problems)
    return error_response("validation", f"invalid request: {text}", problems=problems)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    kind = _HTTP_PROBLEMS.get(exc.status_code, "bad-request")
    cause = exc.__cause__
    problem = json_body_problem(cause) if cause is not None else None
    if exc.status_code == 400 and problem:  # FastAPI could not read a JSON body
        kind, message = "invalid-json", problem
    elif exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint; see /docs for the API"
    elif exc.status_code == 405:
        message = "this method is not allowed here; see /docs for the API"
    if exc.status_code >= 500:
        kind = "internal-error"
    return error_response(kind, message, headers=getattr(exc, "headers", None))


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response("internal-error", "internal error; the server log has the details")


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details (see the module's docstring)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RecommenderError, _library_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
