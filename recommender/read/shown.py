"""What a related list shows of an article (``Shown``): its stored fields but the body, with
their JSON, kept for the articles listed most recently (``ShownCache``, one per snapshot).

A related list of 10 reads 10 stored articles. From SQLite each is read whole (its body too),
checked against its checksum and decoded: more than the rest of a lookup from a precomputed
list. A cached article was checked once, when it was read; later lists take it as it is.

The cache is the snapshot's: it holds the articles as of that snapshot's version and
generation (or read later). A refresh that loads updates gives the new snapshot a copy
without the rows those updates wrote (added, removed, edited in place:
``ShownCache.carried``); a new version (a build or compaction) starts an empty one. So a
write, in this process or another, shows in every list once the reader has loaded it, as
the rest of the snapshot does (rows removed by another process are never listed even before:
``Reader.removed``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..results import SHOWN_FIELDS, shown_json, to_json
from ..storage.table import listed_fields

if TYPE_CHECKING:
    from .snapshot import Snapshot


#: An article as a related list shows it: its id, what a ``Recommendation`` copies of it (its
#: ``results.SHOWN_FIELDS``, its language the snapshot's effective one) and the JSON of those.
#: A plain tuple of strings, not an object, and the metadata as its JSON: the garbage
#: collector stops tracking such a tuple, so the articles kept add nothing to its full
#: collections (which pause every request meanwhile). The metadata is read from its JSON for
#: each recommendation, so that no caller shares what another is given.
Shown = tuple[
    str,  # id
    str,  # title
    str | None,  # category
    datetime | None,  # published_at
    str | None,  # url
    str | None,  # source
    str | None,  # lang
    str | None,  # language
    tuple[str, ...],  # tags
    str | None,  # metadata as JSON, None when empty
    str,  # JSON of the nine fields before it but the id
]


class ShownCache:
    """The ``Shown`` of up to ``capacity`` rows, the least recently listed dropped first
    (0: none kept); thread-safe."""

    def __init__(self, capacity: int, held: Iterable[tuple[int, Shown]] = ()) -> None:
        self.capacity = max(0, int(capacity))
        self._held: OrderedDict[int, Shown] = OrderedDict(held)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def _held_of(self, rows: Sequence[int]) -> tuple[dict[int, Shown], list[int]]:
        """The held articles of ``rows`` (each marked as just used), and the rows not held."""
        found: dict[int, Shown] = {}
        missing = []
        with self._lock:
            held = self._held
            for row in rows:
                shown = held.get(row)
                if shown is None:
                    missing.append(row)
                else:
                    held.move_to_end(row)
                    found[row] = shown
        return found, missing

    def get(self, snapshot: Snapshot, rows: Sequence[int]) -> dict[int, Shown]:
        """The shown articles of ``rows`` that are stored (removed ones left out), by row:
        those held, and the others read from the snapshot's table (each checked against its
        checksum there) and kept."""
        found, missing = self._held_of(rows)
        if not missing:
            return found
        read, missing = from_lists(snapshot, missing)
        if missing:
            stored = snapshot.table.checked_rows(missing)
            for row, values in stored.items():
                read[row] = shown_of(snapshot, row, listed_fields(values))
        found.update(read)
        if self.capacity:
            with self._lock:
                held = self._held
                held.update(read)
                while len(held) > self.capacity:
                    held.popitem(last=False)
        return found

    def pieces(self, snapshot: Snapshot, rows: Sequence[int]) -> dict[int, tuple[str, str]]:
        """The id and piece of JSON (a ``Shown``'s first and last field) of the stored articles
        of ``rows`` (removed ones left out), by row, for a list written as JSON without its
        ``Recommendation`` objects: those held; those the lists' file holds, read there each
        time (not decoded, not kept); the others as ``get`` gives them (read and kept)."""
        held, missing = self._held_of(rows)
        found = {row: (shown[0], shown[10]) for row, shown in held.items()}
        if not missing:
            return found
        listed, missing = _listed_pieces(snapshot, missing)
        ids = snapshot.columns.ids
        for row, piece in listed.items():
            found[row] = (ids[row], piece)
        if missing:
            for row, shown in self.get(snapshot, missing).items():
                found[row] = (shown[0], shown[10])
        return found

    def carried(self, written: Iterable[int], capacity: int | None = None) -> ShownCache:
        """A new cache holding what this one does but the ``written`` rows."""
        gone = set(written)
        with self._lock:
            kept = [(row, shown) for row, shown in self._held.items() if row not in gone]
        size = self.capacity if capacity is None else capacity
        return ShownCache(size, kept[-size:] if size else ())


def from_lists(snapshot: Snapshot, rows: list[int]) -> tuple[dict[int, Shown], list[int]]:
    """The ``Shown`` of those ``rows`` whose pieces the snapshot's lists' file holds
    (``storage.precomputed``), each unchanged since the lists were written, by row; and the
    other rows, to read from SQLite.

    A piece was made from the row as stored when the lists were written, checked against its
    checksum; a row added, removed or edited since is one of ``changed_rows`` (when those are
    too many to know, every row is read from SQLite). A row removed before holds no piece."""
    pieces, rest = _listed_pieces(snapshot, rows)
    found: dict[int, Shown] = {}
    for row, piece in pieces.items():
        shown = shown_of_piece(snapshot, row, piece)
        if shown is None:
            rest.append(row)
        else:
            found[row] = shown
    return found, rest


def _listed_pieces(snapshot: Snapshot, rows: list[int]) -> tuple[dict[int, str], list[int]]:
    """The pieces of JSON the snapshot's lists' file holds of those ``rows`` unchanged since
    the lists were written (``from_lists``), by row, each naming the row's effective language
    as the snapshot does; and the other rows."""
    lists = snapshot.precomputed
    if lists is None or not lists.has_pieces:
        return {}, rows
    changed = snapshot.changed_rows
    if changed is None:
        return {}, rows
    members = changed.members
    language = snapshot.columns.language
    found: dict[int, str] = {}
    rest = []
    for row in rows:
        piece = None if row in members else lists.piece(row)
        if piece is None or not names_language(piece, language(row)):
            rest.append(row)
        else:
            found[row] = piece
    return found, rest


#: What comes before the language in a piece of JSON (``results.SHOWN_FIELDS``' order): the
#: first time it is there, as every quote in a string before it is escaped.
_LANGUAGE = ', "language": '
_string = json.encoder.encode_basestring  # what to_json writes a string with


def names_language(piece: str, language: str | None) -> bool:
    """Whether a piece of JSON gives this effective language, read without decoding it."""
    at = piece.find(_LANGUAGE)
    named = "null" if language is None else _string(language)
    return at >= 0 and piece.startswith(f"{_LANGUAGE}{named}, ", at)


def shown_of_piece(snapshot: Snapshot, row: int, piece: str) -> Shown | None:
    """The ``Shown`` of the article at ``row`` of ``snapshot`` read back from its piece of JSON
    (``shown_of``'s last field): the same values, the piece itself kept; None when it is not
    one (or names another effective language than the snapshot's: then read the row)."""
    try:
        values = json.loads("{" + piece + "}")
        language = snapshot.columns.language(row)
        if not isinstance(values, dict) or values.get("language") != language:
            return None
        title, category, date, url, source, lang, _, tags, metadata = (
            values[name] for name in SHOWN_FIELDS
        )
        published = None if date is None else datetime.fromisoformat(date.replace("Z", "+00:00"))
        return (
            snapshot.columns.ids[row],
            title,
            category,
            published,
            url,
            source,
            lang,
            language,
            tuple(tags),
            to_json(metadata) if metadata else None,
            piece,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def shown_of(snapshot: Snapshot, row: int, fields: tuple[Any, ...]) -> Shown:
    """The ``Shown`` of the article at ``row`` of ``snapshot`` whose stored fields are
    ``fields`` (``table.listed_fields``)."""
    article_id, title, category, published, url, source, lang, tags, metadata = fields
    language = snapshot.columns.language(row)
    # As json_default writes a date and tags, so that the piece is made in C alone.
    date = None if published is None else published.isoformat().replace("+00:00", "Z")
    piece = shown_json((title, category, date, url, source, lang, language, list(tags), metadata))
    kept_metadata = to_json(metadata) if metadata else None
    return (
        article_id,
        title,
        category,
        published,
        url,
        source,
        lang,
        language,
        tags,
        kept_metadata,
        piece,
    )
