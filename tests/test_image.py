"""The image of a version: what a reader holds, mapped instead of read row by row."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEncoder, article

from recommender import Recommender
from recommender.read.snapshot import Snapshot, _differences
from recommender.storage import image as image_module
from recommender.storage.layout import ARTICLES, current_version


def _image(index: Path) -> Path:
    found = image_module.newest(current_version(index))
    assert found is not None
    return found[1]


def _agree(index: Path) -> None:
    """The snapshot opened from the image is the one read whole from SQLite."""
    version = current_version(index)
    mapped = Snapshot.of_version(index, version)
    plain = Snapshot.of_version(index, version, use_image=False)
    try:
        assert _differences(mapped, plain) == []
        assert mapped.columns.row_of == plain.columns.row_of
    finally:
        mapped.close()
        plain.close()


def _answers(index: Path, ids: list[str]) -> list[list[tuple[str, float]]]:
    with Recommender.open(index) as rec:
        return [[(r.id, round(r.score, 6)) for r in rec.similar(i, k=5)] for i in ids]


def test_a_build_writes_an_image_that_open_maps(sample_index: Path) -> None:
    path = _image(sample_index)
    assert path.name == "image-000000000001.bin"
    _agree(sample_index)
    with Recommender.open(sample_index) as rec:
        days = rec.snapshot.columns.published_days
        assert not days.flags.writeable  # a view of the mapped file, not a copy


def test_open_applies_what_changed_since_the_image(sample_index: Path) -> None:
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("new-1", "Central bank raises interest rates", category="business")])
        stored = rec.get("a-1001")
        rec.add([article("a-1001", stored.title, body=stored.body, category="changed")])
        rec.remove(["a-1002"])
        ids = rec.ids()
    _agree(sample_index)
    with Recommender.open(sample_index) as rec:
        assert rec.ids() == ids and "a-1002" not in rec
        assert rec.get("a-1001").category == "changed"
        assert rec.similar("new-1", k=3)


def test_answers_are_the_same_with_and_without_the_image(sample_index: Path) -> None:
    ids = ["a-1001", "a-2001", "a-4003"]
    with_image = _answers(sample_index, ids)
    _image(sample_index).unlink()
    assert _answers(sample_index, ids) == with_image


@pytest.mark.parametrize(
    "damage",
    ["flip a byte", "truncate", "bad header", "empty", "other lexicon"],
)
def test_a_damaged_image_is_ignored_and_check_says_so(sample_index: Path, damage: str) -> None:
    ids = ["a-1001", "a-2001"]
    expected = _answers(sample_index, ids)
    path = _image(sample_index)
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[-100] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "bad header":
        data[20:30] = b"{{{{{{{{{{"
    elif damage == "empty":
        data = bytearray()
    else:
        data = data.replace(b'"lexicon_size": ', b'"lexicon_size": 1', 1)
    path.write_bytes(bytes(data))
    assert _answers(sample_index, ids) == expected
    report = Recommender.check(sample_index)
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"ignored {path.name}: damaged (")
    assert "opening reads every row instead (slower)" in report.problems[0]


def test_an_image_of_a_later_generation_is_not_used(sample_index: Path) -> None:
    """One named as a later generation than the version's (its header saying another) or
    made at one: copied from a later state of the version, or renamed by hand."""
    path = _image(sample_index)
    version = current_version(sample_index)
    later = path.with_name(image_module.image_name(99))
    path.rename(later)
    snapshot = Snapshot.of_version(sample_index, version)
    try:
        assert snapshot.columns.published_days.flags.writeable  # read from SQLite
        assert snapshot.image_ignored == (
            f"{later.name}: renamed (its name says generation 99, its header 1)"
        )
        whole = image_module.lexical_whole(snapshot.lexical, snapshot.lexicon_size)
        assert snapshot.build is not None
        image_module.write_image(
            version, 99, snapshot.columns, whole, snapshot.lexicon_size, snapshot.build
        )
    finally:
        snapshot.close()
    snapshot = Snapshot.of_version(sample_index, version)
    try:
        assert snapshot.columns.published_days.flags.writeable
        assert snapshot.image_ignored == (
            f"{later.name}: computed at generation 99, after this version's 1"
        )
    finally:
        snapshot.close()
    assert Recommender.check(sample_index).problems == [
        f"ignored {later.name}: computed at generation 99, after this version's 1; opening "
        "reads every row instead (slower); delete it (recommend precompute writes the "
        "version's own)"
    ]


def test_articles_edited_outside_the_engine_are_reported(sample_index: Path) -> None:
    with sqlite3.connect(current_version(sample_index) / ARTICLES) as db:
        db.execute("UPDATE articles SET category = 'edited' WHERE id = 'a-1001'")
        db.execute(
            "DELETE FROM row_checksums WHERE row = (SELECT row FROM articles WHERE id = 'a-1001')"
        )
    report = Recommender.check(sample_index)
    assert f"{_image(sample_index).name} does not match the stored articles (categories)" in (
        report.problems
    )


def test_ids_with_line_breaks_are_kept(sample_index: Path) -> None:
    """Articles read now cannot have one (control characters are refused), but an image must
    hold any id a version stores: it falls back to offsets."""
    version = current_version(sample_index)
    snapshot = Snapshot.of_version(sample_index, version, use_image=False)
    try:
        ids = list(snapshot.columns.ids)
        ids[0] = "one\nwith a break"
        columns = replace(snapshot.columns, ids=ids)
        whole = image_module.lexical_whole(snapshot.lexical, snapshot.lexicon_size)
        assert snapshot.build is not None
        later = snapshot.generation + 1
        path = image_module.write_image(
            version, later, columns, whole, snapshot.lexicon_size, snapshot.build
        )
        loaded = image_module.load_image(
            path, snapshot.lexicon_size, snapshot.build, later, len(ids)
        )
        assert loaded[1].ids == ids and loaded[1].row_of["one\nwith a break"] == 0
        assert not _image(sample_index).name.endswith("01.bin")  # the older image: deleted
    finally:
        snapshot.close()


def test_an_empty_index_has_an_image(tmp_path: Path) -> None:
    index = tmp_path / "index"
    Recommender.build([], index, encoder=FakeEncoder())
    _agree(index)
    with Recommender.open(index) as rec:
        assert len(rec) == 0


def test_rows_are_kept_as_numbers(sample_index: Path) -> None:
    version = current_version(sample_index)
    snapshot = Snapshot.of_version(sample_index, version)
    try:
        assert snapshot.columns.title_codes.dtype == np.int64
        assert snapshot.lexical[0].by_term.shape[0] == len(snapshot.columns.ids)
    finally:
        snapshot.close()


def test_a_new_image_of_an_image_and_the_updates_since(sample_index: Path) -> None:
    """The image of a snapshot that was itself opened from an image and then updated: its
    TF-IDF parts (mapped, then read from SQLite) are joined into one."""
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("new-1", "Storm closes the harbour for a second day")])
        rec.add([article("new-2", "Harbour reopens after the storm")])
    snapshot = Snapshot.load(sample_index)
    try:
        assert len(snapshot.lexical) >= 2  # the image's part and the rows added since
        path = snapshot.save_image()
        assert path.name == image_module.image_name(snapshot.generation)
    finally:
        snapshot.close()
    assert [p.name for p in current_version(sample_index).glob("image-*.bin")] == [path.name]
    _agree(sample_index)
    with Recommender.open(sample_index) as rec:
        assert rec.snapshot.generation == snapshot.generation
        assert not rec.snapshot.columns.published_days.flags.writeable  # from the new image
        assert "new-2" in {r.id for r in rec.similar("new-1", k=3)}


def test_row_map_scans_first_then_builds_a_dict() -> None:
    from recommender.storage.columns import RowMap

    ids = ["a", "b", "a", "c", "d"]
    alive = np.array([False, True, True, True, False])  # row 0 replaced by row 2, d removed
    rows = RowMap(ids, alive)
    assert rows["a"] == 2 and rows["b"] == 1  # scanned
    assert rows._map is None
    assert rows["c"] == 3  # built now
    assert rows._map == {"b": 1, "a": 2, "c": 3}
    fresh = RowMap(ids, alive)
    assert "d" not in fresh and "zz" not in fresh  # a removed and an unknown id, scanned
    with pytest.raises(KeyError):
        fresh["d"]
    assert dict(fresh) == {"b": 1, "a": 2, "c": 3} and len(fresh) == 3


def test_a_refresh_keeps_the_id_map_unbuilt(sample_index: Path) -> None:
    """Applying a write to columns opened from an image needs no dict of every id (at a
    million articles building one costs about 0.2 s of an add)."""
    from recommender.storage.columns import RowMap

    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        assert isinstance(rec.snapshot.columns.row_of, RowMap)
        rec.add([article("new-1", "Storm closes the harbour for a second day")])
        rec.remove(["a-1002"])
        rec.refresh()
        row_of = rec.snapshot.columns.row_of
        assert isinstance(row_of, RowMap) and not row_of.built
        assert "new-1" in rec and "a-1002" not in rec
        assert dict(row_of) == {i: rec.snapshot.row(i) for i in rec.ids()}
    _agree(sample_index)
