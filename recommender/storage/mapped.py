"""Files of aligned arrays that open without being read: a version's image (image.py) and its
precomputed lists (precomputed.py), the files derived from its rows.

Layout: a magic string naming the kind of file, the header length (8 bytes, little-endian), a
JSON header (which holds, under ``arrays``, each array's dtype, shape and offset from where
the arrays begin), zeros up to a multiple of ``ALIGN``, then the arrays, each at an offset
that is a multiple of ``ALIGN`` and followed by zeros up to the next. A reader maps the file
and views each array in place (``numpy.frombuffer``): pages are read when they are touched.

A file is written beside its final name, flushed and then renamed over it (``write_mapped``),
so a reader sees a whole file or the one before; older generations are then deleted
(``remove_older``): readers that mapped one keep their mapping.

A derived file is bound to what it was computed from (``refusal``): its header records the
build of the version (a random id the version's database records, ``table.BUILD``, new with
every build and compaction, copied with the version by a replica), the generation, the number
of rows and a stamp, random, that the version's database records too when the writer has
written the file (``table.record_stamp``): the database names the one image and the one lists'
file it vouches for. A file whose build is not the version's (copied from another build, even
of the same articles: its rows are in another order), of a later generation, with more rows
than the version holds now, or that the database does not name (an older one of the version,
or one of another copy of the same build updated apart since) is ignored: answers are
searched or rows read from SQLite, never taken from it. The one named may be of an earlier
generation: it holds for the rows it covers, and what changed since is read or checked as the
reader does anyway.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import create_new

ALIGN = 64


class Ignored(Exception):
    """A derived file that is not used, and why (the message, as ``recommend check`` says it);
    ``older``: written by an earlier version of recommender, which bound it to nothing."""

    def __init__(self, reason: str, *, older: bool = False) -> None:
        super().__init__(reason)
        self.older = older


def header_checksum(header: dict[str, Any]) -> int:
    """The CRC32 of a header (without its ``checksum``): a header whose binding, sizes or
    settings were edited would have the file used for what it does not hold."""
    return zlib.crc32(json.dumps(header, sort_keys=True).encode("utf-8"))


@dataclass(frozen=True)
class Binding:
    """What a version's database says its derived files are bound to: its build id (None: a
    version written before builds had one) and the stamp of the image and of the lists it
    names (None: none)."""

    build: str | None = None
    image: str | None = None
    lists: str | None = None


def refusal(
    header: dict[str, Any], binding: Binding, kind: str, generation: int, rows: int
) -> str | None:
    """Why a derived file of ``kind`` ("image" or "lists") whose header is ``header`` does not
    hold for a version bound as ``binding`` says, at ``generation`` with ``rows`` rows; None
    when it holds."""
    bound = header.get("build")
    build = binding.build
    if not isinstance(bound, str) or not bound:
        return OLDER
    if build is None:
        return (
            f"computed for build {bound}, and this version records none (it was written by "
            "an earlier version of recommender)"
        )
    if bound != build:
        return f"computed for another build ({bound}; this version is {build})"
    found, count = int(header["generation"]), int(header["rows"])
    if found > generation:
        return f"computed at generation {found}, after this version's {generation}"
    if count > rows:
        return f"computed for {count} rows, and this version has {rows}"
    named = binding.image if kind == "image" else binding.lists
    if header.get("stamp") != named:
        if named is None:
            return f"this version's database names no {_KINDS[kind]}"
        return (
            f"not the {_KINDS[kind]} this version's database names (one it replaced, or one "
            "of another copy of this build, updated apart)"
        )
    return None


_KINDS = {"image": "image", "lists": "precomputed lists' file"}


#: Why a derived file from before the binding is ignored.
OLDER = "written by an earlier version of recommender, without the build it was computed for"


def map_derived(path: Path) -> mmap.mmap:
    """A derived file, mapped (``map_file``); Ignored when it cannot be."""
    try:
        return map_file(path)
    except ValueError:  # mmap refuses an empty file
        raise Ignored("damaged (empty)") from None
    except OSError as exc:
        raise Ignored(f"unreadable ({exc.strerror or exc})") from None


def bound_header(
    mapped: mmap.mmap,
    magic: bytes,
    named: int | None,
    binding: Binding,
    kind: str,
    generation: int,
    rows: int,
) -> tuple[dict[str, Any], int]:
    """The header of a derived file (``decode_header``) and where its arrays begin, once its
    checksum, its binding (``refusal``) and the generation its name gives (``named``, when
    it has one) are checked; Ignored, saying why, when not."""
    try:
        decoded = decode_header(mapped, magic)
    except ValueError:  # bad JSON and undecodable bytes too
        raise Ignored("damaged (its header cannot be read)") from None
    if decoded is None:
        raise Ignored("damaged (it is not a file of this kind)")
    header, base = decoded
    checksum = header.pop("checksum", None)
    if checksum is None and "build" not in header:
        raise Ignored(OLDER, older=True)  # the image had no header checksum then
    if checksum != header_checksum(header):
        raise Ignored("damaged (its header does not match its checksum)")
    try:
        reason = refusal(header, binding, kind, generation, rows)
    except (KeyError, TypeError, ValueError):
        raise Ignored("damaged (its header lacks its generation or rows)") from None
    if reason is not None:
        raise Ignored(reason, older=reason == OLDER)
    if named is not None and named != header["generation"]:
        # Older files are deleted by their name's generation (``remove_older``).
        raise Ignored(
            f"renamed (its name says generation {named}, its header {header['generation']})"
        )
    return header, base


def named_generation(path: Path, name: re.Pattern[str]) -> int | None:
    """The generation in a derived file's name (group 1 of ``name``), if it has one."""
    match = name.fullmatch(path.name)
    return int(match.group(1)) if match else None


def ids_digest(ids: Iterable[str]) -> str:
    """A digest of these ids in this order (``sha256:`` and hex): which articles a derived
    file's rows are, for ``recommend check`` to compare with the stored ones."""
    encoded = json.dumps(list(ids), ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()


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
