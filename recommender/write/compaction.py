"""Compaction: after an update, a version with many removed rows is rewritten without them,
and many small segments are merged (nothing is embedded again). Runs under the writer lock.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..storage import cursors, overrides
from ..storage.layout import ARTICLES
from ..storage.manifest import Manifest
from ..storage.table import ArticleRow, checkpoint, connect, list_segments
from ..storage.vectors import new_vector_index, read_segment, vectors_of, write_segment
from .transaction import new_version, record_segments, remove_leftovers, rollback

logger = logging.getLogger(__name__)

#: An update that leaves more removed rows than this share (and at least COMPACT_MIN_ROWS)
#: or more segments than COMPACT_SEGMENTS rewrites the version without them.
COMPACT_SHARE = 0.25
COMPACT_MIN_ROWS = 1000
COMPACT_SEGMENTS = 32


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
            record_segments(connection, [written])
            connection.execute("COMMIT")
        except BaseException:
            rollback(connection, version)
            (version / written.file).unlink(missing_ok=True)
            raise
        checkpoint(connection)
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
    needed = [
        s for s in segments if ((wanted >= s.first_row) & (wanted < s.first_row + s.count)).any()
    ]
    parts = [(s.first_row, read_segment(version, s, dimension)) for s in needed]
    return vectors_of(parts, wanted, dimension)


#: What compaction selects for each column: rows renumbered, every row live and new.
COMPACTED = tuple(
    {"row": "row_number() OVER (ORDER BY row) - 1", "removed": "0", "changed": "1"}.get(name, name)
    for name in ArticleRow.columns()
)


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
            f"INSERT INTO articles SELECT {', '.join(COMPACTED)} FROM old.articles "
            "WHERE removed = 0 ORDER BY row"
        )
        connection.execute("INSERT INTO lexicon SELECT * FROM old.lexicon")
        if connection.execute("SELECT 1 FROM old.sqlite_master WHERE name = 'names'").fetchone():
            connection.execute("INSERT INTO names SELECT * FROM old.names")
        live = (
            "(SELECT row, row_number() OVER (ORDER BY row) - 1 AS new_row FROM old.articles "
            "WHERE removed = 0) AS live"
        )
        connection.execute(
            f"INSERT INTO terms SELECT live.new_row, t.terms, t.weights FROM {live} "
            "JOIN old.terms AS t ON t.row = live.row"
        )
        has_checksums = connection.execute(
            "SELECT 1 FROM old.sqlite_master WHERE name = 'row_checksums'"
        ).fetchone()
        if has_checksums:  # kept as they are: a damaged row stays detectable
            connection.execute(
                f"INSERT INTO row_checksums SELECT live.new_row, c.crc FROM {live} "
                "JOIN old.row_checksums AS c ON c.row = live.row"
            )
        overrides.insert(connection, overrides.read(connection, "old"))
        cursors.copy(connection, "old")

    return new_version(index_dir, manifest, vectors, fill, attach=version / ARTICLES)
