"""A snapshot's columns and TF-IDF rows as one file that opens without being read.

Opening an index used to read every row from SQLite, decode every term vector and stack them
into scipy matrices: 0.9 s at 138k headlines, most of a whole ``recommend similar`` process.
A version's image (``image-GGGGGGGGGGGG.bin``, G the generation it holds) keeps what a
``Snapshot`` needs in memory as arrays laid out for ``numpy.frombuffer`` on a memory map: a
reader maps it (pages are read when a query touches them) and then reads from SQLite only the
rows changed since G, as a refresh does. The image is a cache, never the truth: written after a
build, a compaction or a replica copy; one that is missing, damaged (a CRC32 of its content
and one of its header are checked), not bound to the version's build (``mapped.refusal``: an
image of another build of the same articles holds them in another order than the vectors),
of a later generation or inconsistent is ignored and the index loads from SQLite as before.

Layout: a mapped file (mapped.py) starting with ``MAGIC``, whose JSON header holds the build,
stamp, generation, sizes, categories, languages, the CRC32 of the arrays after it and, as
``checksum``, the CRC32 of the header itself. Languages are normalised codes
(``language.normalise``): an image is written since they are.
"""

from __future__ import annotations

import itertools
import mmap
import os
import re
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..lexical import LexicalPart, SparseRows
from .columns import Columns, RowMap
from .mapped import (
    Binding,
    Ignored,
    bound_header,
    encode_header,
    header_checksum,
    layout_of,
    map_derived,
    named_generation,
    padded,
    remove_older,
    view_arrays,
    write_mapped,
)
from .table import new_stamp, record_stamp

MAGIC = b"RECIMG01"
NAME = re.compile(r"image-(\d{12})\.bin")

#: Columns arrays, by name, with the dtype they are stored in.
_COLUMNS = {
    "published_days": "<f8",
    "category_codes": "<i4",
    "title_codes": "<i8",
    "url_codes": "<i8",
    "alive": "|b1",
    "language_codes": "<i4",
}


def image_name(generation: int) -> str:
    return f"image-{generation:012d}.bin"


def newest(version: Path) -> tuple[int, Path] | None:
    """The image with the highest generation in a version folder, if any."""
    found = candidates(version)
    return found[0] if found else None


def candidates(version: Path) -> list[tuple[int, Path]]:
    """The images of a version folder (plain files under an image's name, never a symbolic
    link), with their generation, the highest first: a reader uses the first bound to the
    version (one copied in from elsewhere may be named as a later generation)."""
    found = []
    try:
        for entry in os.scandir(version):
            match = NAME.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                found.append((int(match.group(1)), Path(entry.path)))
    except OSError:
        return []
    return sorted(found, reverse=True)


def write_image(
    version: Path,
    generation: int,
    columns: Columns,
    lexical: LexicalPart,
    lexicon_size: int,
    build: str,
) -> Path:
    """Write (and flush) the image of a snapshot at ``generation`` into ``version``, bound
    to its build (``table.BUILD``), name it in the version's database (``table.record_stamp``;
    under the writer lock), then delete the older ones. ``lexical``: all its TF-IDF rows as
    one part."""
    stamp = new_stamp()
    ids = [article_id.encode("utf-8") for article_id in columns.ids]
    arrays: dict[str, np.ndarray] = {
        name: np.ascontiguousarray(getattr(columns, name), dtype=dtype)
        for name, dtype in _COLUMNS.items()
    }
    # Ids one per line (split at once when read), or, when one holds a line break, end to end
    # with their offsets.
    newline_free = not any(b"\n" in encoded for encoded in ids)
    offsets = np.zeros(0 if newline_free else len(ids) + 1, dtype="<i8")
    if not newline_free:
        np.cumsum([len(encoded) for encoded in ids], out=offsets[1:])
    joined = (b"\n" if newline_free else b"").join(ids)
    arrays["id_bytes"] = np.frombuffer(joined, dtype=np.uint8)
    arrays["id_offsets"] = offsets
    for side, matrix in (("row", lexical.by_row), ("term", lexical.by_term)):
        arrays[f"{side}_indptr"] = np.ascontiguousarray(matrix.indptr, dtype="<i8")
        arrays[f"{side}_indices"] = np.ascontiguousarray(matrix.indices, dtype="<i4")
        arrays[f"{side}_data"] = np.ascontiguousarray(matrix.data, dtype="<f4")
    crc = 0
    for piece in padded(arrays.values()):
        crc = zlib.crc32(piece, crc)
    header: dict[str, Any] = {
        "build": build,
        "stamp": stamp,
        "generation": generation,
        "rows": len(columns.ids),
        "lexicon_size": lexicon_size,
        "categories": list(columns.categories),
        "languages": list(columns.languages),
        "newline_free": newline_free,
        "crc32": crc,
        "arrays": layout_of(arrays)[0],
    }
    header["checksum"] = header_checksum(header)
    path = version / image_name(generation)
    write_mapped(path, itertools.chain([encode_header(MAGIC, header)], padded(arrays.values())))
    # Named before the older one goes: a reader opening meanwhile maps one or the other.
    record_stamp(version, "image", stamp)
    remove_older(version, NAME, generation)
    return path


def load_image(
    path: Path, lexicon_size: int, binding: Binding, generation: int, rows: int
) -> tuple[int, Columns, LexicalPart]:
    """The generation, columns and TF-IDF part an image holds, mapped, not read, when it
    holds for a version bound as ``binding`` says at ``generation`` with ``rows`` rows and
    this lexicon; Ignored, saying why, when it cannot be used (unreadable, damaged, bound to
    another build or state: ``mapped.refusal``)."""
    mapped = map_derived(path)
    named = named_generation(path, NAME)
    header, base = bound_header(mapped, MAGIC, named, binding, "image", generation, rows)
    try:
        if header["lexicon_size"] != lexicon_size:
            raise Ignored(
                f"made with another lexicon ({header['lexicon_size']} terms; this version "
                f"has {lexicon_size})"
            )
        found = _parsed(mapped, header, base, lexicon_size)
    except (ValueError, KeyError, TypeError, OverflowError):
        found = None
    if found is None:
        raise Ignored("damaged (its arrays do not match their checksum or each other)")
    return found


def _parsed(
    mapped: mmap.mmap, header: dict[str, Any], base: int, lexicon_size: int
) -> tuple[int, Columns, LexicalPart] | None:
    # Checked on a thread of its own (zlib lets go of the GIL) while the ids are decoded.
    crc: list[int] = []
    checking = threading.Thread(
        target=lambda: crc.append(zlib.crc32(memoryview(mapped)[base:])), daemon=True
    )
    checking.start()
    try:
        found = _arrays(mapped, header, base, lexicon_size)
    finally:
        checking.join()
    if crc != [header["crc32"]]:
        return None
    return found


def _arrays(
    mapped: mmap.mmap, header: dict[str, Any], base: int, lexicon_size: int
) -> tuple[int, Columns, LexicalPart] | None:
    arrays = view_arrays(mapped, header, base)  # ValueError for one that does not fit
    rows = int(header["rows"])
    if any(len(arrays[name]) != rows for name in _COLUMNS):
        return None
    ids = _ids(arrays["id_bytes"], arrays["id_offsets"], rows, bool(header["newline_free"]))
    if ids is None:
        return None
    by_row = _compressed(arrays, "row", rows, lexicon_size, rows)
    by_term = _compressed(arrays, "term", lexicon_size, rows, rows)
    if by_row is None or by_term is None:
        return None
    alive = arrays["alive"]
    columns = Columns(
        ids=ids,
        published_days=arrays["published_days"],
        category_codes=arrays["category_codes"],
        categories=tuple(header["categories"]),
        title_codes=arrays["title_codes"],
        url_codes=arrays["url_codes"],
        alive=alive,
        row_of=RowMap(ids, alive),
        language_codes=arrays["language_codes"],
        languages=tuple(header["languages"]),
    )
    if not _codes_fit(columns):
        return None
    return int(header["generation"]), columns, LexicalPart(0, by_row, by_term)


def _ids(raw: np.ndarray, offsets: np.ndarray, rows: int, newline_free: bool) -> list[str] | None:
    text = raw.tobytes()
    if newline_free:
        ids = text.decode("utf-8").split("\n") if rows else []
        return ids if len(ids) == rows else None
    if len(offsets) != rows + 1 or offsets[0] != 0 or offsets[-1] != len(raw):
        return None
    bounds = offsets.tolist()
    return [text[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]


def _compressed(
    arrays: dict[str, np.ndarray], side: str, count: int, width: int, rows: int
) -> SparseRows | None:
    """The compressed rows (or, for the terms, columns) of one side, if consistent: ``count``
    lines of entries below ``width``."""
    indptr, indices, data = (arrays[f"{side}_{part}"] for part in ("indptr", "indices", "data"))
    if len(indptr) != count + 1 or indptr[0] != 0 or int(indptr[-1]) != len(indices):
        return None
    if len(indices) != len(data) or np.any(np.diff(indptr) < 0):
        return None
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= width):
        return None
    shape = (rows, width) if side == "row" else (rows, count)
    return SparseRows(indptr, indices, data, shape)


def _codes_fit(columns: Columns) -> bool:
    """Whether category and language codes name entries of their lists."""
    for codes, names in (
        (columns.category_codes, columns.categories),
        (columns.language_codes, columns.languages),
    ):
        if len(codes) and (int(codes.min()) < -1 or int(codes.max()) >= len(names)):
            return False
    return True


def lexical_whole(parts: tuple[LexicalPart, ...], width: int) -> LexicalPart:
    """The TF-IDF rows of a snapshot as one part (its parts joined, if several)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return LexicalPart.of(0, [], width)
    return LexicalPart.joined(list(parts))
