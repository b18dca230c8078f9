"""Where ``recommend sync`` left each source, in a version's SQLite file: its cursor.

A source's cursor is its position (the last update time read, for a database with an update
column; none for a feed), the digest of every entry it wrote (so that an entry read again
unchanged, a tie on the update time, or a feed item still listed, is not written twice) and a
count of its runs. It is written in the transaction that writes the articles it covers
(``write.writer.apply_change``, ``write.transaction.write_version``): a sync killed at any
point leaves either both or neither. ``runs`` lets that transaction refuse a cursor that moved
since it was read (two syncs of one source at once). A compaction copies the tables; a
replica gets them with the file; a build from files starts without them (its articles are not
the ones the cursors describe), and the next sync then reads its sources whole.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import IndexBusyError

TABLES = (
    "CREATE TABLE IF NOT EXISTS sync_cursors (source TEXT PRIMARY KEY, "
    "position TEXT, runs INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS sync_seen (source TEXT NOT NULL, id TEXT NOT NULL, "
    "digest TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID",
)


@dataclass(frozen=True)
class Cursor:
    """One source's cursor as stored: ``position`` (JSON text, see ``sources.database``) or
    None, the digest of each entry written, by id, and how many syncs wrote it."""

    source: str
    position: str | None = None
    seen: Mapping[str, str] = field(default_factory=dict)
    runs: int = 0


@dataclass(frozen=True)
class Advance:
    """What one sync writes to its source's cursor: a new position, digests to set and ids
    to forget, if the stored cursor is still at ``runs`` (else IndexBusyError)."""

    source: str
    runs: int
    position: str | None
    seen: Mapping[str, str] = field(default_factory=dict)
    forget: tuple[str, ...] = ()


def _has_tables(connection: sqlite3.Connection | sqlite3.Cursor, schema: str = "main") -> bool:
    return bool(
        connection.execute(
            f"SELECT 1 FROM {schema}.sqlite_master WHERE name = 'sync_cursors'"
        ).fetchone()
    )


def read(connection: sqlite3.Connection, source: str) -> Cursor:
    """The cursor of ``source`` (an empty one when it never synced into this version)."""
    if not _has_tables(connection):
        return Cursor(source)
    found = connection.execute(
        "SELECT position, runs FROM sync_cursors WHERE source = ?", (source,)
    ).fetchone()
    if found is None:
        return Cursor(source)
    seen = dict(connection.execute("SELECT id, digest FROM sync_seen WHERE source = ?", (source,)))
    return Cursor(source, found[0], seen, int(found[1]))


def write(connection: sqlite3.Connection, advance: Advance) -> None:
    """Store ``advance`` inside the caller's transaction."""
    for table in TABLES:
        connection.execute(table)
    found = connection.execute(
        "SELECT runs FROM sync_cursors WHERE source = ?", (advance.source,)
    ).fetchone()
    if (int(found[0]) if found else 0) != advance.runs:
        raise IndexBusyError(
            f"another sync of {advance.source} wrote to the index while this one read; "
            "nothing was changed: run it again"
        )
    connection.execute(
        "INSERT INTO sync_cursors VALUES (?, ?, ?) ON CONFLICT(source) DO UPDATE SET "
        "position = excluded.position, runs = excluded.runs",
        (advance.source, advance.position, advance.runs + 1),
    )
    connection.executemany(
        "INSERT OR REPLACE INTO sync_seen VALUES (?, ?, ?)",
        ((advance.source, key, digest) for key, digest in advance.seen.items()),
    )
    connection.executemany(
        "DELETE FROM sync_seen WHERE source = ? AND id = ?",
        ((advance.source, key) for key in advance.forget),
    )


def copy(connection: sqlite3.Connection, schema: str) -> None:
    """Copy the cursors of the database attached as ``schema`` (a compaction's old version)."""
    if not _has_tables(connection, schema):
        return
    for table in TABLES:
        connection.execute(table)
    connection.execute(f"INSERT INTO sync_cursors SELECT * FROM {schema}.sync_cursors")
    connection.execute(f"INSERT INTO sync_seen SELECT * FROM {schema}.sync_seen")
