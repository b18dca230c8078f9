"""The precomputed lists' file: for every row of a version, the first related articles the query
pipeline lists for it, so that ``similar(id)`` with the index's own ranking and no filters is a
lookup (``read.held`` says when a list still holds; ``write.precompute`` computes them).

A version's lists are ``precomputed-GGGGGGGGGGGG.bin``, G the generation they were computed at
(indexes written before this name hold ``answers-GGGGGGGGGGGG.bin``: the same format, known
by that name too, and replaced by the next lists written). Each row's record has its own CRC32
(seeded with the row number), checked when the row is looked up, so nothing is read ahead; a
missing, damaged or stale list changes no answer, only its speed. The lists name rows by
number, so they are bound to the build, generation and database they were computed for
(``mapped.refusal``): lists of another build, even of the same articles, or that the
version's database does not name, are never used; nor are those written before lists were
bound.

Layout: ``MAGIC``, the header length (8 bytes, little-endian), a JSON header (build, stamp,
generation, rows, a digest of the rows' ids in order, ``k``, candidates, walk, ranking, each
array's dtype, shape and offset, and the CRC32 of all that as ``checksum``), then the arrays at
offsets that are multiples of 64 (``mapped``): ``offsets`` (rows + 1, into ``records``),
``crcs`` (rows) and ``records``. A row's record, little-endian: dense_floor (f4),
lexical_floor (f4), n (i4); then n shown rows (i4), n copy counts (i4), n scores,
similarities, recency and category factors (f8 each), n embedding and TF-IDF cosines (f4
each); then every group's other copies (i4).

Files written since hold three arrays more, which readers of before leave alone: the pieces
of JSON that lists show of each row's article (``read.shown``: its stored fields but the body),
UTF-8, made from the stored rows (each checked against its checksum) as the lists were
written: ``shown_offsets`` (rows + 1), ``shown_crcs`` (rows, each seeded with the row number)
and ``shown``. A reader takes a row's piece instead of reading the row from SQLite only while
the row has not changed since the lists' generation (``read.shown``); an empty piece (a row
removed) or a damaged one sends it to SQLite.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import re
import struct
import sys
import typing
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingsError
from ..settings import RULES, Ranking
from .mapped import (
    Binding,
    Ignored,
    bound_header,
    encode_header,
    header_checksum,
    layout,
    map_derived,
    named_generation,
    padded,
    remove_older,
    view_arrays,
    write_mapped,
)
from .table import new_stamp, record_stamp

MAGIC = b"RECANS01"
#: The lists' file name; ``answers-`` in indexes written before the lists had one name.
NAME = re.compile(r"(?:precomputed|answers)-(\d{12})\.bin")


def file_name(generation: int) -> str:
    return f"precomputed-{generation:012d}.bin"


def newest(version: Path) -> Path | None:
    """The lists with the highest generation in a version folder, if any."""
    found = candidates(version)
    return found[0] if found else None


def candidates(version: Path) -> list[Path]:
    """The lists' files of a version folder (plain files under a lists' name, never a
    symbolic link), the highest generation first and, of one generation, the name written
    now before the old one: a reader uses the first bound to the version (one copied in from
    elsewhere may be named as a later generation)."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(version):
            match = NAME.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                new = entry.name.startswith("precomputed-")
                found.append((int(match.group(1)), new, Path(entry.path)))
    return [path for *_, path in sorted(found, reverse=True)]


@dataclass(frozen=True)
class StoredList:
    """One row's list: its groups' shown rows, copies and score parts, best first (plain
    Python values: a lookup reads a few of them, which numpy scalars would make slower)."""

    dense_floor: float
    lexical_floor: float
    heads: tuple[int, ...]
    copies: list[tuple[int, ...]]  # each group's other rows
    score: tuple[float, ...]
    similarity: tuple[float, ...]
    recency: tuple[float, ...]
    category: tuple[float, ...]
    dense: tuple[float, ...]
    lexical: tuple[float, ...]


def record(
    dense_floor: float,
    lexical_floor: float,
    heads: list[int],
    copies: list[list[int]],
    parts: list[np.ndarray],
) -> bytes:
    """A row's record (see the module docstring); ``parts``: score, similarity, recency and
    category factors, embedding and TF-IDF cosines, one value per group."""
    count = len(heads)
    head = _HEAD_STRUCT.pack(dense_floor, lexical_floor, count)
    members = [row for group in copies for row in group]
    return b"".join(
        [
            head,
            np.asarray(heads, "<i4").tobytes(),
            np.asarray([len(group) for group in copies], "<i4").tobytes(),
            *(np.asarray(part, "<f8").tobytes() for part in parts[:4]),
            *(np.asarray(part, "<f4").tobytes() for part in parts[4:]),
            np.asarray(members, "<i4").tobytes(),
        ]
    )


def parse(data: bytes | memoryview, rows: int) -> StoredList | None:
    """A record read back; None when it is inconsistent (its rows out of range, sizes off).

    One ``struct`` unpacking of the whole record: a lookup parses one on every query."""
    size = len(data)
    if size < _HEAD_SIZE:
        return None
    dense_floor, lexical_floor, count = _HEAD_STRUCT.unpack_from(data)
    fixed = _HEAD_SIZE + count * (4 + 4 + 4 * 8 + 2 * 4)
    if count < 0 or fixed > size or (size - fixed) % 4:
        return None
    members = (size - fixed) // 4
    values = _record_struct(count, members).unpack_from(data, _HEAD_SIZE)
    heads, sizes = values[:count], values[count : 2 * count]
    parts = [values[(2 + i) * count : (3 + i) * count] for i in range(6)]
    rest = values[8 * count :]
    if sum(sizes) != members or (count and min(sizes) < 0):
        return None
    if (count and (min(heads) < 0 or max(heads) >= rows)) or (
        members and (min(rest) < 0 or max(rest) >= rows)
    ):
        return None
    copies, at = [], 0
    for n in sizes:
        copies.append(rest[at : at + n])
        at += n
    return StoredList(dense_floor, lexical_floor, heads, copies, *parts)


def _record_struct(count: int, members: int) -> struct.Struct:
    """The layout of a record's body of ``count`` groups and ``members`` other copies."""
    key = (count, members)
    found = _STRUCTS.get(key)
    if found is None:
        found = struct.Struct(f"<{2 * count}i{4 * count}d{2 * count}f{members}i")
        if len(_STRUCTS) < 4096:  # few shapes: k groups, a few copies
            _STRUCTS[key] = found
    return found


#: A record's head: its dense and lexical floors (float32) and its count of groups.
_HEAD_STRUCT = struct.Struct("<ffi")
_HEAD_SIZE = _HEAD_STRUCT.size
_STRUCTS: dict[tuple[int, int], struct.Struct] = {}


def write(
    version: Path,
    generation: int,
    k: int,
    candidates: int,
    walk: int | str | None,
    ranking: Ranking,
    records: list[bytes],
    build: str,
    ids: str,
    shown: list[bytes] | None = None,
) -> Path:
    """Write a version's lists (one record a row, ``b""`` for none), flushed, bound to its
    build (``table.BUILD``), name them in the version's database (``table.record_stamp``;
    under the writer lock), then delete the older ones of the version (readers that mapped
    them keep their mapping). ``ids``: the ``mapped.ids_digest`` of its rows' ids; ``shown``:
    the rows' pieces of JSON (one a row, ``b""`` for none), if any."""
    stamp = new_stamp()
    total = len(records)
    if shown is not None and len(shown) != total:
        raise ValueError(f"{len(shown)} pieces for {total} rows")
    offsets, crcs = _index(records)
    specs = {
        "offsets": ("<i8", offsets.shape),
        "crcs": ("<u4", crcs.shape),
        "records": ("|u1", [int(offsets[-1])]),
    }
    pieces: list[Any] = []
    if shown is not None:
        shown_offsets, shown_crcs = _index(shown)
        specs["shown_offsets"] = ("<i8", shown_offsets.shape)
        specs["shown_crcs"] = ("<u4", shown_crcs.shape)
        specs["shown"] = ("|u1", [int(shown_offsets[-1])])
        pieces = [shown_offsets, shown_crcs, _chunks(shown)]
    arrays, _ = layout(specs)
    header = {
        "build": build,
        "stamp": stamp,
        "generation": generation,
        "rows": total,
        "ids": ids,
        "k": k,
        "candidates": candidates,
        # How a graph search was walked for them (retrieve.graph_walk), None for none.
        "walk": walk,
        "ranking": asdict(ranking),
        "rules": RULES,  # the ranking rules' version (settings.RULES) they were made by
        "arrays": arrays,
    }
    header["checksum"] = header_checksum(header)
    path = version / file_name(generation)
    # Written piece by piece: the records are not joined in memory (half a GB at a million).
    head = encode_header(MAGIC, header)
    body = padded([offsets, crcs, _chunks(records), *pieces])
    write_mapped(path, itertools.chain([head], body))
    # Named before the older ones go: a reader opening meanwhile maps one or the other.
    record_stamp(version, "lists", stamp)
    remove_older(path.parent, NAME, generation, path.name)  # answers-G.bin of an old index too
    return path


def _index(records: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (one more than the records) and CRC32s (each seeded with its row) of
    records laid end to end."""
    offsets = np.zeros(len(records) + 1, dtype="<i8")
    np.cumsum([len(r) for r in records], out=offsets[1:])
    crcs = np.array([zlib.crc32(r, row) for row, r in enumerate(records)], dtype="<u4")
    return offsets, crcs


def _chunks(records: list[bytes]) -> Iterator[bytes]:
    return (b"".join(records[start : start + 10_000]) for start in range(0, len(records), 10_000))


def _ints(array: np.ndarray) -> Sequence[int]:
    """An array of offsets or CRC32s (little-endian) as a lookup reads it, a value at a time:
    a memoryview of it where that is the machine's order, whose items are Python ints (a
    numpy scalar made and converted takes ten times as long), else the array itself."""
    if sys.byteorder != "little" or not array.flags.c_contiguous:
        return typing.cast(Sequence[int], array)
    return array.data.cast("B").cast("q" if array.dtype.itemsize == 8 else "I")


class Precomputed:
    """A version's lists, mapped (``read``); rows are read when looked up."""

    def __init__(self, mapped: mmap.mmap, header: dict[str, Any], base: int) -> None:
        self.build = str(header["build"])
        self.generation = int(header["generation"])
        self.rows = int(header["rows"])
        self.ids = str(header["ids"])  # ``mapped.ids_digest`` of its rows' ids
        self.k = int(header["k"])
        self.candidates = int(header["candidates"])
        walk = header["walk"]
        self.walk: int | str | None = walk if walk is None or isinstance(walk, str) else int(walk)
        self.ranking = Ranking(**header["ranking"])
        self.rules = int(header.get("rules", 1))  # lists of before the rules had a version: 1
        self._served: Ranking | None = None  # the last ranking ``serves`` found the same
        arrays = view_arrays(
            mapped, header, base, {"offsets": "<i8", "crcs": "<u4", "records": "|u1"}
        )
        if len(arrays["offsets"]) != self.rows + 1 or len(arrays["crcs"]) != self.rows:
            raise ValueError("arrays of another size than the rows")
        self._offsets = _ints(arrays["offsets"])
        self._crcs = _ints(arrays["crcs"])
        self._records = arrays["records"]
        self._view = memoryview(mapped)[base + int(header["arrays"]["records"]["offset"]) :]
        self._shown: tuple[Sequence[int], Sequence[int], memoryview] | None = None
        if "shown" in header["arrays"]:  # files written before hold no pieces
            found = view_arrays(
                mapped, header, base, {"shown_offsets": "<i8", "shown_crcs": "<u4", "shown": "|u1"}
            )
            if len(found["shown_offsets"]) != self.rows + 1:
                raise ValueError("pieces of another size than the rows")
            if len(found["shown_crcs"]) != self.rows:
                raise ValueError("pieces of another size than the rows")
            start = base + int(header["arrays"]["shown"]["offset"])
            view = memoryview(mapped)[start : start + len(found["shown"])]
            self._shown = (_ints(found["shown_offsets"]), _ints(found["shown_crcs"]), view)

    @property
    def has_pieces(self) -> bool:
        """Whether the file holds the rows' pieces of JSON (``piece``)."""
        return self._shown is not None

    def piece(self, row: int) -> str | None:
        """The piece of JSON that lists show of the article at ``row`` as it was when the
        lists were written (``read.shown``); None when the file holds none for it (a row
        removed, a file written before pieces) or it is damaged."""
        if self._shown is None or not 0 <= row < self.rows:
            return None
        offsets, crcs, view = self._shown
        start, end = int(offsets[row]), int(offsets[row + 1])
        if not 0 <= start < end <= len(view):
            return None
        data = view[start:end]
        if zlib.crc32(data, row) != int(crcs[row]):
            return None
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError:
            return None

    def serves(self, k: int, ranking: Ranking, candidates: int) -> bool:
        """Whether a query for ``k`` groups with this ranking may use the lists."""
        # A ranking found equal once is known by identity after (Ranking is frozen): every
        # lookup asks, with the snapshot's own.
        same = (ranking is self._served or ranking == self.ranking) and self.rules == RULES
        if same:
            self._served = ranking
        return k <= self.k and candidates == self.candidates and same

    def listed(self, row: int) -> StoredList | None:
        """The row's list; None when the row has none or its record is damaged."""
        data = self.stored(row)
        return None if data is None else parse(data, self.rows)

    def stored(self, row: int) -> memoryview | None:
        """The row's record as stored, when it has one and it is not damaged."""
        if not 0 <= row < self.rows:
            return None
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        if not 0 <= start < end <= len(self._records):
            return None
        data = self._view[start:end]
        if zlib.crc32(data, row) != int(self._crcs[row]):
            return None
        return data

    def problems(self) -> list[str]:
        """Rows whose record is damaged (for ``recommend check``)."""
        bad = []
        for row in range(self.rows):
            start, end = int(self._offsets[row]), int(self._offsets[row + 1])
            if start == end and start <= len(self._records):
                listed = True
            else:
                listed = self.listed(row) is not None
            if not listed or not self._piece_sound(row):
                bad.append(row)
        return [f"row {row}" for row in bad[:10]] + (
            [f"and {len(bad) - 10} more rows"] if len(bad) > 10 else []
        )

    def _piece_sound(self, row: int) -> bool:
        """Whether the row's piece is none (empty) or reads back whole."""
        if self._shown is None:
            return True
        offsets = self._shown[0]
        start, end = int(offsets[row]), int(offsets[row + 1])
        return (start == end and start <= len(self._shown[2])) or self.piece(row) is not None


def load(path: Path, binding: Binding, generation: int, rows: int) -> Precomputed:
    """The lists in ``path``, mapped, not read, when they hold for a version bound as
    ``binding`` says at ``generation`` with ``rows`` rows (``mapped.refusal``); Ignored,
    saying why, when they cannot be used."""
    mapped = map_derived(path)
    named = named_generation(path, NAME)
    header, base = bound_header(mapped, MAGIC, named, binding, "lists", generation, rows)
    try:
        return Precomputed(mapped, header, base)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, SettingsError):
        raise Ignored("damaged (its arrays do not fit its header)") from None
