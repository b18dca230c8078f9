"""One write at a time, and how a new version becomes the current one.

The writer lock (``writer_lock``), the errors of a write reported as IndexWriteError
(``writing``), what interrupted writers left deleted (``clean_up``), and a version staged in a
hidden folder then published: renamed into place and named in CURRENT (``write_staged``). Every
function here runs under ``writer_lock``; readers never take it. See store.py for the layout and
why a reader always sees either the old or the new state.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..articles import Article
from ..embedding.encode import (
    ProgressFn,
)
from ..errors import (
    IndexBusyError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    RecommenderError,
)
from ..lexical import Lexicon, TermVector
from ..names import is_figure
from ..read.snapshot import Snapshot
from ..storage import cursors
from ..storage import overrides as stored_overrides
from ..storage.files import fsync_dir, write_new
from ..storage.layout import (
    ARTICLES,
    CURRENT,
    LOCK,
    current_name,
    is_engine_entry,
    is_events_store,
    is_index_folder,
    is_lock_file,
)
from ..storage.manifest import Manifest, write_manifest
from ..storage.table import (
    INSERT_ARTICLE,
    INSERT_TERMS,
    SCHEMA,
    SELECT_ROWS,
    ArticleRow,
    connect,
    ensure_build,
    insert_lexicon,
    insert_names,
    replica_source,
    row_checksum,
    terms_row,
)
from ..storage.vectors import Segment, built_vector_index, write_segment
from . import precompute

logger = logging.getLogger(__name__)


@contextmanager
def writer_lock(index_dir: Path, wait: bool | float = False) -> Iterator[None]:
    """Hold the index's writer lock; IndexBusyError if another process holds it.

    ``wait``: False fails at once, True waits as long as it takes, a number waits that many
    seconds at most.
    """
    _refuse_foreign_folder(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = index_dir / LOCK
    try:  # never through a link: the lock's content is overwritten with our process id
        fd = os.open(
            lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644
        )
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        fd = -1
    if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd >= 0:
            os.close(fd)
        raise IndexWriteError(
            f"cannot write to {index_dir}: {lock} is not a plain file (a symbolic link?); "
            "the index uses it as its writer lock: remove it; nothing was changed"
        )
    try:
        deadline = None if wait is True else time.monotonic() + float(wait or 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    who = f" (process {holder})" if holder else ""
                    raise IndexBusyError(
                        f"index at {index_dir} is being written by another process{who}; "
                        "try again when it is done, or pass --wait"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _refuse_foreign_folder(index_dir: Path) -> None:
    """Write only into a folder that is missing, empty, an index, or holds nothing but what an
    interrupted first build left: never into a folder of someone else's files."""
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexNotFoundError(f"{index_dir} exists and is not a folder")
    if not index_dir.is_dir() or is_index_folder(index_dir):
        return
    for path in index_dir.iterdir():
        if not (
            is_engine_entry(path)
            or (path.name == LOCK and is_lock_file(path))
            or is_events_store(path)
        ):
            raise IndexNotFoundError(
                f"{index_dir} is not empty and holds no index ({path.name} is not the "
                "index's); choose another folder"
            )


def remove_leftovers(index_dir: Path, keep: str | None) -> None:
    """Delete unfinished builds, CURRENT pointers being written and every version but
    ``keep``: only what the engine made (``is_engine_entry``), never anything else."""
    for path in index_dir.iterdir():
        if path.name == keep or not is_engine_entry(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():  # tried again by the next write
                logger.warning("could not delete %s, left by an earlier write", path)
        else:
            path.unlink(missing_ok=True)


def clean_up(index_dir: Path) -> None:
    """What every write does first: delete what interrupted writers left (see
    ``remove_leftovers``), keeping the version CURRENT names; nothing at all when CURRENT is
    there but unreadable (a damaged index: its vectors may still serve a rebuild)."""
    name = current_name(index_dir)
    if name is None and (index_dir / CURRENT).exists():
        logger.debug("%s: CURRENT cannot be read; nothing deleted", index_dir)
        return
    if name is None or is_index_folder(index_dir):
        remove_leftovers(index_dir, keep=name)


@dataclass
class _Progress:
    committed: bool = False  # the change is saved: what fails now is only the tidying after


_SQLITE_FULL, _SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_NOTADB = 13, 3, 8, 11, 26


def _write_error(index_dir: Path, exc: BaseException, committed: bool) -> RecommenderError | None:
    """The error to report for ``exc``, raised while writing the index; None: not ours."""
    outcome = (
        "; the update was saved, compacting the index was not (tried again at the next write)"
        if committed
        else "; nothing was changed"
    )
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if (
        (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))
        or code == _SQLITE_FULL
        or (isinstance(exc, sqlite3.Error) and "database or disk is full" in str(exc))
        or (isinstance(exc, RuntimeError) and "No space left on device" in str(exc))
    ):
        return IndexWriteError(f"disk full while writing the index at {index_dir}{outcome}")
    denied = f"cannot write to {index_dir} (permission denied)"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return IndexWriteError(denied + (outcome if committed else ""))
    if code in (_SQLITE_PERM, _SQLITE_READONLY):
        return IndexWriteError(denied + (outcome if committed else ""))
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return IndexWriteError(f"cannot write to {index_dir} ({reason.lower()}){outcome}")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return IndexDamagedError(
            f"index at {index_dir} is damaged: {ARTICLES}: {exc}; build it again"
        )
    if isinstance(exc, sqlite3.Error):
        return IndexWriteError(f"cannot write to {index_dir} ({ARTICLES}: {exc}){outcome}")
    return None


def rollback(connection: sqlite3.Connection, version: Path) -> None:
    """Roll back a failed write's transaction; a failure to is only logged: the error that
    stopped the write is the one raised."""
    try:
        connection.execute("ROLLBACK")
    except sqlite3.Error as exc:
        logger.debug("rolling back in %s failed: %s", version, exc)


@contextmanager
def writing(
    index_dir: Path, wait: bool | float = False, *, replica: bool = False
) -> Iterator[_Progress]:
    """One write: the writer lock held, errors of the disk, SQLite and faiss reported as
    IndexWriteError (disk full, permission denied, ...) saying what was changed, if anything.
    The body sets ``committed`` once its change is saved. ``replica``: the write is
    ``recommend replicate``'s, which writes only replicas; every other writes only indexes
    that are not (see ``refuse_other_kind``)."""
    progress = _Progress()
    try:
        with writer_lock(index_dir, wait):
            refuse_other_kind(index_dir, replica)
            yield progress
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        error = _write_error(index_dir, exc, progress.committed)
        if error is None:
            raise
        raise error from None


def refuse_other_kind(index_dir: Path, replica: bool) -> None:
    """IndexWriteError if the index at ``index_dir`` is a replica and this write is not
    ``recommend replicate`` (the next copy would undo it), or if it is an index of its own
    and this write is (it would be replaced by a copy of another)."""
    name = current_name(index_dir)
    if name is None or not is_index_folder(index_dir):
        return
    source = replica_source(index_dir / name)
    if source is not None and not replica:
        raise IndexWriteError(
            f"index at {index_dir} is a replica of {source} (written by recommend "
            f"replicate): write to {source} instead, and the replica follows at its next "
            "replicate; nothing was changed"
        )
    if source is None and replica:
        raise IndexWriteError(
            f"{index_dir} holds an index of its own, not a replica: recommend replicate "
            "writes only into a new or empty folder or an earlier replica; nothing was changed"
        )


def token() -> str:
    """The random part of the names of a build, a version and a CURRENT being written."""
    return uuid.uuid4().hex[:8]


def _publish(index_dir: Path, building: Path, tag: str) -> Path:
    """Rename a finished build into place and name it in CURRENT (atomically); ``tag``: the
    random part of its names (``token``)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    version = index_dir / f"v-{stamp}-{tag}"
    building.rename(version)
    fsync_dir(index_dir)
    pointer = index_dir / f".{CURRENT}.{tag}"
    write_new(pointer, (version.name + "\n").encode())
    os.replace(pointer, index_dir / CURRENT)
    fsync_dir(index_dir)
    # Readers that opened an older version keep their open files: unlinking is safe on POSIX.
    remove_leftovers(index_dir, keep=version.name)
    return version


def new_version(
    index_dir: Path,
    manifest: Manifest,
    vectors: np.ndarray,
    fill: Callable[[sqlite3.Connection], None],
    attach: Path | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Write a version (one segment; ``fill`` inserts the rows, with the SQLite file
    ``attach`` attached as ``old`` if given) and make it current; ``progress``: of the
    precomputed lists."""

    def write(building: Path) -> None:
        segments = []
        if len(vectors):
            index = built_vector_index(
                manifest.dimension, manifest.settings["vector_type"], manifest.search, vectors
            )
            segments.append(write_segment(building, 1, 0, index))
        connection = connect(building / ARTICLES, write=True)
        try:
            connection.executescript(SCHEMA)
            if attach is not None:
                connection.execute("ATTACH DATABASE ? AS old", (str(attach),))
            connection.execute("BEGIN")
            fill(connection)
            write_checksums(connection)
            record(connection, segments, generation=1)
            ensure_build(connection)  # a new id: what its image and lists are bound to
            connection.execute("COMMIT")
            write_manifest(building, manifest)
            # While this connection is open: the last to close removes the -wal and -shm
            # files that reading the new version for its image makes.
            write_image_of(index_dir, building, progress=progress)
        finally:
            connection.close()
        for path in building.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())

    return write_staged(index_dir, write)


def write_image_of(
    index_dir: Path,
    version: Path,
    *,
    lists: bool = True,
    progress: ProgressFn | None = None,
) -> None:
    """Write the image of a finished version folder (see ``image``): readers then open it
    without reading every row from SQLite; with ``lists``, each article's precomputed list
    too (see ``precompute``; ``progress`` is called with (done, total) meanwhile)."""
    snapshot = Snapshot.of_version(index_dir, version)
    try:
        snapshot.save_image()
        if lists:
            precompute.save(snapshot, progress)
    finally:
        snapshot.close()


def write_staged(index_dir: Path, write: Callable[[Path], None]) -> Path:
    """Make a version in a hidden folder (``write`` writes and flushes its files there), then
    publish it; returns its folder. An error leaves no trace of it."""
    tag = token()
    building = index_dir / f".build-{tag}"
    building.mkdir()  # fails if anything is there
    try:
        write(building)
        return _publish(index_dir, building, tag)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        if building.exists():  # deleted by the next write
            logger.debug("could not delete the failed build %s", building)
        raise


def write_version(
    index_dir: Path,
    manifest: Manifest,
    articles: Sequence[Article],
    vectors: np.ndarray,
    hashes: Sequence[str],
    lexicon: Lexicon,
    terms: Sequence[TermVector],
    languages: Sequence[str | None],
    lists_progress: ProgressFn | None = None,
    overrides: Sequence[stored_overrides.Row] = (),
    cursor: cursors.Advance | None = None,
    names: np.ndarray | None = None,
) -> Path:
    """Write a complete new version and make it current; returns its folder. ``names``: the
    lexicon ids of the build's names (``names.proper_terms``; None: none). ``languages``:
    each article's effective language (``language.effective``); ``lists_progress``: called
    with (done, total) as each article's list is precomputed; ``overrides``: the editorial
    ones it holds (those of the version it replaces); ``cursor``: a sync's, the only one it
    holds (``storage.cursors``)."""
    if not len(articles) == len(vectors) == len(hashes) == len(terms) == len(languages):
        raise ValueError("articles, vectors, hashes, terms and languages differ in length")
    clean_up(index_dir)

    def fill(connection: sqlite3.Connection) -> None:
        connection.executemany(
            INSERT_ARTICLE,
            (
                ArticleRow.of(row, article, text_hash, 1, languages[row]).values()
                for row, (article, text_hash) in enumerate(zip(articles, hashes, strict=True))
            ),
        )
        insert_lexicon(connection, lexicon)
        if names is not None:
            figures = [is_figure(lexicon.terms[int(i)]) for i in names]
            insert_names(connection, names, np.array(figures, dtype=bool))
        connection.executemany(INSERT_TERMS, (terms_row(row, v) for row, v in enumerate(terms)))
        stored_overrides.insert(connection, overrides)
        if cursor is not None:
            cursors.write(connection, cursor)

    return new_version(index_dir, manifest, vectors, fill, progress=lists_progress)


def write_checksums(connection: sqlite3.Connection, rows: Sequence[int] | None = None) -> None:
    """Write the checksum of these rows (all rows that have none, by default) as they are
    stored now: part of the transaction that writes them."""
    if rows is None:
        found: Iterable[Sequence[Any]] = connection.execute(
            f"{SELECT_ROWS} WHERE row NOT IN (SELECT row FROM row_checksums)"
        )
        connection.executemany(
            "INSERT INTO row_checksums VALUES (?, ?)", ((v[0], row_checksum(v)) for v in found)
        )
        return
    for start in range(0, len(rows), 500):
        part = [int(row) for row in rows[start : start + 500]]
        found = connection.execute(
            f"{SELECT_ROWS} WHERE row IN ({','.join('?' * len(part))})", part
        ).fetchall()
        connection.executemany(
            "INSERT OR REPLACE INTO row_checksums VALUES (?, ?)",
            [(v[0], row_checksum(v)) for v in found],
        )


def record_segments(connection: sqlite3.Connection, segments: Sequence[Segment]) -> None:
    connection.executemany(
        "INSERT INTO segments VALUES (?,?,?,?,?,?)",
        [(s.number, s.first_row, s.count, s.file, s.bytes, s.crc32) for s in segments],
    )


def record(connection: sqlite3.Connection, segments: Sequence[Segment], generation: int) -> None:
    record_segments(connection, segments)
    connection.execute(
        "INSERT INTO state VALUES ('generation', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(generation),),
    )
