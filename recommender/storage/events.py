"""The events store: what readers saw and clicked (``events.View``, ``events.Click``), kept
append-only in the index folder, beside the versions.

::

    DIR/events/                 the store (``layout.EVENTS``); never part of a version
        2026-12-07.jsonl        the events appended on that day (UTC), one record a line
        2026-12-08.jsonl

A record is one line: the CRC32 of its JSON (8 hex digits), a space, the JSON object, a newline
(``record_of``). A line whose checksum does not match, whose fields are of the wrong type (a
forged record), longer than ``MAX_RECORD`` bytes, or the last line of a file when it has no
newline (a writer killed in the middle of it), is not an event: reading skips it and counts it
(``Events.damaged``), and goes on with the next line, so one damaged record never costs the
ones around it. The unfinished last line of the newest file (and of today's) is skipped uncounted:
it may be a record being written at this moment; once the next append has ended it with a
newline, it is counted if it is damaged. A day file that is not a regular file (a folder, a
FIFO, a symbolic link) is neither followed nor waited on: reading counts it as one damaged
record, appending to it is refused (``IndexWriteError``).

``append_events`` holds an exclusive lock on the file (``flock``) while it writes, so appenders
in several processes or threads never interleave their lines; it starts with a newline when the
file ends in a torn record, so that the new lines never join it; and it returns only once the
lines are on disk (``fsync``, and the folder's too when it made a file). When a write fails
(disk full), it cuts the file back to its size before: a refused batch leaves nothing behind.
Nothing ever rewrites or deletes a record: compaction, builds and replicas replace versions,
which the store is not part of (``layout.is_engine_entry`` never names it), and ``recommend
replicate`` copies a version, not the store (a replica's service keeps the events it receives
in its own folder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import IndexNotFoundError, IndexWriteError
from ..events import Click, Event, View, aware, is_whole
from .files import fsync_dir
from .layout import EVENTS, EVENTS_FILE, is_index_folder

#: The longest record read, in bytes. An event's record is no longer than the body it came in
#: (64 KiB at most: JSON escapes only shrink) and what the service adds (section, language).
MAX_RECORD = 256 * 1024
#: Opening a day file: never through a symbolic link, never waiting on a FIFO.
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class EventsReadOnlyError(IndexWriteError):
    """The index folder cannot be written, so events cannot be kept (reads are unaffected)."""


def record_of(event: Event) -> bytes:
    """One event as a stored line: its JSON's CRC32 in hex, a space, the JSON, a newline."""
    data = json.dumps(_fields(event), ensure_ascii=False, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _fields(event: Event) -> dict[str, Any]:
    time = event.time.astimezone(UTC).isoformat()
    if isinstance(event, Click):
        return {
            "type": "click",
            "view": event.view,
            "article": event.article,
            "position": event.position,
            "time": time,
        }
    fields: dict[str, Any] = {
        "type": "view",
        "view": event.view,
        "article": event.article,
        "shown": list(event.shown),
        "time": time,
        "ranking": event.ranking,
    }
    for name in ("section", "language", "swapped"):
        if getattr(event, name) is not None:
            fields[name] = getattr(event, name)
    if event.teams is not None:
        fields["teams"] = list(event.teams)
    return fields


def event_of(line: bytes) -> Event | None:
    """The event a stored line holds; None when the line is damaged (checksum, JSON, or a
    field of the wrong type: a record whose checksum matches may still have been forged)."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    data = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(data):
            return None
        raw = json.loads(data)
        time = datetime.fromisoformat(raw["time"])
        if time.tzinfo is None or not _texts(raw["view"], raw["article"]):
            return None
        if raw["type"] == "click":
            position = raw["position"]
            if not is_whole(position):
                return None
            return Click(raw["view"], raw["article"], position, time)
        if raw["type"] == "view":
            shown, teams = raw["shown"], raw.get("teams")
            swapped, ranking = raw.get("swapped"), raw.get("ranking", "default")
            if not (
                isinstance(shown, list)
                and _texts(ranking, *shown)
                and all(raw.get(name) is None or _texts(raw[name]) for name in OPTIONAL)
                and (swapped is None or is_whole(swapped))
                and (teams is None or (isinstance(teams, list) and _texts(*teams)))
            ):
                return None
            return View(
                view=raw["view"],
                article=raw["article"],
                shown=tuple(shown),
                time=time,
                ranking=ranking,
                section=raw.get("section"),
                language=raw.get("language"),
                swapped=swapped,
                teams=None if teams is None else tuple(teams),
            )
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return None


OPTIONAL = ("section", "language")


def _texts(*values: Any) -> bool:
    return all(isinstance(value, str) for value in values)


def append_events(index: Path, events: Sequence[Event]) -> None:
    """Append ``events`` to the store of the index at ``index``, durably: when this returns
    they are on disk. Safe with other processes and threads appending at the same time.

    ``IndexNotFoundError`` when ``index`` holds no index; ``EventsReadOnlyError`` when the
    folder cannot be written (read-only, permission denied, disk full); nothing is then kept.
    """
    if not events:
        return
    if not is_index_folder(index):
        raise IndexNotFoundError(f"no index at {index}; events are kept beside an index")
    data = b"".join(record_of(event) for event in events)
    store = index / EVENTS
    path = store / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    try:
        made = _make_folder(store)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _OPEN_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a link, a FIFO, a folder
            raise IndexWriteError(f"cannot keep events: {path} is not a regular file") from None
        raise _write_error(index, exc) from None
    size = -1
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IndexWriteError(f"cannot keep events: {path} is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size == 0:
            made = True  # new, or made by another appender: its name must be durable too
        elif _last_byte(path, size) != b"\n":
            data = b"\n" + data  # the torn record of a killed writer stays a line of its own
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        if made:
            fsync_dir(store)
    except OSError as exc:
        if size >= 0:  # what this batch wrote, cut off: a refused batch keeps nothing
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
        raise _write_error(index, exc) from None
    finally:
        os.close(fd)  # releases the lock


def _make_folder(store: Path) -> bool:
    """Make the store's folder if missing (and make its name durable); whether it did."""
    try:
        os.mkdir(store, 0o755)
    except FileExistsError:
        if store.is_symlink() or not store.is_dir():
            raise IndexWriteError(
                f"cannot keep events: {store} is not a folder the index made"
            ) from None
        return False
    fsync_dir(store.parent)
    return True


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)


def _write_error(index: Path, exc: OSError) -> IndexWriteError:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT):
        return EventsReadOnlyError(
            f"cannot keep events in the index at {index}: {exc.strerror}; "
            "queries are answered as before"
        )
    return IndexWriteError(f"cannot keep events in the index at {index}: {exc}")


class Events(Iterator[Event]):
    """The stored events, in the order appended (``read_events``); ``damaged`` counts the
    records skipped so far (a checksum that does not match, a torn last line)."""

    def __init__(self, index: Path, since: datetime | None) -> None:
        self.damaged = 0
        self._since = None if since is None else aware(since)
        self._lines = self._read(index / EVENTS)

    def __next__(self) -> Event:
        while True:
            line = next(self._lines)
            event = event_of(line)
            if event is None:
                self.damaged += 1
            elif self._since is None or event.time >= self._since:
                return event

    def _read(self, store: Path) -> Iterator[bytes]:
        try:
            names = sorted(e.name for e in os.scandir(store) if EVENTS_FILE.fullmatch(e.name))
        except OSError:
            return
        today = f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
        for number, name in enumerate(names):
            try:
                fd = os.open(store / name, os.O_RDONLY | _OPEN_FLAGS)
            except FileNotFoundError:
                continue
            except OSError:  # a symbolic link (ELOOP), no permission
                self.damaged += 1
                continue
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a FIFO, a device
                os.close(fd)
                self.damaged += 1
                continue
            with open(fd, "rb") as handle:
                # Appended to now: the last day, and today's (after a clock that ran ahead
                # made a file of a later day, today's is still written to).
                newest = number == len(names) - 1 or name == today
                yield from self._lines_of(handle, newest=newest)

    def _lines_of(self, handle: BinaryIO, newest: bool) -> Iterator[bytes]:
        """The whole lines of a day file, each at most ``MAX_RECORD`` bytes: a longer one is
        counted and skipped, read through without being held."""
        while line := handle.readline(MAX_RECORD + 1):
            if line.endswith(b"\n"):
                yield line[:-1]
            elif len(line) > MAX_RECORD:
                self.damaged += 1
                while (rest := handle.readline(MAX_RECORD)) and not rest.endswith(b"\n"):
                    pass
            elif not newest:
                self.damaged += 1  # torn by a killed writer, in a day appended to no more
            # The newest file's unfinished last line: being written now, or torn by a killed
            # writer; the next append ends it, and it is counted then.


def read_events(index: Path, since: datetime | None = None) -> Events:
    """The events stored in the index at ``index`` (none when it holds no store), in the
    order appended; only those at or after ``since`` when given (a naive time is UTC).
    Damaged records are skipped, and counted in the iterator's ``damaged``."""
    return Events(index, since)
