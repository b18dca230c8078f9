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
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, astuple, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .articles import Article
from .errors import IncompatibleIndexError, IndexDamagedError, IndexNotFoundError
from .lexical import Lexicon, TermVector

FORMAT = "recommender-index"
FORMAT_VERSION = 3
#: The oldest format whose stored vectors a build may reuse (same segments and hashes).
REUSABLE_FORMAT = 2
CURRENT = "CURRENT"
LOCK = "LOCK"
MANIFEST = "manifest.json"
ARTICLES = "articles.sqlite"
SECONDS_PER_DAY = 86400.0


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

    @classmethod
    def of(cls, row: int, article: Article, text_hash: str, generation: int) -> ArticleRow:
        from .text import title_key, url_key

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
        )

    def values(self) -> tuple[Any, ...]:
        return astuple(self)

    @staticmethod
    def columns() -> tuple[str, ...]:
        return tuple(f.name for f in fields(ArticleRow))


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
)

#: Light per-row values the query path keeps in memory, in this order.
COLUMN_FIELDS = "row, id, title, category, published_ts, title_key, url_key, removed"


@dataclass(frozen=True)
class Manifest:
    """What a version is: read before anything else is opened."""

    model: str
    dimension: int
    settings: dict[str, Any]
    built_at: str
    build_seconds: float
    versions: dict[str, str] = field(default_factory=dict)
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

    Removed rows stay (their vectors are still in FAISS) with ``alive`` False.
    """

    ids: list[str]
    titles: list[str]
    published_days: np.ndarray  # float64 days since 1970, NaN when unknown
    category_codes: np.ndarray  # int32 index into categories, -1 when unknown
    categories: tuple[str, ...]
    title_codes: np.ndarray  # int64, equal for equal title keys, -1 when empty
    url_codes: np.ndarray  # int64, equal for equal url keys, -1 when unknown
    alive: np.ndarray  # bool
    row_of: dict[str, int]  # live ids only
    title_index: dict[str, int] = field(repr=False, default_factory=dict)
    url_index: dict[str, int] = field(repr=False, default_factory=dict)

    def category_code(self, category: str | None) -> int:
        if category is None:
            return -1
        try:
            return self.categories.index(category)
        except ValueError:
            return -1

    @property
    def live_categories(self) -> tuple[str, ...]:
        codes = np.unique(self.category_codes[self.alive])
        return tuple(self.categories[code] for code in codes if code >= 0)


def _code(index: dict[str, int], key: str | None) -> int:
    return index.setdefault(key, len(index)) if key else -1


def apply_rows(previous: Columns | None, rows: Sequence[tuple[Any, ...]]) -> Columns:
    """New Columns: ``previous`` (not changed) with these rows (COLUMN_FIELDS) written over it.

    Rows past the end of ``previous`` must follow on from it; the others replace what was there.
    """
    size = max([len(previous.ids) if previous else 0] + [row[0] + 1 for row in rows])
    grow = size - (len(previous.ids) if previous else 0)

    def extended(array: np.ndarray | None, fill: Any, dtype: Any) -> np.ndarray:
        tail = np.full(grow, fill, dtype=dtype)
        return tail if array is None else np.concatenate([array, tail])

    ids = (list(previous.ids) if previous else []) + [""] * grow
    titles = (list(previous.titles) if previous else []) + [""] * grow
    published = extended(previous.published_days if previous else None, np.nan, np.float64)
    category_codes = extended(previous.category_codes if previous else None, -1, np.int32)
    title_codes = extended(previous.title_codes if previous else None, -1, np.int64)
    url_codes = extended(previous.url_codes if previous else None, -1, np.int64)
    alive = extended(previous.alive if previous else None, False, bool)
    categories = list(previous.categories) if previous else []
    if previous is None:  # a stable, readable order for a fresh load
        categories = sorted({row[3] for row in rows if row[3] is not None})
    category_index = {name: code for code, name in enumerate(categories)}
    row_of = dict(previous.row_of) if previous else {}
    title_index = dict(previous.title_index) if previous else {}
    url_index = dict(previous.url_index) if previous else {}
    for row, article_id, title, category, published_ts, title_key, url_key, removed in rows:
        if alive[row] and row_of.get(ids[row]) == row:
            del row_of[ids[row]]
        ids[row], titles[row] = article_id, title
        published[row] = np.nan if published_ts is None else published_ts / SECONDS_PER_DAY
        if category is not None and category not in category_index:
            category_index[category] = len(categories)
            categories.append(category)
        category_codes[row] = -1 if category is None else category_index[category]
        title_codes[row] = _code(title_index, title_key)
        url_codes[row] = _code(url_index, url_key)
        alive[row] = not removed
        if not removed:
            row_of[article_id] = row
    return Columns(
        ids=ids,
        titles=titles,
        published_days=published,
        category_codes=category_codes,
        categories=tuple(categories),
        title_codes=title_codes,
        url_codes=url_codes,
        alive=alive,
        row_of=row_of,
        title_index=title_index,
        url_index=url_index,
    )


def list_segments(connection: sqlite3.Connection | sqlite3.Cursor) -> list[Segment]:
    """The segments recorded in a version's SQLite file, in row order."""
    return [
        Segment(*row)
        for row in connection.execute(
            "SELECT number, first_row, count, file, bytes, crc32 FROM segments ORDER BY number"
        )
    ]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crc32_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return crc


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


def read_manifest(version: Path, *, oldest: int = FORMAT_VERSION) -> Manifest:
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
    try:
        return Manifest(**data)
    except TypeError as exc:
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST}: {exc}; build it again"
        ) from None


def write_manifest(version: Path, manifest: Manifest, *, name: str = MANIFEST) -> None:
    (version / name).write_text(json.dumps(asdict(manifest), indent=2) + "\n")


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


def read_segment(version: Path, segment: Segment, dimension: int) -> Any:
    """One segment's FAISS index, checked against the size and checksum recorded for it."""
    import faiss

    path = version / segment.file
    where = f"index at {version.parent} is damaged: {segment.file}"
    try:
        size = path.stat().st_size
        crc = crc32_of(path) if size == segment.bytes else None
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
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise IndexDamagedError(f"{where} cannot be read ({reason}); build it again") from None
    if index.d != dimension or index.ntotal != segment.count:
        raise IndexDamagedError(
            f"{where} holds {index.ntotal} vectors of dimension {index.d}, "
            f"expected {segment.count} of {dimension}; build it again"
        )
    return index


def vectors_of(parts: Sequence[tuple[int, Any]], rows: np.ndarray, dimension: int) -> np.ndarray:
    """The stored vectors (decoded to float32) of these rows, in the order given, from FAISS
    indexes each holding the rows from its first row on: ``(first row, index)`` pairs."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), dimension), dtype=np.float32)
    for first_row, index in parts:
        inside = (rows >= first_row) & (rows < first_row + int(index.ntotal))
        if inside.any():
            out[inside] = index.reconstruct_batch(rows[inside] - first_row)
    return out


def write_segment(version: Path, number: int, first_row: int, index: Any) -> Segment:
    """Write (and flush) one segment file; it counts only once a transaction records it."""
    import faiss

    name = f"seg-{number:06d}.faiss"
    path = version / name
    faiss.write_index(index, str(path))
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    return Segment(number, first_row, int(index.ntotal), name, path.stat().st_size, crc32_of(path))


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


def connect(path: Path, *, write: bool) -> sqlite3.Connection:
    """A connection to a version's SQLite file: WAL, durable commits for a writer."""
    if write:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
    else:
        connection = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


class ArticleTable:
    """Read access to the articles of one version; safe to share between threads."""

    def __init__(self, version: Path) -> None:
        self._where = version.parent
        path = version / ARTICLES
        if not path.is_file():
            raise IndexDamagedError(
                f"index at {self._where} is damaged: {ARTICLES} is missing; build it again"
            )
        self._lock = threading.Lock()
        try:
            self._connection = connect(path, write=False)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        self.generation()  # fails now, not at the first query, if the file is not SQLite

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

    def generation(self) -> int:
        found = self._query("SELECT value FROM state WHERE key = 'generation'")
        return int(found[0][0]) if found else 0

    def snapshot(
        self, since: int, terms_from: int
    ) -> tuple[int, list[Segment], list[tuple[Any, ...]], list[TermVector]]:
        """The generation, the segments, the rows changed after generation ``since`` and the
        term vectors of the rows from ``terms_from`` on, read in one transaction so that they
        agree."""
        try:
            with self._lock:
                cursor = self._connection.cursor()
                cursor.execute("BEGIN")
                try:
                    found = cursor.execute(
                        "SELECT value FROM state WHERE key = 'generation'"
                    ).fetchall()
                    segments = list_segments(cursor)
                    rows = cursor.execute(
                        f"SELECT {COLUMN_FIELDS} FROM articles WHERE changed > ? ORDER BY row",
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
        vectors = [TermVector.from_blobs(t, w) for t, w in terms]
        return (int(found[0][0]) if found else 0), segments, rows, vectors

    def lexicon(self, ngrams: int) -> Lexicon:
        """The lexicon of the build (read when text has to be vectorized)."""
        found = self._query("SELECT term, idf FROM lexicon ORDER BY id")
        return Lexicon(
            tuple(term for term, _ in found),
            np.array([idf for _, idf in found], dtype=np.float64),
            ngrams,
        )

    def lexicon_size(self) -> int:
        found = self._query("SELECT count(*) FROM lexicon")
        return int(found[0][0])

    def articles(self, rows: Sequence[int]) -> dict[int, Article]:
        """The stored articles at these rows, by row; removed ones are left out."""
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        found = self._query(
            "SELECT row, id, title, body, category, published_at, url, source, lang, tags, "
            f"metadata FROM articles WHERE row IN ({marks}) AND removed = 0",
            [int(row) for row in rows],
        )
        return {
            row[0]: Article(
                id=row[1],
                title=row[2],
                body=row[3],
                category=row[4],
                published_at=datetime.fromisoformat(row[5].replace("Z", "+00:00"))
                if row[5]
                else None,
                url=row[6],
                source=row[7],
                lang=row[8],
                tags=tuple(json.loads(row[9])),
                metadata=json.loads(row[10]),
            )
            for row in found
        }

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
