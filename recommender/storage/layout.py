"""The layout of an index folder, and which of its entries are the engine's own.

::

    DIR/CURRENT                 name of the version in use, replaced atomically
    DIR/LOCK                    held by the one process writing (see write/writer.py)
    DIR/v-<time>-<rand>/        one version: a full build, then the updates made to it
        manifest.json           format version, model, dimension, settings (fixed per version,
                                manifest.py)
        articles.sqlite         articles (one row per FAISS id), their TF-IDF terms, the
                                lexicon (term, idf), segments, generation (table.py)
        seg-000001.faiss        immutable vector segments; segment n holds rows
        seg-000002.faiss        first_row .. first_row + count - 1 (vectors.py)
    DIR/events/                 what readers saw and clicked, append-only, one file a day
        2026-12-07.jsonl        (events.py); not part of any version: a build, compaction
                                or replica never copies, rewrites or deletes it

A build writes a whole version in a hidden folder, flushes it, renames it and only then names it
in CURRENT. An update (add, remove) writes at most one new segment file and then commits one
SQLite transaction that records the segment, the new and changed rows and the removals, and
bumps the generation: a reader sees either all of an update or none of it, and a segment file
that no committed transaction names is a leftover of a crash, deleted by the next writer.

What is the engine's own is told by what it wrote, never by a name alone: a folder is an index
when its CURRENT names a version (see ``is_index_folder``), and only folders and files the
engine made are ever deleted (``is_engine_entry``). Every file a writer creates is created
anew (files.py).

A replica (``recommend replicate``, see write/replicate.py) has the same layout; each of its
versions is a copy of one state of another index, its database in rollback-journal mode (no
-wal or -shm file: read-only folders serve) with the ``replica_of``, ``source_version`` and
``source_generation`` it was copied from in ``state``; writers other than replicate refuse it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from pathlib import Path

from ..errors import IndexDamagedError, IndexNotFoundError
from .manifest import FORMAT, MANIFEST

CURRENT = "CURRENT"
LOCK = "LOCK"
#: The events store's folder, and the name of its files (events.py).
EVENTS = "events"
EVENTS_FILE = re.compile(r"\d{4}-\d{2}-\d{2}\.jsonl")


ARTICLES = "articles.sqlite"
#: State keys a replica's version records (see replicate.py): where and what it was copied from.
REPLICA_OF = "replica_of"
SOURCE_VERSION = "source_version"
SOURCE_GENERATION = "source_generation"


def last_written(path: Path, version: Path) -> float:
    """When the index at ``path`` was last written to (Unix time), from its files' times:
    CURRENT (a build, a compaction, a replica's copy) and ``version``'s database (an update or
    a precompute, checkpointed into it, and its write-ahead log); 0 if none can be read."""
    found = 0.0
    for entry in (path / CURRENT, version / ARTICLES, version / f"{ARTICLES}-wal"):
        with contextlib.suppress(OSError):
            found = max(found, entry.stat().st_mtime)
    return found


#: Names the engine gives what it creates; a name alone never makes a folder the engine's own.
VERSION_NAME = re.compile(r"v-\d{8}T\d{6}-[0-9a-f]{8}")
BUILD_NAME = re.compile(r"\.build-[0-9a-f]{8}")
POINTER_NAME = re.compile(r"\.CURRENT\.[0-9a-f]{8}")
#: A vector segment's file name (vectors.py writes them).
SEGMENT_NAME = re.compile(r"seg-\d{6}\.faiss")
VERSION_FILE = re.compile(
    r"seg-\d{6}\.faiss|articles\.sqlite(-wal|-shm|-journal)?|manifest\.json"
    r"|\.manifest\.json\.[0-9a-f]{8}|image-\d{12}\.bin|\.image-\d{12}\.bin\.\d+"
    r"|(?:precomputed|answers)-\d{12}\.bin|\.(?:precomputed|answers)-\d{12}\.bin\.\d+"
)


#: What a writer killed while writing left in a version: a derived file (image, lists) or a
#: manifest being written under its temporary name (``mapped.write_mapped``,
#: ``writer.replace_manifest``).
UNFINISHED = re.compile(
    r"\.(?:image|precomputed|answers)-\d{12}\.bin\.\d+|\.manifest\.json\.[0-9a-f]{8}"
)


def remove_unfinished(version: Path) -> None:
    """Delete the files a killed writer was writing in ``version`` (``UNFINISHED``; plain
    files only). Call under the writer lock: no live writer is writing any."""
    try:
        entries = list(os.scandir(version))
    except OSError:
        return
    for entry in entries:
        if UNFINISHED.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def is_engine_entry(path: Path) -> bool:
    """Whether ``path``, an entry of an index folder, is something the engine made and may
    delete: a version or unfinished build folder (its name, and inside it only the engine's
    files or a manifest it wrote), or a CURRENT pointer being written. Never a symbolic link."""
    try:
        info = path.lstat()
    except OSError:
        return False
    if stat.S_ISREG(info.st_mode):
        return bool(POINTER_NAME.fullmatch(path.name)) and info.st_size <= 64
    if not stat.S_ISDIR(info.st_mode):
        return False
    if not (VERSION_NAME.fullmatch(path.name) or BUILD_NAME.fullmatch(path.name)):
        return False
    try:
        names = [entry.name for entry in os.scandir(path)]
    except OSError:
        return False
    return _is_manifest(path / MANIFEST) or all(VERSION_FILE.fullmatch(n) for n in names)


def _is_manifest(path: Path) -> bool:
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def is_events_store(path: Path) -> bool:
    """Whether ``path``, an entry of an index folder, is the events store (events.py): a
    folder named ``EVENTS`` holding only its day files. The engine keeps it, never deletes it."""
    try:
        if path.name != EVENTS or not stat.S_ISDIR(path.lstat().st_mode):
            return False
        return all(EVENTS_FILE.fullmatch(entry.name) for entry in os.scandir(path))
    except OSError:
        return False


def is_index_folder(index_dir: Path) -> bool:
    """Whether ``index_dir`` holds an index (maybe a damaged one): its CURRENT, a file the
    engine wrote, names a version."""
    pointer = index_dir / CURRENT
    try:
        if not stat.S_ISREG(pointer.lstat().st_mode) or pointer.stat().st_size > 64:
            return False
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(VERSION_NAME.fullmatch(name))


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is a writer lock the engine left: a plain file holding a process id."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode) or path.stat().st_size > 32:
            return False
        return path.read_bytes().strip().isdigit() or path.stat().st_size == 0
    except OSError:
        return False


def current_version(index_dir: Path) -> Path:
    """The folder of the version in use; IndexNotFoundError when there is no index here."""
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexNotFoundError(
            f"no index at {index_dir}; build one with: "
            f"recommend build-index FILE --index {index_dir}"
        )
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexDamagedError(
            f"index at {index_dir} is damaged: {CURRENT} cannot be read ({exc}); build it again"
        ) from None
    version = index_dir / name
    if not name or "/" in name or not version.is_dir():
        raise IndexDamagedError(
            f"index at {index_dir} is damaged: CURRENT names {name!r}, which is missing; "
            "build it again"
        )
    return version


def current_name(index_dir: Path) -> str | None:
    """The name CURRENT gives, as written (None when there is none to read): a cheap check of
    whether a build or compaction replaced the version a reader holds."""
    try:
        return (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
