"""Writing an index: whole versions, additions and removals, one writer at a time.

Every function here runs under ``writer_lock``; readers never take it. See store.py for the
layout and why a reader always sees either the old or the new state.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .articles import Article
from .errors import IndexBusyError, IndexDamagedError, IndexNotFoundError
from .lexical import Lexicon, TermVector
from .store import (
    ARTICLES,
    CURRENT,
    INSERT_ARTICLE,
    INSERT_TERMS,
    LOCK,
    MANIFEST,
    SCHEMA,
    Manifest,
    Segment,
    article_row,
    connect,
    current_version,
    fsync_dir,
    insert_lexicon,
    list_segments,
    new_vector_index,
    read_segment,
    terms_row,
    write_manifest,
    write_segment,
)
from .text import title_key, url_key

#: An update that leaves more removed rows than this share (and at least COMPACT_MIN_ROWS)
#: or more segments than COMPACT_SEGMENTS rewrites the version without them.
COMPACT_SHARE = 0.25
COMPACT_MIN_ROWS = 1000
COMPACT_SEGMENTS = 32


@contextmanager
def writer_lock(index_dir: Path, wait: bool | float = False) -> Iterator[None]:
    """Hold the index's writer lock; IndexBusyError if another process holds it.

    ``wait``: False fails at once, True waits as long as it takes, a number waits that many
    seconds at most.
    """
    _refuse_foreign_folder(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if wait is True else time.monotonic() + float(wait or 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    who = f" (process {holder})" if holder else ""
                    raise IndexBusyError(
                        f"index at {index_dir} is being written by another process{who}; "
                        "try again when it is done, or pass --wait"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _refuse_foreign_folder(index_dir: Path) -> None:
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexNotFoundError(f"{index_dir} exists and is not a folder")
    if index_dir.is_dir() and not (index_dir / CURRENT).exists():
        ours = (".build-", "v-", f".{CURRENT}.", LOCK)
        if any(not p.name.startswith(ours) for p in index_dir.iterdir()):
            raise IndexNotFoundError(
                f"{index_dir} is not empty and holds no index; choose another folder"
            )


def remove_leftovers(index_dir: Path, keep: str | None) -> None:
    """Delete unfinished builds and every version but ``keep``."""
    for path in index_dir.iterdir():
        if path.name.startswith(".build-") or (path.name.startswith("v-") and path.name != keep):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(f".{CURRENT}."):
            path.unlink(missing_ok=True)


def _publish(index_dir: Path, building: Path, token: str) -> Path:
    """Rename a finished build into place and name it in CURRENT (atomically)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    version = index_dir / f"v-{stamp}-{token}"
    building.rename(version)
    fsync_dir(index_dir)
    pointer = index_dir / f".{CURRENT}.{token}"
    with open(pointer, "w") as handle:
        handle.write(version.name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pointer, index_dir / CURRENT)
    fsync_dir(index_dir)
    # Readers that opened an older version keep their open files: unlinking is safe on POSIX.
    remove_leftovers(index_dir, keep=version.name)
    return version


def _new_version(
    index_dir: Path,
    manifest: Manifest,
    vectors: np.ndarray,
    fill: Callable[[sqlite3.Connection], None],
    attach: Path | None = None,
) -> Path:
    """Write a version (one segment; ``fill`` inserts the rows, with the SQLite file
    ``attach`` attached as ``old`` if given) and make it current."""
    token = uuid.uuid4().hex[:8]
    building = index_dir / f".build-{token}"
    building.mkdir()
    try:
        segments = []
        if len(vectors):
            index = new_vector_index(manifest.dimension, manifest.settings["vector_type"])
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            segments.append(write_segment(building, 1, 0, index))
        connection = connect(building / ARTICLES, write=True)
        try:
            connection.executescript(SCHEMA)
            if attach is not None:
                connection.execute("ATTACH DATABASE ? AS old", (str(attach),))
            connection.execute("BEGIN")
            fill(connection)
            _record(connection, segments, generation=1)
            connection.execute("COMMIT")
        finally:
            connection.close()
        write_manifest(building, manifest)
        for path in building.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        return _publish(index_dir, building, token)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def write_version(
    index_dir: Path,
    manifest: Manifest,
    articles: Sequence[Article],
    vectors: np.ndarray,
    hashes: Sequence[str],
    lexicon: Lexicon,
    terms: Sequence[TermVector],
) -> Path:
    """Write a complete new version and make it current; returns its folder."""
    if not len(articles) == len(vectors) == len(hashes) == len(terms):
        raise ValueError("articles, vectors, hashes and terms differ in length")
    remove_leftovers(index_dir, keep=_current_name(index_dir))

    def fill(connection: sqlite3.Connection) -> None:
        connection.executemany(
            INSERT_ARTICLE,
            (
                article_row(row, article, text_hash, 1)
                for row, (article, text_hash) in enumerate(zip(articles, hashes, strict=True))
            ),
        )
        insert_lexicon(connection, lexicon)
        connection.executemany(INSERT_TERMS, (terms_row(row, v) for row, v in enumerate(terms)))

    return _new_version(index_dir, manifest, vectors, fill)


def _current_name(index_dir: Path) -> str | None:
    try:
        return current_version(index_dir).name
    except (IndexNotFoundError, IndexDamagedError):
        return None


def _record_segments(connection: sqlite3.Connection, segments: Sequence[Segment]) -> None:
    connection.executemany(
        "INSERT INTO segments VALUES (?,?,?,?,?,?)",
        [(s.number, s.first_row, s.count, s.file, s.bytes, s.crc32) for s in segments],
    )


def _record(connection: sqlite3.Connection, segments: Sequence[Segment], generation: int) -> None:
    _record_segments(connection, segments)
    connection.execute(
        "INSERT INTO state VALUES ('generation', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(generation),),
    )


@dataclass(frozen=True)
class Change:
    """What one update does to a version."""

    new: Sequence[tuple[Article, str]] = ()  # articles to append, with their content hash
    vectors: np.ndarray | None = None  # one per new article
    metadata: Sequence[tuple[int, Article]] = ()  # rows whose fields change, text unchanged
    removed_rows: Sequence[int] = ()
    removed_ids: Sequence[str] = ()
    terms: Sequence[TermVector] = ()  # one per new article


def apply_change(version: Path, dimension: int, vector_type: str, change: Change) -> int:
    """Commit one update to a version; returns the number of articles removed by id."""
    connection = connect(version / ARTICLES, write=True)
    try:
        known = {row[0] for row in connection.execute("SELECT file FROM segments")}
        for path in version.glob("seg-*.faiss"):
            if path.name not in known:  # written by a writer that died before committing
                path.unlink()
        generation = (
            int(
                (connection.execute("SELECT value FROM state WHERE key='generation'").fetchone())[0]
            )
            + 1
        )
        first_row = connection.execute("SELECT coalesce(max(row) + 1, 0) FROM articles").fetchone()[
            0
        ]
        segments = []
        if change.new:
            assert change.vectors is not None and len(change.vectors) == len(change.new)
            assert len(change.terms) == len(change.new)
            number = connection.execute("SELECT coalesce(max(number), 0) + 1 FROM segments")
            index = new_vector_index(dimension, vector_type)
            index.add(np.ascontiguousarray(change.vectors, dtype=np.float32))
            segments.append(write_segment(version, number.fetchone()[0], first_row, index))
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "UPDATE articles SET removed = 1, changed = ? WHERE row = ? AND removed = 0",
                [(generation, row) for row in change.removed_rows],
            )
            removed = 0
            for start in range(0, len(change.removed_ids), 500):
                part = list(change.removed_ids[start : start + 500])
                cursor = connection.execute(
                    "UPDATE articles SET removed = 1, changed = ? WHERE removed = 0 AND id IN "
                    f"({','.join('?' * len(part))})",
                    [generation, *part],
                )
                removed += cursor.rowcount
            connection.executemany(
                INSERT_ARTICLE,
                [
                    article_row(first_row + offset, article, text_hash, generation)
                    for offset, (article, text_hash) in enumerate(change.new)
                ],
            )
            connection.executemany(
                INSERT_TERMS,
                [terms_row(first_row + offset, v) for offset, v in enumerate(change.terms)],
            )
            connection.executemany(
                "UPDATE articles SET category=?, published_at=?, published_ts=?, url=?, "
                "source=?, lang=?, tags=?, metadata=?, title_key=?, url_key=?, changed=? "
                "WHERE row = ?",
                [_metadata_update(row, article, generation) for row, article in change.metadata],
            )
            _record(connection, segments, generation)
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        return removed
    finally:
        connection.close()


def replace_manifest(version: Path, manifest: Manifest) -> None:
    """Write a version's manifest anew (atomically) and bump its generation, so that readers
    pick up the new settings on their next refresh."""
    token = uuid.uuid4().hex[:8]
    staged = version / f".{MANIFEST}.{token}"
    try:
        write_manifest(version, manifest, name=staged.name)
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staged, version / MANIFEST)
    finally:
        staged.unlink(missing_ok=True)
    fsync_dir(version)
    connection = connect(version / ARTICLES, write=True)
    try:
        connection.execute(
            "UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
    finally:
        connection.close()


def _metadata_update(row: int, article: Article, generation: int) -> tuple[Any, ...]:
    full = article_row(row, article, "", generation)
    # category, published_at, published_ts, url, source, lang, tags, metadata
    return (*full[4:12], title_key(article.title) or None, url_key(article.url), generation, row)


def maintain(index_dir: Path, version: Path, manifest: Manifest) -> str | None:
    """After an update: rewrite the version without removed rows when they are many, or merge
    the segments after the first when there are many. Returns what was done, if anything."""
    connection = connect(version / ARTICLES, write=False)
    try:
        total, removed = connection.execute(
            "SELECT count(*), coalesce(sum(removed), 0) FROM articles"
        ).fetchone()
        segments = list_segments(connection)
    finally:
        connection.close()
    tail_rows = sum(s.count for s in segments[1:])
    if removed >= COMPACT_MIN_ROWS and removed > COMPACT_SHARE * total:
        compact(index_dir, version, manifest)
        return "compacted"
    if len(segments) > COMPACT_SEGMENTS:
        if segments[0].count and tail_rows <= segments[0].count:
            merge_tail(version, manifest)
            return "merged segments"
        compact(index_dir, version, manifest)
        return "compacted"
    return None


def merge_tail(version: Path, manifest: Manifest) -> None:
    """Replace the segments after the first by one holding the same rows (a new file).

    Rows and generation stay as they are: readers already holding these rows read nothing.
    """
    connection = connect(version / ARTICLES, write=True)
    try:
        tail = list_segments(connection)[1:]
        merged = new_vector_index(manifest.dimension, manifest.settings["vector_type"])
        for segment in tail:
            merged.merge_from(read_segment(version, segment, manifest.dimension))
        number = tail[-1].number + 1
        written = write_segment(version, number, tail[0].first_row, merged)
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "DELETE FROM segments WHERE number = ?", [(s.number,) for s in tail]
            )
            _record_segments(connection, [written])
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()
    for segment in tail:  # readers that loaded them hold them in memory
        (version / segment.file).unlink(missing_ok=True)


def stored_vectors(version: Path, dimension: int, rows: Sequence[int]) -> np.ndarray:
    """The stored vectors of these rows (decoded to float32), in the order given."""
    connection = connect(version / ARTICLES, write=False)
    try:
        segments = list_segments(connection)
    finally:
        connection.close()
    wanted = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(wanted), dimension), dtype=np.float32)
    for segment in segments:
        inside = (wanted >= segment.first_row) & (wanted < segment.first_row + segment.count)
        if inside.any():
            index = read_segment(version, segment, dimension)
            block = index.reconstruct_n(0, segment.count)
            out[inside] = block[wanted[inside] - segment.first_row]
    return out


def compact(index_dir: Path, version: Path, manifest: Manifest) -> Path:
    """Rewrite a version without its removed rows and in one segment (nothing re-embedded)."""
    remove_leftovers(index_dir, keep=version.name)
    connection = connect(version / ARTICLES, write=False)
    try:
        live = [
            row[0]
            for row in connection.execute("SELECT row FROM articles WHERE removed = 0 ORDER BY row")
        ]
    finally:
        connection.close()
    vectors = stored_vectors(version, manifest.dimension, live)

    def fill(connection: sqlite3.Connection) -> None:
        connection.execute(
            "INSERT INTO articles SELECT row_number() OVER (ORDER BY row) - 1, id, title, "
            "body, category, published_at, published_ts, url, source, lang, tags, metadata, "
            "title_key, url_key, content_hash, 0, 1 FROM old.articles WHERE removed = 0 "
            "ORDER BY row"
        )
        connection.execute("INSERT INTO lexicon SELECT * FROM old.lexicon")
        connection.execute(
            "INSERT INTO terms SELECT live.new_row, t.terms, t.weights FROM (SELECT row, "
            "row_number() OVER (ORDER BY row) - 1 AS new_row FROM old.articles "
            "WHERE removed = 0) AS live JOIN old.terms AS t ON t.row = live.row"
        )

    return _new_version(index_dir, manifest, vectors, fill, attach=version / ARTICLES)
