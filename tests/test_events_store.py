"""The events store (storage/events.py): durable, append-only, safe against a killed writer,
several appenders, a read-only folder and damaged records."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    assert events.damaged == 1
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


APPENDER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
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


def test_writes_of_the_index_keep_the_store(sample_index: Path) -> None:
    append_events(sample_index, [view(1), click(1)])
    clean_up(sample_index)  # what every write does first
    from recommender import Recommender

    with Recommender.open(sample_index) as rec:
        rec.remove([rec.ids()[0]])
    assert list(read_events(sample_index)) == [view(1), click(1)]
