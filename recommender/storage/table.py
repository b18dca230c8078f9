"""A version's SQLite file: the articles (one row per FAISS id, ``ArticleRow``), their TF-IDF
terms, the lexicon, the segments and the generation; read through ``ArticleTable``.

Every stored article has a checksum (``row_checksums``, over the columns of ``ArticleRow`` but
the bookkeeping ones), checked when it is read.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..articles import Article
from ..errors import IndexDamagedError
from ..lexical import Lexicon, TermVector
from ..text import title_key, url_key
from . import overrides
from .files import file_signature
from .layout import ARTICLES, REPLICA_OF
from .mapped import Binding
from .vectors import Segment


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
_LISTED_BEFORE_DATE = operator.itemgetter(_AT["id"], _AT["title"], _AT["category"])
_LISTED_AFTER_DATE = operator.itemgetter(_AT["url"], _AT["source"], _AT["lang"])
_PUBLISHED_AT, _TAGS, _METADATA = _AT["published_at"], _AT["tags"], _AT["metadata"]


def listed_fields(values: Sequence[Any]) -> tuple[Any, ...]:
    """What a related list shows of a stored row (``values`` in ``ArticleRow.columns()``
    order), decoded as its ``Article`` holds it: id, title, category, published_at, url,
    source, lang, tags and metadata (a related list needs no body, nor an Article)."""
    published = values[_PUBLISHED_AT]
    return (
        *_LISTED_BEFORE_DATE(values),
        datetime.fromisoformat(published.replace("Z", "+00:00")) if published else None,
        *_LISTED_AFTER_DATE(values),
        tuple(json.loads(values[_TAGS])),
        json.loads(values[_METADATA]),
    )


def _article(values: Sequence[Any]) -> Article:
    """The article of a stored row, ``values`` in ``ArticleRow.columns()`` order: its listed
    fields (``listed_fields``, decoded the same way) and its body."""
    article_id, title, category, *rest = listed_fields(values)
    return Article(article_id, title, values[_AT["body"]], category, *rest)


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
CREATE TABLE IF NOT EXISTS names (    -- the lexicon's names (names.py)
    id INTEGER PRIMARY KEY,          -- a lexicon id
    figure INTEGER NOT NULL          -- 1: a number, 0: a word
);
"""
    + ROW_CHECKSUMS  # absent in versions written before it existed
    + ";\n"
    + overrides.TABLE  # the same
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


def list_segments(connection: sqlite3.Connection | sqlite3.Cursor) -> list[Segment]:
    """The segments recorded in a version's SQLite file, in row order."""
    return [
        Segment(*row)
        for row in connection.execute(
            "SELECT number, first_row, count, file, bytes, crc32 FROM segments ORDER BY number"
        )
    ]


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


def insert_names(connection: sqlite3.Connection, ids: np.ndarray, figures: np.ndarray) -> None:
    """The lexicon ids of the build's names (``names.proper_terms``), and which are figures."""
    connection.executemany(
        "INSERT INTO names VALUES (?, ?)",
        ((int(i), int(bool(f))) for i, f in zip(ids, figures, strict=True)),
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


#: The state key of a version's build id: random, made with the version (a build, a
#: compaction), copied with it (a replica's database is a copy), never changed after. Its
#: derived files (image, precomputed lists) record it and are used only by a version of the
#: same build (``mapped.refusal``). A version written before it existed gets one from the
#: first writer that writes a derived file for it (``ensure_build``).
BUILD = "build"
#: State keys of the stamps of the derived files a version's database names, by kind: the one
#: image and the one lists' file a reader may use (``record_stamp``).
STAMPS = {"image": "image_stamp", "lists": "lists_stamp"}


def build_of(connection: sqlite3.Connection | sqlite3.Cursor) -> str | None:
    """The build id a version's database records (``BUILD``); None for a version written
    before builds had one."""
    found = connection.execute("SELECT value FROM state WHERE key = ?", (BUILD,)).fetchall()
    return str(found[0][0]) if found else None


def binding_of(connection: sqlite3.Connection | sqlite3.Cursor) -> Binding:
    """What the version's database says its derived files are bound to (``mapped.Binding``)."""
    keys = (BUILD, STAMPS["image"], STAMPS["lists"])
    found = dict(
        connection.execute("SELECT key, value FROM state WHERE key IN (?, ?, ?)", keys).fetchall()
    )
    return Binding(*(None if found.get(key) is None else str(found[key]) for key in keys))


def ensure_build(connection: sqlite3.Connection) -> str:
    """The version's build id, recorded first (a new random one) if it has none; call in a
    write transaction, or as one statement (under the writer lock)."""
    connection.execute("INSERT OR IGNORE INTO state VALUES (?, ?)", (BUILD, uuid.uuid4().hex))
    found = build_of(connection)
    assert found is not None
    return found


def new_stamp() -> str:
    """A derived file's stamp: random, recorded in its header and, once it is written, in
    its version's database (``record_stamp``)."""
    return uuid.uuid4().hex


def record_stamp(version: Path, kind: str, stamp: str) -> None:
    """Name a derived file of ``kind`` just written, by its stamp, in its version's database:
    readers use no other of that kind (under the writer lock). Through a plain connection: a
    replica's database keeps its rollback journal, an index's its WAL."""
    connection = sqlite3.connect(version / ARTICLES, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout=10000")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (STAMPS[kind], stamp))
        checkpoint(connection)  # the file alone is the whole version, as after every write
    finally:
        connection.close()


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
        #: ``removed_since``'s last answer: the data_version, the generation, the rows.
        self._removed: tuple[int, int, frozenset[int]] | None = None
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
        reader holding that generation must no longer return, before it refreshes.

        Asked before every query: the last answer is given again while SQLite's
        ``data_version`` says no other connection committed since (it changes with every
        commit of another connection, in any process), without looking for the rows."""
        try:
            with self._lock:
                connection = self._connection
                version = None
                if self._immutable is None:  # an immutable one is opened again instead
                    version = connection.execute("PRAGMA data_version").fetchone()[0]
                    known = self._removed
                    if known is not None and known[0] == version and known[1] == generation:
                        return known[2]
                found = connection.execute(
                    "SELECT row FROM articles WHERE changed > ? AND removed = 1", (generation,)
                ).fetchall()
                rows = frozenset(row for (row,) in found)
                if version is not None:
                    self._removed = (version, generation, rows)
                return rows
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None

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

    def binding(self) -> Binding:
        """What the version's database says its derived files are bound to (``binding_of``)."""
        try:
            with self._lock:
                return binding_of(self._connection)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None

    def snapshot(
        self, since: int, terms_from: int
    ) -> tuple[
        int, list[Segment], list[tuple[Any, ...]], list[tuple[bytes, bytes]], list[overrides.Row]
    ]:
        """The generation, the segments, the rows changed after generation ``since``, the
        term vectors of the rows from ``terms_from`` on (as stored: blobs of term ids and
        weights, see ``lexical.stack_blobs``) and the editorial overrides, read in one
        transaction so that they agree."""
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
                    edits = overrides.read(cursor)
                finally:
                    cursor.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        self.has_checksums = self.has_checksums or self._has_checksums()  # added by a writer
        if len(ids) != len(rest):  # pragma: no cover - one transaction: cannot differ
            raise IndexDamagedError(f"index at {self._where} changed while it was read")
        rows = [(r[0], i[0], *r[1:]) for i, r in zip(ids, rest, strict=True)]
        return generation, segments, rows, terms, edits

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

    def name_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """The lexicon ids of the build's names, ascending, and which are figures (none in a
        version written before names were stored: identity then counts 0)."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'names'"):
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=bool)
        found = self._query("SELECT id, figure FROM names ORDER BY id")
        return (
            np.array([i for i, _ in found], dtype=np.int32),
            np.array([f for _, f in found], dtype=bool),
        )

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
        return {row: _article(values) for row, values in self.checked_rows(rows).items()}

    def checked_rows(self, rows: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """The stored values of the articles at these rows (``ArticleRow.columns()`` order,
        then the checksum), by row; removed ones are left out. Each is checked against its
        checksum: IndexDamagedError if it does not match."""
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
            out[values[0]] = values
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
