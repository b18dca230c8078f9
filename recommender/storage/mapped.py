"""Files of aligned arrays that open without being read: a version's image (image.py) and its
precomputed lists (lists.py).

Layout: a magic string naming the kind of file, the header length (8 bytes, little-endian), a
JSON header (which holds, under ``arrays``, each array's dtype, shape and offset from where
the arrays begin), zeros up to a multiple of ``ALIGN``, then the arrays, each at an offset
that is a multiple of ``ALIGN`` and followed by zeros up to the next. A reader maps the file
and views each array in place (``numpy.frombuffer``): pages are read when they are touched.

A file is written beside its final name, flushed and then renamed over it (``write_mapped``),
so a reader sees a whole file or the one before; older generations are then deleted
(``remove_older``): readers that mapped one keep their mapping.
"""

from __future__ import annotations

import json
import mmap
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import create_new

ALIGN = 64


def encode_header(magic: bytes, header: dict[str, Any]) -> bytes:
    """What a mapped file starts with: ``magic``, the length of the JSON header, the header,
    then zeros up to a multiple of ``ALIGN``."""
    encoded = json.dumps(header).encode("utf-8")
    head = magic + len(encoded).to_bytes(8, "little") + encoded
    return head + bytes(-len(head) % ALIGN)


def decode_header(mapped: mmap.mmap, magic: bytes) -> tuple[dict[str, Any], int] | None:
    """The JSON header of a mapped file that starts with ``magic`` and where its arrays begin
    (``encode_header``); None for a file of another kind (ValueError for a damaged header)."""
    if mapped[: len(magic)] != magic:
        return None
    length = int.from_bytes(mapped[len(magic) : len(magic) + 8], "little")
    start = len(magic) + 8
    header = json.loads(mapped[start : start + length])
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, start + length + (-(start + length) % ALIGN)


def aligned(size: int) -> int:
    """``size`` rounded up to a multiple of ``ALIGN``."""
    return -(-size // ALIGN) * ALIGN


def layout(arrays: Mapping[str, tuple[str, Sequence[int]]]) -> tuple[dict[str, Any], int]:
    """Where arrays of these dtypes and shapes lie, by name and in this order, one after the
    other from where the arrays begin: the header's ``arrays`` (dtype, shape, offset of each)
    and the size of them all, padding included."""
    found: dict[str, Any] = {}
    position = 0
    for name, (dtype, shape) in arrays.items():
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        found[name] = {"dtype": dtype, "shape": [int(n) for n in shape], "offset": position}
        position += aligned(size)
    return found, position


def layout_of(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], int]:
    """``layout`` of these arrays."""
    return layout({name: (array.dtype.str, array.shape) for name, array in arrays.items()})


def padded(parts: Iterable[np.ndarray | Iterable[bytes]]) -> Iterator[bytes | memoryview]:
    """The bytes of arrays laid out one after the other (``layout``): each (a contiguous
    array, or its bytes in pieces) followed by zeros up to a multiple of ``ALIGN``."""
    for part in parts:
        if isinstance(part, np.ndarray):
            pieces: Iterable[bytes | memoryview] = [
                np.ascontiguousarray(part).reshape(-1).view(np.uint8).data
            ]
        else:
            pieces = part
        size = 0
        for piece in pieces:
            size += len(piece)
            yield piece
        if size % ALIGN:
            yield bytes(-size % ALIGN)


def write_mapped(path: Path, pieces: Iterable[bytes | memoryview]) -> None:
    """Write a file of these pieces, flushed, beside ``path`` and then renamed over it."""
    temporary = path.parent / f".{path.name}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    fd = create_new(temporary)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            for piece in pieces:
                out.write(piece)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temporary, path)


def remove_older(
    folder: Path, name: re.Pattern[str], generation: int, written: str | None = None
) -> None:
    """Delete the files of ``folder`` named by ``name`` (its group 1: their generation) of a
    generation below ``generation``, and of ``generation`` under another name than
    ``written`` (the file just written, when ``name`` has two names for one generation).
    A folder under such a name is not the engine's: it is left alone."""
    for entry in folder.iterdir():
        match = name.fullmatch(entry.name)
        if not match or entry.is_dir():
            continue
        found = int(match.group(1))
        if found < generation or (found == generation and written not in (None, entry.name)):
            entry.unlink(missing_ok=True)  # readers that mapped it keep their mapping


def map_file(path: Path) -> mmap.mmap:
    """The whole file at ``path``, mapped read-only."""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def view_arrays(
    mapped: mmap.mmap,
    header: dict[str, Any],
    base: int,
    dtypes: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays a header lays out (``layout``), viewed in the mapped file, not copied;
    ``base``: where the arrays begin (``decode_header``). ``dtypes``: only these arrays, each
    of this dtype. ValueError for an array of another dtype or one that does not fit."""
    specs = header["arrays"]
    names = list(specs) if dtypes is None else list(dtypes)
    arrays = {}
    for name in names:
        spec = specs[name]
        dtype = np.dtype(spec["dtype"])
        if dtypes is not None and dtype != np.dtype(dtypes[name]):
            raise ValueError(f"array {name} is of dtype {dtype}, expected {dtypes[name]}")
        count = int(np.prod(spec["shape"], dtype=np.int64))
        offset = base + int(spec["offset"])
        if count < 0 or offset < base or offset + count * dtype.itemsize > len(mapped):
            raise ValueError(f"array {name} does not fit")
        array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
        arrays[name] = array.reshape(spec["shape"])
    return arrays
