"""Errors as HTTP answers: ``{"error": message}`` with a status, never a stack trace.

Library errors take their status from ``STATUS``; ``ApiError`` is the service's own. The
handlers read the index folder (to keep it out of messages) from ``app.state.index``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
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

#: Library errors and the HTTP status each one becomes.
STATUS: tuple[tuple[type[RecommenderError], int], ...] = (
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


def error_response(
    status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    """The answer of an error: ``{"error": message, **extra}``, never cached."""
    return Response(
        to_json({"error": message, **extra}).encode(),
        status_code=status,
        media_type="application/json",
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
    return error_response(exc.status, exc.message, headers=exc.headers, **exc.extra)


async def _library_error(request: Request, exc: Exception) -> Response:
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    message = public_message(str(exc), request.app.state.index.path)
    if isinstance(exc, IndexBusyError):
        message = (
            "the index is being written by another writer; retry when it is done, or "
            f"pass ?wait=SECONDS (at most {MAX_WRITE_WAIT:g}) to wait for it"
        )
    if status >= 500:
        log.error("%s", exc)
    return error_response(status, message)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error") or error.get("msg")
            return error_response(400, f"the request body is not valid JSON: {reason}")
        kind = where[0] if where else "request"
        name = ".".join(where[1:]) or kind
        problems.append({"parameter": name, "in": kind, "message": error.get("msg", "invalid")})
    text = "; ".join(f"{p['in']} parameter {p['parameter']!r}: {p['message']}" for p in problems)
    return error_response(422, f"invalid request: {text}", problems=problems)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    cause = exc.__cause__
    if exc.status_code == 400 and cause is not None:  # FastAPI could not read a JSON body
        message = json_body_problem(cause) or message
    elif exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint; see /docs for the API"
    elif exc.status_code == 405:
        message = "this method is not allowed here; see /docs for the API"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal error; the server log has the details")


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as JSON (see the module's docstring)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RecommenderError, _library_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
