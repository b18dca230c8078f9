"""The service's log lines: the id of the request being answered (``request_id``, kept in
``REQUEST_ID`` while it is), and one JSON object a line for ``--log-format json``
(``JsonFormatter``)."""

from __future__ import annotations

import json
import logging
import os
import random
import re
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

#: The request a log record was made for, set by ``Edge`` while it answers one (threads the
#: route runs on get a copy of the context, so their records have it too).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

#: An ``X-Request-ID`` kept as sent (a proxy's or a client's, to follow a request through
#: several services); any other is replaced: it is logged and echoed in a header.
SENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id(sent: bytes | None) -> str:
    """The id of a request: ``sent`` (its ``X-Request-ID``) when it is at most 128 letters,
    digits and ``._:-``, else a new one (32 hex digits)."""
    if sent is not None and SENT_ID.fullmatch(sent):
        return sent.decode("ascii")
    # What ``uuid.uuid4().hex`` gives (its version and variant bits), from a generator seeded
    # from os.urandom instead of a system call a request (a fifth of the time). An id only
    # tells requests apart in the logs: it guards nothing.
    value = _IDS.getrandbits(128) & _UUID4_CLEARED | _UUID4_SET
    return f"{value:032x}"


#: The random ids' generator, seeded from os.urandom, again in a forked child.
_IDS = random.Random()
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_IDS.seed)
#: The bits ``uuid.UUID(version=4)`` clears and sets: variant RFC 4122, version 4.
_UUID4_CLEARED = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def json_line(level: str, logger: str, message: str, **fields: Any) -> str:
    """One log line as a JSON object (what ``JsonFormatter`` writes), for a line written
    without the logging module (``recommend serve``'s first)."""
    data: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "process": os.getpid(),
        "message": message,
    }
    data.update(fields)
    return json.dumps(data)


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object on one line: ``time`` (UTC, ISO 8601), ``level``,
    ``logger``, ``process``, ``message``, ``request_id`` when made while a request was
    answered, the fields of a request line (``http``: method, path, status, ms, client) and
    ``exception`` (the traceback) if any. JSON escapes every control character, so no value
    can end the line early."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        found = getattr(record, "request_id", None) or REQUEST_ID.get()
        if found:
            data["request_id"] = found
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            data.update(http)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, default=str)
