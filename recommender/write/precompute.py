"""Computing the precomputed lists: each row's first related articles, by the query pipeline.

A build, a compaction or ``recommend precompute`` calls ``save``: every live row's list is
``read.pipeline``'s answer for it (``compute_row``), except the lists of the version's current
file that still hold (``read.held``: no row changed since could be among their candidates), kept
as they are. From ``PARALLEL_MIN_ROWS`` rows the work is shared by plain worker processes, one per
core, ``CHUNK`` rows at a time. The file format is ``storage.precomputed``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexDamagedError
from ..read.held import Changed, current_list
from ..read.pipeline import SLACK, candidates, first_groups
from ..read.retrieve import candidate_count
from ..read.shown import shown_of
from ..read.snapshot import Snapshot
from ..settings import Ranking
from ..storage.mapped import ids_digest
from ..storage.precomputed import Precomputed, record, write
from ..storage.table import listed_fields


def save(snapshot: Snapshot, progress: Callable[[int, int], None] | None = None) -> Path | None:
    """Compute and write each live row's list into the snapshot's version, unless its
    settings ask for none, and name the file in the version's database (under the writer
    lock); ``progress`` is called with (done, total)."""
    k = snapshot.settings.precomputed_k
    ranking = snapshot.settings.ranking
    if not k or ranking.recency_from != "query":
        return None  # recency from the time of the query: no list holds for long
    if snapshot.build is None:
        raise ValueError(f"{snapshot.version} records no build id: its lists would bind to none")
    records = _computed(snapshot, k, progress)
    count = candidate_count(snapshot, k, ranking.candidates)
    walk = snapshot.graph_walk(count + 1)
    ids = ids_digest(snapshot.columns.ids)
    return write(
        snapshot.version,
        snapshot.generation,
        k,
        count,
        walk,
        ranking,
        records,
        build=snapshot.build,
        ids=ids,
        shown=pieces(snapshot),
    )


def pieces(snapshot: Snapshot) -> list[bytes]:
    """Each row's piece of JSON as lists show its article (``read.shown``), UTF-8, made from
    its stored row checked against its checksum; ``b""`` for a removed or damaged row, which
    a query reads from SQLite instead (as it did before the lists held pieces)."""
    total = len(snapshot.columns.ids)
    found = [b""] * total
    for start in range(0, total, PIECES_CHUNK):
        rows = list(range(start, min(start + PIECES_CHUNK, total)))
        try:
            stored = snapshot.table.checked_rows(rows)
        except IndexDamagedError:  # one by one: the damaged rows get none
            stored = {}
            for row in rows:
                with contextlib.suppress(IndexDamagedError):
                    stored.update(snapshot.table.checked_rows([row]))
        for row, values in stored.items():
            piece = shown_of(snapshot, row, listed_fields(values))[-1]
            with contextlib.suppress(UnicodeEncodeError):
                found[row] = piece.encode("utf-8")
    return found


#: Rows read from SQLite at a time for their pieces (one query's parameters).
PIECES_CHUNK = 500


def compute_row(snapshot: Snapshot, row: int, ranking: Ranking, k: int) -> bytes:
    """The record of one row: what ``similar`` lists for it (the query pipeline's first
    ``k`` groups) and the floors of its candidates."""
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


def _previous(snapshot: Snapshot, k: int) -> tuple[Precomputed, Changed] | None:
    """The snapshot's lists and the rows changed since, when lists computed now would be of
    the same kind (same ``k``, ranking and candidates): those that still hold are kept."""
    found = snapshot.precomputed
    ranking = snapshot.settings.ranking
    if found is None or found.k != k:
        return None
    if not found.serves(k, ranking, candidate_count(snapshot, k, ranking.candidates)):
        return None
    changed = snapshot.changed_rows
    return None if changed is None else (found, changed)


def _kept(
    snapshot: Snapshot, previous: tuple[Precomputed, Changed] | None, row: int
) -> bytes | None:
    """The row's current record when it still holds (as a query would use it), else None."""
    if previous is None:
        return None
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
WORKER = "import sys; from recommender.write.precompute import _worker; _worker(*sys.argv[1:])"


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
