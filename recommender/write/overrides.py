"""Editorial overrides: pin, block and hide articles in related lists (``Recommender.overrides``).

Each change is one write under the writer lock (``IndexWriter.override``): the version's
``overrides`` table (``storage.overrides``) changes and its generation counts one more, so
readers refresh and take it up. Queries apply them in the one pipeline (``read.pipeline``),
precomputed lists included, which need no recomputing.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..articles import quoted
from ..errors import InvalidQueryError, UnknownArticleError
from ..results import Override
from ..storage import overrides as stored
from ..storage.layout import ARTICLES
from ..storage.table import checkpoint, connect
from .transaction import rollback

if TYPE_CHECKING:
    from ..read.snapshot import Snapshot
    from .writer import IndexWriter


def store(
    version: Path, kind: str, article: str, related: str, position: int | None, undo: bool
) -> None:
    """Add (or with ``undo`` delete) one override in ``version``, counting a new generation;
    UnknownArticleError for an id not live in it (undoing names no live article: it may be
    gone)."""
    connection = connect(version / ARTICLES, write=True)
    try:
        connection.execute(stored.TABLE)
        connection.execute("BEGIN IMMEDIATE")
        try:
            if not undo:
                for wanted in (article, related) if related else (article,):
                    found = connection.execute(
                        "SELECT 1 FROM articles WHERE id = ? AND removed = 0", (wanted,)
                    ).fetchone()
                    if not found:
                        raise UnknownArticleError(
                            f"article {quoted(wanted)} is not in index {version.parent}"
                        )
                stored.insert(connection, [(kind, article, related, position)])
            else:
                stored.delete(connection, kind, article, related)
            connection.execute(
                "UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )
            connection.execute("COMMIT")
        except BaseException:
            rollback(connection, version)
            raise
        checkpoint(connection)
    finally:
        connection.close()


def checked_pair(article_id: str, related_id: str) -> tuple[str, str]:
    article, related = str(article_id), str(related_id)
    if article == related:
        raise InvalidQueryError(f"article {quoted(article)} cannot be related to itself")
    return article, related


class Overrides:
    """The editorial overrides of an index (``Recommender.overrides``): each method writes
    under the writer lock and returns once every later query of this process honours it.

    ``wait``: for another writer, as in ``Recommender.add``."""

    def __init__(
        self,
        writer: IndexWriter,
        refresh: Callable[[], object],
        current: Callable[[], Snapshot],
    ) -> None:
        self._writer, self._refresh, self._current = writer, refresh, current

    def _store(
        self,
        kind: str,
        pair: tuple[str, str],
        position: int | None,
        undo: bool,
        wait: bool | float,
    ) -> None:
        self._writer.wait = wait  # as the facade's own writes set it
        self._writer.override(kind, *pair, position, undo)
        self._refresh()

    def pin(
        self,
        article_id: str,
        related_id: str,
        position: int = 1,
        *,
        undo: bool = False,
        wait: bool | float = False,
    ) -> None:
        """Show ``related_id`` in ``article_id``'s list at ``position`` (1-based), ranked or
        not; ``undo``: no longer. InvalidQueryError for itself or a position below 1."""
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise InvalidQueryError(f"position must be a whole number, 1 or more, got {position!r}")
        self._store("pin", checked_pair(article_id, related_id), position, undo, wait)

    def unpin(self, article_id: str, related_id: str, *, wait: bool | float = False) -> None:
        self.pin(article_id, related_id, undo=True, wait=wait)

    def block(
        self, article_id: str, related_id: str, *, undo: bool = False, wait: bool | float = False
    ) -> None:
        """Never show ``related_id`` in ``article_id``'s list; ``undo``: as ranked again."""
        self._store("block", checked_pair(article_id, related_id), None, undo, wait)

    def unblock(self, article_id: str, related_id: str, *, wait: bool | float = False) -> None:
        self.block(article_id, related_id, undo=True, wait=wait)

    def hide(self, article_id: str, *, undo: bool = False, wait: bool | float = False) -> None:
        """Show ``article_id`` in no list (it stays indexed, its own list answers as before);
        ``undo``: shown again."""
        self._store("hide", (str(article_id), ""), None, undo, wait)

    def unhide(self, article_id: str, *, wait: bool | float = False) -> None:
        self.hide(article_id, undo=True, wait=wait)

    def list(self) -> builtins.list[Override]:
        """Every override of the index: by article, then pins (by position), blocks, hidden."""
        self._refresh()
        return self._current().overrides.listed()
