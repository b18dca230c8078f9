"""A version's vectors: immutable FAISS segment files, each holding the rows from its first
row on, checked against the size and CRC32 the version's table records for it."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexDamagedError
from .files import crc32_of, create_new


@dataclass(frozen=True)
class Segment:
    number: int
    first_row: int
    count: int
    file: str
    bytes: int
    crc32: int


#: The OpenMP threads FAISS had before queries set it to one (see ``single_threaded_queries``).
_threads_for_building: list[int] = []


def single_threaded_queries(faiss: Any) -> None:
    """Make FAISS search on the calling thread only (once per process). A query is one
    vector: FAISS splits work across queries, so its other threads only wait to be scheduled,
    which on a busy machine costs more than the search (88 against 4.7 ms a query, 2 cores,
    load 7). Parallelism comes from answering several queries at once, on their own threads.
    Building a graph still uses the threads FAISS had (``building_threads``)."""
    if not _threads_for_building:
        _threads_for_building.append(int(faiss.omp_get_max_threads()))
        faiss.omp_set_num_threads(1)


@contextlib.contextmanager
def building_threads(faiss: Any) -> Iterator[None]:
    """FAISS with the threads it had before queries made it single-threaded, meanwhile."""
    if not _threads_for_building:
        yield
        return
    faiss.omp_set_num_threads(_threads_for_building[0])
    try:
        yield
    finally:
        faiss.omp_set_num_threads(1)


def new_vector_index(dimension: int, vector_type: str) -> Any:
    """An empty exhaustive inner-product index storing float16 or float32 vectors."""
    import faiss

    if vector_type == "float16":
        # Exhaustive search is bound by memory bandwidth: half the bytes, about twice the
        # speed, for cosine errors below 1e-4 (see benchmarks/RESULTS.md).
        return faiss.IndexScalarQuantizer(
            dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    return faiss.IndexFlatIP(dimension)


def search_of(settings: dict[str, Any], rows: int) -> dict[str, Any]:
    """The vector search a build of ``rows`` articles uses with these (manifest) settings:
    ``{"type": "flat"}`` or ``{"type": "hnsw", "m": .., "ef_construction": .., "ef_search": ..}``,
    with ``vector_search="auto"`` resolved by size (``hnsw_min_rows``)."""
    chosen = settings.get("vector_search", "flat")
    if chosen == "auto":
        chosen = "hnsw" if rows >= int(settings.get("hnsw_min_rows", 20_000)) else "flat"
    if chosen != "hnsw":
        return {"type": "flat"}
    return {
        "type": "hnsw",
        "m": int(settings.get("hnsw_m", 32)),
        "ef_construction": int(settings.get("hnsw_ef_construction", 40)),
        "ef_search": int(settings.get("hnsw_ef_search", 128)),
    }


def describe_search(search: dict[str, Any]) -> str:
    """One line for ``recommend info``: the vector search of the build's segment."""
    if search.get("type") != "hnsw":
        return "flat (exact: every vector compared)"
    return (
        f"hnsw (approximate graph search: M={search['m']}, "
        f"efConstruction={search['ef_construction']}, efSearch={search['ef_search']})"
    )


def built_vector_index(
    dimension: int, vector_type: str, search: dict[str, Any], vectors: np.ndarray
) -> Any:
    """The index of a build's segment holding ``vectors``: exhaustive or HNSW (``search``)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if search.get("type") != "hnsw":
        index = new_vector_index(dimension, vector_type)
    elif vector_type == "float16":
        index = faiss.IndexHNSWSQ(
            dimension,
            faiss.ScalarQuantizer.QT_fp16,  # type: ignore[arg-type]
            search["m"],
            faiss.METRIC_INNER_PRODUCT,
        )
    else:
        index = faiss.IndexHNSWFlat(dimension, search["m"], faiss.METRIC_INNER_PRODUCT)
    if search.get("type") == "hnsw":
        index.hnsw.efConstruction = search["ef_construction"]
        index.hnsw.efSearch = search["ef_search"]
        if len(vectors):
            index.train(vectors)  # a no-op for float16 and float32 storage
    with building_threads(faiss):
        index.add(vectors)
    return index


def is_graph(index: Any) -> bool:
    """Whether a FAISS index searches by graph (HNSW) rather than exhaustively."""
    return hasattr(index, "hnsw")


class Checksums:
    """The CRC32s of some segment files of a version, computed on a thread of their own while
    the caller goes on (zlib lets go of the GIL): opening verifies the segments while it maps
    the image and builds its id map, instead of before."""

    def __init__(self, version: Path, files: Sequence[str]) -> None:
        self._found: dict[str, int] = {}
        self._thread = threading.Thread(
            target=self._compute, args=(version, list(files)), name="recommender-crc32", daemon=True
        )
        self._thread.start()

    def _compute(self, version: Path, files: list[str]) -> None:
        for name in files:
            with contextlib.suppress(OSError, ValueError):  # read_segment says what is wrong
                self._found[name] = crc32_of(version / name)

    def of(self, name: str) -> int | None:
        """The CRC32 of one of the files (once computed), or None if it was not computed."""
        self._thread.join()
        return self._found.get(name)


def vector_norms(index: Any, chunk: int = 65536) -> np.ndarray:
    """The length of every vector a segment's index stores, in row order (read a chunk at a
    time, so that a large segment is not copied whole)."""
    total = int(index.ntotal)
    norms = np.empty(total, dtype=np.float32)
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        with np.errstate(over="ignore", invalid="ignore"):
            norms[start : start + count] = np.linalg.norm(
                index.reconstruct_n(start, count).astype(np.float64), axis=1
            )
    return norms


def read_segment(
    version: Path,
    segment: Segment,
    dimension: int,
    *,
    mapped: bool = False,
    checksums: Checksums | None = None,
) -> Any:
    """One segment's FAISS index, checked against the size and checksum recorded for it.

    ``mapped``: its stored vectors memory-mapped from the file rather than copied into memory
    (the graph of an HNSW segment is still read): processes serving the same index share
    those pages, and opening reads less. Only for reading: FAISS aborts the process on
    adding to a mapped index. Safe because a segment file is never changed once written
    (writers make new files; one deleted while mapped stays readable to its holders).
    ``checksums``: the file's CRC32 computed beforehand, if it is there (``Checksums``).
    """
    import faiss

    path = version / segment.file
    where = f"index at {version.parent} is damaged: {segment.file}"
    try:
        size = path.stat().st_size
        crc = checksums.of(segment.file) if checksums is not None else None
        if crc is None and size == segment.bytes:
            crc = crc32_of(path)
    except FileNotFoundError:
        # Also when a writer merged it away meanwhile: a refresh then reads the list again.
        raise IndexDamagedError(f"{where} is missing; build it again") from None
    if size != segment.bytes:
        raise IndexDamagedError(
            f"{where} has {size} bytes, expected {segment.bytes}; build it again"
        )
    if crc != segment.crc32:
        raise IndexDamagedError(f"{where} does not match its checksum; build it again")
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mapped else 0)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise IndexDamagedError(f"{where} cannot be read ({reason}); build it again") from None
    if index.d != dimension or index.ntotal != segment.count:
        raise IndexDamagedError(
            f"{where} holds {index.ntotal} vectors of dimension {index.d}, "
            f"expected {segment.count} of {dimension}; build it again"
        )
    return index


def stored_vectors(index: Any) -> np.ndarray | None:
    """The vectors a FAISS index stores, as a (rows, dimension) numpy view of its own memory
    (float16 or float32, not copied; valid while ``index`` lives), or None for a kind of
    storage that must be decoded by FAISS. A graph's vectors are those of its flat storage."""
    import faiss

    codes_of = index.storage if is_graph(index) else index
    codes_of = faiss.downcast_index(codes_of)
    if isinstance(codes_of, faiss.IndexScalarQuantizer):
        if codes_of.sq.qtype != faiss.ScalarQuantizer.QT_fp16:
            return None
        dtype: Any = np.float16
    elif isinstance(codes_of, faiss.IndexFlat):
        dtype = np.float32
    else:
        return None
    count, dimension = int(codes_of.ntotal), int(codes_of.d)
    if not count:
        return np.empty((0, dimension), dtype=dtype)
    size = count * int(codes_of.code_size)
    raw: np.ndarray = np.asarray(faiss.rev_swig_ptr(codes_of.codes.data(), size))
    view: np.ndarray = raw.view(dtype).reshape(count, dimension)
    return view


def vectors_of(
    parts: Sequence[tuple[int, Any]],
    rows: np.ndarray,
    dimension: int,
    views: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """The stored vectors (decoded to float32) of these rows, in the order given, from FAISS
    indexes each holding the rows from its first row on: ``(first row, index)`` pairs.
    ``views``: ``stored_vectors`` of each part, if the caller holds them (read directly,
    without a call into FAISS)."""
    rows = np.asarray(rows, dtype=np.int64)
    if views is not None and len(parts) == 1 and parts[0][0] == 0 and views[0] is not None:
        return np.asarray(views[0][rows], dtype=np.float32)  # the common case: one part
    out = np.empty((len(rows), dimension), dtype=np.float32)
    for at, (first_row, index) in enumerate(parts):
        inside = (rows >= first_row) & (rows < first_row + int(index.ntotal))
        if inside.any():
            view = views[at] if views is not None else None
            if view is not None:
                out[inside] = view[rows[inside] - first_row]
                continue
            # A graph's vectors are in its flat storage, which decodes a batch at once.
            codes = index.storage if is_graph(index) else index
            out[inside] = codes.reconstruct_batch(rows[inside] - first_row)
    return out


def write_segment(version: Path, number: int, first_row: int, index: Any) -> Segment:
    """Write (and flush) one segment file; it counts only once a transaction records it."""
    import faiss

    name = f"seg-{number:06d}.faiss"
    path = version / name
    fd = create_new(path)
    try:
        crc, size = 0, 0

        def write(data: bytes) -> int:
            nonlocal crc, size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            crc, size = zlib.crc32(data, crc), size + len(data)
            return len(data)

        try:
            faiss.write_index(index, faiss.PyCallbackIOWriter(write))  # type: ignore[attr-defined]
        except RuntimeError as exc:  # an OSError in ``write`` comes back wrapped by faiss
            if "No space left on device" in str(exc):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise
        os.fsync(fd)
        # Never changed once written, and readers map it (read_segment): read-only, so that
        # an edit in place fails rather than pulling pages from under a serving process.
        os.fchmod(fd, 0o444)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return Segment(number, first_row, int(index.ntotal), name, size, crc)
