"""``recommend check``: everything an index holds, verified.

Checksums: every segment (size and CRC32, in SQLite), the manifest (a ``checksum`` field over
the rest) and every stored article (``row_checksums``) are checked; segments and manifest at
open, an article when it is read, all of it here.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import numpy as np

from ..errors import RecommenderError
from ..results import CheckReport
from ..text import content_hash, embedding_text
from .events import read_events
from .layout import ARTICLES, EVENTS, current_version
from .manifest import MANIFEST, read_manifest
from .table import ArticleRow, ArticleTable, list_segments, row_checksum
from .vectors import read_segment, vector_norms

#: How far from 1 a stored vector's length may be: float16 storage errs by about 1e-3.
UNIT_TOLERANCE = 0.01


def check_index(index_dir: Path) -> CheckReport:
    """Verify everything an index holds (``recommend check``): CURRENT, the manifest and its
    checksum, every segment's size, checksum and contents (each live article's vector of length
    1), SQLite's own integrity check,
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
            not_unit: set[int] = set()  # rows whose vector is zero, not finite or not unit
            for segment in segments:
                if segment.first_row != expected_row:
                    problems.append(
                        f"{segment.file} starts at row {segment.first_row}, expected {expected_row}"
                    )
                expected_row = segment.first_row + segment.count
                try:
                    index = read_segment(version, segment, manifest.dimension)
                except RecommenderError as exc:
                    problems.append(str(exc))
                else:
                    off = ~(np.abs(vector_norms(index) - 1.0) <= UNIT_TOLERANCE)
                    not_unit.update((segment.first_row + np.flatnonzero(off)).tolist())
            max_chars = int(manifest.settings.get("max_body_chars", 1000))
            rows = cursor.execute(table.rows_sql("ORDER BY row"))
            unverified = 0
            unusable: list[str] = []
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
                if stored.row in not_unit:
                    unusable.append(f"{stored.id!r} (row {stored.row})")
                text = embedding_text(stored.title, stored.body, max_chars)
                if content_hash(text) != stored.content_hash:
                    problems.append(
                        f"article {stored.id!r} (row {stored.row}): its stored text does not "
                        "match its content hash"
                    )
            if unusable:
                problems.append(
                    f"{len(unusable)} articles have a vector that is zero, not finite or not of "
                    f"length 1 (e.g. {', '.join(unusable[:3])}): they are related to nothing or "
                    "spoil the scores of others; build the index again"
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
            if cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'names'").fetchone():
                outside = cursor.execute(
                    "SELECT count(*) FROM names "
                    "WHERE id < 0 OR id >= (SELECT count(*) FROM lexicon)"
                ).fetchone()[0]
                if outside:
                    problems.append(
                        f"{outside} names are not terms of the lexicon; build the index again"
                    )
            else:
                notes.append(
                    "no names stored (built by an earlier version): identity counts 0 until "
                    "the next build-index"
                )
        finally:
            cursor.execute("COMMIT")
    except sqlite3.Error as exc:
        problems.append(f"{ARTICLES}: {exc}")
    finally:
        table.close()
    notes.extend(_events_notes(index_dir))
    return CheckReport(str(index_dir), version.name, problems=problems, notes=notes, **counts)


def _events_notes(index_dir: Path) -> list[str]:
    """A note on the events store (events.py) when records of it cannot be read: never a
    problem of the index, whose answers do not depend on it."""
    events = read_events(index_dir)
    kept = sum(1 for _ in events)
    if not events.damaged:
        return []
    return [
        f"{EVENTS}/: {events.damaged} damaged event record(s) skipped, {kept} read "
        "(a writer killed mid-record, or a changed byte)"
    ]
