"""Storing an index on disk: vectors in FAISS, everything else in SQLite, a JSON manifest.

Layout of an index folder::

    DIR/CURRENT              name of the version in use, replaced atomically
    DIR/v-<time>-<rand>/     one complete, immutable version
        manifest.json        format version, model, dimension, settings, file sizes and hashes
        vectors.faiss        exhaustive inner-product index (float16 or float32); FAISS id = row
        articles.sqlite      one row per article: id, fields, keys for duplicates, content hash

A version is written in a hidden folder, flushed to disk, renamed, and only then named in
CURRENT, so a failed or interrupted build leaves the previous index as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .articles import Article
from .errors import IncompatibleIndexError, IndexDamagedError, IndexNotFoundError
from .text import title_key, url_key

FORMAT = "recommender-index"
FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
ARTICLES = "articles.sqlite"
SECONDS_PER_DAY = 86400.0

_SCHEMA = """
CREATE TABLE articles (
    row INTEGER PRIMARY KEY,         -- the article's id in the FAISS index
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    category TEXT,
    published_at TEXT,               -- ISO-8601, UTC
    published_ts REAL,               -- the same, seconds since 1970
    url TEXT,
    source TEXT,
    lang TEXT,
    tags TEXT NOT NULL,              -- JSON list
    metadata TEXT NOT NULL,          -- JSON object: the input's other fields
    title_key TEXT,                  -- normalised title, for duplicates
    url_key TEXT,                    -- normalised url, for duplicates
    content_hash TEXT NOT NULL       -- hash of the embedded text
);
"""


@dataclass(frozen=True)
class Manifest:
    """What an index is: read before anything else is opened."""

    model: str
    dimension: int
    count: int
    settings: dict[str, Any]
    built_at: str
    build_seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class Columns:
    """Per-row values the query path needs, held in memory as arrays (row = FAISS id)."""

    ids: list[str]
    titles: list[str]
    published_days: np.ndarray  # float64 days since 1970, NaN when unknown
    category_codes: np.ndarray  # int32 index into categories, -1 when unknown
    categories: tuple[str, ...]
    title_codes: np.ndarray  # int64, equal for equal title keys, -1 when empty
    url_codes: np.ndarray  # int64, equal for equal url keys, -1 when unknown
    row_of: dict[str, int]

    def category_code(self, category: str | None) -> int:
        if category is None:
            return -1
        try:
            return self.categories.index(category)
        except ValueError:
            return -1


def _codes(keys: Iterable[str | None]) -> np.ndarray:
    seen: dict[str, int] = {}
    return np.array(
        [seen.setdefault(key, len(seen)) if key else -1 for key in keys], dtype=np.int64
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _article_row(row: int, article: Article, text_hash: str) -> tuple[Any, ...]:
    published = article.published_at
    return (
        row,
        article.id,
        article.title,
        article.body,
        article.category,
        published.isoformat().replace("+00:00", "Z") if published else None,
        published.timestamp() if published else None,
        article.url,
        article.source,
        article.lang,
        json.dumps(list(article.tags), ensure_ascii=False),
        json.dumps(dict(article.metadata), ensure_ascii=False, allow_nan=False, default=str),
        title_key(article.title) or None,
        url_key(article.url),
        text_hash,
    )


def _write_sqlite(path: Path, articles: Sequence[Article], hashes: Sequence[str]) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executescript(_SCHEMA)
        with connection:
            connection.executemany(
                "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    _article_row(row, article, text_hash)
                    for row, (article, text_hash) in enumerate(zip(articles, hashes, strict=True))
                ),
            )
    finally:
        connection.close()


def _write_vectors(path: Path, vectors: np.ndarray, vector_type: str) -> None:
    import faiss

    dimension = vectors.shape[1]
    index: Any
    if vector_type == "float16":
        # Exhaustive search is bound by memory bandwidth: half the bytes, about twice the
        # speed, for cosine errors below 1e-4 (see benchmarks/RESULTS.md).
        index = faiss.IndexScalarQuantizer(
            dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    else:
        index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(path))


def write_index(
    index_dir: Path,
    articles: Sequence[Article],
    vectors: np.ndarray,
    hashes: Sequence[str],
    manifest: Manifest,
) -> Manifest:
    """Write a complete new version of the index and make it the current one.

    Returns the manifest as written (with file sizes and hashes).
    """
    if len(articles) != len(vectors) or len(articles) != len(hashes):
        raise ValueError("articles, vectors and hashes differ in length")
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexNotFoundError(f"{index_dir} exists and is not a folder")
    if index_dir.is_dir() and any(index_dir.iterdir()) and not (index_dir / CURRENT).exists():
        leftovers = [p for p in index_dir.iterdir() if not p.name.startswith((".build-", "v-"))]
        if leftovers:
            raise IndexNotFoundError(
                f"{index_dir} is not empty and holds no index; choose another folder"
            )
    index_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(index_dir, keep=None)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    token = uuid.uuid4().hex[:8]
    building = index_dir / f".build-{stamp}-{token}"
    building.mkdir()
    try:
        _write_vectors(building / VECTORS, vectors, manifest.settings.get("vector_type", "float32"))
        _write_sqlite(building / ARTICLES, articles, hashes)
        files = {
            name: {"bytes": (building / name).stat().st_size, "sha256": _sha256(building / name)}
            for name in (VECTORS, ARTICLES)
        }
        manifest = Manifest(**{**asdict(manifest), "files": files, "count": len(articles)})
        (building / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        for name in (VECTORS, ARTICLES, MANIFEST):
            with open(building / name, "rb") as handle:
                os.fsync(handle.fileno())
        version = index_dir / f"v-{stamp}-{token}"
        building.rename(version)
        _fsync_dir(index_dir)
        pointer = index_dir / f".{CURRENT}.{token}"
        with open(pointer, "w") as handle:
            handle.write(version.name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer, index_dir / CURRENT)
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    # Readers that opened an older version keep their open files: unlinking is safe on POSIX.
    _remove_leftovers(index_dir, keep=version.name)
    return manifest


def _remove_leftovers(index_dir: Path, keep: str | None) -> None:
    """Delete unfinished builds and, once a new version is current, the versions before it."""
    for path in index_dir.iterdir():
        if path.name.startswith(".build-") or (keep and path.name.startswith("v-")):
            if path.name != keep:
                shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{CURRENT}."):
            path.unlink(missing_ok=True)


def current_version(index_dir: Path) -> Path:
    """The folder of the version in use; IndexNotFoundError when there is no index here."""
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexNotFoundError(
            f"no index at {index_dir}; build one with: "
            f"recommend build-index FILE --index {index_dir}"
        )
    name = pointer.read_text().strip()
    version = index_dir / name
    if not name or "/" in name or not version.is_dir():
        raise IndexDamagedError(
            f"index at {index_dir} is damaged: CURRENT names {name!r}, which is missing; "
            "build it again"
        )
    return version


def read_manifest(version: Path) -> Manifest:
    path = version / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST}: {exc}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexDamagedError(f"{path} is not a recommender index manifest")
    if not isinstance(data.get("format_version"), int) or data["format_version"] > FORMAT_VERSION:
        raise IncompatibleIndexError(
            f"index at {version.parent} has format version {data.get('format_version')}; "
            f"this version of recommender reads up to {FORMAT_VERSION}: upgrade recommender"
        )
    try:
        return Manifest(**data)
    except TypeError as exc:
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST}: {exc}"
        ) from None


def _check_sizes(version: Path, manifest: Manifest) -> None:
    for name in (VECTORS, ARTICLES):
        path = version / name
        expected = manifest.files.get(name, {}).get("bytes")
        actual = path.stat().st_size if path.is_file() else None
        if actual is None or (expected is not None and actual != expected):
            what = "is missing" if actual is None else f"has {actual} bytes, expected {expected}"
            raise IndexDamagedError(
                f"index at {version.parent} is damaged: {name} {what}; build it again"
            )


def read_vectors(version: Path, manifest: Manifest) -> Any:
    """The FAISS index of a version, checked against the manifest."""
    import faiss

    _check_sizes(version, manifest)
    try:
        index = faiss.read_index(str(version / VECTORS))
    except RuntimeError as exc:
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {VECTORS} cannot be read "
            f"({str(exc).strip().splitlines()[-1]}); build it again"
        ) from None
    if index.d != manifest.dimension or index.ntotal != manifest.count:
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {VECTORS} holds {index.ntotal} vectors of "
            f"dimension {index.d}, the manifest says {manifest.count} of {manifest.dimension}"
        )
    return index


class ArticleTable:
    """Read access to the articles of one version; safe to share between threads."""

    def __init__(self, version: Path) -> None:
        path = version / ARTICLES
        uri = f"file:{path}?mode=ro&immutable=1"
        try:
            self._connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._connection.execute("SELECT count(*) FROM articles").fetchone()
        except sqlite3.Error as exc:
            raise IndexDamagedError(
                f"index at {version.parent} is damaged: {ARTICLES}: {exc}; build it again"
            ) from None
        self._lock = threading.Lock()
        self._where = version.parent

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise IndexDamagedError(
                f"index at {self._where} is damaged: {ARTICLES}: {exc}"
            ) from None

    def columns(self) -> Columns:
        rows = self._query(
            "SELECT row, id, title, category, published_ts, title_key, url_key "
            "FROM articles ORDER BY row"
        )
        if any(row[0] != position for position, row in enumerate(rows)):
            raise IndexDamagedError(f"index at {self._where} is damaged: rows are not contiguous")
        categories = tuple(sorted({row[3] for row in rows if row[3] is not None}))
        code = {name: number for number, name in enumerate(categories)}
        ids = [row[1] for row in rows]
        return Columns(
            ids=ids,
            titles=[row[2] for row in rows],
            published_days=np.array(
                [np.nan if row[4] is None else row[4] / SECONDS_PER_DAY for row in rows],
                dtype=np.float64,
            ),
            category_codes=np.array(
                [-1 if row[3] is None else code[row[3]] for row in rows], dtype=np.int32
            ),
            categories=categories,
            title_codes=_codes(row[5] for row in rows),
            url_codes=_codes(row[6] for row in rows),
            row_of={article_id: position for position, article_id in enumerate(ids)},
        )

    def articles(self, rows: Sequence[int]) -> dict[int, Article]:
        """The stored articles at these rows, by row."""
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        found = self._query(
            "SELECT row, id, title, body, category, published_at, url, source, lang, tags, "
            f"metadata FROM articles WHERE row IN ({marks})",
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

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.close()
