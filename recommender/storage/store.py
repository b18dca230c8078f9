"""Storing an index on disk: vectors in FAISS segments, everything else in SQLite beside them.

Layout of an index folder::

    DIR/CURRENT                 name of the version in use, replaced atomically
    DIR/LOCK                    held by the one process writing (see writer.py)
    DIR/v-<time>-<rand>/        one version: a full build, then the updates made to it
        manifest.json           format version, model, dimension, settings (fixed per version)
        articles.sqlite         articles (one row per FAISS id), their TF-IDF terms, the
                                lexicon (term, idf), segments, generation
        seg-000001.faiss        immutable vector segments; segment n holds rows
        seg-000002.faiss        first_row .. first_row + count - 1

A build writes a whole version in a hidden folder, flushes it, renames it and only then names it
in CURRENT. An update (add, remove) writes at most one new segment file and then commits one
SQLite transaction that records the segment, the new and changed rows and the removals, and
bumps the generation: a reader sees either all of an update or none of it, and a segment file
that no committed transaction names is a leftover of a crash, deleted by the next writer.

What is the engine's own is told by what it wrote, never by a name alone: a folder is an index
when its CURRENT names a version (see ``is_index_folder``), and only folders and files the
engine made are ever deleted (``is_engine_entry``). Every file a writer creates is created
anew (O_EXCL: never through a symbolic link, never over a file already there).

A replica (``recommend replicate``, see replicate.py) has the same layout; each of its versions
is a copy of one state of another index, its database in rollback-journal mode (no -wal or -shm
file: read-only folders serve) with the ``replica_of``, ``source_version`` and
``source_generation`` it was copied from in ``state``; writers other than replicate refuse it.

Checksums: every segment (size and CRC32, in SQLite), the manifest (a ``checksum`` field over
the rest) and every stored article (``row_checksums``, over the columns of ``ArticleRow`` but
the bookkeeping ones) are checked; segments and manifest at open, an article when it is read,
all of it by ``check_index`` (``recommend check``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mmap
import operator
import os
import re
import sqlite3
import stat
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass, field, fields
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..articles import Article
from ..errors import (
    IncompatibleIndexError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    RecommenderError,
)
from ..lexical import Lexicon, TermVector
from ..results import CheckReport
from ..text import content_hash, embedding_text

FORMAT = "recommender-index"
FORMAT_VERSION = 4
#: The oldest format this version opens for queries and updates (3: before ``search``, flat).
READABLE_FORMAT = 3
#: The oldest format whose stored vectors a build may reuse (same segments and hashes).
REUSABLE_FORMAT = 2
CURRENT = "CURRENT"
LOCK = "LOCK"
MANIFEST = "manifest.json"
ARTICLES = "articles.sqlite"
#: State keys a replica's version records (see replicate.py): where and what it was copied from.
REPLICA_OF = "replica_of"
SOURCE_VERSION = "source_version"
SOURCE_GENERATION = "source_generation"
SECONDS_PER_DAY = 86400.0

#: Names the engine gives what it creates; a name alone never makes a folder the engine's own.
VERSION_NAME = re.compile(r"v-\d{8}T\d{6}-[0-9a-f]{8}")
BUILD_NAME = re.compile(r"\.build-[0-9a-f]{8}")
POINTER_NAME = re.compile(r"\.CURRENT\.[0-9a-f]{8}")
VERSION_FILE = re.compile(
    r"seg-\d{6}\.faiss|articles\.sqlite(-wal|-shm|-journal)?|manifest\.json"
    r"|\.manifest\.json\.[0-9a-f]{8}|image-\d{12}\.bin|\.image-\d{12}\.bin\.\d+"
    r"|answers-\d{12}\.bin|\.answers-\d{12}\.bin\.\d+"
)


def _column(sql: str, note: str = "") -> Any:
    return field(metadata={"sql": sql, "note": note})


@dataclass(frozen=True)
class ArticleRow:
    """One row of the ``articles`` table: the stored columns, defined here once (their SQL
    types in the field metadata; the table, inserts and updates are derived from them)."""

    row: int = _column("INTEGER PRIMARY KEY", "the article's id in the FAISS segments")
    id: str = _column("TEXT NOT NULL")
    title: str = _column("TEXT NOT NULL")
    body: str = _column("TEXT NOT NULL")
    category: str | None = _column("TEXT")
    published_at: str | None = _column("TEXT", "ISO-8601, UTC")
    published_ts: float | None = _column("REAL", "the same, seconds since 1970")
    url: str | None = _column("TEXT")
    source: str | None = _column("TEXT")
    lang: str | None = _column("TEXT")
    tags: str = _column("TEXT NOT NULL", "JSON list")
    metadata: str = _column("TEXT NOT NULL", "JSON object: the input's other fields")
    title_key: str | None = _column("TEXT", "normalised title, for duplicates")
    url_key: str | None = _column("TEXT", "normalised url, for duplicates")
    content_hash: str = _column("TEXT NOT NULL", "hash of the embedded text")
    removed: int = _column("INTEGER NOT NULL DEFAULT 0")
    changed: int = _column("INTEGER NOT NULL", "generation that last wrote this row")
    # Last: versions written before it existed get it by ALTER TABLE (``add_language_column``).
    language: str | None = _column(
        "TEXT", "effective language: lang, else detected when sure (language.effective)"
    )

    @classmethod
    def of(
        cls,
        row: int,
        article: Article,
        text_hash: str,
        generation: int,
        language: str | None = None,
    ) -> ArticleRow:
        from ..text import title_key, url_key

        published = article.published_at
        return cls(
            row=row,
            id=article.id,
            title=article.title,
            body=article.body,
            category=article.category,
            published_at=published.isoformat().replace("+00:00", "Z") if published else None,
            published_ts=published.timestamp() if published else None,
            url=article.url,
            source=article.source,
            lang=article.lang,
            tags=json.dumps(list(article.tags), ensure_ascii=False),
            metadata=json.dumps(
                dict(article.metadata), ensure_ascii=False, allow_nan=False, default=str
            ),
            title_key=title_key(article.title) or None,
            url_key=url_key(article.url),
            content_hash=text_hash,
            removed=0,
            changed=generation,
            language=language,
        )

    def values(self) -> tuple[Any, ...]:
        return astuple(self)

    def article(self) -> Article:
        """The article these stored values hold."""
        return _article(self.values())

    @staticmethod
    def columns() -> tuple[str, ...]:
        return tuple(f.name for f in fields(ArticleRow))


#: The columns an article's checksum covers: all but its place and the bookkeeping, and its
#: language only when it has one (rows written before the column existed keep their checksum).
CHECKSUMMED = tuple(
    c for c in ArticleRow.columns() if c not in ("row", "removed", "changed", "language")
)
_CHECKSUMMED_AT = tuple(ArticleRow.columns().index(c) for c in CHECKSUMMED)
_LANGUAGE_AT = ArticleRow.columns().index("language")
ROW_CHECKSUMS = (
    "CREATE TABLE IF NOT EXISTS row_checksums (row INTEGER PRIMARY KEY, crc INTEGER NOT NULL)"
)
SELECT_ROWS = f"SELECT {', '.join(ArticleRow.columns())} FROM articles"


_covered = operator.itemgetter(*_CHECKSUMMED_AT)
#: ``json.dumps(..., ensure_ascii=False)``, made once rather than on every call.
_checksum_json = json.JSONEncoder(ensure_ascii=False).encode


def row_checksum(values: Sequence[Any]) -> int:
    """CRC32 of a stored article's content; ``values`` in ``ArticleRow.columns()`` order."""
    covered = _covered(values)
    language = values[_LANGUAGE_AT]
    content = _checksum_json(covered if language is None else (*covered, language))
    return zlib.crc32(content.encode("utf-8"))


_AT = {name: at for at, name in enumerate(ArticleRow.columns())}


def _article(values: Sequence[Any]) -> Article:
    """The article of a stored row, ``values`` in ``ArticleRow.columns()`` order."""
    published = values[_AT["published_at"]]
    return Article(
        id=values[_AT["id"]],
        title=values[_AT["title"]],
        body=values[_AT["body"]],
        category=values[_AT["category"]],
        published_at=datetime.fromisoformat(published.replace("Z", "+00:00"))
        if published
        else None,
        url=values[_AT["url"]],
        source=values[_AT["source"]],
        lang=values[_AT["lang"]],
        tags=tuple(json.loads(values[_AT["tags"]])),
        metadata=json.loads(values[_AT["metadata"]]),
    )


def _table_sql() -> str:
    columns = ",\n".join(f"    {c.name} {c.metadata['sql']}" for c in fields(ArticleRow))
    return f"CREATE TABLE articles (\n{columns}\n);"


SCHEMA = (
    _table_sql()
    + """
CREATE UNIQUE INDEX live_ids ON articles(id) WHERE removed = 0;
CREATE INDEX changes ON articles(changed);
CREATE TABLE segments (
    number INTEGER PRIMARY KEY,
    first_row INTEGER NOT NULL,
    count INTEGER NOT NULL,
    file TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    crc32 INTEGER NOT NULL
);
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE lexicon (id INTEGER PRIMARY KEY, term TEXT NOT NULL, idf REAL NOT NULL);
CREATE TABLE terms (                 -- each row's TF-IDF vector (see lexical.py), written once
    row INTEGER PRIMARY KEY,
    terms BLOB NOT NULL,             -- int32 term ids (lexicon ids), ascending
    weights BLOB NOT NULL            -- float32 weights, norm 1
);
"""
    + ROW_CHECKSUMS  # absent in versions written before it existed
    + ";\n"
)

#: Light per-row values the query path keeps in memory, in this order.
COLUMN_FIELDS = "row, id, category, published_ts, title_key, url_key, removed, language"


def has_language_column(connection: sqlite3.Connection | sqlite3.Cursor) -> bool:
    """Whether the ``articles`` table has the ``language`` column (versions written before it
    existed have not, until a writer adds it)."""
    return any(row[1] == "language" for row in connection.execute("PRAGMA table_info(articles)"))


def add_language_column(connection: sqlite3.Connection) -> None:
    """Give a version written before languages were stored its ``language`` column; its rows
    keep NULL (unknown) until they are written again or the index is rebuilt."""
    if not has_language_column(connection):
        connection.execute("ALTER TABLE articles ADD COLUMN language TEXT")


def select_columns(has_language: bool) -> str:
    """The ``ArticleRow`` columns as a SELECT list; NULL for a missing ``language``."""
    return ", ".join(
        "NULL" if name == "language" and not has_language else name for name in ArticleRow.columns()
    )


@dataclass(frozen=True)
class Manifest:
    """What a version is: read before anything else is opened."""

    model: str
    dimension: int
    settings: dict[str, Any]
    built_at: str
    build_seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    model_choice: str = ""  # why this model (e.g. what "auto" saw); empty before 0.2
    # The vector search of the build's segment (see ``search_of``); empty before format 4: flat.
    search: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class Segment:
    number: int
    first_row: int
    count: int
    file: str
    bytes: int
    crc32: int


@dataclass(frozen=True)
class Columns:
    """Per-row values the query path needs, held in memory as arrays (row = FAISS id).

    Removed rows stay (their vectors are still in FAISS) with ``alive`` False. Titles and
    urls are not held: only a 64-bit code of their normalised keys, equal for equal keys.
    """

    ids: list[str]
    published_days: np.ndarray  # float64 days since 1970, NaN when unknown
    category_codes: np.ndarray  # int32 index into categories, -1 when unknown
    categories: tuple[str, ...]
    title_codes: np.ndarray  # int64, equal for equal title keys, -1 when empty
    url_codes: np.ndarray  # int64, equal for equal url keys, -1 when unknown
    alive: np.ndarray  # bool
    row_of: Mapping[str, int]  # live ids only (a dict, or a RowMap when opened from an image)
    # int32 index into languages, -1 when unknown (the effective language, see ArticleRow)
    language_codes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    languages: tuple[str, ...] = ()

    def category_code(self, category: str | None) -> int:
        if category is None:
            return -1
        try:
            return self.categories.index(category)
        except ValueError:
            return -1

    def language_code(self, language: str | None) -> int:
        """The code of a language; -1 for None, -2 for one no row has ever had."""
        if language is None:
            return -1
        try:
            return self.languages.index(language)
        except ValueError:
            return -2

    def language(self, row: int) -> str | None:
        """The effective language of a row (None when unknown)."""
        code = int(self.language_codes[row]) if row < len(self.language_codes) else -1
        return self.languages[code] if code >= 0 else None

    @cached_property
    def removed_rows(self) -> int:
        """Rows held whose article was removed or replaced (counted once per snapshot)."""
        return len(self.alive) - int(np.count_nonzero(self.alive))

    @cached_property
    def alive_bitmap(self) -> np.ndarray:
        """``alive`` packed little-endian: FAISS's bitmap selector (made once per snapshot)."""
        return np.packbits(self.alive, bitorder="little")

    @property
    def live_categories(self) -> tuple[str, ...]:
        codes = np.unique(self.category_codes[self.alive])
        return tuple(self.categories[code] for code in codes if code >= 0)


class RowMap(Mapping[str, int]):
    """Live ids -> rows for columns opened from an image, made into a dict when first needed
    as a whole. The first ``SCANS`` lookups scan the ids instead (a one-shot ``recommend
    similar`` makes one): about 3 ms at 138k, against 20 ms to build the dict."""

    SCANS = 2

    def __init__(self, ids: list[str], alive: np.ndarray) -> None:
        self._ids, self._alive = ids, alive
        self._map: dict[str, int] | None = None
        self._scans = 0
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._map is not None

    def _built(self) -> dict[str, int]:
        with self._lock:
            if self._map is None:
                ids, alive = self._ids, self._alive
                live = range(len(ids)) if alive.all() else np.flatnonzero(alive).tolist()
                self._map = {ids[row]: row for row in live}
            return self._map

    def __getitem__(self, key: str) -> int:
        if self._map is None and self._scans < self.SCANS:
            self._scans += 1
            return self._scan(key)
        return self._built()[key]

    def _scan(self, key: str) -> int:
        """The last live row holding ``key`` (as the dict keeps: a later row replaces)."""
        found, start = -1, 0
        while True:
            try:
                at = self._ids.index(key, start)
            except ValueError:
                break
            if self._alive[at]:
                found = at
            start = at + 1
        if found < 0:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def key_code(key: str | None) -> int:
    """A code of a duplicate key, 0 or more (-1 for none): equal keys, equal codes, in every
    process (BLAKE2b cut to 63 bits, so that codes can be kept in a version's image: two
    different keys share one with a chance of about 1 in 2**63)."""
    if not key:
        return -1
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def apply_rows(previous: Columns | None, rows: Sequence[tuple[Any, ...]]) -> Columns:
    """New Columns: ``previous`` (not changed) with these rows (COLUMN_FIELDS) written over it.

    Rows past the end of ``previous`` must follow on from it; the others replace what was there.
    """
    if previous is not None and not rows:
        return previous  # nothing changed: no copy of what it holds
    size = max([len(previous.ids) if previous else 0] + [row[0] + 1 for row in rows])
    grow = size - (len(previous.ids) if previous else 0)

    def extended(array: np.ndarray | None, fill: Any, dtype: Any) -> np.ndarray:
        tail = np.full(grow, fill, dtype=dtype)
        return tail if array is None else np.concatenate([array, tail])

    categories = list(previous.categories) if previous else []
    languages = list(previous.languages) if previous else []
    if previous is None:  # a stable, readable order for a fresh load
        categories = sorted({row[2] for row in rows if row[2] is not None})
        languages = sorted({row[7] for row in rows if row[7] is not None})
    if previous is None and rows and [row[0] for row in rows] == list(range(len(rows))):
        return _loaded(rows, categories, languages)
    ids = (list(previous.ids) if previous else []) + [""] * grow
    published = extended(previous.published_days if previous else None, np.nan, np.float64)
    category_codes = extended(previous.category_codes if previous else None, -1, np.int32)
    title_codes = extended(previous.title_codes if previous else None, -1, np.int64)
    url_codes = extended(previous.url_codes if previous else None, -1, np.int64)
    alive = extended(previous.alive if previous else None, False, bool)
    language_codes = extended(previous.language_codes if previous else None, -1, np.int32)
    category_index = {name: code for code, name in enumerate(categories)}
    language_index = {name: code for code, name in enumerate(languages)}
    # A map not built yet stays one (over the new ids): a refresh need not build it.
    lazy = (
        previous is not None and isinstance(previous.row_of, RowMap) and not previous.row_of.built
    )
    row_of: dict[str, int] = {} if lazy or previous is None else dict(previous.row_of)
    for row, article_id, category, published_ts, title_key, url_key, removed, lang in rows:
        if not lazy and alive[row] and row_of.get(ids[row]) == row:
            del row_of[ids[row]]
        ids[row] = article_id
        published[row] = np.nan if published_ts is None else published_ts / SECONDS_PER_DAY
        if category is not None and category not in category_index:
            category_index[category] = len(categories)
            categories.append(category)
        category_codes[row] = -1 if category is None else category_index[category]
        if lang is not None and lang not in language_index:
            language_index[lang] = len(languages)
            languages.append(lang)
        language_codes[row] = -1 if lang is None else language_index[lang]
        title_codes[row] = key_code(title_key)
        url_codes[row] = key_code(url_key)
        alive[row] = not removed
        if not removed and not lazy:
            row_of[article_id] = row
    return Columns(
        ids=ids,
        published_days=published,
        category_codes=category_codes,
        categories=tuple(categories),
        title_codes=title_codes,
        url_codes=url_codes,
        alive=alive,
        row_of=RowMap(ids, alive) if lazy else row_of,
        language_codes=language_codes,
        languages=tuple(languages),
    )


def _loaded(
    rows: Sequence[tuple[Any, ...]], categories: list[str], languages: list[str]
) -> Columns:
    """Columns of a fresh load (rows 0..n-1 in order), column by column, not row by row."""
    count = len(rows)
    _, ids, category, published_ts, title_key, url_key, removed, lang = zip(*rows, strict=True)
    code_of: dict[str | None, int] = {name: code for code, name in enumerate(categories)}
    code_of[None] = -1
    language_of: dict[str | None, int] = {name: code for code, name in enumerate(languages)}
    language_of[None] = -1
    published = np.array([np.nan if ts is None else ts for ts in published_ts], dtype=np.float64)
    alive = ~np.fromiter(removed, dtype=bool, count=count)
    ids_list = list(ids)
    return Columns(
        ids=ids_list,
        published_days=published / SECONDS_PER_DAY,
        category_codes=np.fromiter(map(code_of.__getitem__, category), np.int32, count),
        categories=tuple(categories),
        title_codes=np.fromiter(map(key_code, title_key), np.int64, count),
        url_codes=np.fromiter(map(key_code, url_key), np.int64, count),
        alive=alive,
        row_of={ids_list[row]: row for row in np.flatnonzero(alive).tolist()},
        language_codes=np.fromiter(map(language_of.__getitem__, lang), np.int32, count),
        languages=tuple(languages),
    )


def list_segments(connection: sqlite3.Connection | sqlite3.Cursor) -> list[Segment]:
    """The segments recorded in a version's SQLite file, in row order."""
    return [
        Segment(*row)
        for row in connection.execute(
            "SELECT number, first_row, count, file, bytes, crc32 FROM segments ORDER BY number"
        )
    ]


def is_engine_entry(path: Path) -> bool:
    """Whether ``path``, an entry of an index folder, is something the engine made and may
    delete: a version or unfinished build folder (its name, and inside it only the engine's
    files or a manifest it wrote), or a CURRENT pointer being written. Never a symbolic link."""
    try:
        info = path.lstat()
    except OSError:
        return False
    if stat.S_ISREG(info.st_mode):
        return bool(POINTER_NAME.fullmatch(path.name)) and info.st_size <= 64
    if not stat.S_ISDIR(info.st_mode):
        return False
    if not (VERSION_NAME.fullmatch(path.name) or BUILD_NAME.fullmatch(path.name)):
        return False
    try:
        names = [entry.name for entry in os.scandir(path)]
    except OSError:
        return False
    return _is_manifest(path / MANIFEST) or all(VERSION_FILE.fullmatch(n) for n in names)


def _is_manifest(path: Path) -> bool:
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def is_index_folder(index_dir: Path) -> bool:
    """Whether ``index_dir`` holds an index (maybe a damaged one): its CURRENT, a file the
    engine wrote, names a version."""
    pointer = index_dir / CURRENT
    try:
        if not stat.S_ISREG(pointer.lstat().st_mode) or pointer.stat().st_size > 64:
            return False
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(VERSION_NAME.fullmatch(name))


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is a writer lock the engine left: a plain file holding a process id."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode) or path.stat().st_size > 32:
            return False
        return path.read_bytes().strip().isdigit() or path.stat().st_size == 0
    except OSError:
        return False


def create_new(path: Path) -> int:
    """A file descriptor for writing a new file at ``path``: never through a symbolic link,
    never over a file already there (IndexWriteError naming it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except FileExistsError:
        raise IndexWriteError(
            f"cannot write {path}: something is already there (a file or link the index did "
            "not make); nothing was changed"
        ) from None


def write_new(path: Path, data: bytes) -> None:
    """Write and flush a new file (see ``create_new``)."""
    fd = create_new(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)  # ours: just created
        raise
    os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crc32_of(path: Path) -> int:
    """CRC32 of a file, read through a memory map (no copy: the pages a reader maps anyway)."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)


def current_version(index_dir: Path) -> Path:
    """The folder of the version in use; IndexNotFoundError when there is no index here."""
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexNotFoundError(
            f"no index at {index_dir}; build one with: "
            f"recommend build-index FILE --index {index_dir}"
        )
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexDamagedError(
            f"index at {index_dir} is damaged: {CURRENT} cannot be read ({exc}); build it again"
        ) from None
    version = index_dir / name
    if not name or "/" in name or not version.is_dir():
        raise IndexDamagedError(
            f"index at {index_dir} is damaged: CURRENT names {name!r}, which is missing; "
            "build it again"
        )
    return version


def current_name(index_dir: Path) -> str | None:
    """The name CURRENT gives, as written (None when there is none to read): a cheap check of
    whether a build or compaction replaced the version a reader holds."""
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_manifest(version: Path, *, oldest: int = READABLE_FORMAT) -> Manifest:
    """The manifest of a version; ``oldest`` is the oldest format version accepted."""
    path = version / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # also undecodable bytes and bad JSON
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST}: {exc}; build it again"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexDamagedError(f"{path} is not a recommender index manifest")
    found = data.get("format_version")
    if not isinstance(found, int) or found > FORMAT_VERSION:
        raise IncompatibleIndexError(
            f"index at {version.parent} has format version {found}; this version of "
            f"recommender reads version {FORMAT_VERSION}: upgrade recommender"
        )
    if found < oldest:
        raise IncompatibleIndexError(
            f"index at {version.parent} has the older format version {found}; "
            f"build it again with: recommend build-index FILE --index {version.parent}"
        )
    checksum = data.pop("checksum", None)  # None: written by a version that wrote none
    if checksum is not None and checksum != manifest_checksum(data):
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST} does not match its checksum "
            "(changed by hand?); build it again"
        )
    try:
        return Manifest(**data)
    except TypeError as exc:
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST}: {exc}; build it again"
        ) from None


def manifest_checksum(data: dict[str, Any]) -> str:
    """The checksum of a manifest's fields (all but ``checksum``), over their canonical JSON."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_manifest(version: Path, manifest: Manifest, *, name: str = MANIFEST) -> None:
    """Write a manifest, with its checksum, as a new file (flushed)."""
    data = asdict(manifest)
    data["checksum"] = manifest_checksum(data)
    write_new(version / name, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


#: The OpenMP threads FAISS had before queries set it to one (see ``single_threaded_queries``).
_threads_for_building: list[int] = []


def single_threaded_queries(faiss: Any) -> None:
    """Make FAISS search on the calling thread only (once per process). A query is one
    vector: FAISS splits work across queries, so its other threads only wait to be scheduled,
    which on a busy machine costs more than the search (88 against 4.7 ms a query, 2 cores,
    load 7). Parallelism comes from answering several queries at once, on their own threads.
    Building a graph still uses the threads FAISS had (``building_threads``)."""
    if not _threads_for_building:
        _threads_for_building.append(int(faiss.omp_get_max_threads()))
        faiss.omp_set_num_threads(1)


@contextlib.contextmanager
def building_threads(faiss: Any) -> Iterator[None]:
    """FAISS with the threads it had before queries made it single-threaded, meanwhile."""
    if not _threads_for_building:
        yield
        return
    faiss.omp_set_num_threads(_threads_for_building[0])
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def new_vector_index(dimension: int, vector_type: str) -> Any:
    """An empty exhaustive inner-product index storing float16 or float32 vectors."""
    import faiss

    if vector_type == "float16":
        # Exhaustive search is bound by memory bandwidth: half the bytes, about twice the
        # speed, for cosine errors below 1e-4 (see benchmarks/RESULTS.md).
        return faiss.IndexScalarQuantizer(
            dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    return faiss.IndexFlatIP(dimension)


def search_of(settings: dict[str, Any], rows: int) -> dict[str, Any]:
    """The vector search a build of ``rows`` articles uses with these (manifest) settings:
    ``{"type": "flat"}`` or ``{"type": "hnsw", "m": .., "ef_construction": .., "ef_search": ..}``,
    with ``vector_search="auto"`` resolved by size (``hnsw_min_rows``)."""
    chosen = settings.get("vector_search", "flat")
    if chosen == "auto":
        chosen = "hnsw" if rows >= int(settings.get("hnsw_min_rows", 20_000)) else "flat"
    if chosen != "hnsw":
        return {"type": "flat"}
    return {
        "type": "hnsw",
        "m": int(settings.get("hnsw_m", 32)),
        "ef_construction": int(settings.get("hnsw_ef_construction", 40)),
        "ef_search": int(settings.get("hnsw_ef_search", 128)),
    }


def describe_search(search: dict[str, Any]) -> str:
    """One line for ``recommend info``: the vector search of the build's segment."""
    if search.get("type") != "hnsw":
        return "flat (exact: every vector compared)"
    return (
        f"hnsw (approximate graph search: M={search['m']}, "
        f"efConstruction={search['ef_construction']}, efSearch={search['ef_search']})"
    )


def built_vector_index(
    dimension: int, vector_type: str, search: dict[str, Any], vectors: np.ndarray
) -> Any:
    """The index of a build's segment holding ``vectors``: exhaustive or HNSW (``search``)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if search.get("type") != "hnsw":
        index = new_vector_index(dimension, vector_type)
    elif vector_type == "float16":
        index = faiss.IndexHNSWSQ(
            dimension,
            faiss.ScalarQuantizer.QT_fp16,  # type: ignore[arg-type]
            search["m"],
            faiss.METRIC_INNER_PRODUCT,
        )
    else:
        index = faiss.IndexHNSWFlat(dimension, search["m"], faiss.METRIC_INNER_PRODUCT)
    if search.get("type") == "hnsw":
        index.hnsw.efConstruction = search["ef_construction"]
        index.hnsw.efSearch = search["ef_search"]
        if len(vectors):
            index.train(vectors)  # a no-op for float16 and float32 storage
    with building_threads(faiss):
        index.add(vectors)
    return index


def is_graph(index: Any) -> bool:
    """Whether a FAISS index searches by graph (HNSW) rather than exhaustively."""
    return hasattr(index, "hnsw")


class Checksums:
    """The CRC32s of some segment files of a version, computed on a thread of their own while
    the caller goes on (zlib lets go of the GIL): opening verifies the segments while it maps
    the image and builds its id map, instead of before."""

    def __init__(self, version: Path, files: Sequence[str]) -> None:
        self._found: dict[str, int] = {}
        self._thread = threading.Thread(
            target=self._compute, args=(version, list(files)), name="recommender-crc32", daemon=True
        )
        self._thread.start()

    def _compute(self, version: Path, files: list[str]) -> None:
        for name in files:
            with contextlib.suppress(OSError, ValueError):  # read_segment says what is wrong
                self._found[name] = crc32_of(version / name)

    def of(self, name: str) -> int | None:
        """The CRC32 of one of the files (once computed), or None if it was not computed."""
        self._thread.join()
        return self._found.get(name)


def read_segment(
    version: Path,
    segment: Segment,
    dimension: int,
    *,
    mapped: bool = False,
    checksums: Checksums | None = None,
) -> Any:
    """One segment's FAISS index, checked against the size and checksum recorded for it.

    ``mapped``: its stored vectors memory-mapped from the file rather than copied into memory
    (the graph of an HNSW segment is still read): processes serving the same index share
    those pages, and opening reads less. Only for reading: FAISS aborts the process on
    adding to a mapped index. Safe because a segment file is never changed once written
    (writers make new files; one deleted while mapped stays readable to its holders).
    ``checksums``: the file's CRC32 computed beforehand, if it is there (``Checksums``).
    """
    import faiss

    path = version / segment.file
    where = f"index at {version.parent} is damaged: {segment.file}"
    try:
        size = path.stat().st_size
        crc = checksums.of(segment.file) if checksums is not None else None
        if crc is None and size == segment.bytes:
            crc = crc32_of(path)
    except FileNotFoundError:
        # Also when a writer merged it away meanwhile: a refresh then reads the list again.
        raise IndexDamagedError(f"{where} is missing; build it again") from None
    if size != segment.bytes:
        raise IndexDamagedError(
            f"{where} has {size} bytes, expected {segment.bytes}; build it again"
        )
    if crc != segment.crc32:
        raise IndexDamagedError(f"{where} does not match its checksum; build it again")
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mapped else 0)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise IndexDamagedError(f"{where} cannot be read ({reason}); build it again") from None
    if index.d != dimension or index.ntotal != segment.count:
        raise IndexDamagedError(
            f"{where} holds {index.ntotal} vectors of dimension {index.d}, "
            f"expected {segment.count} of {dimension}; build it again"
        )
    return index


def stored_vectors(index: Any) -> np.ndarray | None:
    """The vectors a FAISS index stores, as a (rows, dimension) numpy view of its own memory
    (float16 or float32, not copied; valid while ``index`` lives), or None for a kind of
    storage that must be decoded by FAISS. A graph's vectors are those of its flat storage."""
    import faiss

    codes_of = index.storage if is_graph(index) else index
    codes_of = faiss.downcast_index(codes_of)
    if isinstance(codes_of, faiss.IndexScalarQuantizer):
        if codes_of.sq.qtype != faiss.ScalarQuantizer.QT_fp16:
            return None
        dtype: Any = np.float16
    elif isinstance(codes_of, faiss.IndexFlat):
        dtype = np.float32
    else:
        return None
    count, dimension = int(codes_of.ntotal), int(codes_of.d)
    if not count:
        return np.empty((0, dimension), dtype=dtype)
    size = count * int(codes_of.code_size)
    raw: np.ndarray = np.asarray(faiss.rev_swig_ptr(codes_of.codes.data(), size))
    view: np.ndarray = raw.view(dtype).reshape(count, dimension)
    return view


def vectors_of(
    parts: Sequence[tuple[int, Any]],
    rows: np.ndarray,
    dimension: int,
    views: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """The stored vectors (decoded to float32) of these rows, in the order given, from FAISS
    indexes each holding the rows from its first row on: ``(first row, index)`` pairs.
    ``views``: ``stored_vectors`` of each part, if the caller holds them (read directly,
    without a call into FAISS)."""
    rows = np.asarray(rows, dtype=np.int64)
    if views is not None and len(parts) == 1 and parts[0][0] == 0 and views[0] is not None:
        return np.asarray(views[0][rows], dtype=np.float32)  # the common case: one part
    out = np.empty((len(rows), dimension), dtype=np.float32)
    for at, (first_row, index) in enumerate(parts):
        inside = (rows >= first_row) & (rows < first_row + int(index.ntotal))
        if inside.any():
            view = views[at] if views is not None else None
            if view is not None:
                out[inside] = view[rows[inside] - first_row]
                continue
            # A graph's vectors are in its flat storage, which decodes a batch at once.
            codes = index.storage if is_graph(index) else index
            out[inside] = codes.reconstruct_batch(rows[inside] - first_row)
    return out


def write_segment(version: Path, number: int, first_row: int, index: Any) -> Segment:
    """Write (and flush) one segment file; it counts only once a transaction records it."""
    import faiss

    name = f"seg-{number:06d}.faiss"
    path = version / name
    fd = create_new(path)
    try:
        crc, size = 0, 0

        def write(data: bytes) -> int:
            nonlocal crc, size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            crc, size = zlib.crc32(data, crc), size + len(data)
            return len(data)

        try:
            faiss.write_index(index, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]
        except RuntimeError as exc:  # an OSError in ``write`` comes back wrapped by faiss
            if "No space left on device" in str(exc):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise
        os.fsync(fd)
        # Never changed once written, and readers map it (read_segment): read-only, so that
        # an edit in place fails rather than pulling pages from under a serving process.
        os.fchmod(fd, 0o444)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return Segment(number, first_row, int(index.ntotal), name, size, crc)


INSERT_ARTICLE = (
    f"INSERT INTO articles ({', '.join(ArticleRow.columns())}) "
    f"VALUES ({', '.join('?' * len(ArticleRow.columns()))})"
)
INSERT_TERMS = "INSERT INTO terms VALUES (?, ?, ?)"


def insert_lexicon(connection: sqlite3.Connection, lexicon: Lexicon) -> None:
    connection.executemany(
        "INSERT INTO lexicon VALUES (?, ?, ?)",
        (
            (i, term, float(idf))
            for i, (term, idf) in enumerate(zip(lexicon.terms, lexicon.idf, strict=True))
        ),
    )


def terms_row(row: int, vector: TermVector) -> tuple[int, bytes, bytes]:
    return (row, *vector.to_blobs())


def connect(path: Path, *, write: bool, immutable: bool = False) -> sqlite3.Connection:
    """A connection to a version's SQLite file: WAL, durable commits for a writer.

    ``immutable``: read the file as one nobody changes (no -shm or -wal file needed), for a
    reader in a folder it cannot write (see ``ArticleTable``).
    """
    if write:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
    else:
        flags = "mode=ro&immutable=1" if immutable else "mode=ro"
        connection = sqlite3.connect(
            f"{path.absolute().as_uri()}?{flags}",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


def checkpoint(connection: sqlite3.Connection, tries: int = 20) -> bool:
    """Move what the WAL holds into the database file and empty the WAL, so that the file
    alone is the whole index (a copy of the folder made while no writer runs is complete).
    Readers in a read transaction hold it up: tried briefly, never an error. Whether done."""
    with contextlib.suppress(sqlite3.Error):
        connection.execute("PRAGMA busy_timeout=50")
        try:
            for attempt in range(tries):
                busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if not busy:
                    return True
                time.sleep(0.01 * (attempt + 1))
        finally:
            connection.execute("PRAGMA busy_timeout=10000")
    return False


def open_for_reading(path: Path) -> tuple[sqlite3.Connection, tuple[int, int, int] | None]:
    """A read-only connection to a version's SQLite file, and the file's signature when it
    is read as immutable (else None). SQLite needs a -shm file beside a WAL database, which
    a reader cannot create in a folder it may not write: there, when the file cannot be
    opened otherwise, it is read as immutable (to be opened again when it changes)."""
    connection = None
    try:
        connection = connect(path, write=False)
        connection.execute("SELECT value FROM state WHERE key = 'generation'").fetchall()
        return connection, None
    except sqlite3.OperationalError:
        if connection is not None:
            connection.close()
        if os.access(path.parent, os.W_OK):
            raise
    signature = file_signature(path)
    connection = connect(path, write=False, immutable=True)
    connection.execute("SELECT value FROM state WHERE key = 'generation'").fetchall()
    return connection, signature


def generation_of(connection: sqlite3.Connection | sqlite3.Cursor) -> int:
    """The generation a version's database records: how many updates it has committed."""
    found = connection.execute("SELECT value FROM state WHERE key = 'generation'").fetchall()
    return int(found[0][0]) if found else 0


def replica_source(version: Path) -> str | None:
    """The index a version was copied from by ``recommend replicate`` (the ``replica_of``
    state it records), None for a version written by a writer or one that cannot be read."""
    try:
        connection, _ = open_for_reading(version / ARTICLES)
    except sqlite3.Error:
        return None
    try:
        found = connection.execute(
            "SELECT value FROM state WHERE key = ?", (REPLICA_OF,)
        ).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(found[0][0]) if found else None


def file_signature(path: Path) -> tuple[int, int, int]:
    """What tells a file changed: inode, size and modification time ((0, 0, 0): none there)."""
    try:
        info = path.stat()
    except OSError:
        return (0, 0, 0)
    return (info.st_ino, info.st_size, info.st_mtime_ns)


class ArticleTable:
    """Read access to the articles of one version; safe to share between threads."""

    def __init__(self, version: Path) -> None:
        self._where = version.parent
        self._path = path = version / ARTICLES
        if not path.is_file():
            raise IndexDamagedError(
                f"index at {self._where} is damaged: {ARTICLES} is missing; build it again"
            )
        self._lock = threading.Lock()
        self._immutable: tuple[int, int, int] | None = None  # the file's signature, if so
        try:
            self._connection = self._open()
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        self.has_checksums = self._has_checksums()
        self._has_language = False

    def _open(self) -> sqlite3.Connection:
        connection, self._immutable = open_for_reading(self._path)
        return connection

    def _reopen_if_changed(self) -> None:
        """For an immutable connection: open the file again if a writer changed it. A file
        gone is a version replaced (a build, a compaction, a replica's next copy): the open
        connection still reads it, and the reader moves to the new version on its own."""
        if self._immutable is None:
            return
        signature = file_signature(self._path)
        if signature != self._immutable and signature != (0, 0, 0):
            self._connection.close()
            self._connection = self._open()

    def rows_sql(self, where: str) -> str:
        """SELECT of stored rows (``ArticleRow`` columns, then the checksum or NULL)."""
        if not self._has_language:  # a writer may have added it since
            try:
                with self._lock:
                    self._has_language = has_language_column(self._connection)
            except sqlite3.Error as exc:
                raise self._damaged(exc) from None
        columns = select_columns(self._has_language)
        if self.has_checksums:
            return (
                f"SELECT {columns}, crc FROM articles LEFT JOIN row_checksums USING (row) {where}"
            )
        return f"SELECT {columns}, NULL FROM articles {where}"

    def _has_checksums(self) -> bool:
        found = self._query("SELECT 1 FROM sqlite_master WHERE name = 'row_checksums'")
        return bool(found)

    def _damaged(self, exc: sqlite3.Error) -> IndexDamagedError:
        return IndexDamagedError(
            f"index at {self._where} is damaged: {ARTICLES}: {exc}; build it again"
        )

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None

    def removed_since(self, generation: int) -> frozenset[int]:
        """Rows removed or replaced by the updates committed after ``generation``: what a
        reader holding that generation must no longer return, before it refreshes."""
        found = self._query(
            "SELECT row FROM articles WHERE changed > ? AND removed = 1", (generation,)
        )
        return frozenset(row for (row,) in found)

    def changed_since(self, generation: int, limit: int) -> list[int] | None:
        """Rows added, removed or edited by the updates committed after ``generation``; None
        when there are more than ``limit``."""
        found = self._query(
            "SELECT row FROM articles WHERE changed > ? LIMIT ?", (generation, limit + 1)
        )
        return None if len(found) > limit else [row for (row,) in found]

    def generation(self) -> int:
        if self._immutable is not None:
            try:
                with self._lock:
                    self._reopen_if_changed()
            except sqlite3.Error as exc:
                raise self._damaged(exc) from None
        try:
            with self._lock:
                return generation_of(self._connection)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None

    def snapshot(
        self, since: int, terms_from: int
    ) -> tuple[int, list[Segment], list[tuple[Any, ...]], list[tuple[bytes, bytes]]]:
        """The generation, the segments, the rows changed after generation ``since`` and the
        term vectors of the rows from ``terms_from`` on (as stored: blobs of term ids and
        weights, see ``lexical.stack_blobs``), read in one transaction so that they agree."""
        try:
            with self._lock:
                cursor = self._connection.cursor()
                cursor.execute("BEGIN")
                try:
                    generation = generation_of(cursor)
                    segments = list_segments(cursor)
                    fields = COLUMN_FIELDS.replace("id, ", "")
                    if not has_language_column(cursor):  # unknown until a writer adds it
                        fields = fields.replace("language", "NULL")
                    # The ids, which stay in memory, first and on their own: read together
                    # with the rest (which does not stay), they would pin the memory of the
                    # rest (Python's allocator frees an arena only when all of it is free).
                    # A refresh reads the few rows changed since through the index on
                    # `changed`; SQLite would rather scan the table in row order (25 ms at
                    # 138k rows, twice, on every refresh after a write), so it is named.
                    table = "articles" if since < 0 else "articles INDEXED BY changes"
                    ids = cursor.execute(
                        f"SELECT id FROM {table} WHERE changed > ? ORDER BY row", (since,)
                    ).fetchall()
                    rest = cursor.execute(
                        f"SELECT {fields} FROM {table} WHERE changed > ? ORDER BY row",
                        (since,),
                    ).fetchall()
                    terms = cursor.execute(
                        "SELECT terms, weights FROM terms WHERE row >= ? ORDER BY row",
                        (terms_from,),
                    ).fetchall()
                finally:
                    cursor.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        self.has_checksums = self.has_checksums or self._has_checksums()  # added by a writer
        if len(ids) != len(rest):  # pragma: no cover - one transaction: cannot differ
            raise IndexDamagedError(f"index at {self._where} changed while it was read")
        rows = [(r[0], i[0], *r[1:]) for i, r in zip(ids, rest, strict=True)]
        return generation, segments, rows, terms

    def lexicon(self, ngrams: int) -> Lexicon:
        """The lexicon of the build (read when text has to be vectorized)."""
        found = self._query("SELECT term, idf FROM lexicon ORDER BY id")
        return Lexicon(
            tuple(term for term, _ in found),
            np.array([idf for _, idf in found], dtype=np.float64),
            ngrams,
        )

    def segments(self) -> list[Segment]:
        """The segments the version records now, in row order."""
        return [
            Segment(*row)
            for row in self._query(
                "SELECT number, first_row, count, file, bytes, crc32 FROM segments ORDER BY number"
            )
        ]

    def lexicon_size(self) -> int:
        found = self._query("SELECT count(*) FROM lexicon")
        return int(found[0][0])

    def titles(self) -> dict[int, str]:
        """Every stored row's title, by row (what ``recommend tune`` lists)."""
        return {row: title for row, title in self._query("SELECT row, title FROM articles")}

    def articles(self, rows: Sequence[int]) -> dict[int, Article]:
        """The stored articles at these rows, by row; removed ones are left out.

        Each is checked against its checksum: IndexDamagedError if it does not match.
        """
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        found = self._query(
            self.rows_sql(f"WHERE row IN ({marks}) AND removed = 0"), [int(row) for row in rows]
        )
        out = {}
        for values in found:
            if values[-1] is not None and values[-1] != row_checksum(values):
                raise IndexDamagedError(
                    f"index at {self._where} is damaged: the stored article {values[1]!r} "
                    f"(row {values[0]}) does not match its checksum; build the index again "
                    f"(recommend check --index {self._where} lists every damaged article)"
                )
            out[values[0]] = _article(values)
        return out

    def live_hashes(self, ids: Iterable[str] | None = None) -> dict[str, tuple[int, str]]:
        """id -> (row, content hash) of live articles (all, or these ids)."""
        if ids is None:
            found = self._query("SELECT id, row, content_hash FROM articles WHERE removed = 0")
        else:
            wanted = list(ids)
            found = []
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                found += self._query(
                    "SELECT id, row, content_hash FROM articles WHERE removed = 0 AND id IN "
                    f"({','.join('?' * len(part))})",
                    part,
                )
        return {article_id: (row, text_hash) for article_id, row, text_hash in found}

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.close()


def check_index(index_dir: Path) -> CheckReport:
    """Verify everything an index holds (``recommend check``): CURRENT, the manifest and its
    checksum, every segment's size, checksum and contents, SQLite's own integrity check,
    every stored article's checksum, each live article's content hash against its stored
    text, and that vectors, term vectors and rows agree in number. Reads only."""
    problems: list[str] = []
    notes: list[str] = []
    try:
        version = current_version(index_dir)
        manifest = read_manifest(version)
    except RecommenderError as exc:
        return CheckReport(index=str(index_dir), version=None, problems=[str(exc)])
    with contextlib.suppress(OSError, ValueError):
        if "checksum" not in json.loads((version / MANIFEST).read_bytes()):
            notes.append(f"{MANIFEST} has no checksum (written by an earlier version)")
    try:
        table = ArticleTable(version)
    except RecommenderError as exc:
        return CheckReport(str(index_dir), version.name, problems=[str(exc)], notes=notes)
    connection = table._connection
    counts = {"articles": 0, "rows": 0, "segments": 0, "rows_verified": 0}
    try:
        for (line,) in connection.execute("PRAGMA integrity_check"):
            if line != "ok":
                problems.append(f"{ARTICLES}: {line}")
        cursor = connection.cursor()
        cursor.execute("BEGIN")  # one consistent state, whatever a writer does meanwhile
        try:
            segments = list_segments(cursor)
            counts["segments"] = len(segments)
            expected_row = 0
            for segment in segments:
                if segment.first_row != expected_row:
                    problems.append(
                        f"{segment.file} starts at row {segment.first_row}, expected {expected_row}"
                    )
                expected_row = segment.first_row + segment.count
                try:
                    read_segment(version, segment, manifest.dimension)
                except RecommenderError as exc:
                    problems.append(str(exc))
            max_chars = int(manifest.settings.get("max_body_chars", 1000))
            rows = cursor.execute(table.rows_sql("ORDER BY row"))
            unverified = 0
            for values in rows:
                stored = ArticleRow(*values[:-1])
                counts["rows"] += 1
                crc = values[-1]
                if crc is None:
                    unverified += 1
                elif crc != row_checksum(values):
                    problems.append(
                        f"article {stored.id!r} (row {stored.row}) does not match its checksum"
                    )
                else:
                    counts["rows_verified"] += 1
                if stored.removed:
                    continue
                counts["articles"] += 1
                text = embedding_text(stored.title, stored.body, max_chars)
                if content_hash(text) != stored.content_hash:
                    problems.append(
                        f"article {stored.id!r} (row {stored.row}): its stored text does not "
                        "match its content hash"
                    )
            if unverified:
                notes.append(
                    f"{unverified} rows have no checksum (written by an earlier version; "
                    "the next build-index writes them)"
                )
            terms = cursor.execute("SELECT count(*), coalesce(max(row) + 1, 0) FROM terms")
            term_count, term_end = terms.fetchone()
            if not expected_row == term_count == term_end == counts["rows"]:
                problems.append(
                    f"{expected_row} vectors and {term_count} term vectors for "
                    f"{counts['rows']} rows"
                )
        finally:
            cursor.execute("COMMIT")
    except sqlite3.Error as exc:
        problems.append(f"{ARTICLES}: {exc}")
    finally:
        table.close()
    return CheckReport(str(index_dir), version.name, problems=problems, notes=notes, **counts)
