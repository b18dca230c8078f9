"""Writing an index: whole versions, additions and removals, one writer at a time.

Every function here runs under ``writer_lock``; readers never take it. See store.py for the
layout and why a reader always sees either the old or the new state.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..articles import Article
from ..embedding.encode import (
    Encoder,
    ModelChoice,
    ProgressFn,
    choose_model,
    encode_all,
    load_encoder,
)
from ..embedding.supplied import (
    MissingVectors,
    SuppliedVectors,
    check_model,
    match,
    refuse_unsupplied,
    without_vector,
)
from ..errors import (
    IncompatibleIndexError,
    IndexBusyError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    RecommenderError,
    SettingsError,
)
from ..language import effective as effective_language
from ..lexical import Lexicon, TermVector, lexical_text
from ..read.snapshot import Snapshot
from ..results import BuildReport, UpdateReport
from ..settings import AUTO_MODEL, BUILD_FIELDS, Ranking, Settings
from ..storage.files import fsync_dir, write_new
from ..storage.layout import (
    ARTICLES,
    CURRENT,
    LOCK,
    current_name,
    current_version,
    is_engine_entry,
    is_index_folder,
    is_lock_file,
)
from ..storage.manifest import MANIFEST, REUSABLE_FORMAT, Manifest, read_manifest, write_manifest
from ..storage.precomputed import remove_unfinished
from ..storage.table import (
    INSERT_ARTICLE,
    INSERT_TERMS,
    ROW_CHECKSUMS,
    SCHEMA,
    SELECT_ROWS,
    ArticleRow,
    ArticleTable,
    add_language_column,
    checkpoint,
    connect,
    generation_of,
    insert_lexicon,
    list_segments,
    replica_source,
    row_checksum,
    terms_row,
)
from ..storage.vectors import (
    Segment,
    built_vector_index,
    new_vector_index,
    read_segment,
    search_of,
    vectors_of,
    write_segment,
)
from ..text import content_hash, embedding_text
from . import precompute
from .lexicon import fit as fit_lexicon

#: An update that leaves more removed rows than this share (and at least COMPACT_MIN_ROWS)
#: or more segments than COMPACT_SEGMENTS rewrites the version without them.
COMPACT_SHARE = 0.25
COMPACT_MIN_ROWS = 1000
COMPACT_SEGMENTS = 32


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
        if not (is_engine_entry(path) or (path.name == LOCK and is_lock_file(path))):
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
        else:
            path.unlink(missing_ok=True)


def clean_up(index_dir: Path) -> None:
    """What every write does first: delete what interrupted writers left (see
    ``remove_leftovers``), keeping the version CURRENT names; nothing at all when CURRENT is
    there but unreadable (a damaged index: its vectors may still serve a rebuild)."""
    name = current_name(index_dir)
    if name is None and (index_dir / CURRENT).exists():
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


def _token() -> str:
    """The random part of the names of a build, a version and a CURRENT being written."""
    return uuid.uuid4().hex[:8]


def _publish(index_dir: Path, building: Path, token: str) -> Path:
    """Rename a finished build into place and name it in CURRENT (atomically)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    version = index_dir / f"v-{stamp}-{token}"
    building.rename(version)
    fsync_dir(index_dir)
    pointer = index_dir / f".{CURRENT}.{token}"
    write_new(pointer, (version.name + "\n").encode())
    os.replace(pointer, index_dir / CURRENT)
    fsync_dir(index_dir)
    # Readers that opened an older version keep their open files: unlinking is safe on POSIX.
    remove_leftovers(index_dir, keep=version.name)
    return version


def _new_version(
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
            _write_checksums(connection)
            _record(connection, segments, generation=1)
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
    token = _token()
    building = index_dir / f".build-{token}"
    building.mkdir()  # fails if anything is there
    try:
        write(building)
        return _publish(index_dir, building, token)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
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
) -> Path:
    """Write a complete new version and make it current; returns its folder. ``languages``:
    each article's effective language (``language.effective``); ``lists_progress``: called
    with (done, total) as each article's list is precomputed."""
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
        connection.executemany(INSERT_TERMS, (terms_row(row, v) for row, v in enumerate(terms)))

    return _new_version(index_dir, manifest, vectors, fill, progress=lists_progress)


def _write_checksums(connection: sqlite3.Connection, rows: Sequence[int] | None = None) -> None:
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


def _refuse_damaged_rows(
    connection: sqlite3.Connection, version: Path, rows: Sequence[int]
) -> None:
    """IndexDamagedError if a row whose fields are about to be rewritten does not match its
    checksum: its new checksum would otherwise vouch for the damaged title or body it keeps."""
    for start in range(0, len(rows), 500):
        part = [int(row) for row in rows[start : start + 500]]
        found = connection.execute(
            f"SELECT {', '.join(ArticleRow.columns())}, crc FROM articles JOIN row_checksums "
            f"USING (row) WHERE row IN ({','.join('?' * len(part))})",
            part,
        )
        for values in found:
            if values[-1] != row_checksum(values):
                raise IndexDamagedError(
                    f"index at {version.parent} is damaged: the stored article {values[1]!r} "
                    f"(row {values[0]}) does not match its checksum; build the index again"
                )


def _record_segments(connection: sqlite3.Connection, segments: Sequence[Segment]) -> None:
    connection.executemany(
        "INSERT INTO segments VALUES (?,?,?,?,?,?)",
        [(s.number, s.first_row, s.count, s.file, s.bytes, s.crc32) for s in segments],
    )


def _record(connection: sqlite3.Connection, segments: Sequence[Segment], generation: int) -> None:
    _record_segments(connection, segments)
    connection.execute(
        "INSERT INTO state VALUES ('generation', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(generation),),
    )


@dataclass(frozen=True)
class Change:
    """What one update does to a version."""

    new: Sequence[tuple[Article, str]] = ()  # articles to append, with their content hash
    vectors: np.ndarray | None = None  # one per new article
    metadata: Sequence[tuple[int, Article]] = ()  # rows whose fields change, text unchanged
    removed_rows: Sequence[int] = ()
    removed_ids: Sequence[str] = ()
    terms: Sequence[TermVector] = ()  # one per new article
    # the effective language of each new or changed article, by id
    languages: Mapping[str, str | None] = field(default_factory=dict)


def apply_change(version: Path, dimension: int, vector_type: str, change: Change) -> int:
    """Commit one update to a version; returns the number of articles removed by id."""
    connection = connect(version / ARTICLES, write=True)
    try:
        connection.execute(ROW_CHECKSUMS)  # a version written before checksums gets them
        add_language_column(connection)  # and one written before languages, its column
        known = {row[0] for row in connection.execute("SELECT file FROM segments")}
        for path in version.glob("seg-*.faiss"):
            if path.name not in known:  # written by a writer that died before committing
                path.unlink()
        generation = generation_of(connection) + 1
        first_row = connection.execute("SELECT coalesce(max(row) + 1, 0) FROM articles").fetchone()[
            0
        ]
        segments = []
        if change.new:
            assert change.vectors is not None and len(change.vectors) == len(change.new)
            assert len(change.terms) == len(change.new)
            number = connection.execute("SELECT coalesce(max(number), 0) + 1 FROM segments")
            index = new_vector_index(dimension, vector_type)
            index.add(np.ascontiguousarray(change.vectors, dtype=np.float32))
            segments.append(write_segment(version, number.fetchone()[0], first_row, index))
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "UPDATE articles SET removed = 1, changed = ? WHERE row = ? AND removed = 0",
                [(generation, row) for row in change.removed_rows],
            )
            removed = 0
            for start in range(0, len(change.removed_ids), 500):
                part = list(change.removed_ids[start : start + 500])
                cursor = connection.execute(
                    "UPDATE articles SET removed = 1, changed = ? WHERE removed = 0 AND id IN "
                    f"({','.join('?' * len(part))})",
                    [generation, *part],
                )
                removed += cursor.rowcount
            connection.executemany(
                INSERT_ARTICLE,
                [
                    ArticleRow.of(
                        first_row + offset,
                        article,
                        text_hash,
                        generation,
                        change.languages.get(article.id),
                    ).values()
                    for offset, (article, text_hash) in enumerate(change.new)
                ],
            )
            connection.executemany(
                INSERT_TERMS,
                [terms_row(first_row + offset, v) for offset, v in enumerate(change.terms)],
            )
            _refuse_damaged_rows(connection, version, [row for row, _ in change.metadata])
            connection.executemany(
                UPDATE_FIELDS,
                [
                    _fields_update(row, article, generation, change.languages.get(article.id))
                    for row, article in change.metadata
                ],
            )
            _write_checksums(
                connection,
                [first_row + offset for offset in range(len(change.new))]
                + [row for row, _ in change.metadata],
            )
            _record(connection, segments, generation)
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            for segment in segments:  # named by no transaction: free the space now
                (version / segment.file).unlink(missing_ok=True)
            raise
        checkpoint(connection)
        return removed
    finally:
        connection.close()


def replace_manifest(version: Path, manifest: Manifest) -> None:
    """Write a version's manifest anew (atomically) and bump its generation, so that readers
    pick up the new settings on their next refresh."""
    staged = version / f".{MANIFEST}.{_token()}"
    write_manifest(version, manifest, name=staged.name)  # a new file (flushed), or an error
    try:
        os.replace(staged, version / MANIFEST)
    finally:
        staged.unlink(missing_ok=True)
    fsync_dir(version)
    bump_generation(version)


def bump_generation(version: Path) -> None:
    """Count one more update of a version, changing no row: its readers refresh (and so see
    a new manifest, or new precomputed lists)."""
    connection = connect(version / ARTICLES, write=True)
    try:
        connection.execute(
            "UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        checkpoint(connection)
    finally:
        connection.close()


#: The columns an update of an article's fields rewrites (its text, and so its vectors, stay).
FIELD_COLUMNS = tuple(
    name
    for name in ArticleRow.columns()
    if name not in ("row", "id", "title", "body", "content_hash", "removed")
)
UPDATE_FIELDS = (
    f"UPDATE articles SET {', '.join(f'{name}=?' for name in FIELD_COLUMNS)} WHERE row = ?"
)


def _fields_update(
    row: int, article: Article, generation: int, language: str | None
) -> tuple[Any, ...]:
    stored = ArticleRow.of(row, article, "", generation, language)
    return (*(getattr(stored, name) for name in FIELD_COLUMNS), row)


def maintain(index_dir: Path, version: Path, manifest: Manifest) -> str | None:
    """After an update: rewrite the version without removed rows when they are many, or merge
    the segments after the first when there are many. Returns what was done, if anything."""
    connection = connect(version / ARTICLES, write=False)
    try:
        total, removed = connection.execute(
            "SELECT count(*), coalesce(sum(removed), 0) FROM articles"
        ).fetchone()
        segments = list_segments(connection)
    finally:
        connection.close()
    tail_rows = sum(s.count for s in segments[1:])
    if removed >= COMPACT_MIN_ROWS and removed > COMPACT_SHARE * total:
        compact(index_dir, version, manifest)
        return "compacted"
    if len(segments) > COMPACT_SEGMENTS:
        if segments[0].count and tail_rows <= segments[0].count:
            merge_tail(version, manifest)
            return "merged segments"
        compact(index_dir, version, manifest)
        return "compacted"
    return None


def merge_tail(version: Path, manifest: Manifest) -> None:
    """Replace the segments after the first by one holding the same rows (a new file).

    Rows and generation stay as they are: readers already holding these rows read nothing.
    """
    connection = connect(version / ARTICLES, write=True)
    try:
        tail = list_segments(connection)[1:]
        merged = new_vector_index(manifest.dimension, manifest.settings["vector_type"])
        for segment in tail:
            merged.merge_from(read_segment(version, segment, manifest.dimension))
        number = tail[-1].number + 1
        written = write_segment(version, number, tail[0].first_row, merged)
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "DELETE FROM segments WHERE number = ?", [(s.number,) for s in tail]
            )
            _record_segments(connection, [written])
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            (version / written.file).unlink(missing_ok=True)
            raise
        checkpoint(connection)
    finally:
        connection.close()
    for segment in tail:  # readers that loaded them hold them in memory
        (version / segment.file).unlink(missing_ok=True)


def stored_vectors(version: Path, dimension: int, rows: Sequence[int]) -> np.ndarray:
    """The stored vectors of these rows (decoded to float32), in the order given."""
    connection = connect(version / ARTICLES, write=False)
    try:
        segments = list_segments(connection)
    finally:
        connection.close()
    wanted = np.asarray(rows, dtype=np.int64)
    needed = [
        s for s in segments if ((wanted >= s.first_row) & (wanted < s.first_row + s.count)).any()
    ]
    parts = [(s.first_row, read_segment(version, s, dimension)) for s in needed]
    return vectors_of(parts, wanted, dimension)


#: What compaction selects for each column: rows renumbered, every row live and new.
COMPACTED = tuple(
    {"row": "row_number() OVER (ORDER BY row) - 1", "removed": "0", "changed": "1"}.get(name, name)
    for name in ArticleRow.columns()
)


def compact(index_dir: Path, version: Path, manifest: Manifest) -> Path:
    """Rewrite a version without its removed rows and in one segment (nothing re-embedded)."""
    remove_leftovers(index_dir, keep=version.name)
    connection = connect(version / ARTICLES, write=False)
    try:
        live = [
            row[0]
            for row in connection.execute("SELECT row FROM articles WHERE removed = 0 ORDER BY row")
        ]
    finally:
        connection.close()
    vectors = stored_vectors(version, manifest.dimension, live)

    def fill(connection: sqlite3.Connection) -> None:
        connection.execute(
            f"INSERT INTO articles SELECT {', '.join(COMPACTED)} FROM old.articles "
            "WHERE removed = 0 ORDER BY row"
        )
        connection.execute("INSERT INTO lexicon SELECT * FROM old.lexicon")
        live = (
            "(SELECT row, row_number() OVER (ORDER BY row) - 1 AS new_row FROM old.articles "
            "WHERE removed = 0) AS live"
        )
        connection.execute(
            f"INSERT INTO terms SELECT live.new_row, t.terms, t.weights FROM {live} "
            "JOIN old.terms AS t ON t.row = live.row"
        )
        has_checksums = connection.execute(
            "SELECT 1 FROM old.sqlite_master WHERE name = 'row_checksums'"
        ).fetchone()
        if has_checksums:  # kept as they are: a damaged row stays detectable
            connection.execute(
                f"INSERT INTO row_checksums SELECT live.new_row, c.crc FROM {live} "
                "JOIN old.row_checksums AS c ON c.row = live.row"
            )

    return _new_version(index_dir, manifest, vectors, fill, attach=version / ARTICLES)


def _versions() -> dict[str, str]:
    found = {}
    for name in ("recommender", "faiss-cpu", "sentence-transformers", "numpy"):
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _texts_and_hashes(
    articles: Sequence[Article], settings: Settings
) -> tuple[list[str], list[str]]:
    """The text each article is embedded from, and its content hash."""
    texts = [embedding_text(a.title, a.body, settings.max_body_chars) for a in articles]
    return texts, [content_hash(text) for text in texts]


def model_for(requested: str, articles: Sequence[Article]) -> ModelChoice:
    """The model a build of ``articles`` asked for ``requested`` uses (``choose_model`` on
    each article's lang field and the start of its text); ``recommend embed`` chooses the
    same way, so that its vectors are the build's."""
    return choose_model(requested, [(a.lang, f"{a.title}\n{a.body[:400]}") for a in articles])


def last_wins(articles: Iterable[Article]) -> tuple[list[Article], int]:
    """The articles with one per id (the last given), and how many earlier ones were dropped."""
    unique: dict[str, Article] = {}
    duplicates = 0
    for article in articles:
        if article.id in unique:
            duplicates += 1
            del unique[article.id]  # re-inserted below, so order follows the winning record
        unique[article.id] = article
    return list(unique.values()), duplicates


def stored_ranking(index_dir: Path) -> Ranking | None:
    """The ranking settings of the index at ``index_dir``; None when there is none."""
    try:
        manifest = read_manifest(current_version(index_dir), oldest=REUSABLE_FORMAT)
    except RecommenderError:
        return None
    return Settings.from_dict(manifest.settings).ranking


def _reusable_vectors(
    index_dir: Path, model: str, hashes: Sequence[str]
) -> tuple[int | None, dict[str, np.ndarray]]:
    """Stored vectors of the index at ``index_dir`` for these content hashes, if it was built
    with ``model``: (its dimension, hash -> vector). Nothing when there is no usable index."""
    try:
        version = current_version(index_dir)
        manifest = read_manifest(version, oldest=REUSABLE_FORMAT)
    except RecommenderError:
        return None, {}
    if manifest.model != model:
        return None, {}
    wanted = set(hashes)
    table = ArticleTable(version)
    try:
        rows = {h: row for row, h in table.live_hashes().values() if h in wanted}
    finally:
        table.close()
    if not rows:
        return manifest.dimension, {}
    found = stored_vectors(version, manifest.dimension, list(rows.values()))
    return manifest.dimension, dict(zip(rows, found, strict=True))


class IndexWriter:
    """Writes the index at ``path``: builds, additions, removals, compaction, stored settings.

    Each operation takes the index's writer lock for its duration: one writer at a time, across
    processes. ``wait``: if another process is writing, False fails at once with
    IndexBusyError, True waits as long as it takes, a number waits that many seconds at most.
    ``encoder`` embeds new text; by default the model named in the settings (for a build) or
    in the index (for an update), loaded when first needed.
    """

    def __init__(
        self, path: str | Path, *, encoder: Encoder | None = None, wait: bool | float = False
    ) -> None:
        self.path = Path(path)
        self.encoder = encoder
        self.wait = wait
        self._lexicon_lock = threading.Lock()
        self._lexicon_of: tuple[str, Lexicon] | None = None

    def build(
        self,
        articles: Iterable[Article],
        settings: Settings | None = None,
        *,
        progress: ProgressFn | None = None,
        lists_progress: ProgressFn | None = None,
        records: int | None = None,
        skipped: int = 0,
        duplicates: int = 0,
        vectors: SuppliedVectors | None = None,
        missing_vectors: MissingVectors = "embed",
    ) -> BuildReport:
        """Embed ``articles`` and write them as the new version of the index (see
        ``Recommender.build``); ``vectors``: embeddings supplied for some or all of them,
        ``missing_vectors``: embed those they do not cover, or refuse the build."""
        started = time.perf_counter()
        if settings is None:
            settings = Settings(ranking=stored_ranking(self.path) or Ranking())
        chosen, dropped = last_wins(articles)
        duplicates += dropped
        encoder = self.encoder
        if encoder is not None:
            model, choice = encoder.name, "the encoder given to the build"
        elif vectors is not None and settings.model == AUTO_MODEL:
            model, choice = vectors.model, f"the model of the vectors supplied in {vectors.path}"
        else:
            chosen_model = model_for(settings.model, chosen)
            model, choice = chosen_model.model, chosen_model.reason
        settings = replace(settings, model=model)
        texts, hashes = _texts_and_hashes(chosen, settings)
        languages = [effective_language(a.lang, a.title, a.body) for a in chosen]
        supplied: dict[int, np.ndarray] = {}
        matched = None
        if vectors is not None:
            known = encoder.dimension if encoder is not None else None
            check_model(vectors, model, known, "this build")
            matched = match(vectors, chosen, hashes)
            supplied = matched.vectors
        lexicon, terms = fit_lexicon(
            [lexical_text(a.title, a.body) for a in chosen],
            settings.lexical_ngrams,
            settings.lexical_min_df,
            languages=languages,
        )
        with writing(self.path, self.wait) as state:
            dimension, reused = _reusable_vectors(self.path, model, hashes)
            if vectors is not None:
                if dimension is not None and dimension != vectors.dimension:
                    reused = {}  # the old index holds vectors of another length: not these
                dimension = vectors.dimension
            missing = [
                i
                for i, text_hash in enumerate(hashes)
                if i not in supplied and text_hash not in reused
            ]
            if matched is not None and missing_vectors == "refuse":
                refuse_unsupplied(matched, chosen, missing)
            if missing or dimension is None:
                encoder = encoder or load_encoder(model, batch_size=settings.batch_size)
                if vectors is not None:
                    check_model(vectors, model, int(encoder.dimension), "this build")
                dimension = int(encoder.dimension)
            embedded = np.empty((len(chosen), dimension), dtype=np.float32)
            if missing:
                assert encoder is not None
                embedded[missing] = encode_all(
                    encoder, [texts[i] for i in missing], progress=progress
                )
            for i, text_hash in enumerate(hashes):
                if i in supplied:
                    embedded[i] = supplied[i]
                elif text_hash in reused:
                    embedded[i] = reused[text_hash]
            manifest = Manifest(
                model=model,
                model_choice=choice,
                dimension=dimension,
                settings=settings.to_dict(),
                search=search_of(settings.to_dict(), len(chosen)),
                built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                build_seconds=round(time.perf_counter() - started, 3),
                versions=_versions(),
            )
            version = write_version(
                self.path,
                manifest,
                chosen,
                embedded,
                hashes,
                lexicon,
                terms,
                languages,
                lists_progress=lists_progress,
            )
            state.committed = True
        return BuildReport(
            index=str(self.path),
            articles=len(chosen),
            records=records if records is not None else len(chosen) + duplicates,
            skipped=skipped,
            duplicates=duplicates,
            seconds=time.perf_counter() - started,
            index_bytes=sum(p.stat().st_size for p in version.iterdir() if p.is_file()),
            model=model,
            reused=len(chosen) - len(missing) - len(supplied),
            supplied=len(supplied),
            stale=matched.stale if matched else 0,
            without_vector=without_vector(missing, matched) if matched else 0,
            embedded=len(missing),
        )

    def add(
        self,
        articles: Iterable[Article],
        *,
        progress: ProgressFn | None = None,
        vectors: SuppliedVectors | None = None,
        missing_vectors: MissingVectors = "embed",
    ) -> UpdateReport:
        """Insert new articles and update changed ones (see ``Recommender.add``);
        ``vectors``: embeddings supplied for some or all of them, ``missing_vectors``: embed
        those they do not cover, or refuse the update."""
        started = time.perf_counter()
        chosen, duplicates = last_wins(articles)
        with writing(self.path, self.wait) as state:
            version, manifest, settings = self._writable()
            texts, hashes = _texts_and_hashes(chosen, settings)
            languages = {a.id: effective_language(a.lang, a.title, a.body) for a in chosen}
            supplied: dict[int, np.ndarray] = {}
            matched = None
            if vectors is not None:
                check_model(vectors, manifest.model, manifest.dimension, f"the index {self.path}")
                matched = match(vectors, chosen, hashes)
                supplied = matched.vectors
            table = ArticleTable(version)
            try:
                stored = table.live_hashes(a.id for a in chosen)
            finally:
                table.close()
            new, fields_only, replaced_rows, embed = [], [], [], []
            for i, (article, text_hash) in enumerate(zip(chosen, hashes, strict=True)):
                found = stored.get(article.id)
                if found is not None and found[1] == text_hash:
                    fields_only.append((found[0], article))
                    continue
                if found is not None:
                    replaced_rows.append(found[0])
                new.append((article, text_hash))
                embed.append(i)
            unsupplied = [i for i in embed if i not in supplied]
            if matched is not None and missing_vectors == "refuse":
                refuse_unsupplied(matched, chosen, unsupplied)
            new_vectors = None
            if embed:
                new_vectors = np.empty((len(embed), manifest.dimension), dtype=np.float32)
                local = [at for at, i in enumerate(embed) if i not in supplied]
                for at, i in enumerate(embed):
                    if i in supplied:
                        new_vectors[at] = supplied[i]
                if local:
                    encoder = self._encoder(manifest, settings)
                    new_vectors[local] = encode_all(
                        encoder, [texts[embed[at]] for at in local], progress=progress
                    )
            terms = (
                self._lexicon(version, settings).vectorize(
                    [lexical_text(article.title, article.body) for article, _ in new],
                    languages=[languages[article.id] for article, _ in new],
                )
                if new
                else []
            )
            apply_change(
                version,
                manifest.dimension,
                settings.vector_type,
                Change(
                    new=new,
                    vectors=new_vectors,
                    metadata=fields_only,
                    removed_rows=replaced_rows,
                    terms=terms,
                    languages=languages,
                ),
            )
            state.committed = True
            compacted = maintain(self.path, version, manifest) == "compacted"
        return UpdateReport(
            index=str(self.path),
            added=len(new) - len(replaced_rows),
            replaced=len(replaced_rows),
            fields_only=len(fields_only),
            duplicates=duplicates,
            embedded=len(unsupplied),
            supplied=len(embed) - len(unsupplied),
            stale=matched.stale if matched else 0,
            without_vector=without_vector(unsupplied, matched) if matched else 0,
            seconds=time.perf_counter() - started,
            compacted=compacted,
        )

    def remove(self, ids: Iterable[str]) -> UpdateReport:
        """Take articles out of the index (see ``Recommender.remove``)."""
        started = time.perf_counter()
        wanted = list(dict.fromkeys(str(i) for i in ids))
        with writing(self.path, self.wait) as state:
            version, manifest, settings = self._writable()
            removed = apply_change(
                version, manifest.dimension, settings.vector_type, Change(removed_ids=wanted)
            )
            state.committed = True
            compacted = maintain(self.path, version, manifest) == "compacted"
        return UpdateReport(
            index=str(self.path),
            removed=removed,
            missing=len(wanted) - removed,
            seconds=time.perf_counter() - started,
            compacted=compacted,
        )

    def store_ranking(self, ranking: Ranking, progress: ProgressFn | None = None) -> None:
        """Make ``ranking`` the index's own (its queries' defaults); readers pick it up on
        their next refresh. Build settings cannot change without a build. The precomputed
        lists are computed again for a new ranking (``progress``: called with (done, total))."""
        with writing(self.path, self.wait):
            version, manifest, settings = self._writable()
            replace_manifest(
                version, replace(manifest, settings=replace(settings, ranking=ranking).to_dict())
            )
            if ranking != settings.ranking:
                self._relist(version, progress)

    def precompute(self, progress: ProgressFn | None = None) -> Path | None:
        """Compute the precomputed lists of the current version anew, at its generation
        (none when its settings ask for none); the file written."""
        with writing(self.path, self.wait):
            version, _, _ = self._writable()
            return self._relist(version, progress)

    def _relist(self, version: Path, progress: ProgressFn | None = None) -> Path | None:
        """Compute the precomputed lists of ``version`` again, at its current generation, then
        count one more generation so that readers refresh and take them up."""
        snapshot = Snapshot.of_version(self.path, version)
        try:
            written = precompute.save(snapshot, progress)
        finally:
            snapshot.close()
        if written is not None:
            bump_generation(version)
        return written

    def store_settings(self, settings: Settings) -> None:
        """Like ``store_ranking``; SettingsError if a build setting differs from the index's."""
        with writing(self.path, self.wait):
            version, manifest, stored = self._writable()
            changed = [
                name
                for name in BUILD_FIELDS
                if name != "batch_size" and getattr(settings, name) != getattr(stored, name)
            ]
            if changed:
                raise SettingsError(
                    f"{', '.join(changed)} can only change with a new build (recommend build-index)"
                )
            replace_manifest(version, replace(manifest, settings=settings.to_dict()))
            if settings.ranking != stored.ranking:
                self._relist(version)

    def _writable(self) -> tuple[Path, Manifest, Settings]:
        """The version to update (under the writer lock), with what interrupted writers left
        beside it deleted first."""
        version = current_version(self.path)
        manifest = read_manifest(version)
        remove_leftovers(self.path, keep=version.name)
        remove_unfinished(version)  # precomputed lists a killed writer was writing
        if self.encoder is not None and self.encoder.name != manifest.model:
            raise IncompatibleIndexError(
                f"index at {self.path} was built with model {manifest.model!r}, not "
                f"{self.encoder.name!r}; open it again or build it with that model"
            )
        return version, manifest, Settings.from_dict(manifest.settings)

    def _encoder(self, manifest: Manifest, settings: Settings) -> Encoder:
        if self.encoder is None:
            self.encoder = load_encoder(manifest.model, batch_size=settings.batch_size)
        return checked_encoder(self.encoder, manifest.dimension, self.path)

    def _lexicon(self, version: Path, settings: Settings) -> Lexicon:
        """The lexicon of a version (read once; a build or compaction makes a new version)."""
        with self._lexicon_lock:
            if self._lexicon_of is None or self._lexicon_of[0] != version.name:
                table = ArticleTable(version)
                try:
                    self._lexicon_of = (version.name, table.lexicon(settings.lexical_ngrams))
                finally:
                    table.close()
            return self._lexicon_of[1]


def checked_encoder(encoder: Encoder, dimension: int, where: Path) -> Encoder:
    """``encoder``, if it gives vectors of the index's dimension; ModelError otherwise."""
    if encoder.dimension != dimension:
        from ..errors import ModelError

        raise ModelError(
            f"model {encoder.name!r} gives vectors of dimension {encoder.dimension}, "
            f"the index at {where} holds {dimension}"
        )
    return encoder
