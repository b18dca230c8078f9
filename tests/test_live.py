"""A live index: adding, updating and removing in place, refresh, one writer, crash safety."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SAMPLE, FakeEncoder, article

from recommender import (
    Article,
    IndexBusyError,
    Ranking,
    Recommender,
    Settings,
    UnknownArticleError,
)
from recommender.write import compaction
from recommender.write.transaction import writer_lock

WRITER = Path(__file__).resolve().parent / "live_writer.py"


def built(tmp_path: Path, articles: list[Article]) -> Path:
    path = tmp_path / "live"
    Recommender.build(articles, path, encoder=FakeEncoder())
    return path


def test_add_new_articles_seen_after_refresh(sample_index: Path) -> None:
    path = sample_index
    reader = Recommender.open(path)
    encoder = FakeEncoder()
    writer = Recommender.open(path, encoder=encoder)
    fresh = article("new-1", "Keltrix payroll breach widens to second cloud region")
    report = writer.add([fresh])
    assert (report.added, report.replaced, report.fields_only, report.embedded) == (1, 0, 0, 1)
    assert encoder.texts_encoded == 1
    assert "new-1" in writer  # the writer's own view is refreshed
    assert "new-1" not in reader  # others see it when they refresh
    assert reader.refresh() is True and reader.refresh() is False
    assert "new-1" in reader and len(reader) == len(writer) == 339
    assert "new-1" in [item.id for item in reader.similar("a-2016", k=20)]
    assert reader.similar("new-1", k=3)[0].id.startswith("a-20")


def test_changed_text_is_embedded_again_and_fields_only_are_not(sample_index: Path) -> None:
    path = sample_index
    encoder = FakeEncoder()
    rec = Recommender.open(path, encoder=encoder)
    before = rec.get("a-2016")
    moved = article("a-2016", before.title, body=before.body, category="business")
    report = rec.add([moved])
    assert (report.fields_only, report.embedded, encoder.texts_encoded) == (1, 0, 0)
    assert rec.get("a-2016").category == "business"
    assert rec.similar("a-2018", k=1, same_category=True)[0].category == "technology"
    rewritten = article("a-2016", "Orchestra opens its winter season", category="culture")
    report = rec.add([rewritten])
    assert (report.replaced, report.embedded) == (1, 1)
    assert len(rec) == 338 and rec.get("a-2016").title == "Orchestra opens its winter season"
    assert "a-2016" not in [item.id for item in rec.similar("a-2018", k=10)]
    info = rec.info()
    assert info.removed_rows == 1 and info.segments == 2 and info.generation == 3


def test_removal_is_immediate_for_every_reader(sample_index: Path) -> None:
    path = sample_index
    reader = Recommender.open(path)  # never refreshed in this test
    top = [item.id for item in reader.similar("a-2016", k=5)]
    report = Recommender.open(path).remove([top[0], top[1], "no-such-id"])
    assert (report.removed, report.missing) == (2, 1)
    after = [item.id for item in reader.similar("a-2016", k=5)]
    assert top[0] not in after and top[1] not in after and len(after) == 5
    with Recommender.open(path) as fresh:  # the same list as a reader opened after the removal
        assert after == [item.id for item in fresh.similar("a-2016", k=5)]
    with pytest.raises(UnknownArticleError):
        reader.get(top[0])
    reader.refresh()
    assert top[0] not in reader and len(reader) == 336


def test_every_read_sees_removals_made_elsewhere(sample_index: Path) -> None:
    """get, candidates, in, len, ids and similar follow one rule: what another writer removed
    is gone at once, refreshed or not; and similar still lists k when k qualify."""
    path = sample_index
    reader = Recommender.open(path)  # never refreshed below
    top = [item.id for item in reader.similar("a-2016", k=12)]
    with Recommender.open(path, encoder=FakeEncoder()) as writer:
        assert writer.remove(top[:8]).removed == 8
    assert reader.info().generation == 1  # the reader's snapshot is the old one
    for gone in top[:8]:
        assert gone not in reader
        assert gone not in reader.ids()
        with pytest.raises(UnknownArticleError):
            reader.get(gone)
        with pytest.raises(UnknownArticleError):
            reader.similar(gone)
    assert len(reader) == len(reader.ids()) == 338 - 8
    assert not set(top[:8]) & {i for i, _ in reader.candidates("a-2016", k=10)}
    listed = [item.id for item in reader.similar("a-2016", k=10)]
    assert len(listed) == 10 and not set(top[:8]) & set(listed)
    reader.close()


def test_rebuild_reuses_stored_embeddings(sample_index: Path) -> None:
    path = sample_index
    encoder = FakeEncoder()
    report = Recommender.build_from_files(
        [SAMPLE], path, encoder=encoder, settings=Settings(ranking=Ranking(half_life_days=3.0))
    )
    assert report.reused == 338 and encoder.texts_encoded == 0
    with Recommender.open(path) as rec:
        assert rec.settings.ranking.half_life_days == 3.0 and len(rec) == 338
    changed = [article("a-1001", "Completely different headline"), article("z", "New")]
    encoder = FakeEncoder()
    report = Recommender.build(changed, path, encoder=encoder)
    assert (report.reused, encoder.texts_encoded) == (0, 2)
    other = FakeEncoder(name="another-model")
    report = Recommender.build([article("z", "New")], path, encoder=other)
    assert report.reused == 0 and other.texts_encoded == 1  # another model: nothing reused


def test_answers_after_updates_survive_reopening(sample_index: Path) -> None:
    path = sample_index
    rec = Recommender.open(path, encoder=FakeEncoder())
    rec.add([article("n1", "Valdoria earthquake rebuilding fund doubles"), article("n2", "x y")])
    rec.remove(["a-1002", "n2"])
    with Recommender.open(path) as again:
        for article_id in ("a-1001", "n1", "a-3002"):
            assert again.similar(article_id, k=8) == rec.similar(article_id, k=8)
        assert again.ids() == rec.ids()


def test_auto_refresh(sample_index: Path) -> None:
    path = sample_index
    reader = Recommender.open(path, auto_refresh=0.05)
    writer = Recommender.open(path, encoder=FakeEncoder())
    writer.add([article("n1", "Tallis extra time winner Valdorian Cup")])
    deadline = time.monotonic() + 5
    while "n1" not in reader and time.monotonic() < deadline:
        reader.similar("a-3002", k=3)
        time.sleep(0.02)
    assert "n1" in reader


def test_refresh_after_a_rebuild_loads_the_new_version(sample_index: Path) -> None:
    path = sample_index
    reader = Recommender.open(path)
    Recommender.build([article("only", "Only one")], path, encoder=FakeEncoder())
    assert reader.refresh() is True
    assert reader.ids() == ["only"] and len(reader) == 1
    other = Recommender.open(path)
    Recommender.build([article("next", "Next one")], path, encoder=FakeEncoder())
    assert len(other) == 1 and other.ids() == ["next"]  # every read loads a rebuild first


def test_a_query_loads_a_rebuilt_index_first(sample_index: Path) -> None:
    path = sample_index
    reader = Recommender.open(path)
    Recommender.build([article("only", "Only one")], path, encoder=FakeEncoder())
    # Answers never come from a replaced version, whose removals would go unseen.
    assert reader.similar("only", k=3) == []
    assert reader.ids() == ["only"] and reader.refresh() is False


def test_one_writer_at_a_time(sample_index: Path) -> None:
    path = sample_index
    rec = Recommender.open(path, encoder=FakeEncoder())
    with writer_lock(path):
        with pytest.raises(
            IndexBusyError, match=rf"written by another process \(process {os.getpid()}\)"
        ):
            rec.add([article("n1", "x")])
        started = time.monotonic()
        with pytest.raises(IndexBusyError):
            rec.remove(["a-1001"], wait=0.3)
        assert time.monotonic() - started >= 0.3
    lock_held = threading.Event()

    def hold() -> None:
        with writer_lock(path):
            lock_held.set()
            time.sleep(0.3)

    holder = threading.Thread(target=hold)
    holder.start()
    lock_held.wait()
    assert rec.remove(["a-1001"], wait=True).removed == 1  # waited for the holder
    holder.join()


def test_compaction_drops_removed_rows(sample_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compaction, "COMPACT_MIN_ROWS", 10)
    path = sample_index
    reader = Recommender.open(path)
    rec = Recommender.open(path)
    victims = [i for i in rec.ids() if i.startswith("a-1")][:90]
    expected_before = rec.similar("a-3002", k=5)
    report = rec.remove(victims)
    assert report.compacted and report.removed == 90
    info = rec.info()
    assert (info.removed_rows, info.segments, info.generation, info.articles) == (0, 1, 1, 248)
    # No a-1xxx among them anyway; the scores move a little, as calibration is over the
    # candidates, and the removed rows are no longer candidates.
    after = rec.similar("a-3002", k=5)
    assert [r.id for r in after] == [r.id for r in expected_before]
    old_version = reader.similar("a-3002", k=5)  # still readable
    assert [r.id for r in old_version] == [r.id for r in expected_before]
    reader.refresh()
    assert reader.ids() == rec.ids()
    versions = [p for p in path.iterdir() if p.name.startswith("v-")]
    assert len(versions) == 1


def _expected_states(log: Path, initial: set[str]) -> tuple[set[str], set[str] | None]:
    """The live ids after the last completed change, and after the one in flight (if any)."""
    done = set(initial)
    pending: set[str] | None = None
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry["event"] == "begin":
            after = set(done)
            if entry["op"] == "remove":
                after -= set(entry["ids"])
            else:
                after |= set(entry["ids"])
            pending = after
        elif entry["event"] == "done" and pending is not None:
            done, pending = pending, None
    return done, pending


def test_writer_killed_at_any_moment_leaves_old_or_new_state(tmp_path: Path) -> None:
    path = built(tmp_path, [article(f"s{i}", f"seed article {i}") for i in range(30)])
    log = tmp_path / "log.jsonl"
    log.touch()
    rng = random.Random(3)
    live = {f"s{i}" for i in range(30)}
    for round_number in range(12):
        process = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(log), "30", str(round_number)]
        )
        time.sleep(rng.uniform(0.8, 2.0))  # the first ~0.7 s is Python starting up
        process.send_signal(signal.SIGKILL)
        process.wait()
        done, pending = _expected_states(log, live)
        with Recommender.open(path) as rec:  # opens and answers, with no manual step
            found = set(rec.ids())
            assert found in (done, pending), round_number
            assert rec.similar(sorted(found)[0], k=3)
        if found == pending:  # the change in flight was committed before the kill
            with log.open("a") as handle:
                handle.write(json.dumps({"event": "done", "time": 0}) + "\n")
    with Recommender.open(path, encoder=FakeEncoder()) as rec:
        rec.add([article("after", "after the crashes")])  # the next write recovers by itself
        version = rec.info().version
    segments = {p.name for p in (path / version).glob("seg-*.faiss")}
    with sqlite3.connect(path / version / "articles.sqlite") as db:
        recorded = {row[0] for row in db.execute("SELECT file FROM segments")}
    assert segments == recorded  # segments of killed writers are gone
    assert not [p for p in path.iterdir() if p.name.startswith(".build-")]


def test_readers_never_see_errors_or_removed_articles(tmp_path: Path, sample_index: Path) -> None:
    path = sample_index
    log = tmp_path / "log.jsonl"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(path), str(log), "6", "99"])
    rec = Recommender.open(path, auto_refresh=0.05, encoder=FakeEncoder())
    queries = ["a-1001", "a-2016", "a-3002", "a-1050", "a-2070"]
    seen: list[tuple[float, set[str]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for query in queries:
                started = time.time()
                try:
                    ids = {item.id for item in rec.similar(query, k=10)}
                    ids |= {item.id for item in rec.similar_to_text("storm ferry harbour", k=10)}
                except BaseException as exc:  # any error fails the test
                    errors.append(exc)
                    return
                seen.append((started, ids))

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        assert writer.wait(timeout=60) == 0
    finally:  # the readers stop whatever happens, so that a failure cannot hang the run
        stop.set()
        writer.kill()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    removed_at: dict[str, float] = {}
    pending: dict[str, object] | None = None
    added: set[str] = set()
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if entry["event"] == "begin":
            pending = entry
        elif pending is not None:
            if pending["op"] == "remove":
                for removed in pending["ids"]:  # type: ignore[union-attr]
                    removed_at[removed] = entry["time"]
            elif pending["op"] == "add":
                added |= set(pending["ids"])  # type: ignore[arg-type]
    assert removed_at and added and len(seen) > 100
    late = [(t, i) for t, ids in seen for i in ids if i in removed_at and t > removed_at[i]]
    assert late == []
    rec.refresh()
    for article_id in added - set(removed_at):
        assert article_id in rec
        title = rec.get(article_id).title
        # Found by its own text (the fake encoder's hashed words can tie a few articles at 1.0),
        # shown or as a copy of the article shown (the writer reuses titles).
        found = rec.similar_to_text(title, k=20)
        assert article_id in [i for item in found for i in (item.id, *item.copy_ids)]


class InterruptingEncoder(FakeEncoder):
    def encode(self, texts):
        raise KeyboardInterrupt  # Ctrl-C while embedding


def test_interrupted_add_leaves_the_index_as_it_was(sample_index: Path) -> None:
    path = sample_index
    rec = Recommender.open(path, encoder=InterruptingEncoder())
    before = (rec.info().generation, rec.ids())
    with pytest.raises(KeyboardInterrupt):
        rec.add([article("n1", "never embedded")])
    with Recommender.open(path, encoder=FakeEncoder()) as again:
        assert (again.info().generation, again.ids()) == before
        assert again.add([article("n1", "now embedded")]).added == 1  # lock was released


def test_many_small_adds_merge_segments(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compaction, "COMPACT_SEGMENTS", 3)
    path = sample_index
    reader = Recommender.open(path)
    writer = Recommender.open(path, encoder=FakeEncoder())
    for n in range(7):
        writer.add([article(f"n{n}", f"Harbour ferry timetable change number {n}")])
        if n == 2:
            assert reader.refresh()  # holds some of the rows that are merged later
    version = path / writer.info().version
    files = sorted(p.name for p in version.glob("seg-*.faiss"))
    with sqlite3.connect(version / "articles.sqlite") as db:
        recorded = sorted(row[0] for row in db.execute("SELECT file FROM segments"))
    assert files == recorded and len(files) <= 4  # merged, nothing left behind
    assert writer.info().generation == 8  # merging rewrites no row
    assert reader.refresh()
    with Recommender.open(path) as fresh:
        for article_id in ("n0", "n6", "a-3002"):
            assert reader.similar(article_id, k=5) == fresh.similar(article_id, k=5)
        assert reader.ids() == fresh.ids() and len(fresh) == 345
