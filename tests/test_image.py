"""The image of a version: what a reader holds, mapped instead of read row by row."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SAMPLE, FakeEncoder, SampleCopy, article

from recommender import Recommender, Settings
from recommender.read.snapshot import Snapshot, _differences
from recommender.storage import image as image_module
from recommender.storage.layout import ARTICLES, current_version
from recommender.write import compaction


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
        binding = snapshot.table.binding()  # the new image's stamp named
        loaded = image_module.load_image(path, snapshot.lexicon_size, binding, later, len(ids))
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


# -- an image bound to its build --------------------------------------------------------------


def _put(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target``: a derived file of another index copied in by hand."""
    target.unlink(missing_ok=True)
    shutil.copyfile(source, target)


def _opened(index: Path) -> tuple[bool, str | None]:
    """Whether a reader of ``index`` opens it from its image, and why not if not."""
    snapshot = Snapshot.load(index)
    try:
        return snapshot.from_image, snapshot.image_ignored
    finally:
        snapshot.close()


IDS = ["a-1001", "a-2001", "a-3001", "a-4003"]
IGNORED_IMAGE = "opening reads every row instead (slower); delete it (recommend precompute "
IGNORED_IMAGE += "writes the version's own)"


@pytest.mark.parametrize("order", ["reversed", "same"])
def test_an_image_of_another_build_of_the_same_articles_is_ignored(
    sample_index: Path, tmp_path: Path, order: str
) -> None:
    """The image holds the ids of the rows whose vectors the segments hold: another build's,
    even of the same articles, pairs them with other vectors (in another order: other
    articles' vectors). Bound to its build, it is never used; check says so."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    articles = tmp_path / "articles.jsonl"
    articles.write_text("\n".join(lines[::-1] if order == "reversed" else lines) + "\n")
    other = tmp_path / "other"
    Recommender.build_from_files(
        [articles], other, encoder=FakeEncoder(), settings=Settings(precomputed_k=0)
    )
    expected = _answers(sample_index, IDS)
    path = _image(sample_index)
    _put(_image(other), path)
    assert _answers(sample_index, IDS) == expected  # not the other build's rows
    from_image, why = _opened(sample_index)
    assert not from_image and why is not None
    assert why.startswith(f"{path.name}: computed for another build (")
    problems = Recommender.check(sample_index).problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"ignored {path.name}: computed for another build (")
    assert problems[0].endswith(IGNORED_IMAGE)
    with Recommender.open(sample_index) as rec:
        rec.precompute()  # what check advises: the version's own image again
    assert _opened(sample_index) == (True, None)
    assert Recommender.check(sample_index).sound
    assert _answers(sample_index, IDS) == expected


def test_the_image_of_the_version_before_a_compaction_is_ignored(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compaction, "COMPACT_MIN_ROWS", 10)
    old = _image(sample_index).read_bytes()
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("new-1", "Storm closes the harbour for a second day")])
        removed = [i for i in rec.ids() if i.startswith("a-2") and i not in IDS][:90]
        assert rec.remove(removed).compacted
    expected = _answers(sample_index, IDS)
    path = _image(sample_index)
    path.unlink()
    path.write_bytes(old)  # rows 0.. of the old version: others than the new one's
    assert _answers(sample_index, IDS) == expected
    problems = Recommender.check(sample_index).problems
    assert len(problems) == 1 and problems[0].startswith(
        f"ignored {path.name}: computed for another build ("
    )


def test_an_image_follows_its_build_into_a_replica_and_no_further(
    sample_index: Path, tmp_path: Path
) -> None:
    """A replica's database is a copy of its source's: its readers open from the image
    written with the copy, which its database names. That image is not the one the source's
    database names, nor a later image of the source the one the replica's names."""
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("new-1", "Storm closes the harbour for a second day")])
    replica = tmp_path / "replica"
    Recommender.replicate(sample_index, replica)
    assert _opened(replica) == (True, None)
    with Recommender.open(replica) as rec:
        assert rec.snapshot.precomputed is not None  # the source's lists, copied: used
    copied = _image(replica)
    assert copied.name == image_module.image_name(2)
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("new-2", "Harbour reopens after the storm")])
        rec.remove(["a-1002"])
    expected = _answers(sample_index, [*IDS, "new-1", "new-2"])
    _put(copied, current_version(sample_index) / copied.name)  # beside the source's image-1
    assert _opened(sample_index) == (True, f"{copied.name}: {NOT_NAMED}")  # image-1 used
    _agree(sample_index)
    assert _answers(sample_index, [*IDS, "new-1", "new-2"]) == expected
    assert Recommender.check(sample_index).problems == [
        f"ignored {copied.name}: {NOT_NAMED}; {IGNORED_IMAGE}"
    ]
    snapshot = Snapshot.load(sample_index)
    try:
        later = snapshot.save_image()  # the source's image at its generation, 4
    finally:
        snapshot.close()
    _put(later, current_version(replica) / later.name)
    from_image, why = _opened(replica)
    assert from_image and why == (f"{later.name}: computed at generation 4, after this version's 2")


NOT_NAMED = (
    "not the image this version's database names (one it replaced, or one of another copy of "
    "this build, updated apart)"
)


def test_an_image_of_a_copy_of_the_build_updated_apart_is_ignored(
    sample_index: Path, sample_copy: SampleCopy
) -> None:
    """Two copies of one build updated apart: the same build and row numbers, other rows
    behind them. The image of one would give the other's rows the ids of the first's."""
    twin = sample_copy(name="twin")
    with Recommender.open(twin, encoder=FakeEncoder()) as rec:
        rec.add([article("twin-1", "Harbour cranes stand still as the storm goes on")])
        _image(twin).unlink()
        rec.precompute()  # writes the twin's image at generation 2
    with Recommender.open(sample_index, encoder=FakeEncoder()) as rec:
        rec.add([article("other-1", "Central bank raises interest rates again")])
        rec.add([article("other-2", "Orchestra opens its winter season")])
        ids = rec.ids()
    expected = _answers(sample_index, [*IDS, "other-1"])
    theirs = _image(twin)
    assert theirs.name == image_module.image_name(2)
    _put(theirs, current_version(sample_index) / theirs.name)
    with Recommender.open(sample_index) as rec:
        assert rec.ids() == ids and "twin-1" not in rec
    assert _answers(sample_index, [*IDS, "other-1"]) == expected
    assert Recommender.check(sample_index).problems == [
        f"ignored {theirs.name}: {NOT_NAMED}; {IGNORED_IMAGE}"
    ]


def _rewrite_header(path: Path, change: Any) -> None:
    """Rewrites the image's JSON header with ``change`` applied (its length kept)."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + length])
    change(header)
    encoded = json.dumps(header).encode()
    assert len(encoded) <= length
    path.chmod(0o644)
    path.write_bytes(raw[:16] + encoded.ljust(length) + raw[16 + length :])


def test_an_image_written_before_images_were_bound_is_noted_and_written_again(
    sample_index: Path,
) -> None:
    """The previous version's image had no build and no header checksum: it is not used
    (opening reads every row), check notes it, and ``recommend precompute`` writes it anew."""
    path = _image(sample_index)
    _rewrite_header(path, lambda h: [h.pop("build"), h.pop("stamp"), h.pop("checksum")])
    older = "written by an earlier version of recommender, without the build it was computed for"
    assert _opened(sample_index) == (False, f"{path.name}: {older}")
    report = Recommender.check(sample_index)
    assert report.sound and report.notes == [
        f"ignored {path.name}: {older}; opening reads every row instead (slower) until "
        "recommend precompute writes it again"
    ]
    with Recommender.open(sample_index) as rec:
        rec.precompute()
    assert _opened(sample_index) == (True, None)
    assert Recommender.check(sample_index).notes == []


@pytest.mark.parametrize("edit", ["rows", "categories", "generation", "build"])
def test_an_edited_image_header_is_damage(sample_index: Path, edit: str) -> None:
    """Its header has a checksum of its own: the binding or what the arrays mean, edited
    (the arrays' CRC32 left right), makes it unusable."""
    path = _image(sample_index)
    changes = {
        "rows": lambda h: h.update(rows=h["rows"] - 1),
        "categories": lambda h: h.update(categories=h["categories"][::-1]),
        "generation": lambda h: h.update(generation=0),
        "build": lambda h: h.update(build="0" * 32),
    }
    expected = _answers(sample_index, IDS)
    _rewrite_header(path, changes[edit])
    assert _opened(sample_index) == (
        False,
        f"{path.name}: damaged (its header does not match its checksum)",
    )
    assert _answers(sample_index, IDS) == expected


def test_a_symlinked_image_is_not_read_and_check_says_so(
    sample_index: Path, tmp_path: Path
) -> None:
    """Even one to this very build's image: only files the engine wrote are read."""
    path = _image(sample_index)
    elsewhere = tmp_path / "elsewhere.bin"
    shutil.move(path, elsewhere)
    path.symlink_to(elsewhere)
    assert _opened(sample_index) == (False, None)
    assert Recommender.check(sample_index).problems == [
        f"ignored {path.name}: a symbolic link, never read (only files the engine wrote are); "
        "delete it"
    ]
