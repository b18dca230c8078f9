"""Each article's related list, computed when its version is written: ``similar(id)`` with the
index's own ranking and no filters is then a lookup, not a search.

A version's lists (``answers-GGGGGGGGGGGG.bin``, G the generation they were computed at) hold,
for every row, the first ``Settings.precomputed_k`` groups that the query path would list for
it (``retrieve.gather`` then ``rerank.rank``, the same code): each group's shown row, its other
copies and its score parts. They are what ``similar`` would answer as long as the article's
candidates are what they were, so a query uses its row's list only when

- it asks what was computed: the ranking the lists were made with (``Ranking`` compared whole),
  no filters and no excluded ids, ``k`` no larger than the lists and the same number of
  candidates;
- the row itself is unchanged since G, and no row changed since G (added, removed, or edited in
  place) could be among its candidates: its embedding cosine with the query article is below
  the lowest of the query's embedding candidates (``dense_floor``) and its TF-IDF score on the
  query's strongest terms below the lowest of its TF-IDF candidates (``lexical_floor``).
  Vectors and terms of the changed rows are held once per snapshot; past ``MAX_CHANGED`` rows
  changed since G the lists are not used (a compaction or build computes them again,
  ``recommend precompute`` those the changes touched);
- a graph (HNSW) search is walked as it was for them (``walk``: removals widen it once they
  are a large enough share) and the reader has seen every removal (one not refreshed since a
  removal elsewhere searches, as its search then asks FAISS for more rows).

Otherwise the query is answered as before, so a list can be missing, stale or damaged without
any answer changing: only its speed does. Each row's record has its own CRC32 (seeded with the
row number), checked when the row is looked up, so nothing is read ahead.

Layout: ``MAGIC``, the header length (8 bytes, little-endian), a JSON header (generation, rows,
``k``, candidates, walk, ranking, each array's dtype, shape and offset, and the CRC32 of all
that as ``checksum``), then the arrays at offsets that are multiples of 64: ``offsets`` (rows
+ 1, into ``records``), ``crcs`` (rows) and ``records``. A row's record, little-endian:
dense_floor (f4), lexical_floor (f4), n (i4); then n shown rows (i4), n copy counts (i4), n
scores, similarities, recency and category factors (f8 each), n embedding and TF-IDF cosines
(f4 each); then every group's other copies (i4).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import mmap
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SettingsError
from ..read.retrieve import candidate_count
from ..settings import Ranking
from .mapped import (
    decode_header,
    encode_header,
    layout,
    map_file,
    padded,
    remove_older,
    view_arrays,
    write_mapped,
)

if TYPE_CHECKING:
    from ..read.held import Changed
    from ..read.snapshot import Snapshot

MAGIC = b"RECANS01"
NAME = re.compile(r"answers-(\d{12})\.bin")
_HEAD = np.dtype([("dense_floor", "<f4"), ("lexical_floor", "<f4"), ("count", "<i4")])


UNFINISHED = re.compile(r"\.answers-\d{12}\.bin\.\d+")


def remove_unfinished(version: Path) -> None:
    """Delete lists a killed writer was writing in ``version`` (call under the writer lock:
    no live writer is writing any)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(version):
            if UNFINISHED.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)


def header_checksum(header: dict[str, Any]) -> int:
    """The CRC32 of a header (without its ``checksum``): a header whose generation, ``k`` or
    ranking changed would have its lists used for queries they do not answer."""
    return zlib.crc32(json.dumps(header, sort_keys=True).encode("utf-8"))


def answers_name(generation: int) -> str:
    return f"answers-{generation:012d}.bin"


def newest(version: Path) -> Path | None:
    """The lists with the highest generation in a version folder, if any."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(version):
            match = NAME.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                found.append((int(match.group(1)), Path(entry.path)))
    return max(found)[1] if found else None


@dataclass(frozen=True)
class Listed:
    """One row's list: its groups' shown rows, copies and score parts, best first."""

    dense_floor: float
    lexical_floor: float
    heads: np.ndarray  # int32 rows
    copies: list[np.ndarray]  # each group's other rows
    score: np.ndarray
    similarity: np.ndarray
    recency: np.ndarray
    category: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray


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
    head = np.array([(dense_floor, lexical_floor, count)], dtype=_HEAD).tobytes()
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


def parse(data: bytes | memoryview, rows: int) -> Listed | None:
    """A record read back; None when it is inconsistent (its rows out of range, sizes off)."""
    size = len(data)
    if size < _HEAD.itemsize:
        return None
    head = np.frombuffer(data, _HEAD, 1)[0]
    count = int(head["count"])
    at = _HEAD.itemsize
    fixed = at + count * (4 + 4 + 4 * 8 + 2 * 4)
    if count < 0 or fixed > size or (size - fixed) % 4:
        return None
    heads = np.frombuffer(data, "<i4", count, at)
    sizes = np.frombuffer(data, "<i4", count, at + 4 * count)
    at += 8 * count
    values = []
    for dtype in ("<f8",) * 4 + ("<f4",) * 2:
        width = np.dtype(dtype).itemsize
        values.append(np.frombuffer(data, dtype, count, at))
        at += width * count
    members = np.frombuffer(data, "<i4", (size - fixed) // 4, fixed)
    if int(sizes.sum()) != len(members) or (len(sizes) and int(sizes.min()) < 0):
        return None
    every = np.concatenate([heads, members])
    if len(every) and (int(every.min()) < 0 or int(every.max()) >= rows):
        return None
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    return Listed(
        dense_floor=float(head["dense_floor"]),
        lexical_floor=float(head["lexical_floor"]),
        heads=heads,
        copies=[members[bounds[i] : bounds[i + 1]] for i in range(count)],
        score=values[0],
        similarity=values[1],
        recency=values[2],
        category=values[3],
        dense=values[4],
        lexical=values[5],
    )


def compute_row(snapshot: Snapshot, row: int, ranking: Ranking, k: int) -> bytes:
    """The record of one row: what ``similar`` lists for it (the query pipeline's first
    ``k`` groups) and the floors of its candidates."""
    from ..read.pipeline import SLACK, candidates, first_groups

    vector, terms = snapshot.vector(row), snapshot.terms(row)
    gathered = candidates(snapshot, vector, terms, k, ranking, drop={row})
    entries = first_groups(gathered, ranking, snapshot.query(row), k + SLACK)[:k]
    parts = ("score", "similarity", "recency", "category", "dense", "lexical")
    return record(
        gathered.dense_floor,
        gathered.lexical_floor,
        [entry.row for entry in entries],
        [list(entry.copies) for entry in entries],
        [np.array([getattr(entry, part) for entry in entries], np.float64) for part in parts],
    )


def write_answers(
    snapshot: Snapshot, k: int, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Compute every live row's list at the snapshot's generation and write them (flushed)
    into its version, beside older ones, which it then deletes. Lists of the version's
    current ones that still hold (no row changed since could be among their candidates, as a
    query checks) are kept as they are: only those the changes touched are computed again."""
    ranking = snapshot.settings.ranking
    total = len(snapshot.columns.ids)
    records = _computed(snapshot, k, progress)
    offsets = np.zeros(total + 1, dtype="<i8")
    np.cumsum([len(r) for r in records], out=offsets[1:])
    crcs = np.array([zlib.crc32(r, row) for row, r in enumerate(records)], dtype="<u4")
    arrays, _ = layout(
        {
            "offsets": ("<i8", offsets.shape),
            "crcs": ("<u4", crcs.shape),
            "records": ("|u1", [int(offsets[-1])]),
        }
    )
    candidates = candidate_count(snapshot, k, ranking.candidates)
    header = {
        "generation": snapshot.generation,
        "rows": total,
        "k": k,
        "candidates": candidates,
        # How a graph search was walked for them (retrieve.graph_walk), None for none.
        "walk": snapshot.graph_walk(candidates + 1),
        "ranking": asdict(ranking),
        "arrays": arrays,
    }
    header["checksum"] = header_checksum(header)
    path = snapshot.version / answers_name(snapshot.generation)
    # Written piece by piece: the records are not joined in memory (half a GB at a million).
    chunks = (b"".join(records[start : start + 10_000]) for start in range(0, total, 10_000))
    head = encode_header(MAGIC, header)
    write_mapped(path, itertools.chain([head], padded([offsets, crcs, chunks])))
    remove_older(path.parent, NAME, snapshot.generation)
    return path


def _computed(
    snapshot: Snapshot, k: int, progress: Callable[[int, int], None] | None
) -> list[bytes]:
    """Every row's record, in row order: in this process for a small index, else in
    ``workers()`` worker processes, ``CHUNK`` rows at a time."""
    total = len(snapshot.columns.ids)
    count = min(workers(), -(-total // CHUNK)) if total >= PARALLEL_MIN_ROWS else 1
    if count > 1:
        return _in_workers(snapshot, k, count, progress)
    records: list[bytes] = []
    for start in range(0, total, CHUNK):
        records += _chunk_of(snapshot, start, min(start + CHUNK, total), k)
        if progress is not None:
            progress(len(records), total)
    return records


#: From this many rows the lists are computed by worker processes, ``CHUNK`` rows at a time.
PARALLEL_MIN_ROWS = 20_000
CHUNK = 2_000


def workers() -> int:
    """Processes computing lists: one per core this process may use, at most 16."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 16))


def _chunk_of(snapshot: Snapshot, start: int, end: int, k: int) -> list[bytes]:
    """The records of rows ``start`` to ``end``: a row's current list kept as it is when it
    still holds (``_kept``), else computed."""
    ranking = snapshot.settings.ranking
    alive = snapshot.columns.alive
    previous = _previous(snapshot, k)
    records = []
    for row in range(start, end):
        if not alive[row]:
            records.append(b"")
            continue
        kept = _kept(snapshot, previous, row)
        records.append(kept if kept is not None else compute_row(snapshot, row, ranking, k))
    return records


def _previous(snapshot: Snapshot, k: int) -> tuple[Answers, Changed] | None:
    """The snapshot's lists and the rows changed since, when lists computed now would be of
    the same kind (same ``k``, ranking and candidates): those that still hold are kept."""
    found = snapshot.answers
    ranking = snapshot.settings.ranking
    if found is None or found.k != k:
        return None
    if not found.serves(k, ranking, candidate_count(snapshot, k, ranking.candidates)):
        return None
    changed = snapshot.changed_rows
    return None if changed is None else (found, changed)


def _kept(snapshot: Snapshot, previous: tuple[Answers, Changed] | None, row: int) -> bytes | None:
    """The row's current record when it still holds (as a query would use it), else None."""
    if previous is None:
        return None
    from ..read.held import current_list

    held = current_list(snapshot, *previous, row)
    return None if held is None else bytes(held[0])


def _in_workers(
    snapshot: Snapshot, k: int, count: int, progress: Callable[[int, int], None] | None
) -> list[bytes]:
    """``_computed`` by ``count`` worker processes (``python -c WORKER``), each
    given chunks of rows on its standard input as it finishes the last; each chunk's records
    come back in a file of a temporary folder.

    Plain processes rather than ``multiprocessing``: its spawned workers import the caller's
    main module again, which breaks a script that builds an index without an ``if __name__ ==
    "__main__"`` guard; and a forked one may hang in FAISS's OpenMP.
    """
    import selectors
    import subprocess
    import sys
    import tempfile

    from ..errors import IndexWriteError

    total = len(snapshot.columns.ids)
    starts = list(range(0, total, CHUNK))
    done: dict[int, list[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="recommender-lists-") as folder:
        command = [sys.executable, "-c", WORKER, str(snapshot.path), str(snapshot.version)]
        command += [str(snapshot.generation), str(k), folder]
        errors = [Path(folder) / f"errors-{number}.txt" for number in range(count)]
        processes = []
        for path in errors:
            with open(path, "w") as error:  # a file, not a pipe: it can never fill up
                processes.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=error,
                        text=True,
                    )
                )
        selector = selectors.DefaultSelector()
        try:
            pending = list(reversed(starts))
            for process in processes:
                _give(process, pending)
                assert process.stdout is not None
                selector.register(process.stdout, selectors.EVENT_READ, process)
            while len(done) < len(starts):
                for key, _ in selector.select():
                    process = key.data
                    line = process.stdout.readline()
                    if not line:  # it ended: after its last chunk, or failing
                        selector.unregister(process.stdout)
                        process.wait()
                        if process.returncode == 0 and process.stdin.closed:
                            continue
                        message = errors[processes.index(process)].read_text()[-2000:]
                        raise IndexWriteError(
                            "a process computing precomputed lists stopped (exit status "
                            f"{process.returncode}): {message.strip() or 'no message'}"
                        )
                    start = int(line)
                    done[start] = _read_chunk(Path(folder) / f"chunk-{start}.bin")
                    _give(process, pending)
                    if progress is not None:
                        progress(min(total, sum(len(r) for r in done.values())), total)
        finally:
            selector.close()
            for process in processes:
                with contextlib.suppress(OSError):
                    if process.stdin is not None:
                        process.stdin.close()
                if process.poll() is None:
                    process.kill()
                process.wait()
    return [record for start in starts for record in done[start]]


#: What a worker process runs (``python -c``), its arguments after it.
WORKER = "import sys; from recommender.storage.lists import _worker; _worker(*sys.argv[1:])"


def _give(process: Any, pending: list[int]) -> None:
    """Send the worker its next chunk, or close its input when none is left."""
    if pending:
        start = pending.pop()
        process.stdin.write(f"{start} {start + CHUNK}\n")
        process.stdin.flush()
    else:
        process.stdin.close()


def _write_chunk(path: Path, records: list[bytes]) -> None:
    lengths = np.array([len(r) for r in records], dtype="<i8")
    path.write_bytes(len(records).to_bytes(8, "little") + lengths.tobytes() + b"".join(records))


def _read_chunk(path: Path) -> list[bytes]:
    data = path.read_bytes()
    path.unlink()
    count = int.from_bytes(data[:8], "little")
    lengths = np.frombuffer(data, "<i8", count, 8).tolist()
    at, records = 8 + 8 * count, []
    for length in lengths:
        records.append(data[at : at + length])
        at += length
    return records


def _worker(path: str, version: str, generation: str, k: str, folder: str) -> None:
    """A worker process: opens the version, then computes each chunk of rows it reads on its
    standard input ("start end"), and answers with its start once the chunk's file is
    written."""
    import sys

    from ..read.snapshot import Snapshot

    snapshot = Snapshot.of_version(Path(path), Path(version))
    if snapshot.generation != int(generation):
        raise SystemExit(f"{version} changed while its lists were computed")
    total = len(snapshot.columns.ids)
    for line in sys.stdin:
        start, end = (int(value) for value in line.split())
        records = _chunk_of(snapshot, start, min(end, total), int(k))
        _write_chunk(Path(folder) / f"chunk-{start}.bin", records)
        print(start, flush=True)


class Answers:
    """A version's lists, mapped (``read_answers``); rows are read when looked up."""

    def __init__(self, mapped: mmap.mmap, header: dict[str, Any], base: int) -> None:
        self.generation = int(header["generation"])
        self.rows = int(header["rows"])
        self.k = int(header["k"])
        self.candidates = int(header["candidates"])
        walk = header["walk"]
        self.walk: int | str | None = walk if walk is None or isinstance(walk, str) else int(walk)
        self.ranking = Ranking(**header["ranking"])
        arrays = view_arrays(
            mapped, header, base, {"offsets": "<i8", "crcs": "<u4", "records": "|u1"}
        )
        if len(arrays["offsets"]) != self.rows + 1 or len(arrays["crcs"]) != self.rows:
            raise ValueError("arrays of another size than the rows")
        self._offsets = arrays["offsets"]
        self._crcs = arrays["crcs"]
        self._records = arrays["records"]
        self._view = memoryview(mapped)[base + int(header["arrays"]["records"]["offset"]) :]

    def serves(self, k: int, ranking: Ranking, candidates: int) -> bool:
        """Whether a query for ``k`` groups with this ranking may use the lists."""
        return k <= self.k and candidates == self.candidates and ranking == self.ranking

    def listed(self, row: int) -> Listed | None:
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
                continue
            if self.listed(row) is None:
                bad.append(row)
        return [f"row {row}" for row in bad[:10]] + (
            [f"and {len(bad) - 10} more rows"] if len(bad) > 10 else []
        )


def read_answers(path: Path) -> Answers | None:
    """The lists in ``path``, mapped, not read; None when they cannot be used."""
    try:
        mapped = map_file(path)
        decoded = decode_header(mapped, MAGIC)
        if decoded is None:
            return None
        header, base = decoded
        if header.pop("checksum", None) != header_checksum(header):
            return None  # its generation, k or ranking could be anything
        return Answers(mapped, header, base)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError, SettingsError):
        return None
