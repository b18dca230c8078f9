"""The events store: what readers saw and clicked (``events.View``, ``events.Click``), kept
append-only in the index folder, beside the versions.

::

    DIR/events/                 the store (``layout.EVENTS``); never part of a version
        2026-12-07.jsonl        the events appended on that day (UTC), one record a line
        2026-12-08.jsonl

A record is one line: the CRC32 of its JSON (8 hex digits), a space, the JSON object, a newline
(``record_of``). A line whose checksum does not match, or the last line of a file when it has no
newline (a writer killed in the middle of it), is not an event: reading skips it and counts it
(``Events.damaged``), and goes on with the next line, so one damaged record never costs the
ones around it.

``append_events`` holds an exclusive lock on the file (``flock``) while it writes, so appenders
in several processes or threads never interleave their lines; it starts with a newline when the
file ends in a torn record, so that the new lines never join it; and it returns only once the
lines are on disk (``fsync``, and the folder's too when it made a file). Nothing ever rewrites
or deletes a record: compaction, builds and replicas replace versions, which the store is not
part of (``layout.is_engine_entry`` never names it), and ``recommend replicate`` copies a
version, not the store (a replica's service keeps the events it receives in its own folder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import IndexNotFoundError, IndexWriteError
from ..events import Click, Event, View
from .files import fsync_dir
from .layout import EVENTS, EVENTS_FILE, is_index_folder


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
    """The event a stored line holds; None when the line is damaged (checksum, JSON, fields)."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    data = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(data):
            return None
        raw = json.loads(data)
        time = datetime.fromisoformat(raw["time"])
        if raw["type"] == "click":
            return Click(raw["view"], raw["article"], int(raw["position"]), time)
        if raw["type"] == "view":
            teams = raw.get("teams")
            return View(
                view=raw["view"],
                article=raw["article"],
                shown=tuple(raw["shown"]),
                time=time,
                ranking=raw.get("ranking", "default"),
                section=raw.get("section"),
                language=raw.get("language"),
                swapped=raw.get("swapped"),
                teams=None if teams is None else tuple(teams),
            )
    except (ValueError, KeyError, TypeError):
        return None
    return None


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
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _write_error(index, exc) from None
    try:
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
        self._since = None if since is None else _aware(since)
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
        # A file holds what was appended that day; an event's time is at most a day from
        # that, so older files hold nothing at or after ``since``.
        first = "" if self._since is None else f"{self._since - timedelta(days=2):%Y-%m-%d}"
        for name in names:
            if name < first:
                continue
            with contextlib.suppress(FileNotFoundError), open(store / name, "rb") as handle:
                for line in handle:
                    if line.endswith(b"\n"):
                        yield line[:-1]
                    elif line.strip():
                        self.damaged += 1  # torn: a writer killed while writing it


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_events(index: Path, since: datetime | None = None) -> Events:
    """The events stored in the index at ``index`` (none when it holds no store), in the
    order appended; only those at or after ``since`` when given (a naive time is UTC).
    Damaged records are skipped, and counted in the iterator's ``damaged``."""
    return Events(index, since)
