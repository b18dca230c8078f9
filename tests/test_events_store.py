"""The events store (storage/events.py): durable, append-only, safe against a killed writer,
several appenders, a read-only folder and damaged records."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recommender.errors import IndexNotFoundError
from recommender.events import Click, View
from recommender.storage.events import (
    append_events,
    read_events,
    record_of,
)
from recommender.storage.layout import EVENTS, is_events_store
from recommender.write.transaction import clean_up

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC).replace(microsecond=0)


def make_index(folder: Path) -> Path:
    """A folder that passes for an index (its CURRENT names a version): all the store needs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v-20261207T000000-0123abcd").mkdir()
    (folder / "CURRENT").write_text("v-20261207T000000-0123abcd")
    return folder


def view(n: int, **fields: object) -> View:
    return View(
        f"v{n}",
        "a-1",
        ("a-2", "a-3", "a-4"),
        NOW,
        **fields,  # type: ignore[arg-type]
    )


def click(n: int, position: int = 1) -> Click:
    return Click(f"v{n}", f"a-{position + 2}", position, NOW)


def day_file(index: Path) -> Path:
    (path,) = (index / EVENTS).iterdir()
    return path


def test_appended_events_are_read_back_in_order(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    first = [
        view(1, section="world", language="az", swapped=0),
        click(1),
        view(2, ranking="b", teams=("a", "b", "a")),
    ]
    append_events(index, first)
    append_events(index, [click(2, 0)])
    events = read_events(index)
    assert list(events) == [*first, click(2, 0)]
    assert events.damaged == 0
    assert is_events_store(index / EVENTS)


def test_an_empty_or_missing_store_reads_nothing(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    assert list(read_events(index)) == []
    append_events(index, [])
    assert not (index / EVENTS).exists()


def test_a_torn_line_of_an_older_day_is_counted(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    append_events(index, [click(1)])
    older = index / EVENTS / "2000-01-01.jsonl"
    older.write_bytes(record_of(click(0)) + record_of(click(9))[:20])
    events = read_events(index)
    assert list(events) == [click(0), click(1)]
    assert events.damaged == 1


def test_since_keeps_the_later_events(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    old = Click("v0", "a-2", 0, NOW - timedelta(hours=30))
    append_events(index, [old, click(1)])
    assert list(read_events(index, since=NOW - timedelta(hours=1))) == [click(1)]
    naive = (NOW - timedelta(hours=31)).replace(tzinfo=None)
    assert list(read_events(index, since=naive)) == [old, click(1)]


def test_no_index_no_store(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index at"):
        append_events(tmp_path, [click(1)])
    assert not (tmp_path / EVENTS).exists()


def test_a_torn_last_record_is_dropped_and_the_next_append_is_whole(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    append_events(index, [view(1), click(1)])
    with open(day_file(index), "ab") as handle:
        handle.write(record_of(view(2))[:-9])  # a writer killed in the middle of a line
    events = read_events(index)
    assert list(events) == [view(1), click(1)]
    assert events.damaged == 0  # it may be a record being written: not counted yet
    append_events(index, [click(3)])
    events = read_events(index)
    assert list(events) == [view(1), click(1), click(3)]
    assert events.damaged == 1


def test_a_damaged_record_is_skipped_and_counted(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    append_events(index, [view(1), click(1), view(2)])
    path = day_file(index)
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"position":1', b'"position":2')  # checksum no longer holds
    path.write_bytes(b"\n".join(lines))
    events = read_events(index)
    assert list(events) == [view(1), view(2)]
    assert events.damaged == 1
    with open(path, "ab") as handle:
        handle.write(b"\x00\xff garbage\n\n")
    events = read_events(index)
    assert list(events) == [view(1), view(2)]
    assert events.damaged == 3


def test_concurrent_appenders_never_mix_their_records(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")

    def append(thread: int) -> None:
        for n in range(40):
            append_events(index, [view(thread * 1000 + n), click(thread * 1000 + n)])

    threads = [threading.Thread(target=append, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = read_events(index)
    got = list(events)
    assert events.damaged == 0
    assert len(got) == 4 * 40 * 2
    for t in range(4):  # each appender's events in its order, each view before its click
        mine = [e.view for e in got if int(e.view[1:]) // 1000 == t]
        assert mine == [f"v{t * 1000 + n}" for n in range(40) for _ in (0, 1)]


BATCHES = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from recommender.events import Click, View
from recommender.storage.events import append_events
index, me = Path(sys.argv[1]), sys.argv[2]
for n in range(150):
    now = datetime.now(UTC)
    append_events(index, [View(f"{me}-{n}", "a", ("b", "c"), now), Click(f"{me}-{n}", "c", 1, now)])
"""


def test_appenders_in_several_processes_never_mix_their_records(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen([sys.executable, "-c", BATCHES, str(index), f"p{p}"], env=env)
        for p in range(3)
    ]
    assert [process.wait(120) for process in processes] == [0, 0, 0]
    events = read_events(index)
    got = list(events)
    assert events.damaged == 0 and len(got) == 3 * 150 * 2
    for p in range(3):
        mine = [(type(e).__name__, e.view) for e in got if e.view.startswith(f"p{p}-")]
        assert mine == [(kind, f"p{p}-{n}") for n in range(150) for kind in ("View", "Click")]


APPENDER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from recommender.events import Click
from recommender.storage.events import append_events
index, n = Path(sys.argv[1]), 0
while True:
    append_events(index, [Click(f"v{n}", "a", 0, datetime.now(UTC)) for _ in range(3)])
    print(n, flush=True)  # acknowledged: append_events returned
    n += 1
"""


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    index = make_index(tmp_path / "index")
    runs = []
    for _ in range(2):  # two writers killed one after the other, both in the same file
        process = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(index)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        acknowledged = []
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            acknowledged.append(int(process.stdout.readline()))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        acknowledged += [int(line) for line in process.stdout.read().split()]
        runs.append(acknowledged)
    stored = [int(event.view[1:]) for event in read_events(index)]
    assert len(runs[0]) >= 200 and len(runs[1]) >= 200
    # every acknowledged batch is there, whole, in order; at most the batch being written
    # when each was killed is more
    for acknowledged, batches in zip(runs, _split_runs(stored), strict=True):
        whole = [n for n in batches if batches.count(n) == 3]
        assert whole[: len(acknowledged) * 3] == [n for n in acknowledged for _ in range(3)]
        assert len(set(batches)) <= len(acknowledged) + 1


def _split_runs(stored: list[int]) -> list[list[int]]:
    second = next(i for i in range(1, len(stored)) if stored[i] < stored[i - 1])
    return [stored[:second], stored[second:]]


SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
TRY_APPEND = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from recommender.events import Click
from recommender.storage.events import EventsReadOnlyError, append_events, read_events
index = Path(sys.argv[1])
try:
    append_events(index, [Click("v2", "a-3", 1, datetime.now(UTC))])
except EventsReadOnlyError as exc:
    print("refused:", exc)
print(len(list(read_events(index))))
"""


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root needs setpriv"
)
def test_a_read_only_folder_refuses_events_clearly() -> None:
    shared = Path(tempfile.mkdtemp(prefix="recommender-events-"))
    try:
        shared.chmod(0o755)
        index = make_index(shared / "index")
        append_events(index, [click(1)])
        if os.geteuid() != 0:  # root writes anyway: the append runs as nobody instead
            for path in (index, index / EVENTS, day_file(index)):
                path.chmod(0o555)
        command = [sys.executable, "-c", TRY_APPEND, str(index)]
        out = subprocess.run(
            [*SETPRIV, *command] if os.geteuid() == 0 else command,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)},
        ).stdout
        assert out.startswith(f"refused: cannot keep events in the index at {index}: ")
        assert out.split("\n")[-2] == "1"  # the one stored before: still read
    finally:
        for path in (shared / "index", shared / "index" / EVENTS):
            path.chmod(0o755)
        shutil.rmtree(shared)


def test_writes_of_the_index_keep_the_store(sample_index: Path, tmp_path: Path) -> None:
    """A removal, a rebuild (a new version, the old one deleted, as a compaction does) and a
    replica's copy leave the store as it is; a replica does not carry it; check notes what
    cannot be read in it, and the index stays sound."""
    from conftest import FakeEncoder, sample_records

    from recommender import Recommender
    from recommender.articles import parse_article
    from recommender.storage.check import check_index
    from recommender.write.replicate import replicate

    append_events(sample_index, [view(1), click(1)])
    clean_up(sample_index)  # what every write does first
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.remove([rec.ids()[0]])
        version = rec.snapshot.version.name
    articles = [parse_article(r) for r in sample_records()]
    Recommender.build(articles, sample_index, encoder=FakeEncoder())
    assert (sample_index / "CURRENT").read_text().strip() != version
    assert not (sample_index / version).exists()
    replica = tmp_path / "replica"
    replicate(sample_index, replica)
    assert not (replica / EVENTS).exists()
    append_events(replica, [click(7)])  # a replica's own service keeps what it receives
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.remove([rec.ids()[0]])
    assert replicate(sample_index, replica).copied
    assert list(read_events(replica)) == [click(7)]
    assert list(read_events(sample_index)) == [view(1), click(1)]
    assert check_index(sample_index).notes == []
    with open(day_file(sample_index), "ab") as handle:
        handle.write(b"0000 torn\n")
    report = check_index(sample_index)
    assert report.sound
    assert report.notes == [
        "events/: 1 damaged event record(s) skipped, 2 read (a writer killed mid-record, "
        "or a changed byte)"
    ]


def test_a_folder_holding_only_a_store_is_not_foreign(tmp_path: Path) -> None:
    """A first build into a folder whose build was interrupted after events came: the store
    is the index's own, not someone else's files."""
    from conftest import FakeEncoder, sample_records

    from recommender import Recommender
    from recommender.articles import parse_article

    index = make_index(tmp_path / "index")
    append_events(index, [click(1)])
    (index / "CURRENT").unlink()
    (index / "v-20261207T000000-0123abcd").rmdir()
    articles = [parse_article(r) for r in sample_records()[:30]]
    Recommender.build(articles, index, encoder=FakeEncoder())
    assert list(read_events(index)) == [click(1)]


def _forged(fields: dict[str, object]) -> bytes:
    """A record with a right checksum over fields no service would write."""
    import json
    import zlib

    data = json.dumps(fields).encode()
    return b"%08x %s\n" % (zlib.crc32(data), data)


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "click", "view": "v9", "article": "a-2", "position": 1, "time": "2026-12-07"},
        {"type": "view", "view": "v9", "article": "a-1", "shown": ["a-2"], "section": ["x"]},
        {"type": "view", "view": "v9", "article": "a-1", "shown": "a-2"},
        {"type": "view", "view": ["v9"], "article": "a-1", "shown": ["a-2"]},
        {"type": "click", "view": "v9", "article": "a-2", "position": "1"},
        {"type": "view", "view": "v9", "article": "a-1", "shown": ["a-2"], "teams": [1]},
    ],
    ids=["naive time", "section a list", "shown a string", "view a list", "position text", "teams"],
)
def test_a_forged_record_with_a_right_checksum_is_damaged(
    tmp_path: Path, fields: dict[str, object]
) -> None:
    """A record whose checksum holds but whose fields are of the wrong type is skipped and
    counted: before, a naive time failed ``since``'s comparison and a section that is a list
    failed the report's tally, each taking the whole report down with it."""
    from recommender.quality.report import report_of

    index = make_index(tmp_path / "index")
    append_events(index, [view(1)])
    fields.setdefault("time", NOW.isoformat())
    with open(day_file(index), "ab") as handle:
        handle.write(_forged(fields))
    append_events(index, [click(1)])
    events = read_events(index, since=NOW - timedelta(days=1))
    assert report_of(events).clicks == 1
    assert events.damaged == 1


def test_a_line_over_the_bound_is_skipped_without_being_held(tmp_path: Path) -> None:
    """A line of 100 MB (or /dev/zero as a day file) is read through in pieces of at most
    MAX_RECORD bytes, counted once, and the records after it are read."""
    from recommender.storage.events import MAX_RECORD

    index = make_index(tmp_path / "index")
    append_events(index, [view(1)])
    with open(day_file(index), "ab") as handle:
        handle.write(b"x" * (3 * MAX_RECORD + 17) + b"\n")
    append_events(index, [click(1)])
    events = read_events(index)
    assert list(events) == [view(1), click(1)]
    assert events.damaged == 1


@pytest.mark.parametrize("kind", ["fifo", "folder", "link"])
def test_a_day_file_that_is_not_a_file_is_neither_waited_on_nor_followed(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO in place of a day file hung every append and every report (open() waits for
    the other end); a folder raised IsADirectoryError out of the report; a link was followed
    (to /dev/zero: memory without end). Now reading counts it as one damaged record and
    appending to it is refused."""
    from recommender.errors import IndexWriteError

    index = make_index(tmp_path / "index")
    (index / EVENTS).mkdir()
    older = index / EVENTS / "2000-01-01.jsonl"
    older.write_bytes(record_of(view(1)))
    today = index / EVENTS / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    if kind == "fifo":
        os.mkfifo(today)
    elif kind == "folder":
        today.mkdir()
    else:
        today.symlink_to(older)
    found: list[object] = []

    def work() -> None:
        events = read_events(index)
        found.append((list(events), events.damaged))
        try:
            append_events(index, [click(1)])
        except IndexWriteError as exc:
            found.append(str(exc))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "waited on the day file"
    assert found[0] == ([view(1)], 1)
    assert "is not a regular file" in str(found[1])
    assert older.read_bytes() == record_of(view(1))


def test_a_batch_refused_by_a_full_disk_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC after part of a batch is written: the part is cut off again, so that no record
    of a batch answered 503 is kept (a client that tries again would be counted twice) and no
    torn line waits for the next append. (Also seen on a tmpfs of 20 MB filled to 8 KB.)"""
    import errno

    from recommender.storage import events as store
    from recommender.storage.events import EventsReadOnlyError

    index = make_index(tmp_path / "index")
    append_events(index, [view(1)])
    before = day_file(index).read_bytes()
    real_write = os.write

    def full(fd: int, data: object) -> int:
        view_of = memoryview(data)  # type: ignore[arg-type]
        if len(view_of) > 40:
            return real_write(fd, view_of[: len(view_of) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "write", full)
    with pytest.raises(EventsReadOnlyError, match="No space left on device"):
        append_events(index, [view(2), click(2), view(3)])
    monkeypatch.undo()
    assert day_file(index).read_bytes() == before
    append_events(index, [click(1)])
    events = read_events(index)
    assert list(events) == [view(1), click(1)] and events.damaged == 0


@pytest.mark.parametrize("target", ["folder", "file", "dangling"])
def test_a_store_that_is_a_link_or_a_file_is_never_written_through(
    tmp_path: Path, target: str
) -> None:
    """`events/` as a link to another folder (/etc, say), to a file, or to nothing; or a plain
    file: appending is refused, nothing is made or written where it points."""
    from recommender.errors import IndexWriteError

    index = make_index(tmp_path / "index")
    elsewhere = tmp_path / "elsewhere"
    if target == "folder":
        elsewhere.mkdir()
    elif target == "file":
        elsewhere.write_bytes(b"precious")
    (index / EVENTS).symlink_to(elsewhere)
    with pytest.raises(IndexWriteError, match="cannot keep events"):
        append_events(index, [click(1)])
    if target == "folder":
        assert list(elsewhere.iterdir()) == []
    elif target == "file":
        assert elsewhere.read_bytes() == b"precious"
    else:
        assert not elsewhere.exists()
    (index / EVENTS).unlink()
    (index / EVENTS).write_bytes(b"not a folder")
    with pytest.raises(IndexWriteError, match="is not a folder the index made"):
        append_events(index, [click(1)])
    assert list(read_events(index)) == []


def test_an_append_returns_only_after_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 (the tests above) cannot tell a synced append from one left in the page cache:
    the kernel keeps what a killed process wrote. A power cut can: this checks that the day
    file is synced after its last write and before append_events returns, and the folder
    when the file is new."""
    from recommender.storage import events as store

    index = make_index(tmp_path / "index")
    calls: list[str] = []
    real_write, real_fsync = os.write, os.fsync

    def write(fd: int, data: Any) -> int:
        calls.append("write")
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        calls.append("fsync " + ("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        real_fsync(fd)

    monkeypatch.setattr(store.os, "write", write)
    monkeypatch.setattr(store.os, "fsync", fsync)  # the os module: files.fsync_dir's too
    append_events(index, [view(1)])
    assert calls[-3:] == ["write", "fsync file", "fsync folder"]
    calls.clear()
    append_events(index, [click(1)])
    assert calls == ["write", "fsync file"]


def test_a_clock_that_ran_ahead_leaves_today_being_written(tmp_path: Path) -> None:
    """A server whose clock once ran years ahead made a day file of 2099; set right, it
    appends to today's again, which is no longer the last by name. The unfinished last line
    of today's file (a record being written) was counted as damaged; it is not, as for the
    last file."""
    index = make_index(tmp_path / "index")
    append_events(index, [view(1)])
    (index / EVENTS / "2099-01-01.jsonl").write_bytes(record_of(view(2)))
    with open(day_file_of_today(index), "ab") as handle:
        handle.write(record_of(click(1))[:-9])  # being written
    events = read_events(index)
    assert list(events) == [view(1), view(2)]
    assert events.damaged == 0


def day_file_of_today(index: Path) -> Path:
    return index / EVENTS / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
