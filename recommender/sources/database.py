"""A site's database as a source of articles: rows of a table or a query, read with SQLAlchemy.

``postgresql://`` is read with psycopg 3, ``mysql://`` and ``mariadb://`` with PyMySQL,
``sqlite:///`` with Python's own sqlite3. With an update column only the rows updated since
the cursor's position are read (that position included: ties on it are read again, and told
apart by their digests in ``sources.sync``); rows with no update time are read every time.
Errors become one line that never holds the password.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ..errors import SourceError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

#: URL schemes read as databases, and the SQLAlchemy driver each one is read with.
DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}
#: Seconds to wait for a database server to answer before saying it cannot be reached.
CONNECT_TIMEOUT = 10
#: Rows fetched from the server at a time.
BATCH = 5000


def is_database(source: str) -> bool:
    scheme = source.partition(":")[0].lower()
    return "://" in source and scheme.split("+")[0] in DRIVERS


@dataclass(frozen=True)
class Deleted:
    """``--deleted-column``: ``COLUMN`` (a row is taken down when it holds a value other than
    null, false, 0 or ''), ``COLUMN=V1,V2`` (when it holds one of these) or ``COLUMN!=V1,V2``
    (when it holds none of these)."""

    column: str
    values: tuple[str, ...] = ()
    negated: bool = False

    @classmethod
    def parse(cls, text: str) -> Deleted:
        match = re.fullmatch(r"\s*([^=!]+?)\s*(?:(!?=)(.*))?", text)
        if not match or not match.group(1):
            raise SourceError(
                f"--deleted-column {text!r} is not COLUMN, COLUMN=VALUE,... or COLUMN!=VALUE,..."
            )
        values = tuple(v.strip() for v in (match.group(3) or "").split(",") if v.strip())
        if match.group(2) and not values:
            raise SourceError(f"--deleted-column {text!r} names no value after {match.group(2)}")
        return cls(match.group(1), values, match.group(2) == "!=")

    def holds(self, value: object) -> bool:
        """Whether a row whose column holds ``value`` is taken down."""
        if not self.values:
            return value not in (None, False, 0, "", "0")
        text = "" if value is None else str(value)
        return (text in self.values) != self.negated


@dataclass(frozen=True)
class Rows:
    """What one read of a database gave: its columns and its rows as JSON-ready records (a
    value of another type as its ISO-8601 or decimal text), with the largest update time."""

    columns: tuple[str, ...]
    records: list[dict[str, Any]]
    position: str | None


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def position_text(value: Any) -> str | None:
    """An update time as the cursor stores it: JSON with its kind, so that it is bound back
    as the same type."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return json.dumps({"datetime": value.isoformat()})
    if isinstance(value, date):
        return json.dumps({"date": value.isoformat()})
    if isinstance(value, Decimal):
        return json.dumps({"decimal": str(value)})
    if isinstance(value, bool | int | float | str):
        return json.dumps({"value": value})
    raise SourceError(
        f"the update column holds {type(value).__name__} values, not times or numbers"
    )


def position_value(text: str) -> Any:
    """The value of ``position_text``, as it was."""
    stored = json.loads(text)
    if "datetime" in stored:
        return datetime.fromisoformat(stored["datetime"])
    if "date" in stored:
        return date.fromisoformat(stored["date"])
    if "decimal" in stored:
        return Decimal(stored["decimal"])
    return stored["value"]


def _later(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    try:
        return b if b > a else a
    except TypeError:  # a naive and an aware time: compared as UTC
        aware = [v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v for v in (a, b)]
        return b if aware[1] > aware[0] else a


def later_position(stored: str | None, read: str | None) -> str | None:
    """The later of two positions (the stored one when a run read no update time)."""
    if stored is None or read is None:
        return read if stored is None else stored
    return position_text(_later(position_value(stored), position_value(read)))


def url_of(source: str) -> URL:
    """The SQLAlchemy URL of a database source, with its driver."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(source)
    except (ArgumentError, ValueError) as exc:
        raise SourceError(f"{shown(source)} is not a database URL ({exc})") from None
    driver = DRIVERS.get(url.drivername.split("+")[0].lower())
    if driver is None:
        known = ", ".join(f"{s}://" for s in DRIVERS)
        raise SourceError(f"unknown database kind {url.drivername!r}; known: {known}")
    if driver == "sqlite":  # SQLite would make an empty file where none is: read it only
        path = url.database or ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise SourceError(f"cannot reach database {shown(source)} (no such file)")
        return url.set(
            drivername=driver,
            database=f"file:{Path(path).absolute()}?mode=ro",
            query={**url.query, "uri": "true"},
        )
    return url.set(drivername=driver)


def shown(source: str) -> str:
    """A source as messages and cursors name it: a URL with its password masked."""
    if not is_database(source):
        return source
    try:
        from sqlalchemy.engine import make_url

        return make_url(source).render_as_string(hide_password=True)
    except Exception:  # not parsed: show only its kind
        return source.partition("://")[0] + "://..."


def _engine(url: URL) -> Engine:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    options: dict[str, Any] = {}
    if url.get_backend_name() in ("postgresql", "mysql"):
        options["connect_timeout"] = CONNECT_TIMEOUT
    try:
        return create_engine(url, poolclass=NullPool, connect_args=options)
    except ImportError as exc:
        raise SourceError(
            f"cannot read {url.get_backend_name()} databases: its driver is not installed "
            f"({exc.name or exc}); pip install psycopg[binary] pymysql"
        ) from None


def _failure(exc: Exception, source: str, password: str | None) -> SourceError:
    """One line for a database error: what went wrong, in the database's words."""
    from sqlalchemy.exc import DBAPIError

    where = shown(source)
    detail = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc)
    detail = " ".join(detail.split())
    if password:
        detail = detail.replace(password, "***")
    lowered = detail.lower()
    if any(
        words in lowered
        for words in ("password authentication failed", "access denied", "authentication failed")
    ):
        return SourceError(f"database {where} refused the user name or password ({detail})")
    if any(
        words in lowered
        for words in (
            "connection refused",
            "could not translate host",
            "can't connect",
            "timeout",
            "timed out",
            "no route to host",
            "name or service not known",
            "unable to open database file",
            "no such file or directory",
            "is the server running",
        )
    ):
        return SourceError(f"cannot reach database {where} ({detail})")
    return SourceError(f"database {where}: {detail}")


def _quoted(connection: Connection, name: str) -> str:
    preparer = connection.dialect.identifier_preparer
    return ".".join(preparer.quote(part) for part in name.split("."))


def _escaped(query: str | None) -> str:
    return (query or "").replace(":", "\\:")


def _check_columns(found: Sequence[str], wanted: Mapping[str, str], what: str) -> None:
    for role, column in wanted.items():
        if column not in found:
            raise SourceError(
                f"column {column!r} ({role}) is not in {what}; its columns: {', '.join(found)}"
            )


@contextmanager
def _connected(source: str) -> Iterator[Connection]:
    """A connection to the database at ``source``, its engine disposed of after; a database
    error inside becomes ``_failure``'s one line."""
    from sqlalchemy.exc import SQLAlchemyError

    url = url_of(source)
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise _failure(exc, source, url.password) from None
    finally:
        engine.dispose()


def read_rows(
    source: str,
    *,
    table: str | None,
    query: str | None,
    columns: Mapping[str, str],
    updated_column: str | None,
    since: str | None,
) -> Rows:
    """The rows of ``table`` or ``query`` at ``source`` (updated at ``since`` or later, with
    ``updated_column``); ``columns``: role -> column each row must have (SourceError names a
    missing one and lists those there)."""
    from sqlalchemy import text

    what = f"table {table}" if table else "the query"
    with _connected(source) as connection:
        # A colon in the site's own SQL is its text, not a parameter of ours.
        base = f"SELECT * FROM {_quoted(connection, table)}" if table else _escaped(query)
        wrapped = f"SELECT * FROM ({base.strip().rstrip(';')}) AS sync_source"
        probe = connection.execute(text(f"{wrapped} WHERE 1 = 0"))
        found = tuple(probe.keys())
        probe.close()
        _check_columns(found, columns, what)
        statement, params = wrapped, {}
        if updated_column is not None:
            column = _quoted(connection, updated_column)
            if since is not None:
                statement += f" WHERE {column} >= :since OR {column} IS NULL"
                params["since"] = position_value(since)
        result = connection.execution_options(stream_results=True, max_row_buffer=BATCH)
        rows = result.execute(text(statement), params)
        records: list[dict[str, Any]] = []
        latest = None
        at = found.index(updated_column) if updated_column is not None else -1
        for part in rows.partitions(BATCH):
            for row in part:
                if at >= 0:
                    latest = _later(latest, row[at])
                records.append(
                    {name: _json_value(value) for name, value in zip(found, row, strict=True)}
                )
    return Rows(found, records, position_text(latest))


def read_ids(source: str, query: str) -> Iterator[str]:
    """The first column of every row of ``query`` at ``source``, as text: ids taken down."""
    from sqlalchemy import text

    with _connected(source) as connection:
        found = connection.execute(text(_escaped(query))).fetchall()
    return (str(_json_value(row[0])) for row in found if row and row[0] is not None)
