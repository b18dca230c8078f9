"""Editorial overrides in a version's SQLite file: pins, blocks and hidden articles, by id.

They are kept by article id, not row, so that a build or a compaction (new rows) carries them
over as they are; a removal deletes those naming a removed article (``delete_of``). Versions
written before overrides existed have no table until a writer makes one (``TABLE``); reading
one then finds none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..results import Override

KINDS = ("pin", "block", "hide")
#: The kinds' names in counts (``IndexInfo.overrides``).
NAMES = ("pins", "blocks", "hidden")
#: ``related`` is '' for a hidden article, ``position`` NULL but for a pin.
TABLE = (
    "CREATE TABLE IF NOT EXISTS overrides (kind TEXT NOT NULL, article TEXT NOT NULL, "
    "related TEXT NOT NULL DEFAULT '', position INTEGER, PRIMARY KEY (kind, article, related))"
)
#: One stored override: (kind, article, related, position).
Row = tuple[str, str, str, int | None]


@dataclass(frozen=True)
class Overrides:
    """The overrides of one state of an index, as queries apply them (``read.pipeline``)."""

    hidden: frozenset[str] = frozenset()
    blocked: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Each article's pins, (related id, 1-based position), by position.
    pinned: Mapping[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    rows: tuple[Row, ...] = ()

    @classmethod
    def of_rows(cls, rows: Iterable[Row]) -> Overrides:
        held = tuple(sorted(rows, key=lambda r: (r[1], KINDS.index(r[0]), r[3] or 0, r[2])))
        blocked: dict[str, set[str]] = {}
        pinned: dict[str, list[tuple[str, int]]] = {}
        for kind, article, related, position in held:
            if kind == "block":
                blocked.setdefault(article, set()).add(related)
            elif kind == "pin":
                pinned.setdefault(article, []).append((related, int(position or 1)))
        return cls(
            hidden=frozenset(r[1] for r in held if r[0] == "hide"),
            blocked={a: frozenset(s) for a, s in blocked.items()},
            pinned={a: tuple(p) for a, p in pinned.items()},
            rows=held,
        )

    def listed(self) -> list[Override]:
        """Every override, by article, then pins, blocks and hidden."""
        return [
            Override(kind, article, related or None, position if kind == "pin" else None)
            for kind, article, related, position in self.rows
        ]

    def counts(self) -> dict[str, int]:
        """How many are held of each kind: {"pins": n, "blocks": n, "hidden": n}."""
        kinds = [row[0] for row in self.rows]
        return {name: kinds.count(kind) for kind, name in zip(KINDS, NAMES, strict=True)}

    def __bool__(self) -> bool:
        return bool(self.rows)


NONE = Overrides()


def read(connection: sqlite3.Connection | sqlite3.Cursor, schema: str = "main") -> list[Row]:
    """The overrides stored in a database (none when it has no table)."""
    found = connection.execute(
        f"SELECT 1 FROM {schema}.sqlite_master WHERE name = 'overrides'"
    ).fetchone()
    if not found:
        return []
    return [
        (str(kind), str(article), str(related), None if position is None else int(position))
        for kind, article, related, position in connection.execute(
            f"SELECT kind, article, related, position FROM {schema}.overrides"
        )
    ]


def insert(connection: sqlite3.Connection, rows: Iterable[Row]) -> None:
    connection.execute(TABLE)
    connection.executemany("INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?)", rows)


def delete(connection: sqlite3.Connection, kind: str, article: str, related: str) -> int:
    """Delete one override; how many were (0 or 1)."""
    connection.execute(TABLE)
    cursor = connection.execute(
        "DELETE FROM overrides WHERE kind = ? AND article = ? AND related = ?",
        (kind, article, related),
    )
    return cursor.rowcount


def delete_of(connection: sqlite3.Connection, ids: Sequence[str]) -> None:
    """Delete the overrides naming any of ``ids`` (removed articles), as article or related."""
    if not ids or not read(connection):
        return
    marks = ",".join("?" * len(ids))
    connection.execute(
        f"DELETE FROM overrides WHERE article IN ({marks}) OR related IN ({marks})",
        [*ids, *ids],
    )


def kept(rows: Iterable[Row], ids: Iterable[str]) -> list[Row]:
    """The overrides whose articles are all among ``ids`` (what a new build carries over)."""
    live = set(ids)
    return [r for r in rows if r[1] in live and (r[0] == "hide" or r[2] in live)]
