"""Precomputed lists (storage/precomputed.py, write/precompute.py, read/held.py): a lookup
answers what a search would have."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SAMPLE, FakeEncoder, SampleCopy, article, sample_records
from typer.testing import CliRunner

from recommender import Ranking, Recommender, Settings
from recommender.cli import app
from recommender.errors import IndexWriteError, SettingsError, UnknownArticleError
from recommender.read import held as held_module
from recommender.read import pipeline as pipeline_module
from recommender.read import snapshot as snapshot_module
from recommender.results import to_json
from recommender.settings import RULES
from recommender.storage import precomputed as precomputed_module
from recommender.storage.layout import ARTICLES, current_version
from recommender.write import compaction
from recommender.write import precompute as precompute_module


def _build(path: Path, k: int = 10, **settings: Any) -> Path:
    Recommender.build_from_files(
        [SAMPLE],
        path,
        encoder=FakeEncoder(),
        settings=Settings(precomputed_k=k, **settings),
    )
    return path


@pytest.fixture
def pair(sample_copy: SampleCopy) -> tuple[Path, Path]:
    """The sample indexed twice, with precomputed lists and without any (each built once for
    the session, copied for each test: a test may change its copies)."""
    return sample_copy(name="listed"), sample_copy(Settings(precomputed_k=0), name="searched")


def _lists(index: Path) -> Path:
    found = precomputed_module.newest(current_version(index))
    assert found is not None
    return found


def _all(
    index: Path, k: int = 10, *, limit: int | None = None, **query: Any
) -> dict[str, list[Any]]:
    """Every article's list, each recommendation with its floats rounded to 9 places: pools of
    the same rows summed in another order (a changed index searches its parts one by one)
    differ in the last bits."""
    with Recommender.open(index) as rec:
        return {
            i: [
                replace(
                    r,
                    **{
                        name: round(getattr(r, name), 9)
                        for name in (
                            "score",
                            "similarity",
                            "recency_factor",
                            "category_factor",
                            "dense_similarity",
                            "lexical_similarity",
                        )
                    },
                )
                for r in rec.similar(i, k, **query)
            ]
            for i in rec.ids()[:limit]
        }


def _searching_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("searched instead of looking up")

    monkeypatch.setattr(pipeline_module, "candidates", refuse)


def test_a_build_writes_lists_that_answer_as_a_search_would(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, searched = pair
    assert _lists(listed).name == "precomputed-000000000001.bin"
    assert precomputed_module.newest(current_version(searched)) is None
    expected = {k: _all(searched, k) for k in (1, 3, 10)}
    _searching_fails(monkeypatch)
    for k in (1, 3, 10):
        assert _all(listed, k) == expected[k]
    assert sum(len(v) for v in expected[10].values()) > 0
    assert any(r.copies > 1 for v in expected[10].values() for r in v)  # copies kept too


def test_what_the_lists_do_not_hold_is_searched(pair: tuple[Path, Path]) -> None:
    listed, searched = pair
    for query in (
        {"k": 11},
        {"k": 25},
        {"k": 0},
        {"same_category": True},
        {"categories": ["business"]},
        {"since": "2024-01-01"},
        {"exclude": ["a-1002"]},
        {"same_language": True},
        {"half_life_days": 3.0},
        {"mmr_lambda": 0.5},
        {"recency_from": "now", "now": datetime(2026, 12, 1, tzinfo=timezone.utc)},
        {"ranking": replace(Settings().ranking, category_boost=0.3)},
    ):
        k = query.pop("k", 10)
        assert _all(listed, k, limit=80, **query) == _all(searched, k, limit=80, **query), query


def _change(index: Path) -> None:
    """Adds, an edit in place, a re-add with new text and removals, as a site makes them."""
    records = sample_records()
    with Recommender.open(index, encoder=FakeEncoder()) as rec:
        first = records[0]
        rec.add(
            [
                article(
                    "new-1",
                    str(first["title"]),
                    body=str(first.get("body", "")),
                    category=first.get("category"),  # type: ignore[arg-type]
                    published_at=first.get("published_at"),  # type: ignore[arg-type]
                ),
                article("new-2", "Central bank raises interest rates again", category="business"),
            ]
        )
        stored = rec.get(str(records[1]["id"]))
        rec.add([replace(stored, category="changed")])  # fields only: edited in place
        stored = rec.get(str(records[2]["id"]))
        rec.add([replace(stored, title=stored.title + " updated", body="Entirely new text.")])
        rec.remove([str(records[3]["id"]), str(records[4]["id"])])


def test_changes_since_the_lists_are_taken_into_account(pair: tuple[Path, Path]) -> None:
    listed, searched = pair
    for index in pair:
        _change(index)
    found = _all(listed)
    assert found == _all(searched)
    # The copy added of the first article is listed (with it) for articles related to it.
    assert any("new-1" in [r.id, *r.copy_ids] for v in found.values() for r in v)
    with Recommender.open(listed) as rec:
        assert "7 rows changed since (checked per query)" in rec.info().precomputed


def test_a_reader_sees_changes_made_by_another_process_after_it_opened(
    pair: tuple[Path, Path],
) -> None:
    readers = [Recommender.open(index) for index in pair]
    try:
        for index in pair:
            with Recommender.open(index, encoder=FakeEncoder()) as writer:
                writer.remove([str(sample_records()[5]["id"])])
        ids = readers[1].ids()
        assert [readers[0].similar(i) for i in ids] == [readers[1].similar(i) for i in ids]
    finally:
        for reader in readers:
            reader.close()


def test_lists_are_not_used_past_too_many_changes(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, searched = pair
    monkeypatch.setattr(held_module, "MAX_CHANGED", 1)
    for index in pair:
        _change(index)
    assert _all(listed) == _all(searched)
    with Recommender.open(listed) as rec:
        assert "more than 1 rows changed since: not used" in rec.info().precomputed


def test_compaction_computes_the_lists_again(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, searched = pair
    monkeypatch.setattr(compaction, "COMPACT_MIN_ROWS", 10)
    for index in pair:
        _change(index)
        with Recommender.open(index, encoder=FakeEncoder()) as rec:
            assert rec.remove([i for i in rec.ids() if i.startswith("a-1")][:90]).compacted
    assert _lists(listed).name == "precomputed-000000000001.bin"
    with Recommender.open(listed) as rec:
        assert "0 rows changed since" in rec.info().precomputed
    assert _all(listed) == _all(searched)


def test_a_new_ranking_stops_the_lists_being_used(pair: tuple[Path, Path]) -> None:
    listed, searched = pair
    for index in pair:
        version = current_version(index)
        manifest = json.loads((version / "manifest.json").read_text())
        manifest["settings"]["category_boost"] = 0.5
        manifest.pop("checksum", None)
        (version / "manifest.json").write_text(json.dumps(manifest))
    with Recommender.open(listed) as rec:
        assert "made with another ranking: not used" in rec.info().precomputed
    assert _all(listed) == _all(searched)


def test_storing_a_new_ranking_computes_the_lists_again(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, searched = pair
    for index in pair:
        _change(index)
        with Recommender.open(index) as rec:
            settings = rec.settings
            rec.store_settings(replace(settings, ranking=replace(settings.ranking, neighbours=3)))
    with Recommender.open(listed) as rec:
        assert rec.info().generation == 7  # the lists made at 6, then readers told
        assert "0 rows changed since" in rec.info().precomputed
    assert _lists(listed).name == "precomputed-000000000006.bin"  # the older one deleted
    assert len(list(current_version(listed).glob("precomputed-*"))) == 1
    expected = _all(searched)
    _searching_fails(monkeypatch)
    assert _all(listed) == expected


def _damage(path: Path, at: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[at : at + len(data)] = data
    path.chmod(0o644)
    path.write_bytes(bytes(raw))


def _array_end(path: Path, name: str) -> int:
    """Where an array of a lists' file ends (its last byte's offset plus one)."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + length])
    spec = header["arrays"][name]
    base = -(-(16 + length) // 64) * 64
    return (
        base + int(spec["offset"]) + int(np.prod(spec["shape"])) * np.dtype(spec["dtype"]).itemsize
    )


@pytest.mark.parametrize("array", ["records", "shown"])
def test_damaged_lists_are_never_used_and_check_reports_them(
    pair: tuple[Path, Path], array: str
) -> None:
    listed, searched = pair
    expected = _all(searched)
    path = _lists(listed)
    # Inside the last rows' records, or their pieces of JSON (read from SQLite instead).
    _damage(path, _array_end(path, array) - 200, b"\xff" * 8)
    assert _all(listed) == expected
    report = Recommender.check(listed)
    assert any(path.name in p and "are damaged" in p for p in report.problems)
    for broken in (b"NOTLISTS", b""):
        if broken:
            _damage(path, 0, broken)
        else:
            path.write_bytes(path.read_bytes()[:100])  # cut short
        assert _all(listed) == expected
        with Recommender.open(listed) as rec:
            assert rec.info().precomputed.startswith("not usable")
        assert any(path.name in p for p in Recommender.check(listed).problems)


def test_a_record_pointing_at_other_rows_is_refused(pair: tuple[Path, Path]) -> None:
    listed, _ = pair
    with Recommender.open(listed) as rec:
        found = rec.snapshot.precomputed
        assert found is not None
        first = found.listed(0)
        assert first is not None and len(first.heads)
        # Another row's record, offered as row 0's: its CRC is seeded with its own row.
        found._offsets = np.array(found._offsets)  # a writable copy of the mapped offsets
        found._offsets[0:2] = found._offsets[1:3]
        assert found.listed(0) is None


def test_a_symlinked_lists_file_is_ignored(pair: tuple[Path, Path], tmp_path: Path) -> None:
    listed, searched = pair
    path = _lists(listed)
    elsewhere = tmp_path / "elsewhere.bin"
    shutil.move(path, elsewhere)
    path.symlink_to(elsewhere)
    assert precomputed_module.newest(current_version(listed)) is None
    assert _all(listed) == _all(searched)


def _edit_behind(index: Path, article_id: str) -> None:
    """A stored article's title changed in SQLite by hand: its checksum no longer matches."""
    connection = sqlite3.connect(current_version(index) / ARTICLES)
    connection.execute("UPDATE articles SET title = 'edited' WHERE id = ?", (article_id,))
    connection.commit()
    connection.close()


def test_edited_rows_in_sqlite_are_caught_when_read(pair: tuple[Path, Path]) -> None:
    """A row edited by hand (not by a writer: no change recorded) is caught when it is read.
    A list shows the article as its piece of JSON holds it, checked against the row's
    checksum when the lists were written, as a kept article (``read.shown``) is shown; the
    row itself, read, and recommend check, report the damage."""
    listed, _ = pair
    query = str(sample_records()[0]["id"])
    with Recommender.open(listed) as rec:
        head = rec.similar(query)[0]
    _edit_behind(listed, head.id)
    with Recommender.open(listed) as rec:
        assert rec.similar(query)[0] == head  # from its piece, as written
        with pytest.raises(Exception, match="checksum"):
            rec.get(head.id)
    assert any("checksum" in p or "damaged" in p for p in Recommender.check(listed).problems)


def test_edited_rows_in_sqlite_are_caught_as_before_without_pieces(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists written before they held pieces of JSON: each article is read from SQLite."""
    listed, _ = pair
    path = _lists(listed)
    with Recommender.open(listed) as rec:
        expected = _all(listed)
        snapshot = rec.snapshot
        lists = snapshot.precomputed
        assert lists is not None and lists.has_pieces
        records = [bytes(lists.stored(row) or b"") for row in range(lists.rows)]
        ranking = snapshot.settings.ranking
        precomputed_module.write(
            snapshot.version,
            lists.generation,
            lists.k,
            lists.candidates,
            lists.walk,
            ranking,
            records,
            build=lists.build,
            ids=lists.ids,
        )
    assert _lists(listed) == path
    with Recommender.open(listed) as rec:
        found = rec.snapshot.precomputed
        assert found is not None and not found.has_pieces
    assert _all(listed) == expected
    query = str(sample_records()[0]["id"])
    _edit_behind(listed, expected[query][0].id)
    with Recommender.open(listed) as rec, pytest.raises(Exception, match="checksum"):
        rec.similar(query)


def test_pieces_hold_what_sqlite_does(pair: tuple[Path, Path]) -> None:
    """Every row's piece of JSON read back is what the row read from SQLite gives."""
    from recommender.read.shown import from_lists, shown_of
    from recommender.storage.table import listed_fields

    listed, _ = pair
    with Recommender.open(listed) as rec:
        snapshot = rec.snapshot
        rows = list(range(len(snapshot.columns.ids)))
        found, rest = from_lists(snapshot, rows)
        assert not rest and len(found) == len(rows)
        stored = snapshot.table.checked_rows(rows)
        for row, values in stored.items():
            assert found[row] == shown_of(snapshot, row, listed_fields(values))


def test_rows_changed_since_the_lists_are_read_from_sqlite(pair: tuple[Path, Path]) -> None:
    """A row edited or removed by a writer after the lists were written is not shown from
    its piece: what a list shows of it is its row as it is now."""
    from recommender.read.shown import from_lists

    listed, _ = pair
    with Recommender.open(listed, encoder=FakeEncoder()) as rec:
        ids = rec.ids()
        rows = [rec.snapshot.columns.row_of[i] for i in ids[:3]]
        edited = replace(rec.get(ids[1]), url="https://news.example/moved")
        assert rec.add([edited]).fields_only == 1
        rec.remove([ids[2]])
        snapshot = rec.snapshot
        assert rows[:2] == [snapshot.columns.row_of[i] for i in ids[:2]]  # edited in place
        found, rest = from_lists(snapshot, rows)
        assert rows[0] in found and rows[1] in rest and rows[2] in rest
        shown = snapshot.shown(rows)
        assert shown[rows[1]][4] == "https://news.example/moved" and rows[2] not in shown


@pytest.mark.parametrize("value", [-1, 101, True, 2.5, "10"])
def test_precomputed_k_is_checked(value: object) -> None:
    with pytest.raises(SettingsError, match="precomputed_k"):
        Settings(precomputed_k=value)  # type: ignore[arg-type]


def test_the_cli_builds_lists_or_none_and_info_says_so(
    tmp_path: Path, fake_default_model: None
) -> None:
    runner = CliRunner()
    for k, expected in (("0", "none (precomputed_k=0)"), ("4", "4 related articles for each")):
        index = tmp_path / f"index-{k}"
        result = runner.invoke(
            app, ["build-index", str(SAMPLE), "--index", str(index), "--precomputed-k", k]
        )
        assert result.exit_code == 0, result.output
        info = runner.invoke(app, ["info", "--index", str(index)])
        assert expected in info.output
    result = runner.invoke(
        app, ["build-index", str(SAMPLE), "--index", str(tmp_path / "x"), "--precomputed-k", "-3"]
    )
    assert result.exit_code != 0
    assert "precomputed_k must be a whole number >= 0" in result.output


def test_a_replica_gets_the_lists(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, searched = pair
    for index in pair:
        _change(index)
    replica = tmp_path / "replica"
    report = Recommender.replicate(listed, replica)
    assert report.copied
    assert _lists(replica).name == _lists(listed).name
    assert _all(replica) == _all(searched)
    with Recommender.open(replica) as rec:
        assert "rows changed since (checked per query)" in rec.info().precomputed


def test_lists_with_recency_from_now_are_not_made(tmp_path: Path) -> None:
    ranking = replace(Settings().ranking, recency_from="now")
    index = _build(tmp_path / "now", ranking=ranking)
    assert precomputed_module.newest(current_version(index)) is None
    with Recommender.open(index) as rec:
        assert rec.info().precomputed.startswith("none")


def test_precompute_makes_the_lists_current_again(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, searched = pair
    monkeypatch.setattr(held_module, "MAX_CHANGED", 1)
    for index in pair:
        _change(index)
    with Recommender.open(listed) as rec:
        assert "not used" in rec.info().precomputed
        done: list[tuple[int, int]] = []
        status = rec.precompute(progress=lambda d, t: done.append((d, t)))
        assert status.endswith("0 rows changed since (checked per query)")
        assert done[-1] == (341, 341)  # every row, the removed ones too (with no list)
    assert _lists(listed).name == "precomputed-000000000005.bin"
    expected = _all(searched)
    _searching_fails(monkeypatch)
    assert _all(listed) == expected


def test_the_precompute_command(pair: tuple[Path, Path]) -> None:
    listed, _ = pair
    _change(listed)
    runner = CliRunner()
    result = runner.invoke(app, ["precompute", "--index", str(listed)])
    assert result.exit_code == 0, result.output
    assert "0 rows changed since" in result.output
    help_text = runner.invoke(app, ["precompute", "--help"]).output
    assert f"{held_module.MAX_CHANGED:,}" in help_text
    result = runner.invoke(app, ["precompute", "--index", str(listed.parent / "missing")])
    assert result.exit_code != 0


def test_lists_computed_by_worker_processes_are_the_same(
    tmp_path: Path, sample_copy: SampleCopy, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = sample_copy(name="serial")
    monkeypatch.setattr(precompute_module, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(precompute_module, "CHUNK", 100)
    monkeypatch.setattr(precompute_module, "workers", lambda: 2)
    parallel = _build(tmp_path / "parallel")
    assert _unbound(_lists(parallel)) == _unbound(_lists(serial))


def _unbound(path: Path) -> tuple[dict[str, Any], bytes]:
    """A lists' file but its build (random, one per build) and the header checksum over it:
    the header's other fields and every byte after it."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + length])
    del header["build"], header["stamp"], header["checksum"]
    return header, raw[-(-(16 + length) // 64) * 64 :]


def test_lists_of_an_index_written_before_they_had_one_name_are_still_used(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Indexes written before the lists were named "precomputed" hold answers-*.bin."""
    listed, searched = pair
    new = _lists(listed)
    old = new.with_name(new.name.replace("precomputed-", "answers-"))
    new.rename(old)
    assert _lists(listed) == old
    expected = _all(searched)
    with Recommender.open(listed) as rec:
        assert rec.info().precomputed.startswith("10 related articles")
    _searching_fails(monkeypatch)
    assert _all(listed) == expected
    assert Recommender.check(listed).sound
    new.write_bytes(old.read_bytes())  # both names at one generation: the new one is read
    assert _lists(listed) == new


def test_precompute_on_an_index_written_before_the_new_name_replaces_its_lists(
    pair: tuple[Path, Path],
) -> None:
    """An old index's answers-G.bin is replaced by precomputed-G.bin, not kept beside it: the
    previous code wrote over the file of that generation, and the old one would only take
    space (half a GB at a million articles) until the next update."""
    listed, _ = pair
    new = _lists(listed)
    old = new.with_name(new.name.replace("precomputed-", "answers-"))
    new.rename(old)
    with Recommender.open(listed) as rec:
        rec.precompute()
    assert _lists(listed) == new
    assert not old.exists()
    assert Recommender.check(listed).sound


def test_a_folder_named_as_lists_does_not_stop_them_being_written(
    pair: tuple[Path, Path],
) -> None:
    """The lists' clean-up deletes files only: a folder under an older lists' name is left
    alone instead of failing the write after the new lists were written."""
    listed, _ = pair
    stray = current_version(listed) / "answers-000000000000.bin"
    stray.mkdir()
    with Recommender.open(listed) as rec:
        rec.precompute()
    assert stray.is_dir()
    assert _lists(listed).name == "precomputed-000000000001.bin"


def test_lists_a_killed_writer_left_unfinished_are_deleted_by_the_next_write(
    pair: tuple[Path, Path],
) -> None:
    listed, _ = pair
    version = current_version(listed)
    left = version / ".precomputed-000000000002.bin.4242"  # as a kill -9 mid-write leaves it
    left.write_bytes(b"RECANS01" + b"\0" * 100)
    with Recommender.open(listed) as rec:
        assert rec.info().precomputed.startswith("10 related articles")  # never read
    with Recommender.open(listed, encoder=FakeEncoder()) as rec:
        rec.add([article("new-1", "Harbour cranes stand still as the storm goes on")])
    assert not left.exists()
    assert Recommender.check(listed).sound


def test_worker_processes_leave_an_unguarded_script_alone(
    tmp_path: Path, sample_copy: SampleCopy
) -> None:
    """A script that builds without an ``if __name__ == "__main__"`` guard: the workers must
    not run it again (as multiprocessing's spawned ones would)."""
    script = tmp_path / "build.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from conftest import SAMPLE, FakeEncoder\n"
        "from recommender import Recommender\n"
        "from recommender.write import precompute as answers\n"
        "answers.PARALLEL_MIN_ROWS, answers.CHUNK = 1, 100\n"
        "answers.workers = lambda: 2\n"
        f"Recommender.build_from_files([SAMPLE], {str(tmp_path / 'index')!r}, "
        "encoder=FakeEncoder())\n"
        "print('built once')\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("built once") == 1
    assert _unbound(_lists(tmp_path / "index")) == _unbound(_lists(sample_copy(name="x")))


def test_a_failing_worker_fails_the_build_and_leaves_the_index(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, _ = pair
    before = _all(listed)
    monkeypatch.setattr(precompute_module, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(precompute_module, "CHUNK", 100)
    monkeypatch.setattr(precompute_module, "workers", lambda: 2)
    monkeypatch.setattr(precompute_module, "WORKER", "import sys; sys.exit('out of memory')")
    with pytest.raises(IndexWriteError, match=r"stopped \(exit status 1\): out of memory"):
        Recommender.build_from_files([SAMPLE], listed, encoder=FakeEncoder())
    assert _all(listed) == before
    assert Recommender.check(listed).sound


def test_precompute_computes_only_the_lists_that_changes_touched(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, searched = pair
    for index in pair:
        with Recommender.open(index, encoder=FakeEncoder()) as rec:
            # Unlike any other: among the candidates of few articles, if any.
            rec.add([article("odd-1", "Xylophone quartzite zeppelin")])
    computed: list[int] = []
    original = precompute_module.compute_row

    def counting(snapshot: Any, row: int, ranking: Any, k: int) -> bytes:
        computed.append(row)
        return original(snapshot, row, ranking, k)

    monkeypatch.setattr(precompute_module, "compute_row", counting)
    with Recommender.open(listed) as rec:
        rec.precompute()
    assert 338 in computed  # the added article's own list
    assert len(computed) < 338 / 4  # and those of the few it is a candidate of
    expected = _all(searched)
    candidates = pipeline_module.candidates
    _searching_fails(monkeypatch)
    assert _all(listed) == expected
    monkeypatch.setattr(pipeline_module, "candidates", candidates)
    for index in pair:
        _change(index)  # changes touching many lists
    computed.clear()
    with Recommender.open(listed) as rec:
        rec.precompute()
    assert len(computed) > 338 / 2
    assert _all(listed) == _all(searched)


def _edit_header(path: Path, change: Any) -> None:
    """Rewrites the lists' JSON header with ``change`` applied, its checksum left as it was."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + length])
    change(header)
    encoded = json.dumps(header).encode()
    assert len(encoded) <= length
    path.chmod(0o644)
    path.write_bytes(raw[:16] + encoded.ljust(length) + raw[16 + length :])


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.update(k=20),  # lists of 10 would answer similar(id, 15)
        lambda h: h.update(generation=h["generation"] + 4),  # the changes since hidden
        lambda h: h["ranking"].update(category_boost=0.5),
        lambda h: h.update(candidates=h["candidates"] - 1),
        lambda h: h.update(rows=h["rows"] - 1),
    ],
)
def test_an_edited_header_makes_the_lists_unusable(pair: tuple[Path, Path], change: Any) -> None:
    listed, searched = pair
    for index in pair:
        _change(index)
    with Recommender.open(listed) as rec:
        assert rec.info().generation == 5
    path = _lists(listed)
    _edit_header(path, change)
    for k in (10, 15):
        assert _all(listed, k) == _all(searched, k)
    with Recommender.open(listed) as rec:
        assert rec.info().precomputed.startswith("not usable")
    assert any(path.name in p for p in Recommender.check(listed).problems)


def test_lists_of_a_graph_search_hold_until_removals_widen_its_walk(tmp_path: Path) -> None:
    """Removing many rows, even rows no query is near, widens an HNSW walk (efSearch / share):
    what a search finds then is not what the lists hold."""
    rng = random.Random(7)
    words = [f"w{i}" for i in range(400)]
    near = [
        article(f"x{i}", " ".join(rng.choices(words, k=6)), body=" ".join(rng.choices(words, k=20)))
        for i in range(600)
    ]
    far = [
        article(f"z{i}", " ".join(rng.choices(["zq", "zr", "zs", "zt"], k=6))) for i in range(420)
    ]
    settings = Settings(
        vector_search="hnsw",
        hnsw_m=2,
        hnsw_ef_construction=2,
        hnsw_ef_search=1,
        ranking=replace(Ranking(), candidates=10, lexical_weight=0.0, lexical_weight_short=0.0),
    )
    pair = []
    for name, k in (("listed", 10), ("searched", 0)):
        path = tmp_path / name
        Recommender.build(
            near + far, path, encoder=FakeEncoder(), settings=replace(settings, precomputed_k=k)
        )
        pair.append(path)
    listed, searched = pair
    # Added rows are searched beside the graph, exhaustively: the lists still hold, checked.
    for path in pair:
        with Recommender.open(path, encoder=FakeEncoder()) as rec:
            rec.add([article("y1", "w1 w2 w3 w4 w5 w6"), article("y2", "zq zr zs zt")])
    assert _all(listed) == _all(searched)
    with Recommender.open(listed) as rec:
        assert "2 rows changed since (checked per query)" in rec.info().precomputed
    # A removal leaves the walk as it was (FAISS filters what a walk returns, not where it
    # goes) until removed rows are a share that widens it (efSearch / share).
    for path in pair:
        with Recommender.open(path, encoder=FakeEncoder()) as rec:
            rec.remove([far[0].id])
    assert _all(listed) == _all(searched)
    with Recommender.open(listed) as rec:
        assert "3 rows changed since (checked per query)" in rec.info().precomputed
    for path in pair:
        with Recommender.open(path, encoder=FakeEncoder()) as rec:
            rec.remove([a.id for a in far])
    assert _all(listed) == _all(searched)
    with Recommender.open(listed) as rec:
        assert "the graph search walks wider: not used" in rec.info().precomputed
        rec.precompute()
        assert "0 rows changed since" in rec.info().precomputed
    assert _all(listed) == _all(searched)


def test_a_reader_not_refreshed_since_removals_elsewhere_searches(tmp_path: Path) -> None:
    """Rows removed since a reader's snapshot are dropped from its search, which asks FAISS for
    as many more rows: of copies with equal cosines at the cut it may keep others than the
    list holds, even when every removed row is far from the query."""
    rng = random.Random(3)
    words = [f"w{i}" for i in range(30)]
    near = []
    for i in range(120):
        text = " ".join(rng.choices(words, k=3))
        for j in range(rng.choice([1, 1, 5, 12])):
            near.append(article(f"x{i}-{j}", text, body=text, url=f"https://e.com/{i}/{j}"))
    far = [article(f"z{i}", "zq zr zs", body="zq zr zs") for i in range(30)]
    settings = Settings(ranking=replace(Ranking(), candidates=10))
    pair = []
    for name, k in (("listed", 10), ("searched", 0)):
        path = tmp_path / name
        Recommender.build(
            near + far, path, encoder=FakeEncoder(), settings=replace(settings, precomputed_k=k)
        )
        pair.append(path)
    readers = [Recommender.open(path) for path in pair]
    try:
        for path in pair:
            with Recommender.open(path, encoder=FakeEncoder()) as writer:
                writer.remove([a.id for a in far])
        ids = readers[1].ids()
        assert [[r.id for r in readers[0].similar(i)] for i in ids] == [
            [r.id for r in readers[1].similar(i)] for i in ids
        ]
    finally:
        for reader in readers:
            reader.close()
    assert _all(pair[0]) == _all(pair[1])  # refreshed: the lists are used again


# -- lists bound to their build ---------------------------------------------------------------


def _reversed_sample(folder: Path) -> Path:
    """The sample's articles in the opposite order, as a file to build from."""
    path = folder / "reversed.jsonl"
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(reversed(lines)) + "\n", encoding="utf-8")
    return path


def _put(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target``: a derived file of another index copied in by hand."""
    target.unlink(missing_ok=True)
    shutil.copyfile(source, target)


IGNORED_LISTS = "queries search instead (slower); delete it (recommend precompute writes the "
IGNORED_LISTS += "version's own)"


@pytest.mark.parametrize("order", ["reversed", "same"])
def test_lists_of_another_build_of_the_same_articles_are_ignored(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """Lists name rows by number: another build's, even of the same articles, would answer
    with the articles of its rows (in another order: others). Bound to their build, they are
    never used, and check says which file it ignored and why."""
    listed, searched = pair
    other = tmp_path / "other"
    articles = _reversed_sample(tmp_path) if order == "reversed" else SAMPLE
    Recommender.build_from_files(
        [articles], other, encoder=FakeEncoder(), settings=Settings(precomputed_k=10)
    )
    expected = _all(searched)
    path = _lists(listed)
    _put(_lists(other), path)
    assert _all(listed) == expected  # searched, not the other build's lists
    with Recommender.open(listed) as rec:
        status = rec.info().precomputed
    assert status.startswith(f"not usable ({path.name}: computed for another build (")
    report = Recommender.check(listed)
    assert not report.sound and len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"ignored {path.name}: computed for another build (")
    assert report.problems[0].endswith(IGNORED_LISTS)
    with Recommender.open(listed) as rec:
        rec.precompute()  # what check advises: the version's own lists again
    assert Recommender.check(listed).sound
    _searching_fails(monkeypatch)
    assert _all(listed) == expected


def test_cli_check_says_which_lists_it_ignored_and_fails(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    listed, _ = pair
    other = _build(tmp_path / "other")
    path = _lists(listed)
    _put(_lists(other), path)
    result = CliRunner().invoke(app, ["check", "--index", str(listed)])
    assert result.exit_code == 1
    assert f"problem: ignored {path.name}: computed for another build (" in result.output
    # Such a file costs speed, not answers: no rebuild is asked for.
    assert "queries do not use those files; delete them, or run recommend precompute" in (
        result.output
    )
    assert "build it again" not in result.output
    assert Recommender.check(listed).ignored_files == 1


def test_lists_of_the_version_before_a_compaction_are_ignored(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compaction renumbers rows and makes a new build: the old version's lists, copied into
    the new one under the name of its own, hold other rows."""
    listed, searched = pair
    monkeypatch.setattr(compaction, "COMPACT_MIN_ROWS", 10)
    old = _lists(listed).read_bytes()
    for index in pair:
        _change(index)
        with Recommender.open(index, encoder=FakeEncoder()) as rec:
            assert rec.remove([i for i in rec.ids() if i.startswith("a-1")][:90]).compacted
    path = _lists(listed)
    assert path.name == "precomputed-000000000001.bin"  # the same name as the old one's
    path.unlink()
    path.write_bytes(old)
    assert _all(listed) == _all(searched)
    problems = Recommender.check(listed).problems
    assert len(problems) == 1 and problems[0].startswith(
        f"ignored {path.name}: computed for another build ("
    )


def test_lists_follow_their_build_into_and_out_of_a_replica(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica's database is a copy of its source's: it uses the lists copied with it, which
    hold in the source too while its database names them (what changed since is checked per
    query); once the source computes new ones, neither holds where the other's database
    names another."""
    listed, searched = pair
    replica = tmp_path / "replica"
    Recommender.replicate(listed, replica)
    before = _all(searched)
    with monkeypatch.context() as patch:
        _searching_fails(patch)
        assert _all(replica) == before  # the copied lists are used
    for index in pair:
        _change(index)
    own = current_version(replica) / "precomputed-000000000001.bin"
    _put(own, _lists(listed))  # the replica's lists, in the source: the same file
    assert _all(listed) == _all(searched)
    with Recommender.open(listed) as rec:
        assert "7 rows changed since (checked per query)" in rec.info().precomputed
    assert Recommender.check(listed).sound
    with Recommender.open(listed) as rec:
        rec.precompute()
    later = _lists(listed)
    assert later.name != own.name
    generation = int(later.name[len("precomputed-") : -len(".bin")])
    # The source's later lists, copied into the replica: ignored, its own used.
    _put(later, current_version(replica) / later.name)
    assert _all(replica) == before
    assert Recommender.check(replica).problems == [
        f"ignored {later.name}: computed at generation {generation}, after this version's 1; "
        + IGNORED_LISTS
    ]
    # The replica's lists in the source again, in place of the new ones: no longer named.
    later.unlink()
    _put(own, current_version(listed) / own.name)
    assert _all(listed) == _all(searched)
    problems = Recommender.check(listed).problems
    assert problems == [f"ignored {own.name}: {NOT_NAMED}; {IGNORED_LISTS}"]


NOT_NAMED = (
    "not the precomputed lists' file this version's database names (one it replaced, or one "
    "of another copy of this build, updated apart)"
)


def test_lists_of_a_copy_of_the_build_updated_apart_are_ignored(
    pair: tuple[Path, Path], sample_copy: SampleCopy
) -> None:
    """Two copies of one build (a staging and a live copy, say) updated apart: the same
    build and row numbers, other rows behind them. Only the lists a version's own database
    names are used."""
    listed, searched = pair
    twin = sample_copy(name="twin")
    with Recommender.open(twin, encoder=FakeEncoder()) as rec:
        rec.add([article("twin-1", "Harbour cranes stand still as the storm goes on")])
        rec.remove(["a-1003"])
        rec.precompute()
    for index in pair:
        with Recommender.open(index, encoder=FakeEncoder()) as rec:
            rec.add([article("other-1", "Central bank raises interest rates again")])
            rec.add([article("other-2", "Orchestra opens its winter season")])
            rec.remove(["a-1002"])
    theirs = _lists(twin)
    _put(theirs, current_version(listed) / theirs.name)
    assert _all(listed) == _all(searched)
    assert Recommender.check(listed).problems == [
        f"ignored {theirs.name}: {NOT_NAMED}; {IGNORED_LISTS}"
    ]


def _rewrite_header(path: Path, change: Any) -> None:
    """Rewrites the lists' JSON header with ``change`` applied and its checksum made anew,
    as a writer would have written it."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + length])
    header.pop("checksum")
    change(header)
    header["checksum"] = precomputed_module.header_checksum(header)
    encoded = json.dumps(header).encode()
    assert len(encoded) <= length
    path.chmod(0o644)
    path.write_bytes(raw[:16] + encoded.ljust(length) + raw[16 + length :])


def test_lists_written_before_they_were_bound_are_ignored_until_precompute(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous version of recommender bound its lists to nothing: wrong answers are
    worse than slower ones, so they are not used; check notes it (not a problem), and
    ``recommend precompute`` writes bound ones."""
    listed, searched = pair
    path = _lists(listed)
    _rewrite_header(path, lambda h: [h.pop("build"), h.pop("stamp"), h.pop("ids")])
    expected = _all(searched)
    assert _all(listed) == expected
    older = "written by an earlier version of recommender, without the build it was computed for"
    with Recommender.open(listed) as rec:
        assert rec.info().precomputed == f"not usable ({path.name}: {older}): every query searches"
    report = Recommender.check(listed)
    assert report.sound
    assert report.notes == [
        f"ignored {path.name}: {older}; queries search instead (slower) until recommend "
        "precompute writes it again"
    ]
    with Recommender.open(listed) as rec:
        rec.precompute()
    assert Recommender.check(listed).notes == []
    _searching_fails(monkeypatch)
    assert _all(listed) == expected


def test_a_version_without_a_build_id_gets_one_from_precompute(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version written before builds had an id: no derived file is bound to it, so none is
    used; ``recommend precompute`` records an id and writes its image and lists anew."""
    listed, searched = pair
    with sqlite3.connect(current_version(listed) / ARTICLES) as db:
        db.execute("DELETE FROM state WHERE key = 'build'")
    expected = _all(searched)
    assert _all(listed) == expected
    with Recommender.open(listed) as rec:
        assert rec.snapshot.build is None and not rec.snapshot.from_image
        assert "this version records none" in rec.info().precomputed
    assert len(Recommender.check(listed).problems) == 2  # the image and the lists
    with Recommender.open(listed) as rec:
        rec.precompute()
    assert Recommender.check(listed).sound
    with Recommender.open(listed) as rec:
        assert rec.snapshot.build is not None and rec.snapshot.from_image
    _searching_fails(monkeypatch)
    assert _all(listed) == expected


def test_a_symlinked_lists_file_is_reported_by_check(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Even one to lists of this very build: only files the engine wrote are read."""
    listed, searched = pair
    path = _lists(listed)
    elsewhere = tmp_path / "elsewhere.bin"
    shutil.move(path, elsewhere)
    path.symlink_to(elsewhere)
    assert _all(listed) == _all(searched)
    assert Recommender.check(listed).problems == [
        f"ignored {path.name}: a symbolic link, never read (only files the engine wrote are); "
        "delete it"
    ]


@pytest.mark.parametrize("damage", ["truncated", "a record edited", "a header edited"])
def test_damaged_lists_of_the_right_build_are_ignored_or_their_rows_searched(
    pair: tuple[Path, Path], damage: str
) -> None:
    listed, searched = pair
    path = _lists(listed)
    raw = path.read_bytes()
    path.chmod(0o644)
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "a record edited":
        _damage(path, len(raw) - 200, b"\x00\x01" * 4)
    else:
        _edit_header(path, lambda h: h.update(rows=h["rows"] - 1))
    assert _all(listed) == _all(searched)
    problems = Recommender.check(listed).problems
    assert len(problems) == 1
    if damage == "a record edited":
        assert problems[0].startswith(f"{path.name}: the lists of row ")
    else:
        assert problems[0].startswith(f"ignored {path.name}: damaged (")


def test_lists_made_by_older_ranking_rules_are_not_used(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same ranking settings, but the rules of rerank.py changed since the lists were made.
    listed, searched = pair
    monkeypatch.setattr(precomputed_module, "RULES", RULES + 1)
    monkeypatch.setattr(snapshot_module, "RULES", RULES + 1)
    with Recommender.open(listed) as rec:
        assert "made by older ranking rules: not used" in rec.info().precomputed
        first = rec.ids()[0]
        rec.similar(first)
        assert (rec.answers().precomputed, rec.answers().searched) == (0, 1)
    monkeypatch.setattr(precomputed_module, "RULES", RULES)
    with Recommender.open(listed) as rec:
        rec.similar(first)
        assert rec.answers().precomputed == 1  # the same lists, under the rules they were made by
    assert _all(listed) == _all(searched)


def _json_checked(rec: Recommender, ids: list[str], k: int) -> int:
    """``lists.json`` of each id against ``to_json(similar)``, each counted as a precomputed
    answer; how many lists held."""
    held = 0
    for article_id in ids:
        before = rec.answers().precomputed
        found = rec.lists.json(article_id, k)
        if found is not None:
            held += 1
            assert rec.answers().precomputed == before + 1
            assert found == to_json(rec.similar(article_id, k))
    return held


def test_lists_json_is_what_similar_writes(pair: tuple[Path, Path]) -> None:
    """``Recommender.lists.json`` (the HTTP service's hot read) writes byte for byte what
    ``to_json(similar(...))`` does, before and after overrides, an edit and a removal."""
    listed, searched = pair
    with Recommender.open(listed, encoder=FakeEncoder()) as rec:
        ids = rec.ids()
        for k in (1, 5, 10):
            assert _json_checked(rec, ids, k) == len(ids)
        assert rec.lists.json(ids[0], 0) is None  # a list of none: ``similar``'s to answer
        assert rec.lists.json(ids[0], 11) is None  # more than the lists hold
        with pytest.raises(UnknownArticleError):
            rec.lists.json("no-such-article", 10)
        first = rec.similar(ids[1], 3)
        rec.overrides.pin(ids[0], ids[-1], position=2)
        rec.overrides.block(ids[1], first[0].id)
        rec.overrides.hide(ids[3])
        rec.add([replace(rec.get(ids[4]), url="https://news.example/moved", tags=("a", "é"))])
        rec.remove([ids[5]])
        alive = rec.ids()
        assert _json_checked(rec, alive, 10) > len(alive) // 2
        # The article edited, pinned into a list that still holds: shown as it is now.
        query = next(i for i in alive if i != ids[4] and rec.lists.json(i, 10) is not None)
        rec.overrides.pin(query, ids[4], position=1)
        pinned = rec.lists.json(query, 10)
        assert pinned == to_json(rec.similar(query, 10))
        assert pinned is not None and '"url": "https://news.example/moved"' in pinned
    with Recommender.open(searched) as rec:
        assert rec.lists.json(rec.ids()[0], 10) is None  # no lists


def test_check_reports_pieces_that_differ_from_the_stored_rows(pair: tuple[Path, Path]) -> None:
    """A row edited outside the engine with its checksum made again (so SQLite's rows are
    sound): the lists' pieces still show it as it was, and recommend check says so."""
    from recommender.storage.table import row_checksum, select_columns

    listed, _ = pair
    assert not Recommender.check(listed).problems
    target = str(sample_records()[2]["id"])
    connection = sqlite3.connect(current_version(listed) / ARTICLES)
    connection.execute("UPDATE articles SET source = 'Edited By Hand' WHERE id = ?", (target,))
    values = connection.execute(
        f"SELECT {select_columns(True)} FROM articles WHERE id = ? AND removed = 0", (target,)
    ).fetchone()
    connection.execute(
        "UPDATE row_checksums SET crc = ? WHERE row = ?", (row_checksum(values), values[0])
    )
    connection.commit()
    connection.close()
    problems = Recommender.check(listed).problems
    assert any(
        _lists(listed).name in p and "does not match the stored articles" in p and target in p
        for p in problems
    ), problems
