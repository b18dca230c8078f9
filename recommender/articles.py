"""Reading articles: JSON Lines and CSV files in, validated ``Article`` values out.

A bad record never stops the reader: it is reported with its file and line, and the caller
decides whether that fails the whole import or is skipped.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputFileError, InvalidArticleError, InvalidArticlesError
from .text import clean_html, clean_title

if TYPE_CHECKING:  # imported where a file is read, as gzip is: an Article needs neither
    import csv

#: The fields an article is made of; any other input field is kept as metadata.
FIELDS = ("id", "title", "body", "category", "published_at", "url", "source", "lang", "tags")

#: File name endings the reader understands, with the format each one means.
FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
    ".csv": "csv",
    ".csv.gz": "csv",
}


@dataclass(frozen=True)
class Article:
    """One news article as the engine stores it (title and body already cleaned of HTML)."""

    id: str
    title: str
    body: str = ""
    category: str | None = None
    published_at: datetime | None = None
    url: str | None = None
    source: str | None = None
    lang: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ReadReport:
    """What reading a set of files gave: valid articles (last one wins per id) and the rest."""

    articles: list[Article]
    records: int = 0
    invalid: list[InvalidArticleError] = field(default_factory=list)
    duplicates: int = 0


def parse_datetime(value: object) -> datetime | None:
    """An ISO-8601 string (or date/datetime) as an aware UTC datetime; no zone means UTC.

    ``None`` and ``""`` mean "not given" and give None, so a caller that needs a date has to
    check for it. Anything else gives a datetime whose ``.timestamp()`` works, or raises
    ValueError naming the value: a string that is not ISO-8601 (one of spaces only included),
    a value of another type, or a moment outside years 1 to 9999 once moved to UTC
    (``0001-01-01T00:00:00+01:00`` is in year 0 there).
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{quoted(value)} is not an ISO-8601 date") from None
    else:
        raise ValueError(f"expected an ISO-8601 date string, got {type(value).__name__}")
    if parsed.utcoffset() is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)  # once in UTC, its timestamp cannot overflow
    except OverflowError:
        given = value if isinstance(value, str) else parsed.isoformat()
        raise ValueError(
            f"{quoted(given)} is out of the supported range (years 1 to 9999 in UTC)"
        ) from None


def parse_field_map(pairs: Iterable[str]) -> dict[str, str]:
    """``["id=article_id", "body=content"]`` as ``{"id": "article_id", "body": "content"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not ours or not theirs:
            raise InvalidArticleError(f"field mapping {pair!r} is not of the form FIELD=COLUMN")
        if ours not in FIELDS:
            raise InvalidArticleError(
                f"field mapping {pair!r} names unknown field {ours!r}; known: {', '.join(FIELDS)}"
            )
        mapping[ours] = theirs
    return mapping


# Characters an id may not hold: C0 and C1 controls (tab, newline, carriage return, NUL, ...)
# and the Unicode line and paragraph separators, which str.splitlines() also breaks at. Without
# them an id can be typed on a command line and never breaks a one-per-line file of ids.
_ID_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A lone surrogate can come from a JSON escape ("\\ud800") but cannot be written as UTF-8, so
# SQLite, hashing and the model would all fail on it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(value: str, name: str) -> None:
    found = _SURROGATE.search(value)
    if found:
        raise InvalidArticleError(
            f"{name} is not valid Unicode (lone surrogate U+{ord(found.group()):04X})"
        )


def _check_id(article_id: str) -> None:
    if not article_id.strip():
        raise InvalidArticleError("id is empty")
    _check_unicode(article_id, "id")
    found = _ID_FORBIDDEN.search(article_id)
    if found:
        raise InvalidArticleError(
            f"id must not contain control characters "
            f"(U+{ord(found.group()):04X} at character {found.start() + 1} of {quoted(article_id)})"
        )


def check_article(article: Article) -> None:
    """Raise InvalidArticleError for an Article value (made in Python, not read from a file)
    that the reader would have rejected: an id that is not a string, is empty or holds control
    characters, an empty title, or text that is not valid Unicode."""
    if not isinstance(article.id, str):
        raise InvalidArticleError(f"id must be a string, got {_kind(article.id)}")
    try:
        _check_id(article.id)
        if not isinstance(article.title, str) or not article.title.strip():
            raise InvalidArticleError("title must be a non-empty string")
        texts = [article.title, article.body, article.category, article.url, article.source]
        for name, value in zip(("title", "body", "category", "url", "source"), texts, strict=True):
            if value is not None:
                _check_unicode(value, name)
        for tag in article.tags:
            _check_unicode(tag, "tags")
    except InvalidArticleError as exc:
        raise InvalidArticleError(f"article {quoted(article.id)}: {exc.reason}") from None


def _optional_text(record: Mapping[str, Any], key: str, name: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArticleError(f"{name} must be a string, got {type(value).__name__}")
    _check_unicode(value, name)
    value = value.strip()
    return value or None


#: How deep a metadata value may nest lists and objects. Python's json module gives up near
#: 1,000 levels (its recursion limit), and the value is written and read back as JSON by code
#: that may already be deep in the stack; real metadata nests a few levels.
MAX_NESTING = 100


@dataclass(frozen=True)
class _LongNumber:
    """A JSON integer with more digits than Python turns into an int (4,300 by default)."""

    digits: int


def _parse_int(text: str) -> int | _LongNumber:
    try:
        return int(text)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return _LongNumber(len(text.lstrip("-")))


def _too_long(value: _LongNumber, name: str) -> InvalidArticleError:
    return InvalidArticleError(f"{name} is a number too large ({value.digits:,} digits)")


def _metadata_value(value: Any, name: str, depth: int = 0) -> Any:
    """A metadata value as plain JSON: NaN and infinity (which JSON cannot hold) become null."""
    if isinstance(value, str):
        _check_unicode(value, name)
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, _LongNumber):
        raise _too_long(value, name)
    if isinstance(value, dict | list | tuple) and depth >= MAX_NESTING:
        raise InvalidArticleError(f"{name} is nested too deeply (more than {MAX_NESTING} levels)")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            key = str(key)
            _check_unicode(key, f"{name} (a key in it)")
            out[key] = _metadata_value(item, name, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_metadata_value(item, name, depth + 1) for item in value]
    return value


def parse_article(
    record: object,
    field_map: Mapping[str, str] | None = None,
    drop_fields: Iterable[str] = (),
) -> Article:
    """Validate one input record and turn it into an Article; raises InvalidArticleError."""
    if not isinstance(record, Mapping):
        raise InvalidArticleError(f"expected an object with an id and a title, got {_kind(record)}")
    field_map = field_map or {}
    column = {name: field_map.get(name, name) for name in FIELDS}

    raw_id = record.get(column["id"])
    if isinstance(raw_id, _LongNumber):
        raise _too_long(raw_id, "id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        what = "missing" if raw_id is None else f"a {_kind(raw_id)}"
        raise InvalidArticleError(f"id must be a string or an integer, got {what}")
    # Kept exactly as given: " a-1 " and "a-1" are two articles, never one replacing the other.
    article_id = str(raw_id)
    _check_id(article_id)
    try:
        return _article(article_id, record, column, frozenset(drop_fields))
    except InvalidArticleError as exc:
        raise InvalidArticleError(f"article {quoted(article_id)}: {exc.reason}") from None


def _article(
    article_id: str, record: Mapping[str, Any], column: Mapping[str, str], drop: frozenset[str]
) -> Article:
    """The rest of parse_article, once the id is known (errors get the id put before them)."""
    for name in FIELDS:
        value = record.get(column[name])
        if isinstance(value, _LongNumber):
            raise _too_long(value, name)
    raw_title = record.get(column["title"])
    if not isinstance(raw_title, str):
        what = "missing" if raw_title is None else f"a {_kind(raw_title)}"
        raise InvalidArticleError(f"title must be a string, got {what}")
    _check_unicode(raw_title, "title")
    title = clean_title(raw_title)
    if not title:
        raise InvalidArticleError("title is empty")

    raw_body = record.get(column["body"])
    if raw_body is not None and not isinstance(raw_body, str):
        raise InvalidArticleError(f"body must be a string, got {_kind(raw_body)}")
    _check_unicode(raw_body or "", "body")

    category = _optional_text(record, column["category"], "category")
    url = _optional_text(record, column["url"], "url")
    source = _optional_text(record, column["source"], "source")
    lang = _optional_text(record, column["lang"], "lang")
    try:
        published_at = parse_datetime(record.get(column["published_at"]))
    except ValueError as exc:
        raise InvalidArticleError(f"published_at {exc}") from None

    raw_tags = record.get(column["tags"])
    if raw_tags is None:
        tags: tuple[str, ...] = ()
    elif isinstance(raw_tags, str):
        tags = tuple(tag.strip() for tag in raw_tags.split(",") if tag.strip())
    elif isinstance(raw_tags, list) and all(isinstance(tag, str) for tag in raw_tags):
        tags = tuple(tag.strip() for tag in raw_tags if tag.strip())
    else:
        raise InvalidArticleError("tags must be a list of strings or a comma-separated string")
    for tag in tags:
        _check_unicode(tag, "tags")

    consumed = set(column.values()) | drop
    metadata: dict[str, Any] = {}
    for key, value in record.items():
        if key in consumed:
            continue
        key = str(key)
        _check_unicode(key, f"metadata field name {key!r}")
        metadata[key] = _metadata_value(value, f"metadata field {key!r}")
    return Article(
        id=article_id,
        title=title,
        body=clean_html(raw_body or ""),
        category=category,
        published_at=published_at,
        url=url,
        source=source,
        lang=lang,
        tags=tags,
        metadata=metadata,
    )


def quoted(value: str, limit: int = 200) -> str:
    """``value`` as a message quotes it (``repr``), cut after ``limit`` characters with how
    long it is: an error about a 10 MB value is not 10 MB long (nor, over HTTP, an answer
    larger than the request)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def _kind(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", float: "number"}
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)


def file_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise InputFileError(
        f"cannot read {path}: unknown file type (expected one of {', '.join(FORMATS)})"
    )


def _open_binary(path: Path) -> io.BufferedIOBase:
    import gzip

    try:
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _decoded_lines(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, decode error) for each line; a line that is not UTF-8 keeps going.

    Such a line still comes with its text, bytes that are not UTF-8 replaced by U+FFFD, so that
    its commas, quotes and line end stay where they were for the CSV reader.
    """
    import gzip

    with _open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                encoding = "utf-8-sig" if number == 1 else "utf-8"
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    problem = f"not valid UTF-8 (byte {exc.start + 1} of the line)"
                    yield number, raw.decode(encoding, errors="replace"), problem
                else:
                    yield number, text, None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFileError(f"cannot read {path}: {exc}") from None


def _jsonl_records(path: Path) -> Iterator[tuple[int, object, str | None]]:
    for number, text, error in _decoded_lines(path):
        if error is not None:
            yield number, None, error
            continue
        if not text.strip():
            continue
        try:
            yield number, json.loads(text, parse_int=_parse_int), None
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
        except RecursionError:
            yield number, None, "invalid JSON (nested too deeply)"


#: The longest CSV field read, in characters. Python's csv module stops at 128 KiB, far below a
#: long body kept whole; the bound stays, so that a quote left open cannot take a whole large
#: file into one field.
CSV_FIELD_LIMIT = 64 * 1024 * 1024

_Line = tuple[int, str, str | None]


class _CsvLines:
    """The lines of a CSV file as csv.reader takes them, remembering those of the current record.

    Lines can be handed back to be read again: after a record that cannot be parsed, reading
    goes on at the line after the one where it started.
    """

    def __init__(self, path: Path) -> None:
        self._source = _decoded_lines(path)
        self._again: deque[_Line] = deque()
        self.record: list[_Line] = []

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = self._again.popleft() if self._again else next(self._source)
        self.record.append(line)
        return line[1]

    def read_again(self, lines: Sequence[_Line]) -> None:
        self._again.extendleft(reversed(lines))


def _csv_problem(exc: csv.Error, lines: Sequence[_Line]) -> str:
    """What a csv.Error means for the record made of these lines, in the reader's words."""
    import csv

    message = str(exc)
    if message == "unexpected end of data":
        return "unclosed quote (the file ends inside a quoted field of this record)"
    if "expected after" in message and lines[-1][0] > lines[0][0]:
        return f"unclosed quote (a quoted field of this record runs on to line {lines[-1][0]})"
    if "expected after" in message:
        return 'text after the closing quote of a field (a quote inside one is written "")'
    if message.startswith("field larger than field limit"):
        return f"a field longer than {csv.field_size_limit():,} characters"
    if message.startswith("new-line character seen in unquoted field"):
        return "a carriage return inside a field that is not quoted"
    return f"not valid CSV ({message})"


def _csv_records(path: Path) -> Iterator[tuple[int, object, str | None]]:
    """The rows of a CSV file as records, by the line where each starts.

    Quotes are read strictly: a quoted field ends at a quote followed by a comma or the end of
    a line. A record whose quote is never closed so (the file ends inside it, or it closes in
    the middle of a later field), or that cannot be parsed for another reason, is reported at
    the line where it starts, and reading goes on at the line after that one: an unclosed
    quote costs its own record only, not the rows it would otherwise swallow.
    """
    import csv

    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)  # process-wide, and only ever raised
    lines = _CsvLines(path)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problem = _csv_problem(exc, lines.record)
        raise InputFileError(f"cannot read {path}: the header row: {problem}") from None
    if header is None:
        return
    while True:
        lines.record = []
        try:
            row = next(reader, None)
        except csv.Error as exc:
            yield lines.record[0][0], None, _csv_problem(exc, lines.record)
            lines.read_again(lines.record[1:])
            continue
        if row is None:
            return
        first_line = lines.record[0][0]
        bad = [(number, error) for number, _, error in lines.record if error is not None]
        if bad:  # reported at the line that is not UTF-8, which may come after the first
            yield bad[0][0], None, bad[0][1]
        elif not row or row == [""]:
            continue  # a blank line
        elif len(row) > len(header):
            yield first_line, None, "more values than columns in the header"
        else:
            # CSV has no null: an empty or missing cell means "not given".
            values = row + [""] * (len(header) - len(row))
            record = {k: (v if v != "" else None) for k, v in zip(header, values, strict=True)}
            yield first_line, record, None


def iter_records(path: Path) -> Iterator[tuple[int, object, str | None]]:
    """(line number, parsed record or None, error or None) for every record of one file."""
    if not path.is_file():
        raise InputFileError(f"cannot read {path}: no such file")
    if file_format(path) == "csv":
        return _csv_records(path)
    return _jsonl_records(path)


def read_articles(
    paths: Sequence[str | Path],
    *,
    field_map: Mapping[str, str] | None = None,
    drop_fields: Iterable[str] = (),
) -> ReadReport:
    """Read and validate every record of the given files.

    Invalid records are collected in ``report.invalid`` (each names its file and line); for
    an id seen twice the later record wins and ``report.duplicates`` counts the earlier ones.
    """
    drop = frozenset(drop_fields)
    for path in paths:  # fail on a missing file before spending time on the others
        file_format(Path(path))
        if not Path(path).is_file():
            raise InputFileError(f"cannot read {path}: no such file")
    by_id: dict[str, Article] = {}
    report = ReadReport(articles=[])
    for path in paths:
        for line, record, error in iter_records(Path(path)):
            report.records += 1
            try:
                if error is not None:
                    raise InvalidArticleError(error)
                article = parse_article(record, field_map, drop)
            except InvalidArticleError as exc:
                report.invalid.append(InvalidArticleError(exc.reason, path=str(path), line=line))
                continue
            if article.id in by_id:
                report.duplicates += 1
                del by_id[article.id]  # re-insert so the order follows the winning record
            by_id[article.id] = article
    report.articles = list(by_id.values())
    return report


def read_valid(
    files: Sequence[str | Path],
    field_map: Mapping[str, str] | None = None,
    drop_fields: Iterable[str] = (),
    skip_invalid: bool = False,
) -> ReadReport:
    """``read_articles``, where any invalid record fails the whole import (InvalidArticlesError
    naming each file and line) unless ``skip_invalid``."""
    report = read_articles(files, field_map=field_map, drop_fields=drop_fields)
    if report.invalid and not skip_invalid:
        raise InvalidArticlesError(report.invalid)
    return report
