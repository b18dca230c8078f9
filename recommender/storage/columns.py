"""The per-row values the query path holds in memory, as arrays (``Columns``), and how rows
read from a version's table are written over them (``apply_rows``)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..language import normalise

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Columns:
    """Per-row values the query path needs, held in memory as arrays (row = FAISS id).

    Removed rows stay (their vectors are still in FAISS) with ``alive`` False. Titles and
    urls are not held: only a 64-bit code of their normalised keys, equal for equal keys.
    """

    ids: list[str]
    published_days: np.ndarray  # float64 days since 1970, NaN when unknown
    category_codes: np.ndarray  # int32 index into categories, -1 when unknown
    categories: tuple[str, ...]
    title_codes: np.ndarray  # int64, equal for equal title keys, -1 when empty
    url_codes: np.ndarray  # int64, equal for equal url keys, -1 when unknown
    alive: np.ndarray  # bool
    row_of: Mapping[str, int]  # live ids only (a dict, or a RowMap when opened from an image)
    # int32 index into languages, -1 when unknown (the effective language, see ArticleRow)
    language_codes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    languages: tuple[str, ...] = ()

    def category_code(self, category: str | None) -> int:
        if category is None:
            return -1
        try:
            return self.categories.index(category)
        except ValueError:
            return -1

    def language_code(self, language: str | None) -> int:
        """The code of a language; -1 for None, -2 for one no row has ever had."""
        if language is None:
            return -1
        try:
            return self.languages.index(language)
        except ValueError:
            return -2

    def language(self, row: int) -> str | None:
        """The effective language of a row (None when unknown)."""
        code = int(self.language_codes[row]) if row < len(self.language_codes) else -1
        return self.languages[code] if code >= 0 else None

    @cached_property
    def removed_rows(self) -> int:
        """Rows held whose article was removed or replaced (counted once per snapshot)."""
        return len(self.alive) - int(np.count_nonzero(self.alive))

    @cached_property
    def alive_bitmap(self) -> np.ndarray:
        """``alive`` packed little-endian: FAISS's bitmap selector (made once per snapshot)."""
        return np.packbits(self.alive, bitorder="little")

    @property
    def live_languages(self) -> dict[str, int]:
        """Live rows per known language, most first (then by code)."""
        codes = self.language_codes[self.alive[: len(self.language_codes)]]
        counts = np.bincount(codes[codes >= 0], minlength=len(self.languages)).tolist()
        found = [(name, count) for name, count in zip(self.languages, counts, strict=True) if count]
        return dict(sorted(found, key=lambda item: (-item[1], item[0])))

    @property
    def live_category_counts(self) -> dict[str, int]:
        """Live rows per category, most first (then by name); those without one left out."""
        codes = self.category_codes[self.alive]
        counts = np.bincount(codes[codes >= 0], minlength=len(self.categories)).tolist()
        named = zip(self.categories, counts, strict=True)
        return dict(sorted(((n, c) for n, c in named if c), key=lambda item: (-item[1], item[0])))


class RowMap(Mapping[str, int]):
    """Live ids -> rows for columns opened from an image, made into a dict when first needed
    as a whole. The first ``SCANS`` lookups scan the ids instead (a one-shot ``recommend
    similar`` makes one): about 3 ms at 138k, against 20 ms to build the dict."""

    SCANS = 2

    def __init__(self, ids: list[str], alive: np.ndarray) -> None:
        self._ids, self._alive = ids, alive
        self._map: dict[str, int] | None = None
        self._scans = 0
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._map is not None

    def _built(self) -> dict[str, int]:
        with self._lock:
            if self._map is None:
                ids, alive = self._ids, self._alive
                live = range(len(ids)) if alive.all() else np.flatnonzero(alive).tolist()
                self._map = {ids[row]: row for row in live}
            return self._map

    def __getitem__(self, key: str) -> int:
        if self._map is None and self._scans < self.SCANS:
            self._scans += 1
            return self._scan(key)
        return self._built()[key]

    def _scan(self, key: str) -> int:
        """The last live row holding ``key`` (as the dict keeps: a later row replaces)."""
        found, start = -1, 0
        while True:
            try:
                at = self._ids.index(key, start)
            except ValueError:
                break
            if self._alive[at]:
                found = at
            start = at + 1
        if found < 0:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def key_code(key: str | None) -> int:
    """A code of a duplicate key, 0 or more (-1 for none): equal keys, equal codes, in every
    process (BLAKE2b cut to 63 bits, so that codes can be kept in a version's image: two
    different keys share one with a chance of about 1 in 2**63)."""
    if not key:
        return -1
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def apply_rows(previous: Columns | None, rows: Sequence[tuple[Any, ...]]) -> Columns:
    """New Columns: ``previous`` (not changed) with these rows (COLUMN_FIELDS) written over it.

    Rows past the end of ``previous`` must follow on from it; the others replace what was there.
    """
    if previous is not None and not rows:
        return previous  # nothing changed: no copy of what it holds
    size = max([len(previous.ids) if previous else 0] + [row[0] + 1 for row in rows])
    grow = size - (len(previous.ids) if previous else 0)

    def extended(array: np.ndarray | None, fill: Any, dtype: Any) -> np.ndarray:
        tail = np.full(grow, fill, dtype=dtype)
        return tail if array is None else np.concatenate([array, tail])

    categories = list(previous.categories) if previous else []
    languages = list(previous.languages) if previous else []
    if previous is None:  # a stable, readable order for a fresh load
        categories = sorted({row[2] for row in rows if row[2] is not None})
        languages = sorted({code for code in _stored_languages(rows).values() if code})
    if previous is None and rows and [row[0] for row in rows] == list(range(len(rows))):
        return _loaded(rows, categories, languages)
    ids = (list(previous.ids) if previous else []) + [""] * grow
    published = extended(previous.published_days if previous else None, np.nan, np.float64)
    category_codes = extended(previous.category_codes if previous else None, -1, np.int32)
    title_codes = extended(previous.title_codes if previous else None, -1, np.int64)
    url_codes = extended(previous.url_codes if previous else None, -1, np.int64)
    alive = extended(previous.alive if previous else None, False, bool)
    language_codes = extended(previous.language_codes if previous else None, -1, np.int32)
    category_index = {name: code for code, name in enumerate(categories)}
    language_index = {name: code for code, name in enumerate(languages)}
    # A map not built yet stays one (over the new ids): a refresh need not build it.
    lazy = (
        previous is not None and isinstance(previous.row_of, RowMap) and not previous.row_of.built
    )
    row_of: dict[str, int] = {} if lazy or previous is None else dict(previous.row_of)
    for row, article_id, category, published_ts, title_key, url_key, removed, lang in rows:
        if not lazy and alive[row] and row_of.get(ids[row]) == row:
            del row_of[ids[row]]
        ids[row] = article_id
        published[row] = np.nan if published_ts is None else published_ts / SECONDS_PER_DAY
        if category is not None and category not in category_index:
            category_index[category] = len(categories)
            categories.append(category)
        category_codes[row] = -1 if category is None else category_index[category]
        if lang is not None and lang not in language_index:
            # Stored before codes were normalised (eng), or a language new to these columns.
            # The columns' own are normalised already, so they are not looked up again.
            lang = normalise(lang)
            if lang is not None and lang not in language_index:
                language_index[lang] = len(languages)
                languages.append(lang)
        language_codes[row] = -1 if lang is None else language_index[lang]
        title_codes[row] = key_code(title_key)
        url_codes[row] = key_code(url_key)
        alive[row] = not removed
        if not removed and not lazy:
            row_of[article_id] = row
    return Columns(
        ids=ids,
        published_days=published,
        category_codes=category_codes,
        categories=tuple(categories),
        title_codes=title_codes,
        url_codes=url_codes,
        alive=alive,
        row_of=RowMap(ids, alive) if lazy else row_of,
        language_codes=language_codes,
        languages=tuple(languages),
    )


def _loaded(
    rows: Sequence[tuple[Any, ...]], categories: list[str], languages: list[str]
) -> Columns:
    """Columns of a fresh load (rows 0..n-1 in order), column by column, not row by row."""
    count = len(rows)
    _, ids, category, published_ts, title_key, url_key, removed, lang = zip(*rows, strict=True)
    code_of: dict[str | None, int] = {name: code for code, name in enumerate(categories)}
    code_of[None] = -1
    index_of = {name: code for code, name in enumerate(languages)}
    language_of: dict[str | None, int] = {
        stored: index_of[code] if code else -1 for stored, code in _stored_languages(rows).items()
    }
    language_of[None] = -1
    published = np.array([np.nan if ts is None else ts for ts in published_ts], dtype=np.float64)
    alive = ~np.fromiter(removed, dtype=bool, count=count)
    ids_list = list(ids)
    return Columns(
        ids=ids_list,
        published_days=published / SECONDS_PER_DAY,
        category_codes=np.fromiter(map(code_of.__getitem__, category), np.int32, count),
        categories=tuple(categories),
        title_codes=np.fromiter(map(key_code, title_key), np.int64, count),
        url_codes=np.fromiter(map(key_code, url_key), np.int64, count),
        alive=alive,
        row_of={ids_list[row]: row for row in np.flatnonzero(alive).tolist()},
        language_codes=np.fromiter(map(language_of.__getitem__, lang), np.int32, count),
        languages=tuple(languages),
    )


def _stored_languages(rows: Sequence[tuple[Any, ...]]) -> dict[str, str | None]:
    """Each language value stored in ``rows`` and its normalised code: versions written before
    codes were normalised hold ``eng`` or ``en-GB`` beside ``en``."""
    return {stored: normalise(stored) for stored in {row[7] for row in rows} if stored is not None}
