"""Copies of an index for read-only replicas: one writer, any number of machines serving it.

A version changes in place (``add`` and ``remove`` write new segments, then commit rows to its
SQLite file), so a copy of the index folder made file by file while the writer works can pair
a database with the segments of another moment, or miss what the WAL held. ``replicate``
copies one state instead, without stopping the writer or its readers:

1. the database is copied with SQLite's backup API in one step: one read transaction, which
   the writer's WAL lets go on meanwhile; the copy tells which generation it holds and which
   segments that generation lists;
2. those segments are copied (or hard-linked from the replica's previous copy, when that came
   from the same version and the segment is the same) and checked against the size and CRC32
   recorded for them; one gone meanwhile (the writer merged segments, or a build or compaction
   replaced the version) starts the copy again from the new state;
3. the copy is a new version folder of the replica, flushed, and only then named in its
   CURRENT (``transaction.write_staged``), which deletes the replica's older versions: a reader of
   the replica sees the previous copy or the new one, whole.

A replica's database is in rollback-journal mode, not WAL: nothing writes it, so a reader needs
no -shm file beside it and a read-only folder serves as well as any. As every copy is a new
version, readers of a replica load each one whole; they cannot follow updates in place, which
rsync could not ship atomically anyway (it replaces a file by another, which a reader holding
the old one open never sees).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from ..errors import (
    IndexBusyError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    RecommenderError,
)
from ..results import ReplicaReport
from ..storage import precomputed
from ..storage.files import create_new, file_signature, fsync_dir, write_new
from ..storage.layout import (
    ARTICLES,
    REPLICA_OF,
    SOURCE_GENERATION,
    SOURCE_VERSION,
    current_name,
    current_version,
)
from ..storage.manifest import MANIFEST, read_manifest
from ..storage.mapped import Binding, Ignored
from ..storage.table import (
    binding_of,
    ensure_build,
    generation_of,
    list_segments,
    open_for_reading,
)
from ..storage.vectors import Segment
from .transaction import write_image_of, write_staged, writing

logger = logging.getLogger(__name__)

#: Copies begun before giving up on an index that keeps changing under them (each retry
#: follows a segment merge or a new version, which an update makes at most once).
TRIES = 5


class _SourceChanged(Exception):
    """The index being copied changed under the copy in a way it cannot go on from."""


@dataclass(frozen=True)
class _Held:
    """What a replica's current version is a copy of."""

    version: Path
    source: str
    source_version: str
    generation: int
    segments: frozenset[Segment]
    articles: int


def replicate(source: Path, replica: Path, *, wait: bool | float = False) -> ReplicaReport:
    """Make ``replica`` a consistent copy of the index at ``source`` (see the module's doc);
    nothing is written when it already is one of the current state. ``wait``: if another
    ``replicate`` is writing the same replica, as ``IndexWriter``'s."""
    started = time.perf_counter()
    _refuse_overlap(source, replica)
    current_version(source)  # no index there: said before anything is made at ``replica``
    if replica.is_symlink() and not replica.exists():
        raise IndexWriteError(
            f"{replica} is a symbolic link to {os.readlink(replica)}, which does not exist; "
            "make that folder or give another; nothing was changed"
        )
    with writing(replica, wait, replica=True):
        for tries in range(1, TRIES + 1):
            try:
                report = _copy(source, replica)
            except _SourceChanged:
                logger.debug("%s changed while copied (try %d of %d)", source, tries, TRIES)
                continue
            return replace(report, tries=tries, seconds=time.perf_counter() - started)
    raise IndexBusyError(
        f"index at {source} changed {TRIES} times while it was being copied (segments merged "
        f"or a new version made); try again; {replica} was left as it was"
    )


def _refuse_overlap(source: Path, replica: Path) -> None:
    """A replica inside the index (or the index itself) would copy itself, and its clean-up
    delete the index's files; an index inside the replica would be left beside its copies."""
    src, dst = source.resolve(), replica.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise IndexWriteError(
            f"cannot replicate {source} into {replica}: the replica must be a folder outside "
            "the index, and the index not inside it; nothing was changed"
        )


def _copy(source: Path, replica: Path) -> ReplicaReport:
    """One copy of the current state of ``source``, or nothing when ``replica`` holds it."""
    version = current_version(source)
    try:
        read_manifest(version)  # a damaged index, or one of a newer format, is not copied
        try:
            connection, signature = open_for_reading(version / ARTICLES)
        except sqlite3.Error as exc:
            raise IndexDamagedError(
                f"index at {source} is damaged: {ARTICLES}: {exc}; build it again"
            ) from None
        try:
            return _copy_from(source, version, connection, signature, replica)
        finally:
            connection.close()
    except RecommenderError:
        if current_name(source) != version.name:  # replaced meanwhile: copy the new one
            raise _SourceChanged from None
        raise


def _copy_from(
    source: Path,
    version: Path,
    connection: sqlite3.Connection,
    signature: tuple[int, int, int] | None,
    replica: Path,
) -> ReplicaReport:
    origin = str(source.resolve())
    try:
        generation = generation_of(connection)
    except sqlite3.Error as exc:
        raise IndexDamagedError(
            f"index at {source} is damaged: {ARTICLES}: {exc}; build it again"
        ) from None
    held = _held(replica)
    if held is not None and (held.source, held.source_version, held.generation) == (
        origin,
        version.name,
        generation,
    ):
        return ReplicaReport(
            index=str(source),
            replica=str(replica),
            version=held.version.name,
            source_version=version.name,
            generation=generation,
            articles=held.articles,
            copied=False,
        )
    reusable = held if held is not None and held.source_version == version.name else None
    counts = {"bytes": 0, "linked": 0, "generation": 0, "articles": 0}

    def write(building: Path) -> None:
        target = building / ARTICLES
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            connection.backup(copy)  # one step: one read transaction of the source
            if signature is not None and file_signature(version / ARTICLES) != signature:
                raise _SourceChanged  # read as immutable, and a writer changed it meanwhile
            copy.execute("PRAGMA journal_mode=DELETE")  # nothing writes it: no -shm needed
            copy.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?)",
                [
                    (REPLICA_OF, origin),
                    (SOURCE_VERSION, version.name),
                    (SOURCE_GENERATION, str(generation_of(copy))),
                ],
            )
            # The source's build id, copied: its image and lists hold for the copy too. A
            # source written before builds had one: the copy gets its own.
            ensure_build(copy)
            binding = binding_of(copy)  # the source's, lists' stamp included
            counts["generation"] = generation_of(copy)
            counts["articles"] = _articles(copy)
            segments = list_segments(copy)
        finally:
            copy.close()
        _fsync(target)
        counts["bytes"] += target.stat().st_size
        for segment in segments:
            if reusable is not None and segment in reusable.segments:
                try:
                    os.link(reusable.version / segment.file, building / segment.file)
                except OSError as exc:  # copied instead
                    logger.debug("cannot link %s into the replica: %s", segment.file, exc)
                else:
                    counts["linked"] += 1
                    continue
            counts["bytes"] += _copy_segment(source, version, segment, building)
        manifest = _read_source(source, version / MANIFEST)
        write_new(building / MANIFEST, manifest)
        counts["bytes"] += len(manifest)
        try:
            read_manifest(building)
        except RecommenderError:
            raise _SourceChanged from None  # replaced as it was read: read it again
        rows = sum(segment.count for segment in segments)
        counts["bytes"] += _copy_lists(version, building, binding, counts["generation"], rows)
        write_image_of(replica, building, lists=False)
        fsync_dir(building)

    made = write_staged(replica, write)
    return ReplicaReport(
        index=str(source),
        replica=str(replica),
        version=made.name,
        source_version=version.name,
        generation=counts["generation"],
        articles=counts["articles"],
        copied=True,
        bytes_copied=counts["bytes"],
        files_linked=counts["linked"],
    )


def _articles(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT count(*) FROM articles WHERE removed = 0").fetchone()[0])


def _held(replica: Path) -> _Held | None:
    """What the replica's current version is a copy of; None for no copy, or none readable
    and whole (a new copy replaces it)."""
    name = current_name(replica)
    if not name:
        return None
    version = replica / name
    try:
        connection, _ = open_for_reading(version / ARTICLES)
    except sqlite3.Error as exc:
        logger.debug("replica version %s cannot be read, copied anew: %s", version, exc)
        return None
    try:
        state = dict(connection.execute("SELECT key, value FROM state").fetchall())
        segments = frozenset(list_segments(connection))
        articles = _articles(connection)
    except sqlite3.Error as exc:
        logger.debug("replica version %s cannot be read, copied anew: %s", version, exc)
        return None
    finally:
        connection.close()
    if REPLICA_OF not in state or SOURCE_VERSION not in state or not _whole(version, segments):
        return None
    return _Held(
        version=version,
        source=str(state[REPLICA_OF]),
        source_version=str(state[SOURCE_VERSION]),
        generation=int(state.get(SOURCE_GENERATION, -1)),
        segments=segments,
        articles=articles,
    )


def _whole(version: Path, segments: frozenset[Segment]) -> bool:
    """Whether a replica's version still has its manifest and segments (of their sizes): a
    cheap look, so that a copy whose files someone deleted is made again, not kept."""
    try:
        return (version / MANIFEST).is_file() and all(
            (version / segment.file).stat().st_size == segment.bytes for segment in segments
        )
    except OSError as exc:
        logger.debug("replica version %s is not whole, copied anew: %s", version, exc)
        return False


def _read_source(source: Path, path: Path) -> bytes:
    """The bytes of a file of the index being copied; _SourceChanged when it is gone."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _SourceChanged from None
    except OSError as exc:
        raise IndexNotFoundError(
            f"cannot read the index at {source}: {path.name}: {exc.strerror or exc}"
        ) from None


def _copy_lists(version: Path, building: Path, binding: Binding, generation: int, rows: int) -> int:
    """Copy the source version's precomputed lists, if it has usable ones, so that the
    replica's queries look them up too; their size (0 when none was copied). They hold for
    the copied state when bound to it (``mapped.refusal``: its build, made at a generation it
    includes, with its later changes checked per query as at the source, and named in the
    copied database)."""
    for found in precomputed.candidates(version):
        try:
            precomputed.load(found, binding, generation, rows)  # its header only: no copy
            handle = open(found, "rb")  # noqa: SIM115 - closed below
        except (Ignored, OSError) as exc:  # OSError: gone with its version
            logger.debug("precomputed lists %s not copied: %s", found, exc)
            continue
        target = building / found.name
        size, _ = _copy_to_new(handle, target)
        try:
            precomputed.load(target, binding, generation, rows)  # replaced meanwhile?
        except Ignored as exc:
            logger.debug("precomputed lists %s not copied: %s", found, exc)
            target.unlink()
            return 0  # the replica answers every query by searching
        return size
    return 0


def _copy_segment(source: Path, version: Path, segment: Segment, building: Path) -> int:
    """Copy one segment, checked against its recorded size and CRC32; its size."""
    try:
        handle = open(version / segment.file, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise _SourceChanged from None  # merged away by the writer since the copied state
    except OSError as exc:
        raise IndexNotFoundError(
            f"cannot read the index at {source}: {segment.file}: {exc.strerror or exc}"
        ) from None
    # Read-only, as the writer leaves segments: readers map them (store.py).
    size, crc = _copy_to_new(handle, building / segment.file, mode=0o444)
    if (size, crc) != (segment.bytes, segment.crc32):
        raise IndexDamagedError(
            f"index at {source} is damaged: {segment.file} does not match its recorded size "
            "and checksum; build it again (recommend check tells more)"
        )
    return size


def _copy_to_new(handle: BinaryIO, target: Path, mode: int | None = None) -> tuple[int, int]:
    """Copy the open file ``handle`` (closed after) into the new file ``target``, flushed and
    given ``mode`` if one is given; the size and CRC32 of what was copied."""
    fd = create_new(target)
    crc, size = 0, 0
    try:
        with handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                crc, size = zlib.crc32(block, crc), size + len(block)
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view) :]
        os.fsync(fd)
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return size, crc


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
