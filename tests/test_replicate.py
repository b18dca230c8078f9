"""recommend replicate: consistent copies for read-only replicas, and shipping them in order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SAMPLE, FakeEncoder, article
from typer.testing import CliRunner

import recommender.write.replicate as replicate_module
from recommender import (
    IndexBusyError,
    IndexDamagedError,
    IndexNotFoundError,
    IndexWriteError,
    Recommender,
    RecommenderError,
    UnknownArticleError,
)
from recommender.cli import app
from recommender.read.snapshot import Snapshot
from recommender.storage.layout import ARTICLES, CURRENT, LOCK, current_version
from recommender.storage.manifest import MANIFEST
from recommender.write.transaction import writer_lock

runner = CliRunner()


def replicate(source: Path, replica: Path, **options: object):  # type: ignore[no-untyped-def]
    return Recommender.replicate(source, replica, **options)  # type: ignore[arg-type]


def versions(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def ship(replica: Path, machine: Path) -> str:
    """What the README's rsync recipe does, imitated: the version folder first (each file
    written under a temporary name and renamed, as rsync does), then CURRENT alone, replaced
    atomically, then the older versions deleted; never LOCK. Returns the version shipped."""
    name = (replica / CURRENT).read_text().strip()
    (machine / name).mkdir(parents=True, exist_ok=True)
    for path in sorted((replica / name).iterdir()):
        _copy_file(path, machine / name / path.name)
    _copy_file(replica / CURRENT, machine / CURRENT)
    for old in machine.iterdir():
        if old.is_dir() and old.name != name:
            shutil.rmtree(old)
    return name


def _copy_file(path: Path, target: Path) -> None:
    if target.exists() and target.stat().st_size == path.stat().st_size and target.name != CURRENT:
        return  # rsync skips a file of the same size and time; version files never change
    temporary = target.with_name(f".{target.name}.rsync-tmp")
    shutil.copyfile(path, temporary)
    os.replace(temporary, target)


# -- the copy ---------------------------------------------------------------------------------


def test_a_fresh_replica_answers_as_the_index_does(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    report = replicate(sample_index, replica)
    assert report.copied and report.articles == 338 and report.generation == 1
    assert report.source_version == current_version(sample_index).name
    assert report.bytes_copied > 0 and report.files_linked == 0 and report.tries == 1
    assert sorted(p.name for p in replica.iterdir()) == [CURRENT, LOCK, report.version]
    version = replica / report.version
    # Rollback journal, not WAL: a reader needs no -shm file, so a read-only folder serves.
    assert sorted(p.name for p in version.iterdir()) == [
        ARTICLES,
        "image-000000000001.bin",
        MANIFEST,
        "precomputed-000000000001.bin",  # the source's precomputed lists, copied
        "seg-000001.faiss",
    ]
    assert (version / ARTICLES).read_bytes()[18:20] == b"\x01\x01"
    assert (version / "seg-000001.faiss").stat().st_mode & 0o777 == 0o444  # as the writer's
    with Recommender.open(sample_index) as rec, Recommender.open(replica) as copy:
        assert len(copy) == 338 and copy.info().generation == 1
        for article_id in ("a-1001", "a-2021", "a-3001"):
            assert copy.similar(article_id, k=5) == rec.similar(article_id, k=5)
    assert not [p for p in version.iterdir() if p.name.endswith(("-wal", "-shm", "-journal"))]
    assert Recommender.check(replica).sound


def test_repeated_runs_copy_only_when_the_index_changed(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    first = replicate(sample_index, replica)
    again = replicate(sample_index, replica)
    assert not again.copied and again.version == first.version and again.bytes_copied == 0
    assert versions(replica) == [first.version]
    reader = Recommender.open(replica)
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("n1", "Valdoria quake rescue teams reach the Ardesse valley")])
        rec.remove(["a-1002"])
    changed = replicate(sample_index, replica)
    # The build's segment is unchanged: linked from the previous copy, not copied again.
    assert changed.copied and changed.generation == 3 and changed.articles == 338
    assert changed.files_linked == 1 and changed.bytes_copied < first.bytes_copied
    assert versions(replica) == [changed.version]  # the older copy deleted
    held = reader.snapshot  # the copy it loaded, whose folder is deleted now
    assert not held.version.exists() and "n1" not in held.columns.row_of
    assert held.table.articles([held.row("a-1002")])  # its files, still open, still read
    assert "n1" in reader and "a-1002" not in reader  # a new copy is loaded before answering
    assert reader.snapshot.version.name == changed.version
    reader.close()


def test_a_replica_missing_a_file_is_copied_again(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    first = replicate(sample_index, replica)
    (replica / first.version / "seg-000001.faiss").unlink()
    again = replicate(sample_index, replica)
    assert again.copied and again.version != first.version and again.files_linked == 0
    with Recommender.open(replica) as rec:
        assert len(rec) == 338


def test_a_rebuilt_index_is_copied_whole(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    replicate(sample_index, replica)
    Recommender.build_from_files([SAMPLE], sample_index, encoder=FakeEncoder())
    report = replicate(sample_index, replica)
    assert report.copied and report.files_linked == 0
    assert report.source_version == current_version(sample_index).name


def test_a_read_only_folder_serves(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    replicate(sample_index, replica)
    version = current_version(replica)
    for path in (*version.iterdir(), version, replica):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        with Recommender.open(replica) as rec:
            assert rec.snapshot.table._immutable is None  # opened as is: no -shm needed
            assert len(rec) == 338 and rec.similar("a-2021", k=1)
        assert not [p for p in version.iterdir() if p.name.endswith(("-wal", "-shm"))]
    finally:
        for path in (replica, version, *version.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)


SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
READER = """
import sys
from recommender import Recommender
rec = Recommender.open(sys.argv[1])
print(len(rec), rec.snapshot.table._immutable is None, flush=True)
sys.stdin.readline()
print(rec.refresh(), len(rec), "n1" in rec, rec.similar("n1", k=1)[0].id, flush=True)
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_reader_that_may_not_write_the_replica_follows_it(sample_index: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="recommender-replica-"))
    try:
        shared.chmod(0o755)
        replica = shared / "replica"  # written by root: read-only to the reader below
        replicate(sample_index, replica)
        reader = subprocess.Popen(
            [*SETPRIV, sys.executable, "-c", READER, str(replica)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().split() == ["338", "True"]
        with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
            rec.add([article("n1", "Valdoria quake rescue teams reach Ardesse")])
        replicate(sample_index, replica)
        out, err = reader.communicate("go\n", timeout=60)
        assert reader.returncode == 0, err
        assert out.split()[:3] == ["True", "339", "True"]
        assert not list(current_version(replica).glob("*-shm"))
    finally:
        shutil.rmtree(shared)


# -- what is refused --------------------------------------------------------------------------


def test_no_index_to_copy(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="no index at"):
        replicate(tmp_path / "none", tmp_path / "replica")
    assert not (tmp_path / "replica").exists()


def test_a_damaged_index_is_not_copied(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    first = replicate(sample_index, replica)
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("n1", "Valdoria quake rescue teams reach Ardesse")])
    segment = current_version(sample_index) / "seg-000002.faiss"
    segment.chmod(0o644)  # written read-only
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(IndexDamagedError, match=r"seg-000002\.faiss does not match"):
        replicate(sample_index, replica)
    assert versions(replica) == [first.version]  # the replica as it was, no half copy
    manifest = current_version(sample_index) / MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "dimension": 3}))
    with pytest.raises(IndexDamagedError, match=r"manifest\.json does not match its checksum"):
        replicate(sample_index, replica)
    assert versions(replica) == [first.version]


def test_the_replica_must_be_a_folder(sample_index: Path, tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("mine\n")
    with pytest.raises(IndexNotFoundError, match="exists and is not a folder"):
        replicate(sample_index, file)
    assert file.read_text() == "mine\n"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    with pytest.raises(IndexNotFoundError, match=r"not empty and holds no index \(notes.txt"):
        replicate(sample_index, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_symbolic_link_is_followed_unless_it_leads_nowhere_or_into_the_index(
    sample_index: Path, tmp_path: Path
) -> None:
    target = tmp_path / "disk" / "replica"
    target.mkdir(parents=True)
    link = tmp_path / "replica"
    link.symlink_to(target)
    report = replicate(sample_index, link)
    assert link.is_symlink() and versions(target) == [report.version]
    with Recommender.open(link) as rec:
        assert len(rec) == 338
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    with pytest.raises(IndexWriteError, match="which does not exist"):
        replicate(sample_index, dangling)
    into_index = tmp_path / "into-index"
    into_index.symlink_to(sample_index)
    with pytest.raises(IndexWriteError, match="must be a folder outside the index"):
        replicate(sample_index, into_index)


@pytest.mark.parametrize("where", ["itself", "inside", "around"])
def test_the_replica_and_the_index_must_not_overlap(
    sample_index: Path, tmp_path: Path, where: str
) -> None:
    replica = {
        "itself": sample_index,
        "inside": sample_index / "replica",
        "around": sample_index.parent,
    }[where]
    before = sorted(p.name for p in sample_index.iterdir())
    with pytest.raises(IndexWriteError, match="must be a folder outside the index"):
        replicate(sample_index, replica)
    assert sorted(p.name for p in sample_index.iterdir()) == before


def test_an_index_of_its_own_is_not_replaced_by_a_copy(sample_index: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    Recommender.build([article("x1", "Something else entirely")], other, encoder=FakeEncoder())
    with pytest.raises(IndexWriteError, match="holds an index of its own, not a replica"):
        replicate(sample_index, other)
    assert Recommender.open(other).ids() == ["x1"]


def test_writers_refuse_a_replica(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    replicate(sample_index, replica)
    message = f"index at {replica} is a replica of {sample_index.resolve()}"
    with Recommender.open(replica, encoder=FakeEncoder()) as rec:
        with pytest.raises(IndexWriteError, match=message):
            rec.add([article("n1", "Lost at the next copy")])
        with pytest.raises(IndexWriteError, match=message):
            rec.remove(["a-1001"])
    with pytest.raises(IndexWriteError, match=message):
        Recommender.build([article("x1", "Lost too")], replica, encoder=FakeEncoder())
    with Recommender.open(replica) as rec:
        assert len(rec) == 338


def test_the_index_writer_is_never_waited_for(sample_index: Path, tmp_path: Path) -> None:
    with writer_lock(sample_index):  # another process writing the index: the copy goes on
        report = replicate(sample_index, tmp_path / "replica")
    assert report.copied and report.articles == 338


def test_one_replicate_at_a_time_per_replica(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    replicate(sample_index, replica)
    with (
        writer_lock(replica),  # another replicate still running (a slow cron run)
        pytest.raises(IndexBusyError, match="being written by another process"),
    ):
        replicate(sample_index, replica)
    held = threading.Event()
    release = threading.Event()

    def other_run() -> None:
        with writer_lock(replica):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=other_run)
    thread.start()
    held.wait(5)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    assert not replicate(sample_index, replica, wait=True).copied
    assert time.monotonic() - started >= 0.25
    thread.join()


def test_an_index_changing_under_the_copy_is_copied_again(
    sample_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica = tmp_path / "replica"
    real = replicate_module._copy_segment
    calls: list[str] = []

    def merged_meanwhile(*args: object) -> int:
        calls.append("copy")
        if len(calls) == 1:  # the writer merged the segment away after the database was read
            raise replicate_module._SourceChanged
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(replicate_module, "_copy_segment", merged_meanwhile)
    report = replicate(sample_index, replica)
    assert report.copied and report.tries == 2
    assert [p.name for p in replica.iterdir() if p.name.startswith(".")] == []

    def always_changing(*args: object) -> int:
        raise replicate_module._SourceChanged

    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("n1", "Valdoria quake rescue teams reach Ardesse")])
    monkeypatch.setattr(replicate_module, "_copy_segment", always_changing)
    with pytest.raises(IndexBusyError, match="changed 5 times while it was being copied"):
        replicate(sample_index, replica)
    assert versions(replica) == [report.version]


# -- the command ------------------------------------------------------------------------------


def test_the_command(sample_index: Path, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    result = runner.invoke(app, ["replicate", str(replica), "--index", str(sample_index)])
    assert result.exit_code == 0, result.output
    version = current_version(replica).name
    assert result.stdout.startswith(
        f"replicated {sample_index} (338 articles, version "
        f"{current_version(sample_index).name} generation 1) to {replica / version}: "
    )
    result = runner.invoke(app, ["replicate", str(replica), "-i", str(sample_index), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["copied"] is False and data["version"] == version and data["articles"] == 338
    result = runner.invoke(app, ["replicate", str(replica), "-i", str(sample_index)])
    assert result.stdout.strip().endswith("generation 1); nothing copied")
    result = runner.invoke(app, ["similar", "a-1001", "--index", str(replica), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)


def test_the_command_fails_in_one_line(sample_index: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["replicate", str(tmp_path / "r"), "-i", str(tmp_path / "no")])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"error: no index at {tmp_path / 'no'}; build one with: recommend build-index FILE "
        f"--index {tmp_path / 'no'}\n"
    )
    replica = tmp_path / "replica"
    replicate(sample_index, replica)
    with writer_lock(replica):
        result = runner.invoke(app, ["replicate", str(replica), "-i", str(sample_index)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: index at {replica} is being written by another")
    assert result.stderr.strip().endswith("or pass --wait")


# -- one writer, two replicas, readers on each ------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What a reader of a replica held at one moment, and what it was answered."""

    replica: str
    state: tuple[str, int]  # the index's version and generation it is a copy of
    ids: frozenset[str]
    listed: frozenset[str]


def _topics(n: int) -> list[str]:
    words = ["quake", "election", "harbour", "vaccine", "budget", "storm", "league", "strike"]
    return [
        f"{words[i % len(words)]} {words[(i * 3 + 1) % len(words)]} report {i}" for i in range(n)
    ]


def test_readers_of_replicas_only_ever_see_whole_states(tmp_path: Path) -> None:
    """A writer adds and removes articles in a loop; one replica is refreshed by replicate,
    a second by shipping the first in the documented order (version folder first, CURRENT
    last); reader threads on each refresh and query all the while. Every state a reader
    holds is one the writer committed (its articles exactly), and every listed id is in it."""
    source = tmp_path / "index"
    first = [article(f"a{i}", title) for i, title in enumerate(_topics(30))]
    Recommender.build(first, source, encoder=FakeEncoder())
    built = current_version(source).name
    committed: dict[tuple[str, int], frozenset[str]] = {(built, 1): frozenset(a.id for a in first)}
    latest = [built]
    replicas = [tmp_path / "replica", tmp_path / "machine-2"]
    replicate(source, replicas[0])
    ship(replicas[0], replicas[1])
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[Seen] = []
    copies = {"replicated": 0, "shipped": 0}

    def record(snapshot: Snapshot) -> None:
        ids = frozenset(snapshot.columns.row_of)
        last = max((g, v) for v, g in committed if v == latest[0])
        if snapshot.version.name != latest[0]:
            # Compacted (many segments): the update was committed to the old version first,
            # then the version rewritten as a new one, whose generations start again.
            committed[(latest[0], last[0] + 1)] = ids
            latest[0] = snapshot.version.name
        committed[(snapshot.version.name, snapshot.generation)] = ids

    def writer() -> None:
        with Recommender.open(source, encoder=FakeEncoder()) as rec:
            n = 1000
            while not stop.is_set():
                titles = _topics(n % 7 + 2)
                rec.add([article(f"n{n}-{i}", title) for i, title in enumerate(titles)])
                record(rec.snapshot)
                live = sorted(rec.snapshot.columns.row_of)
                rec.remove(live[n % len(live) :: 9][:3])
                record(rec.snapshot)
                n += 1

    def replicator() -> None:
        # As the README's cron script: replicate, then ship that copy to the other machine.
        while not stop.is_set():
            if replicate(source, replicas[0]).copied:
                copies["replicated"] += 1
            ship(replicas[0], replicas[1])
            copies["shipped"] += 1
            time.sleep(0.02)

    def reader(replica: Path, seed: int) -> None:
        with Recommender.open(replica) as rec:
            turn = seed
            while not stop.is_set():
                turn += 1
                rec.refresh()
                before = rec.snapshot
                query = sorted(before.columns.row_of)[turn % len(before.columns.row_of)]
                try:
                    listed = rec.similar(query, k=5)
                except UnknownArticleError:
                    if rec.snapshot is before:
                        raise
                    continue  # a new copy came meanwhile (loaded before answering): removed
                used = rec.snapshot  # what the answer came from
                for item in listed[:2]:  # read from its database, deleted by a newer copy or not
                    found = used.table.articles([used.columns.row_of[item.id]])
                    assert [a.title for a in found.values()] == [item.title]
                (source_version,) = used.table._query(
                    "SELECT value FROM state WHERE key = 'source_version'"
                )[0]
                seen.append(
                    Seen(
                        replica.name,
                        (source_version, used.generation),
                        frozenset(used.columns.row_of),
                        frozenset(item.id for item in listed) | {query},
                    )
                )

    def guarded(target, *args):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # reported by the test, not lost in the thread
                errors.append(exc)
                stop.set()

        return threading.Thread(target=run)

    threads = [guarded(writer), guarded(replicator)]
    threads += [guarded(reader, replica, seed) for replica in replicas for seed in (0, 7)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert copies["replicated"] >= 5 and copies["shipped"] >= 5, copies
    for replica in replicas:
        mine = [s for s in seen if s.replica == replica.name]
        assert len(mine) >= 20 and len({s.state for s in mine}) >= 3, replica
    for held in seen:
        assert held.ids == committed[held.state], held.state
        assert held.listed <= held.ids


def test_a_file_by_file_copy_of_the_writers_folder_can_be_torn(
    sample_index: Path, tmp_path: Path
) -> None:
    """Why replicate exists: a copy of the live folder, file by file as rsync makes it, pairs
    files of two moments when the writer commits in between; replicate's copy does not."""
    version = current_version(sample_index)
    torn = tmp_path / "torn"
    (torn / version.name).mkdir(parents=True)
    listed = sorted(version.iterdir())  # rsync lists the folder, then copies file by file
    for path in listed:
        if path.name.startswith("seg-"):
            shutil.copyfile(path, torn / version.name / path.name)
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:  # the writer commits
        rec.add([article("n1", "Valdoria quake rescue teams reach Ardesse")])
    for path in listed:
        if not path.name.startswith("seg-"):
            shutil.copyfile(path, torn / version.name / path.name)
    shutil.copyfile(sample_index / CURRENT, torn / CURRENT)
    with pytest.raises(IndexDamagedError, match=r"seg-000002\.faiss is missing"):
        Recommender.open(torn)
    replicate(sample_index, tmp_path / "replica")
    with Recommender.open(tmp_path / "replica") as rec:
        assert len(rec) == 339 and "n1" in rec


def test_shipping_current_before_the_version_breaks_readers(
    sample_index: Path, tmp_path: Path
) -> None:
    """Why CURRENT goes last: shipped first, it names a version the machine does not hold
    (yet, or whole), and readers that open or refresh then fail. In the documented order,
    every moment of the copy opens as the old state or the new one."""
    replica, machine = tmp_path / "replica", tmp_path / "machine"
    replicate(sample_index, replica)
    ship(replica, machine)
    old = current_version(machine).name
    running = Recommender.open(machine)
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("n1", "Valdoria quake rescue teams reach Ardesse")])
    new = replicate(sample_index, replica).version
    files = sorted((replica / new).iterdir())

    # The documented order, one file at a time: a reader opening at any moment sees a whole
    # state, the old one until CURRENT is replaced, the new one after.
    right = tmp_path / "right"
    shutil.copytree(machine, right)
    (right / new).mkdir()
    for path in files:
        _copy_file(path, right / new / path.name)
        with Recommender.open(right) as rec:
            assert len(rec) == 338 and "n1" not in rec
    _copy_file(replica / CURRENT, right / CURRENT)
    with Recommender.open(right) as rec:
        assert len(rec) == 339 and "n1" in rec

    # CURRENT first: until the last file of the version has arrived, no reader can open it.
    _copy_file(replica / CURRENT, machine / CURRENT)
    with pytest.raises(IndexDamagedError, match="which is missing"):
        Recommender.open(machine)
    with pytest.raises(RecommenderError):
        running.refresh()
    assert len(running) == 338  # queries go on from what it holds, but it cannot move on
    (machine / new).mkdir()
    failures = 0
    for path in files:
        try:
            Recommender.open(machine).close()
        except RecommenderError:
            failures += 1
        _copy_file(path, machine / new / path.name)
    assert failures == len(files)  # every moment before the version is whole
    assert running.refresh() and "n1" in running
    running.close()
    assert old != new
